/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-claims.c - host-wide claims: one device or IOMMU group per VM,
 * stale claims of dead brokers taken over, Busy naming the holder
 */
#include "claims.h"
#include "process-identity.h"
#include "host-fixture.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

typedef struct {
  char *dir;
} Runtime;

static void
runtime_setup(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  rt->dir = g_dir_make_tmp("hostdevd-claims-XXXXXX", &error);
  g_assert_no_error(error);
}

static void
runtime_teardown(Runtime *rt, gconstpointer data)
{
  fixture_remove(rt->dir);
  g_free(rt->dir);
}

/* Return: the pid of a process that has exited (and been reaped). */
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

/* Return: the pid of a child that sleeps until killed: "QEMU". */
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

static void
kill_child(pid_t pid)
{
  kill(pid, SIGKILL);
  g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
}

static void
test_keys(Runtime *rt, gconstpointer data)
{
  const PciAddress addr = { 0, 1, 0, 0 };
  g_autofree char *pci = claims_key_pci(&addr);
  g_autofree char *usb = claims_key_usb(1, 2);
  g_autofree char *group = claims_key_iommu_group(12);

  g_assert_cmpstr(pci, ==, "pci_0000_01_00_0");
  g_assert_cmpstr(usb, ==, "usb_1_2");
  g_assert_cmpstr(group, ==, "iommu_group_12");
  g_assert_true(claims_key_is_valid(pci));
  /* a PCI key read back: the one spelling claims_key_pci() writes, and nothing else */
  const PciAddress high = { 0x1234, 0xab, 0x1f, 7 };
  g_autofree char *high_key = claims_key_pci(&high);
  PciAddress read = { 0 };
  g_assert_true(claims_key_to_pci(high_key, &read));
  g_assert_true(read.domain == high.domain && read.bus == high.bus && read.slot == high.slot &&
                read.function == high.function);
  static const char *const not_pci[] = {
    "usb_1_2", "iommu_group_12", "pci_0000_01_00", "pci_0000_01_00_0_", "pci_0000_01_00_8",
    "pci_0000_01_20_0", "pci_0000_1_00_0", "pci_0000_01_00_A", "pci_00000_01_00_0",
    "pci_0000_01_00_0x", " pci_0000_01_00_0",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(not_pci); i++)
    g_assert_false(claims_key_to_pci(not_pci[i], &read));
  /* and one upper-case hex digit is not the key claims_key_pci() writes */
  g_assert_false(claims_key_to_pci("pci_0000_0A_00_0", &read));
  g_assert_false(claims_key_is_valid("../etc"));
  g_assert_false(claims_key_is_valid(".lock"));
  g_assert_false(claims_key_is_valid(""));
}

/* An mdev is claimed by its UUID, in the key's alphabet. */
static void
test_key_mdev(Runtime *rt, gconstpointer data)
{
  g_autofree char *key = claims_key_mdev("4B20D080-1b54-4048-85b3-a6a62d165c01");
  g_autofree char *what = NULL;

  g_assert_cmpstr(key, ==, "mdev_4b20d080_1b54_4048_85b3_a6a62d165c01");
  g_assert_true(claims_key_is_valid(key));
  what = claims_describe_key(key);
  g_assert_cmpstr(what, ==, "mediated device 4b20d080-1b54-4048-85b3-a6a62d165c01");
  g_assert_null(claims_key_mdev("4b20d080"));
  g_assert_null(claims_key_mdev("../../../etc/passwd-xxxxxxxxxxxxxxxxxx"));
  g_assert_null(claims_key_mdev(NULL));
}

/*
 * Issue 16, defect 4: the claim names the VM's hostdevd and its QEMU, and
 * stays live while either runs.  A QEMU whose hostdevd died still holds
 * the device; only when both are gone is the claim stale.
 */
static void
test_qemu_keeps_claim(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Claim) claim = NULL;
  g_autofree char *pid_text = NULL;
  pid_t qemu = live_child();
  pid_t broker = dead_pid();

  g_assert_true(claims_acquire(rt->dir, "vm1", "pci_0000_01_00_0",
                               &(ClaimOwner){ broker, qemu }, &error));
  g_assert_no_error(error);
  claim = claims_lookup(rt->dir, "pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_cmpint(claim->pid, ==, broker);
  g_assert_cmpint(claim->qemu_pid, ==, qemu);
  g_assert_cmpuint(claim->qemu_start_time, >, 0);
  g_assert_false(claim->broker_alive);
  g_assert_true(claim->qemu_alive);
  g_assert_false(claim->stale);

  /* another VM is refused, and told the hostdevd is gone but QEMU is not */
  g_assert_false(claims_acquire(rt->dir, "vm2", "pci_0000_01_00_0",
                                &(ClaimOwner){ getpid(), 0 }, &error));
  pid_text = g_strdup_printf("PCI device 0000:01:00.0 is in use by VM 'vm1' (hostdevd pid "
                             "%d, gone, QEMU pid %d, since ", broker, qemu);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, pid_text);
  g_assert_nonnull(strstr(error->message, "that VM's hostdevd is gone but its QEMU still "
                                          "holds the device: start its hostdevd again "
                                          "(systemctl start hostdevd@vm1)"));
  g_clear_error(&error);

  /* QEMU gone too: stale, and taken over */
  kill_child(qemu);
  g_clear_pointer(&claim, claim_free);
  claim = claims_lookup(rt->dir, "pci_0000_01_00_0", &error);
  g_assert_true(claim->stale);
  g_assert_true(claims_acquire(rt->dir, "vm2", "pci_0000_01_00_0",
                               &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);
}

