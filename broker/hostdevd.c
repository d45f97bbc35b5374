/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdevd - per-VM broker that hot-plugs host devices into a running QEMU
 *
 * Start-up: options → the journal → give back what a QEMU that died while
 * no hostdevd ran still had (its pid and start time are in the journal) →
 * tell systemd we are ready → connect QMP (waiting, bounded, for QEMU to
 * create the socket) → check the peer, drop privileges, load the seccomp
 * filter → negotiate → reconcile the journal with QEMU →
 * listen on the control socket → main loop.  Ready comes before QEMU so
 * that the unit can be ordered before the VM's: then systemd stops QEMU
 * first and hostdevd sees it go.
 *
 * Stopping: when QEMU goes away every device is given back and hostdevd
 * exits 0.  SIGTERM while QEMU runs leaves the devices in the VM (a new
 * hostdevd takes them over); SIGTERM while devices are being given back
 * (QEMU is gone) lets those releases finish first, for at most
 * TERMINATE_RELEASE_WAIT_S.
 */
#include "config.h"
#include "control.h"
#include "control-proto.h"
#include "host-root.h"
#include "hostdev.h"
#include "hostdevd-error.h"
#include "hotplug.h"
#include "policy.h"
#include "qmp-client.h"
#include "sandbox.h"
#include "state.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
  char *vm;
  char *qmp_path;
  char *socket_path;
  char *state_dir;
  char *host_root;
  char *qemu_user;
  char *sandbox;
  SandboxMode sandbox_mode;   /* --sandbox, default on */
  char *policy_path;          /* --policy, default POLICY_DEFAULT_PATH if it exists */
  int qmp_wait_s;
  gboolean verbose;
} Options;

/* How long a SIGTERM waits for releases of a QEMU that is gone (systemd's stop timeout is 90 s). */
#define TERMINATE_RELEASE_WAIT_S 45

typedef struct {
  Options options;
  GMainLoop *loop;
  gboolean releasing_all;     /* QEMU is gone: every device is being given back */
  gboolean terminating;       /* SIGTERM came: quit once the releases are over */
  int exit_status;
  QmpClient *qmp;
  Hotplug *hotplug;
  StateJournal *journal;
  Policy *policy;
  ControlServer *control;
} Daemon;

/* notify_systemd() - sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void
notify_systemd(const char *state)
{
  const char *path = g_getenv("NOTIFY_SOCKET");
  struct sockaddr_un address = { .sun_family = AF_UNIX };

  if (path == NULL || (path[0] != '/' && path[0] != '@') ||
      strlen(path) >= sizeof address.sun_path)
    return;
  strncpy(address.sun_path, path, sizeof address.sun_path - 1);
  socklen_t length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
  if (path[0] == '@')
    address.sun_path[0] = '\0';
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&address, length) < 0)
    g_debug("sd_notify failed: %s", g_strerror(errno));
  close(fd);
}

static void
daemon_quit(Daemon *daemon, int status)
{
  daemon->exit_status = status;
  g_main_loop_quit(daemon->loop);
}

/* ---- control requests --------------------------------------------------- */

static void
return_node_from_result(GTask *task, JsonNode *value, GError *error)
{
  if (error)
    g_task_return_error(task, error);
  else
    g_task_return_pointer(task, value, (GDestroyNotify)json_node_unref);
  g_object_unref(task);
}

static void
on_attach_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = g_task_get_task_data(G_TASK(user_data));
  GError *error = NULL;
  JsonNode *value = hotplug_attach_finish(daemon->hotplug, result, &error);
  return_node_from_result(user_data, value, error);
}

static void
on_detach_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = g_task_get_task_data(G_TASK(user_data));
  GError *error = NULL;
  JsonNode *value = hotplug_detach_finish(daemon->hotplug, result, &error);
  return_node_from_result(user_data, value, error);
}

