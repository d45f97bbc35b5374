/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-follow.c - USB devices that stay with their VM through a
 * re-enumeration (a reset, a re-plug, a device switching to its
 * bootloader): the kernel's uevents move them between "attached" and
 * "waiting for its device"
 *
 * Leaving: the kernel removes the USB device QEMU holds (by descriptor).
 * QEMU's usb-host then holds a dead descriptor and never finds the device
 * again (a descriptor-passed usb-host does not re-scan), so hostdevd
 * journals the device as waiting first, then removes QEMU's device and the
 * fdset and gives up its claim.  The device stays in the VM's list with its
 * alias and guest port, and clients get DEVICE_WAITING.
 *
 * Arriving: an add uevent that may be the device (usb-follow.h) is looked
 * up again in sysfs by the names the XML gave (the serial included; a
 * vendor/product that matches several devices matches none), and the
 * device goes through a whole attach again: policy, claim, a fresh
 * descriptor, device_add at the recorded guest bus and port under the same
 * alias.  Whatever refuses it leaves it waiting, with DEVICE_WAITING
 * saying why.
 *
 * Both run as operations of the queue, so they never interleave with an
 * attach or detach of the same device.
 */
#include "hotplug-private.h"
#include "claims.h"
#include "guest-usb.h"
#include "host-usb.h"
#include "hotplug-follow.h"
#include "usb-follow.h"

/* What a follow operation works on; the event is copied, the queue may run it later. */
typedef struct {
  gboolean rescan;        /* no event: look at sysfs (start-up, lost events) */
  UsbUevent event;        /* what the kernel said (strings owned) */
  gint64 seen;            /* monotonic µs the event was received */
} FollowWork;

static void
follow_work_free(FollowWork *work)
{
  g_free(work->event.devpath);
  g_free(work->event.port_path);
  g_free(work);
}

/* One re-attach in flight: the waiting device is out of the registry meanwhile. */
typedef struct {
  Hotplug *hotplug;
  VmDevice *waiting;      /* owned: put back when the attach fails */
  gint64 seen;            /* monotonic µs: the kernel's event received */
  gint64 started;         /* ... the device found in sysfs, its attach queued */
} Reattach;

static void
emit_waiting(Hotplug *hotplug, const Hostdev *hostdev, const char *reason)
{
  g_autoptr(JsonObject) event = json_object_new();
  g_autofree char *source = hostdev_describe_source(hostdev);
  json_object_set_string_member(event, "alias", hostdev->alias);
  json_object_set_string_member(event, "source", source);
  json_object_set_string_member(event, "reason", reason);
  hotplug_emit(hotplug, "DEVICE_WAITING", event);
}

const char *
hotplug_follow_phase(const VmDevice *device)
{
  return device->state == VM_DEVICE_WAITING
             ? "out of QEMU; attached again, at the same guest port, when its USB device "
               "appears on the host"
             : NULL;
}

gboolean
hotplug_follow_may_wait(const AttachItem *item, const GError *error)
{
  /* hostdevd matches every name when the device appears, the port path and
   * serial too, so a device chosen by them may wait as well (QEMU could not:
   * it would wait by vendor/product and might take the device's twin) */
  return g_error_matches(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND) &&
         item->hostdev->usb.startup_policy == HOSTDEV_STARTUP_OPTIONAL &&
         !item->hotplug->optional_usb_to_qemu;
}

void
hotplug_follow_note_resolved(AttachItem *item)
{
  Hostdev *hostdev = item->hostdev;

  /* absent and optional: hostdevd attaches it when it appears, unless QEMU is to wait */
  item->waits_for_device = item->usb == NULL && !item->hotplug->optional_usb_to_qemu;

  item->prep->usb_follow = item->usb && usb_follow_wanted(hostdev);
  if (!item->prep->usb_follow)
    return;
  /* what comes back must be the same kind of device, whatever port it was named by */
  if (!hostdev->usb.has_vendor_product) {
    hostdev->usb.has_vendor_product = TRUE;
    hostdev->usb.vendor = item->usb->vendor;
    hostdev->usb.product = item->usb->product;
  }
  /* named by its address alone: followed in the socket it is in */
  if (hostdev->usb.port_path == NULL && hostdev->usb.serial == NULL)
    hostdev->usb.port_path = g_strdup(host_usb_port_path(item->usb));
}

/* @device's guest port (if it has one yet) stays its own in @ports while it waits. */
static void
reserve_port(GuestUsbPorts *ports, const VmDevice *device)
{
  const Hostdev *hostdev = device->hostdev;
  g_autoptr(GError) error = NULL;

  if (!hostdev->usb_guest.present || hostdev->usb_guest.port == NULL)
    return;
  if (!guest_usb_ports_take(ports, hostdev->usb_guest.bus, hostdev->usb_guest.port,
                            hostdev->alias, &error))
    g_warning("%s: cannot keep its USB port for it while it waits (%s); when it is back it "
              "waits for the port to be free", hostdev->alias, error->message);
}

