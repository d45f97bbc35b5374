/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu-device.c - the device_add arguments of a Hostdev
 *
 * libvirt 9.0 is the reference (src/qemu/qemu_command.c), checked against
 * `virsh domxml-to-native qemu-argv` by tests/libvirt.  Its builders add
 * properties in a fixed order and skip the ones that are unset:
 *
 *   vfio-pci  driver host id bootindex, then the address (bus multifunction
 *             addr acpi-index), then the ROM (rombar romfile)
 *   mdev      driver id sysfsdev display [ramfb] bootindex, then the address;
 *             no ROM properties even when the XML has a <rom>
 *   usb-host  driver hostdevice|(hostbus hostaddr) id bootindex guest-reset
 *             guest-resets-all, then the address (bus port)
 *   zpci      driver uid fid target id, sent before its target
 *
 * Value types follow libvirt's virJSONValueObjectAdd() format letters:
 * numbers are JSON numbers, tristates JSON booleans, the rest strings.
 * Where hostdevd differs from libvirt on purpose:
 *  - An absent optional USB device is given to QEMU as vendorid/productid
 *    so QEMU takes it when it appears; libvirt 9.0 sends a usb-host with no
 *    host identification at all, which matches any device.
 *  - With no guest address decided, bus and addr (or bus and port) are left
 *    out and QEMU picks; acpi-index is then sent on its own.  libvirt always
 *    has an address because it assigns one first.
 */
#include "qemu-device.h"
#include "hostdevd-error.h"

char *
qemu_usb_bus_id(guint index)
{
  /* libvirt names USB controller 0 "usb" and controller N "usbN"; each has one bus ".0" */
  return index == 0 ? g_strdup("usb.0") : g_strdup_printf("usb%u.0", index);
}

char *
qemu_pci_bus_id(guint index, gboolean pcie_root)
{
  /* libvirt names PCI controller N "pci.N", except q35's built-in root */
  if (index == 0 && pcie_root)
    return g_strdup("pcie.0");
  return g_strdup_printf("pci.%u", index);
}

/* qemuBuildDeviceAddressProps for a PCI address; acpi-index is part of it */
static void
add_pci_address(JsonObject *props, const Hostdev *hostdev,
                const QemuDeviceContext *ctx)
{
  g_autofree char *bus = NULL;
  g_autofree char *addr = NULL;
  guint slot = 0;
  guint function = 0;

  if (ctx->pci_bus_id != NULL) {
    bus = g_strdup(ctx->pci_bus_id);
    slot = ctx->pci_slot;
    function = ctx->pci_function;
  } else if (hostdev->pci_guest.present) {
    bus = qemu_pci_bus_id(hostdev->pci_guest.addr.bus, ctx->pcie_root);
    slot = hostdev->pci_guest.addr.slot;
    function = hostdev->pci_guest.addr.function;
  }

  if (bus != NULL) {
    addr = function != 0 ? g_strdup_printf("0x%x.0x%x", slot, function)
                         : g_strdup_printf("0x%x", slot);
    json_object_set_string_member(props, "bus", bus);
    if (hostdev->pci_guest.multifunction || hostdev->pci_guest.multifunction_explicit)
      json_object_set_boolean_member(props, "multifunction",
                                     hostdev->pci_guest.multifunction);
    json_object_set_string_member(props, "addr", addr);
  }
  if (hostdev->acpi_index > 0)
    json_object_set_int_member(props, "acpi-index", hostdev->acpi_index);
}

/* qemuBuildRomProps: a disabled ROM is an empty romfile, nothing else */
static void
add_rom(JsonObject *props, const Hostdev *hostdev)
{
  if (hostdev->rom.enabled == HOSTDEV_TRISTATE_OFF) {
    json_object_set_string_member(props, "romfile", "");
    return;
  }
  if (hostdev->rom.bar != HOSTDEV_TRISTATE_ABSENT)
    json_object_set_int_member(props, "rombar",
                               hostdev->rom.bar == HOSTDEV_TRISTATE_ON ? 1 : 0);
  if (hostdev->rom.file != NULL)
    json_object_set_string_member(props, "romfile", hostdev->rom.file);
}

static JsonObject *
build_vfio_pci(const Hostdev *hostdev, const QemuDeviceContext *ctx)
{
  JsonObject *props = json_object_new();
  g_autofree char *host = pci_address_format(&hostdev->pci_source);

  json_object_set_string_member(props, "driver", "vfio-pci");
  json_object_set_string_member(props, "host", host);
  json_object_set_string_member(props, "id", ctx->id);
  if (hostdev->boot_order > 0)
    json_object_set_int_member(props, "bootindex", hostdev->boot_order);
  add_pci_address(props, hostdev, ctx);
  add_rom(props, hostdev);
  return props;
}

static JsonObject *
build_mdev(const Hostdev *hostdev, const QemuDeviceContext *ctx)
{
  JsonObject *props = json_object_new();
  g_autofree char *sysfsdev = g_strdup_printf("/sys/bus/mdev/devices/%s",
                                              hostdev->mdev.uuid);

  /* ramfb='on' (driver vfio-pci-nohotplug) never gets here: the parser
   * refuses it, and boot order is refused for mdev as in libvirt */
  json_object_set_string_member(props, "driver", "vfio-pci");
  json_object_set_string_member(props, "id", ctx->id);
  json_object_set_string_member(props, "sysfsdev", sysfsdev);
  json_object_set_string_member(props, "display", hostdev->mdev.display ? "on" : "off");
  if (hostdev->boot_order > 0)
    json_object_set_int_member(props, "bootindex", hostdev->boot_order);
  add_pci_address(props, hostdev, ctx);
  return props;
}

