/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-host-usb.c - USB look-ups against sysfs trees under a host root:
 * the captured q35 fixture, and small trees built here for the cases the
 * capture does not have (two identical devices, no USB, broken entries).
 */
#include "host-root.h"
#include "host-usb.h"
#include "hostdevd-error.h"

#include <string.h>

#include <glib/gstdio.h>

#define FIXTURE_TARBALL "sysfs-linux-6.1-q35-viommu.tar.gz"

typedef struct {
  char *root;
} Tree;

static void
run(const char *const *argv)
{
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
               NULL, NULL, NULL, NULL, &status, &error);
  g_assert_no_error(error);
  g_spawn_check_wait_status(status, &error);
  g_assert_no_error(error);
}

static void
tree_setup_empty(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  tree->root = g_dir_make_tmp("hostdevd-usb-XXXXXX", &error);
  g_assert_no_error(error);
  host_root_set(tree->root);
}

/* The captured sysfs of a q35 VM: usb1, usb2 and a usb-kbd "1-1". */
/* The captured tree is extracted once per run: creating its ~1100 files
 * is the slow part.  Tests that change it put it back. */
static char *fixture_root;

static void
fixture_extract(void)
{
  const char *dir = g_getenv("HOSTDEVD_FIXTURES");
  g_autofree char *tarball = NULL;
  g_autoptr(GError) error = NULL;
  char *root;

  root = g_dir_make_tmp("hostdevd-usb-fixture-XXXXXX", &error);
  g_assert_no_error(error);
  if (dir != NULL)
    tarball = g_build_filename(dir, FIXTURE_TARBALL, NULL);
  else
    tarball = g_test_build_filename(G_TEST_DIST, "..", "fixtures",
                                    FIXTURE_TARBALL, NULL);
  run((const char *const[]){ "tar", "xzf", tarball, "-C", root, NULL });
  fixture_root = root;
}

static void
remove_tree(const char *root)
{
  /* Fixture files keep their sysfs modes; make them removable first. */
  run((const char *const[]){ "chmod", "-R", "u+rwX", root, NULL });
  run((const char *const[]){ "rm", "-rf", "--", root, NULL });
}

static void
tree_setup_fixture(Tree *tree, gconstpointer data)
{
  tree->root = NULL;
  host_root_set(fixture_root);
}

static void
tree_teardown(Tree *tree, gconstpointer data)
{
  host_root_set(NULL);
  if (tree->root != NULL)
    remove_tree(tree->root);
  g_free(tree->root);
}

static void
write_file(const char *root, const char *rel, const char *contents)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);
  g_autofree char *dir = g_path_get_dirname(path);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
  g_file_set_contents(path, contents, -1, &error);
  g_assert_no_error(error);
}

static void
write_attr(const char *root, const char *name, const char *attr,
           const char *contents)
{
  g_autofree char *rel = g_strdup_printf("sys/bus/usb/devices/%s/%s", name, attr);

  write_file(root, rel, contents);
}

static void
add_usb_device(const char *root, const char *name, guint bus, guint device,
               guint vendor, guint product)
{
  g_autofree char *busnum = g_strdup_printf("%u\n", bus);
  g_autofree char *devnum = g_strdup_printf("%u\n", device);
  g_autofree char *id_vendor = g_strdup_printf("%04x\n", vendor);
  g_autofree char *id_product = g_strdup_printf("%04x\n", product);

  write_attr(root, name, "busnum", busnum);
  write_attr(root, name, "devnum", devnum);
  write_attr(root, name, "idVendor", id_vendor);
  write_attr(root, name, "idProduct", id_product);
}

static Hostdev *
usb_by_ids(guint vendor, guint product)
{
  Hostdev *h = hostdev_new(HOSTDEV_TYPE_USB);

  h->usb.has_vendor_product = TRUE;
  h->usb.vendor = vendor;
  h->usb.product = product;
  return h;
}

static Hostdev *
usb_by_address(guint bus, guint device)
{
  Hostdev *h = hostdev_new(HOSTDEV_TYPE_USB);

  h->usb.has_address = TRUE;
  h->usb.bus = bus;
  h->usb.device = device;
  return h;
}

