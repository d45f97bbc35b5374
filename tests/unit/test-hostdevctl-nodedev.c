/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-hostdevctl-nodedev.c - hostdevctl's host-only verbs, run as a user
 * runs them: the built binary with --host-root on a fixture tree
 *
 * A separate process cannot have the fake kernel, so the verbs that write
 * are run here only up to their checks and their failures; the binding
 * itself is tested in test-vfio and on a real kernel in tests/vm.
 */
#include "host-fixture.h"
#include "claims.h"

#include <string.h>
#include <sys/wait.h>

#include <json-glib/json-glib.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

typedef struct {
  char *root;
  char *runtime;
} Tree;

static void
tree_setup(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  tree->root = fixture_extract();
  tree->runtime = g_dir_make_tmp("hostdevd-ctl-XXXXXX", &error);
  g_assert_no_error(error);
}

static void
tree_teardown(Tree *tree, gconstpointer data)
{
  fixture_remove(tree->root);
  fixture_remove(tree->runtime);
  g_free(tree->root);
  g_free(tree->runtime);
}

/* Run hostdevctl with @args (NULL-terminated) and --host-root first. */
static int
ctl(Tree *tree, char **out, char **err, ...)
{
  const char *binary = g_getenv("HOSTDEVCTL");
  g_autoptr(GPtrArray) argv = g_ptr_array_new();
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) env = g_get_environ();
  const char *arg;
  int status = 0;
  va_list ap;

  g_assert_nonnull(binary);
  env = g_environ_setenv(env, "HOSTDEVD_RUNTIME_DIR", tree->runtime, TRUE);
  g_ptr_array_add(argv, (gpointer)binary);
  g_ptr_array_add(argv, (gpointer)"--host-root");
  g_ptr_array_add(argv, tree->root);
  va_start(ap, err);
  while ((arg = va_arg(ap, const char *)) != NULL)
    g_ptr_array_add(argv, (gpointer)arg);
  va_end(ap);
  g_ptr_array_add(argv, NULL);
  g_spawn_sync(NULL, (char **)argv->pdata, env, G_SPAWN_DEFAULT, NULL, NULL,
               out, err, &status, &error);
  g_assert_no_error(error);
  g_assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void
test_list(Tree *tree, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *usb = NULL;
  g_autofree char *json = NULL;
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) error = NULL;

  g_assert_cmpint(ctl(tree, &out, &err, "nodedev-list", NULL), ==, 0);
  g_assert_true(g_str_has_prefix(out, "pci_0000_00_00_0\npci_0000_00_01_0\n"));
  g_assert_true(g_str_has_suffix(out, "usb_1_1\nusb_usb1\nusb_usb2\n"));

  g_assert_cmpint(ctl(tree, &usb, NULL, "nodedev-list", "--cap", "usb_device", NULL), ==, 0);
  g_assert_cmpstr(usb, ==, "usb_1_1\nusb_usb1\nusb_usb2\n");

  g_assert_cmpint(ctl(tree, &json, NULL, "--json", "nodedev-list", "--cap", "pci", NULL), ==, 0);
  g_assert_true(json_parser_load_from_data(parser, json, -1, &error));
  g_assert_cmpuint(json_array_get_length(json_node_get_array(json_parser_get_root(parser))), ==, 19);
}

static void
test_tree(Tree *tree, gconstpointer data)
{
  g_autofree char *out = NULL;

  g_assert_cmpint(ctl(tree, &out, NULL, "nodedev-list", "--tree", "--cap", "pci", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "IOMMU group 12 (2 devices): held by host drivers: "
                               "0000:05:00.0 on e1000e\n"));
}

/* What a user needs to write a USB selector: the port path and serial in
 * the tree and in the XML; the plain list stays virsh's, names only. */
static void
test_usb_selectors(Tree *tree, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *names = NULL;

  g_assert_cmpint(ctl(tree, &out, NULL, "nodedev-list", "--cap", "usb_device", "--tree",
                      NULL), ==, 0);
  g_assert_nonnull(strstr(out, "usb_1_1  bus 1 device 2  0627:0001 QEMU QEMU USB Keyboard  "
                               "port 1-1  serial '68284-0000:00:07.0-1'  driver: usb\n"));
  g_assert_cmpint(ctl(tree, &xml, NULL, "nodedev-dumpxml", "usb_1_1", NULL), ==, 0);
  g_assert_nonnull(strstr(xml, "    <hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' "
                               "port='1-1' serial='68284-0000:00:07.0-1'/>\n"
                               "  </capability>\n"));
  g_assert_cmpint(ctl(tree, &names, NULL, "nodedev-list", "--cap", "usb_device", NULL), ==, 0);
  g_assert_cmpstr(names, ==, "usb_1_1\nusb_usb1\nusb_usb2\n");
}

