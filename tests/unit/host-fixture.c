/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-fixture.c - fixture trees and the fake kernel (see host-fixture.h)
 */
#include "host-fixture.h"

#include <errno.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

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

char *
fixture_extract(void)
{
  const char *dir = g_getenv("HOSTDEVD_FIXTURES");
  g_autofree char *tarball = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *node = NULL;
  char *root;

  /* ~1100 files per tree: on tmpfs when there is one, a disk under load
   * takes seconds for each */
  if (g_access("/dev/shm", W_OK) == 0) {
    root = g_build_filename("/dev/shm", "hostdevd-h4-XXXXXX", NULL);
    g_assert_nonnull(g_mkdtemp(root));
  } else {
    root = g_dir_make_tmp("hostdevd-h4-XXXXXX", &error);
    g_assert_no_error(error);
  }
  if (dir != NULL)
    tarball = g_build_filename(dir, FIXTURE_TARBALL, NULL);
  else
    tarball = g_test_build_filename(G_TEST_DIST, "..", "fixtures", FIXTURE_TARBALL, NULL);
  run((const char *const[]){ "tar", "xzf", tarball, "-C", root, NULL });
  fixture_write(root, "dev/vfio/12", "");
  fixture_write(root, "dev/vfio/vfio", "");
  fixture_write(root, "dev/bus/usb/001/001", "");
  fixture_write(root, "dev/bus/usb/001/002", "");
  fixture_write(root, "dev/bus/usb/002/001", "");
  node = g_build_filename(root, "dev/vfio/12", NULL);
  g_assert_cmpint(g_chmod(node, 0600), ==, 0);
  return root;
}

/* One entry of the tree being removed: writable first, so that its contents can go. */
static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type == FTW_DP)
    return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
  return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int
make_writable(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type == FTW_D || type == FTW_DNR)
    chmod(path, (st->st_mode & 07777) | S_IRWXU);
  return 0;
}

/*
 * fixture_remove() - in this process, without spawning `rm`: a fork in a
 * test whose worker threads are busy (the release tests leave some
 * blocked) could hang the child before exec under the sanitizers.
 */
void
fixture_remove(const char *root)
{
  g_assert_cmpint(nftw(root, make_writable, 16, FTW_PHYS), ==, 0);
  g_assert_cmpint(nftw(root, remove_entry, 16, FTW_PHYS | FTW_DEPTH), ==, 0);
}

void
fixture_write(const char *root, const char *rel, const char *contents)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);
  g_autofree char *dir = g_path_get_dirname(path);
  g_autoptr(GError) error = NULL;

  g_mkdir_with_parents(dir, 0755);
  /* no rename: a sysfs attribute keeps its inode and mode */
  {
    FILE *file = fopen(path, "w");

    g_assert_nonnull(file);
    fputs(contents, file);
    fclose(file);
  }
  g_assert_no_error(error);
}

void
fixture_mkdir(const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);

  g_assert_cmpint(g_mkdir_with_parents(path, 0755), ==, 0);
}

void
fixture_link(const char *root, const char *rel, const char *target)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);
  g_autofree char *dir = g_path_get_dirname(path);

  g_mkdir_with_parents(dir, 0755);
  g_unlink(path);
  g_assert_cmpint(symlink(target, path), ==, 0);
}

void
fixture_unlink(const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);

  g_assert_cmpint(g_unlink(path), ==, 0);
}

char *
fixture_read(const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);
  char *text = NULL;

  if (!g_file_get_contents(path, &text, NULL, NULL))
    return NULL;
  return g_strstrip(text);
}

char *
fixture_link_name(const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);
  g_autofree char *target = g_file_read_link(path, NULL);

  return target ? g_path_get_basename(target) : NULL;
}

gboolean
fixture_exists(const char *root, const char *rel)
{
  g_autofree char *path = g_build_filename(root, rel, NULL);

  return g_file_test(path, G_FILE_TEST_EXISTS) ||
         g_file_test(path, G_FILE_TEST_IS_SYMLINK);
}

void
assert_hostdevd_error(const GError *error, HostdevdError code, const char *substring)
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
/* The fake kernel                                                     */

