/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-memlock.c - the RLIMIT_MEMLOCK VFIO needs, and raising it on a
 * real process (a child standing in for QEMU)
 */
#include "host-fixture.h"
#include "memlock.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define GiB (G_GUINT64_CONSTANT(1) << 30)
#define MiB (G_GUINT64_CONSTANT(1) << 20)

static void
test_needed(void)
{
  g_assert_cmpuint(memlock_needed_for_guest(4 * GiB, 0, FALSE), ==, 0);
  g_assert_cmpuint(memlock_needed_for_guest(4 * GiB, 1, FALSE), ==, 5 * GiB);
  /* one container without a vIOMMU, however many devices */
  g_assert_cmpuint(memlock_needed_for_guest(4 * GiB, 3, FALSE), ==, 5 * GiB);
  /* with one, each device may pin guest RAM again */
  g_assert_cmpuint(memlock_needed_for_guest(4 * GiB, 3, TRUE), ==, 13 * GiB);
  g_assert_cmpuint(memlock_needed_for_guest(G_MAXUINT64 / 2, 3, TRUE), ==, G_MAXUINT64);
  g_assert_cmpuint(memlock_needed_for_guest(G_MAXUINT64 - 10, 1, FALSE), ==, G_MAXUINT64);
}

/* A root holding only proc/meminfo with @contents (NULL: no file). */
static char *
meminfo_root(const char *contents)
{
  g_autoptr(GError) error = NULL;
  char *root = g_dir_make_tmp("hostdevd-meminfo-XXXXXX", &error);
  g_assert_no_error(error);
  fixture_mkdir(root, "proc");
  if (contents)
    fixture_write(root, "proc/meminfo", contents);
  host_root_set(root);
  return root;
}

static void
assert_refused(guint64 ram, guint n, gboolean viommu, GQuark domain, gint code,
               const char *needle)
{
  g_autoptr(GError) error = NULL;
  guint64 needed = 42;
  guint64 host = memlock_host_ram_bytes(&error);
  g_assert_no_error(error);
  g_assert_false(memlock_needed_for_reported_guest(ram, host, n, viommu, &needed, &error));
  g_assert_error(error, domain, code);
  g_assert_cmpuint(needed, ==, 0);
  if (strstr(error->message, needle) == NULL)
    g_error("'%s' does not contain '%s'", error->message, needle);
}

/*
 * Issue 11, item 5: a hostile QEMU answered base-memory = 2^63-1 and
 * hostdevd asked for 8 EiB (saturating to "unlimited" on larger answers).
 * What QEMU reports is bounded by the host's memory, and an overflow is an
 * error, never G_MAXUINT64.
 */