static void
test_dumpxml(Tree *tree, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint(ctl(tree, &out, NULL, "nodedev-dumpxml", "pci_0000_05_00_1", NULL), ==, 0);
  g_assert_nonnull(strstr(out, "<name>pci_0000_05_00_1</name>"));
  g_assert_nonnull(strstr(out, "<name>vfio-pci</name>"));
  g_clear_pointer(&out, g_free);

  g_assert_cmpint(ctl(tree, &out, &err, "nodedev-dumpxml", "pci_0000_0a_00_0", NULL), ==, 1);
  g_assert_cmpstr(out, ==, "");
  g_assert_cmpstr(err, ==, "error: no node device 'pci_0000_0a_00_0' on this host; list "
                           "them with `hostdevctl nodedev-list`\n");
}

static void
test_usage(Tree *tree, gconstpointer data)
{
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;
  g_autofree char *err3 = NULL;
  g_autofree char *err4 = NULL;
  g_autofree char *out = NULL;

  g_assert_cmpint(ctl(tree, NULL, &err, "nodedev-dumpxml", NULL), ==, 2);
  g_assert_cmpstr(err, ==, "hostdevctl: 'nodedev-dumpxml' takes NAME; see hostdevctl --help\n");
  g_assert_cmpint(ctl(tree, NULL, &err2, "nodedev-list", "--cap", "net", NULL), ==, 1);
  g_assert_cmpstr(err2, ==, "error: unknown capability 'net': use pci, usb_device or mdev\n");
  g_assert_cmpint(ctl(tree, NULL, &err3, "nodedev-dumpxml", "x", "--tree", NULL), ==, 2);
  g_assert_cmpstr(err3, ==, "hostdevctl: --cap and --tree go with nodedev-list only\n");
  g_assert_cmpint(ctl(tree, NULL, &err4, "nodedev-set-numvfs", "pci_0000_02_00_0", "x", NULL), ==, 2);
  g_assert_cmpstr(err4, ==, "hostdevctl: N must be a number of VFs from 0 to 65535\n");

  /* the control-socket verbs' usage lists the host-only ones too */
  {
    const char *binary = g_getenv("HOSTDEVCTL");
    int status = 0;
    g_autoptr(GError) error = NULL;

    g_spawn_sync(NULL, (char *[]){ (char *)binary, (char *)"--help", NULL }, NULL,
                 G_SPAWN_DEFAULT, NULL, NULL, &out, NULL, &status, &error);
    g_assert_no_error(error);
    g_assert_nonnull(strstr(out, "nodedev-list [--cap pci|usb_device|mdev] [--tree] [--json]"));
  }
}

static void
test_numvfs_checks(Tree *tree, gconstpointer data)
{
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;

  g_assert_cmpint(ctl(tree, NULL, &err, "nodedev-set-numvfs", "pci_0000_02_00_0", "5", NULL), ==, 1);
  g_assert_cmpstr(err, ==, "error: 0000:02:00.0 supports at most 2 VFs (sriov_totalvfs); 5 asked\n");

  /* a VF a VM holds is not removed */
  g_assert_true(claims_acquire(tree->runtime, "vm3", "pci_0000_02_00_1", &(ClaimOwner){ getpid(), 0 }, NULL));
  g_assert_cmpint(ctl(tree, NULL, &err2, "nodedev-set-numvfs", "pci_0000_02_00_0", "0", NULL), ==, 1);
  g_assert_true(g_str_has_prefix(err2, "error: VF 0000:02:00.1 of 0000:02:00.0 is in use by "
                                       "VM 'vm3' (hostdevd pid "));
  g_assert_true(g_str_has_suffix(err2, "): setting 0 VFs would remove it; detach it from that "
                                       "VM first (hostdevctl detach-device vm3 ...)\n"));
}

/* Return: the pid of a child that sleeps until killed: a VM's "QEMU". */
static pid_t
live_child(void)
{
  pid_t pid = fork();

  g_assert_cmpint(pid, >=, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (;;)
      pause();
  }
  return pid;
}

/* Return: the pid of a process that has exited (and been reaped): a dead hostdevd. */
static pid_t
dead_pid(void)
{
  pid_t pid = fork();

  g_assert_cmpint(pid, >=, 0);
  if (pid == 0)
    _exit(0);
  g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
  return pid;
}

