/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "control-proto.h"
#include "hostdevd-error.h"
#include "qmp-client.h"

#include <string.h>

typedef struct {
  const char *line;
  const char *needle;   /* NULL: must parse */
} RequestCase;

static const RequestCase request_cases[] = {
  { "{\"execute\": \"list-devices\"}", NULL },
  { "{\"execute\": \"attach-device\", \"arguments\": {\"xml\": \"<hostdev/>\"}, \"id\": 3}", NULL },
  { "{\"execute\": \"dumpxml\", \"id\": \"abc\"}", NULL },
  { "", "must be a JSON object" },
  { "nonsense", "not valid JSON" },
  { "{\"execute\": \"x\"", "not valid JSON" },
  { "[]", "must be a JSON object" },
  { "42", "must be a JSON object" },
  { "{}", "no \"execute\"" },
  { "{\"execute\": 1}", "\"execute\" must be a string" },
  { "{\"execute\": null}", "\"execute\" must be a string" },
  { "{\"execute\": \"x\", \"arguments\": 1}", "\"arguments\" must be a JSON object" },
  { "{\"execute\": \"x\", \"id\": {}}", "\"id\" must be a number or a string" },
  { "{\"execute\": \"x\", \"bogus\": 1}", "unknown member \"bogus\"" },
  { "{\"execute\": \"x\", \"arguments\": {\"a\": [[[[[[[[1]]]]]]]]}}", "nested deeper" },
  /* json-glib would write 2e52 back as "2e+52.0", which is not JSON */
  { "{\"execute\": \"query-version\", \"id\": -2e52}", "whose magnitude is not between" },
  /* ... and 2e-51 as "2e-51.0" (found by the fuzz smoke) */
  { "{\"execu\":\"query-version\", \"id\": 2e-51}", "whose magnitude is not between" },
  { "{\"execute\": \"x\", \"arguments\": {\"wait\": 0.0}}", NULL },
  { "{\"execute\": \"x\", \"arguments\": {\"wait\": 1e400}}", "not finite" },
  { "{\"execute\": \"x\", \"arguments\": {\"wait\": 2.5}, \"id\": 1.5}", NULL },
};

static void
test_request_parse(void)
{
  for (gsize i = 0; i < G_N_ELEMENTS(request_cases); i++) {
    const RequestCase *c = &request_cases[i];
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) id = NULL;
    g_autoptr(ControlRequest) request = control_request_parse(c->line, strlen(c->line), &id, &error);

    if (c->needle == NULL) {
      g_assert_no_error(error);
      g_assert_nonnull(request);
      g_assert_nonnull(request->arguments);
    } else {
      g_assert_null(request);
      g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
      if (strstr(error->message, c->needle) == NULL)
        g_error("case %zu: '%s' does not contain '%s'", i, error->message, c->needle);
    }
  }
}

static void
test_request_id_kept_on_error(void)
{
  const char *line = "{\"execute\": 5, \"id\": 17}";
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) id = NULL;
  g_autoptr(ControlRequest) request = control_request_parse(line, strlen(line), &id, &error);
  g_assert_null(request);
  g_assert_nonnull(id);
  g_assert_cmpint(json_node_get_int(id), ==, 17);
  g_autofree char *reply = control_format_error(error, id);
  g_assert_cmpstr(reply, ==,
                  "{\"error\":{\"class\":\"InvalidArgument\",\"desc\":\"\\\"execute\\\" must be a "
                  "string naming the command\"},\"id\":17}");
}

static void
test_request_size_bound(void)
{
  gsize length = CONTROL_MAX_REQUEST + 1;
  g_autofree char *line = g_malloc(length + 1);
  memset(line, ' ', length);
  line[length] = '\0';
  g_autoptr(GError) error = NULL;
  g_autoptr(ControlRequest) request = control_request_parse(line, length, NULL, &error);
  g_assert_null(request);
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
}

