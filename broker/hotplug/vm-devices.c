/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "vm-devices.h"

#include <string.h>

struct _VmDevices {
  GPtrArray *devices;  /* VmDevice* */
};

void
vm_device_free(VmDevice *device)
{
  hostdev_free(device->hostdev);
  host_prep_free(device->prep);
  g_free(device);
}

VmDevices *
vm_devices_new(void)
{
  VmDevices *devices = g_new0(VmDevices, 1);
  devices->devices = g_ptr_array_new_with_free_func((GDestroyNotify)vm_device_free);
  return devices;
}

void
vm_devices_free(VmDevices *devices)
{
  if (devices == NULL)
    return;
  g_ptr_array_unref(devices->devices);
  g_free(devices);
}

VmDevice *
vm_devices_add(VmDevices *devices, Hostdev *hostdev, HostPrep *prep)
{
  VmDevice *device = g_new0(VmDevice, 1);
  device->hostdev = hostdev;
  device->prep = prep;
  device->state = VM_DEVICE_ATTACHED;
  g_ptr_array_add(devices->devices, device);
  return device;
}

void
vm_devices_remove(VmDevices *devices, VmDevice *device)
{
  g_ptr_array_remove(devices->devices, device);
}

VmDevice *
vm_devices_steal(VmDevices *devices, VmDevice *device)
{
  guint index;
  if (g_ptr_array_find(devices->devices, device, &index))
    g_ptr_array_steal_index(devices->devices, index);
  return device;
}

GPtrArray *
vm_devices_get_all(VmDevices *devices)
{
  return devices->devices;
}

VmDevice *
vm_devices_find_alias(VmDevices *devices, const char *alias)
{
  for (guint i = 0; i < devices->devices->len; i++) {
    VmDevice *device = g_ptr_array_index(devices->devices, i);
    if (g_strcmp0(device->hostdev->alias, alias) == 0)
      return device;
  }
  return NULL;
}

VmDevice *
vm_devices_find_source(VmDevices *devices, const Hostdev *hostdev)
{
  for (guint i = 0; i < devices->devices->len; i++) {
    VmDevice *device = g_ptr_array_index(devices->devices, i);
    /* what @hostdev asks for, against what the device was resolved to */
    if (hostdev_source_matches(hostdev, device->hostdev))
      return device;
  }
  return NULL;
}

VmDevice *
vm_devices_find_group(VmDevices *devices, int group, const VmDevice *except)
{
  for (guint i = 0; i < devices->devices->len; i++) {
    VmDevice *device = g_ptr_array_index(devices->devices, i);
    if (device != except && device->prep && device->prep->vfio &&
        device->prep->vfio->group == group)
      return device;
  }
  return NULL;
}

/* Return: N for "hostdevN" (digits only, no leading zeros), else -1. */
static gint64
hostdev_alias_index(const char *alias)
{
  static const char prefix[] = "hostdev";
  guint64 index;

  if (alias == NULL || !g_str_has_prefix(alias, prefix))
    return -1;
  const char *digits = alias + strlen(prefix);
  if (!g_ascii_string_to_unsigned(digits, 10, 0, G_MAXINT32, &index, NULL) ||
      (digits[0] == '0' && digits[1] != '\0'))
    return -1;
  return (gint64)index;
}

char *
vm_devices_next_alias(VmDevices *devices, const char *const *qemu_ids)
{
  gint64 next = 0;

  for (guint i = 0; i < devices->devices->len; i++) {
    VmDevice *device = g_ptr_array_index(devices->devices, i);
    next = MAX(next, hostdev_alias_index(device->hostdev->alias) + 1);
  }
  for (const char *const *id = qemu_ids; id && *id; id++)
    next = MAX(next, hostdev_alias_index(*id) + 1);
  return g_strdup_printf("hostdev%" G_GINT64_FORMAT, next);
}
