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

/* Return: (transfer full) (nullable): the string at @cursor (past its opening quote), decoded. */
static char *
read_string(Cursor *cursor)
{
  const char *start = cursor->at;
  const char *plain = start;

  /* mostly no escape at all: one copy */
  while (plain < cursor->end && *plain != '"' && *plain != '\\' && (guchar)*plain >= 0x20)
    plain++;
  if (plain < cursor->end && *plain == '"') {
    cursor->at = plain + 1;
    return g_strndup(start, (gsize)(plain - start));
  }
  /* sized for what is known so far, not the rest of the line: a line of many
   * escaped strings must not allocate the line's length for each of them */
  GString *out = g_string_sized_new((gsize)(plain - start) + 16);
  g_string_append_len(out, start, plain - start);
  for (const char *p = plain; p < cursor->end; p++) {
    if (*p == '"') {
      cursor->at = p + 1;
      return g_string_free(out, FALSE);
    }
    if ((guchar)*p < 0x20)
      break;
    if (*p != '\\') {
      g_string_append_c(out, *p);
      continue;
    }
    char byte = ++p < cursor->end ? unescape(*p) : 0;
    if (byte == 0)
      break;
    g_string_append_c(out, byte);
  }
  g_string_free(out, TRUE);
  return NULL;
}

/* Return: (transfer full) (nullable): an integer of 1-18 digits, no leading zero, as a node. */
static JsonNode *
read_integer(Cursor *cursor)
{
  gboolean negative = take(cursor, '-');
  const char *digits = cursor->at;
  gint64 value = 0;

  /* 18 digits at most: no overflow on the way */
  while (cursor->at < cursor->end && g_ascii_isdigit(*cursor->at) && cursor->at - digits < 18)
    value = value * 10 + (*cursor->at++ - '0');
  gsize count = (gsize)(cursor->at - digits);
  /* a fraction, an exponent, a 19th digit, "-0" or "01": json-glib's to read */
  if (count == 0 || (digits[0] == '0' && (count > 1 || negative)) ||
      (cursor->at < cursor->end && (*cursor->at == '.' || *cursor->at == 'e' ||
                                    *cursor->at == 'E' || g_ascii_isdigit(*cursor->at))))
    return NULL;
  return json_node_init_int(json_node_alloc(), negative ? -value : value);
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

static JsonNode *read_object(Cursor *cursor, guint depth);

/* Return: (transfer full) (nullable): the value at @cursor, of the kinds this reader takes. */
static JsonNode *
read_value(Cursor *cursor, guint depth)
{
  if (cursor->at >= cursor->end)
    return NULL;
  switch (*cursor->at) {
  case '"': {
    cursor->at++;
    g_autofree char *text = read_string(cursor);
    return text ? json_node_init_string(json_node_alloc(), text) : NULL;
  }
  case '{':
    cursor->at++;
    return read_object(cursor, depth + 1);
  case 't':
    return take_word(cursor, "true") ? json_node_init_boolean(json_node_alloc(), TRUE) : NULL;
  case 'f':
    return take_word(cursor, "false") ? json_node_init_boolean(json_node_alloc(), FALSE) : NULL;
  case 'n':
    return take_word(cursor, "null") ? json_node_init_null(json_node_alloc()) : NULL;
  default:
    return read_integer(cursor);
  }
}

/* Return: (transfer full) (nullable): the object at @cursor (past its '{'), at @depth. */
static JsonNode *
read_object(Cursor *cursor, guint depth)
{
  if (depth > JSON_FLAT_MAX_DEPTH)
    return NULL;
  g_autoptr(JsonObject) object = json_object_new();
  skip_space(cursor);
  if (!take(cursor, '}')) {
    do {
      skip_space(cursor);
      if (!take(cursor, '"'))
        return NULL;
      g_autofree char *name = read_string(cursor);
      /* json-glib refuses an empty name; a repeated one is its to settle */
      if (name == NULL || *name == '\0' || json_object_has_member(object, name))
        return NULL;
      skip_space(cursor);
      if (!take(cursor, ':'))
        return NULL;
      skip_space(cursor);
      JsonNode *value = read_value(cursor, depth);
      if (value == NULL)
        return NULL;
      json_object_set_member(object, name, value);
      skip_space(cursor);
    } while (take(cursor, ','));
    if (!take(cursor, '}'))
      return NULL;
  }
  return json_node_init_object(json_node_alloc(), object);
}

JsonNode *
json_flat_read(const char *text, gsize length)
{
  Cursor cursor = { text, text + length };

  if (text == NULL)
    return NULL;
  skip_space(&cursor);
  if (!take(&cursor, '{'))
    return NULL;
  g_autoptr(JsonNode) root = read_object(&cursor, 1);
  skip_space(&cursor);
  /* A NUL is declined on the way (below ' ' in a string, no token outside);
   * bytes that are not UTF-8 only here, once the line is known to be taken,
   * so that a line declined early (an answer with an array) is not scanned
   * whole first */
  if (root == NULL || cursor.at != cursor.end || !g_utf8_validate_len(text, length, NULL))
    return NULL;
  return g_steal_pointer(&root);
}
