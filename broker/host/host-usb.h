/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-usb.h - USB devices of the host, read from sysfs under the host root
 */
#pragma once

#include "hostdev.h"

G_BEGIN_DECLS

typedef struct {
  char *sysfs_name;    /* "1-1", "2-1.4", root hubs "usb1" */
  char *port_path;     /* the sysfs name when it is a port path of bus
                        * busnum (usb-selector.h); NULL for root hubs */
  guint bus;           /* busnum */
  guint device;        /* devnum */
  guint vendor;        /* idVendor */
  guint product;       /* idProduct */
  guint device_class;  /* bDeviceClass; 0 when absent (classes per interface) */
  char *manufacturer;  /* may be NULL */
  char *product_name;  /* may be NULL */
  char *serial;        /* may be NULL */
} HostUsbDevice;

void host_usb_device_free(HostUsbDevice *device);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostUsbDevice, host_usb_device_free)

/**
 * host_usb_list() - every USB device (not interfaces, not root hubs' ports)
 * Root hubs ("usb1", 1d6b:0002) are devices too and are listed, as libvirt
 * lists them; entries whose attributes cannot be read or parsed (a device
 * unplugged during the scan) are skipped.
 * Return: (transfer full) (element-type HostUsbDevice): sorted by bus then
 * device; an empty array when the host has no USB at all; NULL with
 * @error (HostError) only when sysfs exists but cannot be read.
 */
GPtrArray *host_usb_list(GError **error);

/* bDeviceClass of hubs, root hubs ("usb1", 1d6b:0002) included */
#define HOST_USB_CLASS_HUB 0x09

/* Return: whether @device is a hub: given to a VM, it takes every device
 * plugged in behind it, and a root hub a whole bus. */
gboolean host_usb_is_hub(const HostUsbDevice *device);

/* Return: @device's physical port path, its sysfs name ("1-2.3"), or
 * NULL for a root hub ("usb1"), which has none (nor has an entry whose
 * name is not a well-formed port path of its bus). */
const char *host_usb_port_path(const HostUsbDevice *device);

/**
 * host_usb_resolve() - find the one host device a type='usb' hostdev names
 * Matches every name the hostdev gives: vendor/product, bus/device, port
 * path, serial.  With an address, the device at the address must also
 * have the other names (as libvirt's virUSBDeviceFind checks the ids).
 * Several matches: an InvalidArgument error listing each (bus, device,
 * port path, serial) and saying how to choose one, even with
 * startupPolicy='optional' (guessing is worse than failing).  No match: a
 * NotFound error saying what to do, unless the startup policy is
 * 'optional' and the hostdev names no port path or serial, in which case
 * NULL is returned with @error unset.  (With a port path or serial a
 * missing device stays an error: the caller would leave QEMU waiting by
 * vendor/product, and QEMU would take an identical device.)
 * Return: (transfer full): the device, or NULL.
 */
HostUsbDevice *host_usb_resolve(const Hostdev *hostdev, GError **error);

G_END_DECLS