/*
 * Issue 16, defect 4: a VM whose hostdevd died still runs its QEMU, which
 * still holds the device.  nodedev-reattach and nodedev-set-numvfs leave
 * it alone, and say how to get it back.
 */
static void
test_claimed_by_qemu_alone(Tree *tree, gconstpointer data)
{
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;
  g_autofree char *out = NULL;
  g_autofree char *expected = NULL;
  pid_t qemu = live_child();
  pid_t broker = dead_pid();

  g_assert_true(claims_acquire(tree->runtime, "vm1", "pci_0000_05_00_1",
                               &(ClaimOwner){ broker, qemu }, NULL));
  g_assert_true(claims_acquire(tree->runtime, "vm1", "pci_0000_02_00_1",
                               &(ClaimOwner){ broker, qemu }, NULL));
  g_assert_cmpint(ctl(tree, NULL, &err, "nodedev-reattach", "pci_0000_05_00_1", NULL), ==, 1);
  expected = g_strdup_printf("error: PCI device 0000:05:00.1 is in use by VM 'vm1' (hostdevd "
                             "pid %d, gone, QEMU pid %d, since ", broker, qemu);
  g_assert_true(g_str_has_prefix(err, expected));
  g_assert_nonnull(strstr(err, "; not re-attaching it: that VM's hostdevd is gone but its QEMU "
                               "still holds the device: start its hostdevd again (systemctl "
                               "start hostdevd@vm1)"));
  g_assert_cmpint(ctl(tree, NULL, &err2, "nodedev-set-numvfs", "pci_0000_02_00_0", "0", NULL), ==, 1);
  g_assert_nonnull(strstr(err2, "error: VF 0000:02:00.1 of 0000:02:00.0 is in use by VM 'vm1'"));

  kill(qemu, SIGKILL);
  g_assert_cmpint(waitpid(qemu, NULL, 0), ==, qemu);
  g_clear_pointer(&err, g_free);
  /* both gone: the claim is stale, the device free again */
  g_assert_cmpint(ctl(tree, &out, &err, "nodedev-reattach", "pci_0000_05_00_1", NULL), ==, 0);
  g_assert_cmpstr(out, ==, "Device pci_0000_05_00_1 re-attached (driver vfio-pci)\n");
}

/*
 * Issue 16, defect 14: nodedev-detach binds one function of a group whose
 * other member is still on its host driver, as virsh does (viability
 * matters when QEMU opens the group), and notes what is still in the way.
 */
static void
test_detach_one_function(Tree *tree, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  /* group 12: 05:00.0 on e1000e, 05:00.1 on vfio-pci already */
  g_assert_cmpint(ctl(tree, &out, &err, "nodedev-detach", "pci_0000_05_00_1", NULL), ==, 0);
  g_assert_cmpstr(out, ==, "Device pci_0000_05_00_1 detached\n");
  g_assert_true(g_str_has_prefix(err, "note: IOMMU group 12 is not viable: "));
  g_assert_nonnull(strstr(err, "In the way: 0000:05:00.0 [8086:10d3] on driver e1000e."));
}

static void
test_detach_claimed(Tree *tree, gconstpointer data)
{
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;
  g_autofree char *expected = NULL;

  g_assert_true(claims_acquire(tree->runtime, "vm1", "pci_0000_05_00_1",
                               &(ClaimOwner){ getpid(), 0 }, NULL));
  g_assert_cmpint(ctl(tree, NULL, &err, "nodedev-reattach", "pci_0000_05_00_1", NULL), ==, 1);
  expected = g_strdup_printf("error: PCI device 0000:05:00.1 is in use by VM 'vm1' (hostdevd "
                             "pid %d, since ", getpid());
  g_assert_true(g_str_has_prefix(err, expected));
  g_assert_true(g_str_has_suffix(err, "); not re-attaching it: detach it from that VM first "
                                      "(hostdevctl detach-device vm1 ...)\n"));

  g_assert_cmpint(ctl(tree, NULL, &err2, "nodedev-detach", "pci_0000_05_00_1", NULL), ==, 1);
  g_assert_nonnull(strstr(err2, "error: PCI device 0000:05:00.1 is in use by VM 'vm1'"));
}

/*
 * Issue 16 (lifecycle seed 8): VM3 holds 0000:05:00.0, so its QEMU owns
 * the DMA of IOMMU group 12; 0000:05:00.1 sits there on vfio-pci
 * unclaimed.  nodedev-reattach of it is refused before anything is
 * touched, naming the VM and what to do: the kernel would refuse the host
 * driver and leave the device without one.
 */
