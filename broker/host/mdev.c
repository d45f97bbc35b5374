/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mdev.c - mediated devices
 *
 * sysfs: /sys/class/mdev_bus/PARENT/mdev_supported_types/TYPE/{name,
 * device_api,available_instances,description,create} and
 * /sys/bus/mdev/devices/UUID (a link to the instance below its parent,
 * with mdev_type, iommu_group and driver links and "remove").
 */
#define G_LOG_DOMAIN "hostdevd"

#include "mdev.h"
#include "claims.h"
#include "host-pci.h"
#include "host-root.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <string.h>

void
mdev_type_free(MdevType *type)
{
  if (type == NULL)
    return;
  g_free(type->id);
  g_free(type->name);
  g_free(type->device_api);
  g_free(type->description);
  g_free(type);
}

void
mdev_device_free(MdevDevice *device)
{
  if (device == NULL)
    return;
  g_free(device->uuid);
  g_free(device->parent);
  g_free(device->type);
  g_free(device->sysfs_path);
  g_free(device->driver);
  g_free(device);
}

gboolean
mdev_uuid_parse(const char *text, guint8 out[16])
{
  static const int dashes[] = { 8, 13, 18, 23 };
  guint n = 0;

  if (text == NULL || strlen(text) != 36)
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS(dashes); i++)
    if (text[dashes[i]] != '-')
      return FALSE;
  for (const char *p = text; *p; p++) {
    int high, low;

    if (*p == '-')
      continue;
    high = g_ascii_xdigit_value(p[0]);
    low = g_ascii_xdigit_value(p[1]);
    if (high < 0 || low < 0 || n >= 16)
      return FALSE;
    out[n++] = (guint8)(high << 4 | low);
    p++;
  }
  return n == 16;
}

static char *
uuid_format(const guint8 bytes[16])
{
  return g_strdup_printf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                         "%02x%02x%02x%02x%02x%02x",
                         bytes[0], bytes[1], bytes[2], bytes[3], bytes[4],
                         bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                         bytes[10], bytes[11], bytes[12], bytes[13],
                         bytes[14], bytes[15]);
}

char *
mdev_uuid_v3(const guint8 namespace_uuid[16], const char *name)
{
  g_autoptr(GChecksum) md5 = g_checksum_new(G_CHECKSUM_MD5);
  guint8 digest[16];
  gsize length = sizeof(digest);

  g_checksum_update(md5, namespace_uuid, 16);
  g_checksum_update(md5, (const guchar *)name, (gssize)strlen(name));
  g_checksum_get_digest(md5, digest, &length);
  digest[6] = (digest[6] & 0x0f) | 0x30; /* version 3 */
  digest[8] = (digest[8] & 0x3f) | 0x80; /* RFC 4122 variant */
  return uuid_format(digest);
}

char *
mdev_uuid_for_vm(const char *vm, guint index)
{
  guint8 ns[16];
  g_autofree char *name = g_strdup_printf("%s/%u", vm, index);

  if (!mdev_uuid_parse(MDEV_UUID_NAMESPACE, ns))
    g_assert_not_reached();
  return mdev_uuid_v3(ns, name);
}

gboolean
mdev_uuid_is_version3(const char *uuid)
{
  guint8 bytes[16];

  return mdev_uuid_parse(uuid, bytes) && (bytes[6] >> 4) == 3;
}

gboolean
mdev_uuid_vm_index(const char *uuid, const char *vm, guint *index)
{
  g_autofree char *lower = NULL;

  if (!mdev_uuid_is_version3(uuid))
    return FALSE;
  lower = g_ascii_strdown(uuid, -1);
  for (guint i = 0; i < MDEV_VM_INDEX_LIMIT; i++) {
    g_autofree char *derived = mdev_uuid_for_vm(vm, i);
    if (strcmp(derived, lower) == 0) {
      if (index)
        *index = i;
      return TRUE;
    }
  }
  return FALSE;
}

