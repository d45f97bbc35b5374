/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-follow.h - what the daemon feeds the hot-plug workflow so that
 * USB devices follow re-enumeration (hotplug-follow.c)
 */
#pragma once

#include "hotplug.h"
#include "usb-uevent.h"

G_BEGIN_DECLS

/**
 * hotplug_follow_uevent() - the kernel announced a USB device event
 * A followed device of the VM that left the host waits for its device
 * (DEVICE_WAITING); a waiting device whose device may have appeared is
 * looked up and attached again (DEVICE_ATTACHED).  Lost events: sysfs is
 * looked at instead.  Queued behind running operations; nothing before
 * QEMU is connected.
 */
void hotplug_follow_uevent(Hotplug *hotplug, const UsbUevent *event);

/* hotplug_follow_rescan() - attach every waiting device whose device is on the host now. */
void hotplug_follow_rescan(Hotplug *hotplug);

G_END_DECLS
