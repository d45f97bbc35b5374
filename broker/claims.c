/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * claims.c - host-wide ownership of host devices and IOMMU groups
 *
 * A claim file holds one JSON object: {"vm", "pid", "start-time", "since"}.
 * It is written to a temporary name and renamed, so a reader never sees
 * half of it.  The owner's start time (field 22 of /proc/PID/stat) tells
 * a live owner from a recycled pid.  These are real processes, so /proc
 * is the real one, not under the host root.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "claims.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#define CLAIMS_SUBDIR "claims"
#define CLAIM_MAX_SIZE 4096

void
claim_free(Claim *claim)
{
  if (claim == NULL)
    return;
  g_free(claim->key);
  g_free(claim->vm);
  g_free(claim);
}

char *
claims_key_pci(const PciAddress *addr)
{
  return g_strdup_printf("pci_%04x_%02x_%02x_%x",
                         addr->domain, addr->bus, addr->slot, addr->function);
}

char *
claims_key_usb(guint bus, guint device)
{
  return g_strdup_printf("usb_%u_%u", bus, device);
}

char *
claims_key_iommu_group(int group)
{
  return g_strdup_printf("iommu_group_%d", group);
}

gboolean
claims_key_is_valid(const char *key)
{
  gsize len = key ? strlen(key) : 0;

  if (len == 0 || len > 64)
    return FALSE;
  for (const char *p = key; *p; p++)
    if (!g_ascii_islower(*p) && !g_ascii_isdigit(*p) && *p != '_')
      return FALSE;
  return TRUE;
}

static gboolean
vm_name_is_valid(const char *vm)
{
  gsize len = vm ? strlen(vm) : 0;

  if (len == 0 || len > 64)
    return FALSE;
  for (const char *p = vm; *p; p++)
    if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

/* Return: (transfer full): @key for people: "PCI device 0000:01:00.0". */
static char *
describe_key(const char *key)
{
  guint d, b, s, f, bus, dev;
  int group;
  char tail;

  if (sscanf(key, "pci_%4x_%2x_%2x_%1x%c", &d, &b, &s, &f, &tail) == 4)
    return g_strdup_printf("PCI device %04x:%02x:%02x.%x", d, b, s, f);
  if (sscanf(key, "usb_%u_%u%c", &bus, &dev, &tail) == 2)
    return g_strdup_printf("USB device at bus %u device %u", bus, dev);
  if (sscanf(key, "iommu_group_%d%c", &group, &tail) == 1)
    return g_strdup_printf("IOMMU group %d", group);
  return g_strdup(key);
}

/* Return: the start time of process @pid in clock ticks after boot, 0
 * when it cannot be read. */
static guint64
process_start_time(pid_t pid)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
  g_autofree char *text = NULL;
  g_auto(GStrv) fields = NULL;
  const char *after_comm;
  guint64 value;

  if (!g_file_get_contents(path, &text, NULL, NULL))
    return 0;
  /* the command name may hold spaces and parentheses: skip to the last ')' */
  after_comm = strrchr(text, ')');
  if (after_comm == NULL)
    return 0;
  fields = g_strsplit(after_comm + 2, " ", 0);
  /* field 3 (state) is fields[0]; field 22 (starttime) is fields[19] */
  if (g_strv_length(fields) < 20 ||
      !g_ascii_string_to_unsigned(fields[19], 10, 0, G_MAXUINT64, &value, NULL))
    return 0;
  return value;
}

/* Return: whether the process that wrote @claim still runs. */
static gboolean
owner_alive(const Claim *claim)
{
  guint64 now_start;

  if (claim->pid <= 0)
    return FALSE;
  if (kill(claim->pid, 0) < 0 && errno == ESRCH)
    return FALSE;
  if (claim->start_time == 0)
    return TRUE;
  now_start = process_start_time(claim->pid);
  /* unreadable /proc: trust kill() */
  return now_start == 0 || now_start == claim->start_time;
}

static char *
claims_dir(const char *runtime_dir)
{
  return g_build_filename(runtime_dir, CLAIMS_SUBDIR, NULL);
}

/* Return: an fd holding the exclusive lock of the claims directory, or -1
 * with HostError. */
static int
lock_claims(const char *runtime_dir, GError **error)
{
  g_autofree char *dir = claims_dir(runtime_dir);
  g_autofree char *lock_path = g_build_filename(dir, ".lock", NULL);
  int fd;

  if (g_mkdir_with_parents(dir, 0700) < 0) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot create the claims directory %s: %s; hostdevd needs a "
                "writable runtime directory (RuntimeDirectory=hostdevd)",
                dir, g_strerror(saved));
    return -1;
  }
  fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot open %s: %s", lock_path, g_strerror(saved));
    return -1;
  }
  while (flock(fd, LOCK_EX) < 0) {
    int saved = errno;
    if (saved == EINTR)
      continue;
    close(fd);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot lock %s: %s", lock_path, g_strerror(saved));
    return -1;
  }
  return fd;
}