static void
assert_error(GError *error, HostdevdError code, const char *substring)
{
  g_assert_nonnull(error);
  if (!g_error_matches(error, HOSTDEVD_ERROR, code) ||
      strstr(error->message, substring) == NULL)
    g_error("expected code %d containing \"%s\", got %s %d: %s",
            code, substring, g_quark_to_string(error->domain), error->code,
            error->message);
  g_test_message("%s: %s", hostdevd_error_class(error), error->message);
}

/* ------------------------------------------------------------------ */

static void
test_list_fixture(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) devices = host_usb_list(&error);
  const HostUsbDevice *d;

  g_assert_no_error(error);
  /* usb1, 1-1, usb2; the interfaces 1-0:1.0, 1-1:1.0, 2-0:1.0 are not devices */
  g_assert_cmpuint(devices->len, ==, 3);

  d = devices->pdata[0];
  g_assert_cmpstr(d->sysfs_name, ==, "usb1");
  g_assert_cmpuint(d->bus, ==, 1);
  g_assert_cmpuint(d->device, ==, 1);
  g_assert_cmpuint(d->vendor, ==, 0x1d6b);
  g_assert_cmpuint(d->product, ==, 0x0002);
  g_assert_cmpstr(d->manufacturer, ==, "Linux 6.1.0-56-amd64 xhci-hcd");
  g_assert_cmpstr(d->product_name, ==, "xHCI Host Controller");
  g_assert_cmpstr(d->serial, ==, "0000:00:07.0");
  g_assert_cmpuint(d->device_class, ==, HOST_USB_CLASS_HUB);
  g_assert_true(host_usb_is_hub(d));

  d = devices->pdata[1];
  g_assert_cmpstr(d->sysfs_name, ==, "1-1");
  g_assert_cmpuint(d->bus, ==, 1);
  g_assert_cmpuint(d->device, ==, 2);
  g_assert_cmpuint(d->vendor, ==, 0x0627);
  g_assert_cmpuint(d->product, ==, 0x0001);
  g_assert_cmpstr(d->manufacturer, ==, "QEMU");
  g_assert_cmpstr(d->product_name, ==, "QEMU USB Keyboard");
  g_assert_cmpstr(d->serial, ==, "68284-0000:00:07.0-1");
  g_assert_false(host_usb_is_hub(d));

  d = devices->pdata[2];
  g_assert_cmpstr(d->sysfs_name, ==, "usb2");
  g_assert_cmpuint(d->bus, ==, 2);
  g_assert_cmpuint(d->device, ==, 1);
  g_assert_cmpuint(d->product, ==, 0x0003);
  g_assert_true(host_usb_is_hub(d));
}

static void
test_resolve_ids(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_ids(0x0627, 0x0001);
  g_autoptr(HostUsbDevice) d = host_usb_resolve(h, &error);

  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "1-1");
  g_assert_cmpuint(d->bus, ==, 1);
  g_assert_cmpuint(d->device, ==, 2);
  g_assert_cmpstr(d->product_name, ==, "QEMU USB Keyboard");
}

static void
test_resolve_address(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_address(1, 2);
  g_autoptr(HostUsbDevice) d = host_usb_resolve(h, &error);

  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "1-1");
  g_assert_cmpuint(d->vendor, ==, 0x0627);
}

static void
test_resolve_both(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_ids(0x0627, 0x0001);
  g_autoptr(HostUsbDevice) d = NULL;

  h->usb.has_address = TRUE;
  h->usb.bus = 1;
  h->usb.device = 2;
  d = host_usb_resolve(h, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "1-1");
}

/* The device at the address must also have the ids, as in libvirt. */
static void
test_resolve_both_mismatch(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_ids(0x046d, 0xc52b);
  g_autoptr(HostUsbDevice) d = NULL;

  h->usb.has_address = TRUE;
  h->usb.bus = 1;
  h->usb.device = 2;
  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND,
               "the USB device at bus 1 device 2 (1-1) is 0627:0001, not 046d:c52b");

  /* optional: a missing device is skipped, not an error */
  g_clear_error(&error);
  h->usb.startup_policy = HOSTDEV_STARTUP_OPTIONAL;
  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  g_assert_no_error(error);
}