static JsonObject *
build_usb_host(const Hostdev *hostdev, const QemuDeviceContext *ctx, GError **error)
{
  g_autoptr(JsonObject) props = json_object_new();
  gboolean guest_reset = FALSE;
  gboolean guest_resets_all = FALSE;

  json_object_set_string_member(props, "driver", "usb-host");
  if (ctx->usb_hostdevice != NULL) {
    json_object_set_string_member(props, "hostdevice", ctx->usb_hostdevice);
  } else if (ctx->usb != NULL) {
    /* the path form (QEMU >= 6.1), as libvirt 9.0 uses with a QEMU that has it */
    g_autofree char *path = g_strdup_printf("/dev/bus/usb/%03u/%03u",
                                            ctx->usb->bus, ctx->usb->device);
    json_object_set_string_member(props, "hostdevice", path);
  } else if (hostdev->usb.has_vendor_product) {
    json_object_set_int_member(props, "vendorid", hostdev->usb.vendor);
    json_object_set_int_member(props, "productid", hostdev->usb.product);
  } else {
    g_autofree char *what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s has not been found on the host, and without vendor and "
                "product ids QEMU cannot wait for it", what);
    return NULL;
  }
  json_object_set_string_member(props, "id", ctx->id);
  if (hostdev->boot_order > 0)
    json_object_set_int_member(props, "bootindex", hostdev->boot_order);

  switch (hostdev->usb.guest_reset) {
  case HOSTDEV_GUEST_RESET_OFF:
    json_object_set_boolean_member(props, "guest-reset", FALSE);
    break;
  case HOSTDEV_GUEST_RESET_UNINITIALIZED:
  case HOSTDEV_GUEST_RESET_ON:
    guest_reset = TRUE;
    guest_resets_all = hostdev->usb.guest_reset == HOSTDEV_GUEST_RESET_ON;
    json_object_set_boolean_member(props, "guest-reset", guest_reset);
    json_object_set_boolean_member(props, "guest-resets-all", guest_resets_all);
    break;
  case HOSTDEV_GUEST_RESET_DEFAULT:
    break;
  }

  if (hostdev->usb_guest.present) {
    g_autofree char *bus = qemu_usb_bus_id(hostdev->usb_guest.bus);
    json_object_set_string_member(props, "bus", bus);
    if (hostdev->usb_guest.port != NULL)
      json_object_set_string_member(props, "port", hostdev->usb_guest.port);
  }
  return g_steal_pointer(&props);
}

static JsonObject *
build_zpci(const Hostdev *hostdev, const QemuDeviceContext *ctx)
{
  JsonObject *props = json_object_new();
  g_autofree char *id = g_strdup_printf("zpci%u", hostdev->zpci.uid);

  json_object_set_string_member(props, "driver", "zpci");
  json_object_set_int_member(props, "uid", hostdev->zpci.uid);
  json_object_set_int_member(props, "fid", hostdev->zpci.fid);
  json_object_set_string_member(props, "target", ctx->id);
  json_object_set_string_member(props, "id", id);
  return props;
}

static gboolean
check_zpci(const Hostdev *hostdev, const QemuDeviceContext *ctx, GError **error)
{
  gboolean has_zpci = hostdev->zpci.has_uid || hostdev->zpci.has_fid;
  g_autofree char *what = NULL;

  if (ctx->s390x && hostdev->type == HOSTDEV_TYPE_PCI &&
      !(hostdev->zpci.has_uid && hostdev->zpci.has_fid)) {
    what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s: the zPCI %s must be assigned before the device is added",
                what, hostdev->zpci.has_uid ? "fid" : "uid");
    return FALSE;
  }
  if (!ctx->s390x && has_zpci) {
    what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<address type='pci'><zpci>: %s has a zPCI address, but this "
                "machine has no zPCI (only s390x has); leave <zpci> out", what);
    return FALSE;
  }
  return TRUE;
}

GPtrArray *
qemu_device_plan(const Hostdev *hostdev, const QemuDeviceContext *ctx, GError **error)
{
  g_autoptr(GPtrArray) devices = NULL;
  JsonObject *device = NULL;

  g_return_val_if_fail(hostdev != NULL && ctx != NULL, NULL);
  g_return_val_if_fail(ctx->id != NULL, NULL);

  if (!check_zpci(hostdev, ctx, error))
    return NULL;

  devices = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
  switch (hostdev->type) {
  case HOSTDEV_TYPE_USB:
    device = build_usb_host(hostdev, ctx, error);
    if (device == NULL)
      return NULL;
    break;
  case HOSTDEV_TYPE_PCI:
    /* libvirt 9.0 adds a zpci only to type='pci' devices, not to mdevs */
    if (ctx->s390x)
      g_ptr_array_add(devices, build_zpci(hostdev, ctx));
    device = build_vfio_pci(hostdev, ctx);
    break;
  case HOSTDEV_TYPE_MDEV:
    device = build_mdev(hostdev, ctx);
    break;
  }
  if (device == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "unknown hostdev type %d", (int)hostdev->type);
    return NULL;
  }
  g_ptr_array_add(devices, device);
  return g_steal_pointer(&devices);
}