static gboolean
sysfs_name_is_valid(const char *name)
{
  gsize len = name ? strlen(name) : 0;

  if (len == 0 || len > 64 || name[0] == '.')
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum(*p) && *p != ':' && *p != '.' && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

gboolean
mdev_parent_parse(const char *text, char **sysfs_name, GError **error)
{
  PciAddress addr;

  if (text != NULL && g_str_has_prefix(text, "pci_")) {
    if (!pci_address_parse_nodedev(text, &addr, error))
      return FALSE;
    *sysfs_name = pci_address_format(&addr);
    return TRUE;
  }
  if (text != NULL && pci_address_parse(text, &addr, NULL)) {
    *sysfs_name = pci_address_format(&addr);
    return TRUE;
  }
  if (!sysfs_name_is_valid(text)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "'%s' is not an mdev parent: give a PCI address (0000:00:02.0), "
                "its node device name (pci_0000_00_02_0), or the sysfs name "
                "of the parent device", text ? text : "");
    return FALSE;
  }
  *sysfs_name = g_strdup(text);
  return TRUE;
}

static char *
read_type_attr(const char *parent, const char *type, const char *attr)
{
  g_autofree char *path = host_path("sys/class/mdev_bus/%s/mdev_supported_types/%s/%s",
                                    parent, type, attr);
  g_autofree char *text = host_read_attr(path, NULL);

  if (text == NULL || *text == '\0')
    return NULL;
  return g_utf8_make_valid(text, -1);
}

static MdevType *
read_type(const char *parent, const char *id)
{
  g_autoptr(MdevType) type = g_new0(MdevType, 1);
  g_autofree char *available = read_type_attr(parent, id, "available_instances");
  guint64 count = 0;

  type->id = g_strdup(id);
  type->name = read_type_attr(parent, id, "name");
  type->device_api = read_type_attr(parent, id, "device_api");
  type->description = read_type_attr(parent, id, "description");
  if (available != NULL)
    g_ascii_string_to_unsigned(available, 10, 0, G_MAXUINT32, &count, NULL);
  type->available = (guint)count;
  return g_steal_pointer(&type);
}

static gint
compare_types(gconstpointer a, gconstpointer b)
{
  return g_strcmp0((*(MdevType *const *)a)->id, (*(MdevType *const *)b)->id);
}

GPtrArray *
mdev_list_types(const char *parent, GError **error)
{
  g_autoptr(GPtrArray) types = g_ptr_array_new_with_free_func((GDestroyNotify)mdev_type_free);
  g_autofree char *path = NULL;
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *entry;

  if (!sysfs_name_is_valid(parent)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "'%s' is not a device name", parent ? parent : "");
    return NULL;
  }
  path = host_path("sys/class/mdev_bus/%s/mdev_supported_types", parent);
  dir = g_dir_open(path, 0, &local_error);
  if (dir == NULL) {
    if (g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return g_steal_pointer(&types);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot list the mdev types of %s: %s", parent, local_error->message);
    return NULL;
  }
  while ((entry = g_dir_read_name(dir)) != NULL)
    if (sysfs_name_is_valid(entry))
      g_ptr_array_add(types, read_type(parent, entry));
  g_ptr_array_sort(types, compare_types);
  return g_steal_pointer(&types);
}

static MdevDevice *
read_device(const char *uuid)
{
  g_autoptr(MdevDevice) device = g_new0(MdevDevice, 1);
  g_autofree char *rel_link = g_strdup_printf("sys/bus/mdev/devices/%s", uuid);
  g_autofree char *rel = host_resolve_link(rel_link, NULL);
  g_autofree char *type_link = host_path("sys/bus/mdev/devices/%s/mdev_type", uuid);
  g_autofree char *group_link = host_path("sys/bus/mdev/devices/%s/iommu_group", uuid);
  g_autofree char *driver_link = host_path("sys/bus/mdev/devices/%s/driver", uuid);
  g_autofree char *group = host_read_link_name(group_link, NULL);
  guint64 number;

  device->uuid = g_ascii_strdown(uuid, -1);
  device->type = host_read_link_name(type_link, NULL);
  device->driver = host_read_link_name(driver_link, NULL);
  device->iommu_group = group && g_ascii_string_to_unsigned(group, 10, 0, G_MAXINT, &number, NULL)
                        ? (int)number : -1;
  if (rel != NULL) {
    g_autofree char *parent_dir = g_path_get_dirname(rel);

    device->sysfs_path = g_strconcat("/", rel, NULL);
    device->parent = g_path_get_basename(parent_dir);
  } else {
    device->sysfs_path = g_strdup_printf("/sys/bus/mdev/devices/%s", uuid);
  }
  return g_steal_pointer(&device);
}

