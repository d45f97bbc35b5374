/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * claims.c - host-wide ownership of host devices and IOMMU groups
 *
 * A claim file holds one JSON object: {"vm", "pid", "start-time",
 * "qemu-pid", "qemu-start-time", "since", "origin"} ("pid" is the
 * hostdevd; files written before QEMU was recorded have no "qemu-*" and
 * name the hostdevd alone; "origin", {"driver", "driver-override",
 * "node-uid", "node-gid", "node-mode"}, is the device's original state as
 * its first holder read it when claiming, the node-* only when /dev/vfio/N
 * existed).  It is written to a temporary name and renamed, so a reader
 * never sees half of it.  Each process's start time (field 22 of
 * /proc/PID/stat) tells a live process from a recycled pid.  These are
 * real processes, so /proc is the real one, not under the host root.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "claims.h"
#include "file-replace.h"
#include "host-pci.h"
#include "json-flat.h"
#include "json-text.h"
#include "process-identity.h"
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

ClaimOrigin *
claim_origin_copy(const ClaimOrigin *origin)
{
  ClaimOrigin *copy;

  if (origin == NULL)
    return NULL;
  copy = g_new0(ClaimOrigin, 1);
  *copy = *origin;
  copy->driver = g_strdup(origin->driver);
  copy->override = g_strdup(origin->override);
  return copy;
}

void
claim_origin_free(ClaimOrigin *origin)
{
  if (origin == NULL)
    return;
  g_free(origin->driver);
  g_free(origin->override);
  g_free(origin);
}

void
claim_free(Claim *claim)
{
  if (claim == NULL)
    return;
  g_free(claim->key);
  g_free(claim->vm);
  claim_origin_free(claim->origin);
  g_free(claim);
}

char *
claims_key_pci(const PciAddress *addr)
{
  return g_strdup_printf("pci_%04x_%02x_%02x_%x",
                         addr->domain, addr->bus, addr->slot, addr->function);
}

gboolean
claims_key_to_pci(const char *key, PciAddress *addr)
{
  PciAddress read = { 0 };

  /* without the prefix, the parser would take "0000:01:00.0" too */
  if (key == NULL || !g_str_has_prefix(key, "pci_") ||
      !pci_address_parse_nodedev(key, &read, NULL))
    return FALSE;
  /* one spelling per device: the one claims_key_pci() writes */
  g_autofree char *again = claims_key_pci(&read);
  if (strcmp(again, key) != 0)
    return FALSE;
  *addr = read;
  return TRUE;
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

/* Return: whether @text is the 8-4-4-4-12 hex form of a UUID. */
static gboolean
uuid_is_valid(const char *text)
{
  if (text == NULL || strlen(text) != 36)
    return FALSE;
  for (guint i = 0; i < 36; i++) {
    gboolean dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !g_ascii_isxdigit(text[i]))
      return FALSE;
  }
  return TRUE;
}

