/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdevctl - virsh-like client of hostdevd's control socket
 *
 * Speaks the control protocol synchronously: connect, read the greeting,
 * send one request, print its reply.  Exit status 0 on success, 1 when the
 * request failed (the error's desc on stderr), 2 on a usage error.
 */
#include "config.h"
#include "control-proto.h"
#include "hostdev.h"
#include "hostdevctl-nodedev.h"

#include <gio/gunixinputstream.h>
#include <gio/gunixsocketaddress.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2
#define DEFAULT_REPLY_TIMEOUT_S 120

typedef struct {
  gboolean json;
  gboolean dry_run;
  gboolean loop;
  double wait_s;          /* detach: -1 = hostdevd's default */
  int timeout_s;          /* how long to wait for a reply or an event */
  GPtrArray *positional;  /* VERB VM ARG... */
} Args;

typedef struct {
  GSocketConnection *connection;
  GDataInputStream *input;
  GOutputStream *output;
  char *vm;               /* from the greeting */
} Session;

static void
session_free(Session *session)
{
  g_clear_object(&session->input);
  g_clear_object(&session->connection);
  g_free(session->vm);
  g_free(session);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Session, session_free)

static void
usage(FILE *out)
{
  fprintf(out,
          "Usage: hostdevctl [--json] VERB VM [ARGS]\n"
          "\n"
          "  attach-device VM FILE [--dry-run]   attach the <hostdev> in FILE ('-' = stdin), or\n"
          "                                     every device of a <devices> element, all or none;\n"
          "                                     --dry-run prints the plan: its steps as\n"
          "                                     '# step: what' lines, each QMP command as JSON\n"
          "  detach-device VM FILE [--wait S]    detach the device FILE's <hostdev> names, or each\n"
          "                                     device of a <devices> element\n"
          "  detach-device-alias VM ALIAS [--wait S]\n"
          "  dumpxml VM                          live XML of the attached devices\n"
          "  list VM                             the attached devices, one per line\n"
          "  events VM [--loop] [--timeout S]    print device events\n"
          "  version VM                          hostdevd's and QEMU's versions\n"
          "\n"
          "VM is a VM name (socket $HOSTDEVD_RUNTIME_DIR/VM.sock, default %s)\n"
          "or a socket path containing '/'.\n"
          "--json prints hostdevd's raw JSON replies, one per line.\n"
          "Exit status: 0 success, 1 the request failed, 2 usage error.\n"
          "\n%s",
          HOSTDEVD_RUNTIME_DIR, hostdevctl_nodedev_usage());
}

static gboolean
parse_number(const char *option, const char *text, double max, double *value)
{
  char *end = NULL;
  double number = text ? g_ascii_strtod(text, &end) : -1;
  if (text == NULL || end == text || *end != '\0' || !(number >= 0 && number <= max)) {
    g_printerr("hostdevctl: %s needs a number of seconds from 0 to %g\n", option, max);
    return FALSE;
  }
  *value = number;
  return TRUE;
}

/* Return: FALSE after printing the problem when the command line is wrong. */
static gboolean
parse_args(int argc, char **argv, Args *args)
{
  args->wait_s = -1;
  args->timeout_s = DEFAULT_REPLY_TIMEOUT_S;
  args->positional = g_ptr_array_new();
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    double number;
    if (g_strcmp0(arg, "--json") == 0) {
      args->json = TRUE;
    } else if (g_strcmp0(arg, "--dry-run") == 0) {
      args->dry_run = TRUE;
    } else if (g_strcmp0(arg, "--loop") == 0) {
      args->loop = TRUE;
    } else if (g_strcmp0(arg, "--wait") == 0) {
      if (!parse_number("--wait", i + 1 < argc ? argv[++i] : NULL, 3600, &number))
        return FALSE;
      args->wait_s = number;
    } else if (g_strcmp0(arg, "--timeout") == 0) {
      if (!parse_number("--timeout", i + 1 < argc ? argv[++i] : NULL, 86400, &number))
        return FALSE;
      args->timeout_s = (int)number;
    } else if (g_strcmp0(arg, "--help") == 0 || g_strcmp0(arg, "-h") == 0) {
      usage(stdout);
      exit(EXIT_SUCCESS);
    } else if (g_strcmp0(arg, "--version") == 0) {
      printf("hostdevctl %s\n", HOSTDEVD_VERSION);
      exit(EXIT_SUCCESS);
    } else if (arg[0] == '-' && arg[1] == '-') {
      g_printerr("hostdevctl: unknown option '%s'\n", arg);
      return FALSE;
    } else {
      g_ptr_array_add(args->positional, (gpointer)arg);
    }
  }
  return TRUE;
}

