/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug-private.h"

#include <string.h>

/* ---- detach ------------------------------------------------------------- */

/* Backoff for "guest is busy": 100 ms doubling, within the wait. */
#define BUSY_RETRY_FIRST_MS 100
#define BUSY_RETRY_MAX 8

/* @op's reply: the device, and every function of its slot when the whole slot left */
static JsonNode *
detach_reply(const Op *op, const char *status)
{
  g_autoptr(JsonObject) reply = json_object_new();
  json_object_set_string_member(reply, "alias", op->alias);
  json_object_set_string_member(reply, "status", status);
  if (op->source)
    json_object_set_string_member(reply, "source", op->source);
  if (op->slot) {
    JsonArray *slot = json_array_new();
    for (char **alias = op->slot; *alias; alias++)
      json_array_add_string_element(slot, *alias);
    json_object_set_array_member(reply, "slot", slot);
  }
  return json_node_init_object(json_node_alloc(), reply);
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
      hotplug_release_when_gone(hotplug, device, "QEMU reported DEVICE_DELETED", task,
                                detach_reply(op, "detached"));
    else
      hotplug_op_return(task, detach_reply(op, "detached"), NULL);
  } else if (g_strcmp0(op->outcome, "guest-error") == 0) {
    if (device)
      hotplug_detach_abandon_slot(hotplug, device);
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                      "the guest refused to release %s "
                                      "(DEVICE_UNPLUG_GUEST_ERROR); it stays attached — check "
                                      "the guest's log for why it is still in use", op->alias));
  } else {
    g_message("%s: unplug requested, the guest has not released it yet", op->alias);
    hotplug_op_return(task, detach_reply(op, "pending"), NULL);
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
      hotplug_release_device(hotplug, device, "QEMU no longer has it", task,
                     detach_reply(op, "detached"));
    else
      hotplug_op_return(task, detach_reply(op, "detached"), NULL);
    return;
  }
  /*
   * An unplug QEMU already asked the guest for (a second detach while one
   * is pending): the request stands, so this one waits for the same event.
   * QEMU 7.2 says so as an error, and on q35/ACPI that state never expires.
   */
  if (error && strstr(error->message, "in the process of unplug")) {
    g_debug("%s: %s; waiting for the unplug already requested", op->alias, error->message);
    g_clear_error(&error);
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
      hotplug_detach_abandon_slot(hotplug, device);
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, hotplug_qemu_failure_code(error),
                                      "QEMU refused to unplug %s: %s", op->alias,
                                      error->message));
    return;
  }
  op->del_answered = TRUE;
  /* QEMU asked the guest: waiting for its answer must not hold the other requests */
  if (op->waiting)
    hotplug_op_let_queue_go(task);
  detach_conclude(task);
}

/* Return: (transfer full): device_del's arguments for @alias. */
static JsonObject *
device_del_args(const char *alias)
{
  JsonObject *args = json_object_new();
  json_object_set_string_member(args, "id", alias);
  return args;
}

static void
send_device_del(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  g_autoptr(JsonObject) args = device_del_args(op->alias);
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

  if (device == NULL && hotplug_retry_failed_release(hotplug, op->alias ? NULL : op->hostdev,
                                                     op->alias, task))
    return;
  /* already out of QEMU (an earlier device of the request took its slot along) */
  VmDevice *leaving = device ? NULL : hotplug_find_leaving(hotplug, op->alias ? NULL : op->hostdev,
                                                           op->alias);
  if (leaving) {
    g_free(op->alias);
    op->alias = g_strdup(leaving->hostdev->alias);
    op->source = hostdev_describe_source(leaving->hostdev);
    hotplug_op_return(task, detach_reply(op, "detached"), NULL);
    return;
  }
  if (device == NULL) {
    g_autofree char *what = op->alias ? g_strdup_printf("alias '%s'", op->alias)
                                      : hostdev_describe_source(op->hostdev);
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                                      "no device attached by hostdevd matches %s; "
                                      "see `hostdevctl list VM` for what is attached", what));
    return;
  }
  /* a function of a multifunction slot leaves with its slot: function 0 is unplugged */
  g_autoptr(GPtrArray) slot = hotplug_slot_of(hotplug, device);
  if (slot->len > 1) {
    VmDevice *head = g_ptr_array_index(slot, 0);
    g_autoptr(GStrvBuilder) aliases = g_strv_builder_new();
    for (guint i = 0; i < slot->len; i++)
      g_strv_builder_add(aliases, ((VmDevice *)g_ptr_array_index(slot, i))->hostdev->alias);
    op->slot = g_strv_builder_end(aliases);
    if (head != device)
      g_message("%s is function %u of a multifunction slot: the whole slot leaves, by its "
                "function 0 %s", device->hostdev->alias,
                device->hostdev->pci_guest.addr.function, head->hostdev->alias);
    device = head;
  }
  /* QEMU reads the device_del while its journal record is written (qmp_client_stage()) */
  g_autoptr(JsonObject) staged = device_del_args(device->hostdev->alias);
  qmp_client_stage(hotplug->qmp, "device_del", staged);
  for (guint i = 0; i < slot->len; i++)
    if (!hotplug_device_enter(hotplug, g_ptr_array_index(slot, i), VM_DEVICE_DETACHING,
                              &error)) {
      qmp_client_unstage(hotplug->qmp);
      hotplug_detach_abandon_slot(hotplug, device);
      hotplug_op_return(task, NULL, g_steal_pointer(&error));
      return;
    }
  g_free(op->alias);
  op->alias = g_strdup(device->hostdev->alias);
  op->deadline = g_get_monotonic_time() + (gint64)op->wait_ms * 1000;
  /* the staged bytes end here: QEMU dispatches while the rest is set up */
  send_device_del(task);

  op->source = hostdev_describe_source(device->hostdev);
  /* without a wait nobody here listens: the VM-wide handler must see DEVICE_DELETED */
  device->detach_waiting = op->wait_ms > 0;
  /* QEMU's answer and events are read from the main loop, after this returns: the
   * waiters armed now see even an immediate event */
  op->wait_cancel = g_cancellable_new();
  if (op->wait_ms > 0) {
    op->waiting = TRUE;
    qmp_client_wait_event_async(hotplug->qmp, "DEVICE_DELETED", "device", op->alias,
                                op->wait_ms, op->wait_cancel, on_deleted_event, g_object_ref(task));
    qmp_client_wait_event_async(hotplug->qmp, "DEVICE_UNPLUG_GUEST_ERROR", "device", op->alias,
                                op->wait_ms, op->wait_cancel, on_guest_error_event,
                                g_object_ref(task));
  }
}

