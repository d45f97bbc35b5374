/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-usb.c - USB devices of the host, read from sysfs under the host root
 *
 * /sys/bus/usb/devices holds devices ("1-1", "2-1.4", root hubs "usb1")
 * and interfaces ("1-1:1.0").  A device is an entry with busnum, devnum,
 * idVendor and idProduct; the kernel writes the first two in decimal and
 * the ids as four hex digits.  Root hubs are listed like any device (libvirt
 * lists them too, as usb_usb1); bDeviceClass 09 tells hubs apart, which the
 * policy refuses unless allow-usb-hubs says otherwise.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "host-usb.h"
#include "host-root.h"
#include "hostdevd-error.h"
#include "usb-selector.h"

#include <errno.h>
#include <string.h>

void
host_usb_device_free(HostUsbDevice *device)
{
  if (device == NULL)
    return;
  g_free(device->sysfs_name);
  g_free(device->port_path);
  g_free(device->manufacturer);
  g_free(device->product_name);
  g_free(device->serial);
  g_free(device);
}

static HostUsbDevice *
host_usb_device_copy(const HostUsbDevice *device)
{
  HostUsbDevice *copy = g_memdup2(device, sizeof(*device));

  copy->sysfs_name = g_strdup(device->sysfs_name);
  copy->port_path = g_strdup(device->port_path);
  copy->manufacturer = g_strdup(device->manufacturer);
  copy->product_name = g_strdup(device->product_name);
  copy->serial = g_strdup(device->serial);
  return copy;
}

/* Return: whether attribute @attr of @name holds a number in @base that
 * fits 16 bits (bus and device numbers and ids all do). */
static gboolean
read_number_attr(const char *name, const char *attr, guint base, guint *out)
{
  g_autofree char *path = host_path("sys/bus/usb/devices/%s/%s", name, attr);
  g_autoptr(GError) error = NULL;
  g_autofree char *text = host_read_attr(path, &error);
  guint64 value;

  if (text == NULL) {
    g_debug("%s: %s", name, error->message);
    return FALSE;
  }
  if (!g_ascii_string_to_unsigned(text, base, 0, 0xffff, &value, &error)) {
    g_debug("%s: %s '%s': %s", name, attr, text, error->message);
    return FALSE;
  }
  *out = (guint)value;
  return TRUE;
}

/* Return: (transfer full): a descriptive string attribute, NULL if absent
 * or empty.  Devices write what they like there, so it is made UTF-8. */
static char *
read_string_attr(const char *name, const char *attr)
{
  g_autofree char *path = host_path("sys/bus/usb/devices/%s/%s", name, attr);
  g_autofree char *text = host_read_attr(path, NULL);

  if (text == NULL || *text == '\0')
    return NULL;
  return g_utf8_make_valid(text, -1);
}

/* Return: (transfer full): @name when it is the canonical port path of a
 * device on bus @bus, else NULL (a root hub, or a name sysfs never makes). */
static char *
port_path_of(const char *name, guint bus)
{
  g_autofree char *canonical = NULL;
  guint path_bus = 0;

  if (!g_ascii_isdigit(name[0]))
    return NULL;
  canonical = usb_port_path_parse(name, &path_bus, NULL);
  if (canonical == NULL || strcmp(canonical, name) != 0 || path_bus != bus) {
    g_debug("%s: not a port path of bus %u", name, bus);
    return NULL;
  }
  return g_steal_pointer(&canonical);
}

static HostUsbDevice *
read_device(const char *name)
{
  g_autoptr(HostUsbDevice) device = g_new0(HostUsbDevice, 1);

  if (!read_number_attr(name, "busnum", 10, &device->bus) ||
      !read_number_attr(name, "devnum", 10, &device->device) ||
      !read_number_attr(name, "idVendor", 16, &device->vendor) ||
      !read_number_attr(name, "idProduct", 16, &device->product))
    return NULL;

  /* two hex digits; absent on some devices, whose interfaces carry the class */
  if (!read_number_attr(name, "bDeviceClass", 16, &device->device_class))
    device->device_class = 0;
  device->sysfs_name = g_strdup(name);
  device->port_path = port_path_of(name, device->bus);
  device->manufacturer = read_string_attr(name, "manufacturer");
  device->product_name = read_string_attr(name, "product");
  device->serial = read_string_attr(name, "serial");
  return g_steal_pointer(&device);
}

gboolean
host_usb_is_hub(const HostUsbDevice *device)
{
  return device->device_class == HOST_USB_CLASS_HUB;
}

static gint
compare_devices(gconstpointer a, gconstpointer b)
{
  const HostUsbDevice *x = *(HostUsbDevice *const *)a;
  const HostUsbDevice *y = *(HostUsbDevice *const *)b;

  if (x->bus != y->bus)
    return x->bus < y->bus ? -1 : 1;
  if (x->device != y->device)
    return x->device < y->device ? -1 : 1;
  return 0;
}

