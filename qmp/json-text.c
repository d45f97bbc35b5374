/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "json-text.h"

#include <string.h>

/* @text as a JSON string: runs that need no escape are copied whole. */
static void
append_string(GString *out, const char *text)
{
  static const char hex[] = "0123456789abcdef";
  const char *run = text;

  g_string_append_c(out, '"');
  for (const char *p = text; *p; p++) {
    guchar c = (guchar)*p;
    const char *escape = NULL;

    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    g_string_append_len(out, run, p - run);
    run = p + 1;
    switch (c) {
    case '"': escape = "\\\""; break;
    case '\\': escape = "\\\\"; break;
    case '\b': escape = "\\b"; break;
    case '\f': escape = "\\f"; break;
    case '\n': escape = "\\n"; break;
    case '\r': escape = "\\r"; break;
    case '\t': escape = "\\t"; break;
    default: {
      char unicode[] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf], '\0' };
      g_string_append(out, unicode);
      continue;
    }
    }
    g_string_append(out, escape);
  }
  g_string_append_len(out, run, strlen(run));
  g_string_append_c(out, '"');
}

static void
append_int(GString *out, gint64 value)
{
  char digits[24];
  char *p = digits + sizeof digits;
  /* as unsigned, so that G_MININT64 negates without overflow */
  guint64 magnitude = value < 0 ? -(guint64)value : (guint64)value;

  do
    *--p = (char)('0' + magnitude % 10);
  while ((magnitude /= 10) != 0);
  if (value < 0)
    *--p = '-';
  g_string_append_len(out, p, digits + sizeof digits - p);
}

static void
append_value(GString *out, JsonNode *node)
{
  char number[G_ASCII_DTOSTR_BUF_SIZE];

  switch (json_node_get_value_type(node)) {
  case G_TYPE_INT64:
    append_int(out, json_node_get_int(node));
    break;
  case G_TYPE_DOUBLE:
    g_string_append(out, g_ascii_dtostr(number, sizeof number, json_node_get_double(node)));
    break;
  case G_TYPE_BOOLEAN:
    g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
    break;
  case G_TYPE_STRING:
    append_string(out, json_node_get_string(node));
    break;
  default:
    g_string_append(out, "null");
    break;
  }
}

void
json_text_append(GString *out, JsonNode *node)
{
  switch (node ? json_node_get_node_type(node) : JSON_NODE_NULL) {
  case JSON_NODE_OBJECT: {
    JsonObjectIter iter;
    const char *name;
    JsonNode *member;
    gboolean first = TRUE;

    g_string_append_c(out, '{');
    json_object_iter_init_ordered(&iter, json_node_get_object(node));
    while (json_object_iter_next_ordered(&iter, &name, &member)) {
      if (!first)
        g_string_append_c(out, ',');
      first = FALSE;
      append_string(out, name);
      g_string_append_c(out, ':');
      json_text_append(out, member);
    }
    g_string_append_c(out, '}');
    break;
  }
  case JSON_NODE_ARRAY: {
    JsonArray *array = json_node_get_array(node);
    guint length = json_array_get_length(array);

    g_string_append_c(out, '[');
    for (guint i = 0; i < length; i++) {
      if (i > 0)
        g_string_append_c(out, ',');
      json_text_append(out, json_array_get_element(array, i));
    }
    g_string_append_c(out, ']');
    break;
  }
  case JSON_NODE_VALUE:
    append_value(out, node);
    break;
  case JSON_NODE_NULL:
    g_string_append(out, "null");
    break;
  }
}

char *
json_text_from_node(JsonNode *node, gsize *length)
{
  GString *out = g_string_sized_new(256);
  json_text_append(out, node);
  if (length)
    *length = out->len;
  return g_string_free(out, FALSE);
}

char *
json_text_from_object(JsonObject *object, gsize *length)
{
  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), object);
  return json_text_from_node(node, length);
}

void
json_text_object_begin(GString *out)
{
  g_string_append_c(out, '{');
}

void
json_text_object_end(GString *out)
{
  g_string_append_c(out, '}');
}

void
json_text_member_name(GString *out, const char *name)
{
  /* every member but an object's first follows a comma */
  if (out->len > 0 && out->str[out->len - 1] != '{')
    g_string_append_c(out, ',');
  append_string(out, name);
  g_string_append_c(out, ':');
}

void
json_text_member_string(GString *out, const char *name, const char *value)
{
  json_text_member_name(out, name);
  if (value)
    append_string(out, value);
  else
    g_string_append(out, "null");
}

void
json_text_member_int(GString *out, const char *name, gint64 value)
{
  json_text_member_name(out, name);
  append_int(out, value);
}

void
json_text_value_string(GString *out, const char *value)
{
  append_string(out, value);
}

void
json_text_member_bool(GString *out, const char *name, gboolean value)
{
  json_text_member_name(out, name);
  g_string_append(out, value ? "true" : "false");
}

/* @n strings of @values; G_MAXUINT: up to its NULL */
static void
append_strings(GString *out, const char *const *values, guint n)
{
  g_string_append_c(out, '[');
  for (guint i = 0; i < n && values && values[i]; i++) {
    if (i > 0)
      g_string_append_c(out, ',');
    append_string(out, values[i]);
  }
  g_string_append_c(out, ']');
}

void
json_text_member_strv(GString *out, const char *name, const char *const *values)
{
  json_text_member_name(out, name);
  append_strings(out, values, G_MAXUINT);
}

void
json_text_member_string_array(GString *out, const char *name, GPtrArray *values)
{
  json_text_member_name(out, name);
  append_strings(out, (const char *const *)values->pdata, values->len);
}

void
json_text_member_node(GString *out, const char *name, JsonNode *node)
{
  json_text_member_name(out, name);
  json_text_append(out, node);
}

void
json_text_member_object(GString *out, const char *name, JsonObject *object)
{
  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), object);

  json_text_member_node(out, name, node);
}

void
json_text_member_raw(GString *out, const char *name, const char *json)
{
  json_text_member_name(out, name);
  g_string_append(out, json);
}

void
json_text_array_begin(GString *out)
{
  g_string_append_c(out, '[');
}

void
json_text_element_begin(GString *out)
{
  /* every element but an array's first follows a comma */
  if (out->len > 0 && out->str[out->len - 1] != '[')
    g_string_append_c(out, ',');
}

void
json_text_array_end(GString *out)
{
  g_string_append_c(out, ']');
}

JsonObject *
json_text_parse_object(const char *text)
{
  g_autoptr(JsonNode) node = json_from_string(text, NULL);
  return node && JSON_NODE_HOLDS_OBJECT(node) ? json_object_ref(json_node_get_object(node)) : NULL;
}
