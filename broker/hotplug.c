/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug.h"
#include "guest-addr.h"
#include "host-pci.h"
#include "host-prep.h"
#include "host-root.h"
#include "memlock.h"
#include "usb-fd.h"
#include "host-usb.h"
#include "hostdev.h"
#include "hostdevd-error.h"
#include "qemu-device.h"
#include "guest-topology.h"
#include "state.h"
#include "vm-devices.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * Operations are queued and run one at a time: each one reads the VM's
 * state (aliases, what is plugged) when it starts, so two attaches can
 * never pick the same alias or claim the same source.
 */
struct _Hotplug {
  QmpClient *qmp;
  StateJournal *journal;  /* borrowed: the daemon owns it */
  char *vm;
  char *runtime_dir;      /* host-wide claims live here */
  uid_t qemu_uid;         /* who gets /dev/vfio/N; (uid_t)-1: leave it */
  gid_t qemu_gid;
  gboolean take_whole_group;
  const Policy *policy;
  VmDevices *devices;
  GPtrArray *group_waiting; /* VmDevice*: gone from QEMU, their IOMMU group still in use */
  guint releases_pending; /* host releases still running */
  GTask *release_all;     /* hotplug_release_all_async() waiting for them */
  HotplugEventFunc emit;
  gpointer emit_data;
  GQueue queue;          /* GTask*, the head is running */
  gulong event_handler;
};

typedef void (*OpStartFunc)(GTask *task);

typedef struct {
  Hotplug *hotplug;
  OpStartFunc start;
  /* attach */
  Hostdev *hostdev;              /* the definition being attached (live fields filled on the way) */
  HostUsbDevice *usb;            /* the resolved USB device, NULL if absent */
  gboolean dry_run;
  gboolean alias_given;          /* the XML named the alias */
  gboolean alias_retried;        /* a clash with a QEMU id was already resolved once */
  char *usb_hostdevice;          /* "/dev/fdset/N" once the USB descriptor is passed */
  JsonNode *usb_query;           /* x-query-usb sent right behind device_add */
  gboolean usb_query_done;
  gboolean usb_added;            /* device_add of the USB device returned OK */
  guint usb_query_generation;    /* bumped when a query's answer no longer matters */
  GuestTopology *topology;       /* PCI only */
  QemuDeviceContext context;     /* the decisions the commands are built from */
  HostPrep *prep;                /* what was done to the host so far */
  GPtrArray *commands;           /* JsonObject*: device_add arguments in order */
  guint added;                   /* how many of them QEMU holds (a reused zpci counts) */
  /* detach */
  char *alias;                   /* the device being detached */
  guint wait_ms;
  gint64 deadline;               /* monotonic time the wait ends */
  guint busy_retries;
  GCancellable *wait_cancel;     /* stops the event waiters */
  gboolean del_answered;         /* device_del returned OK */
  gboolean waiting;              /* a waiter is armed */
  char *outcome;                 /* detach: "deleted", "guest-error", "timeout" */
} Op;

static void
op_free(Op *op)
{
  g_clear_pointer(&op->hostdev, hostdev_free);
  g_clear_pointer(&op->usb, host_usb_device_free);
  g_clear_pointer(&op->topology, guest_topology_free);
  g_clear_pointer(&op->prep, host_prep_free);
  g_free(op->usb_hostdevice);
  if (op->usb_query)
    json_node_unref(op->usb_query);
  g_clear_pointer(&op->commands, g_ptr_array_unref);
  g_clear_object(&op->wait_cancel);
  g_free(op->alias);
  g_free(op->outcome);
  g_free(op);
}

static void
emit_event(Hotplug *hotplug, const char *name, JsonObject *data)
{
  if (hotplug->emit)
    hotplug->emit(name, data, hotplug->emit_data);
}

/* ---- the queue ---------------------------------------------------------- */

static void
queue_start_head(Hotplug *hotplug)
{
  GTask *head = g_queue_peek_head(&hotplug->queue);
  if (head) {
    Op *op = g_task_get_task_data(head);
    op->start(head);
  }
}

/* op_return() - complete the running operation and start the next one. */
static void
op_return(GTask *task, JsonNode *value, GError *error)
{
  Hotplug *hotplug = ((Op *)g_task_get_task_data(task))->hotplug;

  g_assert(g_queue_peek_head(&hotplug->queue) == task);
  g_queue_pop_head(&hotplug->queue);
  if (error)
    g_task_return_error(task, error);
  else
    g_task_return_pointer(task, value, (GDestroyNotify)json_node_unref);
  g_object_unref(task);
  queue_start_head(hotplug);
}

static void
op_enqueue(Hotplug *hotplug, GTask *task)
{
  g_queue_push_tail(&hotplug->queue, task);
  if (g_queue_get_length(&hotplug->queue) == 1)
    queue_start_head(hotplug);
}

/* op_submit() - parse @xml (when given) into the operation and queue it; bad XML fails at once. */
static void
op_submit(GTask *task, const char *xml)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (xml && (op->hostdev = hostdev_parse_xml(xml, strlen(xml), &error)) == NULL) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  op_enqueue(op->hotplug, task);
}

static GTask *
op_new(Hotplug *hotplug, OpStartFunc start, gpointer source_tag,
       GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, NULL, callback, user_data);
  Op *op = g_new0(Op, 1);
  op->hotplug = hotplug;
  op->start = start;
  g_task_set_task_data(task, op, (GDestroyNotify)op_free);
  g_task_set_source_tag(task, source_tag);
  return task;
}

/* ---- QEMU look-ups -------------------------------------------------------- */

/* Return: the class a failed QMP command is reported with. */
static int
qemu_failure_code(const GError *error)
{
  return g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT) ? HOSTDEVD_ERROR_TIMEOUT
                                                              : HOSTDEVD_ERROR_QEMU_ERROR;
}

/* Return: (transfer full): the ids of QEMU's user-created devices (qom-list /machine/peripheral). */
static GStrv
peripheral_ids(JsonNode *qom_list)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();

  if (qom_list && JSON_NODE_HOLDS_ARRAY(qom_list)) {
    JsonArray *entries = json_node_get_array(qom_list);
    for (guint i = 0; i < json_array_get_length(entries); i++) {
      JsonNode *node = json_array_get_element(entries, i);
      if (!JSON_NODE_HOLDS_OBJECT(node))
        continue;
      JsonObject *entry = json_node_get_object(node);
      const char *type = json_object_get_string_member_with_default(entry, "type", "");
      const char *name = json_object_get_string_member_with_default(entry, "name", NULL);
      if (name && g_str_has_prefix(type, "child<"))
        g_strv_builder_add(builder, name);
    }
  }
  return g_strv_builder_end(builder);
}

static void
list_peripherals(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer data)
{
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "path", "/machine/peripheral");
  qmp_client_execute_async(hotplug->qmp, "qom-list", args, -1, 0, NULL, callback, data);
}

static void
on_device_del_logged(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *id = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  if (error && !g_error_matches(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND))
    g_warning("could not remove %s from QEMU: %s", id, error->message);
}

/* remove_from_qemu() - device_del whose outcome only matters for the log. */
static void
remove_from_qemu(Hotplug *hotplug, const char *id)
{
  if (!qmp_client_is_connected(hotplug->qmp))
    return;
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "id", id);
  qmp_client_execute_async(hotplug->qmp, "device_del", args, -1, 0, NULL,
                           on_device_del_logged, g_strdup(id));
}

/* ---- journal --------------------------------------------------------------- */

/* Return: (transfer full): the QEMU ids of the commands, in order. */
static GStrv
command_ids(GPtrArray *commands)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  for (guint i = 0; commands && i < commands->len; i++)
    g_strv_builder_add(builder, json_object_get_string_member(g_ptr_array_index(commands, i), "id"));
  return g_strv_builder_end(builder);
}