GPtrArray *
host_usb_list(GError **error)
{
  g_autofree char *dir_path = host_path("sys/bus/usb/devices");
  g_autoptr(GPtrArray) devices =
    g_ptr_array_new_with_free_func((GDestroyNotify)host_usb_device_free);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GDir) dir = host_dir_open_listing(dir_path, "USB devices", &local_error);
  const char *name;

  if (dir == NULL) {
    if (local_error) {
      g_propagate_error(error, g_steal_pointer(&local_error));
      return NULL;
    }
    return g_steal_pointer(&devices);   /* a host without USB, not an error */
  }

  while ((name = g_dir_read_name(dir)) != NULL) {
    HostUsbDevice *device;

    if (strchr(name, ':') != NULL)
      continue; /* an interface, "1-1:1.0" */
    device = read_device(name);
    if (device != NULL)
      g_ptr_array_add(devices, device);
  }
  g_ptr_array_sort(devices, compare_devices);
  return g_steal_pointer(&devices);
}

const char *
host_usb_port_path(const HostUsbDevice *device)
{
  return device->port_path;
}

static gboolean
device_has_ids(const HostUsbDevice *device, const Hostdev *hostdev)
{
  return device->vendor == hostdev->usb.vendor &&
         device->product == hostdev->usb.product;
}

/* Return: whether @device has every name @hostdev gives besides the
 * address: ids, port path, serial. */
static gboolean
device_has_names(const HostUsbDevice *device, const Hostdev *hostdev)
{
  return (!hostdev->usb.has_vendor_product || device_has_ids(device, hostdev)) &&
         (hostdev->usb.port_path == NULL ||
          g_strcmp0(host_usb_port_path(device), hostdev->usb.port_path) == 0) &&
         (hostdev->usb.serial == NULL ||
          g_strcmp0(device->serial, hostdev->usb.serial) == 0);
}

static gboolean
has_selector(const Hostdev *hostdev)
{
  return hostdev->usb.port_path != NULL || hostdev->usb.serial != NULL;
}

/* startupPolicy='optional': a missing device is not an error, the
 * caller skips it (libvirt marks it missing='yes').  Not for a device
 * chosen by port path or serial: the caller would leave QEMU waiting for
 * it by vendor/product, and QEMU would take an identical device in
 * another port. */
static gboolean
missing_is_fine(const Hostdev *hostdev)
{
  return hostdev->usb.startup_policy == HOSTDEV_STARTUP_OPTIONAL &&
         !has_selector(hostdev);
}

static HostUsbDevice *
skip_optional(const Hostdev *hostdev)
{
  g_autofree char *what = hostdev_describe_source(hostdev);

  g_info("%s is not on this host; skipped (startupPolicy='optional')", what);
  return NULL;
}

/* " 0627:0001 at port 1-2 with serial 'A1'": those of @device's names
 * that @hostdev asks for (besides the address) */
static void
append_names(GString *out, const HostUsbDevice *device, const Hostdev *hostdev)
{
  const char *port = host_usb_port_path(device);

  if (hostdev->usb.has_vendor_product)
    g_string_append_printf(out, " %04x:%04x", device->vendor, device->product);
  if (hostdev->usb.port_path != NULL)
    g_string_append_printf(out, " at port %s", port ? port : "(a root hub has none)");
  if (hostdev->usb.serial != NULL) {
    g_autofree char *serial = device->serial ? usb_serial_quote(device->serial) : NULL;

    if (serial != NULL)
      g_string_append_printf(out, " with serial %s", serial);
    else
      g_string_append(out, " without a serial");
  }
}

/* " 046d:c52b at port 1-3 with serial 'B2'": what @hostdev asks for */
static void
append_wanted(GString *out, const Hostdev *hostdev)
{
  if (hostdev->usb.has_vendor_product)
    g_string_append_printf(out, " %04x:%04x", hostdev->usb.vendor, hostdev->usb.product);
  if (hostdev->usb.port_path != NULL)
    g_string_append_printf(out, " at port %s", hostdev->usb.port_path);
  if (hostdev->usb.serial != NULL) {
    g_autofree char *serial = usb_serial_quote(hostdev->usb.serial);
    g_string_append_printf(out, " with serial %s", serial);
  }
}

/* " (port 1-2, serial 'A1')": how to tell @device from its twins */
static void
append_identity(GString *out, const HostUsbDevice *device)
{
  const char *port = host_usb_port_path(device);
  g_autofree char *serial = device->serial ? usb_serial_quote(device->serial) : NULL;

  g_string_append_printf(out, " (%s%s, ", port ? "port " : "root hub ",
                         port ? port : device->sysfs_name);
  if (serial != NULL)
    g_string_append_printf(out, "serial %s)", serial);
  else
    g_string_append(out, "no serial)");
}

