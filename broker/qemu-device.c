/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "qemu-device.h"

char *
qemu_usb_bus_id(guint index)
{
  /* libvirt names USB controller 0 "usb" and controller N "usbN"; each has one bus ".0" */
  return index == 0 ? g_strdup("usb.0") : g_strdup_printf("usb%u.0", index);
}

JsonObject *
qemu_device_usb_host(const Hostdev *hostdev, const HostUsbDevice *resolved, const char *id)
{
  JsonObject *props = json_object_new();

  json_object_set_string_member(props, "driver", "usb-host");
  if (resolved) {
    /* The path form (QEMU ≥ 6.1), as libvirt 9.0 uses with a QEMU that has it */
    g_autofree char *path = g_strdup_printf("/dev/bus/usb/%03u/%03u",
                                            resolved->bus, resolved->device);
    json_object_set_string_member(props, "hostdevice", path);
  } else {
    json_object_set_int_member(props, "vendorid", hostdev->usb.vendor);
    json_object_set_int_member(props, "productid", hostdev->usb.product);
  }
  json_object_set_string_member(props, "id", id);
  if (hostdev->usb_guest.present) {
    g_autofree char *bus = qemu_usb_bus_id(hostdev->usb_guest.bus);
    json_object_set_string_member(props, "bus", bus);
    json_object_set_string_member(props, "port", hostdev->usb_guest.port);
  }
  if (hostdev->boot_order > 0)
    json_object_set_int_member(props, "bootindex", hostdev->boot_order);
  return props;
}

JsonObject *
qemu_device_vfio_pci(const Hostdev *hostdev, const char *id)
{
  JsonObject *props = json_object_new();
  g_autofree char *host = pci_address_format(&hostdev->pci_source);

  json_object_set_string_member(props, "driver", "vfio-pci");
  json_object_set_string_member(props, "host", host);
  json_object_set_string_member(props, "id", id);
  if (hostdev->pci_guest.present) {
    const PciAddress *guest = &hostdev->pci_guest.addr;
    g_autofree char *bus = g_strdup_printf("pci.%u", guest->bus);
    g_autofree char *addr = guest->function
                                ? g_strdup_printf("0x%x.0x%x", guest->slot, guest->function)
                                : g_strdup_printf("0x%x", guest->slot);
    json_object_set_string_member(props, "bus", bus);
    json_object_set_string_member(props, "addr", addr);
    if (hostdev->pci_guest.multifunction)
      json_object_set_boolean_member(props, "multifunction", TRUE);
  }
  if (hostdev->boot_order > 0)
    json_object_set_int_member(props, "bootindex", hostdev->boot_order);
  return props;
}