/* journal_device() - record @hostdev's @state and the @step about to take effect.
 * @commands, @prep: (nullable): keep what was recorded before when NULL */
static gboolean
journal_device(Hotplug *hotplug, const Hostdev *hostdev, StateDeviceState state,
               const char *step, GPtrArray *commands, const HostPrep *prep,
               gboolean binding_in_flight, GError **error)
{
  g_autofree char *xml = hostdev_format_xml(hostdev);
  g_auto(GStrv) ids = commands ? command_ids(commands) : NULL;
  g_autoptr(JsonObject) host = prep ? host_prep_to_json(prep, binding_in_flight) : NULL;
  return state_journal_record(hotplug->journal, hostdev->alias, state, step, xml,
                              (const char *const *)ids, host, error);
}

static void
journal_forget(Hotplug *hotplug, const char *alias)
{
  g_autoptr(GError) error = NULL;
  if (!state_journal_forget(hotplug->journal, alias, &error))
    g_warning("%s", error->message);
}

/* ---- release: the one way a device leaves the VM ----------------------- */

/* remove_fdset() - QEMU keeps our USB descriptor in an fdset until told to drop it. */
static void
remove_fdset(Hotplug *hotplug, HostPrep *prep)
{
  if (prep == NULL || prep->fdset_id < 0 || !qmp_client_is_connected(hotplug->qmp))
    return;
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_int_member(args, "fdset-id", prep->fdset_id);
  qmp_client_execute_async(hotplug->qmp, "remove-fd", args, -1, 0, NULL, on_device_del_logged,
                           g_strdup_printf("fdset %d", prep->fdset_id));
  prep->fdset_id = -1;
}

/*
 * A release gives the host its device back, then forgets it.  Running
 * releases are counted so that hotplug_release_all_async() can wait for
 * all of them before hostdevd exits.
 */
typedef struct {
  Hotplug *hotplug;
  VmDevice *device;      /* owned: already out of the registry */
  char *why;
  GTask *then;           /* (nullable) the operation to finish after */
  JsonNode *reply;       /* its reply */
} Release;

static void release_group_waiters(Hotplug *hotplug, int group);

static void
release_finish(Release *release, const GError *error)
{
  Hotplug *hotplug = release->hotplug;
  VmDevice *device = release->device;
  g_autofree char *source = hostdev_describe_source(device->hostdev);
  const char *alias = device->hostdev->alias;
  int group = device->prep && device->prep->vfio ? device->prep->vfio->group : -1;

  if (error) {
    /* keep the journal entry: a restart tries again */
    g_warning("%s (%s): giving it back to the host failed: %s", alias, source, error->message);
  } else {
    g_message("%s (%s) released: %s", alias, source, release->why);
    journal_forget(hotplug, alias);
  }
  g_autoptr(JsonObject) data = json_object_new();
  json_object_set_string_member(data, "alias", alias);
  json_object_set_string_member(data, "source", source);
  json_object_set_string_member(data, "reason", release->why);
  if (error)
    json_object_set_string_member(data, "host-error", error->message);
  emit_event(hotplug, "DEVICE_DETACHED", data);

  if (release->then)
    op_return(release->then, g_steal_pointer(&release->reply), NULL);
  g_free(release->why);
  vm_device_free(device);
  g_free(release);

  if (group >= 0)
    release_group_waiters(hotplug, group);
  if (--hotplug->releases_pending == 0 && hotplug->release_all) {
    g_task_return_boolean(hotplug->release_all, TRUE);
    g_clear_object(&hotplug->release_all);
  }
}

static void
on_host_released(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  host_prep_release_finish(result, &error);
  release_finish(user_data, error);
}

/* release_host() - undo @release's host preparation (asynchronously). */
static void
release_host(Release *release)
{
  HostPrep *prep = release->device->prep;
  release->hotplug->releases_pending++;
  if (prep == NULL) {
    release_finish(release, NULL);
    return;
  }
  host_prep_release_async(prep, release->hotplug->runtime_dir, release->hotplug->vm,
                          on_host_released, release);
}

/*
 * release_device() - QEMU no longer holds @device: give it back to the
 * host and forget it; then finish @then (nullable) with @reply.
 * A VFIO device whose IOMMU group another device of this VM still uses
 * waits for that one: the kernel does not let a host driver take a device
 * whose group QEMU holds.
 */
static void
release_device(Hotplug *hotplug, VmDevice *device, const char *why, GTask *then, JsonNode *reply)
{
  g_autoptr(GError) error = NULL;
  const char *alias = device->hostdev->alias;

  if (!host_prep_is_empty(device->prep) &&
      !journal_device(hotplug, device->hostdev, STATE_DETACHING, "host-release", NULL, NULL,
                      FALSE, &error))
    g_warning("%s", error->message);
  /* QEMU removes a device, not its companions (the zpci of an s390x function) */
  StateEntry *entry = state_journal_find(hotplug->journal, alias);
  for (char **id = entry ? entry->qemu_ids : NULL; id && *id; id++)
    if (g_strcmp0(*id, alias) != 0)
      remove_from_qemu(hotplug, *id);
  remove_fdset(hotplug, device->prep);

  Release *release = g_new0(Release, 1);
  release->hotplug = hotplug;
  release->device = vm_devices_steal(hotplug->devices, device);
  release->why = g_strdup(why);
  release->then = then;
  release->reply = reply;

  int group = device->prep && device->prep->vfio ? device->prep->vfio->group : -1;
  if (group >= 0 && vm_devices_find_group(hotplug->devices, group, NULL)) {
    g_message("%s left QEMU; IOMMU group %d goes back to the host with its last device",
              alias, group);
    if (!journal_device(hotplug, device->hostdev, STATE_DETACHING, "wait-group", NULL, NULL,
                        FALSE, &error))
      g_warning("%s", error->message);
    g_ptr_array_add(hotplug->group_waiting, release);
    if (then)
      op_return(then, g_steal_pointer(&release->reply), NULL);
    release->then = NULL;
    return;
  }
  release_host(release);
}

/* The last device of @group left: the ones that waited for it go back now. */
static void
release_group_waiters(Hotplug *hotplug, int group)
{
  if (vm_devices_find_group(hotplug->devices, group, NULL))
    return;
  for (guint i = 0; i < hotplug->group_waiting->len;) {
    Release *release = g_ptr_array_index(hotplug->group_waiting, i);
    if (release->device->prep->vfio->group == group) {
      g_ptr_array_remove_index(hotplug->group_waiting, i);
      release_host(release);
    } else {
      i++;
    }
  }
}

/* ---- attach ------------------------------------------------------------- */

static JsonNode *
attach_reply(const Hostdev *hostdev)
{
  g_autoptr(JsonObject) reply = json_object_new();
  g_autofree char *xml = hostdev_format_xml(hostdev);
  g_autofree char *source = hostdev_describe_source(hostdev);
  json_object_set_string_member(reply, "alias", hostdev->alias);
  json_object_set_string_member(reply, "source", source);
  json_object_set_string_member(reply, "xml", xml);
  return json_node_init_object(json_node_alloc(), reply);
}

/*
 * attach_fail() - undo what QEMU accepted, newest first, and fail.
 * A USB device leaves at once.  A PCI device needs the guest, so it stays
 * listed as detaching until QEMU reports it gone; a zpci device whose
 * target never arrived stays in QEMU (QEMU 7.2 crashes removing one).
 */
typedef struct {
  GTask *task;
  GError *error;
} AttachUndo;

