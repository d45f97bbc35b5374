/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu-device.h - a Hostdev as QEMU device_add arguments, with libvirt
 * 9.0's property names, value types and order
 */
#pragma once

#include <json-glib/json-glib.h>
#include "hostdev.h"
#include "host-usb.h"

G_BEGIN_DECLS

/*
 * What the caller has decided or looked up before the devices are built;
 * the Hostdev itself is only read.
 */
typedef struct {
  /* the QEMU id of the device: its alias ("hostdev0", "ua-nic") */
  const char *id;

  /* type='usb': the host device the source resolved to; NULL when it is
   * absent and startupPolicy='optional' (QEMU then gets vendorid/productid
   * and takes the device when it appears) */
  const HostUsbDevice *usb;
  /* type='usb': the hostdevice path to give QEMU instead of
   * "/dev/bus/usb/BBB/DDD" of @usb, e.g. "/dev/fdset/3" when the opened
   * device node is passed with add-fd; NULL for the /dev/bus/usb path */
  const char *usb_hostdevice;

  /* PCI and mdev: where the device goes in the guest.  @pci_bus_id is the
   * QEMU id of the bus ("pci.3"); NULL means "as the XML says": the guest
   * <address type='pci'> if the hostdev has one, named with
   * qemu_pci_bus_id(), and otherwise no bus and addr at all (QEMU picks) */
  const char *pci_bus_id;
  guint pci_slot;           /* 0..0x1f, with @pci_bus_id */
  guint pci_function;       /* 0..7, with @pci_bus_id */
  /* PCI bus 0 is q35's "pcie.0" rather than "pci.0" (naming from the XML) */
  gboolean pcie_root;

  /* the machine has zPCI (s390x): a type='pci' device gets a zpci device
   * added before it, with uid and fid from hostdev->zpci, which must both
   * be set (the caller assigns what the XML left out) */
  gboolean s390x;
} QemuDeviceContext;

/**
 * qemu_device_plan() - the device_add commands that attach @hostdev
 * @hostdev: a parsed device (hostdev_parse_xml())
 * @ctx: the QEMU id and the decisions made for this attach
 * Property names, JSON value types and order are those of libvirt 9.0's
 * qemuBuildPCIHostdevDevProps, qemuBuildHostdevMediatedDevProps,
 * qemuBuildUSBHostdevDevProps and qemuBuildZPCIDevProps, so a VM sees the
 * same hardware as under libvirt.
 * Return: (transfer full) (element-type JsonObject): the device_add argument
 * objects in the order they must be sent (zpci before its vfio-pci target),
 * or NULL with a HOSTDEVD_ERROR (InvalidArgument: the context does not fit
 * the device, e.g. <zpci> on a machine without zPCI, zPCI ids not
 * assigned, a USB device given by address that was not resolved).
 */
GPtrArray *qemu_device_plan(const Hostdev *hostdev, const QemuDeviceContext *ctx,
                            GError **error);

/* Return: (transfer full): the QEMU bus id of USB controller @index as
 * libvirt names it ("usb.0" for index 0, "usb1.0" for index 1, ...). */
char *qemu_usb_bus_id(guint index);

/* Return: (transfer full): the QEMU id of PCI bus @index as libvirt names
 * it: "pci.N"; bus 0 is "pcie.0" when @pcie_root (q35) and "pci.0"
 * otherwise (i440fx, s390x). */
char *qemu_pci_bus_id(guint index, gboolean pcie_root);

G_END_DECLS
