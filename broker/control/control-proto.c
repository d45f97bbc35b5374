/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config.h"
#include "control-proto.h"
#include "hostdevd-error.h"
#include "json-flat.h"
#include "json-guard.h"
#include "json-text.h"
#include "qmp-client.h"

#include <math.h>
#include <string.h>

void
control_request_free(ControlRequest *request)
{
  if (request == NULL)
    return;
  g_free(request->command);
  if (request->arguments)
    json_object_unref(request->arguments);
  if (request->id)
    json_node_unref(request->id);
  g_free(request);
}

/* Return: the nesting depth of @node, stopping early past @limit. */
static guint
json_depth(JsonNode *node, guint limit)
{
  guint deepest = 0;

  if (limit == 0)
    return 1;
  if (JSON_NODE_HOLDS_OBJECT(node)) {
    JsonObjectIter iter;
    JsonNode *member;
    json_object_iter_init(&iter, json_node_get_object(node));
    while (json_object_iter_next(&iter, NULL, &member))
      deepest = MAX(deepest, json_depth(member, limit - 1));
    return deepest + 1;
  }
  if (JSON_NODE_HOLDS_ARRAY(node)) {
    JsonArray *array = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(array); i++)
      deepest = MAX(deepest, json_depth(json_array_get_element(array, i), limit - 1));
    return deepest + 1;
  }
  return 1;
}

/*
 * Range of a fractional or exponent number a request may hold.  json-glib
 * 1.6 writes a double printed with an exponent back with ".0" appended
 * ("2e+52.0", "2e-51.0"), which is not JSON, and reads 1e400 as infinity;
 * no request needs such numbers.  Below CONTROL_MIN_DOUBLE (but not 0) a
 * double is printed with an exponent.
 */
#define CONTROL_MAX_DOUBLE 1e15
#define CONTROL_MIN_DOUBLE 1e-4

/*
 * unrepresentable_number() - find a double in @node that a reply could not carry back
 * @name: the member @node is the value of, for the message
 * Return: (nullable): the name of the member that holds it.
 */
static const char *
unrepresentable_number(JsonNode *node, const char *name)
{
  const char *found = NULL;

  if (JSON_NODE_HOLDS_OBJECT(node)) {
    JsonObjectIter iter;
    const char *member_name;
    JsonNode *member;
    json_object_iter_init(&iter, json_node_get_object(node));
    while (found == NULL && json_object_iter_next(&iter, &member_name, &member))
      found = unrepresentable_number(member, member_name);
  } else if (JSON_NODE_HOLDS_ARRAY(node)) {
    JsonArray *array = json_node_get_array(node);
    for (guint i = 0; found == NULL && i < json_array_get_length(array); i++)
      found = unrepresentable_number(json_array_get_element(array, i), name);
  } else if (JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_DOUBLE) {
    double value = json_node_get_double(node);
    if (!isfinite(value) || fabs(value) >= CONTROL_MAX_DOUBLE ||
        (value != 0 && fabs(value) < CONTROL_MIN_DOUBLE))
      found = name;
  }
  return found;
}

static gboolean
invalid(GError **error, const char *format, ...) G_GNUC_PRINTF(2, 3);

static gboolean
invalid(GError **error, const char *format, ...)
{
  va_list args;
  va_start(args, format);
  g_autofree char *message = g_strdup_vprintf(format, args);
  va_end(args);
  g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT, message);
  return FALSE;
}

/* Return: (transfer full): @line's JSON object read by json-glib, its limits checked
 * first, or NULL with @error saying what is wrong. */