static void
on_attach_host_undone(GObject *source, GAsyncResult *result, gpointer user_data)
{
  AttachUndo *undo = user_data;
  Op *op = g_task_get_task_data(undo->task);
  g_autoptr(GError) error = NULL;
  GError *reported = undo->error;

  if (!host_prep_release_finish(result, &error)) {
    /* the journal keeps the entry, so a restart tries again */
    reported = g_error_new(undo->error->domain, undo->error->code,
                           "%s; giving the host device back failed too: %s",
                           undo->error->message, error->message);
    g_error_free(undo->error);
  } else if (op->hostdev->alias && state_journal_find(op->hotplug->journal, op->hostdev->alias)) {
    journal_forget(op->hotplug, op->hostdev->alias);
  }
  op_return(undo->task, NULL, reported);
  g_free(undo);
}

/*
 * attach_fail() - undo what was done, newest first, and fail.
 * A USB device leaves QEMU at once.  A PCI device QEMU accepted needs the
 * guest to let go, so it stays listed as detaching until QEMU reports it
 * gone; a zpci device whose target never arrived stays in QEMU (QEMU 7.2
 * crashes removing one).  The host device is given back before the reply,
 * so an error means the host has it as it was.
 */
static void
attach_fail(GTask *task, GError *error)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  guint planned = op->commands ? op->commands->len : 0;
  gboolean target_added = planned > 0 && op->added == planned;

  for (guint i = op->added; i-- > 0;) {
    JsonObject *command = g_ptr_array_index(op->commands, i);
    const char *id = json_object_get_string_member(command, "id");
    if (!target_added && g_strcmp0(json_object_get_string_member(command, "driver"), "zpci") == 0) {
      g_message("%s stays in QEMU without its target %s: QEMU 7.2 crashes removing a zpci "
                "device whose target never existed; the next attach reuses it", id,
                json_object_get_string_member(command, "target"));
      continue;
    }
    remove_from_qemu(hotplug, id);
  }
  if (target_added && op->hostdev->type != HOSTDEV_TYPE_USB) {
    /* the guest has to let go first; the late DEVICE_DELETED finishes the release */
    g_autoptr(GError) journal_error = NULL;
    VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&op->hostdev),
                                      g_steal_pointer(&op->prep));
    device->state = VM_DEVICE_DETACHING;
    if (!journal_device(hotplug, device->hostdev, STATE_DETACHING, "device-del", NULL,
                        device->prep, FALSE, &journal_error))
      g_warning("%s", journal_error->message);
    op_return(task, NULL, g_error_new(error->domain, error->code,
                                      "%s; QEMU was asked to remove %s again, and it is "
                                      "listed as detaching until the guest lets it go",
                                      error->message, device->hostdev->alias));
    g_error_free(error);
    return;
  }
  remove_fdset(hotplug, op->prep);
  AttachUndo *undo = g_new0(AttachUndo, 1);
  undo->task = task;
  undo->error = error;
  host_prep_release_async(op->prep, hotplug->runtime_dir, hotplug->vm, on_attach_host_undone,
                          undo);
}

static void
attach_done(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hostdev *live = g_steal_pointer(&op->hostdev);
  g_autofree char *source = hostdev_describe_source(live);
  g_autoptr(GError) error = NULL;

  if (!journal_device(op->hotplug, live, STATE_ATTACHED, "done", op->commands, op->prep, FALSE,
                      &error))
    g_warning("%s", error->message);
  vm_devices_add(op->hotplug->devices, live, g_steal_pointer(&op->prep));
  g_message("%s (%s) attached", live->alias, source);

  JsonNode *reply = attach_reply(live);
  emit_event(op->hotplug, "DEVICE_ATTACHED", json_node_get_object(reply));
  op_return(task, reply, NULL);
}

/* x-query-usb both confirms the device is on a USB bus and tells its guest address. */
static void
usb_verify(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  JsonNode *value = op->usb_query;
  const char *text = value && JSON_NODE_HOLDS_OBJECT(value)
      ? json_object_get_string_member_with_default(json_node_get_object(value),
                                                   "human-readable-text", "")
      : NULL;
  guint bus;
  g_autofree char *port = NULL;

  if (text == NULL) {
    attach_fail(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "cannot confirm %s in QEMU: x-query-usb gave no answer",
                                  op->hostdev->alias));
    return;
  }
  if (!guest_usb_address_from_query(text, op->hostdev->alias, &bus, &port)) {
    attach_fail(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "QEMU accepted %s but does not show it on any USB bus",
                                  op->hostdev->alias));
    return;
  }
  if (!op->hostdev->usb_guest.present) {
    op->hostdev->usb_guest.present = TRUE;
    op->hostdev->usb_guest.bus = bus;
    op->hostdev->usb_guest.port = g_steal_pointer(&port);
  }
  attach_done(task);
}

typedef struct {
  GTask *task;
  guint generation;
} UsbQuery;

static void
on_usb_queried(GObject *source, GAsyncResult *result, gpointer user_data)
{
  UsbQuery *query = user_data;
  Op *op = g_task_get_task_data(query->task);
  g_autoptr(GError) error = NULL;
  JsonNode *value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (query->generation == op->usb_query_generation) {
    op->usb_query = value;
    op->usb_query_done = TRUE;
    if (op->usb_added)
      usb_verify(query->task);
  } else if (value) {
    json_node_unref(value);
  }
  g_object_unref(query->task);
  g_free(query);
}

static void
on_pci_verified(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  g_auto(GStrv) ids = value ? peripheral_ids(value) : NULL;

  if (ids == NULL || !g_strv_contains((const char *const *)ids, op->hostdev->alias)) {
    attach_fail(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "QEMU accepted %s but does not list it afterwards%s%s",
                                  op->hostdev->alias, error ? ": " : "",
                                  error ? error->message : ""));
    return;
  }
  attach_done(task);
}

static void attach_plan(GTask *task, const char *const *qemu_ids);
static void send_next_command(GTask *task);
static void dry_run_predict_fdset(GTask *task);
static void attach_prepare_host(GTask *task);
static void attach_devices(GTask *task);

static void
on_ids_refreshed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (value == NULL) {
    attach_fail(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "cannot list QEMU's devices: %s", error->message));
    return;
  }
  g_auto(GStrv) ids = peripheral_ids(value);
  g_clear_pointer(&op->hostdev->alias, g_free);
  g_clear_pointer(&op->commands, g_ptr_array_unref);
  attach_plan(task, (const char *const *)ids);
}

static void
on_command_added(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  JsonObject *command = g_ptr_array_index(op->commands, op->added);

  if (error) {
    /* the query that went out behind this device_add answers nothing useful now */
    op->usb_query_generation++;
    /* Our alias guess clashed with a device hostdevd did not add: learn QEMU's ids once. */
    if (op->added == 0 && !op->alias_given && !op->alias_retried &&
        g_str_has_prefix(error->message, "Duplicate device ID")) {
      op->alias_retried = TRUE;
      journal_forget(op->hotplug, op->hostdev->alias);
      list_peripherals(op->hotplug, on_ids_refreshed, task);
      return;
    }
    g_autofree char *what = hostdev_describe_source(op->hostdev);
    /* A timed-out device_add may still complete: make sure it does not stay behind. */
    if (g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT))
      remove_from_qemu(op->hotplug, json_object_get_string_member(command, "id"));
    attach_fail(task, g_error_new(HOSTDEVD_ERROR, qemu_failure_code(error),
                                  "QEMU could not add %s for %s: %s",
                                  json_object_get_string_member(command, "driver"), what,
                                  error->message));
    return;
  }
  op->added++;
  if (op->added < op->commands->len) {
    send_next_command(task);
    return;
  }
  if (op->hostdev->type != HOSTDEV_TYPE_USB) {
    list_peripherals(op->hotplug, on_pci_verified, task);
    return;
  }
  op->usb_added = TRUE;
  if (op->usb_query_done)
    usb_verify(task);
}