/* Return: FALSE with @error when @arguments has a member not in @allowed. */
static gboolean
check_arguments(const char *command, JsonObject *arguments, const char *const *allowed,
                GError **error)
{
  JsonObjectIter iter;
  const char *member;

  json_object_iter_init(&iter, arguments);
  while (json_object_iter_next(&iter, &member, NULL)) {
    if (!g_strv_contains(allowed, member)) {
      g_autofree char *list = g_strjoinv(", ", (char **)allowed);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "'%s' takes no argument '%s' (it takes: %s)", command, member,
                  *allowed ? list : "none");
      return FALSE;
    }
  }
  return TRUE;
}

/* Return: the string member @name, NULL when absent; FALSE in @ok when it is not a string. */
static const char *
string_argument(JsonObject *arguments, const char *name, gboolean *ok, GError **error)
{
  JsonNode *node = json_object_get_member(arguments, name);
  if (node == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "argument '%s' must be a string", name);
    *ok = FALSE;
    return NULL;
  }
  return json_node_get_string(node);
}

static void
dispatch_attach(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  static const char *const allowed[] = { "xml", "dry-run", NULL };
  GError *error = NULL;
  gboolean ok = TRUE;

  if (!check_arguments("attach-device", arguments, allowed, &error)) {
    return_node_from_result(task, NULL, error);
    return;
  }
  const char *xml = string_argument(arguments, "xml", &ok, &error);
  if (!ok) {
    return_node_from_result(task, NULL, error);
    return;
  }
  if (xml == NULL) {
    return_node_from_result(task, NULL,
                            g_error_new_literal(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                                "'attach-device' needs the argument 'xml' "
                                                "holding one <hostdev> element"));
    return;
  }
  JsonNode *dry_run = json_object_get_member(arguments, "dry-run");
  if (dry_run && (!JSON_NODE_HOLDS_VALUE(dry_run) ||
                  json_node_get_value_type(dry_run) != G_TYPE_BOOLEAN)) {
    return_node_from_result(task, NULL,
                            g_error_new_literal(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                                "argument 'dry-run' must be true or false"));
    return;
  }
  hotplug_attach_async(daemon->hotplug, xml, dry_run && json_node_get_boolean(dry_run),
                       on_attach_done, task);
}

static void
dispatch_detach(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  static const char *const allowed[] = { "xml", "alias", "wait", NULL };
  GError *error = NULL;
  gboolean ok = TRUE;

  if (!check_arguments("detach-device", arguments, allowed, &error)) {
    return_node_from_result(task, NULL, error);
    return;
  }
  const char *xml = string_argument(arguments, "xml", &ok, &error);
  const char *alias = ok ? string_argument(arguments, "alias", &ok, &error) : NULL;
  if (!ok) {
    return_node_from_result(task, NULL, error);
    return;
  }
  if ((xml == NULL) == (alias == NULL)) {
    return_node_from_result(task, NULL,
                            g_error_new_literal(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                                "'detach-device' needs exactly one of 'xml' "
                                                "(a <hostdev> to match) or 'alias'"));
    return;
  }
  guint wait_ms = HOTPLUG_DEFAULT_DETACH_WAIT_MS;
  JsonNode *wait = json_object_get_member(arguments, "wait");
  if (wait) {
    GType type = JSON_NODE_HOLDS_VALUE(wait) ? json_node_get_value_type(wait) : G_TYPE_INVALID;
    double seconds = type == G_TYPE_INT64 ? (double)json_node_get_int(wait)
                     : type == G_TYPE_DOUBLE ? json_node_get_double(wait) : -1;
    if (seconds < 0 || seconds > 3600) {
      return_node_from_result(task, NULL,
                              g_error_new_literal(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                                  "argument 'wait' must be a number of "
                                                  "seconds from 0 to 3600"));
      return;
    }
    wait_ms = (guint)(seconds * 1000);
  }
  hotplug_detach_async(daemon->hotplug, xml, alias, wait_ms, on_detach_done, task);
}

static void
dispatch_list(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  return_node_from_result(task, hotplug_list(daemon->hotplug), NULL);
}

static void
dispatch_dumpxml(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  g_autoptr(JsonObject) reply = json_object_new();
  g_autofree char *xml = hotplug_dumpxml(daemon->hotplug);
  json_object_set_string_member(reply, "xml", xml);
  return_node_from_result(task, json_node_init_object(json_node_alloc(), reply), NULL);
}

