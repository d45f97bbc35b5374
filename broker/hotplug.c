/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug.h"
#include "guest-addr.h"
#include "host-pci.h"
#include "host-usb.h"
#include "hostdev.h"
#include "hostdevd-error.h"
#include "qemu-device.h"
#include "vm-devices.h"

#include <string.h>

/*
 * Operations are queued and run one at a time: each one reads the VM's
 * state (aliases, what is plugged) when it starts, so two attaches can
 * never pick the same alias or claim the same source.
 */
struct _Hotplug {
  QmpClient *qmp;
  VmDevices *devices;
  HotplugEventFunc emit;
  gpointer emit_data;
  GQueue queue;          /* GTask*, the head is running */
  gulong event_handler;
};

typedef void (*OpStartFunc)(GTask *task);

typedef struct {
  Hotplug *hotplug;
  OpStartFunc start;
  Hostdev *hostdev;              /* attach: the definition being attached; detach: the match */
  HostUsbDevice *usb;            /* attach: the resolved USB device, NULL if absent */
  JsonObject *props;             /* attach: device_add arguments */
  gboolean dry_run;
  char *alias;                   /* detach: the device being detached */
  guint wait_ms;
  GCancellable *wait_cancel;     /* detach: stops the DEVICE_DELETED waiter */
  gboolean del_answered;         /* detach: device_del returned OK */
  gboolean wait_answered;        /* detach: the waiter finished */
  gboolean event_seen;           /* detach: DEVICE_DELETED arrived */
} Op;

static void
op_free(Op *op)
{
  g_clear_pointer(&op->hostdev, hostdev_free);
  g_clear_pointer(&op->usb, host_usb_device_free);
  g_clear_pointer(&op->props, json_object_unref);
  g_clear_object(&op->wait_cancel);
  g_free(op->alias);
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
list_peripherals(Hotplug *hotplug, GAsyncReadyCallback callback, GTask *task)
{
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "path", "/machine/peripheral");
  qmp_client_execute_async(hotplug->qmp, "qom-list", args, -1, 0, NULL, callback, task);
}

/* ---- release: the one way a device leaves the VM ----------------------- */

/*
 * release_device() - QEMU no longer holds @device: give it back to the
 * host and forget it.  USB devices opened by QEMU need nothing from us;
 * the host-side undo of VFIO preparation hooks in here.
 */
static void
release_device(Hotplug *hotplug, VmDevice *device, const char *why)
{
  g_autoptr(JsonObject) data = json_object_new();
  g_autofree char *source = hostdev_describe_source(device->hostdev);

  g_message("%s (%s) released: %s", device->hostdev->alias, source, why);
  json_object_set_string_member(data, "alias", device->hostdev->alias);
  json_object_set_string_member(data, "source", source);
  json_object_set_string_member(data, "reason", why);
  vm_devices_remove(hotplug->devices, device);
  emit_event(hotplug, "DEVICE_DETACHED", data);
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

static void
attach_finish_registered(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hostdev *live = g_steal_pointer(&op->hostdev);
  g_autofree char *source = hostdev_describe_source(live);

  vm_devices_add(op->hotplug->devices, live);
  g_message("%s (%s) attached", live->alias, source);

  JsonNode *reply = attach_reply(live);
  emit_event(op->hotplug, "DEVICE_ATTACHED", json_node_get_object(reply));
  op_return(task, reply, NULL);
}

static void
on_usb_queried(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  /* The address is reported when QEMU can tell it; the device is attached either way. */
  if (value && JSON_NODE_HOLDS_OBJECT(value) && !op->hostdev->usb_guest.present) {
    const char *text = json_object_get_string_member_with_default(
        json_node_get_object(value), "human-readable-text", "");
    guint bus;
    char *port = NULL;
    if (guest_usb_address_from_query(text, op->hostdev->alias, &bus, &port)) {
      op->hostdev->usb_guest.present = TRUE;
      op->hostdev->usb_guest.bus = bus;
      op->hostdev->usb_guest.port = port;
    }
  } else if (error) {
    g_debug("no guest USB address for %s: %s", op->hostdev->alias, error->message);
  }
  attach_finish_registered(task);
}

static void
on_rollback_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *alias = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  if (error && !g_error_matches(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND))
    g_warning("could not remove half-attached %s from QEMU: %s", alias, error->message);
}

