/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-vfio.c - IOMMU checks, group viability, managed binding and giving
 * back, on the captured q35 tree with the fake kernel reacting to writes
 *
 * The central promise: whatever step of the managed binding fails, the
 * device ends on its original driver with its original driver_override.
 */
#include "claims.h"
#include "host-fixture.h"
#include "process-identity.h"
#include "host-pci.h"
#include "host-prep.h"
#include "vfio.h"
#include "json-text.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  char *root;
  FakeKernel *fake;
} Tree;

static const PciAddress e1000e = { 0, 0x01, 0x00, 0 };
static const PciAddress nvme_vf = { 0, 0x02, 0x00, 1 };
static const PciAddress e1000_a = { 0, 0x04, 0x01, 0 };
static const PciAddress e1000_b = { 0, 0x04, 0x02, 0 };
static const PciAddress mf_fn0 = { 0, 0x05, 0x00, 0 };
static const PciAddress mf_fn1 = { 0, 0x05, 0x00, 1 };
static const PciAddress missing = { 0, 0x09, 0x00, 0 };

#define E1000E_DIR "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0"

static void
tree_setup(Tree *tree, gconstpointer data)
{
  tree->root = fixture_extract();
  tree->fake = fake_kernel_new(tree->root);
  vfio_set_wait_ms(200);
}

static void
tree_teardown(Tree *tree, gconstpointer data)
{
  g_clear_pointer(&tree->fake, fake_kernel_free);
  host_root_set(NULL);
  fixture_remove(tree->root);
  g_free(tree->root);
  vfio_set_wait_ms(VFIO_DEFAULT_WAIT_MS);
  vfio_set_use_pidfd(TRUE);
}

static char *
driver_of(Tree *tree, const PciAddress *addr)
{
  g_autofree char *bdf = pci_address_format(addr);
  g_autofree char *rel = g_strdup_printf("sys/bus/pci/devices/%s/driver", bdf);

  return fixture_link_name(tree->root, rel);
}

static char *
override_of(Tree *tree, const PciAddress *addr)
{
  g_autofree char *bdf = pci_address_format(addr);
  g_autofree char *rel = g_strdup_printf("sys/bus/pci/devices/%s/driver_override", bdf);

  return fixture_read(tree->root, rel);
}

static void
assert_on(Tree *tree, const PciAddress *addr, const char *driver, const char *override)
{
  g_autofree char *now = driver_of(tree, addr);
  g_autofree char *over = override_of(tree, addr);

  g_assert_cmpstr(now, ==, driver);
  g_assert_cmpstr(over, ==, override);
}

static void
empty_iommu_groups(Tree *tree)
{
  g_autofree char *groups = g_build_filename(tree->root, "sys/kernel/iommu_groups", NULL);

  fixture_remove(groups);
  fixture_mkdir(tree->root, "sys/kernel/iommu_groups");
}

/* ------------------------------------------------------------------ */
/* vfio_check_iommu                                                    */

static void
test_iommu_ok(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_true(vfio_check_iommu(&error));
  g_assert_no_error(error);
}

