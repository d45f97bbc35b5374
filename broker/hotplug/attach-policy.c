/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * attach-policy.c - what the policy says about each device of an attach
 * request, before anything is planned: the device itself (ids, class,
 * count), the ROM file it names, a USB hub, a VF's MAC and VLAN.  Every
 * device of a <devices> request passes through here, once it is resolved.
 */
#include "hotplug-private.h"
#include "host-rom.h"
#include "host-root.h"

/* the device: what policy_check_device() decides on; @before counts the request's
 * devices ahead of it */
static gboolean
device_allowed(const AttachItem *item, guint before, GError **error)
{
  Hotplug *hotplug = item->hotplug;
  PolicyDeviceFacts facts = { 0 };
  const char *rule = NULL;

  if (!item->ops->policy_facts(item, &facts))
    return TRUE;
  if (policy_check_device(hotplug->policy, hotplug->vm, &facts,
                          vm_devices_get_all(hotplug->devices)->len + before, &rule))
    return TRUE;
  g_autofree char *what = policy_describe_device(&facts);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED,
              "VM '%s' may not receive %s: %s", hotplug->vm, what, rule);
  return FALSE;
}

/* a <rom file> must name a file in a ROM directory the policy allows: QEMU
 * would read any file into a BAR the guest can read */
static gboolean
rom_allowed(const AttachItem *item, GError **error)
{
  const Hostdev *hostdev = item->hostdev;
  const char *rule = NULL;
  g_autoptr(GError) local = NULL;

  if (hostdev->rom.file == NULL)
    return TRUE;
  g_auto(GStrv) dirs = policy_rom_dirs(item->hotplug->policy, item->hotplug->vm, &rule);
  if (host_rom_file_check(hostdev->rom.file, (const char *const *)dirs, &local))
    return TRUE;
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED,
              "VM '%s' may not use <rom file='%s'>: %s; the rule: %s", item->hotplug->vm,
              hostdev->rom.file, local->message, rule);
  return FALSE;
}

/* a USB hub or root hub only when the policy says so: every device behind
 * it would follow it into the guest */
static gboolean
usb_hub_allowed(const AttachItem *item, GError **error)
{
  const HostUsbDevice *usb = item->usb;
  const char *rule = NULL;

  if (usb == NULL || !host_usb_is_hub(usb) ||
      policy_usb_hubs_allowed(item->hotplug->policy, item->hotplug->vm, &rule))
    return TRUE;
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED,
              "VM '%s' may not receive USB hub %04x:%04x (bus %u device %u, %s): %s",
              item->hotplug->vm, usb->vendor, usb->product, usb->bus, usb->device,
              usb->sysfs_name, rule);
  return FALSE;
}

/* the MAC and VLAN an <interface type='hostdev'> has hostdevd program on its
 * VF decide which network the VF reaches */
static gboolean
vf_network_allowed(const AttachItem *item, GError **error)
{
  const Hostdev *hostdev = item->hostdev;
  const char *rule = NULL;

  if (!hostdev->is_interface ||
      policy_check_vf_network(item->hotplug->policy, item->hotplug->vm,
                              hostdev->net.has_mac ? hostdev->net.mac : NULL,
                              hostdev->net.has_vlan, hostdev->net.vlan_tag, &rule))
    return TRUE;
  g_autofree char *source = pci_address_format(&hostdev->pci_source);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED,
              "VM '%s' may not program VF %s this way: %s", item->hotplug->vm, source, rule);
  return FALSE;
}

/* without a policy (unit tests only) nothing is refused */
gboolean
hotplug_policy_allows_xml(const AttachItem *item, GError **error)
{
  return item->hotplug->policy == NULL ||
         (rom_allowed(item, error) && vf_network_allowed(item, error));
}

gboolean
hotplug_policy_allows(const AttachItem *item, guint before, GError **error)
{
  return item->hotplug->policy == NULL ||
         (device_allowed(item, before, error) && usb_hub_allowed(item, error));
}
