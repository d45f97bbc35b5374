/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config.h"
#include "control-commands.h"
#include "hostdevd-error.h"

#define SECONDS_MAX 3600

static const ControlCommand commands[CONTROL_N_COMMANDS] = {
  [CONTROL_COMMAND_ATTACH_DEVICE] = {
    .id = CONTROL_COMMAND_ATTACH_DEVICE, .name = "attach-device",
    .access = POLICY_ACCESS_FULL, .long_running = TRUE,
    .arguments = {
      { "xml", CONTROL_ARG_STRING, CONTROL_ARG_REQUIRED,
        "one <hostdev> or <interface type='hostdev'>, or a <devices> element holding several" },
      { "dry-run", CONTROL_ARG_BOOLEAN, CONTROL_ARG_OPTIONAL,
        "check and plan only: change nothing, answer with the plan" },
    },
    .returns = "{\"alias\", \"source\", \"xml\", \"state\"?} (a batch: {\"devices\": [...]}); dry run: "
               "{\"plan\": [{\"step\", \"alias\", \"what\", \"qmp\"?}...], \"commands\": [...]}",
    .help = "attach host devices to the VM: all of a request's devices or none",
    .events = { "DEVICE_ATTACHED", "DEVICE_WAITING" },
  },
  [CONTROL_COMMAND_DETACH_DEVICE] = {
    .id = CONTROL_COMMAND_DETACH_DEVICE, .name = "detach-device",
    .access = POLICY_ACCESS_FULL, .long_running = TRUE,
    .arguments = {
      { "xml", CONTROL_ARG_STRING, CONTROL_ARG_ONE_OF,
        "a <hostdev> (or <devices>) matching attached devices" },
      { "alias", CONTROL_ARG_STRING, CONTROL_ARG_ONE_OF, "the alias of an attached device" },
      { "wait", CONTROL_ARG_SECONDS, CONTROL_ARG_OPTIONAL,
        "how long to wait for the guest to let the device go (0 to 3600 s)" },
    },
    .returns = "{\"alias\", \"source\", \"status\": \"detached\" | \"pending\"}, plus \"host-error\" when "
               "the device left QEMU but could not be given back (detaching it again retries)",
    .help = "detach devices from the VM and give them back to the host",
    .events = { "DEVICE_DETACHED", "DEVICE_DETACH_FAILED" },
  },
  [CONTROL_COMMAND_LIST_DEVICES] = {
    .id = CONTROL_COMMAND_LIST_DEVICES, .name = "list-devices",
    .access = POLICY_ACCESS_READ,
    .returns = "[{\"alias\", \"type\", \"source\", \"state\", \"xml\"}]; a device that left "
               "QEMU but is not back on the host yet is \"detaching\" with a \"phase\"",
    .help = "the VM's devices and the state of each",
  },
  [CONTROL_COMMAND_DUMPXML] = {
    .id = CONTROL_COMMAND_DUMPXML, .name = "dumpxml",
    .access = POLICY_ACCESS_READ,
    .returns = "{\"xml\": \"<devices>...</devices>\"}",
    .help = "the live XML of the VM's devices",
  },
  [CONTROL_COMMAND_QUERY_VERSION] = {
    .id = CONTROL_COMMAND_QUERY_VERSION, .name = "query-version",
    .access = POLICY_ACCESS_READ,
    .returns = "{\"version\", \"vm\", \"qemu\"}",
    .help = "hostdevd's version, the VM's name and QEMU's version",
  },
  [CONTROL_COMMAND_QUERY_METRICS] = {
    .id = CONTROL_COMMAND_QUERY_METRICS, .name = "query-metrics",
    .access = POLICY_ACCESS_READ,
    .returns = "{\"text\": Prometheus text exposition}",
    .help = "counters, latencies and device counts of this VM, for a metrics scraper",
  },
  [CONTROL_COMMAND_QUERY_COMMANDS] = {
    .id = CONTROL_COMMAND_QUERY_COMMANDS, .name = "query-commands",
    .access = POLICY_ACCESS_READ,
    .returns = "{\"commands\": [{\"name\", \"access\", \"long-running\", \"arguments\", "
               "\"returns\", \"help\", \"events\"}...], \"events\": [{\"name\", \"data\", \"help\"}...]}",
    .help = "every command hostdevd understands, with its arguments, and every event",
  },
};