/* A member of a group a VM holds is that VM's to give back: nodedev-detach leaves it alone. */
static void
test_detach_group_in_use(Tree *tree, gconstpointer data)
{
  g_autofree char *err = NULL;
  g_autofree char *driver = NULL;
  g_autofree char *override = NULL;
  ClaimOwner vm1 = { getpid(), 0 };

  g_assert_true(claims_acquire(tree->runtime, "vm1", "iommu_group_12", &vm1, NULL));
  g_assert_cmpint(ctl(tree, NULL, &err, "nodedev-detach", "pci_0000_05_00_0", NULL), ==, 1);
  g_assert_true(g_str_has_prefix(err, "error: IOMMU group 12 of PCI device 0000:05:00.0 is "
                                      "in use by VM 'vm1' (hostdevd pid "));
  g_assert_nonnull(strstr(err, "; not detaching it: the VM holding the group decides where "
                               "its devices go back to when it lets go of them."));
  driver = fixture_link_name(tree->root, "sys/bus/pci/devices/0000:05:00.0/driver");
  override = fixture_read(tree->root, "sys/bus/pci/devices/0000:05:00.0/driver_override");
  g_assert_cmpstr(driver, ==, "e1000e");
  g_assert_cmpstr(override, ==, "(null)");
}

/* Issue 11, item 2: detaching an mdev parent takes its mdevs away from their VM. */
static void
test_detach_parent_of_claimed_mdev(Tree *tree, gconstpointer data)
{
  const char *parent = "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0";
  const char *uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01";
  g_autofree char *instance = g_strdup_printf("%s/%s", parent, uuid);
  g_autofree char *type_link = g_strdup_printf("%s/mdev_type", instance);
  g_autofree char *bus_link = g_strdup_printf("sys/bus/mdev/devices/%s", uuid);
  g_autofree char *bus_target = g_strdup_printf("../../../devices/pci0000:00/0000:00:03.0/"
                                                "0000:01:00.0/%s", uuid);
  g_autofree char *err = NULL;
  g_autofree char *driver = NULL;
  g_autofree char *key = claims_key_mdev(uuid);
  ClaimOwner vm1 = { getpid(), 0 };

  fixture_write(tree->root, "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0/"
                            "mdev_supported_types/nvidia-63/create", "");
  fixture_link(tree->root, "sys/class/mdev_bus/0000:01:00.0",
               "../../devices/pci0000:00/0000:00:03.0/0000:01:00.0");
  fixture_mkdir(tree->root, instance);
  fixture_link(tree->root, type_link, "../mdev_supported_types/nvidia-63");
  fixture_mkdir(tree->root, "sys/bus/mdev/devices");
  fixture_link(tree->root, bus_link, bus_target);
  g_assert_true(claims_acquire(tree->runtime, "vm1", key, &vm1, NULL));

  g_assert_cmpint(ctl(tree, NULL, &err, "nodedev-detach", "pci_0000_01_00_0", NULL), ==, 1);
  g_assert_true(g_str_has_prefix(err, "error: PCI device 0000:01:00.0 is the parent of mediated "
                                      "device 4b20d080-1b54-4048-85b3-a6a62d165c01, which is in "
                                      "use by VM 'vm1' (hostdevd pid "));
  g_assert_nonnull(strstr(err, "would take the mdev away; detach it from that VM first"));
  driver = fixture_link_name(tree->root, "sys/bus/pci/devices/0000:01:00.0/driver");
  g_assert_cmpstr(driver, ==, "e1000e");
}