static void
dispatch_version(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  g_autoptr(JsonObject) reply = json_object_new();
  json_object_set_string_member(reply, "version", HOSTDEVD_VERSION);
  json_object_set_string_member(reply, "vm", daemon->options.vm);
  json_object_set_string_member(reply, "qemu", qmp_client_get_qemu_version(daemon->qmp));
  return_node_from_result(task, json_node_init_object(json_node_alloc(), reply), NULL);
}

typedef void (*CommandFunc)(Daemon *daemon, JsonObject *arguments, GTask *task);

static const struct {
  const char *name;
  CommandFunc run;
  gboolean takes_arguments;   /* FALSE: any argument is an error */
} commands[] = {
  { "attach-device", dispatch_attach, TRUE },
  { "detach-device", dispatch_detach, TRUE },
  { "list-devices", dispatch_list, FALSE },
  { "dumpxml", dispatch_dumpxml, FALSE },
  { "query-version", dispatch_version, FALSE },
};

static void
dispatch(const char *command, JsonObject *arguments, GTask *task, gpointer user_data)
{
  static const char *const none[] = { NULL };
  Daemon *daemon = user_data;
  GError *error = NULL;

  g_task_set_task_data(task, daemon, NULL);
  g_object_ref(task);   /* return_node_from_result() drops this one */

  for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
    if (g_strcmp0(commands[i].name, command) != 0)
      continue;
    if (!commands[i].takes_arguments && !check_arguments(command, arguments, none, &error))
      return_node_from_result(task, NULL, error);
    else
      commands[i].run(daemon, arguments, task);
    return;
  }
  return_node_from_result(task, NULL,
                          g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                      "unknown command '%s'; commands are attach-device, "
                                      "detach-device, list-devices, dumpxml, query-version",
                                      command));
}

/* ---- QEMU --------------------------------------------------------------- */

static void
on_hotplug_event(const char *name, JsonObject *data, gpointer user_data)
{
  Daemon *daemon = user_data;
  if (daemon->control)
    control_server_emit_event(daemon->control, name, data);
}

static void
on_released_all(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = user_data;
  g_autoptr(GError) error = NULL;
  if (!hotplug_release_all_finish(daemon->hotplug, result, &error))
    g_warning("%s", error->message);
  daemon_quit(daemon, EXIT_SUCCESS);
}

/* release_all() - QEMU is gone: give every device back, then exit 0. */
static void
release_all(Daemon *daemon, const char *why)
{
  if (daemon->releasing_all)
    return;
  daemon->releasing_all = TRUE;
  g_message("%s; giving every device back to the host", why);
  hotplug_release_all_async(daemon->hotplug, on_released_all, daemon);
}

static void
on_qmp_closed(QmpClient *qmp, const GError *reason, gpointer user_data)
{
  Daemon *daemon = user_data;
  g_autofree char *why = g_strdup_printf("QEMU went away (%s)",
                                         reason ? reason->message : "connection closed");
  release_all(daemon, why);
}

/*
 * sandbox_before_qemu_speaks() - QEMU is connected and nothing of it is
 * read yet: connecting may have needed CAP_DAC_OVERRIDE (QEMU's user owns
 * the socket), nothing after does.  Privileges go and the seccomp filter
 * is loaded now, so QEMU's greeting, replies and events (untrusted: a
 * guest may own its QEMU) and the journal's replay are handled sandboxed.
 */
static gboolean
sandbox_before_qemu_speaks(Daemon *daemon, GError **error)
{
  return sandbox_drop_privileges(daemon->options.sandbox_mode, error) &&
         sandbox_lock(daemon->options.sandbox_mode, error);
}

/*
 * qmp_peer_allowed() - whoever listens on --qmp is given /dev/vfio/N, USB
 * descriptors and a memlock raise, so it must be QEMU's user: root (also a
 * QEMU that listened before dropping to -runas's user), the user hostdevd
 * runs as, or --qemu-user.  Checked before anything of the peer is read.
 */
