/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-pci.h - PCI devices of the host and whether QEMU could open one
 * through VFIO, read from sysfs and devfs under the host root
 */
#pragma once

#include "hostdev.h"

G_BEGIN_DECLS

/* Return: (transfer full): the bound driver's name, or NULL when unbound
 * (also NULL with @error set when the device does not exist). */
char *host_pci_get_driver(const PciAddress *addr, GError **error);

/* Return: the device's IOMMU group number, or -1 with @error set (no such
 * device, or no IOMMU: the error says how to enable it). */
int host_pci_get_iommu_group(const PciAddress *addr, GError **error);

/**
 * host_pci_check_assignable() - can QEMU open @addr with vfio-pci now?
 * Checks in order, each failure with its own remedy: the device exists
 * (NotFound), the host has an enabled IOMMU and the device is in a group
 * (HostError), the device is bound to vfio-pci (HostError naming the
 * current driver, or saying it has none; when @managed the message says
 * that managed binding is not available in this build and gives the
 * commands to bind it by hand), and /dev/vfio/N exists (HostError).
 * Reads only; changes nothing.
 */
gboolean host_pci_check_assignable(const PciAddress *addr, gboolean managed,
                                   GError **error);

G_END_DECLS
