/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QEMU translation, guest address read-back and alias allocation. */
#include "control-proto.h"
#include "guest-addr.h"
#include "qemu-device.h"
#include "vm-devices.h"

static char *
to_json(JsonObject *object)
{
  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), object);
  return control_json_to_line(node);
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
  g_autoptr(JsonObject) props = qemu_device_usb_host(hostdev, &resolved, "hostdev0");
  g_autofree char *json = to_json(props);
  g_assert_cmpstr(json, ==, "{\"driver\":\"usb-host\",\"hostdevice\":\"/dev/bus/usb/001/002\","
                            "\"id\":\"hostdev0\"}");
}

static void
test_usb_optional_absent(void)
{
  g_autoptr(Hostdev) hostdev = hostdev_new(HOSTDEV_TYPE_USB);
  hostdev->usb.has_vendor_product = TRUE;
  hostdev->usb.vendor = 0x1d6b;
  hostdev->usb.product = 0x0104;
  hostdev->usb.startup_policy = HOSTDEV_STARTUP_OPTIONAL;
  hostdev->usb_guest.present = TRUE;
  hostdev->usb_guest.bus = 1;
  hostdev->usb_guest.port = g_strdup("2.1");
  hostdev->boot_order = 3;
  g_autoptr(JsonObject) props = qemu_device_usb_host(hostdev, NULL, "ua-x");
  g_autofree char *json = to_json(props);
  g_assert_cmpstr(json, ==, "{\"driver\":\"usb-host\",\"vendorid\":7531,\"productid\":260,"
                            "\"id\":\"ua-x\",\"bus\":\"usb1.0\",\"port\":\"2.1\",\"bootindex\":3}");
}

static void
test_vfio_pci(void)
{
  g_autoptr(Hostdev) hostdev = hostdev_new(HOSTDEV_TYPE_PCI);
  hostdev->pci_source = (PciAddress){ .domain = 0, .bus = 1, .slot = 0, .function = 0 };
  g_autoptr(JsonObject) plain = qemu_device_vfio_pci(hostdev, "hostdev1");
  g_autofree char *plain_json = to_json(plain);
  g_assert_cmpstr(plain_json, ==,
                  "{\"driver\":\"vfio-pci\",\"host\":\"0000:01:00.0\",\"id\":\"hostdev1\"}");

  hostdev->pci_guest.present = TRUE;
  hostdev->pci_guest.addr = (PciAddress){ .domain = 0, .bus = 2, .slot = 0, .function = 1 };
  hostdev->pci_guest.multifunction = TRUE;
  g_autoptr(JsonObject) placed = qemu_device_vfio_pci(hostdev, "hostdev1");
  g_autofree char *placed_json = to_json(placed);
  g_assert_cmpstr(placed_json, ==,
                  "{\"driver\":\"vfio-pci\",\"host\":\"0000:01:00.0\",\"id\":\"hostdev1\","
                  "\"bus\":\"pci.2\",\"addr\":\"0x0.0x1\",\"multifunction\":true}");
}

static void
test_usb_bus_ids(void)
{
  g_autofree char *first = qemu_usb_bus_id(0);
  g_autofree char *second = qemu_usb_bus_id(1);
  g_assert_cmpstr(first, ==, "usb.0");
  g_assert_cmpstr(second, ==, "usb1.0");
}

/* What QEMU 7.2's x-query-usb printed with a keyboard, a hub and a usb-host. */
static const char query_usb[] =
    "  Device 0.1, Port 1, Speed 480 Mb/s, Product QEMU USB Keyboard, ID: kbd0\n"
    "  Device 0.2, Port 2, Speed 12 Mb/s, Product QEMU USB Hub, ID: hub\n"
    "  Device 0.0, Port 2.1, Speed 1.5 Mb/s, Product USB Host Device, ID: hostdev0\n"
    "  Device 1.0, Port 1, Speed 1.5 Mb/s, Product USB Host Device, ID: hostdev10\n";

static void
test_guest_usb_address(void)
{
  guint bus = 99;
  g_autofree char *port = NULL;
  g_assert_true(guest_usb_address_from_query(query_usb, "hostdev0", &bus, &port));
  g_assert_cmpuint(bus, ==, 0);
  g_assert_cmpstr(port, ==, "2.1");

  g_autofree char *port10 = NULL;
  g_assert_true(guest_usb_address_from_query(query_usb, "hostdev10", &bus, &port10));
  g_assert_cmpuint(bus, ==, 1);
  g_assert_cmpstr(port10, ==, "1");

  char *none = NULL;
  g_assert_false(guest_usb_address_from_query(query_usb, "hostdev1", &bus, &none));
  g_assert_false(guest_usb_address_from_query("", "hostdev0", &bus, &none));
  g_assert_false(guest_usb_address_from_query("  Device x, Port 1, ID: hostdev0\n", "hostdev0",
                                              &bus, &none));
  g_assert_false(guest_usb_address_from_query("  Device 0.1, Port .1, S, ID: hostdev0\n",
                                              "hostdev0", &bus, &none));
  g_assert_null(none);
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

  vm_devices_add(devices, usb_with_alias("hostdev0", 1));
  VmDevice *second = vm_devices_add(devices, usb_with_alias("hostdev1", 2));
  vm_devices_add(devices, usb_with_alias("ua-mine", 3));
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
  g_test_add_func("/qemu-device/usb-bus-ids", test_usb_bus_ids);
  g_test_add_func("/guest-addr/usb-from-query", test_guest_usb_address);
  g_test_add_func("/vm-devices/next-alias", test_next_alias);
  return g_test_run();
}