struct _FakeKernel {
  char *root;
  GMutex lock;
  GCond cond;
  GString *log;
  GHashTable *native;          /* BDF → driver */
  char *fail_suffix;
  int fail_errno;
  FakeProbeMode probe_mode;
  gboolean node_never;
  guint node_delay_ms;
  int chown_errno;
  int chmod_errno;
  gboolean hold_vfio;
  gboolean unbind_blocked;
  gboolean hold_mdev;
  gboolean mdev_remove_blocked;
  guint probe_delay_ms;
  int owned_group;             /* -1: none */
  pid_t group_owner;
};

static const char *
relative(FakeKernel *fake, const char *path)
{
  gsize len = strlen(fake->root);

  if (strncmp(path, fake->root, len) == 0 && path[len] == '/')
    return path + len + 1;
  return path;
}

/* Return: (transfer full): "sys/devices/.../BDF" for @bdf. */
static char *
device_dir(FakeKernel *fake, const char *bdf)
{
  g_autofree char *link = g_strdup_printf("sys/bus/pci/devices/%s", bdf);

  return host_resolve_link(link, NULL);
}

static char *
device_driver(FakeKernel *fake, const char *dir)
{
  g_autofree char *rel = g_strconcat(dir, "/driver", NULL);

  return fixture_link_name(fake->root, rel);
}

static int
device_group(FakeKernel *fake, const char *dir)
{
  g_autofree char *rel = g_strconcat(dir, "/iommu_group", NULL);
  g_autofree char *name = fixture_link_name(fake->root, rel);

  return name ? atoi(name) : -1;
}

typedef struct {
  char *path;
  guint delay_ms;
} NodeJob;

static gpointer
create_node_later(gpointer data)
{
  NodeJob *job = data;

  g_usleep(job->delay_ms * 1000);
  g_file_set_contents(job->path, "", 0, NULL);
  g_chmod(job->path, 0600);
  g_free(job->path);
  g_free(job);
  return NULL;
}

static void
create_vfio_node(FakeKernel *fake, int group)
{
  g_autofree char *rel = g_strdup_printf("dev/vfio/%d", group);
  g_autofree char *path = g_build_filename(fake->root, rel, NULL);

  if (fake->node_never || fixture_exists(fake->root, rel))
    return;
  if (fake->node_delay_ms > 0) {
    NodeJob *job = g_new0(NodeJob, 1);

    job->path = g_steal_pointer(&path);
    job->delay_ms = fake->node_delay_ms;
    g_thread_unref(g_thread_new("fake-udev", create_node_later, job));
    return;
  }
  fixture_write(fake->root, rel, "");
  g_chmod(path, 0600);
}

/* The last vfio-pci device of a group leaves: the kernel removes the node. */
static void
maybe_remove_vfio_node(FakeKernel *fake, int group)
{
  g_autofree char *devices = g_strdup_printf("%s/sys/kernel/iommu_groups/%d/devices",
                                             fake->root, group);
  g_autoptr(GDir) dir = g_dir_open(devices, 0, NULL);
  g_autofree char *node = g_strdup_printf("dev/vfio/%d", group);
  const char *entry;

  while (dir && (entry = g_dir_read_name(dir)) != NULL) {
    g_autofree char *member = device_dir(fake, entry);
    g_autofree char *driver = member ? device_driver(fake, member) : NULL;

    if (g_strcmp0(driver, "vfio-pci") == 0)
      return;
  }
  if (fixture_exists(fake->root, node))
    fixture_unlink(fake->root, node);
}

/* Return: (transfer full): a relative link target, as the kernel writes
 * them, from a link in directory @from to @to (both relative to the root). */
static char *
relative_target(const char *from, const char *to)
{
  g_autoptr(GString) target = g_string_new(NULL);

  for (const char *p = from; *p; p++)
    if (*p == '/')
      g_string_append(target, "../");
  g_string_append(target, "../");
  g_string_append(target, to);
  return g_string_free(g_steal_pointer(&target), FALSE);
}