void
hotplug_follow_reserve_usb_ports(Hotplug *hotplug, GuestUsbPorts *ports)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  for (guint i = 0; i < all->len; i++) {
    const VmDevice *device = g_ptr_array_index(all, i);
    if (device->state == VM_DEVICE_WAITING)
      reserve_port(ports, device);
  }
}

JsonNode *
hotplug_follow_accept_waiting(Hotplug *hotplug, Hostdev *hostdev, HostPrep *prep)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) reply = json_object_new();
  g_autofree char *source = hostdev_describe_source(hostdev);
  g_autofree char *xml = hostdev_format_xml(hostdev);

  if (!hotplug_journal_device(hotplug, hostdev, STATE_ATTACHED, HOTPLUG_STEP_WAIT_FOR_DEVICE,
                              NULL, prep, FALSE, &error))
    g_warning("%s: %s", hostdev->alias, error->message);
  VmDevice *device = vm_devices_add(hotplug->devices, hostdev, prep);
  device->state = VM_DEVICE_WAITING;
  if (hotplug->usb_ports)
    reserve_port(hotplug->usb_ports, device);
  g_message("%s (%s) is not on the host: waiting for it (startupPolicy='optional')",
            hostdev->alias, source);
  emit_waiting(hotplug, hostdev, "not on the host yet (startupPolicy='optional')");
  json_object_set_string_member(reply, "alias", hostdev->alias);
  json_object_set_string_member(reply, "source", source);
  json_object_set_string_member(reply, "xml", xml);
  json_object_set_string_member(reply, "state", hotplug_device_state_listed(VM_DEVICE_WAITING));
  return json_node_init_object(json_node_alloc(), reply);
}

/* ---- leaving ------------------------------------------------------------ */

/* The claims of the device that left: a new enumeration is a new device to claim. */
static void
release_claims(Hotplug *hotplug, HostPrep *prep)
{
  for (guint i = 0; i < prep->claims->len; i++) {
    g_autoptr(GError) error = NULL;
    if (!claims_release(hotplug->runtime_dir, hotplug->vm, g_ptr_array_index(prep->claims, i),
                        &error))
      g_warning("%s", error->message);
  }
  g_ptr_array_set_size(prep->claims, 0);
}

typedef struct {
  GTask *task;            /* (nullable) the operation to finish after */
  Hotplug *hotplug;
  char *alias;
  char *reason;
} Leave;

static void
leave_finish(gpointer data)
{
  Leave *leave = data;
  Hotplug *hotplug = leave->hotplug;
  VmDevice *device = vm_devices_find_alias(hotplug->devices, leave->alias);
  g_autoptr(GError) error = NULL;

  if (device && device->state == VM_DEVICE_WAITING) {
    /* its guest port, free in QEMU now, stays its own in the port map (and in every
     * map read later, hotplug_follow_reserve_usb_ports()): it takes it again when back */
    if (hotplug->usb_ports)
      reserve_port(hotplug->usb_ports, device);
    release_claims(hotplug, device->prep);
    if (!hotplug_journal_device(hotplug, device->hostdev, STATE_ATTACHED,
                                HOTPLUG_STEP_WAIT_FOR_DEVICE, NULL, device->prep, FALSE, &error))
      g_warning("%s: %s", leave->alias, error->message);
    g_message("%s: %s; waiting for it to come back", leave->alias, leave->reason);
    emit_waiting(hotplug, device->hostdev, leave->reason);
  }
  if (leave->task)
    hotplug_op_return(leave->task, NULL, NULL);
  g_free(leave->alias);
  g_free(leave->reason);
  g_free(leave);
}

/* The steps after the journal says "waiting": QEMU's device and fdset go, the claims go. */
static void
leave_qemu(Hotplug *hotplug, VmDevice *device, gboolean in_qemu, const char *reason,
           GTask *task)
{
  Leave *leave = g_new0(Leave, 1);
  leave->task = task;
  leave->hotplug = hotplug;
  leave->alias = g_strdup(device->hostdev->alias);
  leave->reason = g_strdup(reason);
  if (in_qemu)
    hotplug_remove_from_qemu(hotplug, device->hostdev->alias);
  hotplug_remove_fdset(hotplug, device->prep, leave_finish, leave);
}

/* The attached followed device the removal @event is about, or NULL. */
static VmDevice *
find_leaving(Hotplug *hotplug, const UsbUevent *event)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  for (guint i = 0; i < all->len; i++) {
    VmDevice *device = g_ptr_array_index(all, i);
    if (device->state == VM_DEVICE_ATTACHED && device->prep && device->prep->usb_follow &&
        usb_follow_is_leaving(device->hostdev, event))
      return device;
  }
  return NULL;
}

