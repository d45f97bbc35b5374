/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "json-flat.h"

#include <string.h>

/* Where the reader is in the line; @end one past its last byte. */
typedef struct {
  const char *at;
  const char *end;
} Cursor;

static void
skip_space(Cursor *cursor)
{
  while (cursor->at < cursor->end &&
         (*cursor->at == ' ' || *cursor->at == '\t' || *cursor->at == '\n' || *cursor->at == '\r'))
    cursor->at++;
}

/* Return: whether the next byte is @c, consumed then. */
static gboolean
take(Cursor *cursor, char c)
{
  if (cursor->at >= cursor->end || *cursor->at != c)
    return FALSE;
  cursor->at++;
  return TRUE;
}

/* The byte an escape's letter stands for; 0: one this reader declines (\u, or none). */
static char
unescape(char letter)
{
  switch (letter) {
  case '"': return '"';
  case '\\': return '\\';
  case '/': return '/';
  case 'b': return '\b';
  case 'f': return '\f';
  case 'n': return '\n';
  case 'r': return '\r';
  case 't': return '\t';
  default: return 0;
  }
}

/* Decode the string at @cursor (past its opening quote) into @into.
 * Return: whether it was one this reader takes. */
static gboolean
read_string(Cursor *cursor, GString *into)
{
  const char *start = cursor->at;
  const char *plain = start;

  g_string_truncate(into, 0);
  /* mostly no escape at all: one copy */
  while (plain < cursor->end && *plain != '"' && *plain != '\\' && (guchar)*plain >= 0x20)
    plain++;
  g_string_append_len(into, start, plain - start);
  for (const char *p = plain; p < cursor->end; p++) {
    if (*p == '"') {
      cursor->at = p + 1;
      return TRUE;
    }
    if ((guchar)*p < 0x20)
      break;
    if (*p != '\\') {
      g_string_append_c(into, *p);
      continue;
    }
    char byte = ++p < cursor->end ? unescape(*p) : 0;
    if (byte == 0)
      break;
    g_string_append_c(into, byte);
  }
  return FALSE;
}

/* Read an integer of 1-18 digits, no leading zero, into @value.
 * Return: whether it was one this reader takes. */
static gboolean
read_integer(Cursor *cursor, gint64 *value)
{
  gboolean negative = take(cursor, '-');
  const char *digits = cursor->at;
  gint64 sum = 0;

  /* 18 digits at most: no overflow on the way */
  while (cursor->at < cursor->end && g_ascii_isdigit(*cursor->at) && cursor->at - digits < 18)
    sum = sum * 10 + (*cursor->at++ - '0');
  gsize count = (gsize)(cursor->at - digits);
  /* a fraction, an exponent, a 19th digit, "-0" or "01": json-glib's to read */
  if (count == 0 || (digits[0] == '0' && (count > 1 || negative)) ||
      (cursor->at < cursor->end && (*cursor->at == '.' || *cursor->at == 'e' ||
                                    *cursor->at == 'E' || g_ascii_isdigit(*cursor->at))))
    return FALSE;
  *value = negative ? -sum : sum;
  return TRUE;
}

/* Return: whether the bytes at @cursor are @word, consumed then. */
static gboolean
take_word(Cursor *cursor, const char *word)
{
  gsize length = strlen(word);
  if ((gsize)(cursor->end - cursor->at) < length || memcmp(cursor->at, word, length) != 0)
    return FALSE;
  cursor->at += length;
  return TRUE;
}

/* One pass over a line: where it is, and who is told of each member. */
typedef struct {
  Cursor cursor;
  GString *name;
  GString *string;
  JsonFlatMemberFunc member;
  gpointer user_data;
} Visit;

static gboolean visit_object(Visit *visit, guint depth);

/* Tell of the member @visit->name, whose value is at the cursor, in an object at @depth. */
static gboolean
visit_value(Visit *visit, guint depth)
{
  Cursor *cursor = &visit->cursor;
  JsonFlatValue value = { 0 };

  if (cursor->at >= cursor->end)
    return FALSE;
  switch (*cursor->at) {
  case '"':
    cursor->at++;
    if (!read_string(cursor, visit->string))
      return FALSE;
    value.kind = JSON_FLAT_STRING;
    value.string = visit->string->str;
    break;
  case '{':
    cursor->at++;
    if (depth + 1 > JSON_FLAT_MAX_DEPTH)
      return FALSE;
    value.kind = JSON_FLAT_OBJECT;
    if (!visit->member(visit->name->str, &value, depth, visit->user_data) ||
        !visit_object(visit, depth + 1))
      return FALSE;
    value.kind = JSON_FLAT_END;
    return visit->member(NULL, &value, depth, visit->user_data);
  case 't':
  case 'f':
    value.kind = JSON_FLAT_BOOLEAN;
    value.integer = *cursor->at == 't';
    if (!take_word(cursor, value.integer ? "true" : "false"))
      return FALSE;
    break;
  case 'n':
    value.kind = JSON_FLAT_NULL;
    if (!take_word(cursor, "null"))
      return FALSE;
    break;
  default:
    value.kind = JSON_FLAT_INT;
    if (!read_integer(cursor, &value.integer))
      return FALSE;
    break;
  }
  return visit->member(visit->name->str, &value, depth, visit->user_data);
}

