/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The control protocol's command table: access, argument checks, introspection. */
#include "config.h"
#include "control-commands.h"
#include "hostdevd-error.h"

static JsonObject *
arguments_from(const char *json)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
  return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static void
test_access(void)
{
  static const char *const read_only[] = {
    "list-devices", "dumpxml", "query-version", "query-metrics", "query-commands",
  };
  static const char *const full[] = { "attach-device", "detach-device" };
  for (gsize i = 0; i < G_N_ELEMENTS(read_only); i++) {
    const ControlCommand *command = control_command_lookup(read_only[i]);
    g_assert_nonnull(command);
    g_assert_cmpint(command->access, ==, POLICY_ACCESS_READ);
    g_assert_false(command->long_running);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(full); i++) {
    const ControlCommand *command = control_command_lookup(full[i]);
    g_assert_nonnull(command);
    g_assert_cmpint(command->access, ==, POLICY_ACCESS_FULL);
    g_assert_true(command->long_running);
  }
  g_assert_null(control_command_lookup("anything-else"));
  g_assert_null(control_command_lookup(""));
}

/* The table is indexed by its ids: each entry sits at its own id. */
static void
test_ids(void)
{
  for (int id = 0; id < CONTROL_N_COMMANDS; id++) {
    const ControlCommand *command = control_command_get(id);
    g_assert_cmpint(command->id, ==, id);
    g_assert_nonnull(command->name);
    g_assert_nonnull(command->help);
    g_assert_nonnull(command->returns);
    g_assert_true(control_command_lookup(command->name) == command);
  }
  g_autofree char *names = control_command_names();
  g_assert_cmpstr(names, ==, "attach-device, detach-device, list-devices, dumpxml, "
                             "query-version, query-metrics, query-commands");
}

static const struct {
  const char *command;
  const char *arguments;
  const char *error;    /* NULL: accepted */
} argument_cases[] = {
  { "attach-device", "{\"xml\": \"<hostdev/>\"}", NULL },
  { "attach-device", "{\"xml\": \"<hostdev/>\", \"dry-run\": true}", NULL },
  { "attach-device", "{}", "'attach-device' needs the argument 'xml'" },
  { "attach-device", "{\"xml\": 5}", "argument 'xml' of 'attach-device' must be a string" },
  { "attach-device", "{\"xml\": \"x\", \"dry-run\": \"yes\"}", "must be true or false" },
  { "attach-device", "{\"xml\": \"x\", \"host\": \"evil\"}",
    "'attach-device' takes no argument 'host' (it takes: 'xml', 'dry-run')" },
  { "detach-device", "{\"alias\": \"hostdev0\"}", NULL },
  { "detach-device", "{\"xml\": \"<hostdev/>\", \"wait\": 2.5}", NULL },
  { "detach-device", "{\"alias\": \"a\", \"wait\": 0}", NULL },
  { "detach-device", "{\"alias\": \"a\", \"wait\": 3600}", NULL },
  { "detach-device", "{\"alias\": \"a\", \"wait\": 3601}", "from 0 to 3600" },
  { "detach-device", "{\"alias\": \"a\", \"wait\": -1}", "from 0 to 3600" },
  { "detach-device", "{\"alias\": \"a\", \"wait\": \"5\"}", "from 0 to 3600" },
  { "detach-device", "{}", "'detach-device' needs exactly one of 'xml' or 'alias'" },
  { "detach-device", "{\"xml\": \"x\", \"alias\": \"a\"}", "needs exactly one of 'xml' or 'alias'" },
  { "list-devices", "{}", NULL },
  { "list-devices", "{\"all\": true}", "'list-devices' takes no argument 'all' (it takes: none)" },
  { "query-commands", "{\"x\": null}", "takes no argument 'x'" },
};

static void
test_arguments(void)
{
  for (gsize i = 0; i < G_N_ELEMENTS(argument_cases); i++) {
    g_autoptr(JsonObject) arguments = arguments_from(argument_cases[i].arguments);
    g_autoptr(GError) error = NULL;
    gboolean ok = control_command_check_arguments(
        control_command_lookup(argument_cases[i].command), arguments, &error);
    g_test_message("%s %s", argument_cases[i].command, argument_cases[i].arguments);
    if (argument_cases[i].error == NULL) {
      g_assert_no_error(error);
      g_assert_true(ok);
    } else {
      g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull(strstr(error->message, argument_cases[i].error));
    }
  }
  g_autoptr(JsonObject) wait = arguments_from("{\"alias\": \"a\", \"wait\": 7}");
  g_assert_cmpfloat(control_argument_seconds(wait, "wait", 1), ==, 7);
  g_assert_cmpfloat(control_argument_seconds(wait, "other", 1.5), ==, 1.5);
}

/* query-commands says what the table says, and names every event a command causes. */
static void
test_describe(void)
{
  g_autoptr(JsonNode) node = control_commands_describe();
  JsonObject *reply = json_node_get_object(node);
  JsonArray *commands = json_object_get_array_member(reply, "commands");
  JsonArray *events = json_object_get_array_member(reply, "events");
  gsize n_events;
  const ControlEvent *table_events = control_events(&n_events);

  g_assert_cmpuint(json_array_get_length(commands), ==, CONTROL_N_COMMANDS);
  g_assert_cmpuint(json_array_get_length(events), ==, n_events);
  JsonObject *detach = json_array_get_object_element(commands, CONTROL_COMMAND_DETACH_DEVICE);
  g_assert_cmpstr(json_object_get_string_member(detach, "name"), ==, "detach-device");
  g_assert_cmpstr(json_object_get_string_member(detach, "access"), ==, "full");
  g_assert_true(json_object_get_boolean_member(detach, "long-running"));
  JsonArray *arguments = json_object_get_array_member(detach, "arguments");
  g_assert_cmpuint(json_array_get_length(arguments), ==, 3);
  JsonObject *wait = json_array_get_object_element(arguments, 2);
  g_assert_cmpstr(json_object_get_string_member(wait, "type"), ==, "seconds");
  g_assert_cmpstr(json_object_get_string_member(wait, "presence"), ==, "optional");

  for (guint c = 0; c < json_array_get_length(commands); c++) {
    JsonArray *caused = json_object_get_array_member(json_array_get_object_element(commands, c),
                                                     "events");
    for (guint e = 0; e < json_array_get_length(caused); e++) {
      const char *name = json_array_get_string_element(caused, e);
      gboolean known = FALSE;
      for (gsize t = 0; t < n_events; t++)
        known |= g_strcmp0(table_events[t].name, name) == 0;
      g_assert_true(known);
    }
  }
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/control-commands/access", test_access);
  g_test_add_func("/control-commands/ids", test_ids);
  g_test_add_func("/control-commands/arguments", test_arguments);
  g_test_add_func("/control-commands/describe", test_describe);
  return g_test_run();
}