static gboolean
qmp_peer_allowed(pid_t pid, uid_t uid, gpointer user_data, GError **error)
{
  Daemon *daemon = user_data;
  const char *name = daemon->options.qemu_user;
  struct passwd *pw = name ? getpwnam(name) : NULL;
  g_autofree char *expected = NULL;

  if (uid != (uid_t)-1 && (uid == 0 || uid == getuid() || (pw && uid == pw->pw_uid)))
    return sandbox_before_qemu_speaks(daemon, error);
  if (pw)
    expected = g_strdup_printf("uid %u (--qemu-user %s) or root", (unsigned)pw->pw_uid, name);
  else if (getuid() != 0)
    expected = g_strdup_printf("root or hostdevd's own uid %u; if QEMU runs as another "
                               "user, start hostdevd with --qemu-user USER",
                               (unsigned)getuid());
  else
    expected = g_strdup("root; if QEMU runs as another user, start hostdevd with "
                        "--qemu-user USER");
  g_autofree char *actual = uid == (uid_t)-1 ? g_strdup("of unknown uid")
                                             : g_strdup_printf("uid %u", (unsigned)uid);
  g_set_error(error, QMP_ERROR, QMP_ERROR_PEER,
              "refusing the QMP peer at %s: the process listening there (pid %d) is %s, "
              "but QEMU is expected to run as %s; nothing was handed to it",
              daemon->options.qmp_path, (int)pid, actual, expected);
  return FALSE;
}

static void on_reconciled(GObject *source, GAsyncResult *result, gpointer user_data);
static void on_qmp_connected(GObject *source, GAsyncResult *result, gpointer user_data);

/* The devices of a QEMU that died unseen are back: now wait for the VM's QEMU. */
static void
on_orphans_released(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = user_data;
  g_autoptr(GError) error = NULL;

  if (!hotplug_release_orphans_finish(daemon->hotplug, result, &error))
    g_warning("%s", error->message);
  if (daemon->terminating) {
    daemon_quit(daemon, EXIT_SUCCESS);
    return;
  }
  notify_systemd("READY=1\nSTATUS=waiting for QEMU's QMP socket");
  qmp_client_connect_checked_async(daemon->options.qmp_path,
                                   (guint)daemon->options.qmp_wait_s * 1000, qmp_peer_allowed,
                                   daemon, NULL, on_qmp_connected, daemon);
}

/* qemu_user() - who gets /dev/vfio/N: --qemu-user, else the user QEMU runs as (SO_PEERCRED). */
static void
qemu_user(Daemon *daemon, uid_t *uid, gid_t *gid)
{
  const char *name = daemon->options.qemu_user;
  struct passwd *pw = name ? getpwnam(name) : NULL;

  *uid = (uid_t)-1;
  *gid = (gid_t)-1;
  if (pw == NULL && name == NULL) {
    uid_t peer = qmp_client_get_peer_uid(daemon->qmp);
    if (peer != (uid_t)-1 && (pw = getpwuid(peer)) == NULL) {
      *uid = peer;
      *gid = (gid_t)peer;
      return;
    }
  }
  if (pw) {
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
  }
}
static gboolean start_serving_sandboxed(Daemon *daemon, GError **error);

static void
on_qmp_connected(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = user_data;
  Options *options = &daemon->options;
  g_autoptr(GError) error = NULL;

  daemon->qmp = qmp_client_connect_finish(result, &error);
  if (daemon->qmp == NULL) {
    g_printerr("hostdevd: %s\n", error->message);
    daemon_quit(daemon, EXIT_FAILURE);
    return;
  }
  g_message("connected to QEMU %s (pid %d) at %s", qmp_client_get_qemu_version(daemon->qmp),
            (int)qmp_client_get_peer_pid(daemon->qmp), options->qmp_path);
  /* sandboxed already: sandbox_before_qemu_speaks() */
  uid_t uid;
  gid_t gid;
  qemu_user(daemon, &uid, &gid);
  hotplug_set_qemu_user(daemon->hotplug, uid, gid);
  hotplug_connect_qemu(daemon->hotplug, daemon->qmp, qmp_client_get_peer_pid(daemon->qmp));
  g_signal_connect(daemon->qmp, "closed", G_CALLBACK(on_qmp_closed), daemon);
  hotplug_reconcile_async(daemon->hotplug, on_reconciled, daemon);
}

