/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * json-guard.h - a cheap pre-scan before untrusted text reaches json-glib
 *
 * json-glib parses recursively: a line of nested '[' well within any size
 * bound (about 100k levels fit in the control socket's 128 KiB) exhausts
 * the stack before json-glib could report anything.  So both parsers of
 * untrusted JSON (QMP messages from QEMU, control requests from clients)
 * scan the text first, in one linear pass with no allocation.
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum {
  JSON_GUARD_OK,
  JSON_GUARD_NUL,        /* contains a NUL byte */
  JSON_GUARD_NOT_UTF8,   /* is not valid UTF-8 */
  JSON_GUARD_NOT_JSON,   /* outside strings, a character JSON does not have */
  JSON_GUARD_TOO_DEEP,   /* arrays/objects nest deeper than the limit */
  JSON_GUARD_TRAILING,   /* more after the first complete object or array */
} JsonGuardResult;

/**
 * json_guard_check() - whether json-glib may be handed @text
 * @text: the text; NUL termination not required
 * @len: its length in bytes
 * @max_depth: deepest nesting of arrays and objects allowed (the outermost
 *   container is level 1)
 *
 * Outside strings only characters of the JSON grammar may occur.  That
 * matters for the depth count: json-glib's scanner also knows comments
 * and single-quoted strings, which could otherwise hide brackets from this
 * count but not from the recursive parser.  Unbalanced closing brackets
 * are left for the parser to report.  json-glib would accept "{...} {...}"
 * on one line; one message is one value, so anything after a complete
 * top-level object or array is refused.
 *
 * Return: JSON_GUARD_OK, or the first problem found.
 */
JsonGuardResult json_guard_check(const char *text, gsize len, guint max_depth);

/**
 * json_guard_strings_are_utf8() - whether every string in a parsed tree is UTF-8
 * json-glib turns an escaped lone surrogate ("\ud800") into bytes that are
 * not UTF-8; such a string must not reach GLib or be echoed back to a peer.
 * Recurses once per nesting level, so check the text first.
 * Return: TRUE when every member name and string value is valid UTF-8.
 */
gboolean json_guard_strings_are_utf8(JsonNode *node);

G_END_DECLS
