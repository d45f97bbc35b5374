/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QEMU translation, guest address read-back and alias allocation. */
#include "control-proto.h"
#include "guest-addr.h"
#include "hostdevd-error.h"
#include "qemu-device.h"
#include "vm-devices.h"

#include <string.h>

static char *
to_json(JsonObject *object)
{
  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), object);
  return control_json_to_line(node);
}

/* Return: (transfer full): the plan as one line of JSON: [{...},{...}] */
static char *
plan_json(const Hostdev *hostdev, const QemuDeviceContext *ctx)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) plan = qemu_device_plan(hostdev, ctx, &error);
  g_autoptr(GString) out = g_string_new("[");

  g_assert_no_error(error);
  g_assert_nonnull(plan);
  for (guint i = 0; i < plan->len; i++) {
    g_autofree char *line = to_json(g_ptr_array_index(plan, i));
    g_string_append_printf(out, "%s%s", i ? "," : "", line);
  }
  g_string_append_c(out, ']');
  return g_string_free(g_steal_pointer(&out), FALSE);
}

static void
assert_plan_error(const Hostdev *hostdev, const QemuDeviceContext *ctx, const char *substring)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) plan = qemu_device_plan(hostdev, ctx, &error);

  g_assert_null(plan);
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
  if (strstr(error->message, substring) == NULL)
    g_error("expected \"%s\" in: %s", substring, error->message);
}

static void
test_usb_resolved(void)
{
  g_autoptr(Hostdev) hostdev = hostdev_new(HOSTDEV_TYPE_USB);
  HostUsbDevice resolved = { .sysfs_name = (char *)"1-1", .bus = 1, .device = 2,
                             .vendor = 0x0627, .product = 0x0001 };
  hostdev->usb.has_vendor_product = TRUE;
  hostdev->usb.vendor = 0x0627;
  hostdev->usb.product = 0x0001;
  QemuDeviceContext ctx = { .id = "hostdev0", .usb = &resolved };
  g_autofree char *json = plan_json(hostdev, &ctx);
  g_assert_cmpstr(json, ==, "[{\"driver\":\"usb-host\",\"hostdevice\":\"/dev/bus/usb/001/002\","
                            "\"id\":\"hostdev0\"}]");

  /* a passed descriptor replaces the path */
  ctx.usb_hostdevice = "/dev/fdset/3";
  hostdev->usb.guest_reset = HOSTDEV_GUEST_RESET_UNINITIALIZED;
  g_autofree char *fdset = plan_json(hostdev, &ctx);
  g_assert_cmpstr(fdset, ==, "[{\"driver\":\"usb-host\",\"hostdevice\":\"/dev/fdset/3\","
                             "\"id\":\"hostdev0\",\"guest-reset\":true,"
                             "\"guest-resets-all\":false}]");
}

static void
test_usb_optional_absent(void)
{
  g_autoptr(Hostdev) hostdev = hostdev_new(HOSTDEV_TYPE_USB);
  hostdev->usb.has_vendor_product = TRUE;
  hostdev->usb.vendor = 0x1d6b;
  hostdev->usb.product = 0x0104;
  hostdev->usb.startup_policy = HOSTDEV_STARTUP_OPTIONAL;
  hostdev->usb.guest_reset = HOSTDEV_GUEST_RESET_OFF;
  hostdev->usb_guest.present = TRUE;
  hostdev->usb_guest.bus = 1;
  hostdev->usb_guest.port = g_strdup("2.1");
  hostdev->boot_order = 3;
  QemuDeviceContext ctx = { .id = "ua-x" };
  g_autofree char *json = plan_json(hostdev, &ctx);
  /* libvirt's order: bootindex and guest-reset before the address */
  g_assert_cmpstr(json, ==, "[{\"driver\":\"usb-host\",\"vendorid\":7531,\"productid\":260,"
                            "\"id\":\"ua-x\",\"bootindex\":3,\"guest-reset\":false,"
                            "\"bus\":\"usb1.0\",\"port\":\"2.1\"}]");

  /* by address only, and not found: nothing QEMU could wait for */
  hostdev->usb.has_vendor_product = FALSE;
  hostdev->usb.has_address = TRUE;
  hostdev->usb.bus = 1;
  hostdev->usb.device = 9;
  assert_plan_error(hostdev, &ctx, "USB device at bus 1 device 9 has not been found");
}