char *
claims_key_mdev(const char *uuid)
{
  char *key;

  if (!uuid_is_valid(uuid))
    return NULL;
  key = g_strconcat("mdev_", uuid, NULL);
  for (char *p = key; *p; p++)
    *p = *p == '-' ? '_' : g_ascii_tolower(*p);
  return key;
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

char *
claims_describe_key(const char *key)
{
  PciAddress pci;
  guint bus, dev;
  int group;
  char tail;

  if (claims_key_to_pci(key, &pci)) {
    g_autofree char *addr = pci_address_format(&pci);
    return g_strdup_printf("PCI device %s", addr);
  }
  if (sscanf(key, "usb_%u_%u%c", &bus, &dev, &tail) == 2)
    return g_strdup_printf("USB device at bus %u device %u", bus, dev);
  if (sscanf(key, "iommu_group_%d%c", &group, &tail) == 1)
    return g_strdup_printf("IOMMU group %d", group);
  if (g_str_has_prefix(key, "mdev_") && strlen(key) == 5 + 36) {
    g_autofree char *uuid = g_strdup(key + 5);
    for (char *p = uuid; *p; p++)
      if (*p == '_')
        *p = '-';
    if (uuid_is_valid(uuid))
      return g_strdup_printf("mediated device %s", uuid);
  }
  return g_strdup(key);
}

/* Fill in whether @claim's processes still run. */
static void
claim_check_liveness(Claim *claim)
{
  claim->broker_alive = process_identity_alive(&(ProcessIdentity){ claim->pid,
                                                                    claim->start_time });
  claim->qemu_alive = process_identity_alive(&(ProcessIdentity){ claim->qemu_pid,
                                                                  claim->qemu_start_time });
  claim->stale = !claim->broker_alive && !claim->qemu_alive;
}

char *
claims_describe_holder(const Claim *claim)
{
  g_autoptr(GString) text = g_string_new(NULL);
  g_autoptr(GDateTime) when = claim->since > 0
                              ? g_date_time_new_from_unix_local(claim->since) : NULL;

  g_string_append_printf(text, "VM '%s' (hostdevd pid %d%s", claim->vm, (int)claim->pid,
                         claim->broker_alive ? "" : ", gone");
  if (claim->qemu_pid > 0)
    g_string_append_printf(text, ", QEMU pid %d%s", (int)claim->qemu_pid,
                           claim->qemu_alive ? "" : ", gone");
  if (when != NULL) {
    g_autofree char *since = g_date_time_format(when, ", since %F %T");
    g_string_append(text, since);
  }
  g_string_append_c(text, ')');
  return g_string_free(g_steal_pointer(&text), FALSE);
}

char *
claims_describe_remedy(const Claim *claim)
{
  if (claim->broker_alive || !claim->qemu_alive)
    return g_strdup_printf("detach it from that VM first (hostdevctl detach-device %s ...)",
                           claim->vm);
  return g_strdup_printf("that VM's hostdevd is gone but its QEMU still holds the device: "
                         "start its hostdevd again (systemctl start hostdevd@%s) and "
                         "detach it there (hostdevctl detach-device %s ...), or shut the "
                         "VM down", claim->vm, claim->vm);
}

static char *
claims_dir(const char *runtime_dir)
{
  return g_build_filename(runtime_dir, CLAIMS_SUBDIR, NULL);
}

/* The claims directory, held under its exclusive lock.  The directory
 * itself is opened on the first write under the lock, once however many
 * claims are written. */
typedef struct {
  int lock_fd;
  int dir_fd;          /* -1 until the first write */
  gboolean in_memory;  /* the directory is on tmpfs: no fsync */
  char *dir;
} ClaimsLock;

static int
open_lock_file(const char *path)
{
  return open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

/* Return: (transfer full): the claims directory under its exclusive lock, or
 * NULL with HostError.  The directory is created only when its lock file
 * cannot be opened for want of it. */
static ClaimsLock *
lock_claims(const char *runtime_dir, GError **error)
{
  g_autofree char *dir = claims_dir(runtime_dir);
  g_autofree char *lock_path = g_build_filename(dir, ".lock", NULL);
  int fd = open_lock_file(lock_path);

  if (fd < 0 && errno == ENOENT) {
    if (g_mkdir_with_parents(dir, 0700) < 0) {
      int saved = errno;
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "cannot create the claims directory %s: %s; hostdevd needs a "
                  "writable runtime directory (RuntimeDirectory=hostdevd)",
                  dir, g_strerror(saved));
      return NULL;
    }
    fd = open_lock_file(lock_path);
  }
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot open %s: %s", lock_path, g_strerror(saved));
    return NULL;
  }
  while (flock(fd, LOCK_EX) < 0) {
    int saved = errno;
    if (saved == EINTR)
      continue;
    close(fd);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot lock %s: %s", lock_path, g_strerror(saved));
    return NULL;
  }
  ClaimsLock *lock = g_new0(ClaimsLock, 1);
  lock->lock_fd = fd;
  lock->dir_fd = -1;
  lock->dir = g_steal_pointer(&dir);
  return lock;
}

static void
unlock_claims(ClaimsLock *lock)
{
  if (lock == NULL)
    return;
  if (lock->dir_fd >= 0)
    close(lock->dir_fd);
  close(lock->lock_fd); /* drops the flock */
  g_free(lock->dir);
  g_free(lock);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ClaimsLock, unlock_claims)

/* Driver names come back from a file anyone with root may edit: accept
 * what the kernel could have written, nothing that builds other paths. */