static void
bind_driver(FakeKernel *fake, const char *bdf, const char *dir, const char *driver)
{
  g_autofree char *driver_rel = g_strdup_printf("sys/bus/pci/drivers/%s", driver);
  g_autofree char *driver_dir = g_build_filename(fake->root, driver_rel, NULL);
  g_autofree char *link = g_strconcat(dir, "/driver", NULL);
  g_autofree char *back = g_strdup_printf("sys/bus/pci/drivers/%s/%s", driver, bdf);
  g_autofree char *to_driver = relative_target(dir, driver_rel);
  g_autofree char *to_device = relative_target(driver_rel, dir);

  g_mkdir_with_parents(driver_dir, 0755);
  fixture_link(fake->root, link, to_driver);
  fixture_link(fake->root, back, to_device);
  if (strcmp(driver, "vfio-pci") == 0)
    create_vfio_node(fake, device_group(fake, dir));
}

static int
do_unbind(FakeKernel *fake, const char *driver, const char *bdf)
{
  g_autofree char *dir = device_dir(fake, bdf);
  g_autofree char *current = dir ? device_driver(fake, dir) : NULL;
  g_autofree char *link = NULL;
  g_autofree char *back = NULL;

  if (dir == NULL || g_strcmp0(current, driver) != 0)
    return ENODEV;
  if (strcmp(driver, "vfio-pci") == 0) {
    /* the kernel waits for the user of the device to close it */
    g_mutex_lock(&fake->lock);
    while (fake->hold_vfio) {
      fake->unbind_blocked = TRUE;
      g_cond_wait(&fake->cond, &fake->lock);
    }
    fake->unbind_blocked = FALSE;
    g_mutex_unlock(&fake->lock);
  }
  link = g_strconcat(dir, "/driver", NULL);
  back = g_strdup_printf("sys/bus/pci/drivers/%s/%s", driver, bdf);
  fixture_unlink(fake->root, link);
  if (fixture_exists(fake->root, back))
    fixture_unlink(fake->root, back);
  if (strcmp(driver, "vfio-pci") == 0)
    maybe_remove_vfio_node(fake, device_group(fake, dir));
  return 0;
}

/* Return: whether @pid runs and is no zombie. */
static gboolean
process_runs(pid_t pid)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
  g_autofree char *text = NULL;
  const char *after_comm;

  if (pid <= 0 || !g_file_get_contents(path, &text, NULL, NULL))
    return FALSE;
  after_comm = strrchr(text, ')');
  return after_comm != NULL && after_comm[1] == ' ' && after_comm[2] != 'Z' &&
         after_comm[2] != 'X';
}

static int
do_probe(FakeKernel *fake, const char *bdf)
{
  g_autofree char *dir = device_dir(fake, bdf);
  g_autofree char *current = NULL;
  g_autofree char *override_rel = NULL;
  g_autofree char *override = NULL;
  const char *driver;

  if (dir == NULL)
    return ENODEV;
  if (fake->probe_delay_ms > 0)
    g_usleep(fake->probe_delay_ms * 1000);
  current = device_driver(fake, dir);
  if (current != NULL)
    return 0;
  /* a misbehaving probe happens once, then the kernel behaves again */
  if (fake->probe_mode == FAKE_PROBE_NOTHING) {
    fake->probe_mode = FAKE_PROBE_NORMAL;
    return 0;
  }
  if (fake->probe_mode == FAKE_PROBE_OTHER) {
    fake->probe_mode = FAKE_PROBE_NORMAL;
    bind_driver(fake, bdf, dir, "pci-stub");
    return 0;
  }
  override_rel = g_strconcat(dir, "/driver_override", NULL);
  override = fixture_read(fake->root, override_rel);
  if (override != NULL && strcmp(override, "(null)") != 0) {
    g_autofree char *driver_dir = g_strdup_printf("sys/bus/pci/drivers/%s", override);

    /* an override names the only driver that may bind */
    if (fixture_exists(fake->root, driver_dir))
      bind_driver(fake, bdf, dir, override);
    return 0;
  }
  driver = g_hash_table_lookup(fake->native, bdf);
  if (driver != NULL && strcmp(driver, "vfio-pci") != 0) {
    /* the group's DMA still belongs to a (dying) QEMU: no host driver yet */
    if (fake->group_owner > 0 && device_group(fake, dir) == fake->owned_group &&
        process_runs(fake->group_owner))
      return EINVAL;
    bind_driver(fake, bdf, dir, driver);
  }
  return 0;
}