/* rollback_device_add() - take back a device_add whose result we cannot use. */
static void
rollback_device_add(Hotplug *hotplug, const char *alias)
{
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "id", alias);
  qmp_client_execute_async(hotplug->qmp, "device_del", args, -1, 0, NULL,
                           on_rollback_done, g_strdup(alias));
}

static void
on_attach_verified(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  g_auto(GStrv) ids = value ? peripheral_ids(value) : NULL;

  if (ids == NULL || !g_strv_contains((const char *const *)ids, op->hostdev->alias)) {
    g_autofree char *what = hostdev_describe_source(op->hostdev);
    if (qmp_client_is_connected(op->hotplug->qmp))
      rollback_device_add(op->hotplug, op->hostdev->alias);
    op_return(task, NULL,
              g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                          "QEMU accepted %s as %s but does not list it afterwards%s%s; "
                          "it was removed again", what, op->hostdev->alias,
                          error ? ": " : "", error ? error->message : ""));
    return;
  }

  if (op->hostdev->type == HOSTDEV_TYPE_USB) {
    qmp_client_execute_async(op->hotplug->qmp, "x-query-usb", NULL, -1, 0, NULL,
                             on_usb_queried, task);
    return;
  }
  attach_finish_registered(task);
}

static void
on_device_added(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (error) {
    g_autofree char *what = hostdev_describe_source(op->hostdev);
    const char *driver = json_object_get_string_member(op->props, "driver");
    /* A timed-out device_add may still complete: make sure it does not stay behind. */
    if (g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT))
      rollback_device_add(op->hotplug, op->hostdev->alias);
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, qemu_failure_code(error),
                                      "QEMU could not add %s for %s: %s", driver, what,
                                      error->message));
    return;
  }
  list_peripherals(op->hotplug, on_attach_verified, task);
}

static JsonNode *
dry_run_reply(JsonObject *props)
{
  g_autoptr(JsonObject) reply = json_object_new();
  JsonArray *commands = json_array_new();
  JsonObject *command = json_object_new();
  json_object_set_string_member(command, "execute", "device_add");
  json_object_set_object_member(command, "arguments", json_object_ref(props));
  json_array_add_object_element(commands, command);
  json_object_set_array_member(reply, "commands", commands);
  return json_node_init_object(json_node_alloc(), reply);
}

static void
on_attach_peripherals(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  Hostdev *hostdev = op->hostdev;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (value == NULL) {
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                      "cannot list QEMU's devices: %s", error->message));
    return;
  }
  g_auto(GStrv) ids = peripheral_ids(value);
  if (hostdev->alias == NULL) {
    hostdev->alias = vm_devices_next_alias(op->hotplug->devices, (const char *const *)ids);
  } else if (g_strv_contains((const char *const *)ids, hostdev->alias)) {
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                      "alias '%s' is already the id of a device in QEMU; "
                                      "choose another <alias name='ua-…'/> or leave it out",
                                      hostdev->alias));
    return;
  }

  op->props = hostdev->type == HOSTDEV_TYPE_USB
                  ? qemu_device_usb_host(hostdev, op->usb, hostdev->alias)
                  : qemu_device_vfio_pci(hostdev, hostdev->alias);
  if (op->dry_run) {
    op_return(task, dry_run_reply(op->props), NULL);
    return;
  }
  qmp_client_execute_async(op->hotplug->qmp, "device_add", op->props, -1,
                           HOTPLUG_DEVICE_ADD_TIMEOUT_MS, NULL, on_device_added, task);
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

static void
attach_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (!check_not_attached(op->hotplug, op->hostdev, &error)) {
    op_return(task, NULL, error);
    return;
  }
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
    host_pci_check_assignable(&op->hostdev->pci_source, op->hostdev->managed, &error);
    break;
  }
  if (error) {
    op_return(task, NULL, error);
    return;
  }
  list_peripherals(op->hotplug, on_attach_peripherals, task);
}

void
hotplug_attach_async(Hotplug *hotplug, const char *xml, gboolean dry_run,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = op_new(hotplug, attach_start, hotplug_attach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  op->dry_run = dry_run;
  op->hostdev = hostdev_parse_xml(xml, strlen(xml), &error);
  if (op->hostdev == NULL) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  op_enqueue(hotplug, task);
}

JsonNode *
hotplug_attach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

/* ---- detach ------------------------------------------------------------- */

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
  VmDevice *device = vm_devices_find_alias(op->hotplug->devices, op->alias);

  if (!op->del_answered || !op->wait_answered)
    return;
  if (device)
    device->detach_waiting = FALSE;
  if (op->event_seen) {
    if (device)
      release_device(op->hotplug, device, "QEMU reported DEVICE_DELETED");
    op_return(task, detach_reply(op->alias, "detached"), NULL);
    return;
  }
  g_message("%s: unplug requested, the guest has not released it yet", op->alias);
  op_return(task, detach_reply(op->alias, "pending"), NULL);
}