/* The members of the object at the cursor (past its '{'), at @depth. */
static gboolean
visit_object(Visit *visit, guint depth)
{
  Cursor *cursor = &visit->cursor;

  skip_space(cursor);
  if (take(cursor, '}'))
    return TRUE;
  do {
    skip_space(cursor);
    /* json-glib refuses an empty name */
    if (!take(cursor, '"') || !read_string(cursor, visit->name) || visit->name->len == 0)
      return FALSE;
    skip_space(cursor);
    if (!take(cursor, ':'))
      return FALSE;
    skip_space(cursor);
    if (!visit_value(visit, depth))
      return FALSE;
    skip_space(cursor);
  } while (take(cursor, ','));
  return take(cursor, '}');
}

gboolean
json_flat_visit(const char *text, gsize length, JsonFlatMemberFunc member, gpointer user_data)
{
  if (text == NULL)
    return FALSE;

  g_autoptr(GString) name = g_string_sized_new(32);
  g_autoptr(GString) string = g_string_sized_new(128);
  Visit visit = { { text, text + length }, name, string, member, user_data };
  skip_space(&visit.cursor);
  gboolean taken = take(&visit.cursor, '{') && visit_object(&visit, 1);
  skip_space(&visit.cursor);
  /* A NUL is declined on the way (below ' ' in a string, no token outside);
   * bytes that are not UTF-8 only here, once the line is known to be taken,
   * so that a line declined early (an answer with an array) is not scanned
   * whole first */
  return taken && visit.cursor.at == visit.cursor.end && g_utf8_validate_len(text, length, NULL);
}

/* json_flat_read()'s visitor: [depth] is the object being filled at that depth. */
typedef struct {
  JsonObject *objects[JSON_FLAT_MAX_DEPTH + 1];
} Build;

static gboolean
build_member(const char *name, const JsonFlatValue *value, guint depth, gpointer user_data)
{
  Build *build = user_data;
  JsonObject *object = build->objects[depth];

  /* an object ends: it was in its parent from its start, filled in place */
  if (value->kind == JSON_FLAT_END)
    return TRUE;
  /* a repeated name is json-glib's to settle */
  if (json_object_has_member(object, name))
    return FALSE;
  JsonNode *node = json_node_alloc();
  switch (value->kind) {
  case JSON_FLAT_OBJECT: {
    g_autoptr(JsonObject) members = json_object_new();
    build->objects[depth + 1] = members;
    json_node_init_object(node, members);
    break;
  }
  case JSON_FLAT_STRING:
    json_node_init_string(node, value->string);
    break;
  case JSON_FLAT_INT:
    json_node_init_int(node, value->integer);
    break;
  case JSON_FLAT_BOOLEAN:
    json_node_init_boolean(node, value->integer != 0);
    break;
  case JSON_FLAT_NULL:
  case JSON_FLAT_END:
  case JSON_FLAT_OTHER:   /* the scanner tells of neither */
  default:
    json_node_init_null(node);
    break;
  }
  json_object_set_member(object, name, node);
  return TRUE;
}

JsonNode *
json_flat_read(const char *text, gsize length)
{
  g_autoptr(JsonObject) root = json_object_new();
  Build build = { { NULL, root } };

  if (!json_flat_visit(text, length, build_member, &build))
    return NULL;
  return json_node_init_object(json_node_alloc(), root);
}

/* The members of @object at @depth, in their order, as json_flat_visit() tells them. */
static gboolean
visit_tree_object(JsonObject *object, guint depth, JsonFlatMemberFunc member, gpointer user_data)
{
  JsonObjectIter iter;
  const char *name;
  JsonNode *node;

  json_object_iter_init_ordered(&iter, object);
  while (json_object_iter_next_ordered(&iter, &name, &node)) {
    JsonFlatValue value = { JSON_FLAT_OTHER, NULL, 0 };
    GType type = JSON_NODE_HOLDS_VALUE(node) ? json_node_get_value_type(node) : G_TYPE_INVALID;

    if (JSON_NODE_HOLDS_OBJECT(node) && depth < JSON_FLAT_MAX_DEPTH) {
      value.kind = JSON_FLAT_OBJECT;
      if (!member(name, &value, depth, user_data) ||
          !visit_tree_object(json_node_get_object(node), depth + 1, member, user_data))
        return FALSE;
      value.kind = JSON_FLAT_END;
      if (!member(NULL, &value, depth, user_data))
        return FALSE;
      continue;
    }
    if (JSON_NODE_HOLDS_NULL(node)) {
      value.kind = JSON_FLAT_NULL;
    } else if (type == G_TYPE_STRING) {
      value.kind = JSON_FLAT_STRING;
      value.string = json_node_get_string(node);
    } else if (type == G_TYPE_INT64) {
      value.kind = JSON_FLAT_INT;
      value.integer = json_node_get_int(node);
    } else if (type == G_TYPE_BOOLEAN) {
      value.kind = JSON_FLAT_BOOLEAN;
      value.integer = json_node_get_boolean(node);
    }
    if (!member(name, &value, depth, user_data))
      return FALSE;
  }
  return TRUE;
}

gboolean
json_flat_visit_tree(JsonNode *root, JsonFlatMemberFunc member, gpointer user_data)
{
  return root != NULL && JSON_NODE_HOLDS_OBJECT(root) &&
         visit_tree_object(json_node_get_object(root), 1, member, user_data);
}
