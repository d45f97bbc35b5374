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

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

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

char *
pci_address_nodedev_name(const PciAddress *addr)
{
  return g_strdup_printf("pci_%04x_%02x_%02x_%x",
                         addr->domain, addr->bus, addr->slot, addr->function);
}

#define nodedev_name pci_address_nodedev_name

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

/*
 * device_link_name() - the last component of @addr's sysfs link @name
 * ("driver", "iommu_group")
 * The link is read first and the device's directory looked at only when
 * the link is missing: one walk of the sysfs path instead of two, on every
 * look-up of an attach.
 * Return: (transfer full): the name; NULL without @error when the device
 * has no such link; NULL with NotFound (no such device) or the G_FILE_ERROR
 * of reading the link.
 */
static char *
device_link_name(const PciAddress *addr, const char *name, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *bdf = NULL;
  g_autofree char *link = NULL;
  char *target;

  if (!check_address(addr, error))
    return NULL;
  bdf = pci_address_format(addr);
  link = host_path("sys/bus/pci/devices/%s/%s", bdf, name);
  target = host_read_link_name(link, &local_error);
  if (target != NULL)
    return target;
  if (!g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return NULL;
  }
  g_free(device_dir(addr, error));   /* NotFound, or the device just has no such link */
  return NULL;
}

char *
host_pci_get_driver(const PciAddress *addr, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *bdf = NULL;
  char *driver = device_link_name(addr, "driver", &local_error);

  if (driver != NULL || local_error == NULL)
    return driver;   /* NULL: unbound */
  if (local_error->domain == HOSTDEVD_ERROR) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return NULL;
  }
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
  g_autofree char *bdf = pci_address_format(addr);
  g_autofree char *group = NULL;
  g_autoptr(GError) local_error = NULL;
  guint64 number;

  group = device_link_name(addr, "iommu_group", &local_error);
  if (group == NULL) {
    if (local_error && local_error->domain == HOSTDEVD_ERROR) {
      g_propagate_error(error, g_steal_pointer(&local_error));
    } else if (local_error) {
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
    /* Reached only when the managed binding was skipped or undone. */
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "PCI device %s %s, although managed='yes' should have bound "
                "it to vfio-pci; bind it by hand: "
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

/* ------------------------------------------------------------------ */
/* Inventory                                                           */

int
pci_address_compare(const PciAddress *a, const PciAddress *b)
{
  if (a->domain != b->domain)
    return a->domain < b->domain ? -1 : 1;
  if (a->bus != b->bus)
    return a->bus < b->bus ? -1 : 1;
  if (a->slot != b->slot)
    return a->slot < b->slot ? -1 : 1;
  if (a->function != b->function)
    return a->function < b->function ? -1 : 1;
  return 0;
}

gboolean
pci_address_parse_nodedev(const char *name, PciAddress *addr, GError **error)
{
  g_autofree char *text = NULL;
  guint64 d, b, s, f;
  g_auto(GStrv) fields = NULL;

  if (name == NULL || !g_str_has_prefix(name, "pci_"))
    return pci_address_parse(name, addr, error);

  /* pci_DDDD_BB_SS_F, exactly as libvirt writes it */
  fields = g_strsplit(name + 4, "_", -1);
  if (g_strv_length(fields) != 4 || strlen(fields[0]) != 4 ||
      strlen(fields[1]) != 2 || strlen(fields[2]) != 2 ||
      strlen(fields[3]) != 1 ||
      !g_ascii_string_to_unsigned(fields[0], 16, 0, 0xffff, &d, NULL) ||
      !g_ascii_string_to_unsigned(fields[1], 16, 0, 0xff, &b, NULL) ||
      !g_ascii_string_to_unsigned(fields[2], 16, 0, 0x1f, &s, NULL) ||
      !g_ascii_string_to_unsigned(fields[3], 16, 0, 7, &f, NULL)) {
    text = g_utf8_make_valid(name, (gssize)MIN(strlen(name), 64));
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "'%s' is not a PCI node device name: expected "
                "pci_DDDD_BB_SS_F (hex; slot <= 1f, function <= 7), e.g. "
                "pci_0000_01_00_0, or an address like 0000:01:00.0", text);
    return FALSE;
  }
  addr->domain = (guint)d;
  addr->bus = (guint)b;
  addr->slot = (guint)s;
  addr->function = (guint)f;
  return TRUE;
}

void
host_pci_device_free(HostPciDevice *device)
{
  if (device == NULL)
    return;
  g_free(device->name);
  g_free(device->sysfs_path);
  g_free(device->driver);
  g_free(device->driver_override);
  g_clear_pointer(&device->virtfns, g_array_unref);
  g_clear_pointer(&device->net, g_ptr_array_unref);
  g_free(device->max_link_speed);
  g_free(device->cur_link_speed);
  g_free(device);
}

/* Return: whether attribute @attr of device @bdf is a hex number ("0x8086")
 * no larger than @max. */
static gboolean
read_hex_attr(const char *bdf, const char *attr, guint64 max, guint *out)
{
  g_autofree char *path = host_path("sys/bus/pci/devices/%s/%s", bdf, attr);
  g_autofree char *text = host_read_attr(path, NULL);
  guint64 value;

  if (text == NULL || !g_str_has_prefix(text, "0x") ||
      !g_ascii_string_to_unsigned(text + 2, 16, 0, max, &value, NULL))
    return FALSE;
  *out = (guint)value;
  return TRUE;
}

/* Return: the header type of @bdf's config space (0 endpoint, 1 bridge, 2 CardBus), or -1. */
static gint
read_header_type(const char *bdf)
{
  g_autofree char *path = host_path("sys/bus/pci/devices/%s/config", bdf);
  guint8 header = 0;
  /* the one byte: every byte of config space read is a config cycle on the device */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t got = fd < 0 ? -1 : pread(fd, &header, 1, 0x0e);

  if (fd >= 0)
    close(fd);
  return got == 1 ? header & 0x7f : -1;
}

gboolean
host_pci_check_not_bridge(const PciAddress *addr, GError **error)
{
  g_autofree char *bdf = NULL;
  guint class_code = 0;

  if (!check_address(addr, error))
    return FALSE;
  bdf = pci_address_format(addr);
  gboolean by_class = read_hex_attr(bdf, "class", 0xffffff, &class_code) &&
                      ((class_code >> 8) == 0x0604 || (class_code >> 8) == 0x0609);
  gint header = read_header_type(bdf);
  if (!by_class && header != 1 && header != 2)
    return TRUE;
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "%s is a PCI bridge: bridges cannot be assigned (a bridge, PCIe root port or "
              "switch port only connects other devices); name a device behind it instead "
              "(`hostdevctl nodedev-list` shows each with its parent)", bdf);
  return FALSE;
}