static void
unlock_claims(int fd)
{
  if (fd >= 0)
    close(fd); /* drops the flock */
}

static Claim *
parse_claim(const char *key, const char *text, gsize length)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  g_autoptr(Claim) claim = g_new0(Claim, 1);
  JsonObject *object;
  JsonNode *root;
  const char *vm;
  gint64 pid;

  if (!json_parser_load_from_data(parser, text, (gssize)length, NULL))
    return NULL;
  root = json_parser_get_root(parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
    return NULL;
  object = json_node_get_object(root);
  vm = json_object_get_string_member_with_default(object, "vm", NULL);
  pid = json_object_get_int_member_with_default(object, "pid", 0);
  if (!vm_name_is_valid(vm) || pid <= 0 || pid > G_MAXINT32)
    return NULL;
  claim->key = g_strdup(key);
  claim->vm = g_strdup(vm);
  claim->pid = (pid_t)pid;
  claim->start_time = (guint64)MAX(0, json_object_get_int_member_with_default(object, "start-time", 0));
  claim->since = json_object_get_int_member_with_default(object, "since", 0);
  claim->stale = !owner_alive(claim);
  return g_steal_pointer(&claim);
}

/* Return: (transfer full): the claim on @key, NULL when there is none
 * (@error unset) or it cannot be read (@error set).  An unparsable file
 * is treated as stale. */
static Claim *
read_claim(const char *dir, const char *key, GError **error)
{
  g_autofree char *path = g_build_filename(dir, key, NULL);
  g_autofree char *text = NULL;
  g_autoptr(GError) local_error = NULL;
  gsize length = 0;
  Claim *claim;

  if (!g_file_get_contents(path, &text, &length, &local_error)) {
    if (g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return NULL;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read the claim %s: %s", path, local_error->message);
    return NULL;
  }
  if (length > CLAIM_MAX_SIZE || (claim = parse_claim(key, text, length)) == NULL) {
    claim = g_new0(Claim, 1);
    claim->key = g_strdup(key);
    claim->vm = g_strdup("?");
    claim->stale = TRUE;
    g_warning("claim file %s is damaged; treating it as stale", path);
  }
  return claim;
}

static gboolean
write_claim(const char *dir, const char *key, const char *vm, pid_t owner,
            GError **error)
{
  g_autofree char *path = g_build_filename(dir, key, NULL);
  g_autoptr(JsonBuilder) builder = json_builder_new();
  g_autoptr(JsonGenerator) generator = json_generator_new();
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_object(builder);
  json_builder_set_member_name(builder, "vm");
  json_builder_add_string_value(builder, vm);
  json_builder_set_member_name(builder, "pid");
  json_builder_add_int_value(builder, owner);
  json_builder_set_member_name(builder, "start-time");
  json_builder_add_int_value(builder, (gint64)process_start_time(owner));
  json_builder_set_member_name(builder, "since");
  json_builder_add_int_value(builder, g_get_real_time() / G_USEC_PER_SEC);
  json_builder_end_object(builder);
  root = json_builder_get_root(builder);
  json_generator_set_root(generator, root);
  text = json_generator_to_data(generator, NULL);

  /* g_file_set_contents writes a temporary file and renames it */
  if (!g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT,
                                0600, &local_error)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot write the claim %s: %s", path, local_error->message);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_arguments(const char *vm, const char *key, GError **error)
{
  if (!vm_name_is_valid(vm)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "invalid VM name for a claim: 1-64 of A-Z a-z 0-9 . _ -");
    return FALSE;
  }
  if (!claims_key_is_valid(key)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "invalid claim key: 1-64 of a-z 0-9 _");
    return FALSE;
  }
  return TRUE;
}

static void
set_busy_error(GError **error, const Claim *claim)
{
  g_autofree char *what = describe_key(claim->key);
  g_autoptr(GDateTime) when = claim->since > 0
                              ? g_date_time_new_from_unix_local(claim->since) : NULL;
  g_autofree char *since = when ? g_date_time_format(when, " since %F %T") : g_strdup("");

  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
              "%s is in use by VM '%s' (hostdevd pid %d%s): detach it from "
              "that VM first (hostdevctl detach-device %s ...)",
              what, claim->vm, (int)claim->pid, since, claim->vm);
}