/* Return: (transfer full): the JSON object on one line from hostdevd, or NULL with @error. */
static JsonObject *
read_message(Session *session, GError **error)
{
  gsize length = 0;
  g_autofree char *line = g_data_input_stream_read_line_utf8(session->input, &length, NULL, error);
  if (line == NULL) {
    if (error && *error == NULL)
      g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_CLOSED, "hostdevd closed the connection");
    return NULL;
  }
  if (length > CONTROL_MAX_REPLY) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "reply of %zu bytes is too large", length);
    return NULL;
  }
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  if (!json_parser_load_from_data(parser, line, (gssize)length, error))
    return NULL;
  JsonNode *root = json_parser_get_root(parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "hostdevd sent a non-object");
    return NULL;
  }
  return json_object_ref(json_node_get_object(root));
}

static void
print_json_line(JsonObject *object)
{
  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), object);
  g_autofree char *line = control_json_to_line(node);
  printf("%s\n", line);
  fflush(stdout);
}

/* Return: (transfer full): the session, or NULL after printing why. */
static Session *
session_open(const char *vm, int timeout_s)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;

  if (strchr(vm, '/')) {
    path = g_strdup(vm);
  } else if (control_vm_name_is_valid(vm)) {
    path = control_socket_path_for_vm(vm);
  } else {
    g_printerr("error: '%s' is neither a VM name nor a socket path\n", vm);
    return NULL;
  }

  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(path);
  g_socket_client_set_timeout(client, (guint)timeout_s);
  g_autoptr(Session) session = g_new0(Session, 1);
  session->connection = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(address), NULL, &error);
  if (session->connection == NULL) {
    g_printerr("error: cannot reach hostdevd for VM '%s' at %s: %s\n"
               "Is hostdevd running for this VM (systemctl status hostdevd@%s)?\n",
               vm, path, error->message, strchr(vm, '/') ? "NAME" : vm);
    return NULL;
  }
  session->input = g_data_input_stream_new(
      g_io_stream_get_input_stream(G_IO_STREAM(session->connection)));
  g_data_input_stream_set_newline_type(session->input, G_DATA_STREAM_NEWLINE_TYPE_LF);
  session->output = g_io_stream_get_output_stream(G_IO_STREAM(session->connection));

  g_autoptr(JsonObject) greeting = read_message(session, &error);
  if (greeting == NULL) {
    g_printerr("error: no greeting from hostdevd at %s: %s\n", path, error->message);
    return NULL;
  }
  if (json_object_has_member(greeting, "error")) {
    JsonObject *refusal = json_object_get_object_member(greeting, "error");
    g_printerr("error: %s\n", json_object_get_string_member_with_default(refusal, "desc", "refused"));
    return NULL;
  }
  JsonObject *hello = json_object_get_object_member(greeting, "hostdevd");
  if (hello == NULL) {
    g_printerr("error: %s does not speak the hostdevd protocol\n", path);
    return NULL;
  }
  session->vm = g_strdup(json_object_get_string_member_with_default(hello, "vm", vm));
  return g_steal_pointer(&session);
}

static void
print_event(Session *session, JsonObject *message, gboolean json)
{
  if (json) {
    print_json_line(message);
    return;
  }
  const char *name = json_object_get_string_member_with_default(message, "event", "?");
  JsonObject *data = json_object_get_object_member(message, "data");
  const char *alias = data ? json_object_get_string_member_with_default(data, "alias", "") : "";
  const char *source = data ? json_object_get_string_member_with_default(data, "source", "") : "";
  if (*source)
    printf("event '%s' for VM '%s': %s (%s)\n", name, session->vm, alias, source);
  else
    printf("event '%s' for VM '%s': %s\n", name, session->vm, alias);
  fflush(stdout);
}