static void
test_reattach_group_in_use(Tree *tree, gconstpointer data)
{
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;
  g_autofree char *out = NULL;
  g_autofree char *override = NULL;
  g_autofree char *driver = NULL;
  g_autofree char *expected = NULL;
  ClaimOwner vm3 = { getpid(), 0 };

  g_assert_true(claims_acquire(tree->runtime, "vm3", "pci_0000_05_00_0", &vm3, NULL));
  g_assert_true(claims_acquire(tree->runtime, "vm3", "iommu_group_12", &vm3, NULL));
  g_assert_cmpint(ctl(tree, NULL, &err, "nodedev-reattach", "pci_0000_05_00_1", NULL), ==, 1);
  expected = g_strdup_printf("error: PCI device 0000:05:00.1 shares IOMMU group 12 with PCI "
                             "device 0000:05:00.0, which is in use by VM 'vm3' (hostdevd pid "
                             "%d, since ", getpid());
  g_assert_true(g_str_has_prefix(err, expected));
  g_assert_true(g_str_has_suffix(err, "); not re-attaching it: the kernel gives no host driver "
                                      "a device whose IOMMU group a VM uses. For 0000:05:00.0, "
                                      "detach it from that VM first (hostdevctl detach-device "
                                      "vm3 ...); then try again\n"));
  override = fixture_read(tree->root, "sys/bus/pci/devices/0000:05:00.1/driver_override");
  driver = fixture_link_name(tree->root, "sys/bus/pci/devices/0000:05:00.1/driver");
  g_assert_cmpstr(override, ==, "vfio-pci");
  g_assert_cmpstr(driver, ==, "vfio-pci");

  /* the group's claim alone (a member bound by whole-group takeover) */
  g_assert_true(claims_release(tree->runtime, "vm3", "pci_0000_05_00_0", NULL));
  g_assert_cmpint(ctl(tree, NULL, &err2, "nodedev-reattach", "pci_0000_05_00_1", NULL), ==, 1);
  g_assert_true(g_str_has_prefix(err2, "error: IOMMU group 12 of PCI device 0000:05:00.1 is "
                                       "in use by VM 'vm3' (hostdevd pid "));
  g_assert_nonnull(strstr(err2, "; not re-attaching it: the kernel gives no host driver a "
                                "device whose IOMMU group a VM uses. For the group's devices "
                                "in that VM, detach it from that VM first"));
  g_clear_pointer(&override, g_free);
  override = fixture_read(tree->root, "sys/bus/pci/devices/0000:05:00.1/driver_override");
  g_assert_cmpstr(override, ==, "vfio-pci");

  /* the group given back: it goes */
  g_assert_true(claims_release(tree->runtime, "vm3", "iommu_group_12", NULL));
  g_assert_cmpint(ctl(tree, &out, NULL, "nodedev-reattach", "pci_0000_05_00_1", NULL), ==, 0);
  g_assert_true(g_str_has_prefix(out, "Device pci_0000_05_00_1 re-attached"));
}

static void
test_mdev_checks(Tree *tree, gconstpointer data)
{
  g_autofree char *err = NULL;
  g_autofree char *err2 = NULL;
  g_autofree char *err3 = NULL;

  g_assert_cmpint(ctl(tree, NULL, &err, "mdev-create", "pci_0000_01_00_0", "nvidia-63",
                      "--vm", "vm1", NULL), ==, 1);
  g_assert_cmpstr(err, ==, "error: 0000:01:00.0 is not an mdev parent (no "
                           "/sys/class/mdev_bus/0000:01:00.0): load the vendor's mdev driver "
                           "(e.g. i915 with GVT-g enabled, nvidia vGPU manager) or list "
                           "parents with `hostdevctl nodedev-list --cap pci --json`\n");
  g_assert_cmpint(ctl(tree, NULL, &err2, "mdev-create", "p", "t", "--index", "1", NULL), ==, 2);
  g_assert_cmpstr(err2, ==, "hostdevctl: --index needs --vm\n");
  g_assert_cmpint(ctl(tree, NULL, &err3, "mdev-remove", "4b20d080-1b54-4048-85b3-a6a62d165c01",
                      NULL), ==, 1);
  g_assert_cmpstr(err3, ==, "error: there is no mdev 4b20d080-1b54-4048-85b3-a6a62d165c01 on "
                            "this host; list them with `hostdevctl nodedev-list`\n");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define TREE_TEST(path, func) \
  g_test_add("/hostdevctl-nodedev/" path, Tree, NULL, tree_setup, func, tree_teardown)
  TREE_TEST("list", test_list);
  TREE_TEST("tree", test_tree);
  TREE_TEST("usb-selectors", test_usb_selectors);
  TREE_TEST("dumpxml", test_dumpxml);
  TREE_TEST("usage", test_usage);
  TREE_TEST("numvfs-checks", test_numvfs_checks);
  TREE_TEST("detach-claimed", test_detach_claimed);
  TREE_TEST("claimed-by-qemu-alone", test_claimed_by_qemu_alone);
  TREE_TEST("detach-one-function", test_detach_one_function);
  TREE_TEST("mdev-checks", test_mdev_checks);
  TREE_TEST("reattach-group-in-use", test_reattach_group_in_use);
  TREE_TEST("detach-group-in-use", test_detach_group_in_use);
  TREE_TEST("detach-parent-of-claimed-mdev", test_detach_parent_of_claimed_mdev);
  return g_test_run();
}
