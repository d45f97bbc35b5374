/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "json-guard.h"

#include <string.h>

JsonGuardResult
json_guard_check(const char *text, gsize len, guint max_depth)
{
  guint depth = 0;
  gboolean in_string = FALSE;
  gboolean escaped = FALSE;
  gboolean complete = FALSE;   /* a top-level object or array has closed */

  if (len > 0 && memchr(text, '\0', len) != NULL)
    return JSON_GUARD_NUL;
  /* GLib and json-glib assume valid UTF-8 everywhere */
  if (!g_utf8_validate_len(text, len, NULL))
    return JSON_GUARD_NOT_UTF8;
  for (gsize i = 0; i < len; i++) {
    char c = text[i];

    if (in_string) {
      if (escaped)
        escaped = FALSE;
      else if (c == '\\')
        escaped = TRUE;
      else if (c == '"')
        in_string = FALSE;
      continue;
    }
    if (complete && c != ' ' && c != '\t' && c != '\r' && c != '\n')
      return JSON_GUARD_TRAILING;
    switch (c) {
    case '"':
      in_string = TRUE;
      break;
    case '[':
    case '{':
      if (++depth > max_depth)
        return JSON_GUARD_TOO_DEEP;
      break;
    case ']':
    case '}':
      if (depth > 0 && --depth == 0)
        complete = TRUE;
      break;
    case ' ': case '\t': case '\r': case '\n': case ':': case ',':
    case '-': case '+': case '.':
      break;
    default:
      if (!g_ascii_isalnum(c))
        return JSON_GUARD_NOT_JSON;
      break;
    }
  }
  return JSON_GUARD_OK;
}

gboolean
json_guard_strings_are_utf8(JsonNode *node)
{
  if (node == NULL)
    return TRUE;
  switch (json_node_get_node_type(node)) {
  case JSON_NODE_OBJECT: {
    JsonObjectIter iter;
    const char *name;
    JsonNode *member;
    json_object_iter_init(&iter, json_node_get_object(node));
    while (json_object_iter_next(&iter, &name, &member))
      if (!g_utf8_validate(name, -1, NULL) || !json_guard_strings_are_utf8(member))
        return FALSE;
    return TRUE;
  }
  case JSON_NODE_ARRAY: {
    JsonArray *array = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(array); i++)
      if (!json_guard_strings_are_utf8(json_array_get_element(array, i)))
        return FALSE;
    return TRUE;
  }
  case JSON_NODE_VALUE:
    if (json_node_get_value_type(node) == G_TYPE_STRING)
      return g_utf8_validate(json_node_get_string(node), -1, NULL);
    return TRUE;
  case JSON_NODE_NULL:
  default:
    return TRUE;
  }
}