static void
send_next_command(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  qmp_client_execute_async(op->hotplug->qmp, "device_add",
                           g_ptr_array_index(op->commands, op->added), -1,
                           HOTPLUG_DEVICE_ADD_TIMEOUT_MS, NULL, on_command_added, task);
  /*
   * QEMU answers commands in order, so the query sent right behind the
   * USB device's device_add sees the device, without a second round trip.
   */
  if (op->hostdev->type == HOSTDEV_TYPE_USB && op->added + 1 == op->commands->len) {
    UsbQuery *query = g_new0(UsbQuery, 1);
    query->task = g_object_ref(task);
    query->generation = ++op->usb_query_generation;
    op->usb_query_done = FALSE;
    g_clear_pointer(&op->usb_query, json_node_unref);
    qmp_client_execute_async(op->hotplug->qmp, "x-query-usb", NULL, -1, 0, NULL,
                             on_usb_queried, query);
  }
}

static JsonObject *
command_object(const char *execute, JsonObject *arguments)
{
  JsonObject *command = json_object_new();
  json_object_set_string_member(command, "execute", execute);
  json_object_set_object_member(command, "arguments", json_object_ref(arguments));
  return command;
}

/* @add_fd: (nullable): the add-fd arguments when a descriptor would be passed first */
static JsonNode *
dry_run_reply(GPtrArray *commands, JsonObject *add_fd)
{
  g_autoptr(JsonObject) reply = json_object_new();
  JsonArray *list = json_array_new();
  if (add_fd)
    json_array_add_object_element(list, command_object("add-fd", add_fd));
  for (guint i = 0; i < commands->len; i++)
    json_array_add_object_element(list, command_object("device_add",
                                                       g_ptr_array_index(commands, i)));
  json_object_set_array_member(reply, "commands", list);
  return json_node_init_object(json_node_alloc(), reply);
}

static JsonObject *
add_fd_arguments(const char *alias, gint fdset_id)
{
  JsonObject *args = json_object_new();
  g_autofree char *opaque = g_strdup_printf("hostdevd:%s", alias);
  if (fdset_id >= 0)
    json_object_set_int_member(args, "fdset-id", fdset_id);
  json_object_set_string_member(args, "opaque", opaque);
  return args;
}

/* Rebuild the commands once the USB device travels as /dev/fdset/N. */
static gboolean
replan_with_fdset(Op *op, gint fdset_id, GError **error)
{
  g_free(op->usb_hostdevice);
  if (op->usb_query)
    json_node_unref(op->usb_query);
  op->usb_hostdevice = g_strdup_printf("/dev/fdset/%d", fdset_id);
  op->context.usb_hostdevice = op->usb_hostdevice;
  g_clear_pointer(&op->commands, g_ptr_array_unref);
  op->commands = qemu_device_plan(op->hostdev, &op->context, error);
  return op->commands != NULL;
}

/* A dry run shows the fdset QEMU would give: the lowest id not in use. */
static void
on_fdsets_listed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  gint next = 0;

  if (value == NULL) {
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                      "cannot list QEMU's fd sets: %s", error->message));
    g_error_free(error);
    return;
  }
  for (gboolean taken = TRUE; taken; next += taken) {
    taken = FALSE;
    JsonArray *fdsets = JSON_NODE_HOLDS_ARRAY(value) ? json_node_get_array(value) : NULL;
    for (guint i = 0; fdsets && i < json_array_get_length(fdsets); i++)
      if (json_object_get_int_member_with_default(json_array_get_object_element(fdsets, i),
                                                  "fdset-id", -1) == next)
        taken = TRUE;
  }
  if (!replan_with_fdset(op, next, &error)) {
    op_return(task, NULL, error);
    return;
  }
  g_autoptr(JsonObject) add_fd = add_fd_arguments(op->hostdev->alias, -1);
  op_return(task, dry_run_reply(op->commands, add_fd), NULL);
}

static void
dry_run_predict_fdset(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  qmp_client_execute_async(op->hotplug->qmp, "query-fdsets", NULL, -1, 0, NULL,
                           on_fdsets_listed, task);
}

/* ---- attach: preparing the host ---------------------------------------- */

/* Journal the next step; FALSE after failing the attach. */
static gboolean
attach_journal(GTask *task, const char *step, gboolean binding_in_flight)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;
  if (journal_device(op->hotplug, op->hostdev, STATE_ATTACHING, step, op->commands, op->prep,
                     binding_in_flight, &error))
    return TRUE;
  attach_fail(task, error);
  return FALSE;
}

static void
attach_devices(GTask *task)
{
  if (attach_journal(task, "device-add", FALSE))
    send_next_command(task);
}

static void
on_fd_added(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (value == NULL || !JSON_NODE_HOLDS_OBJECT(value)) {
    attach_fail(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "QEMU did not take the USB device's descriptor (add-fd): %s",
                                  error ? error->message : "no fdset in the reply"));
    g_clear_error(&error);
    return;
  }
  op->prep->fdset_id = (gint)json_object_get_int_member_with_default(json_node_get_object(value),
                                                                     "fdset-id", -1);
  if (!replan_with_fdset(op, op->prep->fdset_id, &error)) {
    attach_fail(task, error);
    return;
  }
  attach_devices(task);
}

/*
 * The USB device node is opened here and handed to QEMU (add-fd), so QEMU
 * needs no access to /dev/bus/usb at all.
 */
static void
attach_pass_usb_fd(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (!attach_journal(task, "pass-fd", FALSE))
    return;
  int fd = usb_fd_open(op->usb->bus, op->usb->device, op->usb->sysfs_name, &error);
  if (fd < 0) {
    attach_fail(task, error);
    return;
  }
  g_autoptr(JsonObject) args = add_fd_arguments(op->hostdev->alias, -1);
  qmp_client_execute_async(op->hotplug->qmp, "add-fd", args, fd, 0, NULL, on_fd_added, task);
  close(fd);   /* the QMP client passes its own duplicate */
}

/* Return: whether process @pid may lock memory without limit (CAP_IPC_LOCK). */
static gboolean
process_has_ipc_lock(pid_t pid)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
  g_autofree char *status = NULL;
  if (!g_file_get_contents(path, &status, NULL, NULL))
    return FALSE;
  const char *line = strstr(status, "\nCapEff:");
  guint64 caps = line ? g_ascii_strtoull(line + strlen("\nCapEff:"), NULL, 16) : 0;
  return (caps >> 14) & 1;   /* CAP_IPC_LOCK */
}

/* Count the VFIO devices QEMU will hold, this one included. */
static guint
vfio_device_count(Hotplug *hotplug)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  guint count = 1;
  for (guint i = 0; i < all->len; i++) {
    VmDevice *device = g_ptr_array_index(all, i);
    count += device->hostdev->type != HOSTDEV_TYPE_USB;
  }
  return count;
}

/* VFIO pins all guest RAM: QEMU's locked-memory limit must cover it. */
static void
on_memory_size(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  pid_t qemu = qmp_client_get_peer_pid(op->hotplug->qmp);
  guint64 soft = 0, hard = 0;

  if (value == NULL || !JSON_NODE_HOLDS_OBJECT(value)) {
    attach_fail(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "cannot learn the guest's memory size "
                                  "(query-memory-size-summary): %s",
                                  error ? error->message : "no answer"));
    g_clear_error(&error);
    return;
  }
  JsonObject *sizes = json_node_get_object(value);
  guint64 ram = (guint64)json_object_get_int_member_with_default(sizes, "base-memory", 0) +
                (guint64)json_object_get_int_member_with_default(sizes, "plugged-memory", 0);
  guint64 needed = memlock_needed_for_guest(ram, vfio_device_count(op->hotplug), FALSE);

  if (qemu <= 0 || (memlock_get(qemu, &soft, &hard, NULL) && soft >= needed) ||
      process_has_ipc_lock(qemu)) {
    attach_devices(task);
    return;
  }
  if (!memlock_raise(qemu, needed, &error)) {
    attach_fail(task, error);
    return;
  }
  g_autofree char *size = memlock_format_bytes(needed);
  g_message("raised QEMU's (pid %d) locked-memory limit to %s for VFIO", (int)qemu, size);
  attach_devices(task);
}

