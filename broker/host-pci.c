/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-pci.c - PCI devices of the host and whether QEMU could open one
 * through VFIO
 *
 * Reads only: ROOT/sys/bus/pci/devices/DDDD:BB:SS.F/{driver,iommu_group}
 * (symlinks whose last component is the driver and the group number),
 * ROOT/sys/kernel/iommu_groups (empty or absent without an IOMMU) and
 * ROOT/dev/vfio/N (the node QEMU opens for group N).  Every message names
 * the device and what to do; the remedies print real /sys paths because
 * that is what the user types, whatever host root the daemon uses.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "host-pci.h"
#include "host-root.h"
#include "hostdevd-error.h"

/* The parser enforces these too; checked again because the address is
 * about to become a path. */
static gboolean
check_address(const PciAddress *addr, GError **error)
{
  if (addr->domain > 0xffff || addr->bus > 0xff || addr->slot > 0x1f ||
      addr->function > 7) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "PCI address %x:%x:%x.%x is out of range (domain <= 0xffff, "
                "bus <= 0xff, slot <= 0x1f, function <= 7)",
                addr->domain, addr->bus, addr->slot, addr->function);
    return FALSE;
  }
  return TRUE;
}

/* Return: (transfer full): "pci_0000_01_00_0", libvirt's nodedev name. */
static char *
nodedev_name(const PciAddress *addr)
{
  return g_strdup_printf("pci_%04x_%02x_%02x_%x",
                         addr->domain, addr->bus, addr->slot, addr->function);
}

/* Return: (transfer full): the device's sysfs directory, or NULL with a
 * NotFound error when the host has no such device. */
static char *
device_dir(const PciAddress *addr, GError **error)
{
  g_autofree char *bdf = NULL;
  g_autofree char *dir = NULL;

  if (!check_address(addr, error))
    return NULL;
  bdf = pci_address_format(addr);
  dir = host_path("sys/bus/pci/devices/%s", bdf);
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "PCI device %s does not exist on this host; list PCI devices "
                "with `hostdevctl nodedev-list --cap pci`", bdf);
    return NULL;
  }
  return g_steal_pointer(&dir);
}

char *
host_pci_get_driver(const PciAddress *addr, GError **error)
{
  g_autofree char *dir = device_dir(addr, error);
  g_autofree char *bdf = NULL;
  g_autofree char *link = NULL;
  g_autoptr(GError) local_error = NULL;
  char *driver;

  if (dir == NULL)
    return NULL;
  link = g_build_filename(dir, "driver", NULL);
  driver = host_read_link_name(link, &local_error);
  if (driver != NULL)
    return driver;
  if (g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    return NULL; /* unbound */

  bdf = pci_address_format(addr);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot read the driver of PCI device %s: %s",
              bdf, local_error->message);
  return NULL;
}

/* Return: whether sysfs lists any IOMMU group: without an enabled IOMMU
 * the kernel creates none. */
static gboolean
host_has_iommu_groups(void)
{
  g_autofree char *path = host_path("sys/kernel/iommu_groups");
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);

  return dir != NULL && g_dir_read_name(dir) != NULL;
}

int
host_pci_get_iommu_group(const PciAddress *addr, GError **error)
{
  g_autofree char *dir = device_dir(addr, error);
  g_autofree char *bdf = NULL;
  g_autofree char *link = NULL;
  g_autofree char *group = NULL;
  g_autoptr(GError) local_error = NULL;
  guint64 number;

  if (dir == NULL)
    return -1;
  bdf = pci_address_format(addr);
  link = g_build_filename(dir, "iommu_group", NULL);
  group = host_read_link_name(link, &local_error);

  if (group == NULL) {
    if (!g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "cannot read the IOMMU group of PCI device %s: %s",
                  bdf, local_error->message);
    } else if (!host_has_iommu_groups()) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s cannot be assigned: the host has no IOMMU "
                  "enabled: enable VT-d/AMD-Vi in the firmware and boot with "
                  "intel_iommu=on (Intel) or check amd_iommu (AMD)", bdf);
    } else {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s is in no IOMMU group although the host has "
                  "an IOMMU, so VFIO cannot isolate it: check dmesg for "
                  "DMAR/AMD-Vi messages about this device and the "
                  "firmware's IOMMU settings", bdf);
    }
    return -1;
  }

  if (!g_ascii_string_to_unsigned(group, 10, 0, G_MAXINT, &number, NULL)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "PCI device %s: unexpected IOMMU group '%s' in sysfs",
                bdf, group);
    return -1;
  }
  return (int)number;
}

static void
set_not_vfio_error(const PciAddress *addr, const char *driver,
                   gboolean managed, GError **error)
{
  g_autofree char *bdf = pci_address_format(addr);
  g_autofree char *nodedev = nodedev_name(addr);
  g_autofree char *bound = driver ?
    g_strdup_printf("is bound to driver '%s', not vfio-pci", driver) :
    g_strdup("is not bound to any driver");
  /* Unbinding is only needed when a driver holds the device. */
  g_autofree char *unbind = driver ?
    g_strdup_printf(" echo %s > /sys/bus/pci/devices/%s/driver/unbind;",
                    bdf, bdf) :
    g_strdup("");

  if (managed) {
    /* The managed binding step arrives in a later milestone; until then
     * say so instead of pretending. */
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "PCI device %s %s, and managed binding to vfio-pci is not "
                "available in this build; bind it by hand: "
                "echo vfio-pci > /sys/bus/pci/devices/%s/driver_override;%s "
                "echo %s > /sys/bus/pci/drivers_probe",
                bdf, bound, bdf, unbind, bdf);
  } else if (driver != NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "PCI device %s %s: use managed='yes' or bind it with "
                "`hostdevctl nodedev-detach %s`", bdf, bound, nodedev);
  } else {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "PCI device %s %s; bind it to vfio-pci with "
                "`hostdevctl nodedev-detach %s`, or by hand: "
                "echo vfio-pci > /sys/bus/pci/devices/%s/driver_override; "
                "echo %s > /sys/bus/pci/drivers_probe",
                bdf, bound, nodedev, bdf, bdf);
  }
}

gboolean
host_pci_check_assignable(const PciAddress *addr, gboolean managed,
                          GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *driver = NULL;
  g_autofree char *bdf = NULL;
  g_autofree char *node = NULL;
  int group;

  group = host_pci_get_iommu_group(addr, error);
  if (group < 0)
    return FALSE;

  driver = host_pci_get_driver(addr, &local_error);
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  if (g_strcmp0(driver, "vfio-pci") != 0) {
    set_not_vfio_error(addr, driver, managed, error);
    return FALSE;
  }

  node = host_path("dev/vfio/%d", group);
  if (!g_file_test(node, G_FILE_TEST_EXISTS)) {
    bdf = pci_address_format(addr);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "PCI device %s is bound to vfio-pci, but /dev/vfio/%d (its "
                "IOMMU group) does not exist: load the VFIO modules "
                "(modprobe vfio-pci) and check that devtmpfs is mounted on /dev",
                bdf, group);
    return FALSE;
  }
  return TRUE;
}
