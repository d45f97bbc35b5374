/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug-private.h"
#include "host-pci.h"
#include "host-root.h"
#include "memlock.h"
#include "usb-fd.h"

#include <string.h>
#include <unistd.h>

/* ---- attach ------------------------------------------------------------- */

/* phase_mark() - the phase @name of this attach ends now: record how long it took. */
static void
phase_mark(Op *op, const char *name)
{
  gint64 now = g_get_monotonic_time();
  if (op->timings == NULL)
    op->timings = json_object_new();
  json_object_set_double_member(op->timings, name, (double)(now - op->phase_start) / 1000.0);
  op->phase_start = now;
}

/* @timings: (nullable): milliseconds per phase, reported so that slow steps can be told apart */
static JsonNode *
attach_reply(const Hostdev *hostdev, JsonObject *timings)
{
  g_autoptr(JsonObject) reply = json_object_new();
  g_autofree char *xml = hostdev_format_xml(hostdev);
  g_autofree char *source = hostdev_describe_source(hostdev);
  json_object_set_string_member(reply, "alias", hostdev->alias);
  json_object_set_string_member(reply, "source", source);
  json_object_set_string_member(reply, "xml", xml);
  if (timings)
    json_object_set_object_member(reply, "timings", json_object_ref(timings));
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
    hotplug_journal_forget(op->hotplug, op->hostdev->alias);
  }
  hotplug_restore_memlock_if_unused(op->hotplug);
  hotplug_op_return(undo->task, NULL, reported);
  g_free(undo);
}

static void
attach_undo_host(gpointer data)
{
  AttachUndo *undo = data;
  Op *op = g_task_get_task_data(undo->task);
  hotplug_keep_shared_claims(op->hotplug, op->prep);
  host_prep_release_async(op->prep, op->hotplug->runtime_dir, op->hotplug->vm,
                          NULL, on_attach_host_undone, undo);
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
    hotplug_remove_from_qemu(hotplug, id);
  }
  if (target_added && op->ops->unplug_needs_guest) {
    /* the guest has to let go first; the late DEVICE_DELETED finishes the release */
    g_autoptr(GError) journal_error = NULL;
    VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&op->hostdev),
                                      g_steal_pointer(&op->prep));
    device->state = VM_DEVICE_DETACHING;
    if (!hotplug_journal_device(hotplug, device->hostdev, STATE_DETACHING, "device-del", NULL,
                        device->prep, FALSE, &journal_error))
      g_warning("%s", journal_error->message);
    hotplug_op_return(task, NULL, g_error_new(error->domain, error->code,
                                      "%s; QEMU was asked to remove %s again, and it is "
                                      "listed as detaching until the guest lets it go",
                                      error->message, device->hostdev->alias));
    g_error_free(error);
    return;
  }
  AttachUndo *undo = g_new0(AttachUndo, 1);
  undo->task = task;
  undo->error = error;
  hotplug_remove_fdset(hotplug, op->prep, attach_undo_host, undo);
}