static int
do_numvfs(FakeKernel *fake, const char *bdf, const char *value)
{
  g_autofree char *dir = device_dir(fake, bdf);
  g_autofree char *rel = g_strconcat(dir, "/sriov_numvfs", NULL);
  guint64 count;

  if (!g_ascii_string_to_unsigned(value, 10, 0, 0xffff, &count, NULL))
    return EINVAL;
  /* drop the old VFs' links, add the new ones */
  for (guint i = 0; i < 8; i++) {
    g_autofree char *link = g_strdup_printf("%s/virtfn%u", dir, i);

    if (fixture_exists(fake->root, link))
      fixture_unlink(fake->root, link);
  }
  for (guint i = 0; i < count; i++) {
    g_autofree char *link = g_strdup_printf("%s/virtfn%u", dir, i);
    g_autofree char *target = g_strdup_printf("../%.*s%x", (int)strlen(bdf) - 1, bdf, i + 1);

    fixture_link(fake->root, link, target);
  }
  {
    g_autofree char *text = g_strdup_printf("%u\n", (guint)count);
    fixture_write(fake->root, rel, text);
  }
  return 0;
}

static int
do_mdev_create(FakeKernel *fake, const char *parent, const char *type, const char *uuid)
{
  g_autofree char *parent_rel = g_strdup_printf("sys/class/mdev_bus/%s", parent);
  g_autofree char *parent_dir = host_resolve_link(parent_rel, NULL);
  g_autofree char *avail_rel = g_strdup_printf("%s/mdev_supported_types/%s/available_instances",
                                               parent_rel, type);
  g_autofree char *avail = fixture_read(fake->root, avail_rel);
  g_autofree char *dev_rel = NULL;
  g_autofree char *dev_abs = NULL;
  g_autofree char *type_abs = NULL;
  g_autofree char *count = NULL;
  g_autofree char *bus_link = g_strdup_printf("sys/bus/mdev/devices/%s", uuid);
  g_autofree char *remove_rel = NULL;
  g_autofree char *type_link = NULL;

  if (parent_dir == NULL)
    return ENODEV;
  if (avail == NULL || atoi(avail) <= 0)
    return EUSERS;
  if (fixture_exists(fake->root, bus_link))
    return EEXIST;
  dev_rel = g_strdup_printf("%s/%s", parent_dir, uuid);
  dev_abs = g_strdup_printf("%s/%s", fake->root, dev_rel);
  type_abs = g_strdup_printf("%s/%s/mdev_supported_types/%s", fake->root, parent_dir, type);
  remove_rel = g_strdup_printf("%s/remove", dev_rel);
  type_link = g_strdup_printf("%s/mdev_type", dev_rel);
  fixture_mkdir(fake->root, dev_rel);
  fixture_write(fake->root, remove_rel, "");
  fixture_link(fake->root, type_link, type_abs);
  g_free(dev_abs);
  dev_abs = relative_target("sys/bus/mdev/devices", dev_rel);
  fixture_link(fake->root, bus_link, dev_abs);
  count = g_strdup_printf("%d\n", atoi(avail) - 1);
  fixture_write(fake->root, avail_rel, count);
  return 0;
}

static int
do_mdev_remove(FakeKernel *fake, const char *uuid)
{
  g_autofree char *bus_link = g_strdup_printf("sys/bus/mdev/devices/%s", uuid);
  g_autofree char *dev_rel = host_resolve_link(bus_link, NULL);
  g_autofree char *type_rel = g_strdup_printf("%s/mdev_type", dev_rel);
  g_autofree char *type_abs = g_build_filename(fake->root, type_rel, NULL);
  g_autofree char *type_target = g_file_read_link(type_abs, NULL);
  g_autofree char *avail_abs = g_strdup_printf("%s/available_instances", type_target);
  g_autofree char *avail = NULL;
  g_autofree char *dev_abs = g_build_filename(fake->root, dev_rel, NULL);

  if (dev_rel == NULL)
    return ENODEV;
  /* Linux 5.19+: the remove waits until the device's user lets go */
  g_mutex_lock(&fake->lock);
  while (fake->hold_mdev) {
    fake->mdev_remove_blocked = TRUE;
    g_cond_wait(&fake->cond, &fake->lock);
  }
  fake->mdev_remove_blocked = FALSE;
  g_mutex_unlock(&fake->lock);
  if (g_file_get_contents(avail_abs, &avail, NULL, NULL)) {
    g_autofree char *count = g_strdup_printf("%d\n", atoi(avail) + 1);
    g_file_set_contents(avail_abs, count, -1, NULL);
  }
  fixture_unlink(fake->root, bus_link);
  run((const char *const[]){ "rm", "-rf", "--", dev_abs, NULL });
  return 0;
}