/**
 * execute() - send one request and wait for its reply
 * Events that arrive meanwhile are skipped.
 * Return: (transfer full): the "return" value, or NULL after printing the error.
 */
static JsonNode *
execute(Session *session, const char *command, JsonObject *arguments, gboolean json)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *request = control_format_request(command, arguments, 1);
  g_autofree char *line = g_strconcat(request, "\n", NULL);

  if (!g_output_stream_write_all(session->output, line, strlen(line), NULL, NULL, &error)) {
    g_printerr("error: cannot send the request: %s\n", error->message);
    return NULL;
  }
  for (;;) {
    g_autoptr(JsonObject) message = read_message(session, &error);
    if (message == NULL) {
      g_printerr("error: no reply from hostdevd: %s\n", error->message);
      return NULL;
    }
    if (json_object_has_member(message, "event"))
      continue;
    if (json && !json_object_has_member(message, "error"))
      print_json_line(message);
    if (json_object_has_member(message, "error")) {
      JsonObject *failure = json_object_get_object_member(message, "error");
      if (json)
        print_json_line(message);
      g_printerr("error: %s\n",
                 failure ? json_object_get_string_member_with_default(failure, "desc", "?") : "?");
      return NULL;
    }
    JsonNode *value = json_object_get_member(message, "return");
    return value ? json_node_copy(value) : json_node_init_null(json_node_alloc());
  }
}

/* Return: (transfer full): the contents of @file ('-' = stdin), or NULL after printing why. */
static char *
read_document(const char *file)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length = 0;

  if (g_strcmp0(file, "-") == 0) {
    g_autoptr(GInputStream) in = g_unix_input_stream_new(0, FALSE);
    g_autoptr(GByteArray) buffer = g_byte_array_new();
    guint8 chunk[8192];
    gssize n;
    while ((n = g_input_stream_read(in, chunk, sizeof chunk, NULL, &error)) > 0) {
      if (buffer->len + (gsize)n > CONTROL_MAX_REQUEST) {
        g_printerr("error: standard input holds more than %d bytes\n", CONTROL_MAX_REQUEST);
        return NULL;
      }
      g_byte_array_append(buffer, chunk, (guint)n);
    }
    if (n < 0) {
      g_printerr("error: cannot read standard input: %s\n", error->message);
      return NULL;
    }
    g_byte_array_append(buffer, (const guint8 *)"", 1);
    return (char *)g_byte_array_free(g_steal_pointer(&buffer), FALSE);
  }
  if (!g_file_get_contents(file, &contents, &length, &error)) {
    g_printerr("error: %s\n", error->message);
    return NULL;
  }
  if (strlen(contents) != length) {
    g_printerr("error: %s contains a NUL byte; it must be an XML text file\n", file);
    return NULL;
  }
  return g_steal_pointer(&contents);
}

/* A dry run's plan: each step as a "# step: what" line, then the QMP it sends. */
static void
print_plan(JsonObject *reply)
{
  JsonArray *plan = json_object_get_array_member(reply, "plan");
  for (guint i = 0; plan && i < json_array_get_length(plan); i++) {
    JsonObject *step = json_array_get_object_element(plan, i);
    printf("# %s: %s\n", json_object_get_string_member_with_default(step, "step", "?"),
           json_object_get_string_member_with_default(step, "what", ""));
    if (json_object_has_member(step, "qmp"))
      print_json_line(json_object_get_object_member(step, "qmp"));
  }
}

