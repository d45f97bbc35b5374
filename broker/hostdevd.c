/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdevd - per-VM broker that hot-plugs host devices into a running QEMU
 *
 * Start-up: options → the journal → give back what a QEMU that died while
 * no hostdevd ran still had (its pid and start time are in the journal) →
 * tell systemd we are ready → connect QMP (waiting, bounded, for QEMU to
 * create the socket) → check the peer, drop privileges, load the seccomp
 * filter → negotiate → reconcile the journal with QEMU →
 * listen on the control socket → watch the kernel's USB events (devices
 * that follow re-enumeration, absent optional ones) → main loop.  Ready comes before QEMU so
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
#include "audit.h"
#include "control.h"
#include "control-proto.h"
#include "host-root.h"
#include "vfio.h"
#include "hostdev.h"
#include "hostdevd-error.h"
#include "hotplug.h"
#include "hotplug-follow.h"
#include "hotplug-metrics.h"
#include "policy.h"
#include "qemu-arch.h"
#include "qmp-client.h"
#include "sandbox.h"
#include "state.h"
#include "usb-uevent.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <locale.h>
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
  char *optional_usb;         /* --optional-usb wait|qemu */
  char *qemu_arch;            /* --qemu-arch: what QEMU emulates; default: its executable says */
  gboolean optional_usb_to_qemu;
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
  UsbUeventWatch *usb_watch;  /* the kernel's USB events, for devices that follow theirs */
  char *qemu_arch;            /* --qemu-arch, or what the QMP peer's executable emulates; NULL unknown */
  char *qemu_arch_how;        /* where qemu_arch came from, for messages */
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

/* One control request being run: what the metrics learn when it ends. */
typedef struct {
  Daemon *daemon;
  const ControlCommand *command;
  JsonObject *arguments;
  uid_t uid;                 /* the client's */
  gint64 arrived;            /* monotonic µs */
  gboolean dry_run;
} Request;

static void
request_free(Request *request)
{
  json_object_unref(request->arguments);
  g_free(request);
}

static void
audit_device(const Request *request, JsonObject *device, GError *error)
{
  gboolean attach = request->command->id == CONTROL_COMMAND_ATTACH_DEVICE;
  AuditRecord record = {
    .kind = error ? (attach ? AUDIT_ATTACH_FAILED : AUDIT_DETACH_FAILED)
                  : (attach ? AUDIT_ATTACH : AUDIT_DETACH),
    .vm = request->daemon->options.vm,
    .alias = json_object_get_string_member_with_default(device, "alias", NULL),
    .source = json_object_get_string_member_with_default(device, "source", NULL),
    .uid = request->uid,
    .result = error ? control_error_class(error)
                    : json_object_get_string_member_with_default(device, "status", "ok"),
    .detail = error ? error->message
                    : json_object_get_string_member_with_default(device, "host-error", NULL),
  };
  audit_record(&record);
}

/*
 * An attach or a detach is audited device by device: those of the reply,
 * or, when it failed, those the request named (its alias when the XML gave
 * one, its host source), or the request alone when it could not be read.
 */
static void
audit_request(const Request *request, JsonNode *value, GError *error)
{
  if (request->dry_run)
    return;
  g_autoptr(JsonObject) named = json_object_new();
  g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
  if (error == NULL) {
    JsonObject *reply = json_node_get_object(value);
    JsonArray *each = json_object_has_member(reply, "devices")
        ? json_object_get_array_member(reply, "devices") : NULL;
    for (guint i = 0; each && i < json_array_get_length(each); i++)
      g_ptr_array_add(devices, json_object_ref(json_array_get_object_element(each, i)));
    if (each == NULL)
      g_ptr_array_add(devices, json_object_ref(reply));
  } else {
    const char *xml = json_object_get_string_member_with_default(request->arguments, "xml", NULL);
    const char *alias = json_object_get_string_member_with_default(request->arguments, "alias",
                                                                   NULL);
    gboolean batch;
    g_autoptr(GPtrArray) parsed = xml ? hostdev_parse_request(xml, strlen(xml), &batch, NULL)
                                      : NULL;
    for (guint i = 0; parsed && i < parsed->len; i++) {
      const Hostdev *hostdev = g_ptr_array_index(parsed, i);
      JsonObject *device = json_object_new();
      g_autofree char *source = hostdev_describe_source(hostdev);
      if (hostdev->alias)
        json_object_set_string_member(device, "alias", hostdev->alias);
      json_object_set_string_member(device, "source", source);
      g_ptr_array_add(devices, device);
    }
    if (alias)
      json_object_set_string_member(named, "alias", alias);
    if (devices->len == 0)
      g_ptr_array_add(devices, json_object_ref(named));
  }
  for (guint i = 0; i < devices->len; i++)
    audit_device(request, g_ptr_array_index(devices, i), error);
}