static void
log_line(FakeKernel *fake, const char *format, ...) G_GNUC_PRINTF(2, 3);

static void
log_line(FakeKernel *fake, const char *format, ...)
{
  va_list ap;

  g_mutex_lock(&fake->lock);
  if (fake->log->len)
    g_string_append_c(fake->log, '\n');
  va_start(ap, format);
  g_string_append_vprintf(fake->log, format, ap);
  va_end(ap);
  g_mutex_unlock(&fake->lock);
}

static int
fake_write(const char *path, const char *value, gpointer user_data)
{
  FakeKernel *fake = user_data;
  const char *rel = relative(fake, path);
  g_autofree char *stripped = g_strstrip(g_strdup(value));
  g_auto(GStrv) parts = g_strsplit(rel, "/", -1);
  guint n = g_strv_length(parts);

  log_line(fake, "write %s %s", rel, stripped);

  g_mutex_lock(&fake->lock);
  if (fake->fail_suffix && g_str_has_suffix(rel, fake->fail_suffix)) {
    int err = fake->fail_errno;

    g_clear_pointer(&fake->fail_suffix, g_free);
    g_mutex_unlock(&fake->lock);
    return err;
  }
  g_mutex_unlock(&fake->lock);

  if (g_str_has_prefix(rel, "sys/bus/pci/devices/") && n == 6 &&
      strcmp(parts[5], "driver_override") == 0) {
    g_autofree char *text = g_strdup_printf("%s\n", *stripped ? stripped : "(null)");
    fixture_write(fake->root, rel, text);
    return 0;
  }
  if (g_str_has_prefix(rel, "sys/bus/pci/drivers/") && n == 6 &&
      strcmp(parts[5], "unbind") == 0)
    return do_unbind(fake, parts[4], stripped);
  if (strcmp(rel, "sys/bus/pci/drivers_probe") == 0)
    return do_probe(fake, stripped);
  if (g_str_has_prefix(rel, "sys/bus/pci/devices/") && n == 6 &&
      strcmp(parts[5], "sriov_numvfs") == 0)
    return do_numvfs(fake, parts[4], stripped);
  if (g_str_has_prefix(rel, "sys/class/mdev_bus/") && n == 7 &&
      strcmp(parts[6], "create") == 0)
    return do_mdev_create(fake, parts[3], parts[5], stripped);
  if (g_str_has_prefix(rel, "sys/bus/mdev/devices/") && n == 6 &&
      strcmp(parts[5], "remove") == 0)
    return do_mdev_remove(fake, parts[4]);
  return host_ops_real()->write_attr(path, value, NULL);
}

static int
fake_chown(const char *path, uid_t uid, gid_t gid, gpointer user_data)
{
  FakeKernel *fake = user_data;

  log_line(fake, "chown %s %u %u", relative(fake, path), (unsigned)uid, (unsigned)gid);
  if (fake->chown_errno) {
    int err = fake->chown_errno;

    fake->chown_errno = 0; /* once, like every injected failure */
    return err;
  }
  return host_ops_real()->chown(path, uid, gid, NULL);
}

static int
fake_chmod(const char *path, mode_t mode, gpointer user_data)
{
  FakeKernel *fake = user_data;

  log_line(fake, "chmod %s %04o", relative(fake, path), (unsigned)mode);
  if (fake->chmod_errno) {
    int err = fake->chmod_errno;

    fake->chmod_errno = 0;
    return err;
  }
  return host_ops_real()->chmod(path, mode, NULL);
}