/* Return: a decimal attribute in [@min, @max], or @fallback. */
static gint64
read_int_attr(const char *bdf, const char *attr, gint64 min, gint64 max,
              gint64 fallback)
{
  g_autofree char *path = host_path("sys/bus/pci/devices/%s/%s", bdf, attr);
  g_autofree char *text = host_read_attr(path, NULL);
  gint64 value;

  if (text == NULL || !g_ascii_string_to_signed(text, 10, min, max, &value, NULL))
    return fallback;
  return value;
}

/* Return: (transfer full): "8" for "8.0 GT/s PCIe", "2.5" for "2.5 GT/s";
 * NULL when absent or "Unknown". */
static char *
read_link_speed(const char *bdf, const char *attr)
{
  g_autofree char *path = host_path("sys/bus/pci/devices/%s/%s", bdf, attr);
  g_autofree char *text = host_read_attr(path, NULL);
  const char *end;
  g_autofree char *number = NULL;
  gsize len;

  if (text == NULL)
    return NULL;
  end = strstr(text, " GT/s");
  if (end == NULL || end == text)
    return NULL;
  number = g_strndup(text, end - text);
  for (const char *p = number; *p; p++)
    if (!g_ascii_isdigit(*p) && *p != '.')
      return NULL;
  /* libvirt writes whole speeds without a fraction */
  len = strlen(number);
  if (len > 2 && g_str_has_suffix(number, ".0"))
    number[len - 2] = '\0';
  return g_steal_pointer(&number);
}

/* Return: @link's target as a PCI address (its last component). */
static gboolean
read_link_address(const char *bdf, const char *link, PciAddress *out)
{
  g_autofree char *path = host_path("sys/bus/pci/devices/%s/%s", bdf, link);
  g_autofree char *name = host_read_link_name(path, NULL);

  return name != NULL && pci_address_parse(name, out, NULL);
}