static void
test_iommu_off_dmar(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  empty_iommu_groups(tree);
  fixture_write(tree->root, "sys/firmware/acpi/tables/DMAR", "");
  fixture_write(tree->root, "proc/cmdline", "BOOT_IMAGE=/vmlinuz quiet\n");
  g_assert_false(vfio_check_iommu(&error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "PCI devices cannot be assigned: the firmware describes an "
                        "Intel VT-d IOMMU (ACPI DMAR table), but the kernel has not "
                        "enabled it (/sys/kernel/iommu_groups is empty); add "
                        "intel_iommu=on to the kernel command line");
  g_clear_error(&error);

  fixture_write(tree->root, "proc/cmdline", "quiet intel_iommu=off\n");
  g_assert_false(vfio_check_iommu(&error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "remove intel_iommu=off / iommu=off from the kernel command line");
}

static void
test_iommu_off_ivrs(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  empty_iommu_groups(tree);
  fixture_write(tree->root, "sys/firmware/acpi/tables/IVRS", "");
  g_assert_false(vfio_check_iommu(&error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "the firmware describes an AMD-Vi IOMMU (ACPI IVRS table), "
                        "but the kernel has not enabled it");
}

static void
test_iommu_absent(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  empty_iommu_groups(tree);
  g_assert_false(vfio_check_iommu(&error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "the host has no IOMMU enabled (/sys/kernel/iommu_groups "
                        "is empty); enable VT-d (Intel) or AMD-Vi/IOMMU/SVM (AMD) "
                        "in the firmware setup");
}

static void
test_iommu_no_vfio_pci(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "sys/bus/pci/drivers/vfio-pci", NULL);
  g_autofree char *moved = g_build_filename(tree->root, "vfio-pci.away", NULL);

  g_assert_cmpint(rename(dir, moved), ==, 0);
  g_assert_false(vfio_check_iommu(&error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "the vfio-pci driver is not loaded (no "
                        "/sys/bus/pci/drivers/vfio-pci): run `modprobe vfio-pci`");
}

static void
test_iommu_no_type1(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "sys/module/vfio_iommu_type1", NULL);
  g_autofree char *moved = g_build_filename(tree->root, "type1.away", NULL);

  g_assert_cmpint(rename(dir, moved), ==, 0);
  g_assert_false(vfio_check_iommu(&error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "no VFIO IOMMU backend is loaded (neither vfio_iommu_type1 "
                        "nor iommufd), so QEMU would fail with 'No available IOMMU "
                        "models': run `modprobe vfio_iommu_type1`");
  g_clear_error(&error);
  fixture_mkdir(tree->root, "sys/module/iommufd");
  g_assert_true(vfio_check_iommu(&error));
  g_assert_no_error(error);
}

static void
test_iommu_no_interrupt_remapping(Tree *tree, gconstpointer data)
{
  const char *unsafe = "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
  g_autoptr(GError) error = NULL;

  /* bit 3 (IR) of the fixture's f00f4a cleared */
  fixture_write(tree->root, "sys/devices/virtual/iommu/dmar0/intel-iommu/ecap", "f00f42\n");
  g_assert_false(vfio_check_iommu(&error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "the host has no interrupt remapping, so VFIO refuses to "
                        "assign devices: without it a device (and the guest driving "
                        "it) can send arbitrary MSI interrupts to the host. Fix: the "
                        "IOMMU dmar0 cannot remap interrupts (its ecap f00f42 lacks "
                        "the IR bit)");
  g_assert_nonnull(strstr(error->message,
                          "echo 1 > /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"));
  g_clear_error(&error);

  fixture_write(tree->root, unsafe, "Y\n");
  g_assert_true(vfio_check_iommu(&error));
  g_assert_no_error(error);
}

static void
test_iommu_intremap_off(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_write(tree->root, "proc/cmdline", "intel_iommu=on intremap=off\n");
  g_assert_false(vfio_check_iommu(&error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "Fix: the kernel command line turns interrupt remapping off "
                        "(intremap=off); remove it");
}

/* ------------------------------------------------------------------ */
/* Group viability                                                     */

static void
test_viable(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  /* the VF alone in group 13; 05:00.0 with its sibling on vfio-pci */
  g_assert_true(vfio_group_check_viable(13, &nvme_vf, &error));
  g_assert_no_error(error);
  g_assert_true(vfio_group_check_viable(12, &mf_fn0, &error));
  g_assert_no_error(error);
  /* bridges are exempt: group 3 is a root port on pcieport */
  g_assert_true(vfio_group_check_viable(3, NULL, &error));
  g_assert_no_error(error);
}

static void
test_not_viable(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false(vfio_group_check_viable(11, &e1000_a, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "IOMMU group 11 of 0000:04:01.0 is not viable: the IOMMU "
                        "cannot isolate the devices of a group from each other, so "
                        "VFIO needs every other endpoint in it on vfio-pci or "
                        "pci-stub, or unbound. In the way: 0000:04:02.0 [8086:100e] "
                        "on driver e1000. Assign those devices to this VM too, detach "
                        "them from their drivers (`hostdevctl nodedev-detach "
                        "pci_0000_04_02_0`), allow hostdevd to take the whole group, "
                        "or move the card to a slot with its own IOMMU group");
  /* the bridge 03:00.0 is not named */
  g_assert_null(strstr(error->message, "0000:03:00.0"));
  g_clear_error(&error);

  g_assert_false(vfio_group_check_viable(12, &mf_fn1, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "In the way: 0000:05:00.0 [8086:10d3] on driver e1000e.");
  g_clear_error(&error);

  g_assert_false(vfio_group_check_viable(11, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "In the way: 0000:04:01.0 [8086:100e] on driver e1000, "
                        "0000:04:02.0 [8086:100e] on driver e1000.");
  g_clear_error(&error);

  g_assert_false(vfio_group_check_viable(99, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "cannot list the devices of IOMMU group 99");
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

static void
test_record_new(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) on_vfio = vfio_record_new(&mf_fn1, TRUE, &error);
  g_autoptr(VfioRecord) none = NULL;

  g_assert_no_error(error);
  g_assert_cmpint(on_vfio->group, ==, 12);
  g_assert_cmpstr(on_vfio->original_driver, ==, "vfio-pci");
  g_assert_cmpstr(on_vfio->original_override, ==, "vfio-pci");
  g_assert_true(vfio_record_is_clean(on_vfio));

  none = vfio_record_new(&missing, TRUE, &error);
  g_assert_null(none);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "PCI device 0000:09:00.0 does not exist on this host");
}

static JsonObject *
parse_object(const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) error = NULL;

  json_parser_load_from_data(parser, text, -1, &error);
  g_assert_no_error(error);
  return json_object_ref(json_node_get_object(json_parser_get_root(parser)));
}

static char *
object_to_text(JsonObject *object)
{
  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), object);

  return json_to_string(node, FALSE);
}

static void
test_record_json(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&e1000_a, TRUE, TRUE, (uid_t)-1, (gid_t)-1,
                                              NULL, &error);
  g_autoptr(JsonObject) json = NULL;
  g_autoptr(JsonObject) again = NULL;
  g_autoptr(VfioRecord) copy = NULL;
  g_autofree char *text = NULL;
  g_autofree char *text2 = NULL;

  g_assert_no_error(error);
  json = vfio_record_to_json(record);
  text = object_to_text(json);
  g_test_message("%s", text);
  g_assert_nonnull(strstr(text, "\"address\":\"0000:04:01.0\""));
  g_assert_nonnull(strstr(text, "\"original-driver\":\"e1000\""));
  g_assert_nonnull(strstr(text, "\"original-override\":null"));
  g_assert_nonnull(strstr(text, "\"bound-by-us\":true"));
  g_assert_nonnull(strstr(text, "\"address\":\"0000:04:02.0\"")); /* companion */

  copy = vfio_record_from_json(json, &error);
  g_assert_no_error(error);
  again = vfio_record_to_json(copy);
  text2 = object_to_text(again);
  g_assert_cmpstr(text, ==, text2);

  /* what the journal holds is enough to undo: both back on e1000 */
  g_assert_true(vfio_undo(copy, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000_a, "e1000", "(null)");
  assert_on(tree, &e1000_b, "e1000", "(null)");
}

static void
test_record_json_bad(Tree *tree, gconstpointer data)
{
  static const struct {
    const char *json;
    const char *message;
  } cases[] = {
    { "{\"address\": \"0000:01:20.0\"}", "slot must be 0x00..0x1f" },
    { "{\"address\": 7}", "member 'address' must be a PCI address string" },
    { "{\"address\": \"0000:01:00.0\", \"group\": -1}", "member 'group' is out of range" },
    { "{\"address\": \"0000:01:00.0\", \"group\": 9, \"managed\": true, "
      "\"original-driver\": \"../e1000e\", \"original-override\": null}",
      "member 'original-driver' is not a driver name" },
    { "{\"address\": \"0000:01:00.0\", \"group\": 9, \"managed\": true, "
      "\"original-driver\": \"e1000e\", \"original-override\": null}",
      "member 'steps' must be an object" },
    { "{\"address\": \"0000:01:00.0\", \"group\": 9, \"managed\": true, "
      "\"original-driver\": \"e1000e\", \"original-override\": null, "
      "\"steps\": {\"override-written\": true, \"unbound\": true, \"probed\": true, "
      "\"bound-by-us\": true}, \"node\": {\"chowned-by-us\": true, \"uid-before\": -5, "
      "\"gid-before\": 0, \"mode-before\": 384}, \"companions\": []}",
      "member 'uid-before' is out of range" },
    { "{\"address\": \"0000:01:00.0\", \"group\": 9, \"managed\": true, "
      "\"original-driver\": \"e1000e\", \"original-override\": null, "
      "\"steps\": {\"override-written\": true, \"unbound\": true, \"probed\": true, "
      "\"bound-by-us\": true}, \"node\": {\"chowned-by-us\": true, \"uid-before\": 0, "
      "\"gid-before\": 0, \"mode-before\": 384}, \"companions\": [1]}",
      "member 'companions' must hold objects" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(JsonObject) object = parse_object(cases[i].json);
    g_autoptr(GError) error = NULL;
    g_autoptr(VfioRecord) record = vfio_record_from_json(object, &error);

    g_assert_null(record);
    assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, cases[i].message);
  }
}

/* ------------------------------------------------------------------ */
/* Managed binding                                                     */

static gboolean
running_as_root(void)
{
  return geteuid() == 0;
}

static void
test_prepare_and_undo(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = NULL;
  g_autofree char *log = NULL;
  uid_t uid = running_as_root() ? 4242 : getuid();
  gid_t gid = running_as_root() ? 4243 : getgid();
  g_autofree char *node = g_build_filename(tree->root, "dev/vfio/9", NULL);
  struct stat st;

  g_assert_false(fixture_exists(tree->root, "dev/vfio/9"));
  record = vfio_prepare(&e1000e, TRUE, FALSE, uid, gid, NULL, &error);
  g_assert_no_error(error);
  g_assert_nonnull(record);
  assert_on(tree, &e1000e, "vfio-pci", "vfio-pci");
  g_assert_cmpint(stat(node, &st), ==, 0);
  g_assert_cmpuint(st.st_uid, ==, uid);
  g_assert_cmpuint(st.st_gid, ==, gid);
  g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
  g_assert_cmpstr(record->original_driver, ==, "e1000e");
  g_assert_null(record->original_override);
  g_assert_true(record->override_written && record->unbound && record->probed &&
                record->bound_by_us);

  /* the kernel's documented sequence, in order */
  log = fake_kernel_log(tree->fake);
  g_test_message("%s", log);
  g_assert_nonnull(strstr(log,
    "write sys/bus/pci/devices/0000:01:00.0/driver_override vfio-pci\n"
    "write sys/bus/pci/drivers/e1000e/unbind 0000:01:00.0\n"
    "write sys/bus/pci/drivers_probe 0000:01:00.0\n"));

  g_assert_true(vfio_undo(record, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000e, "e1000e", "(null)");
  g_assert_false(fixture_exists(tree->root, "dev/vfio/9"));
  g_assert_true(vfio_record_is_clean(record));
}

static void
test_prepare_unmanaged(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = NULL;

  record = vfio_prepare(&e1000e, FALSE, FALSE, (uid_t)-1, (gid_t)-1, NULL, &error);
  g_assert_null(record);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "PCI device 0000:01:00.0 is bound to driver 'e1000e', not "
                        "vfio-pci, and managed='no' forbids hostdevd to rebind it: "
                        "use managed='yes', or bind it first with "
                        "`hostdevctl nodedev-detach pci_0000_01_00_0`; nothing was "
                        "changed: the device is on its driver e1000e");
  g_clear_error(&error);
  assert_on(tree, &e1000e, "e1000e", "(null)");

  record = vfio_prepare(&nvme_vf, FALSE, FALSE, (uid_t)-1, (gid_t)-1, NULL, &error);
  g_assert_null(record);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "PCI device 0000:02:00.1 is not bound to any driver, and "
                        "managed='no' needs it on vfio-pci: use managed='yes', or "
                        "bind it first with `hostdevctl nodedev-detach pci_0000_02_00_1`; "
                        "nothing was changed: the device is unbound");
  g_clear_error(&error);

  /* on vfio-pci, but its group is not viable: refused before anything */
  record = vfio_prepare(&mf_fn1, FALSE, FALSE, (uid_t)-1, (gid_t)-1, NULL, &error);
  g_assert_null(record);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "IOMMU group 12 of 0000:05:00.1 is not viable");
  assert_on(tree, &mf_fn0, "e1000e", "(null)");
}

/* The unbound VF: bound, then given back unbound (no probe on undo). */
static void
test_prepare_unbound(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&nvme_vf, TRUE, FALSE, (uid_t)-1, (gid_t)-1,
                                              NULL, &error);

  g_assert_no_error(error);
  assert_on(tree, &nvme_vf, "vfio-pci", "vfio-pci");
  g_assert_true(fixture_exists(tree->root, "dev/vfio/13"));
  g_assert_false(record->unbound);
  g_assert_true(vfio_undo(record, &error));
  g_assert_no_error(error);
  assert_on(tree, &nvme_vf, NULL, "(null)");
  g_assert_false(fixture_exists(tree->root, "dev/vfio/13"));
}

static void
test_whole_group(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = NULL;

  /* without the switch: refused, nothing touched */
  record = vfio_prepare(&e1000_a, TRUE, FALSE, (uid_t)-1, (gid_t)-1, NULL, &error);
  g_assert_null(record);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "IOMMU group 11 of 0000:04:01.0 is not viable");
  g_clear_error(&error);
  assert_on(tree, &e1000_a, "e1000", "(null)");
  assert_on(tree, &e1000_b, "e1000", "(null)");

  record = vfio_prepare(&e1000_a, TRUE, TRUE, (uid_t)-1, (gid_t)-1, NULL, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(record->companions->len, ==, 1);
  assert_on(tree, &e1000_a, "vfio-pci", "vfio-pci");
  assert_on(tree, &e1000_b, "vfio-pci", "vfio-pci");
  g_assert_true(fixture_exists(tree->root, "dev/vfio/11"));

  g_assert_true(vfio_undo(record, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000_a, "e1000", "(null)");
  assert_on(tree, &e1000_b, "e1000", "(null)");
  g_assert_false(fixture_exists(tree->root, "dev/vfio/11"));
}

/* A companion that fails to bind: the device and every companion go back. */
static void
test_whole_group_failure(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = NULL;

  fake_kernel_fail_write(tree->fake, "drivers/e1000/unbind", EIO);
  record = vfio_prepare(&e1000_a, TRUE, TRUE, (uid_t)-1, (gid_t)-1, NULL, &error);
  g_assert_null(record);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "taking the whole IOMMU group 11 failed: cannot unbind from "
                        "driver e1000 PCI device 0000:04:02.0");
  assert_on(tree, &e1000_a, "e1000", "(null)");
  assert_on(tree, &e1000_b, "e1000", "(null)");
}

/* Failure injection at each step of the managed binding. */
typedef struct {
  const char *name;
  void (*inject)(FakeKernel *fake);
  const char *message;
} Injection;

static void inject_override(FakeKernel *f) { fake_kernel_fail_write(f, "0000:01:00.0/driver_override", EACCES); }
static void inject_unbind(FakeKernel *f) { fake_kernel_fail_write(f, "drivers/e1000e/unbind", EBUSY); }
static void inject_probe_write(FakeKernel *f) { fake_kernel_fail_write(f, "drivers_probe", EINVAL); }
static void inject_probe_nothing(FakeKernel *f) { fake_kernel_set_probe_mode(f, FAKE_PROBE_NOTHING); }
static void inject_probe_other(FakeKernel *f) { fake_kernel_set_probe_mode(f, FAKE_PROBE_OTHER); }
static void inject_no_node(FakeKernel *f) { fake_kernel_set_vfio_node(f, TRUE, 0); }
static void inject_chown(FakeKernel *f) { fake_kernel_fail_chown(f, EPERM); }
static void inject_chmod(FakeKernel *f) { fake_kernel_fail_chmod(f, EROFS); }

static const Injection injections[] = {
  { "override", inject_override,
    "cannot set driver_override=vfio-pci on PCI device 0000:01:00.0: writing "
    "'vfio-pci' to /sys/bus/pci/devices/0000:01:00.0/driver_override failed: "
    "Permission denied; hostdevd may not write sysfs attributes: they belong to "
    "root, so it must run as uid 0" },
  { "unbind", inject_unbind,
    "cannot unbind from driver e1000e PCI device 0000:01:00.0: writing "
    "'0000:01:00.0' to /sys/bus/pci/drivers/e1000e/unbind failed: Device or "
    "resource busy; the kernel refused it because the device is busy: a process "
    "(a VM's QEMU) still holds it" },
  { "probe-write", inject_probe_write,
    "cannot probe drivers for PCI device 0000:01:00.0: writing '0000:01:00.0' to "
    "/sys/bus/pci/drivers_probe failed: Invalid argument; the kernel refused it for "
    "this device: its IOMMU group is probably still in use" },
  { "probe-nothing", inject_probe_nothing,
    "vfio-pci did not take PCI device 0000:01:00.0 within 200 ms (it stayed "
    "unbound): is vfio-pci loaded (`modprobe vfio-pci`)?" },
  { "probe-other", inject_probe_other,
    "PCI device 0000:01:00.0 went to driver 'pci-stub' instead of vfio-pci after "
    "drivers_probe" },
  { "no-node", inject_no_node,
    "PCI device 0000:01:00.0 is on vfio-pci, but /dev/vfio/9 (its IOMMU group) "
    "did not appear within 200 ms: check that devtmpfs is mounted on /dev" },
  { "chown", inject_chown,
    "cannot give QEMU (uid 4242, gid 4243) access to /dev/vfio/9: cannot change "
    "the owner of /dev/vfio/9 to 4242:4243: Operation not permitted; hostdevd "
    "needs CAP_CHOWN and CAP_FOWNER" },
  { "chmod", inject_chmod,
    "cannot give QEMU (uid 4242, gid 4243) access to /dev/vfio/9: cannot change "
    "the mode of /dev/vfio/9 to 0600: Read-only file system; /dev is read-only" },
};

static void
run_injection(Tree *tree, const Injection *injection, const char *original_override)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = NULL;
  g_autofree char *log = NULL;
  g_autofree char *expected_tail = NULL;

  if (original_override != NULL) {
    /* an override someone set before: it must read back the same */
    g_autofree char *text = g_strdup_printf("%s\n", original_override);
    fixture_write(tree->root, E1000E_DIR "/driver_override", text);
  }
  injection->inject(tree->fake);
  record = vfio_prepare(&e1000e, TRUE, FALSE, 4242, 4243, NULL, &error);
  g_assert_null(record);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR, injection->message);
  expected_tail = g_strdup("; nothing was changed: the device is on its driver e1000e");
  g_assert_true(g_str_has_suffix(error->message, expected_tail));
  assert_on(tree, &e1000e, "e1000e", original_override ? original_override : "(null)");
  g_assert_false(fixture_exists(tree->root, "dev/vfio/9"));
  log = fake_kernel_log(tree->fake);
  g_test_message("%s", log);
}

static void
test_injection(Tree *tree, gconstpointer data)
{
  run_injection(tree, data, NULL);
}

static void
test_injection_with_override(Tree *tree, gconstpointer data)
{
  run_injection(tree, data, "e1000e");
}

/* The node appears late (udev): the bounded wait covers it. */
static void
test_node_late(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = NULL;

  /* the node comes after 60 ms; hostdevd's own bound (5 s), not the tests'
   * 200 ms, so that a loaded machine cannot make the late node a missing one */
  vfio_set_wait_ms(VFIO_DEFAULT_WAIT_MS);
  fake_kernel_set_vfio_node(tree->fake, FALSE, 60);
  record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1, (gid_t)-1, NULL, &error);
  g_assert_no_error(error);
  g_assert_true(fixture_exists(tree->root, "dev/vfio/9"));
  g_assert_true(vfio_undo(record, &error));
  g_assert_no_error(error);
}

