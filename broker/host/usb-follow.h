/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-follow.h - which kernel USB events concern a USB hostdev that
 * follows its device: the one it holds leaving the host, or a device
 * that may be the one it waits for arriving
 *
 * A uevent carries the bus and device numbers, the port path and the
 * vendor/product, not the serial: an arrival that passes these checks is
 * only a candidate, confirmed by host_usb_resolve() (which reads sysfs,
 * checks every name including the serial, and refuses an ambiguous
 * vendor/product).  Pure functions: no I/O.
 */
#pragma once

#include "hostdev.h"
#include "usb-uevent.h"

G_BEGIN_DECLS

/**
 * usb_follow_wanted() - should a USB hostdev follow its device?
 * @hostdev: the definition as the user gave it, before any look-up
 * A device named by vendor/product, port path or serial is recognised by
 * those names when it comes back; one named by bus/device number is that
 * exact device (libvirt's meaning: it is gone when it goes) unless its
 * <hostdevd:device follow='yes'/> asks otherwise.
 * Return: whether the attached device is followed through re-enumeration.
 */
gboolean usb_follow_wanted(const Hostdev *hostdev);

/**
 * usb_follow_is_leaving() - is @event the removal of @hostdev's device?
 * @hostdev: the live definition: its <address bus device/> is where the
 *   device was found at attach
 * Return: TRUE for a remove event of that bus and device number (and of
 * its port path when the hostdev names one).
 */
gboolean usb_follow_is_leaving(const Hostdev *hostdev, const UsbUevent *event);

/**
 * usb_follow_may_arrive() - may @event be the device @hostdev waits for?
 * Return: TRUE for an add event whose vendor/product and port path agree
 * with those @hostdev names (a name it does not give agrees with any).
 */
gboolean usb_follow_may_arrive(const Hostdev *hostdev, const UsbUevent *event);

/**
 * usb_follow_source_for_lookup() - the definition to find the device by
 * when it comes back: @live without the bus/device number it had (a new
 * enumeration gives a new one), with every other name kept; one named by
 * its address alone keeps it.
 * Return: (transfer full): a copy of @live.
 */
Hostdev *usb_follow_source_for_lookup(const Hostdev *live);

G_END_DECLS
