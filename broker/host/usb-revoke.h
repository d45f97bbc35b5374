/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-revoke.h - make every open usbfs descriptor of a USB device useless
 *
 * QEMU gets a USB device as a descriptor (usb-fd.h).  When hostdevd gives
 * the device back, a QEMU that kept that descriptor (a forged
 * DEVICE_DELETED, a dup) must not be able to go on using it.  Measured on
 * Linux 6.1 (tests/vm scenario 18): writing 0 then 1 to the device's
 * "authorized" and USBDEVFS_RESET both leave an old descriptor working;
 * disabling its hub port ("disable" of the usbN-portM device) disconnects
 * the device, after which every old descriptor fails with ENODEV, and
 * enabling the port again enumerates it anew (a new device number, its host
 * drivers probed as for a plug-in).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * usb_revoke_find_port() - the hub port of USB device @port_path, if it is
 * still bus @bus device @device
 * @port_path: the device's sysfs name ("1-1", "2-1.4"), canonical
 * Return: (transfer full): the port's directory relative to the host root
 * ("sys/devices/.../usb1-port1"); NULL with @error NotFound when that device
 * is gone or re-enumerated (its old descriptors are dead already), HostError
 * when sysfs cannot tell.
 */
char *usb_revoke_find_port(const char *port_path, guint bus, guint device, GError **error);

/* Return: whether @port is a path usb_revoke_find_port() could have returned
 * (for one read back from the journal). */
gboolean usb_revoke_port_is_valid(const char *port);

/**
 * usb_revoke_port_disable() - disable hub port @port: the kernel disconnects
 * the device on it before the write returns, and its usbfs descriptors fail
 * with ENODEV from then on.  Journal @port first: until
 * usb_revoke_port_enable() the device is away from the host.
 * Return: FALSE with @error (HostError naming the port and what to do).
 */
gboolean usb_revoke_port_disable(const char *port, GError **error);

/* usb_revoke_port_enable() - enable hub port @port again (harmless when it is);
 * the device on it is enumerated anew.  Return: FALSE with @error. */
gboolean usb_revoke_port_enable(const char *port, GError **error);

/* Return: whether USB device number @device is still at @port_path (after
 * usb_revoke_port_disable() only a sysfs that is no kernel's shows that). */
gboolean usb_revoke_device_is_still_there(const char *port_path, guint device);

/* Return: whether a USB device is at @port_path again, with a device number other
 * than @old_device (enumerated anew after usb_revoke_port_enable()). */
gboolean usb_revoke_device_is_back(const char *port_path, guint old_device);

G_END_DECLS