static HostUsbDevice *
resolve_by_address(const Hostdev *hostdev, GPtrArray *devices, GError **error)
{
  const HostUsbDevice *found = NULL;

  for (guint i = 0; i < devices->len; i++) {
    const HostUsbDevice *device = devices->pdata[i];

    if (device->bus == hostdev->usb.bus && device->device == hostdev->usb.device) {
      found = device;
      break;
    }
  }

  if (found == NULL) {
    if (missing_is_fine(hostdev))
      return skip_optional(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "no USB device at bus %u device %u on this host: device "
                "numbers change whenever a device is plugged in again; "
                "check `hostdevctl nodedev-list --cap usb_device`, name the "
                "device by <vendor id/> and <product id/> or by its port "
                "path instead, or use <source startupPolicy='optional'>",
                hostdev->usb.bus, hostdev->usb.device);
    return NULL;
  }

  if (!device_has_names(found, hostdev)) {
    g_autoptr(GString) is = g_string_new(NULL);
    g_autoptr(GString) wanted = g_string_new(NULL);

    if (missing_is_fine(hostdev))
      return skip_optional(hostdev);
    append_names(is, found, hostdev);
    append_wanted(wanted, hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "the USB device at bus %u device %u (%s) is%s, not%s: the "
                "device was probably replugged and got a new number; check "
                "`hostdevctl nodedev-list --cap usb_device` or drop "
                "<address/> to find it by its other names",
                found->bus, found->device, found->sysfs_name, is->str,
                wanted->str);
    return NULL;
  }
  return host_usb_device_copy(found);
}
static HostUsbDevice *
resolve_by_names(const Hostdev *hostdev, GPtrArray *devices, GError **error)
{
  g_autoptr(GPtrArray) matches = g_ptr_array_new();
  g_autoptr(GString) list = NULL;
  g_autoptr(GString) wanted = g_string_new(NULL);
  g_autofree char *what = NULL;

  for (guint i = 0; i < devices->len; i++) {
    HostUsbDevice *device = devices->pdata[i];

    if (device_has_names(device, hostdev))
      g_ptr_array_add(matches, device);
  }

  if (matches->len == 1)
    return host_usb_device_copy(matches->pdata[0]);

  what = hostdev_describe_source(hostdev);
  if (matches->len == 0) {
    if (missing_is_fine(hostdev))
      return skip_optional(hostdev);
    if (has_selector(hostdev))
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                  "no %s on this host: plug it in, and check the port path "
                  "and serial in `hostdevctl nodedev-list --cap usb_device` "
                  "(startupPolicy='optional' cannot wait for a device chosen "
                  "by port path or serial: QEMU would wait by vendor/product "
                  "only, and could take an identical device)", what);
    else
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                  "no %s on this host: plug it in, check "
                  "`hostdevctl nodedev-list --cap usb_device`, or use "
                  "<source startupPolicy='optional'> to attach it only when "
                  "it is present", what);
    return NULL;
  }

  append_wanted(wanted, hostdev);
  list = g_string_new(NULL);
  for (guint i = 0; i < matches->len; i++) {
    const HostUsbDevice *device = matches->pdata[i];

    g_string_append_printf(list, "%sbus %u device %u",
                           i > 0 ? ", " : "", device->bus, device->device);
    append_identity(list, device);
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "%u USB devices match%s: %s; choose one by its port path "
              "(stable while it stays in the same socket) or serial with "
              "<hostdevd:device xmlns:hostdevd='" USB_SELECTOR_XML_NS "' "
              "port='...' serial='...'/> in <source>, or by <address "
              "bus='...' device='...'/> (which changes on every replug)",
              matches->len, wanted->str, list->str);
  return NULL;
}

HostUsbDevice *
host_usb_resolve(const Hostdev *hostdev, GError **error)
{
  g_autoptr(GPtrArray) devices = NULL;

  if (hostdev->type != HOSTDEV_TYPE_USB) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "not a USB hostdev");
    return NULL;
  }
  if (!hostdev->usb.has_address && !hostdev->usb.has_vendor_product &&
      !has_selector(hostdev)) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "the USB hostdev names no device: give <vendor/> and "
                        "<product/>, <address bus device/>, or a port path "
                        "or serial");
    return NULL;
  }

  devices = host_usb_list(error);
  if (devices == NULL)
    return NULL;

  if (hostdev->usb.has_address)
    return resolve_by_address(hostdev, devices, error);
  return resolve_by_names(hostdev, devices, error);
}
