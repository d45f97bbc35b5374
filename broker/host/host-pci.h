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
 * that the managed binding (vfio_prepare()) has not put it there and
 * gives the commands to bind it by hand), and /dev/vfio/N exists
 * (HostError).  Reads only; changes nothing.  With managed='yes' call it
 * after vfio_prepare(), as the last check before device_add.
 */
gboolean host_pci_check_assignable(const PciAddress *addr, gboolean managed,
                                   GError **error);

/**
 * host_pci_check_not_bridge() - refuse a PCI bridge or PCIe port as a source
 * A bridge (class 0x0604/0x0609, or a bridge header in its config space)
 * is never assigned: VFIO does not take one, and its IOMMU group's check
 * would talk about the devices behind it instead.
 * Return: FALSE with InvalidArgument naming it as a bridge; TRUE for any
 * other device, and when sysfs cannot tell (later checks report that).
 */
gboolean host_pci_check_not_bridge(const PciAddress *addr, GError **error);

/* What sysfs says about one PCI function, for the inventory. */
typedef struct {
  PciAddress addr;
  char *name;               /* "0000:01:00.0" */
  char *sysfs_path;         /* "/sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0" */
  gboolean has_parent;      /* FALSE on a root bus */
  PciAddress parent;        /* the upstream bridge or root port */
  guint vendor, device;     /* 16 bits each */
  guint subsystem_vendor, subsystem_device;
  guint class_code;         /* 24 bits: 0x020000 */
  char *driver;             /* NULL when unbound */
  char *driver_override;    /* NULL when "(null)" */
  int iommu_group;          /* -1: none */
  int numa_node;            /* -1: unknown */
  gboolean is_virtfn;       /* an SR-IOV VF ... */
  PciAddress physfn;        /* ... of this PF */
  gboolean is_sriov_pf;     /* has sriov_totalvfs */
  guint totalvfs, numvfs;
  GArray *virtfns;          /* (element-type PciAddress) virtfnN in N order */
  GPtrArray *net;           /* (element-type utf8) network interface names */
  char *max_link_speed;     /* "2.5" (GT/s), NULL when not PCIe or unknown */
  guint max_link_width;
  char *cur_link_speed;
  guint cur_link_width;
} HostPciDevice;

void host_pci_device_free(HostPciDevice *device);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostPciDevice, host_pci_device_free)

/**
 * host_pci_read_ids() - @addr's vendor, device and class alone (what a
 * policy decides on), three sysfs reads instead of the inventory's dozens
 * Return: FALSE when the device is gone or its ids cannot be read.
 */
gboolean host_pci_read_ids(const PciAddress *addr, guint *vendor, guint *device, guint *class_code);
/* host_pci_read_class() - @addr's class code (0xCCSSPP) alone: FALSE when it cannot be read. */
gboolean host_pci_read_class(const PciAddress *addr, guint *class_code);

/**
 * host_pci_is_disabled() - the kernel's word that nothing holds @addr enabled
 * vfio-pci enables a function while a process has it open (its "enable"
 * count, which a host driver raises too while bound), and disables it at
 * the last close; nothing a VFIO user does through the device changes the
 * count.  So 0 on a function QEMU had open proves QEMU let go of it.
 * Return: whether its "enable" reads 0; FALSE when it cannot be read.
 */
gboolean host_pci_is_disabled(const PciAddress *addr);

/**
 * host_pci_device_read() - everything the inventory shows of @addr
 * Return: (transfer full): the device, or NULL with NotFound (no such
 * device) or HostError (its ids cannot be read).
 */
HostPciDevice *host_pci_device_read(const PciAddress *addr, GError **error);

/**
 * host_pci_list() - every PCI function of the host
 * Entries of /sys/bus/pci/devices that are no strict PCI address, or whose
 * ids cannot be read (removed during the scan), are skipped.
 * Return: (transfer full) (element-type HostPciDevice): sorted by address;
 * empty without PCI; NULL with HostError when sysfs cannot be read.
 */
GPtrArray *host_pci_list(GError **error);

/* Return: (transfer full) (element-type PciAddress): the members of IOMMU
 * group @group, sorted; NULL with HostError when the group does not exist. */
GArray *host_pci_iommu_group_members(int group, GError **error);

/* Return: whether @device is a PCI-to-PCI bridge or a PCIe port, which an
 * IOMMU group may hold on any driver: VFIO does not assign them. */
gboolean host_pci_device_is_bridge(const HostPciDevice *device);
/* Return: whether PCI class code @class_code (0xCCSSPP) is a bridge's. */
gboolean host_pci_class_is_bridge(guint class_code);

/* Return: 0, -1 or 1 like strcmp, by domain, bus, slot, function. */
int pci_address_compare(const PciAddress *a, const PciAddress *b);

/* Return: (transfer full): "pci_0000_01_00_0", libvirt's nodedev name. */
char *pci_address_nodedev_name(const PciAddress *addr);

/* pci_address_parse_nodedev() - parse "pci_0000_01_00_0" or
 * "0000:01:00.0" strictly; InvalidArgument otherwise. */
gboolean pci_address_parse_nodedev(const char *name, PciAddress *addr,
                                   GError **error);

G_END_DECLS
