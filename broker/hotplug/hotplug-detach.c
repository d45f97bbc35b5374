/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug-private.h"

#include <string.h>

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
      hotplug_release_device(hotplug, device, "QEMU reported DEVICE_DELETED", task,
                     detach_reply(op->alias, "detached"));
    else
      hotplug_op_return(task, detach_reply(op->alias, "detached"), NULL);
  } else if (g_strcmp0(op->outcome, "guest-error") == 0) {
    if (device)
      hotplug_detach_abandon(hotplug, device);
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                      "the guest refused to release %s "
                                      "(DEVICE_UNPLUG_GUEST_ERROR); it stays attached — check "
                                      "the guest's log for why it is still in use", op->alias));
  } else {
    g_message("%s: unplug requested, the guest has not released it yet", op->alias);
    hotplug_op_return(task, detach_reply(op->alias, "pending"), NULL);
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
                     detach_reply(op->alias, "detached"));
    else
      hotplug_op_return(task, detach_reply(op->alias, "detached"), NULL);
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
      hotplug_detach_abandon(hotplug, device);
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, hotplug_qemu_failure_code(error),
                                      "QEMU refused to unplug %s: %s", op->alias,
                                      error->message));
    return;
  }
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

  if (device == NULL && hotplug_retry_failed_release(hotplug, op->alias ? NULL : op->hostdev,
                                                     op->alias, task))
    return;
  if (device == NULL) {
    g_autofree char *what = op->alias ? g_strdup_printf("alias '%s'", op->alias)
                                      : hostdev_describe_source(op->hostdev);
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                                      "no device attached by hostdevd matches %s; "
                                      "see `hostdevctl list VM` for what is attached", what));
    return;
  }
  if (!hotplug_device_enter(hotplug, device, VM_DEVICE_DETACHING, &error)) {
    hotplug_op_return(task, NULL, g_steal_pointer(&error));
    return;
  }
  g_free(op->alias);
  op->alias = g_strdup(device->hostdev->alias);
  /* without a wait nobody here listens: the VM-wide handler must see DEVICE_DELETED */
  device->detach_waiting = op->wait_ms > 0;
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
  GTask *task = hotplug_op_new(hotplug, detach_start, hotplug_detach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);

  op->wait_ms = wait_ms;
  op->alias = g_strdup(alias);
  hotplug_op_submit(task, alias ? NULL : xml);
}

JsonNode *
hotplug_detach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