/*
 * A <devices> request detaches its devices one after the other, each as a
 * request of its own would (queued in order); a detach cannot be undone
 * (the guest let go), so one that fails does not stop the others, and the
 * error names it and says what did leave.
 */
typedef struct {
  GTask *task;                   /* the request's */
  JsonArray *replies;            /* one per device that left */
  GString *failures;             /* "device N of <devices>: why; ..." */
  gint first_failure;            /* its error code, -1 none */
  guint pending;
} DetachBatch;

typedef struct {
  DetachBatch *batch;
  guint index;
} DetachMember;

static void
detach_batch_finish(DetachBatch *batch)
{
  if (batch->first_failure < 0) {
    g_autoptr(JsonObject) reply = json_object_new();
    json_object_set_array_member(reply, "devices", json_array_ref(batch->replies));
    g_task_return_pointer(batch->task, json_node_init_object(json_node_alloc(), reply),
                          (GDestroyNotify)json_node_unref);
  } else {
    g_autoptr(GString) left = g_string_new(NULL);
    for (guint i = 0; i < json_array_get_length(batch->replies); i++) {
      JsonObject *reply = json_array_get_object_element(batch->replies, i);
      g_string_append_printf(left, "%s%s (%s)", i ? ", " : "",
                             json_object_get_string_member(reply, "alias"),
                             json_object_get_string_member(reply, "status"));
    }
    g_task_return_new_error(batch->task, HOSTDEVD_ERROR, batch->first_failure,
                            "%s; the request's other devices: %s", batch->failures->str,
                            left->len ? left->str : "none left");
  }
  g_object_unref(batch->task);
  json_array_unref(batch->replies);
  g_string_free(batch->failures, TRUE);
  g_free(batch);
}

static void
on_batch_member_detached(GObject *source, GAsyncResult *result, gpointer user_data)
{
  DetachMember *member = user_data;
  DetachBatch *batch = member->batch;
  g_autoptr(GError) error = NULL;
  JsonNode *reply = g_task_propagate_pointer(G_TASK(result), &error);

  if (reply) {
    json_array_add_element(batch->replies, reply);
  } else {
    g_string_append_printf(batch->failures, "%sdevice %u of <devices>: %s",
                           batch->failures->len ? "; " : "", member->index + 1, error->message);
    if (batch->first_failure < 0)
      batch->first_failure = error->code;
  }
  g_free(member);
  if (--batch->pending == 0)
    detach_batch_finish(batch);
}

static void
detach_submit(Hotplug *hotplug, Hostdev *hostdev, const char *alias, guint wait_ms,
              GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = hotplug_op_new(hotplug, detach_start, hotplug_detach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);

  op->wait_ms = wait_ms;
  op->alias = g_strdup(alias);
  op->hostdev = hostdev;
  hotplug_op_submit(task, NULL);
}

void
hotplug_detach_async(Hotplug *hotplug, const char *xml, const char *alias, guint wait_ms,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  GError *error = NULL;
  gboolean several = FALSE;

  if (alias) {
    detach_submit(hotplug, NULL, alias, wait_ms, callback, user_data);
    return;
  }
  g_autoptr(GPtrArray) devices = hostdev_parse_request(xml, strlen(xml), &several, &error);
  if (devices == NULL) {
    GTask *task = g_task_new(NULL, NULL, callback, user_data);
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  if (!several) {
    detach_submit(hotplug, g_ptr_array_steal_index(devices, 0), NULL, wait_ms, callback,
                  user_data);
    return;
  }
  DetachBatch *batch = g_new0(DetachBatch, 1);
  batch->task = g_task_new(NULL, NULL, callback, user_data);
  g_task_set_source_tag(batch->task, hotplug_detach_async);
  batch->replies = json_array_new();
  batch->failures = g_string_new(NULL);
  batch->first_failure = -1;
  batch->pending = devices->len;
  g_ptr_array_set_free_func(devices, NULL);   /* each goes to its own detach */
  for (guint i = 0; i < devices->len; i++) {
    DetachMember *member = g_new0(DetachMember, 1);
    member->batch = batch;
    member->index = i;
    detach_submit(hotplug, g_ptr_array_index(devices, i), NULL, wait_ms,
                  on_batch_member_detached, member);
  }
}

JsonNode *
hotplug_detach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