static void
attach_raise_memlock(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  qmp_client_execute_async(op->hotplug->qmp, "query-memory-size-summary", NULL, -1, 0, NULL,
                           on_memory_size, task);
}

/* after the binding (or for devices without one) */
static void
attach_after_binding(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (op->prep->vfio) {
    if (!attach_journal(task, "vf-program", FALSE))
      return;
    if (!host_prep_vf_program(op->prep, op->hostdev, &error)) {
      attach_fail(task, error);
      return;
    }
  }
  if (op->hostdev->type != HOSTDEV_TYPE_USB)
    attach_raise_memlock(task);
  else if (op->usb)
    attach_pass_usb_fd(task);
  else
    attach_devices(task);
}

static void
on_vfio_bound(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  GError *error = NULL;

  if (!host_prep_vfio_bind_finish(result, &error)) {
    attach_fail(task, error);
    return;
  }
  attach_after_binding(task);
}

static void
attach_prepare_host(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  GError *error = NULL;

  if (!host_prep_claim(op->prep, hotplug->runtime_dir, hotplug->vm, op->hostdev, op->usb,
                       &error)) {
    attach_fail(task, error);
    return;
  }
  if (op->prep->vfio == NULL) {
    attach_after_binding(task);
    return;
  }
  /* the record says how the device was; written as if binding had happened, in case we die */
  if (!attach_journal(task, "vfio-bind", TRUE))
    return;
  VmDevice *sibling = vm_devices_find_group(hotplug->devices, op->prep->vfio->group, NULL);
  host_prep_vfio_bind_async(op->prep, hotplug->take_whole_group, hotplug->qemu_uid,
                            hotplug->qemu_gid, sibling ? sibling->prep->vfio : NULL,
                            on_vfio_bound, task);
}

/*
 * stranded_zpci() - a zpci device of ours that lost its target
 * Return: (nullable): one that @hostdev can take over: its target id is
 * free, and it agrees with the alias (when @alias_given) and the uid/fid
 * the XML asks for.
 */
static const GuestZpci *
stranded_zpci(const GuestTopology *topology, const Hostdev *hostdev, gboolean alias_given)
{
  for (guint i = 0; i < topology->zpci->len; i++) {
    const GuestZpci *zpci = g_ptr_array_index(topology->zpci, i);
    if (zpci->id == NULL || zpci->target == NULL ||
        g_strv_contains((const char *const *)topology->ids, zpci->target))
      continue;
    if ((alias_given && g_strcmp0(hostdev->alias, zpci->target) != 0) ||
        (hostdev->zpci.has_uid && hostdev->zpci.uid != zpci->uid) ||
        (hostdev->zpci.has_fid && hostdev->zpci.fid != zpci->fid))
      continue;
    return zpci;
  }
  return NULL;
}

/*
 * attach_plan() - every read-only decision: alias, guest address, zPCI
 * ids, the exact commands.  A dry run ends here.
 * @qemu_ids: (nullable): QEMU's device ids when known
 */
static void
attach_plan(GTask *task, const char *const *qemu_ids)
{
  Op *op = g_task_get_task_data(task);
  Hostdev *hostdev = op->hostdev;
  const GuestPciBus *bus = NULL;
  GError *error = NULL;

  if (qemu_ids == NULL && op->topology)
    qemu_ids = (const char *const *)op->topology->ids;
  if (hostdev->alias == NULL) {
    /* libvirt's choice from our own devices; QEMU's ids only matter when they clash */
    hostdev->alias = vm_devices_next_alias(op->hotplug->devices, NULL);
    if (qemu_ids && g_strv_contains(qemu_ids, hostdev->alias)) {
      g_free(hostdev->alias);
      hostdev->alias = vm_devices_next_alias(op->hotplug->devices, qemu_ids);
    }
  } else if (qemu_ids && g_strv_contains(qemu_ids, hostdev->alias)) {
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                      "alias '%s' is already the id of a device in QEMU; "
                                      "choose another <alias name='ua-…'/> or leave it out",
                                      hostdev->alias));
    return;
  }

  op->context = (QemuDeviceContext){ .id = hostdev->alias, .usb = op->usb };
  gboolean zpci_reused = FALSE;
  if (op->topology && hostdev->type != HOSTDEV_TYPE_USB) {
    PciAddress placed;
    op->context.s390x = guest_topology_has_zpci(op->topology);
    op->context.pcie_root = guest_topology_find_bus(op->topology, 0) &&
                        g_strcmp0(guest_topology_find_bus(op->topology, 0)->id, "pcie.0") == 0;
    /* On s390x QEMU picks the slot; the guest addresses the device by its zPCI ids. */
    if (!op->context.s390x || hostdev->pci_guest.present) {
      if (!guest_pci_place(op->topology, hostdev->pci_guest.present ? &hostdev->pci_guest.addr : NULL,
                           &placed, &bus, &error)) {
        op_return(task, NULL, error);
        return;
      }
      hostdev->pci_guest.present = TRUE;
      hostdev->pci_guest.addr = placed;
      op->context.pci_bus_id = bus->id;
      op->context.pci_slot = placed.slot;
      op->context.pci_function = placed.function;
    }
    if (op->context.s390x) {
      const GuestZpci *reuse = stranded_zpci(op->topology, hostdev, op->alias_given);
      guint uid, fid;
      if (reuse) {
        g_free(hostdev->alias);
        hostdev->alias = g_strdup(reuse->target);
        op->context.id = hostdev->alias;
        uid = reuse->uid;
        fid = reuse->fid;
        zpci_reused = TRUE;
      } else if (!guest_zpci_assign(op->topology, hostdev->zpci.has_uid, hostdev->zpci.uid,
                                    hostdev->zpci.has_fid, hostdev->zpci.fid, &uid, &fid,
                                    &error)) {
        op_return(task, NULL, error);
        return;
      }
      hostdev->zpci.has_uid = hostdev->zpci.has_fid = TRUE;
      hostdev->zpci.uid = uid;
      hostdev->zpci.fid = fid;
    }
  }

  op->commands = qemu_device_plan(hostdev, &op->context, &error);
  if (op->commands == NULL) {
    op_return(task, NULL, error);
    return;
  }
  /* a zpci device left behind by a failed attach is already in QEMU: start past it */
  if (zpci_reused) {
    g_message("%s: reusing zpci uid %u fid %u left by an earlier attempt", hostdev->alias,
              hostdev->zpci.uid, hostdev->zpci.fid);
    op->added = 1;
  }
  if (op->dry_run) {
    if (op->usb)
      dry_run_predict_fdset(task);
    else
      op_return(task, dry_run_reply(op->commands, NULL), NULL);
    return;
  }
  /* an absent optional USB device or a mediated device takes nothing from the host */
  if (hostdev->type == HOSTDEV_TYPE_MDEV || (hostdev->type == HOSTDEV_TYPE_USB && !op->usb)) {
    attach_devices(task);
    return;
  }
  if (!journal_device(op->hotplug, hostdev, STATE_ATTACHING, "claim", op->commands, op->prep,
                      FALSE, &error)) {
    op_return(task, NULL, error);
    return;
  }
  attach_prepare_host(task);
}