FakeKernel *
fake_kernel_new(const char *root)
{
  FakeKernel *fake = g_new0(FakeKernel, 1);
  g_autofree char *devices = g_build_filename(root, "sys/bus/pci/devices", NULL);
  g_autoptr(GDir) dir = g_dir_open(devices, 0, NULL);
  const char *entry;
  HostOps ops = {
    .write_attr = fake_write, .chown = fake_chown, .chmod = fake_chmod, .user_data = fake,
  };

  fake->root = g_strdup(root);
  fake->owned_group = -1;
  g_mutex_init(&fake->lock);
  g_cond_init(&fake->cond);
  fake->log = g_string_new(NULL);
  fake->native = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  host_root_set(root);
  while (dir && (entry = g_dir_read_name(dir)) != NULL) {
    g_autofree char *dev = device_dir(fake, entry);
    char *driver = dev ? device_driver(fake, dev) : NULL;

    if (driver != NULL)
      g_hash_table_insert(fake->native, g_strdup(entry), driver);
  }
  host_ops_set(&ops);
  return fake;
}

void
fake_kernel_free(FakeKernel *fake)
{
  host_ops_set(NULL);
  fake_kernel_release_vfio(fake);
  fake_kernel_release_mdev(fake);
  g_free(fake->root);
  g_free(fake->fail_suffix);
  g_string_free(fake->log, TRUE);
  g_hash_table_unref(fake->native);
  g_mutex_clear(&fake->lock);
  g_cond_clear(&fake->cond);
  g_free(fake);
}

void
fake_kernel_fail_write(FakeKernel *fake, const char *suffix, int err)
{
  g_mutex_lock(&fake->lock);
  g_free(fake->fail_suffix);
  fake->fail_suffix = g_strdup(suffix);
  fake->fail_errno = err;
  g_mutex_unlock(&fake->lock);
}

void
fake_kernel_set_probe_mode(FakeKernel *fake, FakeProbeMode mode)
{
  fake->probe_mode = mode;
}

void
fake_kernel_set_vfio_node(FakeKernel *fake, gboolean never, guint delay_ms)
{
  fake->node_never = never;
  fake->node_delay_ms = delay_ms;
}

void
fake_kernel_fail_chown(FakeKernel *fake, int err)
{
  fake->chown_errno = err;
}

void
fake_kernel_fail_chmod(FakeKernel *fake, int err)
{
  fake->chmod_errno = err;
}

void
fake_kernel_hold_vfio(FakeKernel *fake)
{
  g_mutex_lock(&fake->lock);
  fake->hold_vfio = TRUE;
  g_mutex_unlock(&fake->lock);
}

void
fake_kernel_release_vfio(FakeKernel *fake)
{
  g_mutex_lock(&fake->lock);
  fake->hold_vfio = FALSE;
  g_cond_broadcast(&fake->cond);
  g_mutex_unlock(&fake->lock);
}

gboolean
fake_kernel_unbind_blocked(FakeKernel *fake)
{
  gboolean blocked;

  g_mutex_lock(&fake->lock);
  blocked = fake->unbind_blocked;
  g_mutex_unlock(&fake->lock);
  return blocked;
}

char *
fake_kernel_log(FakeKernel *fake)
{
  char *copy;

  g_mutex_lock(&fake->lock);
  copy = g_strdup(fake->log->str);
  g_mutex_unlock(&fake->lock);
  return copy;
}

void
fake_kernel_set_native(FakeKernel *fake, const char *bdf, const char *driver)
{
  g_hash_table_replace(fake->native, g_strdup(bdf), g_strdup(driver));
}

void
fake_kernel_hold_mdev(FakeKernel *fake)
{
  g_mutex_lock(&fake->lock);
  fake->hold_mdev = TRUE;
  g_mutex_unlock(&fake->lock);
}

void
fake_kernel_release_mdev(FakeKernel *fake)
{
  g_mutex_lock(&fake->lock);
  fake->hold_mdev = FALSE;
  g_cond_broadcast(&fake->cond);
  g_mutex_unlock(&fake->lock);
}

gboolean
fake_kernel_mdev_remove_blocked(FakeKernel *fake)
{
  gboolean blocked;

  g_mutex_lock(&fake->lock);
  blocked = fake->mdev_remove_blocked;
  g_mutex_unlock(&fake->lock);
  return blocked;
}

void
fake_kernel_set_probe_delay(FakeKernel *fake, guint delay_ms)
{
  fake->probe_delay_ms = delay_ms;
}

void
fake_kernel_set_group_owner(FakeKernel *fake, int group, pid_t pid)
{
  fake->owned_group = pid > 0 ? group : -1;
  fake->group_owner = pid;
}