static void
attach_done(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hostdev *live = g_steal_pointer(&op->hostdev);
  g_autofree char *source = hostdev_describe_source(live);
  g_autoptr(GError) error = NULL;

  if (!hotplug_journal_device(op->hotplug, live, STATE_ATTACHED, "done", op->commands, op->prep, FALSE,
                      &error))
    g_warning("%s", error->message);
  vm_devices_add(op->hotplug->devices, live, g_steal_pointer(&op->prep));
  g_message("%s (%s) attached", live->alias, source);

  phase_mark(op, "verify");
  JsonNode *reply = attach_reply(live, op->timings);
  hotplug_emit(op->hotplug, "DEVICE_ATTACHED", json_node_get_object(reply));
  hotplug_op_return(task, reply, NULL);
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
  g_auto(GStrv) ids = value ? hotplug_peripheral_ids(value) : NULL;

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
  g_auto(GStrv) ids = hotplug_peripheral_ids(value);
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
      hotplug_journal_forget(op->hotplug, op->hostdev->alias);
      hotplug_list_peripherals(op->hotplug, on_ids_refreshed, task);
      return;
    }
    g_autofree char *what = hostdev_describe_source(op->hostdev);
    /*
     * A timed-out device_add may still complete.  A USB device is removed
     * behind it (QEMU answers in order, and USB unplug is immediate).  A
     * PCI device may reach the guest, which then has to let it go: it is
     * handled as added, so it stays listed as detaching until QEMU reports
     * it gone, and only then does the host get it back.
     */
    if (g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT)) {
      if (op->ops->unplug_needs_guest && op->added + 1 == op->commands->len)
        op->added++;
      else
        hotplug_remove_from_qemu(op->hotplug, json_object_get_string_member(command, "id"));
    }
    attach_fail(task, g_error_new(HOSTDEVD_ERROR, hotplug_qemu_failure_code(error),
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
  phase_mark(op, "device_add");
  op->ops->verify(task);
}

/* A device QEMU lists among its peripherals is there. */
static void
verify_listed(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  hotplug_list_peripherals(op->hotplug, on_pci_verified, task);
}

/* The x-query-usb sent behind device_add confirms the device once both answered. */
static void
verify_usb(GTask *task)
{
  Op *op = g_task_get_task_data(task);
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
  if (op->ops->after_last_add_sent && op->added + 1 == op->commands->len)
    op->ops->after_last_add_sent(task);
}

/*
 * QEMU answers commands in order, so the query sent right behind the USB
 * device's device_add sees the device, without a second round trip.
 */
static void
query_usb_behind_add(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  UsbQuery *query = g_new0(UsbQuery, 1);
  query->task = g_object_ref(task);
  query->generation = ++op->usb_query_generation;
  op->usb_query_done = FALSE;
  g_clear_pointer(&op->usb_query, json_node_unref);
  qmp_client_execute_async(op->hotplug->qmp, "x-query-usb", NULL, -1, 0, NULL,
                           on_usb_queried, query);
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
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
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
    hotplug_op_return(task, NULL, error);
    return;
  }
  g_autoptr(JsonObject) add_fd = add_fd_arguments(op->hostdev->alias, -1);
  hotplug_op_return(task, dry_run_reply(op->commands, add_fd), NULL);
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
  if (hotplug_journal_device(op->hotplug, op->hostdev, STATE_ATTACHING, step, op->commands, op->prep,
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
    count += hotplug_type_ops(device->hostdev->type)->pins_guest_memory;
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
  /* with a vIOMMU each VFIO device may pin all guest RAM on its own */
  gboolean viommu = op->topology &&
                    memlock_guest_has_viommu((const char *const *)op->topology->types);
  guint64 needed = memlock_needed_for_guest(ram, vfio_device_count(op->hotplug), viommu);

  Hotplug *hotplug = op->hotplug;
  gboolean enough = qemu <= 0 || (memlock_get(qemu, &soft, &hard, NULL) && soft >= needed) ||
                    process_has_ipc_lock(qemu);
  if (!enough) {
    if (!hotplug->memlock_saved) {
      hotplug->memlock_soft = soft;
      hotplug->memlock_hard = hard;
    }
    /* the limit QEMU had is in the journal before it changes */
    op->prep->memlock_saved = TRUE;
    op->prep->memlock_soft = hotplug->memlock_soft;
    op->prep->memlock_hard = hotplug->memlock_hard;
    if (!attach_journal(task, "memlock", FALSE))
      return;
    if (!memlock_raise(qemu, needed, &error)) {
      attach_fail(task, error);
      return;
    }
    hotplug->memlock_saved = TRUE;
    g_autofree char *size = memlock_format_bytes(needed);
    g_message("raised QEMU's (pid %d) locked-memory limit to %s for VFIO", (int)qemu, size);
  }
  /* every VFIO device's record carries the original, so whichever leaves last restores it */
  if (hotplug->memlock_saved) {
    op->prep->memlock_saved = TRUE;
    op->prep->memlock_soft = hotplug->memlock_soft;
    op->prep->memlock_hard = hotplug->memlock_hard;
  }
  phase_mark(op, "memlock");
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

  /* a VF's MAC/VLAN as they were are in the journal before they change */
  if (op->prep->vfio) {
    if (!host_prep_vf_save(op->prep, op->hostdev, &error)) {
      attach_fail(task, error);
      return;
    }
    if (!attach_journal(task, "vf-program", FALSE))
      return;
    if (!host_prep_vf_apply(op->prep, op->hostdev, &error)) {
      attach_fail(task, error);
      return;
    }
  }
  op->ops->before_add(task);
}

/* A USB device found on the host travels as a descriptor; an absent one is QEMU's to find. */
static void
usb_before_add(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  if (op->usb)
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
  phase_mark(g_task_get_task_data(task), "bind");
  attach_after_binding(task);
}

static void
attach_prepare_host(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  GError *error = NULL;

  if (!host_prep_claim(op->prep, hotplug->runtime_dir, hotplug->vm,
                       &(ClaimOwner){ getpid(), hotplug->qemu.pid }, op->hostdev, op->usb,
                       &error)) {
    attach_fail(task, error);
    return;
  }
  phase_mark(op, "claim");
  if (op->prep->vfio) {
    /* the record of how the device was is taken only now that it is ours: before the
     * claim another VM's release could still have been changing it */
    g_clear_pointer(&op->prep->vfio, vfio_record_unref);
    if (!host_prep_vfio_begin(op->prep, op->hostdev, &error)) {
      attach_fail(task, error);
      return;
    }
  }
  if (op->prep->vfio == NULL) {
    attach_after_binding(task);
    return;
  }
  /*
   * The binding is planned first (the group's companions and the node's
   * owner as they are now), then the record is journaled as if binding had
   * happened, in case we die: it holds everything the binding will do.
   */
  VmDevice *sibling = vm_devices_find_group(hotplug->devices, op->prep->vfio->group, NULL);
  if (!host_prep_vfio_plan(op->prep, hotplug->take_whole_group,
                           sibling ? sibling->prep->vfio : NULL, &error)) {
    attach_fail(task, error);
    return;
  }
  if (!attach_journal(task, "vfio-bind", TRUE))
    return;
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

/* Return: (transfer full): the alias of every device the journal records. */
static GStrv
journal_aliases(Hotplug *hotplug)
{
  GPtrArray *entries = state_journal_entries(hotplug->journal);
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  for (guint i = 0; i < entries->len; i++)
    g_strv_builder_add(builder, ((StateEntry *)g_ptr_array_index(entries, i))->alias);
  return g_strv_builder_end(builder);
}

static GStrv
strv_concat(const char *const *a, const char *const *b)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  g_strv_builder_addv(builder, (const char **)a);
  g_strv_builder_addv(builder, (const char **)b);
  return g_strv_builder_end(builder);
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
    /*
     * libvirt's choice from our own devices, counting every alias the
     * journal still holds (a device waiting for its IOMMU group, a release
     * that failed or finishes late): reusing one would let that record's
     * end delete the new device's.  QEMU's ids only matter when they clash.
     */
    g_auto(GStrv) journaled = journal_aliases(op->hotplug);
    hostdev->alias = vm_devices_next_alias(op->hotplug->devices, (const char *const *)journaled);
    if (qemu_ids && g_strv_contains(qemu_ids, hostdev->alias)) {
      g_auto(GStrv) taken = strv_concat(qemu_ids, (const char *const *)journaled);
      g_free(hostdev->alias);
      hostdev->alias = vm_devices_next_alias(op->hotplug->devices, (const char *const *)taken);
    }
  } else if (qemu_ids && g_strv_contains(qemu_ids, hostdev->alias)) {
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                      "alias '%s' is already the id of a device in QEMU; "
                                      "choose another <alias name='ua-…'/> or leave it out",
                                      hostdev->alias));
    return;
  }

  op->context = (QemuDeviceContext){ .id = hostdev->alias, .usb = op->usb };
  gboolean zpci_reused = FALSE;
  if (op->topology && op->ops->placed_on_pci_bus) {
    PciAddress placed;
    op->context.s390x = guest_topology_has_zpci(op->topology);
    op->context.pcie_root = guest_topology_find_bus(op->topology, 0) &&
                        g_strcmp0(guest_topology_find_bus(op->topology, 0)->id, "pcie.0") == 0;
    /* On s390x QEMU picks the slot; the guest addresses the device by its zPCI ids. */
    if (!op->context.s390x || hostdev->pci_guest.present) {
      if (!guest_pci_place(op->topology, hostdev->pci_guest.present ? &hostdev->pci_guest.addr : NULL,
                           &placed, &bus, &error)) {
        hotplug_op_return(task, NULL, error);
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
        hotplug_op_return(task, NULL, error);
        return;
      }
      hostdev->zpci.has_uid = hostdev->zpci.has_fid = TRUE;
      hostdev->zpci.uid = uid;
      hostdev->zpci.fid = fid;
    }
  }

  op->commands = qemu_device_plan(hostdev, &op->context, &error);
  if (op->commands == NULL) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  /* a zpci device left behind by a failed attach is already in QEMU: start past it */
  if (zpci_reused) {
    g_message("%s: reusing zpci uid %u fid %u left by an earlier attempt", hostdev->alias,
              hostdev->zpci.uid, hostdev->zpci.fid);
    op->added = 1;
  }
  phase_mark(op, "checks");
  if (op->dry_run) {
    if (op->usb)
      dry_run_predict_fdset(task);
    else
      hotplug_op_return(task, dry_run_reply(op->commands, NULL), NULL);
    return;
  }
  /* an absent optional USB device takes nothing from the host */
  if (!op->ops->takes_from_host(op)) {
    attach_devices(task);
    return;
  }
  if (!hotplug_journal_device(op->hotplug, hostdev, STATE_ATTACHING, "claim", op->commands, op->prep,
                      FALSE, &error)) {
    hotplug_op_return(task, NULL, error);
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
    hotplug_op_return(task, NULL, error);
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
  /* a device still on its way back to the host: its original state is not back yet */
  VmDevice *leaving = hotplug_find_leaving(hotplug, hostdev, NULL);
  if (leaving) {
    g_autofree char *what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "%s left this VM as %s and is still being given back to the host (or waits "
                "for the rest of its IOMMU group to leave); try again once `hostdevctl list` "
                "no longer shows it and the DEVICE_DETACHED event came", what,
                leaving->hostdev->alias);
    return FALSE;
  }
  if (hostdev->alias && state_journal_find(hotplug->journal, hostdev->alias)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "alias '%s' still names a device that is being given back to the host; "
                "choose another <alias name='ua-…'/> or try again later", hostdev->alias);
    return FALSE;
  }
  return TRUE;
}