static void
test_resolve_root_hub(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_ids(0x1d6b, 0x0003);
  g_autoptr(HostUsbDevice) d = host_usb_resolve(h, &error);

  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "usb2");
}

static void
test_not_found_ids(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_ids(0x046d, 0xc52b);
  g_autoptr(HostUsbDevice) d = NULL;

  for (int policy = HOSTDEV_STARTUP_DEFAULT; policy <= HOSTDEV_STARTUP_REQUISITE;
       policy++) {
    h->usb.startup_policy = policy;
    d = host_usb_resolve(h, &error);
    g_assert_null(d);
    assert_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                 "no USB device 046d:c52b on this host: plug it in, check "
                 "`hostdevctl nodedev-list --cap usb_device`, or use "
                 "<source startupPolicy='optional'>");
    g_clear_error(&error);
  }

  h->usb.startup_policy = HOSTDEV_STARTUP_OPTIONAL;
  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  g_assert_no_error(error);
}

static void
test_not_found_address(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_address(1, 3);
  g_autoptr(HostUsbDevice) d = host_usb_resolve(h, &error);

  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND,
               "no USB device at bus 1 device 3 on this host");
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND, "hostdevctl nodedev-list");
}

static void
test_not_usb(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_PCI);
  g_autoptr(Hostdev) empty = hostdev_new(HOSTDEV_TYPE_USB);
  g_autoptr(HostUsbDevice) d = host_usb_resolve(h, &error);

  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "not a USB hostdev");
  g_clear_error(&error);
  g_assert_null(host_usb_resolve(empty, &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "names no device");
}

/* Two identical keyboards: the ids do not choose, the address does. */
static void
test_several_matches(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_ids(0x0627, 0x0001);
  g_autoptr(Hostdev) h3 = usb_by_ids(0x0627, 0x0001);
  g_autoptr(HostUsbDevice) d = NULL;

  add_usb_device(tree->root, "usb1", 1, 1, 0x1d6b, 0x0002);
  add_usb_device(tree->root, "1-2", 1, 3, 0x0627, 0x0001);
  add_usb_device(tree->root, "1-1", 1, 2, 0x0627, 0x0001);
  write_attr(tree->root, "1-1:1.0", "bInterfaceClass", "03\n");

  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
               "2 USB devices match 0627:0001: bus 1 device 2 (port 1-1, "
               "no serial), bus 1 device 3 (port 1-2, no serial); choose one "
               "by its port path (stable while it stays in the same socket) "
               "or serial with <hostdevd:device "
               "xmlns:hostdevd='urn:hostdevd:hostdev:1' port='...' "
               "serial='...'/> in <source>, or by <address bus='...' "
               "device='...'/> (which changes on every replug)");
  g_clear_error(&error);

  /* optional does not make an ambiguous choice acceptable */
  h->usb.startup_policy = HOSTDEV_STARTUP_OPTIONAL;
  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "2 USB devices match");
  g_clear_error(&error);

  h3->usb.has_address = TRUE;
  h3->usb.bus = 1;
  h3->usb.device = 3;
  d = host_usb_resolve(h3, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "1-2");
}

/* Two identical keys with serials behind a hub, a third without one, and
 * a fourth with the first one's serial (cheap devices repeat theirs). */
static void
add_identical_devices(const char *root)
{
  add_usb_device(root, "usb1", 1, 1, 0x1d6b, 0x0002);
  write_attr(root, "usb1", "serial", "0000:00:14.0\n");
  write_attr(root, "usb1", "bDeviceClass", "09\n");
  add_usb_device(root, "1-2", 1, 2, 0x05e3, 0x0608);
  write_attr(root, "1-2", "bDeviceClass", "09\n");
  add_usb_device(root, "1-2.1", 1, 5, 0x1050, 0x0407);
  write_attr(root, "1-2.1", "serial", "0001111\n");
  add_usb_device(root, "1-2.3", 1, 9, 0x1050, 0x0407);
  write_attr(root, "1-2.3", "serial", "0002222\n");
  add_usb_device(root, "1-4", 1, 4, 0x1050, 0x0407);
  add_usb_device(root, "2-1", 2, 3, 0x0403, 0x6001);
  write_attr(root, "2-1", "serial", "0001111\n");
}