/* Undo that fails half-way can be run again and finishes the rest. */
static void
test_undo_retry(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1,
                                              (gid_t)-1, NULL, &error);

  g_assert_no_error(error);
  fake_kernel_fail_write(tree->fake, "drivers_probe", ENODEV);
  g_assert_false(vfio_undo(record, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "cannot probe drivers for PCI device 0000:01:00.0");
  g_clear_error(&error);
  assert_on(tree, &e1000e, NULL, "(null)");
  g_assert_false(record->override_written);
  g_assert_true(record->unbound);

  g_assert_true(vfio_undo(record, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000e, "e1000e", "(null)");

  /* a driver that does not come back: named, with the remedy */
  record->unbound = TRUE;
  {
    g_autofree char *link = g_strdup(E1000E_DIR "/driver");
    fixture_unlink(tree->root, link);
    fixture_unlink(tree->root, "sys/bus/pci/drivers/e1000e/0000:01:00.0");
  }
  fake_kernel_set_probe_mode(tree->fake, FAKE_PROBE_NOTHING);
  g_assert_false(vfio_undo(record, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "PCI device 0000:01:00.0 did not return to its driver e1000e "
                        "within 200 ms (it is unbound): load the driver (`modprobe "
                        "e1000e`) or bind it by hand: echo 0000:01:00.0 > "
                        "/sys/bus/pci/drivers/e1000e/bind");
}

/* Ownership: the second device of a group inherits the first one's
 * "before", so whichever leaves last restores the original owner. */
static void
test_sibling_ownership(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) first = NULL;
  g_autoptr(VfioRecord) second = NULL;
  g_autofree char *node = g_build_filename(tree->root, "dev/vfio/12", NULL);
  uid_t uid = running_as_root() ? 4242 : getuid();
  gid_t gid = running_as_root() ? 4243 : getgid();
  struct stat before, after;

  g_assert_cmpint(stat(node, &before), ==, 0);
  g_assert_cmpint(chmod(node, 0640), ==, 0);
  first = vfio_prepare(&mf_fn0, TRUE, FALSE, uid, gid, NULL, &error);
  g_assert_no_error(error);
  g_assert_true(first->chowned_by_us);
  g_assert_cmpuint(first->node_mode_before, ==, 0640);

  second = vfio_prepare(&mf_fn1, TRUE, FALSE, uid, gid, first, &error);
  g_assert_no_error(error);
  g_assert_true(second->chowned_by_us);
  g_assert_cmpuint(second->node_uid_before, ==, before.st_uid);
  g_assert_cmpuint(second->node_mode_before, ==, 0640);
  g_assert_false(second->bound_by_us); /* it was on vfio-pci already */

  /* the first leaves first; the second, last, restores the original */
  g_assert_true(vfio_undo(first, &error));
  g_assert_no_error(error);
  g_assert_true(vfio_undo(second, &error));
  g_assert_no_error(error);
  g_assert_cmpint(stat(node, &after), ==, 0);
  g_assert_cmpuint(after.st_uid, ==, before.st_uid);
  g_assert_cmpuint(after.st_gid, ==, before.st_gid);
  g_assert_cmpuint(after.st_mode & 07777, ==, 0640);
  assert_on(tree, &mf_fn0, "e1000e", "(null)");
  assert_on(tree, &mf_fn1, "vfio-pci", "vfio-pci");
}

/* ------------------------------------------------------------------ */
/* Giving back in a worker thread                                      */

typedef struct {
  GMainLoop *loop;
  gboolean done;
  GError *error;
  gboolean late_done;
  GError *late_error;
  guint ticks;
} Wait;

static void
on_restored(GObject *source, GAsyncResult *result, gpointer data)
{
  Wait *wait = data;

  vfio_restore_finish(result, &wait->error);
  wait->done = TRUE;
  g_main_loop_quit(wait->loop);
}

static void
on_late(VfioRecord *record, const GError *error, gpointer data)
{
  Wait *wait = data;

  wait->late_done = TRUE;
  wait->late_error = error ? g_error_copy(error) : NULL;
  g_main_loop_quit(wait->loop);
}

static gboolean
on_tick(gpointer data)
{
  Wait *wait = data;

  wait->ticks++;
  return G_SOURCE_CONTINUE;
}

static void
test_restore_async(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1,
                                              (gid_t)-1, NULL, &error);
  Wait wait = { g_main_loop_new(NULL, FALSE) };

  g_assert_no_error(error);
  vfio_restore_async(record, 5000, NULL, on_late, &wait, NULL, on_restored, &wait);
  g_main_loop_run(wait.loop);
  g_assert_true(wait.done);
  g_assert_no_error(wait.error);
  g_assert_false(wait.late_done);
  assert_on(tree, &e1000e, "e1000e", "(null)");
  g_main_loop_unref(wait.loop);
}