/* policy_allows() - FALSE with PolicyDenied naming the rule when the VM may not have the device. */
static gboolean
policy_allows(Op *op, GError **error)
{
  PolicyDeviceFacts facts = { 0 };
  const char *rule = NULL;

  if (op->hotplug->policy == NULL || !op->ops->policy_facts(op, &facts))
    return TRUE;
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

/* ---- what differs by type ------------------------------------------------ */

static gboolean
usb_resolve(Op *op, GError **error)
{
  g_autoptr(GError) local = NULL;
  op->usb = host_usb_resolve(op->hostdev, &local);
  if (local) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  if (op->usb) {
    /* Keep where it was found, as libvirt does, so detach by address matches too. */
    op->hostdev->usb.has_address = TRUE;
    op->hostdev->usb.bus = op->usb->bus;
    op->hostdev->usb.device = op->usb->device;
  }
  return TRUE;
}

/* QEMU opens the mediated device by its sysfs path; it checks the UUID itself. */
static gboolean
mdev_resolve(Op *op, GError **error)
{
  return TRUE;
}

static gboolean
usb_policy_facts(Op *op, PolicyDeviceFacts *facts)
{
  const Hostdev *hostdev = op->hostdev;
  facts->type = POLICY_DEVICE_USB;
  facts->usb_ids_known = op->usb || hostdev->usb.has_vendor_product;
  facts->usb_vendor = op->usb ? op->usb->vendor : hostdev->usb.vendor;
  facts->usb_product = op->usb ? op->usb->product : hostdev->usb.product;
  return TRUE;
}

static gboolean
pci_policy_facts(Op *op, PolicyDeviceFacts *facts)
{
  const Hostdev *hostdev = op->hostdev;
  g_autoptr(HostPciDevice) pci = host_pci_device_read(&hostdev->pci_source, NULL);
  facts->type = POLICY_DEVICE_PCI;
  facts->pci_domain = hostdev->pci_source.domain;
  facts->pci_bus = hostdev->pci_source.bus;
  facts->pci_slot = hostdev->pci_source.slot;
  facts->pci_function = hostdev->pci_source.function;
  if (pci) {
    g_autofree char *path = host_path("sys/bus/pci/devices/%s/boot_vga", pci->name);
    g_autofree char *boot_vga = host_read_attr(path, NULL);
    facts->pci_vendor = pci->vendor;
    facts->pci_device = pci->device;
    facts->pci_class = pci->class_code;
    facts->boot_vga = g_strcmp0(boot_vga, "1") == 0;
  }
  return TRUE;
}

/* A mediated device is a slice of its parent, which the policy governs. */
static gboolean
mdev_policy_facts(Op *op, PolicyDeviceFacts *facts)
{
  return FALSE;
}

static gboolean
usb_takes_from_host(const Op *op)
{
  return op->usb != NULL;
}

static gboolean
always_takes_from_host(const Op *op)
{
  return TRUE;
}

static const HotplugTypeOps type_ops[] = {
  [HOSTDEV_TYPE_USB] = {
    .unplug_needs_guest = FALSE,
    .pins_guest_memory = FALSE,
    .placed_on_pci_bus = FALSE,
    .resolve = usb_resolve,
    .policy_facts = usb_policy_facts,
    .takes_from_host = usb_takes_from_host,
    .before_add = usb_before_add,
    .after_last_add_sent = query_usb_behind_add,
    .verify = verify_usb,
  },
  [HOSTDEV_TYPE_PCI] = {
    .unplug_needs_guest = TRUE,
    .pins_guest_memory = TRUE,
    .placed_on_pci_bus = TRUE,
    .resolve = pci_precheck,
    .policy_facts = pci_policy_facts,
    .takes_from_host = always_takes_from_host,
    .before_add = attach_raise_memlock,
    .verify = verify_listed,
  },
  [HOSTDEV_TYPE_MDEV] = {
    .unplug_needs_guest = TRUE,
    .pins_guest_memory = TRUE,
    .placed_on_pci_bus = TRUE,
    .resolve = mdev_resolve,
    .policy_facts = mdev_policy_facts,
    .takes_from_host = always_takes_from_host,
    .before_add = attach_raise_memlock,
    .verify = verify_listed,
  },
};

const HotplugTypeOps *
hotplug_type_ops(HostdevType type)
{
  g_assert((gsize)type < G_N_ELEMENTS(type_ops) && type_ops[type].resolve);
  return &type_ops[type];
}

static void
attach_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (!check_not_attached(op->hotplug, op->hostdev, &error)) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  op->alias_given = op->hostdev->alias != NULL;
  op->prep = host_prep_new();
  op->phase_start = g_get_monotonic_time();
  op->ops = hotplug_type_ops(op->hostdev->type);
  if (op->ops->resolve(op, &error))
    policy_allows(op, &error);
  if (error) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  /*
   * A PCI device needs the bus layout.  A USB device goes wherever QEMU has
   * a free port, so the common case needs no look-up at all: an alias that
   * clashes with a foreign device is corrected once when QEMU says so.
   */
  if (op->ops->placed_on_pci_bus || op->dry_run)
    guest_topology_query_async(op->hotplug->qmp, NULL, on_attach_topology, task);
  else
    attach_plan(task, NULL);
}

void
hotplug_attach_async(Hotplug *hotplug, const char *xml, gboolean dry_run,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = hotplug_op_new(hotplug, attach_start, hotplug_attach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);

  op->dry_run = dry_run;
  hotplug_op_submit(task, xml);
}

JsonNode *
hotplug_attach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

