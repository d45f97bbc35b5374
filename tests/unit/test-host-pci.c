/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-host-pci.c - VFIO readiness checks against sysfs trees under a host
 * root: the captured q35 fixture (0000:01:00.0 on e1000e in group 9,
 * 0000:05:00.1 on vfio-pci in group 12, 0000:02:00.1 unbound in group 13)
 * and small trees built here for a host without an IOMMU.
 */
#include "host-pci.h"
#include "host-root.h"
#include "hostdevd-error.h"

#include <string.h>
#include <unistd.h>

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
make_dir(const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);

  g_assert_cmpint(g_mkdir_with_parents(path, 0755), ==, 0);
}

static void
make_link(const char *root, const char *rel, const char *target)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);

  g_assert_cmpint(symlink(target, path), ==, 0);
}

static void
remove_file(const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);

  g_assert_cmpint(g_unlink(path), ==, 0);
}

static void
tree_setup_empty(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  tree->root = g_dir_make_tmp("hostdevd-pci-XXXXXX", &error);
  g_assert_no_error(error);
  host_root_set(tree->root);
}

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

  root = g_dir_make_tmp("hostdevd-pci-fixture-XXXXXX", &error);
  g_assert_no_error(error);
  if (dir != NULL)
    tarball = g_build_filename(dir, FIXTURE_TARBALL, NULL);
  else
    tarball = g_test_build_filename(G_TEST_DIST, "..", "fixtures",
                                    FIXTURE_TARBALL, NULL);
  run((const char *const[]){ "tar", "xzf", tarball, "-C", root, NULL });
  /* devnodes.txt lists /dev/vfio/12; device nodes are not in the tarball */
  write_file(root, "dev/vfio/12", "");
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

static const PciAddress e1000e = { 0x0000, 0x01, 0x00, 0x0 };
static const PciAddress vfio_fn1 = { 0x0000, 0x05, 0x00, 0x1 };
static const PciAddress unbound_vf = { 0x0000, 0x02, 0x00, 0x1 };
static const PciAddress missing = { 0x0000, 0x09, 0x00, 0x0 };

/* ------------------------------------------------------------------ */

static void
test_assignable(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true(host_pci_check_assignable(&vfio_fn1, FALSE, &error));
  g_assert_no_error(error);
  g_assert_true(host_pci_check_assignable(&vfio_fn1, TRUE, &error));
  g_assert_no_error(error);
}

static void
test_get_driver(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *d1 = host_pci_get_driver(&e1000e, &error);
  g_autofree char *d2 = NULL;
  g_autofree char *d3 = NULL;
  g_autofree char *d4 = NULL;

  g_assert_no_error(error);
  g_assert_cmpstr(d1, ==, "e1000e");
  d2 = host_pci_get_driver(&vfio_fn1, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d2, ==, "vfio-pci");

  /* unbound: NULL without an error */
  d3 = host_pci_get_driver(&unbound_vf, &error);
  g_assert_no_error(error);
  g_assert_null(d3);

  d4 = host_pci_get_driver(&missing, &error);
  g_assert_null(d4);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND, "PCI device 0000:09:00.0 does not exist");
}

static void
test_get_iommu_group(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint(host_pci_get_iommu_group(&e1000e, &error), ==, 9);
  g_assert_no_error(error);
  g_assert_cmpint(host_pci_get_iommu_group(&vfio_fn1, &error), ==, 12);
  g_assert_no_error(error);
  g_assert_cmpint(host_pci_get_iommu_group(&unbound_vf, &error), ==, 13);
  g_assert_no_error(error);
  g_assert_cmpint(host_pci_get_iommu_group(&missing, &error), ==, -1);
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND, "does not exist on this host");
}

static void
test_not_found(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false(host_pci_check_assignable(&missing, FALSE, &error));
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND,
               "PCI device 0000:09:00.0 does not exist on this host; list PCI "
               "devices with `hostdevctl nodedev-list --cap pci`");
}

static void
test_other_driver(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false(host_pci_check_assignable(&e1000e, FALSE, &error));
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR,
               "PCI device 0000:01:00.0 is bound to driver 'e1000e', not "
               "vfio-pci: use managed='yes' or bind it with "
               "`hostdevctl nodedev-detach pci_0000_01_00_0`");
}