static void
test_vfio_pci(void)
{
  g_autoptr(Hostdev) hostdev = hostdev_new(HOSTDEV_TYPE_PCI);
  hostdev->pci_source = (PciAddress){ .domain = 0, .bus = 1, .slot = 0, .function = 0 };
  QemuDeviceContext ctx = { .id = "hostdev1" };
  g_autofree char *plain_json = plan_json(hostdev, &ctx);
  g_assert_cmpstr(plain_json, ==,
                  "[{\"driver\":\"vfio-pci\",\"host\":\"0000:01:00.0\",\"id\":\"hostdev1\"}]");

  hostdev->pci_guest.present = TRUE;
  hostdev->pci_guest.addr = (PciAddress){ .domain = 0, .bus = 2, .slot = 0, .function = 1 };
  hostdev->pci_guest.multifunction = TRUE;
  hostdev->boot_order = 2;
  hostdev->acpi_index = 5;
  hostdev->rom.bar = HOSTDEV_TRISTATE_OFF;
  hostdev->rom.file = g_strdup("/r.bin");
  g_autofree char *placed_json = plan_json(hostdev, &ctx);
  g_assert_cmpstr(placed_json, ==,
                  "[{\"driver\":\"vfio-pci\",\"host\":\"0000:01:00.0\",\"id\":\"hostdev1\","
                  "\"bootindex\":2,\"bus\":\"pci.2\",\"multifunction\":true,"
                  "\"addr\":\"0x0.0x1\",\"acpi-index\":5,\"rombar\":0,"
                  "\"romfile\":\"/r.bin\"}]");

  /* the caller's placement wins over the XML's */
  ctx.pci_bus_id = "pci.7";
  ctx.pci_slot = 3;
  ctx.pci_function = 0;
  hostdev->rom.enabled = HOSTDEV_TRISTATE_OFF;
  g_autofree char *moved_json = plan_json(hostdev, &ctx);
  g_assert_cmpstr(moved_json, ==,
                  "[{\"driver\":\"vfio-pci\",\"host\":\"0000:01:00.0\",\"id\":\"hostdev1\","
                  "\"bootindex\":2,\"bus\":\"pci.7\",\"multifunction\":true,"
                  "\"addr\":\"0x3\",\"acpi-index\":5,\"romfile\":\"\"}]");
}

static void
test_zpci(void)
{
  g_autoptr(Hostdev) hostdev = hostdev_new(HOSTDEV_TYPE_PCI);
  hostdev->pci_source = (PciAddress){ .domain = 0, .bus = 1, .slot = 0, .function = 0 };
  QemuDeviceContext ctx = { .id = "hostdev0", .s390x = TRUE,
                            .pci_bus_id = "pci.0", .pci_slot = 1 };

  hostdev->zpci.has_uid = TRUE;
  hostdev->zpci.uid = 0xffff;
  assert_plan_error(hostdev, &ctx, "the zPCI fid must be assigned");
  hostdev->zpci.has_fid = TRUE;
  hostdev->zpci.fid = G_MAXUINT32;
  g_autofree char *json = plan_json(hostdev, &ctx);
  g_assert_cmpstr(json, ==,
                  "[{\"driver\":\"zpci\",\"uid\":65535,\"fid\":4294967295,"
                  "\"target\":\"hostdev0\",\"id\":\"zpci65535\"},"
                  "{\"driver\":\"vfio-pci\",\"host\":\"0000:01:00.0\",\"id\":\"hostdev0\","
                  "\"bus\":\"pci.0\",\"addr\":\"0x1\"}]");

  ctx.s390x = FALSE;
  assert_plan_error(hostdev, &ctx, "this machine has no zPCI");
}

