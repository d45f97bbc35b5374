/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdevctl - virsh-like client of hostdevd's control socket
 *
 * Speaks the control protocol synchronously: connect, read the greeting,
 * send one request, print its reply.  Exit status 0 on success, 1 when the
 * request failed (the error's desc on stderr), 2 on a usage error.
 */
#include "config.h"
#include "control-commands.h"
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

static void usage(FILE *out);

typedef struct _Verb Verb;
typedef int (*VerbFunc)(Session *session, const Args *args, const Verb *verb, const char *operand);

/*
 * hostdevctl's verbs (the table is below, by main()).  Each runs one
 * control command; its help is that command's help from the table
 * (control-commands.c), plus what the verb adds.  "events" runs none: it
 * listens.
 */
struct _Verb {
  const char *verb;
  const char *synopsis;       /* after the verb */
  int command;                /* ControlCommandId, or -1 */
  VerbFunc run;
  const char *note;           /* (nullable) more help lines */
  const char *member;         /* cmd_print_text(): the reply's member to print */
};

/* Return: the name of the control command @verb runs. */
static const char *verb_command(const Verb *verb);

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

/* Return: (transfer full): " [what]" naming the steps of @step's @member
 * ("together", "after"), or "" when it has none. */
static char *
step_numbers(JsonObject *step, const char *member, const char *what)
{
  JsonArray *numbers = json_object_has_member(step, member)
      ? json_object_get_array_member(step, member) : NULL;
  if (numbers == NULL || json_array_get_length(numbers) == 0)
    return g_strdup("");
  GString *text = g_string_new(NULL);
  guint count = json_array_get_length(numbers);
  g_string_append_printf(text, " [%s step%s", what, count == 1 ? "" : "s");
  for (guint i = 0; i < count; i++)
    g_string_append_printf(text, "%s%" G_GINT64_FORMAT, i == 0 ? " " : ", ",
                           json_array_get_int_element(numbers, i));
  g_string_append_c(text, ']');
  return g_string_free(text, FALSE);
}

/* A dry run's plan: each step as a "# step: what" line (saying which steps
 * run at the same time, and which of those it waits for), then the QMP it
 * sends. */
static void
print_plan(JsonObject *reply)
{
  JsonArray *plan = json_object_get_array_member(reply, "plan");
  for (guint i = 0; plan && i < json_array_get_length(plan); i++) {
    JsonObject *step = json_array_get_object_element(plan, i);
    g_autofree char *together = step_numbers(step, "together", "runs together with");
    g_autofree char *after = step_numbers(step, "after", "after");
    printf("# %s: %s%s%s\n", json_object_get_string_member_with_default(step, "step", "?"),
           json_object_get_string_member_with_default(step, "what", ""), together, after);
    if (json_object_has_member(step, "qmp"))
      print_json_line(json_object_get_object_member(step, "qmp"));
  }
}

/* Return: whether @print returned TRUE for every device of @reply: a <devices>
 * request answers with each device in "devices", a single one with itself. */
static gboolean
each_device(JsonObject *reply, gboolean (*print)(JsonObject *device))
{
  JsonArray *devices = json_object_has_member(reply, "devices")
      ? json_object_get_array_member(reply, "devices") : NULL;
  if (devices == NULL)
    return print(reply);
  gboolean ok = TRUE;
  for (guint i = 0; i < json_array_get_length(devices); i++)
    ok &= print(json_array_get_object_element(devices, i));
  return ok;
}

static gboolean
print_attached(JsonObject *device)
{
  const char *alias = json_object_get_string_member_with_default(device, "alias", "?");
  if (g_strcmp0(json_object_get_string_member_with_default(device, "state", NULL),
                "waiting-for-device") == 0)
    printf("Device %s is not on the host: it is the VM's, waiting, and is attached when it "
           "appears\n", alias);
  else
    printf("Device attached successfully as %s\n", alias);
  return TRUE;
}

static int
cmd_attach(Session *session, const Args *args, const Verb *verb, const char *file)
{
  g_autofree char *xml = read_document(file);
  if (xml == NULL)
    return EXIT_FAILURE;
  g_autoptr(JsonObject) arguments = json_object_new();
  json_object_set_string_member(arguments, "xml", xml);
  if (args->dry_run)
    json_object_set_boolean_member(arguments, "dry-run", TRUE);
  g_autoptr(JsonNode) value = execute(session, verb_command(verb), arguments, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (args->json)
    return EXIT_SUCCESS;
  JsonObject *reply = json_node_get_object(value);
  if (args->dry_run) {
    print_plan(reply);
    return EXIT_SUCCESS;
  }
  return each_device(reply, print_attached) ? EXIT_SUCCESS : EXIT_FAILURE;
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
cmd_detach_by(Session *session, const Args *args, const Verb *verb, const char *file,
              const char *alias)
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
  g_autoptr(JsonNode) value = execute(session, verb_command(verb), arguments, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (args->json)
    return EXIT_SUCCESS;
  return each_device(json_node_get_object(value), print_detached) ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The reply's one text member (the verb's "member"), printed as it is. */
static int
cmd_print_text(Session *session, const Args *args, const Verb *verb, const char *operand)
{
  g_autoptr(JsonNode) value = execute(session, verb_command(verb), NULL, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (!args->json)
    fputs(json_object_get_string_member_with_default(json_node_get_object(value), verb->member,
                                                     ""),
          stdout);
  return EXIT_SUCCESS;
}

static int
cmd_list(Session *session, const Args *args, const Verb *verb, const char *operand)
{
  g_autoptr(JsonNode) value = execute(session, verb_command(verb), NULL, args->json);
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
cmd_version(Session *session, const Args *args, const Verb *verb, const char *operand)
{
  g_autoptr(JsonNode) value = execute(session, verb_command(verb), NULL, args->json);
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
cmd_events(Session *session, const Args *args, const Verb *verb, const char *operand)
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

static int
cmd_detach(Session *session, const Args *args, const Verb *verb, const char *file)
{
  return cmd_detach_by(session, args, verb, file, NULL);
}

static int
cmd_detach_alias(Session *session, const Args *args, const Verb *verb, const char *alias)
{
  return cmd_detach_by(session, args, verb, NULL, alias);
}

/* What hostdevd says it understands: its own table, which may be newer than ours. */
static int
cmd_commands(Session *session, const Args *args, const Verb *verb, const char *operand)
{
  g_autoptr(JsonNode) value = execute(session, verb_command(verb), NULL, args->json);
  if (value == NULL)
    return EXIT_FAILURE;
  if (args->json)
    return EXIT_SUCCESS;
  JsonObject *reply = json_node_get_object(value);
  JsonArray *commands = json_object_get_array_member(reply, "commands");
  for (guint i = 0; commands && i < json_array_get_length(commands); i++) {
    JsonObject *command = json_array_get_object_element(commands, i);
    JsonArray *arguments = json_object_get_array_member(command, "arguments");
    g_autoptr(GString) list = g_string_new(NULL);
    for (guint a = 0; arguments && a < json_array_get_length(arguments); a++) {
      JsonObject *argument = json_array_get_object_element(arguments, a);
      g_string_append_printf(list, " %s:%s(%s)",
                             json_object_get_string_member_with_default(argument, "name", "?"),
                             json_object_get_string_member_with_default(argument, "type", "?"),
                             json_object_get_string_member_with_default(argument, "presence", "?"));
    }
    printf("%-16s %-4s %s\n%18s%s\n",
           json_object_get_string_member_with_default(command, "name", "?"),
           json_object_get_string_member_with_default(command, "access", "?"),
           json_object_get_string_member_with_default(command, "help", ""), "",
           list->len ? list->str : " (no arguments)");
  }
  return EXIT_SUCCESS;
}


static const Verb verbs[] = {
  { "attach-device", "VM FILE [--dry-run]", CONTROL_COMMAND_ATTACH_DEVICE, cmd_attach,
    "FILE holds a <hostdev> ('-' = stdin), or a <devices> element; --dry-run prints\n"
    "the plan: its steps as '# step: what' lines, each QMP command as JSON" },
  { "detach-device", "VM FILE [--wait S]", CONTROL_COMMAND_DETACH_DEVICE, cmd_detach,
    "the devices FILE's <hostdev> (or <devices>) names" },
  { "detach-device-alias", "VM ALIAS [--wait S]", CONTROL_COMMAND_DETACH_DEVICE,
    cmd_detach_alias, "the device by its alias" },
  { "dumpxml", "VM", CONTROL_COMMAND_DUMPXML, cmd_print_text, NULL, "xml" },
  { "list", "VM", CONTROL_COMMAND_LIST_DEVICES, cmd_list, NULL },
  { "events", "VM [--loop] [--timeout S]", -1, cmd_events, NULL },
  { "version", "VM", CONTROL_COMMAND_QUERY_VERSION, cmd_version, NULL },
  { "metrics", "VM", CONTROL_COMMAND_QUERY_METRICS, cmd_print_text,
    "Prometheus text format, e.g. for node_exporter's textfile collector", "text" },
  { "commands", "VM", CONTROL_COMMAND_QUERY_COMMANDS, cmd_commands, NULL },
};

static const char *
verb_command(const Verb *verb)
{
  return control_command_get(verb->command)->name;
}

/* Return: how many words follow VM in @verb's synopsis (FILE, ALIAS). */
static guint
verb_operands(const Verb *verb)
{
  g_auto(GStrv) words = g_strsplit(verb->synopsis, " ", -1);
  guint n = 0;
  for (guint i = 1; words[i] && words[i][0] != '['; i++)
    n++;
  return n;
}

static void
print_help_lines(FILE *out, const char *text)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    fprintf(out, "%6s%s\n", "", lines[i]);
}

static void
usage(FILE *out)
{
  fprintf(out, "Usage: hostdevctl [--json] VERB VM [ARGS]\n\n");
  for (gsize i = 0; i < G_N_ELEMENTS(verbs); i++) {
    const Verb *verb = &verbs[i];
    fprintf(out, "  %s %s\n", verb->verb, verb->synopsis);
    if (verb->command >= 0) {
      print_help_lines(out, control_command_get(verb->command)->help);
    } else {
      gsize n;
      const ControlEvent *events = control_events(&n);
      g_autoptr(GString) names = g_string_new("print device events as they come:");
      for (gsize e = 0; e < n; e++)
        g_string_append_printf(names, "%s%s", e ? ", " : " ", events[e].name);
      print_help_lines(out, names->str);
    }
    if (verb->note)
      print_help_lines(out, verb->note);
  }
  fprintf(out,
          "\n"
          "VM is a VM name (socket $HOSTDEVD_RUNTIME_DIR/VM.sock, default %s)\n"
          "or a socket path containing '/'.\n"
          "--json prints hostdevd's raw JSON replies, one per line.\n"
          "Exit status: 0 success, 1 the request failed, 2 usage error.\n"
          "\n%s",
          HOSTDEVD_RUNTIME_DIR, hostdevctl_nodedev_usage());
}

int
main(int argc, char **argv)
{
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
  const char *name = positional->pdata[0];
  const Verb *verb = NULL;
  for (gsize i = 0; i < G_N_ELEMENTS(verbs); i++)
    if (g_strcmp0(verbs[i].verb, name) == 0)
      verb = &verbs[i];
  if (verb == NULL) {
    g_printerr("hostdevctl: unknown command '%s'; see hostdevctl --help\n", name);
    return EXIT_USAGE;
  }
  guint operands = verb_operands(verb);
  if (positional->len != operands + 2) {
    g_printerr("hostdevctl: usage: hostdevctl %s %s\n", verb->verb, verb->synopsis);
    return EXIT_USAGE;
  }
  const char *operand = operands ? positional->pdata[2] : NULL;

  int timeout_s = args.timeout_s;
  if (args.wait_s > 0 && timeout_s < (int)args.wait_s + 60)
    timeout_s = (int)args.wait_s + 60;
  g_autoptr(Session) session = session_open(positional->pdata[1], timeout_s);
  if (session == NULL)
    return EXIT_FAILURE;
  g_socket_set_timeout(g_socket_connection_get_socket(session->connection), (guint)timeout_s);
  return verb->run(session, &args, verb, operand);
}