static gboolean
driver_name_is_valid(const char *name)
{
  gsize len = name ? strlen(name) : 0;

  if (len == 0 || len > 64 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-' && *p != '.')
      return FALSE;
  return TRUE;
}

/* What a claim file says, as its members are read (claim_member()). */
typedef struct {
  guint seen;                 /* bit i: claim_members[i] was read (once at most) */
  gboolean in_origin;         /* reading the origin's members */
  gboolean origin;            /* an origin was there */
  char *vm;
  gint64 pid, start_time, qemu_pid, qemu_start_time, since;
  gboolean origin_damaged;
  char *driver, *override;
  guint node_valid;           /* the node-* read as valid numbers, bits as in @seen */
  gint64 node_uid, node_gid, node_mode;
} ClaimFields;

static void
claim_fields_clear(ClaimFields *fields)
{
  g_free(fields->vm);
  g_free(fields->driver);
  g_free(fields->override);
  *fields = (ClaimFields){ 0 };
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ClaimFields, claim_fields_clear)

/* An integer member: JSON null reads as absent (0), as it always has. */
static gboolean
claim_number(const JsonFlatValue *value, gint64 *out)
{
  if (value->kind == JSON_FLAT_NULL)
    return TRUE;
  *out = value->integer;
  return value->kind == JSON_FLAT_INT;
}

/* An origin's driver name: JSON null is none; anything else must be a name
 * the kernel could have written, nothing that builds other paths. */
static void
origin_name(ClaimFields *fields, const JsonFlatValue *value, char **out)
{
  if (value->kind == JSON_FLAT_STRING && driver_name_is_valid(value->string))
    *out = g_strdup(value->string);
  else if (value->kind != JSON_FLAT_NULL)
    fields->origin_damaged = TRUE;
}

/* How a claim file's member is read into its field of ClaimFields. */
typedef enum {
  CLAIM_READ_VM,          /* a string; anything else: not a claim */
  CLAIM_READ_NUMBER,      /* an integer, null as absent (0); anything else: not a claim */
  CLAIM_READ_ORIGIN,      /* an object, whose members follow; anything else: no origin */
  CLAIM_READ_DRIVER,      /* a driver name or null; anything else: the origin is damaged */
  CLAIM_READ_NODE,        /* an integer in [0, max]; anything else: not a valid one */
} ClaimRead;

static const struct {
  const char *name;
  gboolean in_origin;
  ClaimRead read;
  gsize offset;
  gint64 max;
} claim_members[] = {
  { "vm", FALSE, CLAIM_READ_VM, G_STRUCT_OFFSET(ClaimFields, vm), 0 },
  { "pid", FALSE, CLAIM_READ_NUMBER, G_STRUCT_OFFSET(ClaimFields, pid), 0 },
  { "start-time", FALSE, CLAIM_READ_NUMBER, G_STRUCT_OFFSET(ClaimFields, start_time), 0 },
  { "qemu-pid", FALSE, CLAIM_READ_NUMBER, G_STRUCT_OFFSET(ClaimFields, qemu_pid), 0 },
  { "qemu-start-time", FALSE, CLAIM_READ_NUMBER,
    G_STRUCT_OFFSET(ClaimFields, qemu_start_time), 0 },
  { "since", FALSE, CLAIM_READ_NUMBER, G_STRUCT_OFFSET(ClaimFields, since), 0 },
  /* absent until the holder has read the device, and in older brokers' claims */
  { "origin", FALSE, CLAIM_READ_ORIGIN, 0, 0 },
  { "driver", TRUE, CLAIM_READ_DRIVER, G_STRUCT_OFFSET(ClaimFields, driver), 0 },
  { "driver-override", TRUE, CLAIM_READ_DRIVER, G_STRUCT_OFFSET(ClaimFields, override), 0 },
  { "node-uid", TRUE, CLAIM_READ_NODE, G_STRUCT_OFFSET(ClaimFields, node_uid), G_MAXUINT32 - 1 },
  { "node-gid", TRUE, CLAIM_READ_NODE, G_STRUCT_OFFSET(ClaimFields, node_gid), G_MAXUINT32 - 1 },
  { "node-mode", TRUE, CLAIM_READ_NODE, G_STRUCT_OFFSET(ClaimFields, node_mode), 07777 },
};

/* Return: @name's bit in ClaimFields' @seen (its index in claim_members), 0 if not a claim's. */
static guint
claim_member_bit(gboolean in_origin, const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS(claim_members); i++)
    if (claim_members[i].in_origin == in_origin && strcmp(claim_members[i].name, name) == 0)
      return 1u << i;
  return 0;
}

/* One member of a claim file (json-flat.h's visitor); unknown ones are left alone.
 * Return: FALSE when the claim is not one: a member of the wrong kind, or twice. */
static gboolean
claim_member(const char *name, const JsonFlatValue *value, guint depth, gpointer user_data)
{
  ClaimFields *fields = user_data;

  if (value->kind == JSON_FLAT_END) {
    if (depth == 1)
      fields->in_origin = FALSE;
    return TRUE;
  }
  /* the claim's own members, and the origin's: nothing deeper is a claim's */
  if (depth != (fields->in_origin ? 2u : 1u))
    return TRUE;
  guint bit = claim_member_bit(fields->in_origin, name);
  if (bit == 0)
    return TRUE;
  guint i = (guint)g_bit_nth_lsf(bit, -1);
  gpointer field = G_STRUCT_MEMBER_P(fields, claim_members[i].offset);
  if (fields->seen & bit)
    return FALSE;
  fields->seen |= bit;
  switch (claim_members[i].read) {
  case CLAIM_READ_VM:
    *(char **)field = value->kind == JSON_FLAT_STRING ? g_strdup(value->string) : NULL;
    return value->kind == JSON_FLAT_STRING;
  case CLAIM_READ_NUMBER:
    return claim_number(value, field);
  case CLAIM_READ_ORIGIN:
    fields->in_origin = value->kind == JSON_FLAT_OBJECT;
    fields->origin = fields->in_origin;
    return TRUE;
  case CLAIM_READ_DRIVER:
    origin_name(fields, value, field);
    return TRUE;
  case CLAIM_READ_NODE:
  default:
    if (value->kind == JSON_FLAT_INT && value->integer >= 0 &&
        value->integer <= claim_members[i].max) {
      *(gint64 *)field = value->integer;
      fields->node_valid |= bit;
    }
    return TRUE;
  }
}

/* Return: (transfer full): the origin @fields read, NULL when it is not a
 * valid one (with a node-uid, the node-gid and node-mode valid too). */
static ClaimOrigin *
claim_fields_origin(ClaimFields *fields)
{
  const guint node = claim_member_bit(TRUE, "node-uid") | claim_member_bit(TRUE, "node-gid") |
                     claim_member_bit(TRUE, "node-mode");
  gboolean node_known = (fields->seen & claim_member_bit(TRUE, "node-uid")) != 0;

  if (fields->origin_damaged || (node_known && fields->node_valid != node))
    return NULL;
  ClaimOrigin *origin = g_new0(ClaimOrigin, 1);
  origin->driver = g_steal_pointer(&fields->driver);
  origin->override = g_steal_pointer(&fields->override);
  origin->node_known = node_known;
  origin->node_uid = (uid_t)fields->node_uid;
  origin->node_gid = (gid_t)fields->node_gid;
  origin->node_mode = (mode_t)fields->node_mode;
  return origin;
}