static JsonNode *
read_with_json_glib(const char *line, gsize length, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  g_autoptr(GError) parse_error = NULL;

  /* json-glib recurses per nesting level: refuse deep nesting before it parses */
  switch (json_guard_check(line, length, CONTROL_MAX_DEPTH)) {
  case JSON_GUARD_OK:
    break;
  case JSON_GUARD_NUL:
    invalid(error, "request contains a NUL byte; send one JSON object per line");
    return NULL;
  case JSON_GUARD_NOT_UTF8:
    invalid(error, "request is not valid UTF-8; send one JSON object per line");
    return NULL;
  case JSON_GUARD_NOT_JSON:
    invalid(error, "request is not valid JSON (a character outside strings is not part "
            "of JSON); send one JSON object per line, e.g. {\"execute\": \"list-devices\"}");
    return NULL;
  case JSON_GUARD_TRAILING:
    invalid(error, "request has more after the JSON object; send one JSON object per line");
    return NULL;
  case JSON_GUARD_TOO_DEEP:
  default:
    invalid(error, "request is nested deeper than %d levels", CONTROL_MAX_DEPTH);
    return NULL;
  }
  if (!json_parser_load_from_data(parser, line, (gssize)length, &parse_error)) {
    /* json-glib quotes the offending bytes, which need not be UTF-8 */
    g_autofree char *reason = g_utf8_make_valid(parse_error->message, -1);
    invalid(error, "request is not valid JSON (%s); send one JSON object per line, "
            "e.g. {\"execute\": \"list-devices\"}", reason);
    return NULL;
  }
  JsonNode *root = json_parser_get_root(parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
    invalid(error, "request must be a JSON object, e.g. {\"execute\": \"list-devices\"}");
    return NULL;
  }
  if (json_depth(root, CONTROL_MAX_DEPTH + 1) > CONTROL_MAX_DEPTH) {
    invalid(error, "request is nested deeper than %d levels", CONTROL_MAX_DEPTH);
    return NULL;
  }
  /* an escaped lone surrogate decodes to bytes that are not UTF-8 */
  if (!json_guard_strings_are_utf8(root)) {
    invalid(error, "request has a string that is not valid UTF-8 (an unpaired "
            "surrogate escape such as \\ud800)");
    return NULL;
  }
  return json_node_ref(root);
}

ControlRequest *
control_request_parse(const char *line, gsize length, JsonNode **id_out, GError **error)
{
  if (id_out)
    *id_out = NULL;
  if (length > CONTROL_MAX_REQUEST) {
    invalid(error, "request is %zu bytes, the limit is %d bytes", length, CONTROL_MAX_REQUEST);
    return NULL;
  }
  /* the everyday request, read in one pass (json-flat.h); json-glib reads the rest:
   * what the flat reader takes is within every limit json-glib's path checks */
  G_STATIC_ASSERT(JSON_FLAT_MAX_DEPTH <= CONTROL_MAX_DEPTH);
  g_autoptr(JsonNode) root = json_flat_read(line, length);
  if (root != NULL)
    json_node_seal(root);    /* as json_parser_new_immutable() hands trees out */
  else if ((root = read_with_json_glib(line, length, error)) == NULL)
    return NULL;

  JsonObject *object = json_node_get_object(root);
  JsonNode *id = json_object_get_member(object, "id");
  /* the id goes back with the error, unless it is the number no reply can carry */
  if (id && id_out && unrepresentable_number(id, "id") == NULL) {
    if (JSON_NODE_HOLDS_VALUE(id) || JSON_NODE_HOLDS_NULL(id))
      *id_out = json_node_copy(id);
  }
  const char *bad_number = unrepresentable_number(root, "request");
  if (bad_number) {
    invalid(error, "'%s' holds a number that is not finite, or whose magnitude is not "
            "between %g and %g; use an integer, or a number with a decimal point and no "
            "exponent", bad_number, CONTROL_MIN_DOUBLE, CONTROL_MAX_DOUBLE);
    return NULL;
  }
  if (id && !(JSON_NODE_HOLDS_VALUE(id) || JSON_NODE_HOLDS_NULL(id))) {
    invalid(error, "\"id\" must be a number or a string");
    return NULL;
  }

  JsonNode *execute = json_object_get_member(object, "execute");
  if (execute == NULL) {
    invalid(error, "request has no \"execute\" member naming the command");
    return NULL;
  }
  if (!JSON_NODE_HOLDS_VALUE(execute) || json_node_get_value_type(execute) != G_TYPE_STRING) {
    invalid(error, "\"execute\" must be a string naming the command");
    return NULL;
  }

  JsonNode *arguments = json_object_get_member(object, "arguments");
  if (arguments && !JSON_NODE_HOLDS_OBJECT(arguments)) {
    invalid(error, "\"arguments\" must be a JSON object");
    return NULL;
  }

  JsonObjectIter iter;
  const char *member;
  json_object_iter_init(&iter, object);
  while (json_object_iter_next(&iter, &member, NULL)) {
    if (g_strcmp0(member, "execute") != 0 && g_strcmp0(member, "arguments") != 0 &&
        g_strcmp0(member, "id") != 0) {
      invalid(error, "unknown member \"%s\" in request; only \"execute\", \"arguments\" "
              "and \"id\" are allowed", member);
      return NULL;
    }
  }

  ControlRequest *request = g_new0(ControlRequest, 1);
  request->command = g_strdup(json_node_get_string(execute));
  request->arguments = arguments ? json_object_ref(json_node_get_object(arguments))
                                 : json_object_new();
  request->id = id ? json_node_copy(id) : NULL;
  return request;
}