static int
cmd_attach(Session *session, const Args *args, const char *file)
{
  g_autofree char *xml = read_document(file);
  if (xml == NULL)
    return EXIT_FAILURE;
  g_autoptr(JsonObject) arguments = json_object_new();
  json_object_set_string_member(arguments, "xml", xml);
  if (args->dry_run)
    json_object_set_boolean_member(arguments, "dry-run", TRUE);
  g_autoptr(JsonNode) value = execute(session, "attach-device", arguments, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (args->json)
    return EXIT_SUCCESS;
  JsonObject *reply = json_node_get_object(value);
  if (args->dry_run) {
    print_plan(reply);
    return EXIT_SUCCESS;
  }
  /* a <devices> request answers with each device */
  JsonArray *devices = json_object_has_member(reply, "devices")
      ? json_object_get_array_member(reply, "devices") : NULL;
  for (guint i = 0; devices && i < json_array_get_length(devices); i++)
    printf("Device attached successfully as %s\n",
           json_object_get_string_member_with_default(
               json_array_get_object_element(devices, i), "alias", "?"));
  if (devices == NULL)
    printf("Device attached successfully as %s\n",
           json_object_get_string_member_with_default(reply, "alias", "?"));
  return EXIT_SUCCESS;
}

/* One device's detach as a person reads it; FALSE when the host did not get it back. */
static gboolean
print_detached(JsonObject *reply)
{
  const char *status = json_object_get_string_member_with_default(reply, "status", "");
  const char *detached = json_object_get_string_member_with_default(reply, "alias", "?");
  const char *host_error = json_object_get_string_member_with_default(reply, "host-error", NULL);
  if (host_error) {
    g_printerr("error: %s left the VM, but giving it back to the host failed: %s\n"
               "It stays listed as detaching; run the same detach again to retry.\n",
               detached, host_error);
    return FALSE;
  }
  g_autoptr(GString) slot = g_string_new(NULL);
  JsonArray *functions = json_object_has_member(reply, "slot")
      ? json_object_get_array_member(reply, "slot") : NULL;
  for (guint i = 0; functions && i < json_array_get_length(functions); i++)
    g_string_append_printf(slot, "%s%s", i ? ", " : "; its whole multifunction slot left: ",
                           json_array_get_string_element(functions, i));
  if (g_strcmp0(status, "detached") == 0)
    printf("Device detached successfully (%s%s)\n", detached, slot->str);
  else
    printf("Device detach request sent successfully; the guest has not released %s yet "
           "(it is listed as detaching until it does)\n", detached);
  return TRUE;
}

static int
cmd_detach(Session *session, const Args *args, const char *file, const char *alias)
{
  g_autoptr(JsonObject) arguments = json_object_new();
  if (file) {
    g_autofree char *xml = read_document(file);
    if (xml == NULL)
      return EXIT_FAILURE;
    json_object_set_string_member(arguments, "xml", xml);
  } else {
    json_object_set_string_member(arguments, "alias", alias);
  }
  if (args->wait_s >= 0)
    json_object_set_double_member(arguments, "wait", args->wait_s);
  g_autoptr(JsonNode) value = execute(session, "detach-device", arguments, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (args->json)
    return EXIT_SUCCESS;
  JsonObject *reply = json_node_get_object(value);
  /* a <devices> request answers with each device */
  JsonArray *devices = json_object_has_member(reply, "devices")
      ? json_object_get_array_member(reply, "devices") : NULL;
  gboolean ok = TRUE;
  for (guint i = 0; devices && i < json_array_get_length(devices); i++)
    ok &= print_detached(json_array_get_object_element(devices, i));
  if (devices == NULL)
    ok = print_detached(reply);
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int
cmd_dumpxml(Session *session, const Args *args)
{
  g_autoptr(JsonNode) value = execute(session, "dumpxml", NULL, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (!args->json)
    fputs(json_object_get_string_member_with_default(json_node_get_object(value), "xml", ""),
          stdout);
  return EXIT_SUCCESS;
}

static int
cmd_list(Session *session, const Args *args)
{
  g_autoptr(JsonNode) value = execute(session, "list-devices", NULL, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (args->json)
    return EXIT_SUCCESS;
  JsonArray *devices = json_node_get_array(value);
  printf(" %-12s %-5s %-32s %s\n", "Alias", "Type", "Source", "State");
  printf("-----------------------------------------------------------------\n");
  for (guint i = 0; i < json_array_get_length(devices); i++) {
    JsonObject *device = json_array_get_object_element(devices, i);
    const char *phase = json_object_get_string_member_with_default(device, "phase", NULL);
    printf(" %-12s %-5s %-32s %s%s%s\n",
           json_object_get_string_member_with_default(device, "alias", ""),
           json_object_get_string_member_with_default(device, "type", ""),
           json_object_get_string_member_with_default(device, "source", ""),
           json_object_get_string_member_with_default(device, "state", ""),
           phase ? " — " : "", phase ? phase : "");
  }
  return EXIT_SUCCESS;
}

static int
cmd_version(Session *session, const Args *args)
{
  g_autoptr(JsonNode) value = execute(session, "query-version", NULL, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (!args->json) {
    JsonObject *reply = json_node_get_object(value);
    printf("hostdevctl %s\nhostdevd %s\nQEMU %s\n", HOSTDEVD_VERSION,
           json_object_get_string_member_with_default(reply, "version", "?"),
           json_object_get_string_member_with_default(reply, "qemu", "?"));
  }
  return EXIT_SUCCESS;
}

static int
cmd_events(Session *session, const Args *args)
{
  GSocket *socket = g_socket_connection_get_socket(session->connection);
  g_socket_set_timeout(socket, (guint)args->timeout_s);
  for (;;) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonObject) message = read_message(session, &error);
    if (message == NULL) {
      if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)) {
        if (!args->loop)
          g_printerr("error: no event within %d s\n", args->timeout_s);
        return args->loop ? EXIT_SUCCESS : EXIT_FAILURE;
      }
      g_printerr("error: %s\n", error->message);
      return EXIT_FAILURE;
    }
    if (!json_object_has_member(message, "event"))
      continue;
    print_event(session, message, args->json);
    if (!args->loop)
      return EXIT_SUCCESS;
  }
}

typedef struct {
  const char *verb;
  guint operands;   /* after VM */
} Verb;

int
main(int argc, char **argv)
{
  static const Verb verbs[] = {
    { "attach-device", 1 }, { "detach-device", 1 }, { "detach-device-alias", 1 },
    { "dumpxml", 0 },       { "list", 0 },          { "events", 0 },
    { "version", 0 },
  };
  Args args = { 0 };

  if (hostdevctl_nodedev_handles(argc, argv))
    return hostdevctl_nodedev_main(argc, argv);
  if (!parse_args(argc, argv, &args))
    return EXIT_USAGE;
  g_autoptr(GPtrArray) positional = args.positional;
  if (positional->len == 0) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *verb = positional->pdata[0];
  const Verb *known = NULL;
  for (gsize i = 0; i < G_N_ELEMENTS(verbs); i++)
    if (g_strcmp0(verbs[i].verb, verb) == 0)
      known = &verbs[i];
  if (known == NULL) {
    g_printerr("hostdevctl: unknown command '%s'; see hostdevctl --help\n", verb);
    return EXIT_USAGE;
  }
  if (positional->len != known->operands + 2) {
    g_printerr("hostdevctl: '%s' takes VM%s; see hostdevctl --help\n", verb,
               known->operands ? (g_str_has_suffix(verb, "alias") ? " ALIAS" : " FILE") : "");
    return EXIT_USAGE;
  }
  const char *operand = known->operands ? positional->pdata[2] : NULL;

  int timeout_s = args.timeout_s;
  if (args.wait_s > 0 && timeout_s < (int)args.wait_s + 60)
    timeout_s = (int)args.wait_s + 60;
  g_autoptr(Session) session = session_open(positional->pdata[1], timeout_s);
  if (session == NULL)
    return EXIT_FAILURE;
  g_socket_set_timeout(g_socket_connection_get_socket(session->connection), (guint)timeout_s);

  if (g_strcmp0(verb, "attach-device") == 0)
    return cmd_attach(session, &args, operand);
  if (g_strcmp0(verb, "detach-device") == 0)
    return cmd_detach(session, &args, operand, NULL);
  if (g_strcmp0(verb, "detach-device-alias") == 0)
    return cmd_detach(session, &args, NULL, operand);
  if (g_strcmp0(verb, "dumpxml") == 0)
    return cmd_dumpxml(session, &args);
  if (g_strcmp0(verb, "list") == 0)
    return cmd_list(session, &args);
  if (g_strcmp0(verb, "version") == 0)
    return cmd_version(session, &args);
  return cmd_events(session, &args);
}