static gint
compare_virtfn_names(gconstpointer a, gconstpointer b)
{
  const char *x = *(const char *const *)a + strlen("virtfn");
  const char *y = *(const char *const *)b + strlen("virtfn");
  guint64 nx = g_ascii_strtoull(x, NULL, 10);
  guint64 ny = g_ascii_strtoull(y, NULL, 10);

  return nx < ny ? -1 : nx > ny;
}

static void
read_sriov(HostPciDevice *device, const char *dir)
{
  g_autoptr(GDir) listing = g_dir_open(dir, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  gint64 total;
  const char *entry;

  device->virtfns = g_array_new(FALSE, FALSE, sizeof(PciAddress));
  device->is_virtfn = read_link_address(device->name, "physfn", &device->physfn);

  total = read_int_attr(device->name, "sriov_totalvfs", 0, 0xffff, -1);
  if (total >= 0) {
    device->is_sriov_pf = TRUE;
    device->totalvfs = (guint)total;
    device->numvfs = (guint)read_int_attr(device->name, "sriov_numvfs", 0, 0xffff, 0);
  }

  while (listing && (entry = g_dir_read_name(listing)) != NULL) {
    guint64 index;

    if (g_str_has_prefix(entry, "virtfn") &&
        g_ascii_string_to_unsigned(entry + 6, 10, 0, 0xffff, &index, NULL))
      g_ptr_array_add(names, g_strdup(entry));
  }
  g_ptr_array_sort(names, compare_virtfn_names);
  for (guint i = 0; i < names->len; i++) {
    PciAddress vf;

    if (read_link_address(device->name, names->pdata[i], &vf))
      g_array_append_val(device->virtfns, vf);
  }
}

static gint
compare_strings(gconstpointer a, gconstpointer b)
{
  return g_strcmp0(*(const char *const *)a, *(const char *const *)b);
}

static void
read_net(HostPciDevice *device)
{
  g_autofree char *path = host_path("sys/bus/pci/devices/%s/net", device->name);
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
  const char *entry;

  device->net = g_ptr_array_new_with_free_func(g_free);
  while (dir && (entry = g_dir_read_name(dir)) != NULL)
    g_ptr_array_add(device->net, g_strdup(entry));
  g_ptr_array_sort(device->net, compare_strings);
}

gboolean
host_pci_read_class(const PciAddress *addr, guint *class_code)
{
  g_autofree char *name = pci_address_format(addr);
  return read_hex_attr(name, "class", 0xffffff, class_code);
}

gboolean
host_pci_is_disabled(const PciAddress *addr)
{
  g_autofree char *name = pci_address_format(addr);
  g_autofree char *path = host_path("sys/bus/pci/devices/%s/enable", name);
  g_autofree char *count = host_read_attr(path, NULL);

  return g_strcmp0(count, "0") == 0;
}

gboolean
host_pci_read_ids(const PciAddress *addr, guint *vendor, guint *device, guint *class_code)
{
  g_autofree char *name = pci_address_format(addr);
  return read_hex_attr(name, "vendor", 0xffff, vendor) &&
         read_hex_attr(name, "device", 0xffff, device) &&
         read_hex_attr(name, "class", 0xffffff, class_code);
}

HostPciDevice *
host_pci_device_read(const PciAddress *addr, GError **error)
{
  g_autofree char *dir = device_dir(addr, error);
  g_autoptr(HostPciDevice) device = NULL;
  g_autofree char *link_rel = NULL;
  g_autofree char *rel = NULL;
  g_autofree char *override = NULL;
  g_autofree char *override_path = NULL;
  g_autofree char *parent = NULL;
  g_autoptr(GError) local_error = NULL;
  PciAddress parent_addr;

  if (dir == NULL)
    return NULL;

  device = g_new0(HostPciDevice, 1);
  device->addr = *addr;
  device->name = pci_address_format(addr);
  device->iommu_group = -1;

  if (!read_hex_attr(device->name, "vendor", 0xffff, &device->vendor) ||
      !read_hex_attr(device->name, "device", 0xffff, &device->device) ||
      !read_hex_attr(device->name, "class", 0xffffff, &device->class_code)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read the vendor, device and class of PCI device %s "
                "from sysfs; was it removed?", device->name);
    return NULL;
  }
  read_hex_attr(device->name, "subsystem_vendor", 0xffff, &device->subsystem_vendor);
  read_hex_attr(device->name, "subsystem_device", 0xffff, &device->subsystem_device);

  link_rel = g_strdup_printf("sys/bus/pci/devices/%s", device->name);
  rel = host_resolve_link(link_rel, NULL);
  device->sysfs_path = rel ? g_strconcat("/", rel, NULL)
                           : g_strdup_printf("/sys/bus/pci/devices/%s", device->name);
  if (rel != NULL) {
    g_autofree char *parent_dir = g_path_get_dirname(rel);

    parent = g_path_get_basename(parent_dir);
    if (pci_address_parse(parent, &parent_addr, NULL)) {
      device->has_parent = TRUE;
      device->parent = parent_addr;
    }
  }

  device->driver = host_pci_get_driver(addr, &local_error);
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return NULL;
  }
  override_path = host_path("sys/bus/pci/devices/%s/driver_override", device->name);
  override = host_read_attr(override_path, NULL);
  if (override != NULL && *override != '\0' && strcmp(override, "(null)") != 0)
    device->driver_override = g_steal_pointer(&override);

  device->iommu_group = host_pci_get_iommu_group(addr, NULL);
  device->numa_node = (int)read_int_attr(device->name, "numa_node", -1, 0xffff, -1);
  read_sriov(device, dir);
  read_net(device);

  device->max_link_speed = read_link_speed(device->name, "max_link_speed");
  device->max_link_width = (guint)read_int_attr(device->name, "max_link_width", 0, 32, 0);
  device->cur_link_speed = read_link_speed(device->name, "current_link_speed");
  device->cur_link_width = (guint)read_int_attr(device->name, "current_link_width", 0, 32, 0);
  return g_steal_pointer(&device);
}