gboolean
claims_acquire(const char *runtime_dir, const char *vm, const char *key,
               pid_t owner, GError **error)
{
  g_autofree char *dir = NULL;
  g_autoptr(Claim) claim = NULL;
  g_autoptr(GError) local_error = NULL;
  gboolean ok;
  int lock;

  if (!check_arguments(vm, key, error))
    return FALSE;
  lock = lock_claims(runtime_dir, error);
  if (lock < 0)
    return FALSE;
  dir = claims_dir(runtime_dir);

  claim = read_claim(dir, key, &local_error);
  if (local_error != NULL) {
    unlock_claims(lock);
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  if (claim != NULL && strcmp(claim->vm, vm) != 0 && !claim->stale) {
    unlock_claims(lock);
    set_busy_error(error, claim);
    return FALSE;
  }
  if (claim != NULL && strcmp(claim->vm, vm) != 0) {
    g_autofree char *what = describe_key(key);
    g_message("%s: taking over the stale claim of VM '%s' (hostdevd pid %d is gone)",
              what, claim->vm, (int)claim->pid);
  }
  ok = write_claim(dir, key, vm, owner, error);
  unlock_claims(lock);
  return ok;
}

gboolean
claims_release(const char *runtime_dir, const char *vm, const char *key,
               GError **error)
{
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autoptr(Claim) claim = NULL;
  g_autoptr(GError) local_error = NULL;
  int lock;

  if (!check_arguments(vm, key, error))
    return FALSE;
  lock = lock_claims(runtime_dir, error);
  if (lock < 0)
    return FALSE;
  dir = claims_dir(runtime_dir);
  claim = read_claim(dir, key, &local_error);
  if (local_error != NULL) {
    unlock_claims(lock);
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  if (claim == NULL) {
    unlock_claims(lock);
    return TRUE;
  }
  if (strcmp(claim->vm, vm) != 0 && !claim->stale) {
    unlock_claims(lock);
    set_busy_error(error, claim);
    return FALSE;
  }
  path = g_build_filename(dir, key, NULL);
  if (g_unlink(path) < 0 && errno != ENOENT) {
    int saved = errno;
    unlock_claims(lock);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot remove the claim %s: %s", path, g_strerror(saved));
    return FALSE;
  }
  unlock_claims(lock);
  return TRUE;
}

static gint
compare_claims(gconstpointer a, gconstpointer b)
{
  return g_strcmp0((*(Claim *const *)a)->key, (*(Claim *const *)b)->key);
}

/* Under the lock. */
static GPtrArray *
list_locked(const char *dir, const char *vm, GError **error)
{
  g_autoptr(GPtrArray) claims = g_ptr_array_new_with_free_func((GDestroyNotify)claim_free);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GDir) listing = g_dir_open(dir, 0, &local_error);
  const char *entry;

  if (listing == NULL) {
    if (g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return g_steal_pointer(&claims);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot list the claims in %s: %s", dir, local_error->message);
    return NULL;
  }
  while ((entry = g_dir_read_name(listing)) != NULL) {
    Claim *claim;

    if (!claims_key_is_valid(entry))
      continue; /* .lock, temporary files */
    claim = read_claim(dir, entry, NULL);
    if (claim == NULL)
      continue;
    if (vm != NULL && strcmp(claim->vm, vm) != 0) {
      claim_free(claim);
      continue;
    }
    g_ptr_array_add(claims, claim);
  }
  g_ptr_array_sort(claims, compare_claims);
  return g_steal_pointer(&claims);
}

GPtrArray *
claims_list(const char *runtime_dir, const char *vm, GError **error)
{
  g_autofree char *dir = claims_dir(runtime_dir);

  return list_locked(dir, vm, error);
}

int
claims_release_all(const char *runtime_dir, const char *vm, GError **error)
{
  g_autofree char *dir = claims_dir(runtime_dir);
  g_autoptr(GPtrArray) claims = NULL;
  int lock;
  int released = 0;

  if (!vm_name_is_valid(vm)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "invalid VM name for a claim: 1-64 of A-Z a-z 0-9 . _ -");
    return -1;
  }
  lock = lock_claims(runtime_dir, error);
  if (lock < 0)
    return -1;
  claims = list_locked(dir, vm, error);
  if (claims == NULL) {
    unlock_claims(lock);
    return -1;
  }
  for (guint i = 0; i < claims->len; i++) {
    const Claim *claim = claims->pdata[i];
    g_autofree char *path = g_build_filename(dir, claim->key, NULL);

    if (g_unlink(path) == 0)
      released++;
  }
  unlock_claims(lock);
  return released;
}

Claim *
claims_lookup(const char *runtime_dir, const char *key, GError **error)
{
  g_autofree char *dir = claims_dir(runtime_dir);

  if (!claims_key_is_valid(key)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "invalid claim key: 1-64 of a-z 0-9 _");
    return NULL;
  }
  return read_claim(dir, key, error);
}
