/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-follow.c - the kernel USB events that concern a followed USB
 * hostdev (usb-follow.h)
 */
#include "usb-follow.h"

gboolean
usb_follow_wanted(const Hostdev *hostdev)
{
  if (hostdev->type != HOSTDEV_TYPE_USB)
    return FALSE;
  if (hostdev->usb.follow != HOSTDEV_TRISTATE_ABSENT)
    return hostdev->usb.follow == HOSTDEV_TRISTATE_ON;
  return !hostdev->usb.has_address;
}

gboolean
usb_follow_is_leaving(const Hostdev *hostdev, const UsbUevent *event)
{
  if (hostdev->type != HOSTDEV_TYPE_USB || event->action != USB_UEVENT_REMOVE ||
      !hostdev->usb.has_address)
    return FALSE;
  if (event->bus != hostdev->usb.bus || event->device != hostdev->usb.device)
    return FALSE;
  return hostdev->usb.port_path == NULL ||
         g_strcmp0(event->port_path, hostdev->usb.port_path) == 0;
}

gboolean
usb_follow_may_arrive(const Hostdev *hostdev, const UsbUevent *event)
{
  if (hostdev->type != HOSTDEV_TYPE_USB || event->action != USB_UEVENT_ADD)
    return FALSE;
  /* a root hub is never a hostdev's device */
  if (event->port_path == NULL)
    return FALSE;
  if (hostdev->usb.has_vendor_product &&
      (event->vendor != hostdev->usb.vendor || event->product != hostdev->usb.product))
    return FALSE;
  return hostdev->usb.port_path == NULL || g_str_equal(event->port_path, hostdev->usb.port_path);
}

Hostdev *
usb_follow_source_for_lookup(const Hostdev *live)
{
  Hostdev *copy = hostdev_copy(live);
  /* named by nothing else (an optional device by address): that address it is */
  if (!copy->usb.has_vendor_product && copy->usb.port_path == NULL && copy->usb.serial == NULL)
    return copy;
  copy->usb.has_address = FALSE;
  copy->usb.bus = copy->usb.device = 0;
  return copy;
}