static void
test_other_driver_managed(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false(host_pci_check_assignable(&e1000e, TRUE, &error));
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR,
               "PCI device 0000:01:00.0 is bound to driver 'e1000e', not "
               "vfio-pci, although managed='yes' should have bound it to "
               "vfio-pci; bind it by hand: "
               "echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override; "
               "echo 0000:01:00.0 > /sys/bus/pci/devices/0000:01:00.0/driver/unbind; "
               "echo 0000:01:00.0 > /sys/bus/pci/drivers_probe");
}

static void
test_unbound(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false(host_pci_check_assignable(&unbound_vf, FALSE, &error));
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR,
               "PCI device 0000:02:00.1 is not bound to any driver; bind it to "
               "vfio-pci with `hostdevctl nodedev-detach pci_0000_02_00_1`");
  g_clear_error(&error);

  g_assert_false(host_pci_check_assignable(&unbound_vf, TRUE, &error));
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR,
               "PCI device 0000:02:00.1 is not bound to any driver, although "
               "managed='yes' should have bound it to vfio-pci; bind it by "
               "hand: echo vfio-pci > /sys/bus/pci/devices/0000:02:00.1/driver_override; "
               "echo 0000:02:00.1 > /sys/bus/pci/drivers_probe");
}

static void
test_no_vfio_node(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  remove_file(fixture_root, "dev/vfio/12");
  g_assert_false(host_pci_check_assignable(&vfio_fn1, FALSE, &error));
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR,
               "PCI device 0000:05:00.1 is bound to vfio-pci, but /dev/vfio/12 "
               "(its IOMMU group) does not exist");
  g_clear_error(&error);

  write_file(fixture_root, "dev/vfio/12", "");
  g_assert_true(host_pci_check_assignable(&vfio_fn1, FALSE, &error));
  g_assert_no_error(error);
}

/* The IOMMU is on, yet this device has no group. */
static void
test_no_group(Tree *tree, gconstpointer data)
{
  const char *link = "sys/bus/pci/devices/0000:05:00.1/iommu_group";
  g_autoptr(GError) error = NULL;

  remove_file(fixture_root, link);
  g_assert_cmpint(host_pci_get_iommu_group(&vfio_fn1, &error), ==, -1);
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR,
               "PCI device 0000:05:00.1 is in no IOMMU group although the host "
               "has an IOMMU");
  g_clear_error(&error);
  g_assert_false(host_pci_check_assignable(&vfio_fn1, FALSE, &error));
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR, "is in no IOMMU group");
  g_clear_error(&error);

  make_link(fixture_root, link, "../../../../kernel/iommu_groups/12");
  g_assert_cmpint(host_pci_get_iommu_group(&vfio_fn1, &error), ==, 12);
  g_assert_no_error(error);
}