static const ControlEvent events[] = {
  { "DEVICE_ATTACHED", "alias, source, xml", "a device was attached (one event per device)" },
  { "DEVICE_DETACHED", "alias, source, reason, host-error?",
    "a device left the VM and was given back to the host (host-error: it left QEMU, but "
    "giving it back failed)" },
  { "DEVICE_DETACH_FAILED", "alias, reason",
    "the guest refused a pending unplug: the device stays attached" },
  { "DEVICE_WAITING", "alias, source, reason",
    "a USB device that follows its device is out of QEMU and waits for it to appear on the "
    "host (it left, or one that appeared was refused); DEVICE_ATTACHED follows when it is back" },
};

static const char *const type_names[] = {
  [CONTROL_ARG_STRING] = "string",
  [CONTROL_ARG_BOOLEAN] = "boolean",
  [CONTROL_ARG_SECONDS] = "seconds",
};

static const char *const presence_names[] = {
  [CONTROL_ARG_OPTIONAL] = "optional",
  [CONTROL_ARG_REQUIRED] = "required",
  [CONTROL_ARG_ONE_OF] = "one-of",
};

const ControlCommand *
control_command_get(ControlCommandId id)
{
  g_return_val_if_fail(id < CONTROL_N_COMMANDS, NULL);
  return &commands[id];
}

const ControlCommand *
control_command_lookup(const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
    if (g_strcmp0(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

char *
control_command_names(void)
{
  GString *names = g_string_new(NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
    g_string_append_printf(names, "%s%s", i ? ", " : "", commands[i].name);
  return g_string_free(names, FALSE);
}

const ControlEvent *
control_events(gsize *n)
{
  *n = G_N_ELEMENTS(events);
  return events;
}

static const ControlArgument *
find_argument(const ControlCommand *command, const char *name)
{
  for (gsize i = 0; i < CONTROL_MAX_ARGUMENTS && command->arguments[i].name; i++)
    if (g_strcmp0(command->arguments[i].name, name) == 0)
      return &command->arguments[i];
  return NULL;
}

/* Return: the arguments of @command with @presence, as "a, b" or "none". */
static char *
argument_list(const ControlCommand *command, gboolean any, ControlArgPresence presence,
              const char *separator)
{
  GString *list = g_string_new(NULL);
  for (gsize i = 0; i < CONTROL_MAX_ARGUMENTS && command->arguments[i].name; i++)
    if (any || command->arguments[i].presence == presence)
      g_string_append_printf(list, "%s'%s'", list->len ? separator : "",
                             command->arguments[i].name);
  if (list->len == 0)
    g_string_append(list, "none");
  return g_string_free(list, FALSE);
}

static gboolean
value_has_type(JsonNode *node, ControlArgType type)
{
  GType value_type = JSON_NODE_HOLDS_VALUE(node) ? json_node_get_value_type(node) : G_TYPE_INVALID;
  switch (type) {
  case CONTROL_ARG_STRING:
    return value_type == G_TYPE_STRING;
  case CONTROL_ARG_BOOLEAN:
    return value_type == G_TYPE_BOOLEAN;
  case CONTROL_ARG_SECONDS: {
    double seconds = value_type == G_TYPE_INT64 ? (double)json_node_get_int(node)
                     : value_type == G_TYPE_DOUBLE ? json_node_get_double(node) : -1;
    return seconds >= 0 && seconds <= SECONDS_MAX;
  }
  }
  return FALSE;
}

static const char *const type_wanted[] = {
  [CONTROL_ARG_STRING] = "must be a string",
  [CONTROL_ARG_BOOLEAN] = "must be true or false",
  [CONTROL_ARG_SECONDS] = "must be a number of seconds from 0 to 3600",
};

gboolean
control_command_check_arguments(const ControlCommand *command, JsonObject *arguments,
                                GError **error)
{
  JsonObjectIter iter;
  const char *member;
  JsonNode *node;
  guint one_of_given = 0;

  json_object_iter_init(&iter, arguments);
  while (json_object_iter_next(&iter, &member, &node)) {
    const ControlArgument *argument = find_argument(command, member);
    if (argument == NULL) {
      g_autofree char *list = argument_list(command, TRUE, 0, ", ");
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "'%s' takes no argument '%s' (it takes: %s)", command->name, member, list);
      return FALSE;
    }
    if (!value_has_type(node, argument->type)) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "argument '%s' of '%s' %s", member, command->name, type_wanted[argument->type]);
      return FALSE;
    }
    one_of_given += argument->presence == CONTROL_ARG_ONE_OF;
  }
  for (gsize i = 0; i < CONTROL_MAX_ARGUMENTS && command->arguments[i].name; i++) {
    const ControlArgument *argument = &command->arguments[i];
    if (argument->presence == CONTROL_ARG_REQUIRED &&
        !json_object_has_member(arguments, argument->name)) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "'%s' needs the argument '%s': %s", command->name, argument->name,
                  argument->help);
      return FALSE;
    }
  }
  g_autofree char *one_of = argument_list(command, FALSE, CONTROL_ARG_ONE_OF, " or ");
  if (g_strcmp0(one_of, "none") != 0 && one_of_given != 1) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "'%s' needs exactly one of %s", command->name, one_of);
    return FALSE;
  }
  return TRUE;
}