static void
test_mdev(void)
{
  g_autoptr(Hostdev) hostdev = hostdev_new(HOSTDEV_TYPE_MDEV);
  g_strlcpy(hostdev->mdev.uuid, "c2177883-f1bb-47f0-914d-32a22e3a8804",
            sizeof(hostdev->mdev.uuid));
  hostdev->rom.bar = HOSTDEV_TRISTATE_OFF;   /* kept in the XML, not sent (libvirt) */
  QemuDeviceContext ctx = { .id = "hostdev0", .s390x = TRUE };
  g_autofree char *json = plan_json(hostdev, &ctx);
  /* no zpci for an mdev, as in libvirt 9.0 */
  g_assert_cmpstr(json, ==,
                  "[{\"driver\":\"vfio-pci\",\"id\":\"hostdev0\","
                  "\"sysfsdev\":\"/sys/bus/mdev/devices/c2177883-f1bb-47f0-914d-32a22e3a8804\","
                  "\"display\":\"off\"}]");
}

static void
test_usb_bus_ids(void)
{
  g_autofree char *first = qemu_usb_bus_id(0);
  g_autofree char *second = qemu_usb_bus_id(1);
  g_autofree char *pci0 = qemu_pci_bus_id(0, FALSE);
  g_autofree char *pcie0 = qemu_pci_bus_id(0, TRUE);
  g_autofree char *pci3 = qemu_pci_bus_id(3, TRUE);
  g_assert_cmpstr(first, ==, "usb.0");
  g_assert_cmpstr(second, ==, "usb1.0");
  g_assert_cmpstr(pci0, ==, "pci.0");
  g_assert_cmpstr(pcie0, ==, "pcie.0");
  g_assert_cmpstr(pci3, ==, "pci.3");
}

static Hostdev *
usb_with_alias(const char *alias, guint vendor)
{
  Hostdev *hostdev = hostdev_new(HOSTDEV_TYPE_USB);
  hostdev->alias = g_strdup(alias);
  hostdev->usb.has_vendor_product = TRUE;
  hostdev->usb.vendor = vendor;
  hostdev->usb.product = 1;
  return hostdev;
}

static void
test_next_alias(void)
{
  g_autoptr(VmDevices) devices = vm_devices_new();
  g_autofree char *first = vm_devices_next_alias(devices, NULL);
  g_assert_cmpstr(first, ==, "hostdev0");

  vm_devices_add(devices, usb_with_alias("hostdev0", 1), NULL);
  VmDevice *second = vm_devices_add(devices, usb_with_alias("hostdev1", 2), NULL);
  vm_devices_add(devices, usb_with_alias("ua-mine", 3), NULL);
  g_autofree char *next = vm_devices_next_alias(devices, NULL);
  g_assert_cmpstr(next, ==, "hostdev2");

  /* libvirt takes one more than the highest, not the lowest gap */
  vm_devices_remove(devices, vm_devices_find_alias(devices, "hostdev0"));
  g_autofree char *after_gap = vm_devices_next_alias(devices, NULL);
  g_assert_cmpstr(after_gap, ==, "hostdev2");

  static const char *const qemu_ids[] = { "usb", "hostdev7", "hostdev007", "hostdevx", NULL };
  g_autofree char *past_qemu = vm_devices_next_alias(devices, qemu_ids);
  g_assert_cmpstr(past_qemu, ==, "hostdev8");

  g_assert_true(vm_devices_find_alias(devices, "hostdev1") == second);
  g_assert_null(vm_devices_find_alias(devices, "hostdev0"));
  g_autoptr(Hostdev) probe = usb_with_alias(NULL, 2);
  g_assert_true(vm_devices_find_source(devices, probe) == second);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/qemu-device/usb-resolved", test_usb_resolved);
  g_test_add_func("/qemu-device/usb-optional-absent", test_usb_optional_absent);
  g_test_add_func("/qemu-device/vfio-pci", test_vfio_pci);
  g_test_add_func("/qemu-device/zpci", test_zpci);
  g_test_add_func("/qemu-device/mdev", test_mdev);
  g_test_add_func("/qemu-device/usb-bus-ids", test_usb_bus_ids);
  g_test_add_func("/vm-devices/next-alias", test_next_alias);
  return g_test_run();
}