static void
on_device_deleted_event(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) data = qmp_client_wait_event_finish(QMP_CLIENT(source), result, &error);

  if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_object_unref(task);   /* device_del failed and already concluded the operation */
    return;
  }
  op->wait_answered = TRUE;
  op->event_seen = data != NULL;
  detach_conclude(task);
  g_object_unref(task);
}

static void
on_device_del(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  VmDevice *device = vm_devices_find_alias(op->hotplug->devices, op->alias);

  if (g_error_matches(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND)) {
    /* Already gone from QEMU (unplugged meanwhile): nothing holds it any more. */
    g_cancellable_cancel(op->wait_cancel);
    if (device)
      release_device(op->hotplug, device, "QEMU no longer has it");
    op_return(task, detach_reply(op->alias, "detached"), NULL);
    return;
  }
  if (error) {
    g_cancellable_cancel(op->wait_cancel);
    if (device)
      device->detach_waiting = FALSE;
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
detach_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  VmDevice *device = op->alias ? vm_devices_find_alias(hotplug->devices, op->alias)
                               : vm_devices_find_source(hotplug->devices, op->hostdev);

  if (device == NULL) {
    g_autofree char *what = op->alias ? g_strdup_printf("alias '%s'", op->alias)
                                      : hostdev_describe_source(op->hostdev);
    op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                                      "no device attached by hostdevd matches %s; "
                                      "see `hostdevctl list VM` for what is attached", what));
    return;
  }
  g_free(op->alias);
  op->alias = g_strdup(device->hostdev->alias);
  device->detach_waiting = TRUE;

  /* Armed before device_del, so an immediate DEVICE_DELETED is not missed. */
  if (op->wait_ms > 0) {
    op->wait_cancel = g_cancellable_new();
    qmp_client_wait_event_async(hotplug->qmp, "DEVICE_DELETED", "device", op->alias,
                                op->wait_ms, op->wait_cancel, on_device_deleted_event,
                                g_object_ref(task));
  } else {
    op->wait_answered = TRUE;
  }
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "id", op->alias);
  qmp_client_execute_async(hotplug->qmp, "device_del", args, -1, 0, NULL, on_device_del, task);
}

void
hotplug_detach_async(Hotplug *hotplug, const char *xml, const char *alias, guint wait_ms,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = op_new(hotplug, detach_start, hotplug_detach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  op->wait_ms = wait_ms;
  if (alias) {
    op->alias = g_strdup(alias);
  } else {
    op->hostdev = hostdev_parse_xml(xml, strlen(xml), &error);
    if (op->hostdev == NULL) {
      g_task_return_error(task, error);
      g_object_unref(task);
      return;
    }
  }
  op_enqueue(hotplug, task);
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
    json_object_set_string_member(entry, "type",
                                  device->hostdev->type == HOSTDEV_TYPE_USB ? "usb" : "pci");
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
hotplug_release_all(Hotplug *hotplug)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  while (all->len > 0)
    release_device(hotplug, g_ptr_array_index(all, all->len - 1), "QEMU exited");
}

/* ---- events from QEMU ------------------------------------------------- */

static void
on_qemu_event(QmpClient *qmp, const char *name, JsonObject *data, gint64 timestamp_us,
              gpointer user_data)
{
  Hotplug *hotplug = user_data;

  if (g_strcmp0(name, "DEVICE_DELETED") != 0)
    return;
  const char *alias = json_object_get_string_member_with_default(data, "device", NULL);
  VmDevice *device = alias ? vm_devices_find_alias(hotplug->devices, alias) : NULL;
  /* A detach request that is still waiting handles its own event. */
  if (device && !device->detach_waiting)
    release_device(hotplug, device,
                   device->state == VM_DEVICE_DETACHING
                       ? "the guest finished the pending unplug"
                       : "QEMU removed it (unplugged from inside the guest)");
}

Hotplug *
hotplug_new(QmpClient *qmp, HotplugEventFunc emit, gpointer user_data)
{
  Hotplug *hotplug = g_new0(Hotplug, 1);
  hotplug->qmp = g_object_ref(qmp);
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
  g_free(hotplug);
}