static void
on_attach_topology(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  op->topology = guest_topology_query_finish(result, &error);
  if (op->topology == NULL) {
    op_return(task, NULL, error);
    return;
  }
  attach_plan(task, NULL);
}

/* Return: FALSE with @error when @hostdev clashes with what the VM already has. */
static gboolean
check_not_attached(Hotplug *hotplug, const Hostdev *hostdev, GError **error)
{
  VmDevice *same_source = vm_devices_find_source(hotplug->devices, hostdev);
  if (same_source) {
    g_autofree char *what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "%s is already attached to this VM as %s%s", what,
                same_source->hostdev->alias,
                same_source->state == VM_DEVICE_DETACHING
                    ? " (its detach is still pending in the guest)" : "");
    return FALSE;
  }
  if (hostdev->alias && vm_devices_find_alias(hotplug->devices, hostdev->alias)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "alias '%s' is already used by another device of this VM", hostdev->alias);
    return FALSE;
  }
  return TRUE;
}

/* policy_allows() - FALSE with PolicyDenied naming the rule when the VM may not have the device. */
static gboolean
policy_allows(Op *op, GError **error)
{
  const Hostdev *hostdev = op->hostdev;
  PolicyDeviceFacts facts = { 0 };
  const char *rule = NULL;

  if (op->hotplug->policy == NULL)
    return TRUE;
  if (hostdev->type == HOSTDEV_TYPE_USB) {
    facts.type = POLICY_DEVICE_USB;
    facts.usb_ids_known = op->usb || hostdev->usb.has_vendor_product;
    facts.usb_vendor = op->usb ? op->usb->vendor : hostdev->usb.vendor;
    facts.usb_product = op->usb ? op->usb->product : hostdev->usb.product;
  } else if (hostdev->type == HOSTDEV_TYPE_PCI) {
    g_autoptr(HostPciDevice) pci = host_pci_device_read(&hostdev->pci_source, NULL);
    facts.type = POLICY_DEVICE_PCI;
    facts.pci_domain = hostdev->pci_source.domain;
    facts.pci_bus = hostdev->pci_source.bus;
    facts.pci_slot = hostdev->pci_source.slot;
    facts.pci_function = hostdev->pci_source.function;
    if (pci) {
      g_autofree char *path = host_path("sys/bus/pci/devices/%s/boot_vga", pci->name);
      g_autofree char *boot_vga = host_read_attr(path, NULL);
      facts.pci_vendor = pci->vendor;
      facts.pci_device = pci->device;
      facts.pci_class = pci->class_code;
      facts.boot_vga = g_strcmp0(boot_vga, "1") == 0;
    }
  } else {
    return TRUE;   /* a mediated device is a slice its parent's policy already governs */
  }
  if (policy_check_device(op->hotplug->policy, op->hotplug->vm, &facts,
                          vm_devices_get_all(op->hotplug->devices)->len, &rule))
    return TRUE;
  g_autofree char *what = policy_describe_device(&facts);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED,
              "VM '%s' may not receive %s: %s", op->hotplug->vm, what, rule);
  return FALSE;
}

/*
 * pci_precheck() - every read-only check of a PCI device, so that a dry
 * run fails exactly where the attach would, before QEMU is asked: the
 * device exists, the host's IOMMU is usable, the device is on vfio-pci
 * when not managed, and its IOMMU group is viable (or may be taken whole).
 */
static gboolean
pci_precheck(Op *op, GError **error)
{
  const Hostdev *hostdev = op->hostdev;
  g_autofree char *driver = NULL;
  g_autoptr(GError) missing = NULL;

  driver = host_pci_get_driver(&hostdev->pci_source, &missing);
  if (missing) {
    g_propagate_error(error, g_steal_pointer(&missing));
    return FALSE;
  }
  if (!host_prep_vfio_begin(op->prep, hostdev, error))
    return FALSE;
  if (!hostdev->managed && !host_pci_check_assignable(&hostdev->pci_source, FALSE, error))
    return FALSE;
  return op->hotplug->take_whole_group && hostdev->managed
             ? TRUE
             : vfio_group_check_viable(op->prep->vfio->group, &hostdev->pci_source, error);
}

static void
attach_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (!check_not_attached(op->hotplug, op->hostdev, &error)) {
    op_return(task, NULL, error);
    return;
  }
  op->alias_given = op->hostdev->alias != NULL;
  op->prep = host_prep_new();
  switch (op->hostdev->type) {
  case HOSTDEV_TYPE_USB:
    op->usb = host_usb_resolve(op->hostdev, &error);
    if (op->usb) {
      /* Keep where it was found, as libvirt does, so detach by address matches too. */
      op->hostdev->usb.has_address = TRUE;
      op->hostdev->usb.bus = op->usb->bus;
      op->hostdev->usb.device = op->usb->device;
    }
    break;
  case HOSTDEV_TYPE_PCI:
    pci_precheck(op, &error);
    break;
  case HOSTDEV_TYPE_MDEV:
    /* QEMU opens the mediated device by its sysfs path; it checks the UUID itself */
    break;
  }
  if (error == NULL)
    policy_allows(op, &error);
  if (error) {
    op_return(task, NULL, error);
    return;
  }
  /*
   * A PCI device needs the bus layout.  A USB device goes wherever QEMU has
   * a free port, so the common case needs no look-up at all: an alias that
   * clashes with a foreign device is corrected once when QEMU says so.
   */
  if (op->hostdev->type != HOSTDEV_TYPE_USB || op->dry_run)
    guest_topology_query_async(op->hotplug->qmp, NULL, on_attach_topology, task);
  else
    attach_plan(task, NULL);
}

void
hotplug_attach_async(Hotplug *hotplug, const char *xml, gboolean dry_run,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = op_new(hotplug, attach_start, hotplug_attach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);

  op->dry_run = dry_run;
  op_submit(task, xml);
}

JsonNode *
hotplug_attach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

/* ---- detach ------------------------------------------------------------- */

/* Backoff for "guest is busy": 100 ms doubling, within the wait. */
#define BUSY_RETRY_FIRST_MS 100
#define BUSY_RETRY_MAX 8

static JsonNode *
detach_reply(const char *alias, const char *status)
{
  g_autoptr(JsonObject) reply = json_object_new();
  json_object_set_string_member(reply, "alias", alias);
  json_object_set_string_member(reply, "status", status);
  return json_node_init_object(json_node_alloc(), reply);
}

/* Return to "attached" after a refused unplug. */
static void
detach_abandon(Hotplug *hotplug, VmDevice *device)
{
  g_autoptr(GError) error = NULL;
  device->state = VM_DEVICE_ATTACHED;
  device->detach_waiting = FALSE;
  if (!journal_device(hotplug, device->hostdev, STATE_ATTACHED, "done", NULL, NULL, FALSE, &error))
    g_warning("%s", error->message);
}

/* detach_conclude() - once device_del and the waiter have both answered. */
static void
detach_conclude(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  VmDevice *device = vm_devices_find_alias(hotplug->devices, op->alias);

  if (!op->del_answered || op->waiting)
    return;
  g_cancellable_cancel(op->wait_cancel);
  if (device)
    device->detach_waiting = FALSE;
  if (g_strcmp0(op->outcome, "deleted") == 0) {
    if (device)
      release_device(hotplug, device, "QEMU reported DEVICE_DELETED", task,
                     detach_reply(op->alias, "detached"));
    else
      op_return(task, detach_reply(op->alias, "detached"), NULL);
  } else if (g_strcmp0(op->outcome, "guest-error") == 0) {
    if (device)
      detach_abandon(hotplug, device);
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                      "the guest refused to release %s "
                                      "(DEVICE_UNPLUG_GUEST_ERROR); it stays attached — check "
                                      "the guest's log for why it is still in use", op->alias));
  } else {
    g_message("%s: unplug requested, the guest has not released it yet", op->alias);
    op_return(task, detach_reply(op->alias, "pending"), NULL);
  }
}

