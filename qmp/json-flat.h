/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * json-flat.h - the plain JSON objects of everyday messages, read without
 * json-glib's parser
 *
 * Nearly every line hostdevd reads is a small object of strings, integers
 * and objects of those: a control request ({"execute": ..., "arguments":
 * {"xml": ...}}), QEMU's events and answers.  json-glib's parser (a
 * GScanner and a GObject per line) was the largest part of reading one
 * (bench/run.sh, callgrind).  This reader takes such a line in one pass and
 * builds the tree json-glib would build from it; anything else (arrays,
 * numbers with a fraction or an exponent, \u escapes, a repeated member,
 * deep nesting, bytes that are not UTF-8, anything malformed) it declines,
 * and the caller reads the line as before, so every error message and
 * limit stays the full parser's.  tests/unit/test-json-flat.c and the
 * control-request fuzz target compare it with json-glib.
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* How deep json_flat_read() follows objects: the line's own object is 1. */
#define JSON_FLAT_MAX_DEPTH 3

/**
 * json_flat_read() - @text (@length bytes, no NUL needed) as the tree
 * json-glib's parser would build, when it is one object of strings without
 * \u escapes, integers of at most 18 digits, true, false, null and objects
 * of those up to JSON_FLAT_MAX_DEPTH, each member named once, surrounded
 * by nothing but JSON whitespace
 * Return: (transfer full) (nullable): the object's node, not sealed (as
 *   json_parser_new() builds it); NULL: declined, read @text with json-glib
 */
JsonNode *json_flat_read(const char *text, gsize length);

G_END_DECLS