static Hostdev *
usb_by_selector(const char *port, const char *serial)
{
  Hostdev *h = hostdev_new(HOSTDEV_TYPE_USB);

  h->usb.port_path = g_strdup(port);
  h->usb.serial = g_strdup(serial);
  return h;
}

static void
test_resolve_port_path(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_selector("1-2.3", NULL);
  g_autoptr(Hostdev) with_ids = usb_by_ids(0x1050, 0x0407);
  g_autoptr(Hostdev) other_ids = usb_by_ids(0x0403, 0x6001);
  g_autoptr(HostUsbDevice) d = NULL;

  add_identical_devices(tree->root);
  d = host_usb_resolve(h, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "1-2.3");
  g_assert_cmpuint(d->device, ==, 9);
  g_clear_pointer(&d, host_usb_device_free);

  with_ids->usb.port_path = g_strdup("1-2.1");
  d = host_usb_resolve(with_ids, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d->serial, ==, "0001111");
  g_clear_pointer(&d, host_usb_device_free);

  /* every name must match: the ids are not those of the device there */
  other_ids->usb.port_path = g_strdup("1-2.1");
  d = host_usb_resolve(other_ids, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND,
               "no USB device 0403:6001 at port 1-2.1 on this host: plug it "
               "in, and check the port path and serial");
}

static void
test_resolve_serial(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) unique = usb_by_selector(NULL, "0002222");
  g_autoptr(Hostdev) shared = usb_by_selector(NULL, "0001111");
  g_autoptr(Hostdev) shared_ids = usb_by_ids(0x1050, 0x0407);
  g_autoptr(HostUsbDevice) d = NULL;

  add_identical_devices(tree->root);
  d = host_usb_resolve(unique, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "1-2.3");
  g_clear_pointer(&d, host_usb_device_free);

  /* two devices report 0001111: ambiguous, and the message says where */
  d = host_usb_resolve(shared, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
               "2 USB devices match with serial '0001111': bus 1 device 5 "
               "(port 1-2.1, serial '0001111'), bus 2 device 3 (port 2-1, "
               "serial '0001111'); choose one by its port path");
  g_clear_error(&error);

  /* with the ids, the serial chooses */
  shared_ids->usb.serial = g_strdup("0001111");
  d = host_usb_resolve(shared_ids, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "1-2.1");
}

/* The ids alone: every twin listed with what tells it apart. */
static void
test_identical_ambiguous(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_ids(0x1050, 0x0407);
  g_autoptr(Hostdev) serial_root_hub = usb_by_selector(NULL, "0000:00:14.0");
  g_autoptr(HostUsbDevice) d = NULL;

  add_identical_devices(tree->root);
  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
               "3 USB devices match 1050:0407: bus 1 device 4 (port 1-4, no "
               "serial), bus 1 device 5 (port 1-2.1, serial '0001111'), bus "
               "1 device 9 (port 1-2.3, serial '0002222'); choose one");

  /* a root hub has a serial (its controller) but no port path */
  d = host_usb_resolve(serial_root_hub, NULL);
  g_assert_nonnull(d);
  g_assert_cmpstr(d->sysfs_name, ==, "usb1");
  g_assert_null(host_usb_port_path(d));
}

/* With an address, the device there must have the other names too. */
static void
test_address_and_selector(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_address(1, 5);
  g_autoptr(HostUsbDevice) d = NULL;

  add_identical_devices(tree->root);
  h->usb.port_path = g_strdup("1-2.1");
  d = host_usb_resolve(h, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d->sysfs_name, ==, "1-2.1");
  g_clear_pointer(&d, host_usb_device_free);

  /* the device was replugged: number 5 went to the twin's socket */
  g_free(h->usb.port_path);
  h->usb.port_path = g_strdup("1-2.3");
  h->usb.serial = g_strdup("0002222");
  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND,
               "the USB device at bus 1 device 5 (1-2.1) is at port 1-2.1 "
               "with serial '0001111', not at port 1-2.3 with serial "
               "'0002222'");
}

