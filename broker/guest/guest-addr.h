/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * guest-addr.h - where a device goes in the guest: PCI slots, zPCI ids, and
 * the lines of QEMU's USB device list
 */
#pragma once

#include <glib.h>
#include "guest-topology.h"
#include "hostdev.h"

G_BEGIN_DECLS

/* One line of x-query-usb: "  Device B.A, Port P, Speed S Mb/s, Product ...[, ID: id]" */
typedef struct {
  guint bus;              /* QEMU's bus number, in the order the buses were made */
  guint address;
  char port[16];          /* QEMU's USBPort path is 16 bytes */
  char *id;               /* NULL when the device has none */
} GuestUsbLine;

/**
 * guest_usb_lines_parse() - every device line of x-query-usb's text
 * The product in a line is the USB device's own string (at most 31 bytes
 * in QEMU, too short to forge a whole line): each non-empty line must be a
 * whole device line, and a line's id is the last ", ID: " in it.
 * Return: (transfer full) (element-type GuestUsbLine): the lines, or NULL
 * with a HOSTDEVD_ERROR_QEMU_ERROR.
 */
GPtrArray *guest_usb_lines_parse(const char *text, GError **error);

/**
 * guest_pci_place() - choose where a PCI device goes, as libvirt would
 * @requested: (nullable): the guest address the XML asked for
 * @placed: (out): the address to use; bus is the controller index
 * @bus: (out) (transfer none): the bus to name in device_add
 * A requested address is honoured or refused with the reason (unknown bus,
 * not hot-pluggable, no such slot, occupied, function other than 0).
 * Without one, the lowest-index free hot-pluggable slot is taken.
 * Return: FALSE with a HOSTDEVD_ERROR when there is no place.
 */
gboolean guest_pci_place(const GuestTopology *topology, const PciAddress *requested,
                         PciAddress *placed, const GuestPciBus **bus, GError **error);

/**
 * guest_zpci_assign() - zPCI uid and fid for a new device
 * Explicit values must be unused in the VM; missing ones take the lowest
 * free value (uid from 1, fid from 0).
 * Return: FALSE with a Busy error naming the device that holds a value.
 */
gboolean guest_zpci_assign(const GuestTopology *topology, gboolean has_uid, guint uid,
                           gboolean has_fid, guint fid, guint *uid_out, guint *fid_out,
                           GError **error);

G_END_DECLS
