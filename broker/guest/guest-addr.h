/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * guest-addr.h - where a device sits in the guest, as QEMU reports it
 */
#pragma once

#include <glib.h>
#include "guest-topology.h"
#include "hostdev.h"

G_BEGIN_DECLS

/**
 * guest_usb_address_parse() - find device @id in x-query-usb output
 * @text: the "human-readable-text" of QMP x-query-usb, lines like
 *   "  Device 0.1, Port 1, Speed 480 Mb/s, Product QEMU USB Keyboard, ID: usbhost0"
 * @bus: (out): the USB bus number (libvirt's controller index)
 * @port: (out) (transfer full): the port path in canonical form, e.g. "1" or "1.2"
 * The text is QEMU's, and each product string in it is a USB device's own:
 * every line must be a whole device line, the id is the last ", ID: " of
 * its line, exactly one line may carry @id, and the address must be one
 * <address type='usb'> can hold (hostdev_usb_guest_port_check()), so what
 * is journaled reads back after a restart.
 * Return: TRUE, or FALSE with a HOSTDEVD_ERROR_QEMU_ERROR saying why.
 */
gboolean guest_usb_address_parse(const char *text, const char *id, guint *bus, char **port,
                                 GError **error);

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