static gint
compare_devices(gconstpointer a, gconstpointer b)
{
  return g_strcmp0((*(MdevDevice *const *)a)->uuid, (*(MdevDevice *const *)b)->uuid);
}

GPtrArray *
mdev_list_devices(GError **error)
{
  g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func((GDestroyNotify)mdev_device_free);
  g_autofree char *path = host_path("sys/bus/mdev/devices");
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GDir) dir = host_dir_open_listing(path, "mediated devices", &local_error);
  const char *entry;

  if (dir == NULL) {
    if (local_error) {
      g_propagate_error(error, g_steal_pointer(&local_error));
      return NULL;
    }
    return g_steal_pointer(&devices);
  }
  while ((entry = g_dir_read_name(dir)) != NULL) {
    guint8 bytes[16];

    if (mdev_uuid_parse(entry, bytes))
      g_ptr_array_add(devices, read_device(entry));
  }
  g_ptr_array_sort(devices, compare_devices);
  return g_steal_pointer(&devices);
}

static gboolean
check_uuid(const char *uuid, GError **error)
{
  guint8 bytes[16];

  if (!mdev_uuid_parse(uuid, bytes)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "'%s' is not a UUID (8-4-4-4-12 hex digits)", uuid ? uuid : "");
    return FALSE;
  }
  return TRUE;
}

MdevDevice *
mdev_device_find(const char *uuid, GError **error)
{
  g_autofree char *lower = NULL;
  g_autofree char *dir = NULL;

  if (!check_uuid(uuid, error))
    return NULL;
  lower = g_ascii_strdown(uuid, -1);
  dir = host_path("sys/bus/mdev/devices/%s", lower);
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "there is no mediated device %s on this host: create it first "
                "(`hostdevctl mdev-create PARENT TYPE %s`), or list those that exist "
                "with `hostdevctl nodedev-list --cap mdev`", lower, lower);
    return NULL;
  }
  return read_device(lower);
}

gboolean
mdev_create(const char *parent, const char *type, const char *uuid, GError **error)
{
  g_autofree char *parent_name = NULL;
  g_autofree char *parent_dir = NULL;
  g_autofree char *create = NULL;
  g_autofree char *device_dir = NULL;
  g_autofree char *lower = NULL;
  g_autoptr(MdevType) info = NULL;
  g_autoptr(GError) local_error = NULL;
  int err;

  if (!mdev_parent_parse(parent, &parent_name, error) || !check_uuid(uuid, error))
    return FALSE;
  if (!sysfs_name_is_valid(type)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "'%s' is not an mdev type name", type ? type : "");
    return FALSE;
  }
  lower = g_ascii_strdown(uuid, -1);

  parent_dir = host_path("sys/class/mdev_bus/%s", parent_name);
  if (!g_file_test(parent_dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "%s is not an mdev parent (no /sys/class/mdev_bus/%s): load "
                "the vendor's mdev driver (e.g. i915 with GVT-g enabled, "
                "nvidia vGPU manager) or list parents with "
                "`hostdevctl nodedev-list --cap pci --json`",
                parent_name, parent_name);
    return FALSE;
  }
  create = host_path("sys/class/mdev_bus/%s/mdev_supported_types/%s/create",
                     parent_name, type);
  if (!g_file_test(create, G_FILE_TEST_EXISTS)) {
    g_autoptr(GPtrArray) types = mdev_list_types(parent_name, NULL);
    g_autoptr(GString) offered = g_string_new(NULL);

    for (guint i = 0; types && i < types->len; i++)
      g_string_append_printf(offered, "%s%s", i ? ", " : "",
                             ((MdevType *)types->pdata[i])->id);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "%s offers no mdev type '%s'; it offers: %s", parent_name,
                type, offered->len ? offered->str : "none");
    return FALSE;
  }
  device_dir = host_path("sys/bus/mdev/devices/%s", lower);
  if (g_file_test(device_dir, G_FILE_TEST_EXISTS)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "an mdev with UUID %s exists already: use it, or remove it "
                "with `hostdevctl mdev-remove %s`", lower, lower);
    return FALSE;
  }
  info = read_type(parent_name, type);
  if (info->available == 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "no instance of mdev type '%s' is left on %s "
                "(available_instances is 0): remove an unused mdev of the "
                "parent, or choose a smaller type", type, parent_name);
    return FALSE;
  }

  err = host_write_attr(create, lower, &local_error);
  if (err != 0) {
    const char *why = err == EEXIST ? "an mdev with this UUID exists already"
                    : err == EUSERS || err == ENOSPC ? "no instance of the type is left"
                    : err == EINVAL ? "the vendor driver rejected it (see dmesg)"
                    : "see dmesg";
    g_set_error(error, HOSTDEVD_ERROR,
                err == EEXIST || err == EUSERS || err == ENOSPC
                  ? HOSTDEVD_ERROR_BUSY : HOSTDEVD_ERROR_HOST_ERROR,
                "cannot create mdev %s of type '%s' on %s: %s (%s)",
                lower, type, parent_name, why, local_error->message);
    return FALSE;
  }
  if (!g_file_test(device_dir, G_FILE_TEST_EXISTS)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "the kernel accepted mdev %s of type '%s' on %s, but "
                "/sys/bus/mdev/devices/%s did not appear; see dmesg",
                lower, type, parent_name, lower);
    return FALSE;
  }
  return TRUE;
}

