/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu-device.h - a Hostdev as QEMU device_add arguments, with libvirt's
 * property names and value types
 */
#pragma once

#include <json-glib/json-glib.h>
#include "hostdev.h"
#include "host-usb.h"

G_BEGIN_DECLS

/**
 * qemu_device_usb_host() - the usb-host device for @hostdev
 * @resolved: (nullable): the host device it resolved to; NULL when the
 *   device is absent and the startup policy is optional, in which case
 *   QEMU is given vendorid/productid to pick the device up when it appears
 * @id: the QEMU id (the alias)
 * Return: (transfer full): the arguments of device_add.
 */
JsonObject *qemu_device_usb_host(const Hostdev *hostdev, const HostUsbDevice *resolved,
                                 const char *id);

/* Return: (transfer full): the vfio-pci device_add arguments for @hostdev with QEMU id @id. */
JsonObject *qemu_device_vfio_pci(const Hostdev *hostdev, const char *id);

/* Return: (transfer full): the QEMU bus id of USB controller @index as
 * libvirt names it ("usb.0" for index 0, "usb1.0" for index 1, ...). */
char *qemu_usb_bus_id(guint index);

G_END_DECLS