/* A live hostdevd without a known QEMU holds the claim, as before. */
static void
test_broker_alone(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  pid_t broker = live_child();

  g_assert_true(claims_acquire(rt->dir, "vm1", "usb_1_2", &(ClaimOwner){ broker, 0 }, &error));
  g_assert_false(claims_acquire(rt->dir, "vm2", "usb_1_2", &(ClaimOwner){ getpid(), 0 },
                                &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "detach it from that VM first (hostdevctl detach-device vm1 ...)");
  g_assert_null(strstr(error->message, "QEMU pid"));
  g_clear_error(&error);
  kill_child(broker);
  g_assert_true(claims_acquire(rt->dir, "vm2", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);
}

/* A restarted hostdevd takes its VM's claims back with the new owner;
 * "since" stays when the claim never lapsed. */
static void
test_refresh_same_vm(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Claim) claim = NULL;
  g_autofree char *path = g_build_filename(rt->dir, "claims", "pci_0000_05_00_1", NULL);
  pid_t qemu = live_child();
  pid_t old_broker = dead_pid();
  g_autofree char *text = g_strdup_printf("{\"vm\": \"vm1\", \"pid\": %d, \"start-time\": 0, "
                                          "\"qemu-pid\": %d, \"qemu-start-time\": %"
                                          G_GUINT64_FORMAT ", \"since\": 5}", old_broker, qemu,
                                          process_start_time(qemu));

  g_assert_true(claims_acquire(rt->dir, "vm1", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_true(g_file_set_contents(path, text, -1, &error));
  g_assert_true(claims_acquire(rt->dir, "vm1", "pci_0000_05_00_1",
                               &(ClaimOwner){ getpid(), qemu }, &error));
  g_assert_no_error(error);
  claim = claims_lookup(rt->dir, "pci_0000_05_00_1", &error);
  g_assert_cmpint(claim->pid, ==, getpid());
  g_assert_cmpint(claim->qemu_pid, ==, qemu);
  g_assert_cmpint(claim->since, ==, 5);
  g_assert_true(claim->broker_alive);
  kill_child(qemu);
}

/* Claim files of older brokers ("pid" and "start-time" only) name the hostdevd alone. */
static void
test_old_format(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Claim) live = NULL;
  g_autoptr(Claim) dead = NULL;
  g_autofree char *path1 = g_build_filename(rt->dir, "claims", "pci_0000_01_00_0", NULL);
  g_autofree char *path2 = g_build_filename(rt->dir, "claims", "usb_2_3", NULL);
  g_autofree char *text1 = g_strdup_printf("{\"vm\": \"old\", \"pid\": %d, \"start-time\": %"
                                           G_GUINT64_FORMAT ", \"since\": 5}", getpid(),
                                           process_start_time(getpid()));
  g_autofree char *text2 = g_strdup_printf("{\"vm\": \"old\", \"pid\": %d, \"start-time\": 0, "
                                           "\"since\": 5}", dead_pid());

  g_assert_true(claims_acquire(rt->dir, "vm1", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_true(g_file_set_contents(path1, text1, -1, &error));
  g_assert_true(g_file_set_contents(path2, text2, -1, &error));
  live = claims_lookup(rt->dir, "pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_cmpint(live->qemu_pid, ==, 0);
  g_assert_false(live->stale);
  dead = claims_lookup(rt->dir, "usb_2_3", &error);
  g_assert_true(dead->stale);
}

/* A zombie (exited, not reaped) holds nothing: its files are closed. */
static void
test_process_alive(Runtime *rt, gconstpointer data)
{
  pid_t child = fork();
  guint64 start;

  g_assert_cmpint(child, >=, 0);
  if (child == 0)
    _exit(0);
  g_assert_true(process_identity_alive(&(ProcessIdentity){ getpid(), 0 }));
  start = process_start_time(getpid());
  g_assert_cmpuint(start, >, 0);
  g_assert_true(process_identity_alive(&(ProcessIdentity){ getpid(), start }));
  g_assert_false(process_identity_alive(&(ProcessIdentity){ getpid(), start + 1 })); /* a recycled pid */
  for (int i = 0; i < 30000 && process_identity_alive(&(ProcessIdentity){ child, 0 }); i++)
    g_usleep(2000);
  g_assert_false(process_identity_alive(&(ProcessIdentity){ child, 0 }));
  g_assert_cmpuint(process_start_time(child), ==, 0);
  g_assert_cmpint(waitpid(child, NULL, 0), ==, child);
  g_assert_false(process_identity_alive(&(ProcessIdentity){ child, 0 }));
  g_assert_false(process_identity_alive(&(ProcessIdentity){ 0, 0 }));
}

static void
test_acquire_busy_release(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Claim) claim = NULL;

  g_assert_true(claims_acquire(rt->dir, "vm1", "pci_0000_01_00_0", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);
  /* the same VM again (a restarted broker): fine */
  g_assert_true(claims_acquire(rt->dir, "vm1", "pci_0000_01_00_0", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);

  g_assert_false(claims_acquire(rt->dir, "vm2", "pci_0000_01_00_0", &(ClaimOwner){ getpid(), 0 }, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "PCI device 0000:01:00.0 is in use by VM 'vm1' (hostdevd pid");
  g_assert_nonnull(strstr(error->message, "detach it from that VM first "
                                          "(hostdevctl detach-device vm1 ...)"));
  g_clear_error(&error);

  g_assert_false(claims_acquire(rt->dir, "vm2", "iommu_group_12", &(ClaimOwner){ getpid(), 0 }, &error) &&
                 claims_acquire(rt->dir, "vm3", "iommu_group_12", &(ClaimOwner){ getpid(), 0 }, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, "IOMMU group 12 is in use by VM 'vm2'");
  g_clear_error(&error);
  g_assert_false(claims_acquire(rt->dir, "vm2", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error) &&
                 claims_acquire(rt->dir, "vm3", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "USB device at bus 1 device 2 is in use by VM 'vm2'");
  g_clear_error(&error);

  /* another VM cannot release it */
  g_assert_false(claims_release(rt->dir, "vm2", "pci_0000_01_00_0", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, "is in use by VM 'vm1'");
  g_clear_error(&error);

  claim = claims_lookup(rt->dir, "pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_cmpstr(claim->vm, ==, "vm1");
  g_assert_cmpint(claim->pid, ==, getpid());
  g_assert_false(claim->stale);
  g_assert_cmpint(claim->since, >, 0);

  g_assert_true(claims_release(rt->dir, "vm1", "pci_0000_01_00_0", &error));
  g_assert_no_error(error);
  g_assert_true(claims_release(rt->dir, "vm1", "pci_0000_01_00_0", &error));
  g_assert_true(claims_acquire(rt->dir, "vm2", "pci_0000_01_00_0", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);
}

/* A device and its IOMMU group are claimed together: both or neither. */
static void
test_acquire_all_or_none(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  const char *const both[] = { "pci_0000_01_00_0", "iommu_group_9", NULL };
  pid_t qemu = live_child();
  ClaimOwner owner = { getpid(), qemu, process_start_time(getpid()), process_start_time(qemu) };

  /* another VM holds the group: the device's claim is not written either */
  g_assert_true(claims_acquire(rt->dir, "vm2", "iommu_group_9", &(ClaimOwner){ getpid(), 0 },
                               &error));
  g_assert_false(claims_acquire_all(rt->dir, "vm1", both, &owner, NULL, NULL, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, "IOMMU group 9 is in use by VM 'vm2'");
  g_clear_error(&error);
  g_autoptr(Claim) none = claims_lookup(rt->dir, "pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_null(none);

  /* once the group is free, both at once, with the start times the caller knew */
  g_assert_true(claims_release(rt->dir, "vm2", "iommu_group_9", &error));
  g_assert_true(claims_acquire_all(rt->dir, "vm1", both, &owner, NULL, NULL, NULL, &error));
  g_assert_no_error(error);
  for (guint i = 0; both[i]; i++) {
    g_autoptr(Claim) claim = claims_lookup(rt->dir, both[i], &error);
    g_assert_no_error(error);
    g_assert_cmpstr(claim->vm, ==, "vm1");
    g_assert_cmpuint(claim->start_time, ==, owner.broker_start_time);
    g_assert_cmpint(claim->qemu_pid, ==, qemu);
    g_assert_cmpuint(claim->qemu_start_time, ==, owner.qemu_start_time);
    g_assert_false(claim->stale);
    /* the owner's own claim is not held elsewhere; another VM sees it held */
    g_assert_null(claims_lookup_held_elsewhere(rt->dir, both[i], "vm1"));
    g_autoptr(Claim) other = claims_lookup_held_elsewhere(rt->dir, both[i], "vm2");
    g_assert_nonnull(other);
    g_assert_cmpstr(other->vm, ==, "vm1");
  }
  /* no temporary file is left beside them */
  g_autofree char *claims = g_build_filename(rt->dir, "claims", NULL);
  g_autoptr(GDir) listing = g_dir_open(claims, 0, &error);
  g_assert_no_error(error);
  for (const char *name; (name = g_dir_read_name(listing)) != NULL;)
    g_assert_true(g_str_equal(name, ".lock") || claims_key_is_valid(name));

  /* released together; one another VM holds is refused and kept, the others go */
  const char *const three[] = { "pci_0000_01_00_0", "usb_1_2", "iommu_group_9", NULL };
  g_assert_true(claims_acquire(rt->dir, "vm2", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_false(claims_release_keys(rt->dir, "vm1", three, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, "USB device at bus 1 device 2 is in use by "
                                                    "VM 'vm2'");
  g_clear_error(&error);
  for (guint i = 0; three[i]; i++) {
    g_autoptr(Claim) claim = claims_lookup(rt->dir, three[i], &error);
    g_assert_no_error(error);
    if (g_str_equal(three[i], "usb_1_2"))
      g_assert_cmpstr(claim->vm, ==, "vm2");
    else
      g_assert_null(claim);
  }
  kill_child(qemu);
}

static void
test_stale(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Claim) claim = NULL;
  g_autoptr(GPtrArray) list = NULL;
  pid_t gone = dead_pid();

  g_assert_true(claims_acquire(rt->dir, "crashed", "pci_0000_05_00_1", &(ClaimOwner){ gone, 0 }, &error));
  g_assert_no_error(error);
  claim = claims_lookup(rt->dir, "pci_0000_05_00_1", &error);
  g_assert_true(claim->stale);
  list = claims_list(rt->dir, NULL, &error);
  g_assert_cmpuint(list->len, ==, 1);
  g_assert_true(((Claim *)list->pdata[0])->stale);

  /* another VM takes it over */
  g_assert_true(claims_acquire(rt->dir, "vm2", "pci_0000_05_00_1", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);
  g_clear_pointer(&claim, claim_free);
  claim = claims_lookup(rt->dir, "pci_0000_05_00_1", &error);
  g_assert_cmpstr(claim->vm, ==, "vm2");
  g_assert_false(claim->stale);
}

/* A recycled pid: alive, but not the process that claimed. */
static void
test_recycled_pid(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename(rt->dir, "claims", "pci_0000_01_00_0", NULL);
  g_autofree char *text = g_strdup_printf("{\"vm\": \"old\", \"pid\": %d, "
                                          "\"start-time\": 1, \"since\": 5}", getpid());

  g_assert_true(claims_acquire(rt->dir, "vm1", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_true(g_file_set_contents(path, text, -1, &error));
  g_assert_true(claims_acquire(rt->dir, "vm1", "pci_0000_01_00_0", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);
}

static void
test_damaged(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename(rt->dir, "claims", "pci_0000_01_00_0", NULL);
  g_autoptr(Claim) claim = NULL;

  g_assert_true(claims_acquire(rt->dir, "vm1", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_true(g_file_set_contents(path, "{not json", -1, &error));
  claim = claims_lookup(rt->dir, "pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_true(claim->stale);
  g_assert_true(claims_acquire(rt->dir, "vm2", "pci_0000_01_00_0", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_no_error(error);
}

/*
 * How a claim file is read: in one pass (json-flat.h) when it is flat, by
 * json-glib otherwise, member by member the same way; a member of the
 * wrong kind makes a damaged claim (stale), an origin's own faults only
 * its origin unknown.  Each text also goes through json-glib's side, made
 * to decline the one pass by a member it does not know: "x": 0.5.
 */
static void
test_reading(Runtime *rt, gconstpointer data)
{
  static const struct {
    const char *members;   /* of the object, after "vm":"vm1","pid":PID, */
    gboolean damaged;
    gint64 qemu_pid;       /* -1: not a claim, stale */
    guint64 since;
    const char *driver;    /* the origin's; "-": none, "!": damaged */
    const char *override;
    gint node_mode;        /* -1: node unknown */
  } cases[] = {
    { "\"start-time\":1,\"since\":5", FALSE, 0, 5, "-", NULL, -1 },
    { "\"qemu-pid\":7,\"qemu-start-time\":2,\"since\":null", FALSE, 7, 0, "-", NULL, -1 },
    { "\"qemu-pid\":-7,\"since\":9", FALSE, 0, 9, "-", NULL, -1 },
    { "\"origin\":{\"driver\":\"e1000e\",\"driver-override\":null,\"node-uid\":0,"
      "\"node-gid\":0,\"node-mode\":384}", FALSE, 0, 0, "e1000e", NULL, 0600 },
    { "\"origin\":{\"driver\":null,\"driver-override\":\"vfio-pci\"}", FALSE, 0, 0, NULL,
      "vfio-pci", -1 },
    /* no node-uid: the node-gid and node-mode say nothing */
    { "\"origin\":{\"driver\":\"e1000e\",\"node-gid\":\"x\"}", FALSE, 0, 0, "e1000e", NULL, -1 },
    { "\"origin\":{\"driver\":\"e1000e\",\"node-uid\":0,\"node-gid\":0}", FALSE, 0, 0, "!", NULL, -1 },
    { "\"origin\":{\"driver\":\"e1000e\",\"node-uid\":0,\"node-gid\":0,\"node-mode\":4096}",
      FALSE, 0, 0, "!", NULL, -1 },
    { "\"origin\":{\"driver\":\"../e1000e\"}", FALSE, 0, 0, "!", NULL, -1 },
    { "\"origin\":{\"driver\":1}", FALSE, 0, 0, "!", NULL, -1 },
    { "\"origin\":\"e1000e\",\"since\":3", FALSE, 0, 3, "-", NULL, -1 },
    /* what a claim does not know is left alone, however deep */
    { "\"later\":{\"since\":1,\"origin\":{\"driver\":1}},\"since\":2", FALSE, 0, 2, "-", NULL, -1 },
    { "\"origin\":{\"later\":{\"driver\":1},\"driver\":\"ahci\"}", FALSE, 0, 0, "ahci", NULL, -1 },
    /* the claim's own members must be what they are */
    { "\"since\":\"5\"", TRUE },
    { "\"qemu-pid\":true", TRUE },
    { "\"start-time\":{}", TRUE },
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename(rt->dir, "claims", "pci_0000_01_00_0", NULL);

  g_assert_true(claims_acquire(rt->dir, "vm1", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    for (guint declined = 0; declined < 2; declined++) {
      g_autofree char *text = g_strdup_printf("{%s\"vm\":\"vm1\",\"pid\":%d,%s}",
                                              declined ? "\"x\":0.5," : "", getpid(),
                                              cases[i].members);
      g_test_message("%s", text);
      g_assert_true(g_file_set_contents(path, text, -1, &error));
      g_autoptr(Claim) claim = claims_lookup(rt->dir, "pci_0000_01_00_0", &error);
      g_assert_no_error(error);
      g_assert_nonnull(claim);
      /* damaged: stale, of no VM */
      if (cases[i].damaged) {
        g_assert_true(claim->stale);
        g_assert_cmpstr(claim->vm, ==, "?");
        continue;
      }
      g_assert_cmpstr(claim->vm, ==, "vm1");
      g_assert_cmpint(claim->pid, ==, getpid());
      g_assert_cmpint(claim->qemu_pid, ==, cases[i].qemu_pid);
      g_assert_cmpint(claim->since, ==, cases[i].since);
      if (g_strcmp0(cases[i].driver, "-") == 0 || g_strcmp0(cases[i].driver, "!") == 0) {
        g_assert_null(claim->origin);
        continue;
      }
      g_assert_nonnull(claim->origin);
      g_assert_cmpstr(claim->origin->driver, ==, cases[i].driver);
      g_assert_cmpstr(claim->origin->override, ==, cases[i].override);
      g_assert_cmpint(claim->origin->node_known, ==, cases[i].node_mode >= 0);
      if (cases[i].node_mode >= 0)
        g_assert_cmpint(claim->origin->node_mode, ==, cases[i].node_mode);
    }
  }
  /* a member named twice: json-glib's reading settles it, the last one counts */
  g_autofree char *twice = g_strdup_printf("{\"vm\":\"vm2\",\"pid\":%d,\"vm\":\"vm1\"}", getpid());
  g_assert_true(g_file_set_contents(path, twice, -1, &error));
  g_autoptr(Claim) claim = claims_lookup(rt->dir, "pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_cmpstr(claim->vm, ==, "vm1");
}

static void
test_list_release_all(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) mine = NULL;
  g_autoptr(GPtrArray) all = NULL;

  g_assert_true(claims_acquire(rt->dir, "vm1", "pci_0000_01_00_0", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_true(claims_acquire(rt->dir, "vm1", "iommu_group_9", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_true(claims_acquire(rt->dir, "vm2", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  mine = claims_list(rt->dir, "vm1", &error);
  g_assert_no_error(error);
  g_assert_cmpuint(mine->len, ==, 2);
  g_assert_cmpstr(((Claim *)mine->pdata[0])->key, ==, "iommu_group_9");
  g_assert_cmpstr(((Claim *)mine->pdata[1])->key, ==, "pci_0000_01_00_0");

  g_assert_cmpint(claims_release_all(rt->dir, "vm1", &error), ==, 2);
  all = claims_list(rt->dir, NULL, &error);
  g_assert_cmpuint(all->len, ==, 1);
  g_assert_cmpstr(((Claim *)all->pdata[0])->vm, ==, "vm2");
}

static void
test_invalid(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) none = NULL;

  g_assert_false(claims_acquire(rt->dir, "vm1", "../../etc/passwd", &(ClaimOwner){ getpid(), 0 }, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "invalid claim key: 1-64 of a-z 0-9 _");
  g_clear_error(&error);
  g_assert_false(claims_acquire(rt->dir, "vm/1", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "invalid VM name for a claim");
  g_clear_error(&error);

  /* no claims directory yet: an empty list */
  none = claims_list("/nonexistent-hostdevd-runtime", NULL, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(none->len, ==, 0);

  g_assert_false(claims_acquire("/proc/hostdevd-no", "vm1", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "cannot create the claims directory /proc/hostdevd-no/claims");
}

/* Processes racing for one key while all stay alive: exactly one wins. */
static void
test_race(Runtime *rt, gconstpointer data)
{
  int results[2], hold[2];
  int wins = 0;
  pid_t children[6];

  g_assert_cmpint(pipe(results), ==, 0);
  g_assert_cmpint(pipe(hold), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS(children); i++) {
    children[i] = fork();
    g_assert_cmpint(children[i], >=, 0);
    if (children[i] == 0) {
      g_autofree char *vm = g_strdup_printf("vm%u", i);
      char won = claims_acquire(rt->dir, vm, "iommu_group_11", &(ClaimOwner){ getpid(), 0 }, NULL) ? '1' : '0';
      char byte;

      close(hold[1]);
      if (write(results[1], &won, 1) != 1)
        _exit(2);
      /* stay alive, so the claim is not stale, until the parent is done */
      while (read(hold[0], &byte, 1) > 0)
        ;
      _exit(0);
    }
  }
  close(hold[0]);
  for (guint i = 0; i < G_N_ELEMENTS(children); i++) {
    char won = 0;

    g_assert_cmpint(read(results[0], &won, 1), ==, 1);
    wins += won == '1';
  }
  close(hold[1]);
  for (guint i = 0; i < G_N_ELEMENTS(children); i++)
    g_assert_cmpint(waitpid(children[i], NULL, 0), ==, children[i]);
  close(results[0]);
  close(results[1]);
  g_assert_cmpint(wins, ==, 1);
}

/* Return: (transfer full): the origin recorded in the claim on @key, NULL if none. */
static ClaimOrigin *
origin_of(Runtime *rt, const char *key)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Claim) claim = claims_lookup(rt->dir, key, &error);

  g_assert_no_error(error);
  g_assert_nonnull(claim);
  return claim_origin_copy(claim->origin);
}

/* A reader of the device's state for claims_acquire_all(): counts its calls. */
typedef struct {
  const ClaimOrigin *origin;   /* what it reads; NULL: the device is gone */
  guint calls;
} OriginReader;

static ClaimOrigin *
read_origin(gpointer data, GError **error)
{
  OriginReader *reader = data;

  reader->calls++;
  if (reader->origin == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND, "the device went away");
    return NULL;
  }
  return claim_origin_copy(reader->origin);
}

static gboolean
acquire_reading(Runtime *rt, const char *vm, const char *const *keys, pid_t broker, pid_t qemu,
                OriginReader *reader, ClaimOrigin **inherited, GError **error)
{
  return claims_acquire_all(rt->dir, vm, keys, &(ClaimOwner){ broker, qemu }, read_origin,
                            reader, inherited, error);
}

/*
 * The device's origin is read once, under the lock, by whoever claims it
 * first, and written with the claim; whoever takes the claim over (a stale
 * one, or the same VM's own) inherits it without reading, and releasing
 * the claim drops it.
 */
static void
test_origin_inherited(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ClaimOrigin) inherited = NULL;
  g_autoptr(ClaimOrigin) kept = NULL;
  g_autoptr(Claim) claim = NULL;
  const char *const key[] = { "pci_0000_01_00_0", NULL };
  ClaimOrigin e1000e = { (char *)"e1000e", (char *)"e1000e", TRUE, 0, 0, 0600 };
  ClaimOrigin later = { (char *)"vfio-pci", (char *)"vfio-pci", FALSE, 0, 0, 0 };
  OriginReader first = { &e1000e, 0 };
  OriginReader again = { &later, 0 };
  pid_t broker = live_child();
  pid_t qemu = live_child();

  g_assert_true(acquire_reading(rt, "vm1", key, broker, qemu, &first, &inherited, &error));
  g_assert_no_error(error);
  g_assert_null(inherited);     /* read, not inherited */
  g_assert_cmpuint(first.calls, ==, 1);
  kept = origin_of(rt, key[0]);
  g_assert_cmpstr(kept->driver, ==, "e1000e");
  g_assert_cmpstr(kept->override, ==, "e1000e");
  g_assert_true(kept->node_known);
  g_assert_cmpuint(kept->node_mode, ==, 0600);
  g_clear_pointer(&kept, claim_origin_free);

  /* the first reading is the original one: its own claim refreshed hands it back */
  g_assert_true(acquire_reading(rt, "vm1", key, broker, qemu, &again, &inherited, &error));
  g_assert_cmpuint(again.calls, ==, 0);
  g_assert_cmpstr(inherited->driver, ==, "e1000e");
  g_clear_pointer(&inherited, claim_origin_free);

  /* another VM neither reads nor inherits while the holder lives */
  g_assert_false(acquire_reading(rt, "vm2", key, getpid(), 0, &again, &inherited, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, "is in use by VM 'vm1'");
  g_clear_error(&error);
  g_assert_cmpuint(again.calls, ==, 0);
  g_assert_null(inherited);

  /* VM1's hostdevd and QEMU die without releasing: the claim is stale */
  kill_child(broker);
  kill_child(qemu);
  g_assert_true(acquire_reading(rt, "vm2", key, getpid(), 0, &again, &inherited, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(again.calls, ==, 0);
  g_assert_nonnull(inherited);
  g_assert_cmpstr(inherited->driver, ==, "e1000e");
  g_assert_cmpstr(inherited->override, ==, "e1000e");
  g_assert_true(inherited->node_known);
  g_assert_cmpuint(inherited->node_uid, ==, 0);
  g_assert_cmpuint(inherited->node_mode, ==, 0600);
  g_clear_pointer(&inherited, claim_origin_free);
  claim = claims_lookup(rt->dir, key[0], &error);
  g_assert_cmpstr(claim->vm, ==, "vm2");
  g_assert_cmpstr(claim->origin->driver, ==, "e1000e");
  g_clear_pointer(&claim, claim_free);

  /* refreshing its own claim keeps it */
  g_assert_true(claims_acquire(rt->dir, "vm2", key[0], &(ClaimOwner){ getpid(), 0 }, &error));
  kept = origin_of(rt, key[0]);
  g_assert_cmpstr(kept->driver, ==, "e1000e");
  g_clear_pointer(&kept, claim_origin_free);

  /* releasing drops it: the next holder reads the device afresh */
  g_assert_true(claims_release(rt->dir, "vm2", key[0], &error));
  g_assert_true(acquire_reading(rt, "vm2", key, getpid(), 0, &again, &inherited, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(again.calls, ==, 1);
  g_assert_null(inherited);
  kept = origin_of(rt, key[0]);
  g_assert_cmpstr(kept->driver, ==, "vfio-pci");
}

/*
 * A reading that fails claims nothing, not even the other keys; an origin
 * with driver names that could build paths is refused.  Only the first
 * key's claim (the device's, not its IOMMU group's) carries the origin.
 */
static void
test_origin_reading(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Claim) claim = NULL;
  const char *const both[] = { "pci_0000_01_00_0", "iommu_group_9", NULL };
  ClaimOrigin bad = { (char *)"../e1000e", NULL, FALSE, 0, 0, 0 };
  ClaimOrigin e1000e = { (char *)"e1000e", NULL, FALSE, 0, 0, 0 };
  OriginReader gone = { NULL, 0 };
  OriginReader damaged = { &bad, 0 };
  OriginReader good = { &e1000e, 0 };

  g_assert_false(acquire_reading(rt, "vm1", both, getpid(), 0, &gone, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND, "the device went away");
  g_clear_error(&error);
  g_assert_false(acquire_reading(rt, "vm1", both, getpid(), 0, &damaged, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "driver names");
  g_clear_error(&error);
  for (guint i = 0; both[i]; i++) {
    claim = claims_lookup(rt->dir, both[i], &error);
    g_assert_no_error(error);
    g_assert_null(claim);
  }

  g_assert_true(acquire_reading(rt, "vm1", both, getpid(), 0, &good, NULL, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(good.calls, ==, 1);
  claim = claims_lookup(rt->dir, both[0], &error);
  g_assert_cmpstr(claim->origin->driver, ==, "e1000e");
  g_clear_pointer(&claim, claim_free);
  claim = claims_lookup(rt->dir, both[1], &error);
  g_assert_cmpstr(claim->vm, ==, "vm1");
  g_assert_null(claim->origin);
}

/* An origin with the device unbound and no driver_override, and no node. */
static void
test_origin_none(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ClaimOrigin) inherited = NULL;
  const char *const key[] = { "pci_0000_01_00_0", NULL };
  ClaimOrigin unbound = { NULL, NULL, FALSE, 0, 0, 0 };
  OriginReader reader = { &unbound, 0 };
  pid_t broker = live_child();

  g_assert_true(acquire_reading(rt, "vm1", key, broker, 0, &reader, NULL, &error));
  g_assert_no_error(error);
  kill_child(broker);
  g_assert_true(claims_acquire_full(rt->dir, "vm2", key[0], &(ClaimOwner){ getpid(), 0 },
                                    &inherited, &error));
  g_assert_no_error(error);
  g_assert_nonnull(inherited);
  g_assert_null(inherited->driver);
  g_assert_null(inherited->override);
  g_assert_false(inherited->node_known);
}

/* Claims of older brokers have no origin: taken over, they hand none on;
 * a damaged origin is dropped, the claim itself still counts. */
static void
test_origin_old_and_damaged(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ClaimOrigin) inherited = NULL;
  g_autoptr(Claim) damaged = NULL;
  g_autofree char *path1 = g_build_filename(rt->dir, "claims", "pci_0000_01_00_0", NULL);
  g_autofree char *path2 = g_build_filename(rt->dir, "claims", "pci_0000_04_01_0", NULL);
  g_autofree char *old = g_strdup_printf("{\"vm\": \"old\", \"pid\": %d, \"start-time\": 0, "
                                         "\"since\": 5}", dead_pid());
  g_autofree char *bad = g_strdup_printf("{\"vm\": \"vm1\", \"pid\": %d, \"start-time\": 0, "
                                         "\"since\": 5, \"origin\": {\"driver\": \"../x\", "
                                         "\"driver-override\": null}}", getpid());

  g_assert_true(claims_acquire(rt->dir, "vm1", "usb_1_2", &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_true(g_file_set_contents(path1, old, -1, &error));
  g_assert_true(g_file_set_contents(path2, bad, -1, &error));
  g_assert_true(claims_acquire_full(rt->dir, "vm2", "pci_0000_01_00_0",
                                    &(ClaimOwner){ getpid(), 0 }, &inherited, &error));
  g_assert_no_error(error);
  g_assert_null(inherited);

  damaged = claims_lookup(rt->dir, "pci_0000_04_01_0", &error);
  g_assert_no_error(error);
  g_assert_cmpstr(damaged->vm, ==, "vm1");
  g_assert_false(damaged->stale);
  g_assert_null(damaged->origin);
}

/* The device of the note tests, 05:00.0 of IOMMU group 12, with its group. */
static const char *const note_keys[] = { "pci_0000_05_00_0", "iommu_group_12", NULL };

/* Return: (transfer full): where the note on @key is. */
static char *
note_path(Runtime *rt, const char *key)
{
  return g_strdup_printf("%s/claims/%s.administered", rt->dir, key);
}

/* vm1 (a hostdevd and a QEMU that live, @broker and @qemu) claims the note
 * tests' device, its origin read as e1000e.  Return: its QEMU. */
static ProcessIdentity
vm1_claims_note_device(Runtime *rt, pid_t *broker, pid_t *qemu)
{
  ClaimOrigin e1000e = { (char *)"e1000e", NULL, TRUE, 0, 0, 0600 };
  OriginReader first = { &e1000e, 0 };
  g_autoptr(GError) error = NULL;

  *broker = live_child();
  *qemu = live_child();
  g_assert_true(acquire_reading(rt, "vm1", note_keys, *broker, *qemu, &first, NULL, &error));
  g_assert_no_error(error);
  return process_identity_of(*qemu);
}

/*
 * lifecycle --crash-points seed 47: vm2 takes over the stale claims of vm1,
 * which left the device bound, and with them what vm1 left to give back.
 * The note on the device says so, so that vm1's journal, replayed once vm2
 * has given the device back and someone set it since, leaves its binding
 * alone.  The group's claim is no device: no note.
 */
static void
test_taken_over_noted(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ClaimOrigin) origin = NULL;
  g_autofree char *taken_by = NULL;
  g_autofree char *text = NULL;
  g_autofree char *note = note_path(rt, note_keys[0]);
  g_autofree char *group_note = note_path(rt, note_keys[1]);
  const char *const *both = note_keys;
  pid_t broker, qemu;
  ProcessIdentity vm1_qemu = vm1_claims_note_device(rt, &broker, &qemu);

  /* vm1 holds it, or refreshes its own: nothing noted */
  g_assert_false(g_file_test(note, G_FILE_TEST_EXISTS));
  kill_child(broker);
  kill_child(qemu);

  g_assert_true(claims_acquire_all(rt->dir, "vm2", both, &(ClaimOwner){ getpid(), 0 }, NULL,
                                   NULL, &origin, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(origin->driver, ==, "e1000e");
  g_assert_true(claims_administered_since(rt->dir, both[0], "vm1", &vm1_qemu, &taken_by));
  g_assert_cmpstr(taken_by, ==, "vm2");
  g_assert_true(g_file_get_contents(note, &text, NULL, NULL));
  g_assert_nonnull(strstr(text, "\"taken-over-by\":\"vm2\""));
  g_assert_false(g_file_test(group_note, G_FILE_TEST_EXISTS));

  /* it outlives vm2's claims, until vm1's journal no longer needs it */
  g_assert_true(claims_release_keys(rt->dir, "vm2", both, &error));
  g_assert_true(claims_administered_since(rt->dir, both[0], "vm1", &vm1_qemu, NULL));
  claims_forget_administered(rt->dir, "vm1", NULL, 0);
  g_assert_false(g_file_test(note, G_FILE_TEST_EXISTS));
}

/*
 * The administrator's word (hostdevctl nodedev-detach/-reattach of a
 * device a VM that is gone left): noted against that VM and its QEMU, only
 * while no VM holds the device; it outlives the claims, which another VM
 * may take over and drop meanwhile; the device's own stale claim takes the
 * administrator's state as its origin; the VM's journal sweep forgets it.
 */
static void
test_administered(Runtime *rt, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ClaimOrigin) origin = NULL;
  g_autofree char *note = note_path(rt, note_keys[0]);
  const char *const *both = note_keys;
  pid_t broker, qemu;
  ProcessIdentity vm1_qemu;
  ProcessIdentity other_qemu = { dead_pid(), 0 };

  /* nobody held it: nothing to note */
  g_assert_true(claims_note_administered(rt->dir, both[0], both[1], "vfio-pci", "vfio-pci",
                                         &error));
  g_assert_no_error(error);
  g_assert_false(g_file_test(note, G_FILE_TEST_EXISTS));

  /* a live VM holds it: Busy, nothing written */
  vm1_qemu = vm1_claims_note_device(rt, &broker, &qemu);
  g_assert_false(claims_note_administered(rt->dir, both[0], both[1], "vfio-pci", "vfio-pci",
                                          &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY, "is in use by VM 'vm1'");
  g_clear_error(&error);
  g_assert_false(g_file_test(note, G_FILE_TEST_EXISTS));
  origin = origin_of(rt, both[0]);
  g_assert_cmpstr(origin->driver, ==, "e1000e");
  g_clear_pointer(&origin, claim_origin_free);

  /* the VM is gone: noted against it and its QEMU, the origin is the administrator's */
  kill_child(broker);
  kill_child(qemu);
  g_assert_true(claims_note_administered(rt->dir, both[0], both[1], "vfio-pci", "vfio-pci",
                                         &error));
  g_assert_no_error(error);
  g_assert_true(claims_administered_since(rt->dir, both[0], "vm1", &vm1_qemu, NULL));
  g_assert_false(claims_administered_since(rt->dir, both[0], "vm1", &other_qemu, NULL));
  g_assert_false(claims_administered_since(rt->dir, both[0], "vm2", &vm1_qemu, NULL));
  g_assert_false(claims_administered_since(rt->dir, "pci_0000_05_00_1", "vm1", &vm1_qemu, NULL));
  origin = origin_of(rt, both[0]);
  g_assert_cmpstr(origin->driver, ==, "vfio-pci");
  g_assert_cmpstr(origin->override, ==, "vfio-pci");
  g_assert_true(origin->node_known);      /* the node's owner before the first holder */
  g_assert_cmpuint(origin->node_mode, ==, 0600);
  g_clear_pointer(&origin, claim_origin_free);

  {
    char *taken_by = (char *)"not written";
    g_assert_true(claims_administered_since(rt->dir, both[0], "vm1", &vm1_qemu, &taken_by));
    g_assert_null(taken_by);   /* the administrator's act */
  }

  /* noted once, however often the administrator acts */
  g_assert_true(claims_note_administered(rt->dir, both[0], NULL, "e1000e", NULL, &error));
  {
    g_autofree char *text = NULL;
    g_assert_true(g_file_get_contents(note, &text, NULL, NULL));
    g_assert_nonnull(strstr(text, "\"vm\":\"vm1\""));
    g_assert_null(strstr(strstr(text, "\"vm\":\"vm1\"") + 1, "\"vm\":\"vm1\""));
  }

  /* another VM takes the stale claims over and lets go: the note stays for vm1's journal */
  g_assert_true(claims_acquire_all(rt->dir, "vm2", both, &(ClaimOwner){ getpid(), 0 }, NULL,
                                   NULL, &origin, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(origin->driver, ==, "e1000e");   /* the administrator's latest */
  g_clear_pointer(&origin, claim_origin_free);
  g_assert_true(claims_release_keys(rt->dir, "vm2", both, &error));
  g_assert_true(claims_administered_since(rt->dir, both[0], "vm1", &vm1_qemu, NULL));

  /* vm1's journal still holds a record of that QEMU: kept; then none: forgotten */
  claims_forget_administered(rt->dir, "vm2", NULL, 0);
  claims_forget_administered(rt->dir, "vm1", &vm1_qemu, 1);
  g_assert_true(claims_administered_since(rt->dir, both[0], "vm1", &vm1_qemu, NULL));
  claims_forget_administered(rt->dir, "vm1", &other_qemu, 1);
  g_assert_false(claims_administered_since(rt->dir, both[0], "vm1", &vm1_qemu, NULL));
  g_assert_false(g_file_test(note, G_FILE_TEST_EXISTS));

  /* a damaged note is ignored, and listing the claims never takes it for one */
  g_assert_true(g_file_set_contents(note, "{\"left-by\":[{\"vm\":\"../x\"}]}", -1, NULL));
  g_assert_false(claims_administered_since(rt->dir, both[0], "vm1", &vm1_qemu, NULL));
  g_autoptr(GPtrArray) list = claims_list(rt->dir, NULL, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(list->len, ==, 0);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
#define RT_TEST(path, func) \
  g_test_add("/claims/" path, Runtime, NULL, runtime_setup, func, runtime_teardown)
  RT_TEST("keys", test_keys);
  RT_TEST("key-mdev", test_key_mdev);
  RT_TEST("qemu-keeps-claim", test_qemu_keeps_claim);
  RT_TEST("broker-alone", test_broker_alone);
  RT_TEST("refresh-same-vm", test_refresh_same_vm);
  RT_TEST("old-format", test_old_format);
  RT_TEST("process-alive", test_process_alive);
  RT_TEST("acquire-busy-release", test_acquire_busy_release);
  RT_TEST("acquire-all-or-none", test_acquire_all_or_none);
  RT_TEST("stale", test_stale);
  RT_TEST("recycled-pid", test_recycled_pid);
  RT_TEST("damaged", test_damaged);
  RT_TEST("reading", test_reading);
  RT_TEST("list-release-all", test_list_release_all);
  RT_TEST("invalid", test_invalid);
  RT_TEST("race", test_race);
  RT_TEST("origin/inherited", test_origin_inherited);
  RT_TEST("origin/reading", test_origin_reading);
  RT_TEST("origin/none", test_origin_none);
  RT_TEST("origin/old-and-damaged", test_origin_old_and_damaged);
  RT_TEST("administered", test_administered);
  RT_TEST("taken-over-noted", test_taken_over_noted);
  return g_test_run();
}
