/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * json-text.h - a json-glib tree as compact JSON text, in one pass
 *
 * What json_generator_to_data() (json-glib) writes without pretty-printing:
 * members in the order they were set, strings as UTF-8 with '"', '\' and
 * control characters escaped.  It appends to one GString and formats
 * numbers without printf: hostdevd writes a journal record, a QMP command
 * and a control reply for every request, and json-glib's generator was the
 * largest part of that (bench/run.sh, callgrind).
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* json_text_append() - append @node as compact JSON to @out. */
void json_text_append(GString *out, JsonNode *node);

/* Return: (transfer full): @node as compact JSON; its length in @length (optional). */
char *json_text_from_node(JsonNode *node, gsize *length);

/* Return: (transfer full): @object as compact JSON; its length in @length (optional). */
char *json_text_from_object(JsonObject *object, gsize *length);

/*
 * An object written member by member, in the order of the calls, with no
 * tree built: json_text_object_begin(), json_text_member_*() for each
 * member, json_text_object_end().  The text is what json_text_append()
 * writes for a JsonObject whose members were set in the same order.
 */
void json_text_object_begin(GString *out);
void json_text_object_end(GString *out);
/* the name of the member whose value comes next (e.g. an object begun here) */
void json_text_member_name(GString *out, const char *name);
/* @value NULL: null, as json_object_set_string_member() stores it */
void json_text_member_string(GString *out, const char *name, const char *value);
void json_text_member_int(GString *out, const char *name, gint64 value);
void json_text_member_bool(GString *out, const char *name, gboolean value);
/* json_text_value_string() - @value alone, as a member's value after json_text_member_name() */
void json_text_value_string(GString *out, const char *value);
/* @values NULL: an empty array */
void json_text_member_strv(GString *out, const char *name, const char *const *values);
/* @values: (element-type utf8): an array of strings */
void json_text_member_string_array(GString *out, const char *name, GPtrArray *values);
void json_text_member_object(GString *out, const char *name, JsonObject *object);
void json_text_member_node(GString *out, const char *name, JsonNode *node);
/* @json: a value already written as JSON text (by these functions), copied as it is */
void json_text_member_raw(GString *out, const char *name, const char *json);
/*
 * An array of objects written element by element: json_text_array_begin(),
 * then json_text_element_begin() before each element's
 * json_text_object_begin(), json_text_array_end().
 */
void json_text_array_begin(GString *out);
void json_text_element_begin(GString *out);
void json_text_array_end(GString *out);

/* Return: (transfer full) (nullable): @text, one object as these functions
 * write it, read back as a tree; NULL when it is not one object. */
JsonObject *json_text_parse_object(const char *text);

G_END_DECLS
