/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nodedev.h - the host device inventory shared by hostdevd and hostdevctl:
 * libvirt's node device names and XML (as `virsh nodedev-list` and
 * `virsh nodedev-dumpxml` show them), a JSON inventory for orchestrators,
 * and a tree of IOMMU groups for people preparing passthrough.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum {
  NODEDEV_CAP_ANY,
  NODEDEV_CAP_PCI,
  NODEDEV_CAP_USB_DEVICE,
  NODEDEV_CAP_MDEV,
} NodedevCap;

/* nodedev_cap_parse() - "pci", "usb_device" or "mdev"; InvalidArgument. */
gboolean nodedev_cap_parse(const char *text, NodedevCap *cap, GError **error);

/* Return: (transfer full): libvirt's name of the USB device whose sysfs
 * name is @sysfs_name: "usb_1_1" for "1-1", "usb_usb1" for "usb1". */
char *nodedev_usb_name(const char *sysfs_name);

/**
 * nodedev_list_names() - the names of the host's devices, sorted as virsh
 * sorts them
 * Return: (transfer full) (element-type utf8): or NULL with HostError.
 */
GPtrArray *nodedev_list_names(NodedevCap cap, GError **error);

/**
 * nodedev_dumpxml() - the node device XML of @name
 * @name: "pci_0000_01_00_0" (or "0000:01:00.0"), "usb_1_1", "mdev_UUID"
 * Valid against libvirt's nodedev.rng, with the facts virsh shows:
 * path, parent, driver, class, ids and names (from pci.ids / usb.ids when
 * installed), SR-IOV functions, mdev types, IOMMU group with its members,
 * NUMA node, PCIe link.
 * Return: (transfer full): the XML ending in a newline, or NULL with
 * InvalidArgument (malformed name) or NotFound.
 */
char *nodedev_dumpxml(const char *name, GError **error);

/**
 * nodedev_inventory_json() - every device as one JSON object each
 * PCI: name, capability, address, path, parent, vendor_id, vendor_name,
 * product_id, product_name, class, driver, driver_override, iommu_group,
 * iommu_group_members, numa_node, physfn, totalvfs, numvfs, virtfns, net,
 * mdev_types.  USB: name, capability, bus, device, port (the port path,
 * "1-2.3"; null for a root hub), vendor_id,
 * vendor_name, product_id, product_name, serial, driver, parent, devnode.
 * mdev: name, capability, uuid, type, parent, iommu_group.  Absent facts
 * are null.
 * Return: (transfer full): an array, or NULL with HostError.
 */
JsonArray *nodedev_inventory_json(NodedevCap cap, GError **error);

/**
 * nodedev_format_tree() - IOMMU groups with their members and drivers,
 * each group marked ready for VFIO or naming what holds it back, then
 * the USB buses with their devices by port.
 * Return: (transfer full): the text, or NULL with HostError.
 */
char *nodedev_format_tree(NodedevCap cap, GError **error);

G_END_DECLS