/*
 * A removal is looked at in its turn in the queue, not when it comes: an
 * attach of the same device may be running (or queued), its device opened
 * and handed to QEMU but not yet the VM's; once it is, the removal finds it.
 */
static void
leave_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  FollowWork *work = g_object_get_data(G_OBJECT(task), "follow-work");
  const UsbUevent *event = &work->event;
  VmDevice *device = find_leaving(hotplug, event);
  g_autoptr(GError) error = NULL;

  /* not one of ours, detached, or being detached: nothing to follow */
  if (device == NULL) {
    hotplug_op_return(task, NULL, NULL);
    return;
  }
  g_autofree char *reason = g_strdup_printf("its USB device left the host (%s removed, bus %u "
                                            "device %u)", event->port_path ? event->port_path : "?",
                                            event->bus, event->device);
  g_message("%s: %s", device->hostdev->alias, reason);
  /* the stale address goes: the device is found by its other names when it is back */
  Hostdev *hostdev = device->hostdev;
  guint bus = hostdev->usb.bus, number = hostdev->usb.device;
  hostdev->usb.has_address = FALSE;
  hostdev->usb.bus = hostdev->usb.device = 0;
  if (!hotplug_device_enter(hotplug, device, VM_DEVICE_WAITING, &error)) {
    hostdev->usb.has_address = TRUE;
    hostdev->usb.bus = bus;
    hostdev->usb.device = number;
    g_warning("%s left the host, but it cannot wait for it: %s; it stays in QEMU (dead) "
              "until detached", hostdev->alias, error->message);
    hotplug_op_return(task, NULL, NULL);
    return;
  }
  leave_qemu(hotplug, device, TRUE, reason, task);
}

void
hotplug_follow_resume(Hotplug *hotplug, VmDevice *device, gboolean in_qemu)
{
  g_assert(device->state == VM_DEVICE_WAITING);
  /* an fdset of another QEMU process is not this one's to remove */
  if (!in_qemu)
    device->prep->fdset_id = -1;
  leave_qemu(hotplug, device, in_qemu, "it was waiting for its USB device when hostdevd stopped",
             NULL);
}

/* ---- arriving ------------------------------------------------------------- */

static void
on_reattached(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Reattach *reattach = user_data;
  Hotplug *hotplug = reattach->hotplug;
  VmDevice *waiting = reattach->waiting;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = hotplug_attach_finish(hotplug, result, &error);

  if (reply) {
    double ms = (g_get_monotonic_time() - reattach->seen) / 1000.0;
    JsonObject *object = JSON_NODE_HOLDS_OBJECT(reply) ? json_node_get_object(reply) : NULL;
    JsonNode *timings = object ? json_object_get_member(object, "timings") : NULL;
    /* the verification after device_add (x-query-usb) is the attach's last phase */
    double verify = timings && JSON_NODE_HOLDS_OBJECT(timings)
        ? json_object_get_double_member_with_default(json_node_get_object(timings), "verify", 0)
        : 0;
    g_message("%s: its USB device is back in the VM, %.1f ms after the kernel announced it "
              "(uevent to device_add returned: %.1f ms; look-up %.1f ms, attach %.1f ms)",
              waiting->hostdev->alias, ms, ms - verify,
              (reattach->started - reattach->seen) / 1000.0,
              (g_get_monotonic_time() - reattach->started) / 1000.0);
    vm_device_free(waiting);
  } else {
    /* the attach undid itself (and may have dropped the record): waiting again */
    g_autofree char *reason = g_strdup_printf("a matching device appeared but was not "
                                              "attached: %s", error->message);
    Hostdev *hostdev = waiting->hostdev;
    HostPrep *prep = waiting->prep;
    waiting->hostdev = NULL;
    waiting->prep = NULL;
    vm_device_free(waiting);
    /* back in the registry as the attach left it (out of QEMU), then waiting: its
     * record is written again first (the failed attach may have dropped it); nothing
     * on the host follows, so a journal that cannot be written does not stop it */
    VmDevice *device = vm_devices_add(hotplug->devices, hostdev, prep);
    hotplug_device_enter_anyway(hotplug, device, VM_DEVICE_WAITING);
    g_warning("%s: %s", hostdev->alias, reason);
    emit_waiting(hotplug, hostdev, reason);
  }
  g_free(reattach);
}

