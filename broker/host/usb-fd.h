/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-fd.h - open a host USB device for QEMU, so that QEMU gets a file
 * descriptor (add-fd over SCM_RIGHTS, hostdevice=/dev/fdset/N) instead of
 * access to /dev/bus/usb.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * usb_fd_open() - open /dev/bus/usb/BBB/DDD (under the host root)
 * @bus: 1..0xffff
 * @device: 1..0xffff
 * @sysfs_name: (nullable): the device's sysfs name ("1-1"); when given,
 *   the node must be the character device sysfs names in its "dev"
 *   attribute, so a device replugged between the look-up and the open is
 *   not handed over in its place
 * Opened O_RDWR | O_CLOEXEC | O_NOCTTY.
 * Return: the fd (the caller closes it), or -1 with InvalidArgument (range),
 * NotFound (no node), HostError (permission, not a USB device node, a
 * different device).
 */
int usb_fd_open(guint bus, guint device, const char *sysfs_name, GError **error);

G_END_DECLS