static void
test_reported_bounded(void)
{
  g_autofree char *root = meminfo_root("MemTotal:       16318428 kB\n"
                                       "MemFree:         1234567 kB\n");
  g_autoptr(GError) error = NULL;
  guint64 needed = 0;
  guint64 host = 16318428 * G_GUINT64_CONSTANT(1024);

  g_assert_cmpuint(memlock_host_ram_bytes(&error), ==, host);
  g_assert_no_error(error);
  g_assert_true(memlock_needed_for_reported_guest(4 * GiB, host, 1, FALSE, &needed, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(needed, ==, 5 * GiB);
  g_assert_true(memlock_needed_for_reported_guest(4 * GiB, host, 3, TRUE, &needed, &error));
  g_assert_cmpuint(needed, ==, 13 * GiB);
  g_assert_true(memlock_needed_for_reported_guest(host, host, 2, TRUE, &needed, &error));
  g_assert_cmpuint(needed, ==, 2 * host + GiB);
  /* no device, nothing to pin: whatever QEMU reports */
  g_assert_true(memlock_needed_for_reported_guest(G_MAXUINT64, host, 0, TRUE, &needed, &error));
  g_assert_cmpuint(needed, ==, 0);

  assert_refused(G_MAXINT64, 1, FALSE, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                 "QEMU reports 8.0 EiB of guest RAM (9223372036854775807 bytes");
  assert_refused(G_MAXINT64, 1, FALSE, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                 "more than the host's 15.6 GiB (MemTotal)");
  assert_refused(host + 1, 1, FALSE, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                 "left as it is");
  fixture_remove(root);
  host_root_set(NULL);
}

static void
test_reported_overflow(void)
{
  /* a host as large as the format allows, so only the product can overflow */
  g_autofree char *root = meminfo_root("MemTotal: 18014398509481983 kB\n");
  guint64 needed = 0;
  g_autoptr(GError) error = NULL;

  guint64 host = memlock_host_ram_bytes(&error);
  g_assert_no_error(error);
  g_assert_true(memlock_needed_for_reported_guest(G_MAXUINT64 / 4, host, 3, FALSE, &needed,
                                                  &error));
  g_assert_no_error(error);
  g_assert_cmpuint(needed, ==, G_MAXUINT64 / 4 + GiB);
  assert_refused(G_MAXUINT64 / 4, 5, TRUE, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                 "5 VFIO devices behind a vIOMMU");
  assert_refused(G_MAXUINT64 / 4, 4, TRUE, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                 "does not fit in 64 bits");
  fixture_remove(root);
  host_root_set(NULL);
}

/* MemTotal is the kernel's first line; found on another line too, and only as a label */
static void
test_host_ram_line(void)
{
  const struct { const char *meminfo; guint64 kib; } cases[] = {
    { "MemTotal:\t2048 kB", 2048 },
    { "MemFree: 1 kB\nMemTotal:  4096 kB\nSwapTotal: 8 kB\n", 4096 },
    { "XMemTotal: 1 kB\nMemTotal: 512 kB\n", 512 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *root = meminfo_root(cases[i].meminfo);
    g_autoptr(GError) error = NULL;
    g_assert_cmpuint(memlock_host_ram_bytes(&error), ==, cases[i].kib * 1024);
    g_assert_no_error(error);
    fixture_remove(root);
    host_root_set(NULL);
  }
}

static void
test_reported_host_unknown(void)
{
  const char *bad[] = { NULL, "", "MemFree: 1 kB\n", "MemTotal: lots kB\n",
                        "MemTotal: 0 kB\n", "MemTotal: 99999999999999999999 kB\n",
                        "MemTotal: 1024 MB\n" };
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *root = meminfo_root(bad[i]);
    g_autoptr(GError) error = NULL;
    const char *needle = bad[i] ? "/proc/meminfo has no valid 'MemTotal: N kB' line"
                                : "cannot read the host's memory size from /proc/meminfo";
    g_assert_cmpuint(memlock_host_ram_bytes(&error), ==, 0);
    g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR);
    if (strstr(error->message, needle) == NULL)
      g_error("'%s' does not contain '%s'", error->message, needle);
    fixture_remove(root);
    host_root_set(NULL);
  }
}

/*
 * Issue 16, defect 13: a vIOMMU guest gives each VFIO device its own DMA
 * address space, each of which may pin all guest RAM (libvirt: guest
 * memory times the number of VFIO devices, plus 1 GiB).  The helper tells
 * from QEMU's QOM whether there is one.
 */
static void
test_viommu(void)
{
  const char *const q35_viommu[] = {
    "child<pcie-root-port>", "child<intel-iommu>", "child<virtio-net-pci>", NULL,
  };
  const char *const q35_plain[] = { "child<pcie-root-port>", "child<vfio-pci>", NULL };
  const char *const virtio_iommu[] = { "virtio-iommu-pci", NULL };
  gboolean viommu;

  g_assert_true(memlock_qom_type_is_viommu("intel-iommu"));
  g_assert_true(memlock_qom_type_is_viommu("child<amd-iommu>"));
  g_assert_true(memlock_qom_type_is_viommu("child<arm-smmuv3>"));
  g_assert_false(memlock_qom_type_is_viommu("child<>"));
  g_assert_false(memlock_qom_type_is_viommu("child<intel-iommu"));
  g_assert_false(memlock_qom_type_is_viommu("vfio-pci"));
  g_assert_false(memlock_qom_type_is_viommu(NULL));
  g_assert_true(memlock_guest_has_viommu(virtio_iommu));
  g_assert_false(memlock_guest_has_viommu(q35_plain));
  g_assert_false(memlock_guest_has_viommu(NULL));

  /* a 16 GiB guest with intel-iommu getting its second GPU: 2 x 16 + 1 GiB */
  viommu = memlock_guest_has_viommu(q35_viommu);
  g_assert_true(viommu);
  g_assert_cmpuint(memlock_needed_for_guest(16 * GiB, 2, viommu), ==, 33 * GiB);
  g_assert_cmpuint(memlock_needed_for_guest(16 * GiB, 2, FALSE), ==, 17 * GiB);
}

static void
test_format(void)
{
  g_autofree char *a = memlock_format_bytes(G_MAXUINT64);
  g_autofree char *b = memlock_format_bytes(64 * 1024);

  g_assert_cmpstr(a, ==, "unlimited");
  g_assert_cmpstr(b, ==, "64.0 KiB");
}

/* A child that sleeps until killed: "QEMU". */
static pid_t
spawn_sleeper(guint64 soft, guint64 hard)
{
  pid_t pid = fork();

  g_assert_cmpint(pid, >=, 0);
  if (pid == 0) {
    struct rlimit limit = { .rlim_cur = soft, .rlim_max = hard };

    /* never outlive the test, and never keep its output pipes open */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(STDOUT_FILENO);
    close(STDERR_FILENO);
    if (setrlimit(RLIMIT_MEMLOCK, &limit) < 0)
      _exit(1);
    for (;;)
      pause();
  }
  return pid;
}

static void
reap(pid_t pid)
{
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* Return: whether this process has CAP_SYS_RESOURCE (bit 24). */
static gboolean
has_sys_resource(void)
{
  g_autofree char *status = NULL;
  const char *line;
  guint64 caps;

  g_assert_true(g_file_get_contents("/proc/self/status", &status, NULL, NULL));
  line = strstr(status, "CapEff:\t");
  g_assert_nonnull(line);
  caps = g_ascii_strtoull(line + 8, NULL, 16);
  return (caps >> 24) & 1;
}

static void
test_raise(void)
{
  g_autoptr(GError) error = NULL;
  guint64 soft = 0, hard = 0;
  struct rlimit mine;
  pid_t qemu;

  g_assert_cmpint(getrlimit(RLIMIT_MEMLOCK, &mine), ==, 0);
  if (mine.rlim_max != RLIM_INFINITY && mine.rlim_max < 8 * MiB) {
    g_test_skip("the hard RLIMIT_MEMLOCK here is below 8 MiB");
    return;
  }
  mine.rlim_max = mine.rlim_max == RLIM_INFINITY ? 8 * MiB : MIN(mine.rlim_max, 8 * MiB);
  qemu = spawn_sleeper(64 * 1024, mine.rlim_max);
  /* wait until the child has set its limit (bounded: 60 s, a slow run) */
  for (int i = 0; i < 30000; i++) {
    g_assert_true(memlock_get(qemu, &soft, &hard, &error));
    if (soft == 64 * 1024)
      break;
    g_usleep(2000);
  }
  g_assert_cmpuint(soft, ==, 64 * 1024);

  /* within the hard limit: the soft one is raised */
  g_assert_true(memlock_raise(qemu, 4 * MiB, &error));
  g_assert_no_error(error);
  g_assert_true(memlock_get(qemu, &soft, &hard, &error));
  g_assert_cmpuint(soft, ==, 4 * MiB);
  /* never lowered */
  g_assert_true(memlock_raise(qemu, 1 * MiB, &error));
  g_assert_true(memlock_get(qemu, &soft, &hard, &error));
  g_assert_cmpuint(soft, ==, 4 * MiB);

  /* above it: needs CAP_SYS_RESOURCE, which some containers' root lacks */
  if (has_sys_resource() || hard >= 5 * GiB) {
    g_assert_true(memlock_raise(qemu, 5 * GiB, &error));
    g_assert_no_error(error);
    g_assert_true(memlock_get(qemu, &soft, &hard, &error));
    g_assert_cmpuint(soft, ==, 5 * GiB);
    g_assert_cmpuint(hard, >=, 5 * GiB);
  } else {
    g_assert_false(memlock_raise(qemu, 5 * GiB, &error));
    assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                          "may lock only 8.0 MiB of memory (hard RLIMIT_MEMLOCK), but "
                          "VFIO needs 5.0 GiB to pin guest RAM, and hostdevd may not "
                          "raise it: give hostdevd CAP_SYS_RESOURCE");
    g_clear_error(&error);
  }
  reap(qemu);

  g_assert_false(memlock_raise(qemu, GiB, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR, "the process is gone");
  g_clear_error(&error);
  g_assert_false(memlock_raise(0, GiB, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "no QEMU process to raise the locked-memory limit of (pid 0)");
}

/* Without CAP_SYS_RESOURCE the hard limit stands: the error names it. */
static void
test_raise_denied(void)
{
  if (g_test_subprocess()) {
    g_autoptr(GError) error = NULL;
    struct rlimit limit = { .rlim_cur = 64 * 1024, .rlim_max = 64 * 1024 };

    if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
      _exit(3);
    if (setrlimit(RLIMIT_MEMLOCK, &limit) < 0)
      _exit(4);
    if (memlock_raise(getpid(), 5 * GiB, &error))
      _exit(5);
    g_printerr("%s\n", error->message);
    _exit(0);
  }
  g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed();
  g_test_trap_assert_stderr("*QEMU (pid *) may lock only 64.0 KiB of memory (hard "
                            "RLIMIT_MEMLOCK), but VFIO needs 5.0 GiB to pin guest RAM, "
                            "and hostdevd may not raise it: give hostdevd "
                            "CAP_SYS_RESOURCE*LimitMEMLOCK=5368709120 or infinity; "
                            "shell: ulimit -l unlimited*");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/memlock/needed", test_needed);
  g_test_add_func("/memlock/viommu", test_viommu);
  g_test_add_func("/memlock/reported/bounded", test_reported_bounded);
  g_test_add_func("/memlock/reported/overflow", test_reported_overflow);
  g_test_add_func("/memlock/reported/host-unknown", test_reported_host_unknown);
  g_test_add_func("/memlock/host-ram-line", test_host_ram_line);
  g_test_add_func("/memlock/format", test_format);
  g_test_add_func("/memlock/raise", test_raise);
  g_test_add_func("/memlock/raise-denied", test_raise_denied);
  return g_test_run();
}