static void
on_reconciled(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = user_data;
  Options *options = &daemon->options;
  g_autoptr(GError) error = NULL;

  if (!hotplug_reconcile_finish(daemon->hotplug, result, &error)) {
    g_printerr("hostdevd: %s\n", error->message);
    daemon_quit(daemon, EXIT_FAILURE);
    return;
  }
  daemon->control = control_server_new(options->socket_path, options->vm, daemon->policy,
                                       dispatch, daemon, &error);
  if (daemon->control == NULL) {
    g_printerr("hostdevd: %s\n", error->message);
    daemon_quit(daemon, EXIT_FAILURE);
    return;
  }
  g_message("VM '%s': control socket %s ready", options->vm, options->socket_path);
  if (!start_serving_sandboxed(daemon, &error)) {
    g_printerr("hostdevd: %s\n", error->message);
    daemon_quit(daemon, EXIT_FAILURE);
    return;
  }
  notify_systemd("STATUS=serving");
}

/* ---- policy and sandbox (broker/sandbox.c has the plan) ------------------ */

/* Return: (transfer full): --policy FILE, else POLICY_DEFAULT_PATH if it exists,
 * else the built-in default; NULL with @error when a file is not a valid policy. */
static Policy *
load_policy(const Options *options, GError **error)
{
  const char *path = options->policy_path;
  if (path == NULL && g_file_test(POLICY_DEFAULT_PATH, G_FILE_TEST_EXISTS))
    path = POLICY_DEFAULT_PATH;
  if (path == NULL)
    return policy_new_default(getuid());
  Policy *policy = policy_load(path, getuid(), error);
  if (policy)
    g_message("policy: %s", path);
  return policy;
}

/*
 * start_serving_sandboxed() - the sockets are set up: give the control
 * socket its group before serving (privileges were dropped and the
 * seccomp filter loaded once QMP was connected, before QEMU was read)
 */
static gboolean
start_serving_sandboxed(Daemon *daemon, GError **error)
{
  Options *options = &daemon->options;
  gid_t group;

  if (policy_socket_group(daemon->policy, options->vm, &group) &&
      chown(options->socket_path, (uid_t)-1, group) != 0) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot give the control socket %s to group %u (socket-group in %s): %s",
                options->socket_path, (unsigned)group, policy_get_origin(daemon->policy),
                g_strerror(saved));
    return FALSE;
  }
  if (options->sandbox_mode == SANDBOX_OFF)
    g_message("sandbox: off (--sandbox off); hostdevd keeps every privilege it started with");
  return TRUE;
}

static void
on_drained(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Daemon *daemon = user_data;
  g_message("the releases in progress are finished; exiting");
  daemon_quit(daemon, EXIT_SUCCESS);
}

static gboolean
on_terminate_timeout(gpointer user_data)
{
  Daemon *daemon = user_data;
  g_warning("exiting with %u release(s) unfinished after %d s; their journal records "
            "stay, and the next hostdevd of this VM finishes them",
            hotplug_releases_running(daemon->hotplug), TERMINATE_RELEASE_WAIT_S);
  daemon_quit(daemon, EXIT_SUCCESS);
  return G_SOURCE_REMOVE;
}

/*
 * on_terminate() - SIGTERM/SIGINT.  Devices stay in a running VM (a
 * restarted hostdevd takes them over).  When QEMU is gone — systemd stops
 * the VM's QEMU before this unit, and its exit may not have been read from
 * the QMP socket yet — its devices are given back before exiting, and a
 * release already running is never cut short half-way (unbound from
 * vfio-pci but not yet probed by its own driver): both within a bound.
 */