const char *
control_error_class(const GError *error)
{
  if (error->domain == QMP_ERROR)
    return error->code == QMP_ERROR_TIMEOUT ? "Timeout" : "QemuError";
  if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    return "Timeout";
  return hostdevd_error_class(error);
}

char *
control_json_to_line(JsonNode *node)
{
  return json_text_from_node(node, NULL);
}

/* Every line is written member by member (json-text.h), around the value it
 * carries: nothing is copied into a tree of its own.
 * Return: (transfer full): @out's object with "id" added when there is one, closed. */
static char *
close_line(GString *out, JsonNode *id)
{
  if (id)
    json_text_member_node(out, "id", id);
  json_text_object_end(out);
  return g_string_free(out, FALSE);
}

static void
empty_object_member(GString *out, const char *name)
{
  json_text_member_name(out, name);
  json_text_object_begin(out);
  json_text_object_end(out);
}

char *
control_format_greeting(const char *version, const char *vm)
{
  GString *out = g_string_sized_new(128);

  json_text_object_begin(out);
  json_text_member_name(out, "hostdevd");
  json_text_object_begin(out);
  json_text_member_string(out, "version", version);
  json_text_member_string(out, "vm", vm);
  json_text_object_end(out);
  return close_line(out, NULL);
}

char *
control_format_return(JsonNode *value, JsonNode *id)
{
  GString *out = g_string_sized_new(256);

  json_text_object_begin(out);
  if (value)
    json_text_member_node(out, "return", value);
  else
    empty_object_member(out, "return");
  return close_line(out, id);
}

char *
control_format_error(const GError *error, JsonNode *id)
{
  GString *out = g_string_sized_new(256);

  json_text_object_begin(out);
  json_text_member_name(out, "error");
  json_text_object_begin(out);
  json_text_member_string(out, "class", control_error_class(error));
  json_text_member_string(out, "desc", error->message);
  json_text_object_end(out);
  return close_line(out, id);
}

char *
control_format_event(const char *name, JsonObject *data)
{
  GString *out = g_string_sized_new(256);
  gint64 now = g_get_real_time();

  json_text_object_begin(out);
  json_text_member_string(out, "event", name);
  if (data)
    json_text_member_object(out, "data", data);
  else
    empty_object_member(out, "data");
  json_text_member_name(out, "timestamp");
  json_text_object_begin(out);
  json_text_member_int(out, "seconds", now / G_USEC_PER_SEC);
  json_text_member_int(out, "microseconds", now % G_USEC_PER_SEC);
  json_text_object_end(out);
  return close_line(out, NULL);
}

char *
control_format_request(const char *command, JsonObject *arguments, gint64 id)
{
  GString *out = g_string_sized_new(256);

  json_text_object_begin(out);
  json_text_member_string(out, "execute", command);
  if (arguments)
    json_text_member_object(out, "arguments", arguments);
  json_text_member_int(out, "id", id);
  json_text_object_end(out);
  return g_string_free(out, FALSE);
}

const char *
control_runtime_dir(void)
{
  const char *dir = g_getenv("HOSTDEVD_RUNTIME_DIR");
  return dir && *dir ? dir : HOSTDEVD_RUNTIME_DIR;
}

gboolean
control_vm_name_is_valid(const char *name)
{
  if (name == NULL || name[0] == '\0' || name[0] == '.' || strlen(name) > 64)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return TRUE;
}

char *
control_socket_path_for_vm(const char *vm)
{
  return g_strdup_printf("%s/%s.sock", control_runtime_dir(), vm);
}
