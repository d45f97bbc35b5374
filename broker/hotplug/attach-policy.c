/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * attach-policy.c - what the policy says about each device of an attach
 * request, before anything is planned: the device itself (ids, class,
 * count), the ROM file it names, a USB hub, a VF's MAC and VLAN.  Every
 * device of a <devices> request passes through here, once it is resolved.
 */
#include "hotplug-private.h"
#include "host-pci.h"
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

void
hotplug_pci_policy_facts(const PciAddress *addr, PolicyDeviceFacts *facts)
{
  guint vendor, device, class_code;
  facts->type = POLICY_DEVICE_PCI;
  facts->pci_domain = addr->domain;
  facts->pci_bus = addr->bus;
  facts->pci_slot = addr->slot;
  facts->pci_function = addr->function;
  if (host_pci_read_ids(addr, &vendor, &device, &class_code)) {
    facts->pci_vendor = vendor;
    facts->pci_device = device;
    facts->pci_class = class_code;
    /* the kernel gives boot_vga to display controllers (class 0x03) alone */
    if ((class_code >> 16) == 0x03) {
      g_autofree char *name = pci_address_format(addr);
      g_autofree char *path = host_path("sys/bus/pci/devices/%s/boot_vga", name);
      g_autofree char *boot_vga = host_read_attr(path, NULL);
      facts->boot_vga = g_strcmp0(boot_vga, "1") == 0;
    }
  }
}

gboolean
hotplug_policy_allows_companions(const AttachItem *item, const VfioRecord *record,
                                 GError **error)
{
  Hotplug *hotplug = item->hotplug;

  for (guint i = 0; hotplug->policy && i < record->companions->len; i++) {
    const VfioRecord *companion = record->companions->pdata[i];
    PolicyDeviceFacts facts = { 0 };
    const char *rule = NULL;
    hotplug_pci_policy_facts(&companion->addr, &facts);
    /* a companion is not one more device of the VM: only what it is counts */
    if (policy_check_device(hotplug->policy, hotplug->vm, &facts, 0, &rule))
      continue;
    g_autofree char *what = policy_describe_device(&facts);
    g_autofree char *self = pci_address_format(&record->addr);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED,
                "taking IOMMU group %d whole for %s would bind %s to vfio-pci, which VM '%s' "
                "may not receive: %s; nothing was bound", record->group, self, what,
                hotplug->vm, rule);
    return FALSE;
  }
  return TRUE;
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