/* QEMU still holds the device: the kernel blocks the unbind.  The main
 * loop keeps running, the caller gets Timeout, and the restore finishes
 * when QEMU lets go. */
static void
test_restore_held(Tree *tree, gconstpointer data)
{
  gboolean cancel = GPOINTER_TO_INT(data);
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1,
                                              (gid_t)-1, NULL, &error);
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  Wait wait = { g_main_loop_new(NULL, FALSE) };
  guint tick;

  g_assert_no_error(error);
  fake_kernel_hold_vfio(tree->fake);
  tick = g_timeout_add(10, on_tick, &wait);
  /* the worker must reach the held unbind before the timeout: 2 s is for a slow
   * (ASan, loaded) run; the message must then name the held unbind */
  vfio_restore_async(record, cancel ? 60000 : 2000, NULL, on_late, &wait, cancellable,
                     on_restored, &wait);
  if (cancel) {
    while (!fake_kernel_unbind_blocked(tree->fake))
      g_main_context_iteration(NULL, TRUE);
    g_cancellable_cancel(cancellable);
  }
  g_main_loop_run(wait.loop);
  g_assert_true(wait.done);
  if (!cancel)
    g_assert_cmpuint(wait.ticks, >, 2); /* the main loop was never blocked */
  g_assert_true(fake_kernel_unbind_blocked(tree->fake));
  assert_hostdevd_error(wait.error, HOSTDEVD_ERROR_TIMEOUT,
                        cancel ? "PCI device 0000:01:00.0 is still held by QEMU: the "
                                 "kernel keeps its unbind from vfio-pci waiting (the "
                                 "wait was cancelled)"
                               : "PCI device 0000:01:00.0 is still held by QEMU: the "
                                 "kernel keeps its unbind from vfio-pci waiting (more "
                                 "than 2000 ms so far). The device goes back to the host "
                                 "as soon as QEMU releases it");
  assert_on(tree, &e1000e, "vfio-pci", "(null)");

  fake_kernel_release_vfio(tree->fake);
  /* the late outcome may already have come while the loop above ended */
  while (!wait.late_done)
    g_main_context_iteration(NULL, TRUE);
  g_assert_true(wait.late_done);
  g_assert_no_error(wait.late_error);
  assert_on(tree, &e1000e, "e1000e", "(null)");
  g_source_remove(tick);
  g_clear_error(&wait.error);
  g_main_loop_unref(wait.loop);
}

static void
test_restore_async_error(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1,
                                              (gid_t)-1, NULL, &error);
  Wait wait = { g_main_loop_new(NULL, FALSE) };

  g_assert_no_error(error);
  fake_kernel_fail_write(tree->fake, "0000:01:00.0/driver_override", EIO);
  vfio_restore_async(record, 5000, NULL, NULL, NULL, NULL, on_restored, &wait);
  g_main_loop_run(wait.loop);
  assert_hostdevd_error(wait.error, HOSTDEVD_ERROR_HOST_ERROR,
                        "cannot restore driver_override of PCI device 0000:01:00.0");
  g_clear_error(&wait.error);
  g_main_loop_unref(wait.loop);
}

/* ------------------------------------------------------------------ */
/* nodedev-detach / nodedev-reattach                                    */

