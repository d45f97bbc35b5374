/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-mdev.c - mdev types, create/remove through the fake kernel, and the
 * deterministic version 3 UUIDs
 *
 * The captured q35 tree has no mdev parent; the tests give the e1000e at
 * 0000:01:00.0 the sysfs of one (as a vGPU driver would register it).
 */
#include "host-fixture.h"
#include "claims.h"
#include "host-prep.h"
#include "mdev.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define PARENT_DIR "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0"

typedef struct {
  char *root;
  FakeKernel *fake;
} Tree;

static void
add_type(const char *root, const char *id, const char *name, guint available)
{
  g_autofree char *base = g_strdup_printf(PARENT_DIR "/mdev_supported_types/%s", id);
  g_autofree char *name_rel = g_strconcat(base, "/name", NULL);
  g_autofree char *api_rel = g_strconcat(base, "/device_api", NULL);
  g_autofree char *avail_rel = g_strconcat(base, "/available_instances", NULL);
  g_autofree char *create_rel = g_strconcat(base, "/create", NULL);
  g_autofree char *count = g_strdup_printf("%u\n", available);
  g_autofree char *name_text = g_strdup_printf("%s\n", name);

  fixture_write(root, name_rel, name_text);
  fixture_write(root, api_rel, "vfio-pci\n");
  fixture_write(root, avail_rel, count);
  fixture_write(root, create_rel, "");
}

static void
tree_setup(Tree *tree, gconstpointer data)
{
  tree->root = fixture_extract();
  add_type(tree->root, "nvidia-63", "GRID P4-1Q", 2);
  add_type(tree->root, "nvidia-64", "GRID P4-2Q", 0);
  fixture_link(tree->root, "sys/class/mdev_bus/0000:01:00.0",
               "../../devices/pci0000:00/0000:00:03.0/0000:01:00.0");
  fixture_mkdir(tree->root, "sys/bus/mdev/devices");
  tree->fake = fake_kernel_new(tree->root);
}

static void
tree_teardown(Tree *tree, gconstpointer data)
{
  g_clear_pointer(&tree->fake, fake_kernel_free);
  host_root_set(NULL);
  fixture_remove(tree->root);
  g_free(tree->root);
}