/* startupPolicy='optional' does not skip a device chosen by port or serial. */
static void
test_optional_selector(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = usb_by_ids(0x1050, 0x0407);
  g_autoptr(Hostdev) plain = usb_by_ids(0x1050, 0x0407);
  g_autoptr(HostUsbDevice) d = NULL;

  add_identical_devices(tree->root);
  h->usb.port_path = g_strdup("1-3");
  h->usb.startup_policy = HOSTDEV_STARTUP_OPTIONAL;
  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND,
               "startupPolicy='optional' cannot wait for a device chosen by "
               "port path or serial");
  g_clear_error(&error);

  h->usb.has_address = TRUE;
  h->usb.bus = 1;
  h->usb.device = 5;
  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND, "not 1050:0407 at port 1-3");
  g_clear_error(&error);

  /* as before without a selector (the ids are absent here) */
  plain->usb.vendor = 0x1234;
  plain->usb.startup_policy = HOSTDEV_STARTUP_OPTIONAL;
  d = host_usb_resolve(plain, &error);
  g_assert_null(d);
  g_assert_no_error(error);
}

/* A host without USB: no devices, not an error. */
static void
test_no_usb(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) devices = host_usb_list(&error);
  g_autoptr(Hostdev) h = usb_by_ids(0x0627, 0x0001);
  g_autoptr(HostUsbDevice) d = NULL;

  g_assert_no_error(error);
  g_assert_cmpuint(devices->len, ==, 0);

  d = host_usb_resolve(h, &error);
  g_assert_null(d);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND, "no USB device 0627:0001 on this host");
}

/* Half-written or odd entries (a device unplugged mid-scan) are skipped;
 * strings are trimmed and made valid UTF-8. */
static void
test_odd_entries(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) devices = NULL;
  const HostUsbDevice *d;

  add_usb_device(tree->root, "3-1", 3, 4, 0x046d, 0xc52b);
  write_attr(tree->root, "3-1", "manufacturer", "  Logi\xfftech \n");
  write_attr(tree->root, "3-1", "product", "\n");
  add_usb_device(tree->root, "3-2", 3, 5, 0x046d, 0xc52b);
  write_attr(tree->root, "3-2", "busnum", "three\n");
  add_usb_device(tree->root, "3-3", 3, 6, 0x046d, 0xc52b);
  write_attr(tree->root, "3-3", "idVendor", "0x46d\n");
  write_attr(tree->root, "3-4", "busnum", "3\n");
  add_usb_device(tree->root, "3-5", 3, 7, 0x046d, 0xc52b);
  write_attr(tree->root, "3-5", "devnum", "70000\n");

  /* listed, but their names are no port paths of their bus */
  add_usb_device(tree->root, "4-1", 3, 8, 0x046d, 0xc52b);
  add_usb_device(tree->root, "3-01", 3, 9, 0x046d, 0xc52b);

  devices = host_usb_list(&error);
  g_assert_no_error(error);
  g_assert_cmpuint(devices->len, ==, 3);
  g_assert_null(host_usb_port_path(devices->pdata[1]));
  g_assert_null(host_usb_port_path(devices->pdata[2]));
  d = devices->pdata[0];
  g_assert_cmpstr(d->sysfs_name, ==, "3-1");
  g_assert_cmpstr(host_usb_port_path(d), ==, "3-1");
  g_assert_cmpstr(d->manufacturer, ==, "Logi\xef\xbf\xbdtech");
  g_assert_null(d->product_name);
  g_assert_null(d->serial);
}

static void
test_unreadable(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) devices = NULL;

  write_file(tree->root, "sys/bus/usb/devices", "not a directory\n");
  devices = host_usb_list(&error);
  g_assert_null(devices);
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR, "cannot list USB devices");
}