static gboolean
on_terminate(gpointer user_data)
{
  Daemon *daemon = user_data;
  Hotplug *hotplug = daemon->hotplug;

  if (daemon->terminating) {
    g_message("second signal: exiting now");
    daemon_quit(daemon, EXIT_SUCCESS);
    return G_SOURCE_CONTINUE;
  }
  daemon->terminating = TRUE;
  if (hotplug && daemon->qmp && hotplug_get_qemu(hotplug)->pid > 0 &&
      !process_identity_alive(hotplug_get_qemu(hotplug)))
    release_all(daemon, "terminating, and QEMU has exited");
  if (hotplug == NULL || hotplug_releases_running(hotplug) == 0) {
    g_message("terminating on signal; attached devices stay with the VM");
    daemon_quit(daemon, EXIT_SUCCESS);
    return G_SOURCE_CONTINUE;
  }
  g_message("terminating on signal once %u device release(s) in progress finish "
            "(at most %d s)", hotplug_releases_running(hotplug), TERMINATE_RELEASE_WAIT_S);
  hotplug_drain_async(hotplug, on_drained, daemon);
  g_timeout_add_seconds(TERMINATE_RELEASE_WAIT_S, on_terminate_timeout, daemon);
  return G_SOURCE_CONTINUE;
}

/* ---- options ------------------------------------------------------------ */

static gboolean
parse_options(Options *options, int *argc, char ***argv, GError **error)
{
  g_autofree char *qmp_wait_help = g_strdup("Seconds to wait for the QMP socket (default 30)");
  GOptionEntry entries[] = {
    { "vm", 0, 0, G_OPTION_ARG_STRING, &options->vm, "Name of the VM (required)", "NAME" },
    { "qmp", 0, 0, G_OPTION_ARG_FILENAME, &options->qmp_path, "QEMU's QMP socket (required)", "PATH" },
    { "socket", 0, 0, G_OPTION_ARG_FILENAME, &options->socket_path,
      "Control socket (default: $HOSTDEVD_RUNTIME_DIR or " HOSTDEVD_RUNTIME_DIR ", /NAME.sock)", "PATH" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &options->state_dir,
      "Directory of this VM's state (default: the runtime directory)", "DIR" },
    { "host-root", 0, 0, G_OPTION_ARG_FILENAME, &options->host_root,
      "Read DIR/sys and DIR/dev instead of /sys and /dev", "DIR" },
    { "qemu-user", 0, 0, G_OPTION_ARG_STRING, &options->qemu_user,
      "User QEMU runs as (default: the QMP peer's user)", "USER" },
    { "sandbox", 0, 0, G_OPTION_ARG_STRING, &options->sandbox,
      "Sandbox: on (default), log (log forbidden syscalls instead of dying) or off", "MODE" },
    { "policy", 0, 0, G_OPTION_ARG_FILENAME, &options->policy_path,
      "Policy file (default: " POLICY_DEFAULT_PATH " if it exists)", "FILE" },
    { "qmp-wait", 0, 0, G_OPTION_ARG_INT, &options->qmp_wait_s, qmp_wait_help, "SECONDS" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &options->verbose, "Log debug messages", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new("- hot-plug host devices into a running QEMU");

  options->qmp_wait_s = 30;
  g_option_context_add_main_entries(context, entries, NULL);
  if (!g_option_context_parse(context, argc, argv, error))
    return FALSE;
  if (*argc > 1) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "unexpected argument '%s'", (*argv)[1]);
    return FALSE;
  }
  if (options->vm == NULL) {
    g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--vm NAME is required");
    return FALSE;
  }
  if (!control_vm_name_is_valid(options->vm)) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--vm '%s' is not a valid name: use 1-64 letters, digits, '-', '_' or '.', "
                "not starting with '.'", options->vm);
    return FALSE;
  }
  if (options->qmp_path == NULL) {
    g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--qmp PATH is required: QEMU's -qmp unix:PATH,server=on,wait=off socket");
    return FALSE;
  }
  if (!sandbox_mode_parse(options->sandbox ? options->sandbox : "on", &options->sandbox_mode,
                          error))
    return FALSE;
  if (options->qmp_wait_s < 0 || options->qmp_wait_s > 3600) {
    g_set_error_literal(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "--qmp-wait must be 0 to 3600 seconds");
    return FALSE;
  }
  if (options->qemu_user && getpwnam(options->qemu_user) == NULL) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--qemu-user '%s' is not a user of this host", options->qemu_user);
    return FALSE;
  }
  if (options->host_root && !g_file_test(options->host_root, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--host-root '%s' is not a directory", options->host_root);
    return FALSE;
  }
  return TRUE;
}

