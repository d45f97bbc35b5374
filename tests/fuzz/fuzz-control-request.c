/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-control-request.c - libFuzzer target for control_request_parse(),
 * the parser of every line a control-socket client sends, and for the
 * error and reply formatting that echoes parts of it back
 */
#include "control-proto.h"
#include "hostdevd-error.h"
#include "json-flat.h"
#include "json-text.h"

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

/* Return: whether a line hostdevd would send is JSON a client can read. */
static gboolean
parses_again(const char *line)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  return json_parser_load_from_data(parser, line, -1, NULL);
}

/* What json_flat_read() takes, json-glib takes too, with the same tree: the
 * request parser trusts the flat reader's tree as json-glib's. */
static void
check_flat_reader(const char *line, size_t size)
{
  g_autoptr(JsonNode) flat = json_flat_read(line, size);
  if (flat == NULL)
    return;
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  if (!json_parser_load_from_data(parser, line, (gssize)size, NULL) ||
      json_parser_get_root(parser) == NULL ||
      !json_node_equal(flat, json_parser_get_root(parser)))
    abort();
  g_autofree char *flat_text = json_text_from_node(flat, NULL);
  g_autofree char *full_text = json_text_from_node(json_parser_get_root(parser), NULL);
  if (strcmp(flat_text, full_text) != 0)
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) id = NULL;
  g_autofree char *line = copy_input(data, size);
  g_autoptr(ControlRequest) request = control_request_parse(line, size, &id, &error);

  check_flat_reader(line, size);

  if (request == NULL) {
    if (error == NULL || !g_error_matches(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT))
      abort();
    /* the error goes back to the client: it must be a clean line of UTF-8 */
    g_autofree char *reply = control_format_error(error, id);
    if (reply == NULL || !g_utf8_validate(reply, -1, NULL) || strchr(reply, '\n') ||
        !parses_again(reply))
      abort();
    return 0;
  }
  if (request->command == NULL || request->arguments == NULL)
    abort();
  g_autoptr(JsonNode) arguments = json_node_init_object(json_node_alloc(), request->arguments);
  g_autofree char *echo = control_format_return(arguments, request->id);
  if (!g_utf8_validate(echo, -1, NULL) || strchr(echo, '\n') || !parses_again(echo))
    abort();
  g_autofree char *forwarded = control_format_request(request->command, request->arguments, 1);
  /* what hostdevctl would send for this request must parse again */
  g_autoptr(GError) again_error = NULL;
  g_autoptr(ControlRequest) again =
      control_request_parse(forwarded, strlen(forwarded), NULL, &again_error);
  if (again == NULL || g_strcmp0(again->command, request->command) != 0) {
    g_printerr("re-encoded request does not parse: %s\n%s\n",
               again_error ? again_error->message : "command differs", forwarded);
    abort();
  }
  return 0;
}