/*
 * The client is answered first; the metrics and the audit records of a
 * long-running request follow (they record what happened, and are no part
 * of the answer the client waits for).  Takes over the caller's reference
 * to @task, which keeps the request alive until then.
 */
static void
return_node_from_result(GTask *task, JsonNode *value, GError *error)
{
  g_autoptr(GTask) owned = task;
  Request *request = g_task_get_task_data(task);
  g_autoptr(JsonNode) audited = value ? json_node_ref(value) : NULL;
  g_autoptr(GError) audited_error = error ? g_error_copy(error) : NULL;

  if (error)
    g_task_return_error(task, error);
  else
    g_task_return_pointer(task, value, (GDestroyNotify)json_node_unref);
  if (!request->command->long_running)
    return;
  double seconds = (g_get_monotonic_time() - request->arrived) / (double)G_USEC_PER_SEC;
  hotplug_request_done(request->daemon->hotplug, request->command->name, seconds,
                       audited_error ? control_error_class(audited_error)
                       : request->dry_run ? "dry-run" : "ok");
  audit_request(request, audited, audited_error);
}

static void
on_attach_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Request *request = g_task_get_task_data(G_TASK(user_data));
  GError *error = NULL;
  JsonNode *value = hotplug_attach_finish(request->daemon->hotplug, result, &error);
  return_node_from_result(user_data, value, error);
}

static void
on_detach_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Request *request = g_task_get_task_data(G_TASK(user_data));
  GError *error = NULL;
  JsonNode *value = hotplug_detach_finish(request->daemon->hotplug, result, &error);
  return_node_from_result(user_data, value, error);
}

/* Return: the string argument @name (checked against the table), or NULL. */
static const char *
string_argument(JsonObject *arguments, const char *name)
{
  JsonNode *node = json_object_get_member(arguments, name);
  return node ? json_node_get_string(node) : NULL;
}

static void
dispatch_attach(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  Request *request = g_task_get_task_data(task);
  JsonNode *dry_run = json_object_get_member(arguments, "dry-run");
  request->dry_run = dry_run && json_node_get_boolean(dry_run);
  hotplug_attach_async(daemon->hotplug, string_argument(arguments, "xml"), request->dry_run,
                       on_attach_done, task);
}

static void
dispatch_detach(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  double seconds = control_argument_seconds(arguments, "wait",
                                            HOTPLUG_DEFAULT_DETACH_WAIT_MS / 1000.0);
  hotplug_detach_async(daemon->hotplug, string_argument(arguments, "xml"),
                       string_argument(arguments, "alias"), (guint)(seconds * 1000),
                       on_detach_done, task);
}

static void
dispatch_list(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  return_node_from_result(task, hotplug_list(daemon->hotplug), NULL);
}

/* Reply {"@member": @text}. */
static void
return_text(GTask *task, const char *member, char *text /* transfer full */)
{
  g_autoptr(JsonObject) reply = json_object_new();
  json_object_set_string_member(reply, member, text);
  g_free(text);
  return_node_from_result(task, json_node_init_object(json_node_alloc(), reply), NULL);
}

