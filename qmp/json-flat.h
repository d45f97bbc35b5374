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
 *
 * Where a reader wants a few known members and not the tree (a claim
 * file), json_flat_visit() tells it of each member as it is read, and
 * json_flat_visit_tree() tells it of json-glib's tree the same way, for
 * the lines the one-pass reader declines: one function reads both.
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

typedef enum {
  JSON_FLAT_STRING,
  JSON_FLAT_INT,
  JSON_FLAT_BOOLEAN,   /* @integer 0 or 1 */
  JSON_FLAT_NULL,
  JSON_FLAT_OBJECT,    /* an object begins: its members follow, one deeper, then */
  JSON_FLAT_END,       /* ...it ends (no name) */
  JSON_FLAT_OTHER,     /* json_flat_visit_tree() only: an array, a fraction, an object too deep */
} JsonFlatKind;

typedef struct {
  JsonFlatKind kind;
  const char *string;  /* JSON_FLAT_STRING: decoded, valid during the call only */
  gint64 integer;      /* JSON_FLAT_INT, JSON_FLAT_BOOLEAN */
} JsonFlatValue;

/* A member @name (NULL for JSON_FLAT_END) of an object at @depth (the line's
 * own object is 1).  Return: FALSE to stop, and the whole text is declined. */
typedef gboolean (*JsonFlatMemberFunc)(const char *name, const JsonFlatValue *value, guint depth,
                                       gpointer user_data);

/**
 * json_flat_visit() - call @member for each member of @text, in order, when
 * it is what json_flat_read() takes (a repeated member is left to @member)
 * Return: FALSE: declined, by the reader or by @member; @member may have
 *   been called before that (keep nothing of those calls then)
 */
gboolean json_flat_visit(const char *text, gsize length, JsonFlatMemberFunc member,
                         gpointer user_data);

/**
 * json_flat_visit_tree() - call @member for each member of @root (json-glib's
 * tree of a text json_flat_visit() declined), in order, as json_flat_visit()
 * would; what the one-pass reader has no kind for is JSON_FLAT_OTHER
 * Return: FALSE: @root is not an object, or @member stopped
 */
gboolean json_flat_visit_tree(JsonNode *root, JsonFlatMemberFunc member, gpointer user_data);

G_END_DECLS