static void
test_detach_reattach(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_detach_from_host(&e1000e, &error);
  g_autofree char *driver = NULL;

  g_assert_no_error(error);
  assert_on(tree, &e1000e, "vfio-pci", "vfio-pci");

  fake_kernel_hold_vfio(tree->fake);
  /* 2 s for the worker to reach the held unbind, on a slow (ASan, loaded) run */
  g_assert_false(vfio_reattach_to_host(&e1000e, 2000, &driver, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_TIMEOUT,
                        "PCI device 0000:01:00.0 is still held by a QEMU process");
  g_clear_error(&error);
  fake_kernel_release_vfio(tree->fake);
  /* the abandoned worker finishes once released (bounded: 60 s, a slow run) */
  for (int i = 0; i < 12000 && !fixture_exists(tree->root, E1000E_DIR "/driver"); i++)
    g_usleep(5000);
  for (int i = 0; i < 12000; i++) {
    g_autofree char *now = driver_of(tree, &e1000e);
    if (g_strcmp0(now, "e1000e") == 0)
      break;
    g_usleep(5000);
  }
  assert_on(tree, &e1000e, "e1000e", "(null)");

  g_assert_true(vfio_reattach_to_host(&e1000e, 30000, &driver, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(driver, ==, "e1000e");
  g_clear_pointer(&driver, g_free);

  /* 05:00.1 was set up by hand with driver_override=vfio-pci */
  g_assert_true(vfio_reattach_to_host(&mf_fn1, 30000, &driver, &error));
  g_assert_no_error(error);
  assert_on(tree, &mf_fn1, NULL, "(null)"); /* its native driver is vfio-pci */
}

/* ------------------------------------------------------------------ */
/* Issue 16: journaled before the effect, QEMU's exit, honest messages */

/* Return: how many lines of the fake kernel's log contain @what. */
static guint
log_count(Tree *tree, const char *what)
{
  g_autofree char *log = fake_kernel_log(tree->fake);
  guint n = 0;

  for (const char *p = strstr(log, what); p != NULL; p = strstr(p + 1, what))
    n++;
  return n;
}

/* Defect 6: whole-group takeover is planned, touching nothing, so the
 * journal holds the companions before any is bound; the binding then
 * binds exactly those. */
static void
test_plan_group(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_record_new(&e1000_a, TRUE, &error);
  g_autoptr(VfioRecord) worst = NULL;
  g_autoptr(VfioRecord) journaled = NULL;
  g_autoptr(JsonObject) json = NULL;
  g_autofree char *log = NULL;
  VfioRecord *companion;

  g_assert_no_error(error);
  g_assert_true(vfio_record_plan_group(record, TRUE, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(record->companions->len, ==, 1);
  companion = record->companions->pdata[0];
  g_assert_cmpint(pci_address_compare(&companion->addr, &e1000_b), ==, 0);
  g_assert_cmpstr(companion->original_driver, ==, "e1000");
  g_assert_null(companion->original_override);
  g_assert_true(vfio_record_is_clean(record));
  /* nothing written: the kernel saw nothing */
  log = fake_kernel_log(tree->fake);
  g_assert_cmpstr(log, ==, "");
  assert_on(tree, &e1000_b, "e1000", "(null)");
  /* planning again plans nothing more */
  g_assert_true(vfio_record_plan_group(record, TRUE, &error));
  g_assert_cmpuint(record->companions->len, ==, 1);

  /* what the journal gets while binding runs undoes the companion too */
  worst = vfio_record_worst_case(record);
  json = vfio_record_to_json(worst);
  journaled = vfio_record_from_json(json, &error);
  g_assert_no_error(error);
  g_assert_true(((VfioRecord *)journaled->companions->pdata[0])->override_written);

  g_assert_true(vfio_step_take_group(record, TRUE, &error) && vfio_step_bind(record, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000_a, "vfio-pci", "vfio-pci");
  assert_on(tree, &e1000_b, "vfio-pci", "vfio-pci");
  g_assert_cmpuint(record->companions->len, ==, 1);

  /* "hostdevd died" mid-binding: the journaled record gives both back */
  g_assert_true(vfio_undo(journaled, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000_a, "e1000", "(null)");
  assert_on(tree, &e1000_b, "e1000", "(null)");
}

/* The group changed between the plan (journaled) and the binding:
 * refused, nothing bound. */
static void
test_plan_group_changed(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_record_new(&e1000_a, TRUE, &error);

  g_assert_true(vfio_record_plan_group(record, TRUE, &error));
  /* meanwhile someone moved the companion to another driver */
  fixture_link(tree->root, "sys/bus/pci/devices/0000:04:02.0/driver", "../../../bus/pci/drivers/igb");
  g_assert_false(vfio_step_take_group(record, TRUE, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "IOMMU group 11 changed since hostdevd planned to take it whole: "
                        "0000:04:02.0 is now on driver igb, planned on driver e1000; nothing "
                        "of the group was bound, try again");
  g_clear_error(&error);
  assert_on(tree, &e1000_a, "e1000", "(null)");
  g_assert_true(vfio_record_is_clean(record));

  /* a group planned viable that is not any more: the viability error */
  g_clear_pointer(&record, vfio_record_unref);
  fixture_link(tree->root, "sys/bus/pci/devices/0000:04:02.0/driver", "../../../bus/pci/drivers/vfio-pci");
  record = vfio_record_new(&e1000_a, TRUE, &error);
  g_assert_true(vfio_record_plan_group(record, FALSE, &error));
  g_assert_cmpuint(record->companions->len, ==, 0);
  fixture_link(tree->root, "sys/bus/pci/devices/0000:04:02.0/driver", "../../../bus/pci/drivers/e1000");
  g_assert_false(vfio_step_take_group(record, FALSE, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR, "IOMMU group 11 of 0000:04:01.0 is not viable");
  g_assert_cmpuint(log_count(tree, "write"), ==, 0);
}

/* Defect 6: /dev/vfio/N's owner before the chown is in the record from
 * the start when the node exists (managed='no', or a group in use), so
 * the journal written before the chown can give it back. */
static void
test_node_owner_planned(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *node = g_build_filename(tree->root, "dev/vfio/12", NULL);
  g_autoptr(VfioRecord) record = NULL;
  g_autoptr(VfioRecord) worst = NULL;
  g_autoptr(VfioRecord) journaled = NULL;
  g_autoptr(VfioRecord) old = NULL;
  g_autoptr(JsonObject) json = NULL;
  g_autoptr(JsonNode) old_node = NULL;
  uid_t uid = running_as_root() ? 4242 : getuid();
  gid_t gid = running_as_root() ? 4243 : getgid();
  struct stat before, after;

  g_assert_cmpint(chmod(node, 0640), ==, 0);
  g_assert_cmpint(stat(node, &before), ==, 0);
  record = vfio_record_new(&mf_fn1, FALSE, &error); /* managed='no', on vfio-pci */
  g_assert_no_error(error);
  g_assert_true(record->node_before_known);
  g_assert_cmpuint(record->node_uid_before, ==, before.st_uid);
  g_assert_cmpuint(record->node_mode_before, ==, 0640);

  /* the journal before the chown */
  worst = vfio_record_worst_case(record);
  g_assert_true(worst->chowned_by_us);
  g_assert_false(worst->override_written); /* managed='no': no binding to undo */
  json = vfio_record_to_json(worst);
  journaled = vfio_record_from_json(json, &error);
  g_assert_no_error(error);
  g_assert_true(journaled->node_before_known);
  g_assert_cmpuint(journaled->node_mode_before, ==, 0640);

  g_assert_true(vfio_step_bind(record, &error) && vfio_step_wait_node(record, &error) &&
                vfio_step_chown(record, uid, gid, NULL, &error));
  g_assert_no_error(error);
  g_assert_cmpint(stat(node, &after), ==, 0);
  g_assert_cmpuint(after.st_mode & 07777, ==, 0600);

  /* "hostdevd died" right after the chown: the journal gives the node back */
  g_assert_true(vfio_undo(journaled, &error));
  g_assert_no_error(error);
  g_assert_cmpint(stat(node, &after), ==, 0);
  g_assert_cmpuint(after.st_uid, ==, before.st_uid);
  g_assert_cmpuint(after.st_mode & 07777, ==, 0640);
  assert_on(tree, &mf_fn1, "vfio-pci", "vfio-pci");

  /* a record of an older broker (no "before-known") still loads */
  old_node = json_from_string("{\"address\": \"0000:05:00.1\", \"group\": 12, \"managed\": false, "
                              "\"original-driver\": \"vfio-pci\", \"original-override\": null, "
                              "\"steps\": {\"override-written\": false, \"unbound\": false, "
                              "\"probed\": false, \"bound-by-us\": false}, \"node\": "
                              "{\"chowned-by-us\": true, \"uid-before\": 0, \"gid-before\": 0, "
                              "\"mode-before\": 384}, \"companions\": []}", &error);
  g_assert_no_error(error);
  old = vfio_record_from_json(json_node_get_object(old_node), &error);
  g_assert_no_error(error);
  g_assert_true(old->node_before_known);
}

/* Defect 13: the hint matches the errno: the rights for EROFS/EACCES/EPERM,
 * the kernel's refusal for EINVAL/EBUSY/ENODEV; none names CAP_SYS_ADMIN,
 * which hostdevd does not need (and the sandbox drops). */
static void
test_write_hints(Tree *tree, gconstpointer data)
{
  static const struct {
    int err;
    const char *hint;
  } cases[] = {
    { EROFS, "/sys is read-only for hostdevd (under systemd, ProtectKernelTunables=yes "
             "mounts it so: hostdevd's unit must not set it)" },
    { EACCES, "hostdevd may not write sysfs attributes: they belong to root" },
    { EPERM, "the write was denied (a security module such as SELinux or AppArmor, or "
             "kernel lockdown)" },
    { EINVAL, "the kernel refused it for this device: its IOMMU group is probably still "
              "in use" },
    { EBUSY, "the kernel refused it because the device is busy" },
    { ENODEV, "the kernel refused it: the device is gone or not bound to that driver" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(VfioRecord) record = NULL;

    fake_kernel_fail_write(tree->fake, "0000:01:00.0/driver_override", cases[i].err);
    record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1, (gid_t)-1, NULL, &error);
    g_assert_null(record);
    assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR, cases[i].hint);
    g_assert_null(strstr(error->message, "CAP_SYS_ADMIN"));
  }
}

/* Defect 7: a drivers_probe the kernel refuses (EINVAL: the group not
 * given back yet) is retried within the bound. */
static void
test_probe_retried(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1, (gid_t)-1,
                                              NULL, &error);

  g_assert_no_error(error);
  fake_kernel_fail_write(tree->fake, "drivers_probe", EINVAL);
  g_assert_true(vfio_undo(record, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000e, "e1000e", "(null)");
  g_assert_cmpuint(log_count(tree, "write sys/bus/pci/drivers_probe"), ==, 3);
}

/* Return: the pid of a child that sleeps until killed: "QEMU". */
static pid_t
live_child(void)
{
  pid_t pid = fork();

  g_assert_cmpint(pid, >=, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(STDOUT_FILENO);
    close(STDERR_FILENO);
    for (;;)
      pause();
  }
  return pid;
}

static gboolean
kill_child_later(gpointer data)
{
  pid_t pid = GPOINTER_TO_INT(data);

  kill(pid, SIGKILL);
  g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
  return G_SOURCE_REMOVE;
}

/*
 * Defect 7: QEMU exits holding the device.  The kernel ends the unbind
 * when QEMU's device fd closes, but gives the group back (guest memory
 * unpinned, DMA ownership dropped) only as the process ends: a probe
 * before that fails with EINVAL.  With the exiting QEMU named, the host
 * driver is probed once the process is gone, with a pidfd or by /proc.
 */
static void
test_release_after_qemu_exit(Tree *tree, gconstpointer data)
{
  gboolean pidfd = GPOINTER_TO_INT(data);
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1,
                                              (gid_t)-1, NULL, &error);
  Wait wait = { g_main_loop_new(NULL, FALSE) };
  pid_t qemu = live_child();
  HostReleaseWait exiting = { qemu, process_start_time(qemu), 5000 };

  g_assert_no_error(error);
  vfio_set_use_pidfd(pidfd);
  fake_kernel_set_group_owner(tree->fake, 9, qemu);
  fake_kernel_hold_vfio(tree->fake);
  vfio_restore_async(record, 10000, &exiting, on_late, &wait, NULL, on_restored, &wait);
  while (!fake_kernel_unbind_blocked(tree->fake))
    g_main_context_iteration(NULL, FALSE);
  /* QEMU closes the device as it exits; the process ends a little later */
  fake_kernel_release_vfio(tree->fake);
  g_timeout_add(200, kill_child_later, GINT_TO_POINTER(qemu));
  g_main_loop_run(wait.loop);
  g_assert_true(wait.done);
  g_assert_no_error(wait.error);
  assert_on(tree, &e1000e, "e1000e", "(null)");
  /* one probe to bind, one to give back: none too early */
  g_assert_cmpuint(log_count(tree, "write sys/bus/pci/drivers_probe"), ==, 2);
  g_main_loop_unref(wait.loop);
}

/* Defect 9: a timed-out release names the slow step. */
static void
test_restore_timeout_names_step(Tree *tree, gconstpointer data)
{
  gboolean slow_probe = GPOINTER_TO_INT(data);
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_prepare(&e1000e, TRUE, FALSE, (uid_t)-1,
                                              (gid_t)-1, NULL, &error);
  Wait wait = { g_main_loop_new(NULL, FALSE) };
  pid_t qemu = 0;
  HostReleaseWait exiting = { 0 };
  g_autofree char *expected = NULL;

  g_assert_no_error(error);
  if (slow_probe) {
    /* longer than the restore's timeout, whenever the probe starts */
    fake_kernel_set_probe_delay(tree->fake, 4000);
    expected = g_strdup("PCI device 0000:01:00.0 is off vfio-pci and QEMU has let go of it, "
                        "but its host driver e1000e has not taken it back yet (more than "
                        "2000 ms so far): the driver's probe is slow");
  } else {
    qemu = live_child();
    exiting = (HostReleaseWait){ qemu, process_start_time(qemu), 5000 };
    fake_kernel_set_group_owner(tree->fake, 9, qemu);
    expected = g_strdup_printf("PCI device 0000:01:00.0 is off vfio-pci, but QEMU (pid %d) "
                               "is still exiting (more than 2000 ms so far): the kernel gives "
                               "its IOMMU group back only once QEMU's guest memory is "
                               "unpinned", qemu);
  }
  /* 2 s for the worker to get to the slow step on a slow (ASan, loaded) run: the
   * message must name that step, not one before it */
  vfio_restore_async(record, 2000, slow_probe ? NULL : &exiting, on_late, &wait, NULL,
                     on_restored, &wait);
  g_main_loop_run(wait.loop);
  g_assert_true(wait.done);
  assert_hostdevd_error(wait.error, HOSTDEVD_ERROR_TIMEOUT, expected);
  g_assert_null(strstr(wait.error->message, "still held by QEMU"));
  if (!slow_probe)
    kill_child_later(GINT_TO_POINTER(qemu));
  /* it finishes late, and says so */
  /* the late outcome may already have come while the loop above ended */
  while (!wait.late_done)
    g_main_context_iteration(NULL, TRUE);
  g_assert_true(wait.late_done);
  g_assert_no_error(wait.late_error);
  assert_on(tree, &e1000e, "e1000e", "(null)");
  g_clear_error(&wait.error);
  g_main_loop_unref(wait.loop);
}

/* Defect 14: nodedev-detach binds one function of a group whose other
 * endpoint stays on its host driver, as virsh does. */
static void
test_detach_one_function(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = vfio_detach_from_host(&e1000_a, &error);

  g_assert_no_error(error);
  assert_on(tree, &e1000_a, "vfio-pci", "vfio-pci");
  assert_on(tree, &e1000_b, "e1000", "(null)");
  g_assert_cmpuint(record->companions->len, ==, 0);
  /* the group is not viable yet: an attach still says so */
  g_assert_false(vfio_group_check_viable(11, &e1000_a, &error));
  g_assert_nonnull(error);
}

/* ------------------------------------------------------------------ */
/* Issue 16: a failed nodedev-reattach puts the device back             */

#define MF_FN1_OVERRIDE "sys/bus/pci/devices/0000:05:00.1/driver_override"

/*
 * VM3 holds 0000:05:00.0; 0000:05:00.1, in the same IOMMU group 12, sits
 * on vfio-pci unclaimed.  Its host driver's probe is refused (QEMU owns
 * the group's DMA): the device goes back on vfio-pci with the
 * driver_override it had (vfio-pci, or none), not left driverless.
 */
static void
test_reattach_refused_put_back(Tree *tree, gconstpointer data)
{
  gboolean no_override = GPOINTER_TO_INT(data);
  g_autoptr(GError) error = NULL;
  g_autofree char *driver = NULL;
  pid_t qemu = live_child();

  if (no_override)
    fixture_write(tree->root, MF_FN1_OVERRIDE, "(null)\n");
  fake_kernel_set_native(tree->fake, "0000:05:00.1", "e1000e");
  fake_kernel_set_group_owner(tree->fake, 12, qemu);
  g_assert_false(vfio_reattach_to_host(&mf_fn1, 10000, &driver, &error));
  assert_on(tree, &mf_fn1, "vfio-pci", no_override ? "(null)" : "vfio-pci");
  assert_on(tree, &mf_fn0, "e1000e", "(null)");
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "cannot probe drivers for PCI device 0000:05:00.1");
  g_assert_nonnull(strstr(error->message, no_override
                          ? "; the device was put back as it was: on vfio-pci, driver_override (none)"
                          : "; the device was put back as it was: on vfio-pci, driver_override vfio-pci"));
  g_assert_null(driver);
  kill_child_later(GINT_TO_POINTER(qemu));
}

typedef struct {
  const char *name;
  const char *suffix;
  int err;
  const char *expected;
} ReattachFault;

static const ReattachFault reattach_faults[] = {
  { "override", "0000:05:00.1/driver_override", EACCES,
    "cannot clear driver_override of PCI device 0000:05:00.1: writing '' to "
    "/sys/bus/pci/devices/0000:05:00.1/driver_override failed: Permission denied" },
  { "unbind", "drivers/vfio-pci/unbind", EBUSY,
    "cannot unbind from driver vfio-pci PCI device 0000:05:00.1" },
  { "probe", "drivers_probe", EIO, "cannot probe drivers for PCI device 0000:05:00.1" },
};

/* Whichever step of a reattach fails, the device ends as it began. */
static void
test_reattach_fault(Tree *tree, gconstpointer data)
{
  const ReattachFault *fault = data;
  g_autoptr(GError) error = NULL;

  fake_kernel_set_native(tree->fake, "0000:05:00.1", "e1000e");
  fake_kernel_fail_write(tree->fake, fault->suffix, fault->err);
  g_assert_false(vfio_reattach_to_host(&mf_fn1, 10000, NULL, &error));
  assert_on(tree, &mf_fn1, "vfio-pci", "vfio-pci");
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR, fault->expected);
  g_assert_nonnull(strstr(error->message, strcmp(fault->name, "override") == 0
                          ? "; nothing was changed"
                          : "; the device was put back as it was: on vfio-pci, "
                            "driver_override vfio-pci"));
}

/* nodedev-detach: whichever step fails, the device ends on its driver. */
static void
test_detach_fault(Tree *tree, gconstpointer data)
{
  const Injection *injection = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) record = NULL;

  injection->inject(tree->fake);
  record = vfio_detach_from_host(&e1000e, &error);
  g_assert_null(record);
  assert_on(tree, &e1000e, "e1000e", "(null)");
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "; nothing was changed: the device is on its driver e1000e");
}

/* ------------------------------------------------------------------ */
/* Issue 16: a stale claim hands the device's origin on                 */

static Hostdev *
pci_hostdev(const PciAddress *addr, gboolean managed)
{
  Hostdev *hostdev = hostdev_new(HOSTDEV_TYPE_PCI);

  hostdev->pci_source = *addr;
  hostdev->managed = managed;
  return hostdev;
}

static void
on_released(GObject *source, GAsyncResult *result, gpointer data)
{
  Wait *wait = data;

  host_prep_release_finish(result, &wait->error);
  wait->done = TRUE;
  g_main_loop_quit(wait->loop);
}

/* VM1 claims @hostdev, reads its origin and binds it to vfio-pci (or gets
 * as far as a probe that binds nothing, with @died_mid_way), then its
 * hostdevd and QEMU die without giving anything back. */
static void
vm1_takes_and_dies(Tree *tree, const char *runtime, const Hostdev *hostdev,
                   gboolean died_mid_way)
{
  g_autoptr(HostPrep) prep = host_prep_new();
  g_autoptr(GError) error = NULL;
  pid_t broker = live_child();
  pid_t qemu = live_child();

  g_assert_true(host_prep_claim(prep, runtime, "vm1", &(ClaimOwner){ broker, qemu }, hostdev,
                                NULL, NULL, &error));
  g_assert_true(host_prep_vfio_begin(prep, hostdev, &error));
  g_assert_no_error(error);
  if (died_mid_way)
    fake_kernel_set_probe_mode(tree->fake, FAKE_PROBE_NOTHING);
  g_assert_cmpint(vfio_step_bind(prep->vfio, &error), ==, !died_mid_way);
  g_clear_error(&error);
  kill_child_later(GINT_TO_POINTER(broker));
  kill_child_later(GINT_TO_POINTER(qemu));
}

/*
 * tests/vm scenario 12 on the fake kernel: VM1 attached 0000:01:00.0
 * (e1000e, driver_override none or e1000e) managed and died with it on
 * vfio-pci; VM2 takes the stale claim over.  Its record has e1000e as the
 * original driver and VM1's steps as done, so VM2's release gives the
 * device back to e1000e with its original driver_override.
 */
static void
test_takeover_restores_origin(Tree *tree, gconstpointer data)
{
  guint variant = GPOINTER_TO_UINT(data);
  gboolean with_override = variant & 1;
  gboolean died_mid_way = variant & 2;
  const char *override = with_override ? "e1000e" : "(null)";
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = pci_hostdev(&e1000e, TRUE);
  g_autoptr(HostPrep) prep = host_prep_new();
  g_autoptr(JsonObject) journal = NULL;
  g_autofree char *journal_text = NULL;
  g_autoptr(Claim) claim = NULL;
  g_autofree char *runtime = g_dir_make_tmp("hostdevd-origin-XXXXXX", &error);
  Wait wait = { g_main_loop_new(NULL, FALSE) };
  JsonObject *vfio;
  JsonObject *steps;

  g_assert_no_error(error);
  if (with_override)
    fixture_write(tree->root, E1000E_DIR "/driver_override", "e1000e\n");
  vm1_takes_and_dies(tree, runtime, hostdev, died_mid_way);
  if (died_mid_way)
    assert_on(tree, &e1000e, NULL, "vfio-pci");
  else
    assert_on(tree, &e1000e, "vfio-pci", "vfio-pci");

  g_assert_true(host_prep_claim(prep, runtime, "vm2", &(ClaimOwner){ getpid(), 0 }, hostdev,
                                NULL, NULL, &error));
  g_assert_no_error(error);
  g_assert_true(host_prep_vfio_begin(prep, hostdev, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(prep->vfio->original_driver, ==, "e1000e");
  g_assert_cmpstr(prep->vfio->original_override, ==, with_override ? "e1000e" : NULL);
  g_assert_true(prep->vfio->override_written && prep->vfio->unbound);
  g_assert_cmpint(prep->vfio->probed, ==, !died_mid_way);
  g_assert_cmpint(prep->vfio->bound_by_us, ==, !died_mid_way);
  /* the journal holds it all before anything more happens */
  journal_text = host_prep_to_journal(prep, FALSE);
  journal = json_text_parse_object(journal_text);
  vfio = json_object_get_object_member(journal, "vfio");
  steps = json_object_get_object_member(vfio, "steps");
  g_assert_cmpstr(json_object_get_string_member(vfio, "original-driver"), ==, "e1000e");
  g_assert_true(json_object_get_boolean_member(steps, "unbound"));
  g_assert_true(json_object_get_boolean_member(steps, "override-written"));
  /* and the claim, now VM2's, still knows it */
  claim = claims_lookup(runtime, "pci_0000_01_00_0", &error);
  g_assert_cmpstr(claim->vm, ==, "vm2");
  g_assert_cmpstr(claim->origin->driver, ==, "e1000e");

  /* VM2 binds (nothing left to do, or the probe VM1 never finished) and uses it */
  g_assert_true(vfio_step_bind(prep->vfio, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000e, "vfio-pci", "vfio-pci");

  host_prep_release_async(prep, runtime, "vm2", NULL, on_released, &wait);
  g_main_loop_run(wait.loop);
  g_assert_no_error(wait.error);
  assert_on(tree, &e1000e, "e1000e", override);
  g_clear_pointer(&claim, claim_free);
  claim = claims_lookup(runtime, "pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_null(claim);
  g_main_loop_unref(wait.loop);
  fixture_remove(runtime);
}

/*
 * lifecycle seed 436: VM1 bound 0000:05:00.0 (e1000e) of IOMMU group 12
 * and died with it on vfio-pci; VM2 takes the other member 05:00.1 (on
 * vfio-pci already, managed='no') with the group's claim.  The partner's
 * claim and its undo come with the group: VM1's next hostdevd finds them
 * VM2's, and VM2's release gives 05:00.0 back to e1000e.  A partner
 * somebody set since has nothing to give back: its stale claim just goes.
 */
static void
test_group_partner_taken_on(Tree *tree, gconstpointer data)
{
  gboolean changed_since = GPOINTER_TO_UINT(data);
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) partner = pci_hostdev(&mf_fn0, TRUE);
  g_autoptr(Hostdev) hostdev = pci_hostdev(&mf_fn1, FALSE);
  g_autoptr(HostPrep) prep = host_prep_new();
  g_autoptr(Claim) claim = NULL;
  g_autofree char *runtime = g_dir_make_tmp("hostdevd-partner-XXXXXX", &error);
  g_autofree char *journal = NULL;
  Wait wait = { g_main_loop_new(NULL, FALSE) };

  g_assert_no_error(error);
  vm1_takes_and_dies(tree, runtime, partner, FALSE);
  assert_on(tree, &mf_fn0, "vfio-pci", "vfio-pci");
  if (changed_since)
    fixture_write(tree->root, "sys/bus/pci/devices/0000:05:00.0/driver_override", "pci-stub\n");

  g_assert_true(host_prep_claim(prep, runtime, "vm2", &(ClaimOwner){ getpid(), 0 }, hostdev,
                                NULL, NULL, &error));
  g_assert_no_error(error);
  g_assert_true(host_prep_vfio_begin(prep, hostdev, &error));
  g_assert_no_error(error);
  g_assert_true(vfio_record_is_clean(prep->vfio) == changed_since);
  claim = claims_lookup(runtime, "pci_0000_05_00_0", &error);
  g_assert_no_error(error);
  if (changed_since) {
    g_assert_cmpuint(prep->vfio->companions->len, ==, 0);
    g_assert_null(claim);
  } else {
    const VfioRecord *companion = vfio_record_find_companion(prep->vfio, &mf_fn0);
    g_assert_nonnull(companion);
    g_assert_cmpstr(companion->original_driver, ==, "e1000e");
    g_assert_true(companion->unbound && companion->bound_by_us && !companion->chowned_by_us);
    g_assert_cmpstr(claim->vm, ==, "vm2");
    /* in the journal before anything more happens */
    journal = host_prep_to_journal(prep, FALSE);
    g_assert_nonnull(strstr(journal, "\"pci_0000_05_00_0\""));
    g_assert_nonnull(strstr(journal, "\"address\":\"0000:05:00.0\""));

    /* VM2 attaching the partner itself: the companion stays the one to give it back */
    g_autoptr(HostPrep) itself = host_prep_new();
    g_assert_true(host_prep_claim(itself, runtime, "vm2", &(ClaimOwner){ getpid(), 0 }, partner,
                                  NULL, prep->vfio, &error));
    g_assert_true(host_prep_vfio_begin(itself, partner, &error));
    g_assert_no_error(error);
    g_assert_true(vfio_record_is_clean(itself->vfio));
    g_assert_cmpuint(itself->vfio->companions->len, ==, 0);
  }
  /* the group would be planned all the same */
  g_assert_true(host_prep_vfio_plan(prep, FALSE, NULL, &error));
  g_assert_no_error(error);

  host_prep_release_async(prep, runtime, "vm2", NULL, on_released, &wait);
  g_main_loop_run(wait.loop);
  g_assert_no_error(wait.error);
  assert_on(tree, &mf_fn0, changed_since ? "vfio-pci" : "e1000e",
            changed_since ? "pci-stub" : "(null)");
  assert_on(tree, &mf_fn1, "vfio-pci", "vfio-pci");
  g_clear_pointer(&claim, claim_free);
  g_autoptr(GPtrArray) left = claims_list(runtime, NULL, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(left->len, ==, 0);
  g_main_loop_unref(wait.loop);
  fixture_remove(runtime);
}

/*
 * A companion another device of this VM bound for the whole IOMMU group,
 * then attached in its own right: its claim names the state the companion
 * came from (e1000e), not vfio-pci, so a VM that takes the claim over after
 * this one died gives it back to e1000e (tests/lifecycle/open, seed 120).
 */
static void
test_companion_claim_keeps_its_origin(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = pci_hostdev(&mf_fn0, TRUE);
  g_autoptr(HostPrep) prep = host_prep_new();
  g_autoptr(HostPrep) plain = host_prep_new();
  g_autoptr(Claim) claim = NULL;
  g_autofree char *runtime = g_dir_make_tmp("hostdevd-companion-XXXXXX", &error);
  g_autoptr(VfioRecord) sibling = vfio_record_new(&mf_fn1, TRUE, &error);
  VfioRecord *companion = vfio_record_new(&mf_fn0, TRUE, &error);

  g_assert_no_error(error);
  g_assert_cmpstr(companion->original_driver, ==, "e1000e");
  g_ptr_array_add(sibling->companions, companion);
  /* the sibling's whole-group binding put the companion on vfio-pci */
  g_assert_true(vfio_step_bind(companion, &error));
  g_assert_no_error(error);
  assert_on(tree, &mf_fn0, "vfio-pci", "vfio-pci");

  g_assert_true(host_prep_claim(prep, runtime, "vm1", &(ClaimOwner){ getpid(), 0 }, hostdev,
                                NULL, sibling, &error));
  g_assert_true(host_prep_vfio_begin(prep, hostdev, &error));
  g_assert_no_error(error);
  /* this VM's record is the state now: the sibling's undo gives the companion back */
  g_assert_cmpstr(prep->vfio->original_driver, ==, "vfio-pci");
  claim = claims_lookup(runtime, "pci_0000_05_00_0", &error);
  g_assert_no_error(error);
  g_assert_cmpstr(claim->origin->driver, ==, "e1000e");
  g_assert_null(claim->origin->override);

  /* without the sibling's record the state now is all there is to store */
  g_autofree char *elsewhere = g_dir_make_tmp("hostdevd-companion-XXXXXX", &error);
  g_clear_pointer(&claim, claim_free);
  g_assert_true(host_prep_claim(plain, elsewhere, "vm1", &(ClaimOwner){ getpid(), 0 }, hostdev,
                                NULL, NULL, &error));
  g_assert_true(host_prep_vfio_begin(plain, hostdev, &error));
  g_assert_no_error(error);
  claim = claims_lookup(elsewhere, "pci_0000_05_00_0", &error);
  g_assert_cmpstr(claim->origin->driver, ==, "vfio-pci");
  fixture_remove(runtime);
  fixture_remove(elsewhere);
}

/* The claim records the origin as the device is claimed, in the claim's
 * own write, from the record read under the claims lock (which the plan
 * then keeps); a dry run's read (no claim) records nothing. */
static void
test_origin_recorded_with_claim(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = pci_hostdev(&e1000e, TRUE);
  g_autoptr(HostPrep) dry = host_prep_new();
  g_autoptr(HostPrep) prep = host_prep_new();
  g_autoptr(Claim) claim = NULL;
  g_autofree char *runtime = g_dir_make_tmp("hostdevd-origin-XXXXXX", &error);

  g_assert_true(host_prep_vfio_begin(dry, hostdev, &error));
  g_assert_no_error(error);
  claim = claims_lookup(runtime, "pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_null(claim);
  g_assert_true(host_prep_claim(prep, runtime, "vm1", &(ClaimOwner){ getpid(), 0 }, hostdev,
                                NULL, NULL, &error));
  g_assert_no_error(error);
  claim = claims_lookup(runtime, "pci_0000_01_00_0", &error);
  g_assert_nonnull(claim->origin);
  g_assert_cmpstr(claim->origin->driver, ==, "e1000e");
  g_assert_null(claim->origin->override);
  g_assert_false(claim->origin->node_known); /* /dev/vfio/9 appears with the binding */
  /* the record the origin came from is the plan's */
  VfioRecord *read = prep->vfio;
  g_assert_nonnull(read);
  g_assert_cmpstr(read->original_driver, ==, "e1000e");
  g_assert_true(host_prep_vfio_begin(prep, hostdev, &error));
  g_assert_no_error(error);
  g_assert_true(prep->vfio == read);
  fixture_remove(runtime);
}

/* vfio_record_new_from_origin(): the steps counted as done are those the
 * device's state shows, managed or not; a device someone changed since
 * counts as it is. */
static void
test_record_from_origin(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) as_is = NULL;
  g_autoptr(VfioRecord) detached = NULL;
  g_autoptr(VfioRecord) bound = NULL;
  g_autoptr(VfioRecord) unmanaged = NULL;
  g_autoptr(VfioRecord) users = NULL;
  g_autoptr(VfioRecord) was_unbound = NULL;
  g_autoptr(VfioRecord) changed = NULL;
  g_autofree char *log = NULL;
  ClaimOrigin origin = { (char *)"e1000e", NULL, TRUE, getuid(), getgid(), 0644 };
  ClaimOrigin unbound = { NULL, NULL, FALSE, 0, 0, 0 };
  ClaimOrigin on_vfio = { (char *)"vfio-pci", (char *)"vfio-pci", FALSE, 0, 0, 0 };

  as_is = vfio_record_new_from_origin(&e1000e, TRUE, &origin, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(as_is->original_driver, ==, "e1000e");
  g_assert_true(vfio_record_is_clean(as_is));
  g_assert_true(as_is->node_before_known);
  g_assert_cmpuint(as_is->node_mode_before, ==, 0644);

  detached = vfio_detach_from_host(&e1000e, &error);
  g_assert_no_error(error);
  bound = vfio_record_new_from_origin(&e1000e, TRUE, &origin, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(bound->original_driver, ==, "e1000e");
  g_assert_null(bound->original_override);
  g_assert_true(bound->override_written && bound->unbound && bound->probed &&
                bound->bound_by_us);
  /* /dev/vfio/9 is 0600 now, 0644 at the origin */
  g_assert_true(bound->chowned_by_us);

  /* managed='no' leaves the user's binding alone, but this one is what the
   * holder before left: it goes back with the device as that holder's would */
  unmanaged = vfio_record_new_from_origin(&e1000e, FALSE, &origin, &error);
  g_assert_no_error(error);
  g_assert_false(unmanaged->managed);
  g_assert_cmpstr(unmanaged->original_driver, ==, "e1000e");
  g_assert_true(unmanaged->override_written && unmanaged->unbound && unmanaged->probed &&
                unmanaged->bound_by_us && unmanaged->chowned_by_us);
  /* a device on vfio-pci before any holder took it is the user's */
  users = vfio_record_new_from_origin(&e1000e, FALSE, &on_vfio, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(users->original_driver, ==, "vfio-pci");
  g_assert_true(vfio_record_is_clean(users));

  was_unbound = vfio_record_new_from_origin(&e1000e, TRUE, &unbound, &error);
  g_assert_no_error(error);
  g_assert_null(was_unbound->original_driver);
  g_assert_true(was_unbound->override_written && was_unbound->probed &&
                was_unbound->bound_by_us);
  g_assert_false(was_unbound->unbound);

  g_assert_true(vfio_undo(bound, &error));
  g_assert_no_error(error);
  assert_on(tree, &e1000e, "e1000e", "(null)");
  log = fake_kernel_log(tree->fake);
  g_assert_nonnull(strstr(log, "chmod dev/vfio/9 0644"));

  /* someone bound it to pci-stub since: that is its state now */
  fixture_link(tree->root, E1000E_DIR "/driver", "../../../../bus/pci/drivers/pci-stub");
  changed = vfio_record_new_from_origin(&e1000e, TRUE, &origin, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(changed->original_driver, ==, "pci-stub");
  g_assert_false(changed->override_written || changed->unbound || changed->probed ||
                 changed->bound_by_us);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  /* hostdevd logs warnings on purpose (allow_unsafe_interrupts, a step of
   * an undo that failed); criticals stay fatal */
  g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);

#define TREE_TEST(path, func) \
  g_test_add("/vfio/" path, Tree, NULL, tree_setup, func, tree_teardown)

  TREE_TEST("iommu/ok", test_iommu_ok);
  TREE_TEST("iommu/off-with-dmar", test_iommu_off_dmar);
  TREE_TEST("iommu/off-with-ivrs", test_iommu_off_ivrs);
  TREE_TEST("iommu/absent", test_iommu_absent);
  TREE_TEST("iommu/no-vfio-pci", test_iommu_no_vfio_pci);
  TREE_TEST("iommu/no-type1", test_iommu_no_type1);
  TREE_TEST("iommu/no-interrupt-remapping", test_iommu_no_interrupt_remapping);
  TREE_TEST("iommu/intremap-off", test_iommu_intremap_off);
  TREE_TEST("group/viable", test_viable);
  TREE_TEST("group/not-viable", test_not_viable);
  TREE_TEST("record/new", test_record_new);
  TREE_TEST("record/json", test_record_json);
  TREE_TEST("record/json-bad", test_record_json_bad);
  TREE_TEST("bind/prepare-and-undo", test_prepare_and_undo);
  TREE_TEST("bind/unmanaged", test_prepare_unmanaged);
  TREE_TEST("bind/unbound-device", test_prepare_unbound);
  TREE_TEST("bind/whole-group", test_whole_group);
  TREE_TEST("bind/whole-group-failure", test_whole_group_failure);
  TREE_TEST("bind/node-late", test_node_late);
  TREE_TEST("bind/undo-retry", test_undo_retry);
  TREE_TEST("bind/sibling-ownership", test_sibling_ownership);
  for (gsize i = 0; i < G_N_ELEMENTS(injections); i++) {
    g_autofree char *path = g_strdup_printf("/vfio/inject/%s", injections[i].name);
    g_autofree char *path2 = g_strdup_printf("/vfio/inject-with-override/%s", injections[i].name);

    g_test_add(path, Tree, &injections[i], tree_setup, test_injection, tree_teardown);
    g_test_add(path2, Tree, &injections[i], tree_setup, test_injection_with_override,
               tree_teardown);
  }
  TREE_TEST("restore/async", test_restore_async);
  TREE_TEST("restore/async-error", test_restore_async_error);
  g_test_add("/vfio/restore/held-timeout", Tree, GINT_TO_POINTER(FALSE), tree_setup,
             test_restore_held, tree_teardown);
  g_test_add("/vfio/restore/held-cancelled", Tree, GINT_TO_POINTER(TRUE), tree_setup,
             test_restore_held, tree_teardown);
  TREE_TEST("detach-reattach", test_detach_reattach);
  TREE_TEST("detach-one-function", test_detach_one_function);
  TREE_TEST("plan/group", test_plan_group);
  TREE_TEST("plan/group-changed", test_plan_group_changed);
  TREE_TEST("plan/node-owner", test_node_owner_planned);
  TREE_TEST("write-hints", test_write_hints);
  TREE_TEST("restore/probe-retried", test_probe_retried);
  g_test_add("/vfio/restore/after-qemu-exit/pidfd", Tree, GINT_TO_POINTER(TRUE), tree_setup,
             test_release_after_qemu_exit, tree_teardown);
  g_test_add("/vfio/restore/after-qemu-exit/proc", Tree, GINT_TO_POINTER(FALSE), tree_setup,
             test_release_after_qemu_exit, tree_teardown);
  g_test_add("/vfio/restore/timeout-qemu-exiting", Tree, GINT_TO_POINTER(FALSE), tree_setup,
             test_restore_timeout_names_step, tree_teardown);
  g_test_add("/vfio/restore/timeout-slow-probe", Tree, GINT_TO_POINTER(TRUE), tree_setup,
             test_restore_timeout_names_step, tree_teardown);
  g_test_add("/vfio/reattach/refused-put-back", Tree, GINT_TO_POINTER(FALSE), tree_setup,
             test_reattach_refused_put_back, tree_teardown);
  g_test_add("/vfio/reattach/refused-put-back-no-override", Tree, GINT_TO_POINTER(TRUE),
             tree_setup, test_reattach_refused_put_back, tree_teardown);
  for (gsize i = 0; i < G_N_ELEMENTS(reattach_faults); i++) {
    g_autofree char *path = g_strdup_printf("/vfio/reattach/fault/%s", reattach_faults[i].name);

    g_test_add(path, Tree, &reattach_faults[i], tree_setup, test_reattach_fault, tree_teardown);
  }
  g_test_add("/vfio/origin/takeover", Tree, GUINT_TO_POINTER(0), tree_setup,
             test_takeover_restores_origin, tree_teardown);
  g_test_add("/vfio/origin/group-partner-taken-on", Tree, GUINT_TO_POINTER(0), tree_setup,
             test_group_partner_taken_on, tree_teardown);
  g_test_add("/vfio/origin/group-partner-changed-since", Tree, GUINT_TO_POINTER(1), tree_setup,
             test_group_partner_taken_on, tree_teardown);
  g_test_add("/vfio/origin/takeover-with-override", Tree, GUINT_TO_POINTER(1), tree_setup,
             test_takeover_restores_origin, tree_teardown);
  TREE_TEST("origin/companion-claim", test_companion_claim_keeps_its_origin);
  g_test_add("/vfio/origin/takeover-died-mid-way", Tree, GUINT_TO_POINTER(2), tree_setup,
             test_takeover_restores_origin, tree_teardown);
  g_test_add("/vfio/origin/takeover-died-mid-way-with-override", Tree, GUINT_TO_POINTER(3),
             tree_setup, test_takeover_restores_origin, tree_teardown);
  for (gsize i = 0; i < G_N_ELEMENTS(injections); i++) {
    g_autofree char *path = NULL;

    if (strcmp(injections[i].name, "chown") == 0 || strcmp(injections[i].name, "chmod") == 0)
      continue; /* nodedev-detach gives the node to nobody */
    path = g_strdup_printf("/vfio/detach-fault/%s", injections[i].name);
    g_test_add(path, Tree, &injections[i], tree_setup, test_detach_fault, tree_teardown);
  }
  TREE_TEST("origin/recorded-with-claim", test_origin_recorded_with_claim);
  TREE_TEST("origin/record", test_record_from_origin);
  return g_test_run();
}
