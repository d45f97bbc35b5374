/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-usb-revoke.c - a USB device given back to the host is first
 * taken from whoever may still hold a descriptor of it
 *
 * QEMU got the device as a descriptor and is untrusted: a forged
 * DEVICE_DELETED, or a dup it kept, would let it go on using a device that
 * hostdevd has given back (and that another VM may claim next).  So the
 * release disconnects the device by cycling its hub port (usb-revoke.h):
 * every old descriptor fails with ENODEV from then on, and the host
 * enumerates the device anew, with a new device number.  Only the device
 * hostdevd handed out is touched: the port must still have the same bus
 * and device number; a device that re-enumerated meanwhile has dead
 * descriptors already.  The disabled port is journaled before the write,
 * so a crash between disabling and enabling it is undone on restart.
 * The port stays off for a moment (a port powered on again at once may
 * not report the device, measured in tests/vm), and the release goes on
 * once the device is back on the host, so that a detach that says
 * "detached" leaves it there; one cycle more if it did not come back.
 *
 * The released device is out of the VM's registry by then, so the remove
 * and add uevents of the re-enumeration never make it follow (re-attach):
 * hotplug-follow.c only looks at devices in the registry.
 */
#include "hotplug-private.h"
#include "usb-revoke.h"

/* How long the port stays disabled, and how long the device may take to come back, per cycle. */
#define REVOKE_OFF_MS 250
#define REVOKE_BACK_MS 4000
#define REVOKE_POLL_MS 50
#define REVOKE_CYCLES 2

typedef struct {
  Hotplug *hotplug;
  VmDevice *device;     /* borrowed: the release owns it */
  char *port;
  guint cycle;
  gint64 deadline;      /* monotonic µs: give up waiting for the device to come back;
                         * -1: it never left, do not wait */
} Revoke;

static void
revoke_free(Revoke *revoke)
{
  g_free(revoke->port);
  g_free(revoke);
}

static gboolean on_port_off(gpointer data);

/* Disable the port (the revocation itself); enable it again a moment later. */
static void
port_cycle(GTask *task)
{
  Revoke *revoke = g_task_get_task_data(task);
  GError *error = NULL;

  revoke->cycle++;
  if (!usb_revoke_port_disable(revoke->port, &error)) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  /* the kernel disconnects the device before the write returns: a device still
   * there means a sysfs that is no kernel's (a test's host root) */
  const Hostdev *hostdev = revoke->device->hostdev;
  if (usb_revoke_device_is_still_there(hostdev->usb.port_path, hostdev->usb.device)) {
    g_warning("%s: USB bus %u device %u is still at port %s after its port was disabled: "
              "this sysfs does not behave as Linux's, its descriptors may not be revoked",
              hostdev->alias, hostdev->usb.bus, hostdev->usb.device, hostdev->usb.port_path);
    revoke->deadline = -1;
    on_port_off(task);
    return;
  }
  g_timeout_add(REVOKE_OFF_MS, on_port_off, task);
}

static gboolean
on_poll(gpointer data)
{
  GTask *task = data;
  Revoke *revoke = g_task_get_task_data(task);
  const char *alias = revoke->device->hostdev->alias;

  if (usb_revoke_device_is_back(revoke->device->hostdev->usb.port_path,
                                 revoke->device->hostdev->usb.device)) {
    g_task_return_boolean(task, TRUE);
    g_object_unref(task);
    return G_SOURCE_REMOVE;
  }
  if (g_get_monotonic_time() < revoke->deadline)
    return G_SOURCE_CONTINUE;
  if (revoke->cycle < REVOKE_CYCLES) {
    g_message("%s: the USB device did not come back on port %s; disabling and enabling "
              "the port once more", alias, revoke->device->hostdev->usb.port_path);
    port_cycle(task);
    return G_SOURCE_REMOVE;
  }
  /* revoked all the same: only its return to the host's drivers is missing */
  g_warning("%s: the USB device did not come back on the host after its port %s was "
            "enabled again; unplug and plug it to have it back", alias,
            revoke->device->hostdev->usb.port_path);
  g_task_return_boolean(task, TRUE);
  g_object_unref(task);
  return G_SOURCE_REMOVE;
}

static gboolean
on_port_off(gpointer data)
{
  GTask *task = data;
  Revoke *revoke = g_task_get_task_data(task);
  GError *error = NULL;

  if (!usb_revoke_port_enable(revoke->port, &error)) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return G_SOURCE_REMOVE;
  }
  g_clear_pointer(&revoke->device->prep->usb_port_disabled, g_free);
  if (revoke->deadline < 0) {   /* the device never left: nothing comes back */
    g_task_return_boolean(task, TRUE);
    g_object_unref(task);
    return G_SOURCE_REMOVE;
  }
  revoke->deadline = g_get_monotonic_time() + REVOKE_BACK_MS * G_TIME_SPAN_MILLISECOND;
  g_timeout_add(REVOKE_POLL_MS, on_poll, task);
  return G_SOURCE_REMOVE;
}

gboolean
hotplug_revoke_usb_applies(const VmDevice *device)
{
  const Hostdev *hostdev = device->hostdev;
  /* not USB, or never opened for QEMU (a device still waiting to appear) */
  return hostdev->type == HOSTDEV_TYPE_USB && device->prep != NULL &&
         hostdev->usb.has_address && hostdev->usb.port_path != NULL;
}

void
hotplug_revoke_usb_async(Hotplug *hotplug, VmDevice *device, GAsyncReadyCallback callback,
                         gpointer user_data)
{
  GTask *task = g_task_new(NULL, NULL, callback, user_data);
  Hostdev *hostdev = device->hostdev;
  g_autoptr(GError) local = NULL;
  GError *error = NULL;

  g_assert(hotplug_revoke_usb_applies(device));
  g_autofree char *port = usb_revoke_find_port(hostdev->usb.port_path, hostdev->usb.bus,
                                               hostdev->usb.device, &local);
  if (port == NULL && g_error_matches(local, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND)) {
    g_message("%s: %s; its old descriptors are dead already", hostdev->alias, local->message);
    g_task_return_boolean(task, TRUE);
    g_object_unref(task);
    return;
  }
  if (port == NULL) {
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                            "%s: not given back, as a descriptor QEMU kept cannot be "
                            "revoked: %s", hostdev->alias, local->message);
    g_object_unref(task);
    return;
  }

  StateEntry *entry = state_journal_find(hotplug->journal, hostdev->alias);
  HostPrep *prep = device->prep;
  g_free(prep->usb_port_disabled);
  prep->usb_port_disabled = g_strdup(port);
  if (!hotplug_journal_device(hotplug, hostdev, entry ? entry->state : STATE_DETACHING,
                              HOTPLUG_STEP_USB_REVOKE, NULL, prep, FALSE, &error)) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  g_message("%s: revoking QEMU's descriptors of USB bus %u device %u: disabling and enabling "
            "port /%s (the device is enumerated anew)", hostdev->alias, hostdev->usb.bus,
            hostdev->usb.device, port);
  Revoke *revoke = g_new0(Revoke, 1);
  revoke->hotplug = hotplug;
  revoke->device = device;
  revoke->port = g_steal_pointer(&port);
  g_task_set_task_data(task, revoke, (GDestroyNotify)revoke_free);
  /* if a step fails (or hostdevd dies) with the port off, the release's undo enables it */
  port_cycle(task);
}

gboolean
hotplug_revoke_usb_finish(GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}