static gint
compare_devices(gconstpointer a, gconstpointer b)
{
  const HostPciDevice *x = *(HostPciDevice *const *)a;
  const HostPciDevice *y = *(HostPciDevice *const *)b;

  return pci_address_compare(&x->addr, &y->addr);
}

GPtrArray *
host_pci_list(GError **error)
{
  g_autofree char *path = host_path("sys/bus/pci/devices");
  g_autoptr(GPtrArray) devices =
    g_ptr_array_new_with_free_func((GDestroyNotify)host_pci_device_free);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GDir) dir = host_dir_open_listing(path, "PCI devices", &local_error);
  const char *entry;

  if (dir == NULL) {
    if (local_error) {
      g_propagate_error(error, g_steal_pointer(&local_error));
      return NULL;
    }
    return g_steal_pointer(&devices);
  }
  while ((entry = g_dir_read_name(dir)) != NULL) {
    PciAddress addr;
    HostPciDevice *device;

    if (!pci_address_parse(entry, &addr, NULL))
      continue;
    device = host_pci_device_read(&addr, NULL);
    if (device != NULL)
      g_ptr_array_add(devices, device);
  }
  g_ptr_array_sort(devices, compare_devices);
  return g_steal_pointer(&devices);
}

static gint
compare_addresses(gconstpointer a, gconstpointer b)
{
  return pci_address_compare(a, b);
}

GArray *
host_pci_iommu_group_members(int group, GError **error)
{
  g_autofree char *path = host_path("sys/kernel/iommu_groups/%d/devices", group);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GDir) dir = NULL;
  GArray *members;
  const char *entry;

  if (group < 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "IOMMU group %d does not exist", group);
    return NULL;
  }
  dir = g_dir_open(path, 0, &local_error);
  if (dir == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot list the devices of IOMMU group %d: %s", group,
                local_error->message);
    return NULL;
  }
  members = g_array_new(FALSE, FALSE, sizeof(PciAddress));
  while ((entry = g_dir_read_name(dir)) != NULL) {
    PciAddress addr;

    if (pci_address_parse(entry, &addr, NULL))
      g_array_append_val(members, addr);
  }
  g_array_sort(members, compare_addresses);
  return members;
}

gboolean
host_pci_device_is_bridge(const HostPciDevice *device)
{
  return host_pci_class_is_bridge(device->class_code);
}

gboolean
host_pci_class_is_bridge(guint class_code)
{
  guint base_sub = class_code >> 8;

  /* 0x0604 PCI-to-PCI (also every PCIe root and downstream port),
   * 0x0609 semi-transparent PCI-to-PCI */
  return base_sub == 0x0604 || base_sub == 0x0609;
}