/* @own_vm: (nullable): a claim of this VM is the caller's own, its liveness
 * is not read (broker_alive, qemu_alive and stale stay FALSE) */
static Claim *
parse_claim(const char *key, const char *text, gsize length, const char *own_vm)
{
  g_auto(ClaimFields) fields = { 0 };

  /* a claim is a flat object, read in one pass (json-flat.h); json-glib
   * reads what that declines, told member by member the same way */
  if (!json_flat_visit(text, length, claim_member, &fields)) {
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    claim_fields_clear(&fields);
    if (!json_parser_load_from_data(parser, text, (gssize)length, NULL) ||
        !json_flat_visit_tree(json_parser_get_root(parser), claim_member, &fields))
      return NULL;
  }
  if (!vm_name_is_valid(fields.vm) || fields.pid <= 0 || fields.pid > G_MAXINT32)
    return NULL;
  g_autoptr(Claim) claim = g_new0(Claim, 1);
  claim->key = g_strdup(key);
  claim->vm = g_steal_pointer(&fields.vm);
  claim->pid = (pid_t)fields.pid;
  claim->start_time = (guint64)MAX(0, fields.start_time);
  /* absent in claims of older brokers: those name the hostdevd alone */
  if (fields.qemu_pid > 0 && fields.qemu_pid <= G_MAXINT32) {
    claim->qemu_pid = (pid_t)fields.qemu_pid;
    claim->qemu_start_time = (guint64)MAX(0, fields.qemu_start_time);
  }
  claim->since = fields.since;
  if (fields.origin) {
    claim->origin = claim_fields_origin(&fields);
    if (claim->origin == NULL)
      g_warning("the claim on %s has a damaged origin; the device's original driver "
                "is not known from it", key);
  }
  if (g_strcmp0(claim->vm, own_vm) != 0)
    claim_check_liveness(claim);
  return g_steal_pointer(&claim);
}

/* Return: (transfer full): the claim on @key, NULL when there is none
 * (@error unset) or it cannot be read (@error set).  An unparsable file
 * is treated as stale. */
static Claim *
read_claim(const char *dir, const char *key, const char *own_vm, GError **error)
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
  if (length > CLAIM_MAX_SIZE || (claim = parse_claim(key, text, length, own_vm)) == NULL) {
    claim = g_new0(Claim, 1);
    claim->key = g_strdup(key);
    claim->vm = g_strdup("?");
    claim->stale = TRUE;
    g_warning("claim file %s is damaged; treating it as stale", path);
  }
  return claim;
}

static void
add_origin(GString *out, const ClaimOrigin *origin)
{
  json_text_member_name(out, "origin");
  json_text_object_begin(out);
  json_text_member_string(out, "driver", origin->driver);
  json_text_member_string(out, "driver-override", origin->override);
  if (origin->node_known) {
    json_text_member_int(out, "node-uid", origin->node_uid);
    json_text_member_int(out, "node-gid", origin->node_gid);
    json_text_member_int(out, "node-mode", origin->node_mode & 07777);
  }
  json_text_object_end(out);
}

/* Replace @name in @lock's directory with @text, atomically: a crash half-way must not
 * leave a claim that reads as damaged, which counts as stale; fsync only where it adds
 * anything (the runtime directory is a tmpfs). */
static gboolean
write_locked(ClaimsLock *lock, const char *name, const GString *text, GError **error)
{
  if (lock->dir_fd < 0) {
    lock->dir_fd = open(lock->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    lock->in_memory = lock->dir_fd >= 0 && file_dir_in_memory(lock->dir_fd);
  }
  int saved = lock->dir_fd < 0 ? errno
                               : file_replace_at(lock->dir_fd, name, text->str, text->len,
                                                 lock->in_memory);
  if (saved != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot write %s/%s: %s", lock->dir, name, g_strerror(saved));
    return FALSE;
  }
  return TRUE;
}

/* Write @claim (all but its liveness) to its file in @lock's directory, atomically;
 * member by member (json-text.h), as the journal's records are. */
static gboolean
write_claim(ClaimsLock *lock, const Claim *claim, GError **error)
{
  g_autoptr(GString) text = g_string_sized_new(256);

  json_text_object_begin(text);
  json_text_member_string(text, "vm", claim->vm);
  json_text_member_int(text, "pid", claim->pid);
  json_text_member_int(text, "start-time", (gint64)claim->start_time);
  if (claim->qemu_pid > 0) {
    json_text_member_int(text, "qemu-pid", claim->qemu_pid);
    json_text_member_int(text, "qemu-start-time", (gint64)claim->qemu_start_time);
  }
  json_text_member_int(text, "since", claim->since);
  if (claim->origin != NULL)
    add_origin(text, claim->origin);
  json_text_object_end(text);
  return write_locked(lock, claim->key, text, error);
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
  g_autofree char *what = claims_describe_key(claim->key);
  g_autofree char *holder = claims_describe_holder(claim);
  g_autofree char *remedy = claims_describe_remedy(claim);

  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY, "%s is in use by %s: %s",
              what, holder, remedy);
}