static void
options_free(Options *options)
{
  g_free(options->vm);
  g_free(options->qmp_path);
  g_free(options->socket_path);
  g_free(options->state_dir);
  g_free(options->host_root);
  g_free(options->qemu_user);
  g_free(options->sandbox);
  g_free(options->policy_path);
}

/* Return: FALSE with @error when @dir cannot be created. */
static gboolean
ensure_directory(const char *dir, const char *what, GError **error)
{
  if (g_mkdir_with_parents(dir, 0755) != 0) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot create the %s %s: %s", what, dir, g_strerror(saved));
    return FALSE;
  }
  return TRUE;
}

int
main(int argc, char **argv)
{
  Daemon daemon = { .exit_status = EXIT_SUCCESS };
  Options *options = &daemon.options;
  g_autoptr(GError) error = NULL;

  sandbox_early();   /* before anything opens a descriptor */
  if (!parse_options(options, &argc, &argv, &error)) {
    g_printerr("hostdevd: %s\n", error->message);
    options_free(options);
    return 2;
  }
  if (options->verbose)
    g_log_set_debug_enabled(TRUE);
  /* before anything uses GTask, which starts GLib's worker thread */
  if (!sandbox_prepare_threads(options->sandbox_mode, &error)) {
    g_printerr("hostdevd: %s\n", error->message);
    return EXIT_FAILURE;
  }
  if (options->socket_path == NULL)
    options->socket_path = control_socket_path_for_vm(options->vm);
  if (options->state_dir == NULL)
    options->state_dir = g_strdup(control_runtime_dir());
  g_autofree char *socket_dir = g_path_get_dirname(options->socket_path);
  if (!ensure_directory(socket_dir, "control socket directory", &error) ||
      !ensure_directory(options->state_dir, "state directory", &error)) {
    g_printerr("hostdevd: %s\n", error->message);
    return EXIT_FAILURE;
  }
  /* Fail fast: QEMU would not even greet a second QMP client. */
  if (!control_check_socket_free(options->socket_path, &error)) {
    g_printerr("hostdevd: %s\n", error->message);
    return EXIT_FAILURE;
  }
  host_root_set(options->host_root);
  daemon.journal = state_journal_open(options->state_dir, options->vm, &error);
  if (daemon.journal == NULL) {
    g_printerr("hostdevd: %s\n", error->message);
    return EXIT_FAILURE;
  }

  daemon.loop = g_main_loop_new(NULL, FALSE);
  daemon.policy = load_policy(options, &error);
  if (daemon.policy == NULL) {
    g_printerr("hostdevd: %s\n", error->message);
    return EXIT_FAILURE;
  }
  g_unix_signal_add(SIGTERM, on_terminate, &daemon);
  g_unix_signal_add(SIGINT, on_terminate, &daemon);

  HotplugConfig config = {
    .vm = options->vm,
    .runtime_dir = control_runtime_dir(),
    .qemu_uid = (uid_t)-1,
    .qemu_gid = (gid_t)-1,
    .policy = daemon.policy,
  };
  daemon.hotplug = hotplug_new(NULL, daemon.journal, &config, on_hotplug_event, &daemon);
  hotplug_release_orphans_async(daemon.hotplug, on_orphans_released, &daemon);
  g_main_loop_run(daemon.loop);

  notify_systemd("STOPPING=1");
  g_clear_pointer(&daemon.control, control_server_free);
  g_clear_pointer(&daemon.hotplug, hotplug_free);
  if (daemon.qmp) {
    g_signal_handlers_disconnect_by_data(daemon.qmp, &daemon);
    qmp_client_close(daemon.qmp);
    g_clear_object(&daemon.qmp);
  }
  g_clear_pointer(&daemon.policy, policy_free);
  g_clear_pointer(&daemon.journal, state_journal_free);
  g_main_loop_unref(daemon.loop);
  options_free(options);
  return daemon.exit_status;
}