/* ------------------------------------------------------------------ */

static void
test_host_root(void)
{
  g_autofree char *real = NULL;
  g_autofree char *prefixed = NULL;
  g_autofree char *slashes = NULL;
  g_autofree char *leading = NULL;

  host_root_set(NULL);
  g_assert_cmpstr(host_root_get(), ==, "/");
  real = host_path("sys/bus/usb/devices/%s/busnum", "1-1");
  g_assert_cmpstr(real, ==, "/sys/bus/usb/devices/1-1/busnum");

  host_root_set("/tmp/root");
  g_assert_cmpstr(host_root_get(), ==, "/tmp/root");
  prefixed = host_path("dev/vfio/%d", 12);
  g_assert_cmpstr(prefixed, ==, "/tmp/root/dev/vfio/12");

  host_root_set("/tmp/root//");
  g_assert_cmpstr(host_root_get(), ==, "/tmp/root");
  leading = host_path("/sys/kernel/iommu_groups");
  g_assert_cmpstr(leading, ==, "/tmp/root/sys/kernel/iommu_groups");

  host_root_set("/");
  g_assert_cmpstr(host_root_get(), ==, "/");
  slashes = host_path("%s", "sys");
  g_assert_cmpstr(slashes, ==, "/sys");

  host_root_set("");
  g_assert_cmpstr(host_root_get(), ==, "/");
  host_root_set(NULL);
}

static void
test_read_attr(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = host_path("sys/x");
  g_autofree char *big = g_strnfill(HOST_ATTR_MAX_SIZE + 1, 'x');
  g_autofree char *text = NULL;

  write_file(tree->root, "sys/x", "  value \n");
  text = host_read_attr(path, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(text, ==, "value");
  g_clear_pointer(&text, g_free);

  write_file(tree->root, "sys/x", big);
  text = host_read_attr(path, &error);
  g_assert_null(text);
  g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED);
  g_clear_error(&error);

  g_assert_cmpint(g_unlink(path), ==, 0);
  text = host_read_attr(path, &error);
  g_assert_null(text);
  g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
}

int
main(int argc, char **argv)
{
  int status;

  g_test_init(&argc, &argv, NULL);

#define FIXTURE_TEST(path, func) \
  g_test_add("/host-usb/fixture/" path, Tree, NULL, tree_setup_fixture, func, tree_teardown)
#define EMPTY_TEST(path, func) \
  g_test_add("/host-usb/built/" path, Tree, NULL, tree_setup_empty, func, tree_teardown)

  FIXTURE_TEST("list", test_list_fixture);
  FIXTURE_TEST("resolve-ids", test_resolve_ids);
  FIXTURE_TEST("resolve-address", test_resolve_address);
  FIXTURE_TEST("resolve-both", test_resolve_both);
  FIXTURE_TEST("resolve-both-mismatch", test_resolve_both_mismatch);
  FIXTURE_TEST("resolve-root-hub", test_resolve_root_hub);
  FIXTURE_TEST("not-found-ids", test_not_found_ids);
  FIXTURE_TEST("not-found-address", test_not_found_address);
  FIXTURE_TEST("not-usb", test_not_usb);
  EMPTY_TEST("several-matches", test_several_matches);
  EMPTY_TEST("no-usb", test_no_usb);
  EMPTY_TEST("resolve-port-path", test_resolve_port_path);
  EMPTY_TEST("resolve-serial", test_resolve_serial);
  EMPTY_TEST("identical-ambiguous", test_identical_ambiguous);
  EMPTY_TEST("address-and-selector", test_address_and_selector);
  EMPTY_TEST("optional-selector", test_optional_selector);
  EMPTY_TEST("odd-entries", test_odd_entries);
  EMPTY_TEST("unreadable", test_unreadable);
  EMPTY_TEST("read-attr", test_read_attr);
  g_test_add_func("/host-root/paths", test_host_root);

  fixture_extract();
  status = g_test_run();
  remove_tree(fixture_root);
  g_clear_pointer(&fixture_root, g_free);
  return status;
}