/* Read the claim on every key of @keys under @lock into @found, in order (NULL
 * where there is none).  A live claim of a VM other than @vm (of any VM when
 * @vm is NULL) is a Busy error naming it; a claim that cannot be read, its
 * HostError. */
static gboolean
read_claims_free_for(ClaimsLock *lock, const char *const *keys, const char *vm,
                     GPtrArray *found, GError **error)
{
  for (guint i = 0; keys[i]; i++) {
    g_autoptr(GError) local_error = NULL;
    Claim *claim = read_claim(lock->dir, keys[i], vm, &local_error);
    if (local_error != NULL) {
      g_propagate_error(error, g_steal_pointer(&local_error));
      return FALSE;
    }
    if (claim != NULL && g_strcmp0(claim->vm, vm) != 0 && !claim->stale) {
      set_busy_error(error, claim);
      claim_free(claim);
      return FALSE;
    }
    g_ptr_array_add(found, claim);
  }
  return TRUE;
}

gboolean
claims_acquire(const char *runtime_dir, const char *vm, const char *key,
               const ClaimOwner *owner, GError **error)
{
  return claims_acquire_full(runtime_dir, vm, key, owner, NULL, error);
}

gboolean
claims_acquire_full(const char *runtime_dir, const char *vm, const char *key,
                    const ClaimOwner *owner, ClaimOrigin **inherited, GError **error)
{
  const char *const keys[] = { key, NULL };
  return claims_acquire_all(runtime_dir, vm, keys, owner, NULL, NULL, inherited, error);
}

/* Return: (transfer full): what @read_origin says of the device now, checked, or NULL with @error. */
static ClaimOrigin *
read_origin_checked(ClaimOriginReader read_origin, gpointer data, GError **error)
{
  g_autoptr(ClaimOrigin) origin = read_origin(data, error);

  if (origin == NULL)
    return NULL;
  if ((origin->driver != NULL && !driver_name_is_valid(origin->driver)) ||
      (origin->override != NULL && !driver_name_is_valid(origin->override))) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "a device's origin needs driver names of 1-64 of A-Z a-z 0-9 . _ -");
    return NULL;
  }
  return g_steal_pointer(&origin);
}

static gboolean note_taken_over(ClaimsLock *lock, const Claim *was, const char *vm,
                                GError **error);

/* Log what taking @claim (nullable: there was none) for @vm means, when it is news. */
static void
note_taking(const char *vm, const char *key, const Claim *claim, const ClaimOwner *owner)
{
  if (claim != NULL && strcmp(claim->vm, vm) != 0) {
    g_autofree char *what = claims_describe_key(key);
    g_autofree char *holder = claims_describe_holder(claim);
    if (claim->origin != NULL)
      g_message("%s: taking over the stale claim of %s: nothing of it runs any more; "
                "the device's original driver %s is kept", what, holder,
                claim->origin->driver ? claim->origin->driver : "(none)");
    else
      g_message("%s: taking over the stale claim of %s: nothing of it runs any more",
                what, holder);
  } else if (claim != NULL && !claim->stale &&
             (claim->pid != owner->broker || claim->qemu_pid != owner->qemu)) {
    g_autofree char *what = claims_describe_key(key);
    g_message("%s: claim of VM '%s' refreshed: hostdevd pid %d, QEMU pid %d now "
              "(were %d and %d)", what, vm, (int)owner->broker, (int)owner->qemu,
              (int)claim->pid, (int)claim->qemu_pid);
  }
}

