/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * guest-addr.h - where a device sits in the guest, as QEMU reports it
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * guest_usb_address_from_query() - find device @id in x-query-usb output
 * @text: the "human-readable-text" of QMP x-query-usb, lines like
 *   "  Device 0.1, Port 1, Speed 480 Mb/s, Product QEMU USB Keyboard, ID: usbhost0"
 * @bus: (out): the USB bus number (libvirt's controller index)
 * @port: (out) (transfer full): the port path, e.g. "1" or "1.2"
 * Return: TRUE when @id was found with a well-formed line.
 */
gboolean guest_usb_address_from_query(const char *text, const char *id,
                                      guint *bus, char **port);

G_END_DECLS