static void
test_error_classes(void)
{
  static const struct { GQuark domain; int code; const char *class_name; } cases[] = {
    { 0, HOSTDEVD_ERROR_INVALID_XML, "InvalidXML" },
    { 0, HOSTDEVD_ERROR_INVALID_ARGUMENT, "InvalidArgument" },
    { 0, HOSTDEVD_ERROR_POLICY_DENIED, "PolicyDenied" },
    { 0, HOSTDEVD_ERROR_NOT_FOUND, "NotFound" },
    { 0, HOSTDEVD_ERROR_BUSY, "Busy" },
    { 0, HOSTDEVD_ERROR_HOST_ERROR, "HostError" },
    { 0, HOSTDEVD_ERROR_QEMU_ERROR, "QemuError" },
    { 0, HOSTDEVD_ERROR_TIMEOUT, "Timeout" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = g_error_new_literal(HOSTDEVD_ERROR, cases[i].code, "x");
    g_assert_cmpstr(control_error_class(error), ==, cases[i].class_name);
    g_assert_cmpint(hostdevd_error_code_from_class(cases[i].class_name), ==, cases[i].code);
  }
  g_autoptr(GError) timeout = g_error_new_literal(QMP_ERROR, QMP_ERROR_TIMEOUT, "t");
  g_autoptr(GError) refused = g_error_new_literal(QMP_ERROR, QMP_ERROR_COMMAND, "r");
  g_autoptr(GError) io = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "p");
  g_assert_cmpstr(control_error_class(timeout), ==, "Timeout");
  g_assert_cmpstr(control_error_class(refused), ==, "QemuError");
  g_assert_cmpstr(control_error_class(io), ==, "HostError");
  g_assert_cmpint(hostdevd_error_code_from_class("Nope"), ==, -1);
}

static void
test_format(void)
{
  g_autofree char *greeting = control_format_greeting("1.2.3", "vm1");
  g_assert_cmpstr(greeting, ==, "{\"hostdevd\":{\"version\":\"1.2.3\",\"vm\":\"vm1\"}}");

  g_autoptr(JsonNode) id = json_node_init_string(json_node_alloc(), "a");
  g_autofree char *empty = control_format_return(NULL, id);
  g_assert_cmpstr(empty, ==, "{\"return\":{},\"id\":\"a\"}");

  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "alias", "hostdev0");
  g_autofree char *request = control_format_request("detach-device", args, 9);
  g_assert_cmpstr(request, ==,
                  "{\"execute\":\"detach-device\",\"arguments\":{\"alias\":\"hostdev0\"},\"id\":9}");

  g_autofree char *event = control_format_event("DEVICE_ATTACHED", args);
  g_assert_true(g_str_has_prefix(event, "{\"event\":\"DEVICE_ATTACHED\",\"data\":{\"alias\":"
                                        "\"hostdev0\"},\"timestamp\":{\"seconds\":"));
  g_assert_null(strchr(event, '\n'));
}

static void
test_vm_names(void)
{
  static const char *const good[] = { "vm1", "web-01", "a.b_c", "X" };
  static const char *const bad[] = { "", ".hidden", "a/b", "../x", "sp ace", "tab\t", "ü",
    "0123456789012345678901234567890123456789012345678901234567890123456789" };
  for (gsize i = 0; i < G_N_ELEMENTS(good); i++)
    g_assert_true(control_vm_name_is_valid(good[i]));
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++)
    g_assert_false(control_vm_name_is_valid(bad[i]));
  g_assert_false(control_vm_name_is_valid(NULL));

  g_setenv("HOSTDEVD_RUNTIME_DIR", "/tmp/rt", TRUE);
  g_autofree char *path = control_socket_path_for_vm("vm1");
  g_assert_cmpstr(path, ==, "/tmp/rt/vm1.sock");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/control-proto/request-parse", test_request_parse);
  g_test_add_func("/control-proto/request-id-kept-on-error", test_request_id_kept_on_error);
  g_test_add_func("/control-proto/request-size-bound", test_request_size_bound);
  g_test_add_func("/control-proto/error-classes", test_error_classes);
  g_test_add_func("/control-proto/format", test_format);
  g_test_add_func("/control-proto/vm-names", test_vm_names);
  return g_test_run();
}