gboolean
claims_acquire_all(const char *runtime_dir, const char *vm, const char *const *keys,
                   const ClaimOwner *owner, ClaimOriginReader read_origin, gpointer read_data,
                   ClaimOrigin **inherited, GError **error)
{
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func((GDestroyNotify)claim_free);
  gboolean ok = TRUE;

  if (inherited != NULL)
    *inherited = NULL;
  for (guint i = 0; keys[i]; i++)
    if (!check_arguments(vm, keys[i], error))
      return FALSE;
  if (owner == NULL || owner->broker <= 0 || owner->qemu < 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "a claim needs the pid of the hostdevd holding it");
    return FALSE;
  }
  g_autoptr(ClaimsLock) lock = lock_claims(runtime_dir, error);
  if (lock == NULL)
    return FALSE;

  /* every key is looked at before any is written: all or none */
  if (!read_claims_free_for(lock, keys, vm, found, error))
    return FALSE;
  /* Nobody else can be changing the device now: its claim is ours or nobody's
   * (a stale holder's origin is handed on instead), and every holder changes
   * the device only while it holds the claim.  Read before anything is
   * written: a failed reading claims nothing. */
  Claim *first = found->len ? g_ptr_array_index(found, 0) : NULL;
  g_autoptr(ClaimOrigin) origin_now = NULL;
  if (read_origin != NULL && keys[0] != NULL && (first == NULL || first->origin == NULL) &&
      (origin_now = read_origin_checked(read_origin, read_data, error)) == NULL)
    return FALSE;
  guint64 start_time = owner->broker_start_time ? owner->broker_start_time
                                                : process_start_time(owner->broker);
  guint64 qemu_start_time = owner->qemu <= 0 ? 0
                            : owner->qemu_start_time ? owner->qemu_start_time
                                                     : process_start_time(owner->qemu);
  guint written = 0;
  for (guint i = 0; keys[i] && ok; i++) {
    Claim *claim = g_ptr_array_index(found, i);
    Claim mine = { 0 };
    note_taking(vm, keys[i], claim, owner);
    mine.key = (char *)keys[i];
    mine.vm = (char *)vm;
    mine.pid = owner->broker;
    mine.start_time = start_time;
    mine.qemu_pid = owner->qemu;
    mine.qemu_start_time = qemu_start_time;
    /* the same VM's live claim goes on: it has held the device since then */
    mine.since = claim != NULL && !claim->stale && strcmp(claim->vm, vm) == 0
                 ? claim->since : g_get_real_time() / G_USEC_PER_SEC;
    /* the origin goes on, whoever held the claim: the device may still be
     * as that holder left it; the first key's claim takes the one read now
     * when it had none */
    mine.origin = claim != NULL && claim->origin != NULL ? claim->origin
                  : i == 0 ? origin_now : NULL;
    ok = write_claim(lock, &mine, error);
    written += ok;
  }
  /* one could not be written: the others go back to what they were */
  for (guint i = 0; !ok && i < written; i++) {
    const Claim *was = g_ptr_array_index(found, i);
    g_autofree char *path = g_build_filename(lock->dir, keys[i], NULL);
    if (was ? !write_claim(lock, was, NULL) : unlink(path) != 0)
      g_warning("the claim %s could not be put back as it was", path);
  }
  /* a PCI device's stale holder no longer gives it back: its taker does */
  for (guint i = 0; ok && keys[i]; i++) {
    const Claim *was = g_ptr_array_index(found, i);
    g_autoptr(GError) note_error = NULL;
    if (was && was->stale && strcmp(was->vm, vm) != 0 && g_str_has_prefix(keys[i], "pci_") &&
        !note_taken_over(lock, was, vm, &note_error))
      g_warning("%s", note_error->message);
  }
  if (ok && inherited != NULL && first != NULL)
    *inherited = g_steal_pointer(&first->origin);
  return ok;
}

/* Drop @vm's claim on @key, under the lock. */
static gboolean
release_locked(const char *dir, const char *vm, const char *key, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(Claim) claim = read_claim(dir, key, vm, &local_error);

  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  if (claim == NULL)
    return TRUE;
  if (strcmp(claim->vm, vm) != 0 && !claim->stale) {
    set_busy_error(error, claim);
    return FALSE;
  }
  g_autofree char *path = g_build_filename(dir, key, NULL);
  if (g_unlink(path) < 0 && errno != ENOENT) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot remove the claim %s: %s", path, g_strerror(saved));
    return FALSE;
  }
  return TRUE;
}

gboolean
claims_release(const char *runtime_dir, const char *vm, const char *key,
               GError **error)
{
  const char *const keys[] = { key, NULL };
  return claims_release_keys(runtime_dir, vm, keys, error);
}

gboolean
claims_release_keys(const char *runtime_dir, const char *vm, const char *const *keys,
                    GError **error)
{
  gboolean ok = TRUE;

  for (guint i = 0; keys[i]; i++)
    if (!check_arguments(vm, keys[i], error))
      return FALSE;
  if (keys[0] == NULL)
    return TRUE;
  g_autoptr(ClaimsLock) lock = lock_claims(runtime_dir, error);
  if (lock == NULL)
    return FALSE;
  /* each goes on its own: one that cannot be released keeps none of the others */
  for (guint i = 0; keys[i]; i++)
    ok &= release_locked(lock->dir, vm, keys[i], ok ? error : NULL);
  return ok;
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
    claim = read_claim(dir, entry, NULL, NULL);
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
  g_autoptr(GPtrArray) claims = NULL;
  int released = 0;

  if (!vm_name_is_valid(vm)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "invalid VM name for a claim: 1-64 of A-Z a-z 0-9 . _ -");
    return -1;
  }
  g_autoptr(ClaimsLock) lock = lock_claims(runtime_dir, error);
  if (lock == NULL)
    return -1;
  claims = list_locked(lock->dir, vm, error);
  if (claims == NULL)
    return -1;
  for (guint i = 0; i < claims->len; i++) {
    const Claim *claim = claims->pdata[i];
    g_autofree char *path = g_build_filename(lock->dir, claim->key, NULL);

    if (g_unlink(path) == 0)
      released++;
  }
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
  return read_claim(dir, key, NULL, error);
}

Claim *
claims_lookup_held_elsewhere(const char *runtime_dir, const char *key, const char *vm)
{
  g_autofree char *dir = claims_dir(runtime_dir);
  g_autoptr(Claim) claim = claims_key_is_valid(key) ? read_claim(dir, key, vm, NULL) : NULL;
  return claim && !claim->stale && g_strcmp0(claim->vm, vm) != 0 ? g_steal_pointer(&claim)
                                                                  : NULL;
}

/* ---- the administrator's word ------------------------------------------ */

#define NOTE_SUFFIX ".administered"
#define NOTE_MAX_HOLDERS 64

/* A holder whose journal a note overrules: the administrator's act, or the VM
 * that took the device over with what the holder left to give back. */