double
control_argument_seconds(JsonObject *arguments, const char *name, double fallback)
{
  JsonNode *node = json_object_get_member(arguments, name);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node))
    return fallback;
  return json_node_get_value_type(node) == G_TYPE_INT64 ? (double)json_node_get_int(node)
                                                         : json_node_get_double(node);
}

static JsonNode *
describe_command(const ControlCommand *command)
{
  g_autoptr(JsonBuilder) builder = json_builder_new();
  json_builder_begin_object(builder);
  json_builder_set_member_name(builder, "name");
  json_builder_add_string_value(builder, command->name);
  json_builder_set_member_name(builder, "access");
  json_builder_add_string_value(builder, command->access == POLICY_ACCESS_FULL ? "full" : "read");
  json_builder_set_member_name(builder, "long-running");
  json_builder_add_boolean_value(builder, command->long_running);
  json_builder_set_member_name(builder, "arguments");
  json_builder_begin_array(builder);
  for (gsize i = 0; i < CONTROL_MAX_ARGUMENTS && command->arguments[i].name; i++) {
    const ControlArgument *argument = &command->arguments[i];
    json_builder_begin_object(builder);
    json_builder_set_member_name(builder, "name");
    json_builder_add_string_value(builder, argument->name);
    json_builder_set_member_name(builder, "type");
    json_builder_add_string_value(builder, type_names[argument->type]);
    json_builder_set_member_name(builder, "presence");
    json_builder_add_string_value(builder, presence_names[argument->presence]);
    json_builder_set_member_name(builder, "help");
    json_builder_add_string_value(builder, argument->help);
    json_builder_end_object(builder);
  }
  json_builder_end_array(builder);
  json_builder_set_member_name(builder, "returns");
  json_builder_add_string_value(builder, command->returns);
  json_builder_set_member_name(builder, "help");
  json_builder_add_string_value(builder, command->help);
  json_builder_set_member_name(builder, "events");
  json_builder_begin_array(builder);
  for (gsize i = 0; i < G_N_ELEMENTS(command->events) && command->events[i]; i++)
    json_builder_add_string_value(builder, command->events[i]);
  json_builder_end_array(builder);
  json_builder_end_object(builder);
  return json_builder_get_root(builder);
}

JsonNode *
control_commands_describe(void)
{
  g_autoptr(JsonArray) list = json_array_new();
  for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
    json_array_add_element(list, describe_command(&commands[i]));
  g_autoptr(JsonArray) event_list = json_array_new();
  for (gsize i = 0; i < G_N_ELEMENTS(events); i++) {
    JsonObject *event = json_object_new();
    json_object_set_string_member(event, "name", events[i].name);
    json_object_set_string_member(event, "data", events[i].data);
    json_object_set_string_member(event, "help", events[i].help);
    json_array_add_object_element(event_list, event);
  }
  JsonObject *reply = json_object_new();
  json_object_set_array_member(reply, "commands", g_steal_pointer(&list));
  json_object_set_array_member(reply, "events", g_steal_pointer(&event_list));
  JsonNode *node = json_node_new(JSON_NODE_OBJECT);
  json_node_take_object(node, reply);
  return node;
}
