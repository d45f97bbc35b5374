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

G_END_DECLS