typedef struct {
  char *vm;
  ProcessIdentity qemu;
  char *taken_by;     /* the VM that took it over; NULL: the administrator */
} NoteHolder;

static void
note_holder_free(NoteHolder *holder)
{
  g_free(holder->vm);
  g_free(holder->taken_by);
  g_free(holder);
}

static NoteHolder *
note_holder_new(const char *vm, pid_t qemu_pid, guint64 qemu_start_time, const char *taken_by)
{
  NoteHolder *holder = g_new0(NoteHolder, 1);

  holder->vm = g_strdup(vm);
  holder->qemu = (ProcessIdentity){ qemu_pid, qemu_start_time };
  holder->taken_by = g_strdup(taken_by);
  return holder;
}

/* Return: whether @holder is @vm with @qemu; where either side does not know the QEMU
 * (a claim or a record of an older broker), the VM's name alone decides. */
static gboolean
note_holder_is(const NoteHolder *holder, const char *vm, const ProcessIdentity *qemu)
{
  const ProcessIdentity *noted = &holder->qemu;

  if (g_strcmp0(holder->vm, vm) != 0)
    return FALSE;
  if (noted->pid == 0 || qemu->pid == 0)
    return TRUE;
  return noted->pid == qemu->pid &&
         (noted->start_time == 0 || qemu->start_time == 0 ||
          noted->start_time == qemu->start_time);
}

/* Return: (transfer full) (element-type NoteHolder): the holders the note on
 * @device_key names; empty when there is none (or it is damaged: logged). */
static GPtrArray *
read_note(const char *dir, const char *device_key)
{
  GPtrArray *holders = g_ptr_array_new_with_free_func((GDestroyNotify)note_holder_free);
  g_autofree char *name = g_strconcat(device_key, NOTE_SUFFIX, NULL);
  g_autofree char *path = g_build_filename(dir, name, NULL);
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  g_autofree char *text = NULL;
  gsize length = 0;

  if (!g_file_get_contents(path, &text, &length, NULL))
    return holders;
  JsonNode *root = length <= CLAIM_MAX_SIZE * 4 &&
                   json_parser_load_from_data(parser, text, (gssize)length, NULL)
                   ? json_parser_get_root(parser) : NULL;
  JsonObject *object = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  JsonNode *list = object ? json_object_get_member(object, "left-by") : NULL;
  JsonArray *array = list && JSON_NODE_HOLDS_ARRAY(list) ? json_node_get_array(list) : NULL;
  for (guint i = 0; array && i < json_array_get_length(array); i++) {
    JsonNode *element = json_array_get_element(array, i);
    JsonObject *entry = JSON_NODE_HOLDS_OBJECT(element) ? json_node_get_object(element) : NULL;
    const char *vm = entry ? json_object_get_string_member_with_default(entry, "vm", NULL)
                           : NULL;
    gint64 pid = entry ? json_object_get_int_member_with_default(entry, "qemu-pid", 0) : -1;
    gint64 start = entry ? json_object_get_int_member_with_default(entry, "qemu-start-time", 0)
                         : -1;
    const char *taken_by = entry ? json_object_get_string_member_with_default(
                                       entry, "taken-over-by", NULL) : NULL;
    if (!vm_name_is_valid(vm) || pid < 0 || pid > G_MAXINT32 || start < 0 ||
        (taken_by && !vm_name_is_valid(taken_by))) {
      array = NULL;
      break;
    }
    g_ptr_array_add(holders, note_holder_new(vm, (pid_t)pid, (guint64)start, taken_by));
  }
  if (array == NULL) {
    g_warning("the note %s is damaged; it is ignored", path);
    g_ptr_array_set_size(holders, 0);
  }
  return holders;
}

/* Write the note on @device_key naming @holders (the newest NOTE_MAX_HOLDERS), or
 * remove it when they are none. */
static gboolean
write_note(ClaimsLock *lock, const char *device_key, const GPtrArray *holders, GError **error)
{
  g_autofree char *name = g_strconcat(device_key, NOTE_SUFFIX, NULL);
  g_autoptr(GString) text = g_string_sized_new(128);

  if (holders->len == 0) {
    g_autofree char *path = g_build_filename(lock->dir, name, NULL);
    if (g_unlink(path) < 0 && errno != ENOENT) {
      int saved = errno;
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "cannot remove the note %s: %s", path, g_strerror(saved));
      return FALSE;
    }
    return TRUE;
  }
  json_text_object_begin(text);
  json_text_member_name(text, "left-by");
  g_string_append_c(text, '[');
  for (guint i = holders->len > NOTE_MAX_HOLDERS ? holders->len - NOTE_MAX_HOLDERS : 0;
       i < holders->len; i++) {
    const NoteHolder *holder = holders->pdata[i];
    if (text->str[text->len - 1] != '[')
      g_string_append_c(text, ',');
    json_text_object_begin(text);
    json_text_member_string(text, "vm", holder->vm);
    json_text_member_int(text, "qemu-pid", holder->qemu.pid);
    json_text_member_int(text, "qemu-start-time", (gint64)holder->qemu.start_time);
    if (holder->taken_by)
      json_text_member_string(text, "taken-over-by", holder->taken_by);
    json_text_object_end(text);
  }
  g_string_append_c(text, ']');
  json_text_object_end(text);
  return write_locked(lock, name, text, error);
}