/*
 * A parent and its mediated devices are one piece of hardware held two
 * ways: unbinding the parent's driver (to give it to a VM whole) takes
 * every mdev of it away from whoever uses it, so neither may be claimed
 * while a live claim holds the other.
 */

/* Return: (nullable): the live claim on @key; NULL when there is none, or with
 * @error when the claims cannot be read. */
static Claim *
live_claim(const char *runtime_dir, const char *key, GError **error)
{
  g_autoptr(Claim) claim = claims_lookup(runtime_dir, key, error);
  return claim && !claim->stale ? g_steal_pointer(&claim) : NULL;
}

gboolean
mdev_check_children_unclaimed(const PciAddress *addr, const char *runtime_dir, GError **error)
{
  g_autofree char *name = pci_address_format(addr);
  g_autofree char *parent_dir = host_path("sys/class/mdev_bus/%s", name);
  g_autoptr(GPtrArray) mdevs = NULL;

  if (!g_file_test(parent_dir, G_FILE_TEST_EXISTS))
    return TRUE;   /* no mdev parent */
  if ((mdevs = mdev_list_devices(error)) == NULL)
    return FALSE;
  for (guint i = 0; i < mdevs->len; i++) {
    const MdevDevice *mdev = mdevs->pdata[i];
    g_autofree char *key = g_strcmp0(mdev->parent, name) == 0 ? claims_key_mdev(mdev->uuid)
                                                               : NULL;
    g_autoptr(GError) local = NULL;
    g_autoptr(Claim) claim = key ? live_claim(runtime_dir, key, &local) : NULL;
    if (local) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    if (claim == NULL)
      continue;
    g_autofree char *holder = claims_describe_holder(claim);
    g_autofree char *remedy = claims_describe_remedy(claim);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "PCI device %s is the parent of mediated device %s, which is in use by %s: "
                "unbinding the parent's driver (to give it to a VM whole, or to vfio-pci) "
                "would take the mdev away; %s", name, mdev->uuid, holder, remedy);
    return FALSE;
  }
  return TRUE;
}

gboolean
mdev_check_parent_unclaimed(const char *uuid, const char *runtime_dir, GError **error)
{
  g_autoptr(MdevDevice) mdev = mdev_device_find(uuid, NULL);
  PciAddress parent;

  /* gone already: QEMU will say so; a parent that is no PCI device is never given whole */
  if (mdev == NULL || mdev->parent == NULL || !pci_address_parse(mdev->parent, &parent, NULL))
    return TRUE;
  g_autofree char *key = claims_key_pci(&parent);
  g_autoptr(GError) local = NULL;
  g_autoptr(Claim) claim = live_claim(runtime_dir, key, &local);
  if (local) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  if (claim == NULL)
    return TRUE;
  g_autofree char *holder = claims_describe_holder(claim);
  g_autofree char *remedy = claims_describe_remedy(claim);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
              "the parent of mediated device %s, PCI device %s, is in use by %s, which has "
              "it whole: %s", uuid, mdev->parent, holder, remedy);
  return FALSE;
}