static void
test_uuid(void)
{
  guint8 dns[16];
  g_autofree char *example = NULL;
  g_autofree char *vm1 = mdev_uuid_for_vm("vm1", 0);
  g_autofree char *vm1_again = mdev_uuid_for_vm("vm1", 0);
  g_autofree char *vm1_1 = mdev_uuid_for_vm("vm1", 1);
  guint8 bytes[16];

  /* RFC 4122's DNS namespace and the well-known v3 of www.example.com */
  g_assert_true(mdev_uuid_parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8", dns));
  example = mdev_uuid_v3(dns, "www.example.com");
  g_assert_cmpstr(example, ==, "5df41881-3aed-3515-88a7-2f4a814cf09e");

  g_assert_cmpstr(vm1, ==, "faf779ad-fa2e-3c30-abe4-b1af0abfafdc");
  g_assert_cmpstr(vm1, ==, vm1_again);
  g_assert_cmpstr(vm1, !=, vm1_1);

  g_assert_true(mdev_uuid_parse("FAF779AD-FA2E-3C30-ABE4-B1AF0ABFAFDC", bytes));
  g_assert_false(mdev_uuid_parse("faf779ad-fa2e-3c30-abe4-b1af0abfafd", bytes));
  g_assert_false(mdev_uuid_parse("faf779adXfa2e-3c30-abe4-b1af0abfafdc", bytes));
  g_assert_false(mdev_uuid_parse("gaf779ad-fa2e-3c30-abe4-b1af0abfafdc", bytes));
  g_assert_false(mdev_uuid_parse(NULL, bytes));
}

/* Which VM's a derived UUID is: hostdevd can tell a VM's own instance from another's. */
static void
test_uuid_owner(void)
{
  g_autofree char *vm1_5 = mdev_uuid_for_vm("vm1", 5);
  g_autofree char *last = mdev_uuid_for_vm("vm1", MDEV_VM_INDEX_LIMIT - 1);
  g_autofree char *beyond = mdev_uuid_for_vm("vm1", MDEV_VM_INDEX_LIMIT);
  g_autofree char *upper = g_ascii_strup(vm1_5, -1);
  guint index = 0;

  g_assert_true(mdev_uuid_is_version3(vm1_5));
  g_assert_false(mdev_uuid_is_version3("4b20d080-1b54-4048-85b3-a6a62d165c01"));
  g_assert_false(mdev_uuid_is_version3("not a uuid"));
  g_assert_true(mdev_uuid_vm_index(upper, "vm1", &index));
  g_assert_cmpuint(index, ==, 5);
  g_assert_true(mdev_uuid_vm_index(last, "vm1", &index));
  g_assert_cmpuint(index, ==, MDEV_VM_INDEX_LIMIT - 1);
  g_assert_false(mdev_uuid_vm_index(beyond, "vm1", NULL));
  g_assert_false(mdev_uuid_vm_index(vm1_5, "vm2", NULL));
  g_assert_false(mdev_uuid_vm_index("4b20d080-1b54-4048-85b3-a6a62d165c01", "vm1", NULL));
}

/* What an attach learns of an mdev: its parent and type; a missing one says how to make it. */
static void
test_device_find(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uuid = mdev_uuid_for_vm("vm1", 0);
  g_autofree char *upper = g_ascii_strup(uuid, -1);
  g_autoptr(MdevDevice) device = NULL;

  g_assert_null(mdev_device_find(uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "there is no mediated device faf779ad-fa2e-3c30-abe4-b1af0abfafdc on "
                        "this host: create it first (`hostdevctl mdev-create PARENT TYPE "
                        "faf779ad-fa2e-3c30-abe4-b1af0abfafdc`)");
  g_clear_error(&error);
  g_assert_null(mdev_device_find("../../etc", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "is not a UUID");
  g_clear_error(&error);

  g_assert_true(mdev_create("0000:01:00.0", "nvidia-63", uuid, &error));
  device = mdev_device_find(upper, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(device->uuid, ==, uuid);
  g_assert_cmpstr(device->parent, ==, "0000:01:00.0");
  g_assert_cmpstr(device->type, ==, "nvidia-63");
}

static void
test_types(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) types = mdev_list_types("0000:01:00.0", &error);
  g_autoptr(GPtrArray) none = NULL;
  const MdevType *first;

  g_assert_no_error(error);
  g_assert_cmpuint(types->len, ==, 2);
  first = types->pdata[0];
  g_assert_cmpstr(first->id, ==, "nvidia-63");
  g_assert_cmpstr(first->name, ==, "GRID P4-1Q");
  g_assert_cmpstr(first->device_api, ==, "vfio-pci");
  g_assert_cmpuint(first->available, ==, 2);

  none = mdev_list_types("0000:02:00.0", &error);
  g_assert_no_error(error);
  g_assert_cmpuint(none->len, ==, 0);
  g_assert_null(mdev_list_types("../x", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "'../x' is not a device name");
}

static void
test_create_remove(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uuid = mdev_uuid_for_vm("vm1", 0);
  g_autoptr(GPtrArray) devices = NULL;
  g_autoptr(GPtrArray) types = NULL;
  const MdevDevice *device;

  g_assert_true(mdev_create("pci_0000_01_00_0", "nvidia-63", uuid, &error));
  g_assert_no_error(error);
  devices = mdev_list_devices(&error);
  g_assert_no_error(error);
  g_assert_cmpuint(devices->len, ==, 1);
  device = devices->pdata[0];
  g_assert_cmpstr(device->uuid, ==, uuid);
  g_assert_cmpstr(device->parent, ==, "0000:01:00.0");
  g_assert_cmpstr(device->type, ==, "nvidia-63");
  types = mdev_list_types("0000:01:00.0", &error);
  g_assert_cmpuint(((MdevType *)types->pdata[0])->available, ==, 1);

  /* the same UUID again: Busy, the kernel is not asked */
  g_assert_false(mdev_create("0000:01:00.0", "nvidia-63", uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "an mdev with UUID faf779ad-fa2e-3c30-abe4-b1af0abfafdc exists "
                        "already: use it, or remove it with `hostdevctl mdev-remove "
                        "faf779ad-fa2e-3c30-abe4-b1af0abfafdc`");
  g_clear_error(&error);

  g_assert_true(mdev_remove(uuid, NULL, 0, &error));
  g_assert_no_error(error);
  g_clear_pointer(&devices, g_ptr_array_unref);
  devices = mdev_list_devices(&error);
  g_assert_cmpuint(devices->len, ==, 0);
  g_assert_false(mdev_remove(uuid, NULL, 0, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "there is no mdev faf779ad-fa2e-3c30-abe4-b1af0abfafdc on this host");
}

static void
test_create_errors(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  const char *uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01";

  g_assert_false(mdev_create("0000:02:00.0", "nvidia-63", uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "0000:02:00.0 is not an mdev parent (no "
                        "/sys/class/mdev_bus/0000:02:00.0): load the vendor's mdev driver");
  g_clear_error(&error);

  g_assert_false(mdev_create("0000:01:00.0", "nvidia-99", uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "0000:01:00.0 offers no mdev type 'nvidia-99'; it offers: "
                        "nvidia-63, nvidia-64");
  g_clear_error(&error);

  g_assert_false(mdev_create("0000:01:00.0", "nvidia-64", uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "no instance of mdev type 'nvidia-64' is left on 0000:01:00.0 "
                        "(available_instances is 0)");
  g_clear_error(&error);

  g_assert_false(mdev_create("0000:01:00.0", "nvidia-63", "not-a-uuid", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "'not-a-uuid' is not a UUID (8-4-4-4-12 hex digits)");
  g_clear_error(&error);

  g_assert_false(mdev_create("pci_0000_01_00_9", "nvidia-63", uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "'pci_0000_01_00_9' is not a PCI node device name");
  g_clear_error(&error);

  g_assert_false(mdev_create("0000:01:00.0", "../../x", uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "'../../x' is not an mdev type name");
  g_clear_error(&error);

  /* the kernel's answer: the vendor driver refuses */
  fake_kernel_fail_write(tree->fake, "nvidia-63/create", EINVAL);
  g_assert_false(mdev_create("0000:01:00.0", "nvidia-63", uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "cannot create mdev 4b20d080-1b54-4048-85b3-a6a62d165c01 of type "
                        "'nvidia-63' on 0000:01:00.0: the vendor driver rejected it "
                        "(see dmesg)");
  g_clear_error(&error);

  fake_kernel_fail_write(tree->fake, "nvidia-63/create", EUSERS);
  g_assert_false(mdev_create("0000:01:00.0", "nvidia-63", uuid, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, "no instance of the type is left");
  g_clear_error(&error);

  /* a VM holds it: remove is refused */
  g_assert_true(mdev_create("0000:01:00.0", "nvidia-63", uuid, &error));
  fake_kernel_fail_write(tree->fake, "/remove", EBUSY);
  g_assert_false(mdev_remove(uuid, NULL, 0, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "cannot remove mdev 4b20d080-1b54-4048-85b3-a6a62d165c01: "
                        "writing '1' to /sys/bus/mdev/devices/"
                        "4b20d080-1b54-4048-85b3-a6a62d165c01/remove failed: Device or "
                        "resource busy; a VM still uses it: detach it first");
}

/*
 * Issue 16, defect 12: since Linux 5.19 removing an mdev a VM has open
 * blocks in the kernel, which asks the guest to unplug it, instead of
 * failing with EBUSY.  A claimed mdev is refused before the kernel is
 * asked; an unclaimed one still in use never blocks the caller longer
 * than the bound.
 */
static void
test_remove_in_use(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *runtime = g_dir_make_tmp("hostdevd-mdev-XXXXXX", &error);
  const char *uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01";
  g_autofree char *key = claims_key_mdev(uuid);
  g_autofree char *log = NULL;
  gint64 started;

  g_assert_no_error(error);
  g_assert_true(mdev_create("0000:01:00.0", "nvidia-63", uuid, &error));
  g_assert_true(claims_acquire(runtime, "vm1", key, &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);

  g_assert_false(mdev_remove(uuid, runtime, 1000, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "mediated device 4b20d080-1b54-4048-85b3-a6a62d165c01 is in use by "
                        "VM 'vm1' (hostdevd pid ");
  g_assert_nonnull(strstr(error->message, "not removing it (the kernel would make the VM "
                                          "give it up): detach it from that VM first "
                                          "(hostdevctl detach-device vm1 ...)"));
  g_clear_error(&error);
  log = fake_kernel_log(tree->fake);
  g_assert_null(strstr(log, "/remove"));
  g_assert_true(fixture_exists(tree->root, "sys/bus/mdev/devices/4b20d080-1b54-4048-85b3-"
                                           "a6a62d165c01"));

  /* unclaimed, yet open (a VM hostdevd does not manage): bounded */
  g_assert_true(claims_release(runtime, "vm1", key, &error));
  fake_kernel_hold_mdev(tree->fake);
  started = g_get_monotonic_time();
  g_assert_false(mdev_remove(uuid, runtime, 150, &error));
  /* bounded: it returns, long before a hung remove would (a loose bound: a busy machine) */
  g_assert_cmpint(g_get_monotonic_time() - started, <, 60 * G_USEC_PER_SEC);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_TIMEOUT,
                        "removing mdev 4b20d080-1b54-4048-85b3-a6a62d165c01 did not finish "
                        "within 150 ms: something still has it open, and the kernel (Linux "
                        "5.19 and later) waits for its user, a VM's QEMU, to release it");
  g_assert_true(fake_kernel_mdev_remove_blocked(tree->fake));

  /* the VM lets go: the removal the kernel kept waiting completes */
  fake_kernel_release_mdev(tree->fake);
  for (int i = 0; i < 6000 && fixture_exists(tree->root, "sys/bus/mdev/devices/4b20d080-1b54-"
                                                        "4048-85b3-a6a62d165c01"); i++)
    g_usleep(5000);
  g_assert_false(fixture_exists(tree->root, "sys/bus/mdev/devices/4b20d080-1b54-4048-85b3-"
                                            "a6a62d165c01"));
  fixture_remove(runtime);
}

/* Issue 11, item 2: a VM could take the parent of another VM's mdev whole;
 * binding it to vfio-pci would have taken the mdev away. */
static void
test_parent_and_mdev_claims(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uuid = mdev_uuid_for_vm("vm1", 0);
  g_autofree char *runtime = g_dir_make_tmp("hostdevd-mdev-claims-XXXXXX", NULL);
  g_autoptr(Hostdev) slice = hostdev_new(HOSTDEV_TYPE_MDEV);
  g_autoptr(Hostdev) parent = hostdev_new(HOSTDEV_TYPE_PCI);
  g_autoptr(HostPrep) vm1 = host_prep_new();
  g_autoptr(HostPrep) vm2 = host_prep_new();
  g_autoptr(HostPrep) vm1_parent = host_prep_new();
  ClaimOwner owner = { getpid(), 0 };

  g_strlcpy(slice->mdev.uuid, uuid, sizeof slice->mdev.uuid);
  g_assert_true(pci_address_parse("0000:01:00.0", &parent->pci_source, NULL));
  g_assert_true(mdev_create("0000:01:00.0", "nvidia-63", uuid, &error));
  g_assert_no_error(error);

  /* vm1 holds the mdev: nobody gets its parent whole, vm1 neither */
  g_assert_true(host_prep_claim(vm1, runtime, "vm1", &owner, slice, NULL, NULL, &error));
  g_assert_no_error(error);
  g_assert_false(host_prep_claim(vm2, runtime, "vm2", &owner, parent, NULL, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "PCI device 0000:01:00.0 is the parent of mediated device "
                        "faf779ad-fa2e-3c30-abe4-b1af0abfafdc, which is in use by VM 'vm1'");
  g_clear_error(&error);
  /* what a refused attach claimed is its undo's to give back */
  g_assert_true(claims_release(runtime, "vm2", "pci_0000_01_00_0", &error));
  g_assert_no_error(error);
  g_assert_false(host_prep_claim(vm1_parent, runtime, "vm1", &owner, parent, NULL, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, "take the mdev away");
  g_clear_error(&error);

  /* the same mdev for another VM: Busy, naming who has it */
  g_assert_false(host_prep_claim(vm2, runtime, "vm2", &owner, slice, NULL, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "mediated device faf779ad-fa2e-3c30-abe4-b1af0abfafdc is in use by "
                        "VM 'vm1'");
  g_clear_error(&error);

  /* the other way round: vm2 holds the parent whole, vm1 asks for a slice */
  g_assert_true(claims_release(runtime, "vm1", "pci_0000_01_00_0", &error));
  g_assert_true(claims_release_all(runtime, "vm1", &error) >= 0);
  g_assert_no_error(error);
  g_clear_pointer(&vm2, host_prep_free);
  vm2 = host_prep_new();
  g_assert_true(host_prep_claim(vm2, runtime, "vm2", &owner, parent, NULL, NULL, &error));
  g_assert_no_error(error);
  g_clear_pointer(&vm1, host_prep_free);
  vm1 = host_prep_new();
  g_assert_false(host_prep_claim(vm1, runtime, "vm1", &owner, slice, NULL, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "the parent of mediated device faf779ad-fa2e-3c30-abe4-b1af0abfafdc, PCI "
                        "device 0000:01:00.0, is in use by VM 'vm2'");
  fixture_remove(runtime);
}

static void
test_parent_parse(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *a = NULL;
  g_autofree char *b = NULL;
  g_autofree char *c = NULL;

  g_assert_true(mdev_parent_parse("pci_0000_00_02_0", &a, &error));
  g_assert_cmpstr(a, ==, "0000:00:02.0");
  g_assert_true(mdev_parent_parse("00:02.0", &b, &error));
  g_assert_cmpstr(b, ==, "0000:00:02.0");
  g_assert_true(mdev_parent_parse("matrix", &c, &error));
  g_assert_cmpstr(c, ==, "matrix");
  g_assert_false(mdev_parent_parse("a/b", &c, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "'a/b' is not an mdev parent");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/mdev/uuid", test_uuid);
  g_test_add_func("/mdev/parent-parse", test_parent_parse);
  g_test_add_func("/mdev/uuid-owner", test_uuid_owner);
  g_test_add("/mdev/device-find", Tree, NULL, tree_setup, test_device_find, tree_teardown);
  g_test_add("/mdev/parent-and-mdev-claims", Tree, NULL, tree_setup, test_parent_and_mdev_claims,
             tree_teardown);
  g_test_add("/mdev/types", Tree, NULL, tree_setup, test_types, tree_teardown);
  g_test_add("/mdev/create-remove", Tree, NULL, tree_setup, test_create_remove, tree_teardown);
  g_test_add("/mdev/create-errors", Tree, NULL, tree_setup, test_create_errors, tree_teardown);
  g_test_add("/mdev/remove-in-use", Tree, NULL, tree_setup, test_remove_in_use, tree_teardown);
  return g_test_run();
}