static void
test_out_of_range(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  PciAddress bad = { 0x10000, 0, 0, 0 };

  g_assert_false(host_pci_check_assignable(&bad, FALSE, &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "out of range");
}

/* Issue 14: a bridge or PCIe port named as the source is refused as such. */
static void
test_bridge_refused(Tree *tree, gconstpointer data)
{
  const PciAddress root_port = { 0, 0, 5, 0 };
  const PciAddress behind = { 0, 3, 0, 0 };
  g_autoptr(GError) error = NULL;

  /* 0000:03:00.0 (class 0x060400) sits below root port 0000:00:05.0 */
  g_assert_false(host_pci_check_not_bridge(&behind, &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
               "0000:03:00.0 is a PCI bridge: bridges cannot be assigned");
  g_clear_error(&error);
  g_assert_false(host_pci_check_not_bridge(&root_port, &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "0000:00:05.0 is a PCI bridge");
  g_clear_error(&error);

  /* an endpoint passes; so does one whose class cannot be read (later checks say why) */
  g_assert_true(host_pci_check_not_bridge(&e1000e, &error));
  g_assert_no_error(error);
  g_assert_true(host_pci_check_not_bridge(&missing, &error));
  g_assert_no_error(error);

}

/* A bridge header in config space counts even under another class. */
static void
test_bridge_by_header(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *config = g_strnfill(64, '\0');

  make_dir(tree->root, "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0");
  make_dir(tree->root, "sys/bus/pci/devices");
  make_link(tree->root, "sys/bus/pci/devices/0000:01:00.0",
            "../../../devices/pci0000:00/0000:00:03.0/0000:01:00.0");
  write_file(tree->root, "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0/class", "0x020000\n");
  g_assert_true(host_pci_check_not_bridge(&e1000e, &error));
  config[0x0e] = (char)0x81;   /* multifunction, type 1 */
  g_autofree char *path = g_build_filename(tree->root,
      "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0/config", NULL);
  g_assert_true(g_file_set_contents(path, config, 64, NULL));
  g_assert_false(host_pci_check_not_bridge(&e1000e, &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "0000:01:00.0 is a PCI bridge");
}

/* A host booted without intel_iommu=on: devices, drivers, no groups. */
static void
build_no_iommu_host(const char *root, gboolean empty_groups_dir)
{
  make_dir(root, "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0");
  make_dir(root, "sys/bus/pci/drivers/e1000e");
  make_dir(root, "sys/bus/pci/devices");
  make_link(root, "sys/bus/pci/devices/0000:01:00.0",
            "../../../devices/pci0000:00/0000:00:03.0/0000:01:00.0");
  make_link(root, "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0/driver",
            "../../../../bus/pci/drivers/e1000e");
  if (empty_groups_dir)
    make_dir(root, "sys/kernel/iommu_groups");
}

static void
test_no_iommu(Tree *tree, gconstpointer data)
{
  gboolean empty_groups_dir = GPOINTER_TO_INT(data);
  g_autoptr(GError) error = NULL;
  g_autofree char *driver = NULL;

  build_no_iommu_host(tree->root, empty_groups_dir);

  driver = host_pci_get_driver(&e1000e, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(driver, ==, "e1000e");

  g_assert_cmpint(host_pci_get_iommu_group(&e1000e, &error), ==, -1);
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR,
               "PCI device 0000:01:00.0 cannot be assigned: the host has no "
               "IOMMU enabled: enable VT-d/AMD-Vi in the firmware and boot with "
               "intel_iommu=on (Intel) or check amd_iommu (AMD)");
  g_clear_error(&error);

  /* the IOMMU is checked before the driver */
  g_assert_false(host_pci_check_assignable(&e1000e, FALSE, &error));
  assert_error(error, HOSTDEVD_ERROR_HOST_ERROR, "the host has no IOMMU enabled");
  g_clear_error(&error);

  g_assert_false(host_pci_check_assignable(&missing, FALSE, &error));
  assert_error(error, HOSTDEVD_ERROR_NOT_FOUND, "does not exist on this host");
}

static void
test_read_link_name(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;
  g_autofree char *path = host_path("link");

  make_link(tree->root, "link", "../a/b/vfio-pci");
  name = host_read_link_name(path, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(name, ==, "vfio-pci");
  remove_file(tree->root, "link");
  g_clear_pointer(&name, g_free);
  name = host_read_link_name(path, &error);
  g_assert_null(name);
  g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
}

int
main(int argc, char **argv)
{
  int status;

  g_test_init(&argc, &argv, NULL);

#define FIXTURE_TEST(path, func) \
  g_test_add("/host-pci/fixture/" path, Tree, NULL, tree_setup_fixture, func, tree_teardown)

  FIXTURE_TEST("assignable", test_assignable);
  FIXTURE_TEST("get-driver", test_get_driver);
  FIXTURE_TEST("get-iommu-group", test_get_iommu_group);
  FIXTURE_TEST("not-found", test_not_found);
  FIXTURE_TEST("other-driver", test_other_driver);
  FIXTURE_TEST("other-driver-managed", test_other_driver_managed);
  FIXTURE_TEST("unbound", test_unbound);
  FIXTURE_TEST("no-vfio-node", test_no_vfio_node);
  FIXTURE_TEST("no-group", test_no_group);
  FIXTURE_TEST("out-of-range", test_out_of_range);
  FIXTURE_TEST("bridge-refused", test_bridge_refused);
  g_test_add("/host-pci/built/no-iommu", Tree, GINT_TO_POINTER(FALSE),
             tree_setup_empty, test_no_iommu, tree_teardown);
  g_test_add("/host-pci/built/no-iommu-empty-groups", Tree, GINT_TO_POINTER(TRUE),
             tree_setup_empty, test_no_iommu, tree_teardown);
  g_test_add("/host-pci/built/bridge-by-header", Tree, NULL,
             tree_setup_empty, test_bridge_by_header, tree_teardown);
  g_test_add("/host-pci/built/read-link-name", Tree, NULL,
             tree_setup_empty, test_read_link_name, tree_teardown);

  fixture_extract();
  status = g_test_run();
  remove_tree(fixture_root);
  g_clear_pointer(&fixture_root, g_free);
  return status;
}