/* Both waiters end here; the first to report decides, the other is cancelled. */
static void
detach_event_seen(GTask *task, const char *outcome, const GError *error)
{
  Op *op = g_task_get_task_data(task);

  if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && op->outcome == NULL) {
    op->outcome = g_strdup(error ? "timeout" : outcome);
    op->waiting = FALSE;
    g_cancellable_cancel(op->wait_cancel);
    detach_conclude(task);
  }
  g_object_unref(task);
}

static void
on_deleted_event(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) data = qmp_client_wait_event_finish(QMP_CLIENT(source), result, &error);
  detach_event_seen(user_data, "deleted", error);
}

static void
on_guest_error_event(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) data = qmp_client_wait_event_finish(QMP_CLIENT(source), result, &error);
  /* a timeout of this waiter says nothing; the DEVICE_DELETED waiter times out too */
  if (g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT)) {
    g_object_unref(user_data);
    return;
  }
  detach_event_seen(user_data, "guest-error", error);
}

static void send_device_del(GTask *task);

static gboolean
on_busy_backoff(gpointer user_data)
{
  send_device_del(user_data);
  return G_SOURCE_REMOVE;
}

static void
on_device_del(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  VmDevice *device = vm_devices_find_alias(hotplug->devices, op->alias);

  if (g_error_matches(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND)) {
    /* Already gone from QEMU (unplugged meanwhile): nothing holds it any more. */
    op->waiting = FALSE;
    g_cancellable_cancel(op->wait_cancel);
    if (device)
      release_device(hotplug, device, "QEMU no longer has it", task,
                     detach_reply(op->alias, "detached"));
    else
      op_return(task, detach_reply(op->alias, "detached"), NULL);
    return;
  }
  /* A guest still busy with an earlier unplug request: ask again a little later. */
  if (error && strstr(error->message, "busy") && op->busy_retries < BUSY_RETRY_MAX &&
      g_get_monotonic_time() < op->deadline) {
    guint delay = BUSY_RETRY_FIRST_MS << op->busy_retries++;
    g_debug("%s: %s; asking again in %u ms", op->alias, error->message, delay);
    g_timeout_add(delay, on_busy_backoff, task);
    return;
  }
  if (error) {
    op->waiting = FALSE;
    g_cancellable_cancel(op->wait_cancel);
    if (device)
      detach_abandon(hotplug, device);
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, qemu_failure_code(error),
                                      "QEMU refused to unplug %s: %s", op->alias,
                                      error->message));
    return;
  }
  if (device)
    device->state = VM_DEVICE_DETACHING;
  op->del_answered = TRUE;
  detach_conclude(task);
}

static void
send_device_del(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "id", op->alias);
  qmp_client_execute_async(op->hotplug->qmp, "device_del", args, -1, 0, NULL, on_device_del, task);
}

static void
detach_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  VmDevice *device = op->alias ? vm_devices_find_alias(hotplug->devices, op->alias)
                               : vm_devices_find_source(hotplug->devices, op->hostdev);
  g_autoptr(GError) error = NULL;

  if (device == NULL) {
    g_autofree char *what = op->alias ? g_strdup_printf("alias '%s'", op->alias)
                                      : hostdev_describe_source(op->hostdev);
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                                      "no device attached by hostdevd matches %s; "
                                      "see `hostdevctl list VM` for what is attached", what));
    return;
  }
  if (!journal_device(hotplug, device->hostdev, STATE_DETACHING, "device-del", NULL, NULL, FALSE, &error)) {
    op_return(task, NULL, g_steal_pointer(&error));
    return;
  }
  g_free(op->alias);
  op->alias = g_strdup(device->hostdev->alias);
  device->detach_waiting = TRUE;
  op->deadline = g_get_monotonic_time() + (gint64)op->wait_ms * 1000;

  /* Armed before device_del, so an immediate event is not missed. */
  op->wait_cancel = g_cancellable_new();
  if (op->wait_ms > 0) {
    op->waiting = TRUE;
    qmp_client_wait_event_async(hotplug->qmp, "DEVICE_DELETED", "device", op->alias,
                                op->wait_ms, op->wait_cancel, on_deleted_event, g_object_ref(task));
    qmp_client_wait_event_async(hotplug->qmp, "DEVICE_UNPLUG_GUEST_ERROR", "device", op->alias,
                                op->wait_ms, op->wait_cancel, on_guest_error_event,
                                g_object_ref(task));
  }
  send_device_del(task);
}

void
hotplug_detach_async(Hotplug *hotplug, const char *xml, const char *alias, guint wait_ms,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = op_new(hotplug, detach_start, hotplug_detach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);

  op->wait_ms = wait_ms;
  op->alias = g_strdup(alias);
  op_submit(task, alias ? NULL : xml);
}

JsonNode *
hotplug_detach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

/* ---- what is attached --------------------------------------------------- */

static const char *
state_name(VmDeviceState state)
{
  switch (state) {
  case VM_DEVICE_ATTACHED:
    return "attached";
  case VM_DEVICE_DETACHING:
    return "detaching";
  }
  return "unknown";
}

JsonNode *
hotplug_list(Hotplug *hotplug)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  JsonArray *list = json_array_new();

  for (guint i = 0; i < all->len; i++) {
    VmDevice *device = g_ptr_array_index(all, i);
    JsonObject *entry = json_object_new();
    g_autofree char *source = hostdev_describe_source(device->hostdev);
    g_autofree char *xml = hostdev_format_xml(device->hostdev);
    json_object_set_string_member(entry, "alias", device->hostdev->alias);
    json_object_set_string_member(entry, "type", hostdev_type_name(device->hostdev->type));
    json_object_set_string_member(entry, "source", source);
    json_object_set_string_member(entry, "state", state_name(device->state));
    json_object_set_string_member(entry, "xml", xml);
    json_array_add_object_element(list, entry);
  }
  return json_node_init_array(json_node_alloc(), list);
}

char *
hotplug_dumpxml(Hotplug *hotplug)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  g_autoptr(GString) out = g_string_new("<devices>\n");

  for (guint i = 0; i < all->len; i++) {
    VmDevice *device = g_ptr_array_index(all, i);
    g_autofree char *xml = hostdev_format_xml(device->hostdev);
    g_auto(GStrv) lines = g_strsplit(xml, "\n", -1);
    for (char **line = lines; *line; line++)
      if (**line)
        g_string_append_printf(out, "  %s\n", *line);
  }
  g_string_append(out, "</devices>\n");
  return g_string_free(g_steal_pointer(&out), FALSE);
}

void
hotplug_release_all_async(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer user_data)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  g_autoptr(GTask) task = g_task_new(NULL, NULL, callback, user_data);

  /* held, so the count cannot reach zero before every release has started */
  hotplug->releases_pending++;
  while (all->len > 0)
    release_device(hotplug, g_ptr_array_index(all, all->len - 1), "QEMU exited", NULL, NULL);
  /* QEMU is gone, so no group is in use any more */
  while (hotplug->group_waiting->len > 0)
    release_host(g_ptr_array_steal_index(hotplug->group_waiting, 0));
  if (--hotplug->releases_pending == 0) {
    g_task_return_boolean(task, TRUE);
    return;
  }
  hotplug->release_all = g_object_ref(task);
}

gboolean
hotplug_release_all_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}

/* ---- events from QEMU ------------------------------------------------- */