/* Is the device @waiting waits for on the host now?  Only a look-up: nothing changes. */
static gboolean
is_back(const VmDevice *waiting)
{
  g_autoptr(Hostdev) lookup = usb_follow_source_for_lookup(waiting->hostdev);
  g_autoptr(GError) error = NULL;
  g_autoptr(HostUsbDevice) found = NULL;

  lookup->usb.startup_policy = HOSTDEV_STARTUP_MANDATORY;
  found = host_usb_resolve(lookup, &error);
  if (found == NULL && !g_error_matches(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND))
    g_warning("%s: not attaching a device for it: %s", waiting->hostdev->alias,
              error->message);
  return found != NULL;
}

static void
arrive_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  FollowWork *work = g_object_get_data(G_OBJECT(task), "follow-work");
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  g_autoptr(GPtrArray) back = g_ptr_array_new();

  for (guint i = 0; i < all->len; i++) {
    VmDevice *device = g_ptr_array_index(all, i);
    if (device->state != VM_DEVICE_WAITING)
      continue;
    if (!work->rescan && !usb_follow_may_arrive(device->hostdev, &work->event))
      continue;
    if (is_back(device))
      g_ptr_array_add(back, device);
  }
  /* each goes through a whole attach, queued behind this operation */
  for (guint i = 0; i < back->len; i++) {
    VmDevice *device = g_ptr_array_index(back, i);
    Reattach *reattach = g_new0(Reattach, 1);
    reattach->hotplug = hotplug;
    reattach->seen = work->seen;
    reattach->started = g_get_monotonic_time();
    reattach->waiting = vm_devices_steal(hotplug->devices, device);
    g_message("%s: a matching USB device appeared (%s); attaching it again",
              device->hostdev->alias, work->rescan ? "found in sysfs" : work->event.devpath);
    hotplug_reattach_async(hotplug, usb_follow_source_for_lookup(device->hostdev),
                           on_reattached, reattach);
  }
  hotplug_op_return(task, NULL, NULL);
}

/* ---- the kernel's events ---------------------------------------------------- */

static void
on_follow_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = g_task_propagate_pointer(G_TASK(result), &error);
  if (error)
    g_warning("following a USB device: %s", error->message);
}

static FollowWork *
follow_work_new(Hotplug *hotplug, const UsbUevent *event)
{
  FollowWork *work = g_new0(FollowWork, 1);
  work->seen = g_get_monotonic_time();
  if (event) {
    work->event = *event;
    work->event.devpath = g_strdup(event->devpath);
    work->event.port_path = g_strdup(event->port_path);
  } else {
    work->rescan = TRUE;
  }
  return work;
}

/* queue_follow_op() - @start runs in its turn, on a copy of @event (NULL: a rescan). */
static void
queue_follow_op(Hotplug *hotplug, OpStartFunc start, const UsbUevent *event)
{
  GTask *task = hotplug_op_new(hotplug, start, hotplug_follow_uevent, on_follow_done, NULL);
  g_object_set_data_full(G_OBJECT(task), "follow-work", follow_work_new(hotplug, event),
                         (GDestroyNotify)follow_work_free);
  hotplug_op_submit(task, NULL);
}

/* @or_followed: a followed device still attached counts too: its removal may be
 * queued behind another operation while its device is back already */
static gboolean
has_waiting(Hotplug *hotplug, gboolean or_followed)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  for (guint i = 0; i < all->len; i++) {
    const VmDevice *device = g_ptr_array_index(all, i);
    if (device->state == VM_DEVICE_WAITING ||
        (or_followed && device->state == VM_DEVICE_ATTACHED && device->prep &&
         device->prep->usb_follow))
      return TRUE;
  }
  return FALSE;
}

void
hotplug_follow_uevent(Hotplug *hotplug, const UsbUevent *event)
{
  if (!hotplug_qemu_connected(hotplug))
    return;
  switch (event->action) {
  case USB_UEVENT_REMOVE:
    /* an attach in flight may be about to make the device the VM's */
    if (has_waiting(hotplug, TRUE) || !g_queue_is_empty(&hotplug->queue))
      queue_follow_op(hotplug, leave_start, event);
    break;
  case USB_UEVENT_ADD:
    /* looked at in its turn, after any removal queued before it */
    if (has_waiting(hotplug, TRUE))
      queue_follow_op(hotplug, arrive_start, event);
    break;
  case USB_UEVENT_LOST:
    /* what happened meanwhile is only in sysfs now */
    g_warning("the kernel dropped USB events; looking for waiting devices in sysfs");
    hotplug_follow_rescan(hotplug);
    break;
  case USB_UEVENT_BIND:
  case USB_UEVENT_UNBIND:
  case USB_UEVENT_CHANGE:
    break;
  }
}

void
hotplug_follow_rescan(Hotplug *hotplug)
{
  if (hotplug_qemu_connected(hotplug) && has_waiting(hotplug, FALSE))
    queue_follow_op(hotplug, arrive_start, NULL);
}