static void
dispatch_dumpxml(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  return_text(task, "xml", hotplug_dumpxml(daemon->hotplug));
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

static void
dispatch_metrics(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  return_text(task, "text", hotplug_metrics_text(daemon->hotplug));
}

static void
dispatch_commands(Daemon *daemon, JsonObject *arguments, GTask *task)
{
  return_node_from_result(task, control_commands_describe(), NULL);
}

typedef void (*CommandFunc)(Daemon *daemon, JsonObject *arguments, GTask *task);

/* What runs each command of the table in control-commands.c. */
static const CommandFunc command_handlers[CONTROL_N_COMMANDS] = {
  [CONTROL_COMMAND_ATTACH_DEVICE] = dispatch_attach,
  [CONTROL_COMMAND_DETACH_DEVICE] = dispatch_detach,
  [CONTROL_COMMAND_LIST_DEVICES] = dispatch_list,
  [CONTROL_COMMAND_DUMPXML] = dispatch_dumpxml,
  [CONTROL_COMMAND_QUERY_VERSION] = dispatch_version,
  [CONTROL_COMMAND_QUERY_METRICS] = dispatch_metrics,
  [CONTROL_COMMAND_QUERY_COMMANDS] = dispatch_commands,
};

static void
dispatch(const ControlCommand *command, JsonObject *arguments, uid_t client_uid, GTask *task,
         gpointer user_data)
{
  Daemon *daemon = user_data;
  Request *request = g_new0(Request, 1);

  request->daemon = daemon;
  request->command = command;
  request->arguments = json_object_ref(arguments);
  request->uid = client_uid;
  request->arrived = g_get_monotonic_time();
  g_task_set_task_data(task, request, (GDestroyNotify)request_free);
  g_object_ref(task);   /* return_node_from_result() drops this one */
  command_handlers[command->id](daemon, arguments, task);
}

/* ---- QEMU --------------------------------------------------------------- */

/* What happens to a device without a request: it comes back to the host, or
 * the guest keeps it. */
static void
audit_event(Daemon *daemon, const char *name, JsonObject *data)
{
  const char *host_error = json_object_get_string_member_with_default(data, "host-error", NULL);
  AuditRecord record = {
    .vm = daemon->options.vm,
    .alias = json_object_get_string_member_with_default(data, "alias", NULL),
    .source = json_object_get_string_member_with_default(data, "source", NULL),
    .uid = AUDIT_NO_UID,
    .result = host_error ? "HostError" : "ok",
    .detail = host_error ? host_error
                         : json_object_get_string_member_with_default(data, "reason", NULL),
  };
  if (g_strcmp0(name, "DEVICE_DETACHED") == 0)
    record.kind = host_error ? AUDIT_RELEASE_FAILED : AUDIT_RELEASED;
  else if (g_strcmp0(name, "DEVICE_DETACH_FAILED") == 0) {
    record.kind = AUDIT_UNPLUG_REFUSED;
    record.result = "refused";
  } else {
    return;
  }
  audit_record(&record);
}

static void
on_hotplug_event(const char *name, JsonObject *data, gpointer user_data)
{
  Daemon *daemon = user_data;
  audit_event(daemon, name, data);
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

/* qemu_user() - who gets /dev/vfio/N: --qemu-user, else @peer, the user QEMU
 * runs as (SO_PEERCRED); (uid_t)-1 in both: nobody known, leave the owner. */
static void
qemu_user(Daemon *daemon, uid_t peer, uid_t *uid, gid_t *gid)
{
  const char *name = daemon->options.qemu_user;
  struct passwd *pw = name ? getpwnam(name) : NULL;

  *uid = (uid_t)-1;
  *gid = (gid_t)-1;
  if (pw == NULL && name == NULL) {
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
/*
 * sandbox_before_qemu_speaks() - QEMU is connected and nothing of it is
 * read yet: connecting may have needed CAP_DAC_OVERRIDE (QEMU's user owns
 * the socket), nothing after does.  Privileges go and the seccomp filter
 * is loaded now, so QEMU's greeting, replies and events (untrusted: a
 * guest may own its QEMU) and the journal's replay are handled sandboxed.
 * @peer: the uid QEMU runs as: with root, the only one chown may give to.
 */
static gboolean
sandbox_before_qemu_speaks(Daemon *daemon, uid_t peer, GError **error)
{
  SandboxOwner owners = { .vfio_gid = vfio_node_group(), .socket_gid = (gid_t)-1 };
  qemu_user(daemon, peer, &owners.uid, &owners.gid);
  if (!policy_socket_group(daemon->policy, daemon->options.vm, &owners.socket_gid))
    owners.socket_gid = (gid_t)-1;
  if (!sandbox_drop_privileges(daemon->options.sandbox_mode, error) ||
      !sandbox_lock(daemon->options.sandbox_mode, &owners, error))
    return FALSE;
  /* a thread started from now on has no more than the sandbox leaves */
  vfio_restore_keep_threads();
  return TRUE;
}

/*
 * learn_qemu_arch() - what the QMP peer @pid emulates: --qemu-arch, else
 * its executable (qemu-arch.h), read now, before privileges go (another
 * user's /proc/PID/exe needs them).  Never from QEMU's QMP answers: those
 * are only checked against it.  Unknown is allowed, with a warning: QEMU's
 * answer then counts only when it is not s390x (guest_topology_check_arch()).
 */
static void
learn_qemu_arch(Daemon *daemon, pid_t pid)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *how = NULL;
  const char *arch;

  if (daemon->options.qemu_arch) {
    daemon->qemu_arch = g_strdup(daemon->options.qemu_arch);
    daemon->qemu_arch_how = g_strdup("--qemu-arch");
    return;
  }
  arch = pid > 0 ? qemu_arch_of_process(pid, &how, &error) : NULL;
  if (arch == NULL) {
    g_warning("%s; hostdevd does not know which architecture QEMU emulates, and acts on "
              "QEMU's own answer only when it is not s390x (for s390x, start hostdevd with "
              "--qemu-arch s390x)", error ? error->message : "the QMP peer's pid is unknown");
    return;
  }
  daemon->qemu_arch = g_strdup(arch);
  daemon->qemu_arch_how = g_strdup_printf("QEMU's executable %s", how);
  g_message("QEMU (pid %d) emulates %s, as its executable %s says", (int)pid, arch, how);
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

  if (uid != (uid_t)-1 && (uid == 0 || uid == getuid() || (pw && uid == pw->pw_uid))) {
    learn_qemu_arch(daemon, pid);
    return sandbox_before_qemu_speaks(daemon, uid, error);
  }
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

static void
on_usb_uevent(const UsbUevent *event, gpointer user_data)
{
  Daemon *daemon = user_data;
  if (!daemon->releasing_all)
    hotplug_follow_uevent(daemon->hotplug, event);
}

/*
 * watch_usb_devices() - follow the kernel's USB events, so that a USB
 * device that re-enumerates comes back to the VM and one that was not
 * there yet is attached when it appears; then attach those that are there
 * already (they came while no hostdevd ran).  Started after the sandbox is
 * locked: the watcher's syscalls are in its allowlist.  Without it USB
 * devices still attach, they just do not follow.
 */
static void
watch_usb_devices(Daemon *daemon)
{
  g_autoptr(GError) error = NULL;

  daemon->usb_watch = usb_uevent_watch_new(on_usb_uevent, daemon, &error);
  if (daemon->usb_watch == NULL)
    g_warning("%s; USB devices of the VM will not be attached again when they re-enumerate "
              "or appear", error->message);
  hotplug_follow_rescan(daemon->hotplug);
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
  qemu_user(daemon, qmp_client_get_peer_uid(daemon->qmp), &uid, &gid);
  hotplug_set_qemu_user(daemon->hotplug, uid, gid);
  hotplug_set_qemu_arch(daemon->hotplug, daemon->qemu_arch, daemon->qemu_arch_how);
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
  watch_usb_devices(daemon);
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
  g_autofree char *qemu_arch_help = g_strdup_printf(
      "Architecture QEMU emulates: %s (default: the QMP peer's executable says)",
      qemu_arch_known_names());
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
    { "optional-usb", 0, 0, G_OPTION_ARG_STRING, &options->optional_usb,
      "An absent startupPolicy='optional' USB device: wait (default: hostdevd attaches it "
      "by descriptor when it appears) or qemu (QEMU waits by vendorid/productid and needs "
      "/dev/bus/usb)", "MODE" },
    { "qemu-arch", 0, 0, G_OPTION_ARG_STRING, &options->qemu_arch, qemu_arch_help, "ARCH" },
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
  if (options->optional_usb && g_strcmp0(options->optional_usb, "wait") != 0 &&
      g_strcmp0(options->optional_usb, "qemu") != 0) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--optional-usb must be 'wait' (hostdevd attaches the device when it appears) "
                "or 'qemu' (QEMU waits for it by vendorid/productid), not '%s'",
                options->optional_usb);
    return FALSE;
  }
  options->optional_usb_to_qemu = g_strcmp0(options->optional_usb, "qemu") == 0;
  if (options->qemu_arch && !qemu_arch_is_known(options->qemu_arch)) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--qemu-arch '%s' is not an architecture hostdevd knows: use one of %s "
                "(the X of qemu-system-X)", options->qemu_arch, qemu_arch_known_names());
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
  g_free(options->optional_usb);
  g_free(options->qemu_arch);
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
  /* Only the character set: with a UTF-8 locale, GLib writes a message to
   * stderr as it is instead of converting every line through iconv.  The
   * rest (numbers, strerror texts) stays "C": clients and logs read them. */
  setlocale(LC_CTYPE, "");
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
  audit_open_kernel();   /* its netlink socket, before the sandbox narrows what may be opened */
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
    .optional_usb_to_qemu = options->optional_usb_to_qemu,
  };
  daemon.hotplug = hotplug_new(NULL, daemon.journal, &config, on_hotplug_event, &daemon);
  hotplug_release_orphans_async(daemon.hotplug, on_orphans_released, &daemon);
  g_main_loop_run(daemon.loop);

  notify_systemd("STOPPING=1");
  g_clear_pointer(&daemon.control, control_server_free);
  g_clear_pointer(&daemon.usb_watch, usb_uevent_watch_free);
  g_clear_pointer(&daemon.hotplug, hotplug_free);
  if (daemon.qmp) {
    g_signal_handlers_disconnect_by_data(daemon.qmp, &daemon);
    qmp_client_close(daemon.qmp);
    g_clear_object(&daemon.qmp);
  }
  g_clear_pointer(&daemon.policy, policy_free);
  g_clear_pointer(&daemon.journal, state_journal_free);
  g_main_loop_unref(daemon.loop);
  g_free(daemon.qemu_arch);
  g_free(daemon.qemu_arch_how);
  options_free(options);
  return daemon.exit_status;
}