static void
on_qemu_event(QmpClient *qmp, const char *name, JsonObject *data, gint64 timestamp_us,
              gpointer user_data)
{
  Hotplug *hotplug = user_data;
  gboolean deleted = g_strcmp0(name, "DEVICE_DELETED") == 0;

  if (!deleted && g_strcmp0(name, "DEVICE_UNPLUG_GUEST_ERROR") != 0)
    return;
  const char *alias = json_object_get_string_member_with_default(data, "device", NULL);
  VmDevice *device = alias ? vm_devices_find_alias(hotplug->devices, alias) : NULL;
  /* A detach request that is still waiting handles its own events. */
  if (device == NULL || device->detach_waiting)
    return;
  if (deleted) {
    release_device(hotplug, device,
                   device->state == VM_DEVICE_DETACHING
                       ? "the guest finished the pending unplug"
                       : "QEMU removed it (unplugged from inside the guest)",
                   NULL, NULL);
  } else if (device->state == VM_DEVICE_DETACHING) {
    g_autoptr(JsonObject) event = json_object_new();
    g_message("%s: the guest refused the pending unplug; it stays attached", alias);
    detach_abandon(hotplug, device);
    json_object_set_string_member(event, "alias", alias);
    json_object_set_string_member(event, "reason", "the guest refused the unplug");
    emit_event(hotplug, "DEVICE_DETACH_FAILED", event);
  }
}

/* ---- reconcile after a restart ---------------------------------------- */

typedef struct {
  guint kept;
  guint finished;
  guint undone;
} ReconcileCount;

static gboolean
all_present(const StateEntry *entry, const char *const *ids)
{
  for (char **id = entry->qemu_ids; id && *id; id++)
    if (!g_strv_contains(ids, *id))
      return FALSE;
  return g_strv_contains(ids, entry->alias);
}

/* reconcile_entry() - make one journal entry agree with what QEMU really has. */
static void
reconcile_entry(Hotplug *hotplug, StateEntry *entry, const char *const *ids, ReconcileCount *count)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *alias = g_strdup(entry->alias);
  g_autoptr(Hostdev) hostdev = hostdev_parse_live_xml(entry->xml, strlen(entry->xml), &error);
  g_autoptr(HostPrep) prep = hostdev && entry->host ? host_prep_from_json(entry->host, &error)
                                                    : host_prep_new();
  gboolean present = g_strv_contains(ids, alias);

  if (hostdev == NULL || prep == NULL) {
    g_warning("journal entry %s is unreadable (%s); left for a person to check", alias,
              error->message);
    return;
  }
  switch (entry->state) {
  case STATE_ATTACHED:
    if (present) {
      vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev), g_steal_pointer(&prep));
      count->kept++;
      return;
    }
    g_message("%s left the VM while hostdevd was not running", alias);
    break;
  case STATE_ATTACHING:
    if (all_present(entry, ids)) {
      g_message("%s: finishing an attach interrupted after QEMU accepted it", alias);
      if (!journal_device(hotplug, hostdev, STATE_ATTACHED, "done", NULL, prep, FALSE, &error))
        g_warning("%s", error->message);
      vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev), g_steal_pointer(&prep));
      count->finished++;
      return;
    }
    g_message("%s: undoing an attach interrupted at step '%s'", alias, entry->step);
    for (guint i = g_strv_length(entry->qemu_ids); i-- > 0;) {
      const char *id = entry->qemu_ids[i];
      if (g_strv_contains(ids, id) && (g_strcmp0(id, alias) == 0 || present))
        remove_from_qemu(hotplug, id);
    }
    if (present && hostdev->type == HOSTDEV_TYPE_PCI) {
      /* the guest may hold it: give it back only when QEMU reports it gone */
      VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev), g_steal_pointer(&prep));
      device->state = VM_DEVICE_DETACHING;
      if (!journal_device(hotplug, device->hostdev, STATE_DETACHING, "device-del", NULL, NULL, FALSE, &error))
        g_warning("%s", error->message);
      count->undone++;
      return;
    }
    count->undone++;
    break;
  case STATE_DETACHING:
    if (g_strcmp0(entry->step, "wait-group") == 0 && !present) {
      /* left QEMU; its IOMMU group goes back with the group's last device */
      VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev),
                                        g_steal_pointer(&prep));
      release_device(hotplug, device, "reconciled after a restart", NULL, NULL);
      count->finished++;
      return;
    }
    if (present) {
      /* the unplug request may never have reached QEMU: ask again, it is idempotent */
      VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev), g_steal_pointer(&prep));
      device->state = VM_DEVICE_DETACHING;
      remove_from_qemu(hotplug, alias);
      g_message("%s: detach still pending in the guest", alias);
      count->kept++;
      return;
    }
    g_message("%s: finishing a detach interrupted at step '%s'", alias, entry->step);
    count->finished++;
    break;
  }
  /* QEMU does not hold it: give the host device back and forget it */
  VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev),
                                    g_steal_pointer(&prep));
  release_device(hotplug, device, "reconciled after a restart", NULL, NULL);
}

static void
on_reconcile_ids(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  Hotplug *hotplug = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  ReconcileCount count = { 0 };

  if (value == NULL) {
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                            "cannot list QEMU's devices to reconcile the journal: %s",
                            error->message);
    g_error_free(error);
    return;
  }
  g_auto(GStrv) ids = peripheral_ids(value);
  /* reconcile_entry() may forget entries: walk a snapshot of the aliases */
  GPtrArray *entries = state_journal_entries(hotplug->journal);
  g_autoptr(GPtrArray) aliases = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < entries->len; i++)
    g_ptr_array_add(aliases, g_strdup(((StateEntry *)g_ptr_array_index(entries, i))->alias));
  for (guint i = 0; i < aliases->len; i++) {
    StateEntry *entry = state_journal_find(hotplug->journal, g_ptr_array_index(aliases, i));
    if (entry)
      reconcile_entry(hotplug, entry, (const char *const *)ids, &count);
  }
  if (aliases->len > 0)
    g_message("journal reconciled: %u device(s) kept, %u finished, %u undone", count.kept,
              count.finished, count.undone);
  g_task_return_boolean(task, TRUE);
}

void
hotplug_reconcile_async(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, NULL, callback, user_data);
  g_task_set_task_data(task, hotplug, NULL);
  list_peripherals(hotplug, on_reconcile_ids, task);
}

gboolean
hotplug_reconcile_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}

Hotplug *
hotplug_new(QmpClient *qmp, StateJournal *journal, const HotplugConfig *config,
            HotplugEventFunc emit, gpointer user_data)
{
  Hotplug *hotplug = g_new0(Hotplug, 1);
  hotplug->qmp = g_object_ref(qmp);
  hotplug->journal = journal;
  hotplug->vm = g_strdup(config->vm);
  hotplug->runtime_dir = g_strdup(config->runtime_dir);
  hotplug->qemu_uid = config->qemu_uid;
  hotplug->qemu_gid = config->qemu_gid;
  hotplug->policy = config->policy;
  hotplug->take_whole_group = config->policy &&
      policy_iommu_group_takeover_allowed(config->policy, config->vm, NULL);
  hotplug->group_waiting = g_ptr_array_new();
  hotplug->devices = vm_devices_new();
  hotplug->emit = emit;
  hotplug->emit_data = user_data;
  g_queue_init(&hotplug->queue);
  hotplug->event_handler = g_signal_connect(qmp, "event", G_CALLBACK(on_qemu_event), hotplug);
  return hotplug;
}

void
hotplug_free(Hotplug *hotplug)
{
  if (hotplug == NULL)
    return;
  g_signal_handler_disconnect(hotplug->qmp, hotplug->event_handler);
  g_object_unref(hotplug->qmp);
  vm_devices_free(hotplug->devices);
  g_ptr_array_unref(hotplug->group_waiting);
  g_free(hotplug->vm);
  g_free(hotplug->runtime_dir);
  g_free(hotplug);
}