/* @vm took over the stale claim @was of another VM, with what that VM left to
 * give back: the note on the device says so, so that VM's journal leaves the
 * device's binding to @vm.  Under the lock. */
static gboolean
note_taken_over(ClaimsLock *lock, const Claim *was, const char *vm, GError **error)
{
  g_autoptr(GPtrArray) holders = read_note(lock->dir, was->key);
  const ProcessIdentity qemu = { was->qemu_pid, was->qemu_start_time };

  for (guint i = 0; i < holders->len; i++)
    if (note_holder_is(holders->pdata[i], was->vm, &qemu))
      return TRUE;
  g_ptr_array_add(holders, note_holder_new(was->vm, was->qemu_pid, was->qemu_start_time, vm));
  return write_note(lock, was->key, holders, error);
}

gboolean
claims_note_administered(const char *runtime_dir, const char *device_key,
                         const char *group_key, const char *driver, const char *override,
                         GError **error)
{
  const char *const keys[] = { device_key, group_key, NULL };
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func((GDestroyNotify)claim_free);
  g_autoptr(GPtrArray) left = g_ptr_array_new();

  if (!claims_key_is_valid(device_key) || (group_key && !claims_key_is_valid(group_key))) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "invalid claim key: 1-64 of a-z 0-9 _");
    return FALSE;
  }
  g_autoptr(ClaimsLock) lock = lock_claims(runtime_dir, error);
  if (lock == NULL)
    return FALSE;
  /* a live claim: a VM took the device meanwhile, and it is that VM's now */
  if (!read_claims_free_for(lock, keys, NULL, found, error))
    return FALSE;
  /* a damaged claim names nobody whose journal could name the device */
  for (guint i = 0; i < found->len; i++) {
    Claim *claim = found->pdata[i];
    if (claim != NULL && claim->pid > 0)
      g_ptr_array_add(left, claim);
  }
  if (left->len == 0)
    return TRUE;
  g_autoptr(GPtrArray) holders = read_note(lock->dir, device_key);
  for (guint i = 0; i < left->len; i++) {
    Claim *claim = left->pdata[i];
    gboolean noted = FALSE;
    for (guint j = 0; j < holders->len && !noted; j++)
      noted = note_holder_is(holders->pdata[j], claim->vm,
                             &(ProcessIdentity){ claim->qemu_pid, claim->qemu_start_time });
    if (!noted)
      g_ptr_array_add(holders, note_holder_new(claim->vm, claim->qemu_pid,
                                               claim->qemu_start_time, NULL));
    if (strcmp(claim->key, device_key) != 0)
      continue;
    /* whoever takes the claim over gives the device back here; the owner of
     * /dev/vfio/N before its first holder stays as it was */
    if (claim->origin == NULL)
      claim->origin = g_new0(ClaimOrigin, 1);
    g_free(claim->origin->driver);
    g_free(claim->origin->override);
    claim->origin->driver = g_strdup(driver);
    claim->origin->override = g_strdup(override);
    if (!write_claim(lock, claim, error))
      return FALSE;
  }
  return write_note(lock, device_key, holders, error);
}

gboolean
claims_administered_since(const char *runtime_dir, const char *device_key, const char *vm,
                          const ProcessIdentity *qemu, char **taken_by)
{
  g_autofree char *dir = claims_dir(runtime_dir);
  g_autoptr(GPtrArray) holders = claims_key_is_valid(device_key)
                                 ? read_note(dir, device_key) : NULL;

  for (guint i = 0; holders && i < holders->len; i++) {
    const NoteHolder *holder = holders->pdata[i];
    if (!note_holder_is(holder, vm, qemu))
      continue;
    if (taken_by)
      *taken_by = g_strdup(holder->taken_by);
    return TRUE;
  }
  return FALSE;
}

void
claims_forget_administered(const char *runtime_dir, const char *vm,
                           const ProcessIdentity *kept, guint n_kept)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(ClaimsLock) lock = lock_claims(runtime_dir, &error);
  g_autoptr(GDir) listing = lock ? g_dir_open(lock->dir, 0, NULL) : NULL;
  const char *entry;

  while (listing != NULL && (entry = g_dir_read_name(listing)) != NULL) {
    if (!g_str_has_suffix(entry, NOTE_SUFFIX))
      continue;
    g_autofree char *key = g_strndup(entry, strlen(entry) - strlen(NOTE_SUFFIX));
    if (!claims_key_is_valid(key))
      continue;
    g_autoptr(GPtrArray) holders = read_note(lock->dir, key);
    guint before = holders->len;
    for (guint i = 0; i < holders->len;) {
      const NoteHolder *holder = holders->pdata[i];
      gboolean keep = g_strcmp0(holder->vm, vm) != 0;
      for (guint k = 0; k < n_kept && !keep; k++)
        keep = note_holder_is(holder, vm, &kept[k]);
      if (keep)
        i++;
      else
        g_ptr_array_remove_index(holders, i);
    }
    if (holders->len != before && !write_note(lock, key, holders, &error))
      break;
  }
  if (error != NULL)
    g_warning("%s", error->message);
}
