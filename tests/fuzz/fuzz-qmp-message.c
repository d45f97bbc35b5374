/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-qmp-message.c - libFuzzer target for qmp_message_check(), which
 * parses every line QEMU (or a compromised guest's QEMU) writes to hostdevd
 */
#include "json-flat.h"
#include "qmp-client.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Return: exactly @size bytes, never NULL and not NUL-terminated, so an
 * over-read shows up in ASan. */
static char *
copy_input(const uint8_t *data, size_t size)
{
  char *copy = g_malloc(size ? size : 1);
  if (size)
    memcpy(copy, data, size);
  return copy;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) message = NULL;
  g_autofree char *line = copy_input(data, size);

  if (!qmp_message_check(line, size, &message, &error)) {
    /* the reason is logged and may reach a control client */
    if (message != NULL || !g_error_matches(error, QMP_ERROR, QMP_ERROR_PROTOCOL) ||
        !g_utf8_validate(error->message, -1, NULL))
      abort();
    return 0;
  }
  if (message == NULL || !JSON_NODE_HOLDS_OBJECT(message))
    abort();
  /* a line read without the parser (either way) is the tree json-glib builds from it,
   * members in the same order */
  g_autoptr(JsonNode) empty = qmp_message_read_empty_return(line, size);
  g_autoptr(JsonNode) flat = json_flat_read(line, size);
  JsonNode *fast = empty ? empty : flat;
  if (fast != NULL) {
    g_autoptr(JsonParser) parser = json_parser_new();
    if (!json_parser_load_from_data(parser, line, (gssize)size, NULL) ||
        !json_node_equal(fast, json_parser_get_root(parser)))
      abort();
    g_autofree char *fast_text = json_to_string(fast, FALSE);
    g_autofree char *full_text = json_to_string(json_parser_get_root(parser), FALSE);
    if (strcmp(fast_text, full_text) != 0)
      abort();
  }
  /* what was accepted must serialise: replies are logged and passed on */
  g_autofree char *text = json_to_string(message, FALSE);
  if (text == NULL || !g_utf8_validate(text, -1, NULL))
    abort();
  return 0;
}