/* Busy when a live VM (its hostdevd or its QEMU) claims mdev @uuid. */
static gboolean
check_mdev_unclaimed(const char *uuid, const char *runtime_dir, GError **error)
{
  g_autofree char *key = claims_key_mdev(uuid);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(Claim) claim = key ? claims_lookup(runtime_dir, key, &local_error) : NULL;
  g_autofree char *holder = NULL;
  g_autofree char *remedy = NULL;

  if (claim == NULL || claim->stale)
    return TRUE;
  holder = claims_describe_holder(claim);
  remedy = claims_describe_remedy(claim);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
              "mediated device %s is in use by %s; not removing it (the kernel would "
              "make the VM give it up): %s", uuid, holder, remedy);
  return FALSE;
}

/* The remove write, shared by the caller and the worker doing it. */
typedef struct {
  gint ref;
  GMutex lock;
  GCond cond;
  gboolean done;
  char *path;
  int err;
  GError *error;
} RemoveJob;

static void
remove_job_unref(RemoveJob *job)
{
  if (!g_atomic_int_dec_and_test(&job->ref))
    return;
  g_mutex_clear(&job->lock);
  g_cond_clear(&job->cond);
  g_free(job->path);
  g_clear_error(&job->error);
  g_free(job);
}

static gpointer
remove_worker(gpointer data)
{
  RemoveJob *job = data;
  GError *local_error = NULL;
  int err = host_write_attr(job->path, "1", &local_error);

  g_mutex_lock(&job->lock);
  job->err = err;
  job->error = local_error;
  job->done = TRUE;
  g_cond_signal(&job->cond);
  g_mutex_unlock(&job->lock);
  remove_job_unref(job);
  return NULL;
}

gboolean
mdev_remove(const char *uuid, const char *runtime_dir, guint timeout_ms, GError **error)
{
  g_autofree char *lower = NULL;
  g_autofree char *dir = NULL;
  g_autoptr(GError) local_error = NULL;
  RemoveJob *job;
  GThread *thread;
  gint64 deadline;
  gboolean finished;
  int err = 0;

  if (!check_uuid(uuid, error))
    return FALSE;
  lower = g_ascii_strdown(uuid, -1);
  dir = host_path("sys/bus/mdev/devices/%s", lower);
  if (!g_file_test(dir, G_FILE_TEST_EXISTS)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "there is no mdev %s on this host; list them with "
                "`hostdevctl nodedev-list`", lower);
    return FALSE;
  }
  if (runtime_dir != NULL && !check_mdev_unclaimed(lower, runtime_dir, error))
    return FALSE;

  job = g_new0(RemoveJob, 1);
  g_atomic_int_set(&job->ref, 2);
  g_mutex_init(&job->lock);
  g_cond_init(&job->cond);
  job->path = host_path("sys/bus/mdev/devices/%s/remove", lower);
  /* its own thread: the kernel may keep the write waiting for as long as
   * a user of the device holds on to it */
  thread = g_thread_try_new("mdev-remove", remove_worker, job, &local_error);
  if (thread == NULL) {
    remove_job_unref(job);
    remove_job_unref(job);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot start a thread to remove mdev %s: %s", lower, local_error->message);
    return FALSE;
  }
  g_thread_unref(thread);

  if (timeout_ms == 0)
    timeout_ms = MDEV_DEFAULT_REMOVE_TIMEOUT_MS;
  deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  g_mutex_lock(&job->lock);
  while (!job->done && g_cond_wait_until(&job->cond, &job->lock, deadline))
    ;
  finished = job->done;
  if (finished) {
    err = job->err;
    local_error = g_steal_pointer(&job->error);
  }
  g_mutex_unlock(&job->lock);
  remove_job_unref(job);

  if (!finished) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_TIMEOUT,
                "removing mdev %s did not finish within %u ms: something still has it "
                "open, and the kernel (Linux 5.19 and later) waits for its user, a VM's "
                "QEMU, to release it, asking the guest to unplug it; the mdev goes away "
                "once released. Detach it from that VM (hostdevctl detach-device) or "
                "stop the VM", lower, timeout_ms);
    return FALSE;
  }
  if (err != 0) {
    g_set_error(error, HOSTDEVD_ERROR,
                err == EBUSY ? HOSTDEVD_ERROR_BUSY : HOSTDEVD_ERROR_HOST_ERROR,
                "cannot remove mdev %s: %s%s", lower, local_error->message,
                err == EBUSY ? "; a VM still uses it: detach it first" : "");
    return FALSE;
  }
  return TRUE;
}
