/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policy.c - loading the policy file, and the decisions made from it
 *
 * Each key of each section becomes a Setting that carries its parsed value
 * and a rule text naming the key, its value and where it was written.  A
 * decision looks the key up in the VM's section, then in [defaults], then
 * falls back to the built-in default, and hands back the rule text of
 * whatever decided.  Deny lists are the exception: those of the VM's
 * section and of [defaults] all apply, so a VM section cannot lift a
 * site-wide deny.  Rule texts composed at decision time are interned
 * (g_intern_string), so the caller can keep the pointer: there are only as
 * many of them as the policy has rules.
 */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A policy file is a few lines; anything this big is a mistake. */
#define POLICY_MAX_FILE_SIZE (1024 * 1024)
#define POLICY_MAX_MAX_DEVICES 4096

G_DEFINE_QUARK(hostdevd-policy-error-quark, policy_error)

typedef enum {
  KEY_FULL_USERS,
  KEY_FULL_GROUPS,
  KEY_READ_USERS,
  KEY_READ_GROUPS,
  KEY_SOCKET_GROUP,
  KEY_ALLOW_PCI,
  KEY_ALLOW_PCI_IDS,
  KEY_ALLOW_PCI_CLASSES,
  KEY_ALLOW_USB,
  KEY_DENY_PCI,
  KEY_DENY_PCI_IDS,
  KEY_DENY_PCI_CLASSES,
  KEY_DENY_USB,
  KEY_ALLOW_BOOT_VGA,
  KEY_MAX_DEVICES,
  KEY_GROUP_TAKEOVER,
  KEY_ALLOW_ROM_DIRS,
  KEY_ALLOW_USB_HUBS,
  KEY_ALLOW_VF_MACS,
  KEY_ALLOW_VLANS,
  KEY_ALLOW_MDEV_TYPES,
  KEY_DENY_MDEV_TYPES,
  KEY_ALLOW_MDEV_UUIDS,
  N_KEYS,
} PolicyKey;

typedef enum {
  KIND_USERS,
  KIND_GROUPS,
  KIND_GROUP,          /* exactly one group */
  KIND_PCI_ADDRESSES,  /* globs over "dddd:bb:ss.f" */
  KIND_IDS,            /* globs over "vvvv:pppp" */
  KIND_PCI_CLASSES,    /* hex prefixes of the 24-bit class */
  KIND_BOOLEAN,
  KIND_COUNT,
  KIND_DIRS,           /* absolute directory paths */
  KIND_MACS,           /* globs over "aa:bb:cc:dd:ee:ff" */
  KIND_VLANS,          /* "untagged", N or N-M, 0..4095 */
  KIND_MDEV_TYPES,     /* globs over an mdev type's name: "nvidia-63" */
  KIND_UUIDS,          /* globs over "8-4-4-4-12" lower-case hex */
} KeyKind;

static const struct {
  const char *name;
  KeyKind kind;
} keys[N_KEYS] = {
  [KEY_FULL_USERS] = { "full-access-users", KIND_USERS },
  [KEY_FULL_GROUPS] = { "full-access-groups", KIND_GROUPS },
  [KEY_READ_USERS] = { "read-only-users", KIND_USERS },
  [KEY_READ_GROUPS] = { "read-only-groups", KIND_GROUPS },
  [KEY_SOCKET_GROUP] = { "socket-group", KIND_GROUP },
  [KEY_ALLOW_PCI] = { "allow-pci", KIND_PCI_ADDRESSES },
  [KEY_ALLOW_PCI_IDS] = { "allow-pci-ids", KIND_IDS },
  [KEY_ALLOW_PCI_CLASSES] = { "allow-pci-classes", KIND_PCI_CLASSES },
  [KEY_ALLOW_USB] = { "allow-usb", KIND_IDS },
  [KEY_DENY_PCI] = { "deny-pci", KIND_PCI_ADDRESSES },
  [KEY_DENY_PCI_IDS] = { "deny-pci-ids", KIND_IDS },
  [KEY_DENY_PCI_CLASSES] = { "deny-pci-classes", KIND_PCI_CLASSES },
  [KEY_DENY_USB] = { "deny-usb", KIND_IDS },
  [KEY_ALLOW_BOOT_VGA] = { "allow-boot-vga", KIND_BOOLEAN },
  [KEY_MAX_DEVICES] = { "max-devices", KIND_COUNT },
  [KEY_GROUP_TAKEOVER] = { "allow-iommu-group-takeover", KIND_BOOLEAN },
  [KEY_ALLOW_ROM_DIRS] = { "allow-rom-dirs", KIND_DIRS },
  [KEY_ALLOW_USB_HUBS] = { "allow-usb-hubs", KIND_BOOLEAN },
  [KEY_ALLOW_VF_MACS] = { "allow-vf-macs", KIND_MACS },
  [KEY_ALLOW_VLANS] = { "allow-vlans", KIND_VLANS },
  [KEY_ALLOW_MDEV_TYPES] = { "allow-mdev-types", KIND_MDEV_TYPES },
  [KEY_DENY_MDEV_TYPES] = { "deny-mdev-types", KIND_MDEV_TYPES },
  [KEY_ALLOW_MDEV_UUIDS] = { "allow-mdev-uuids", KIND_UUIDS },
};

typedef struct {
  char *text;          /* lower-case glob, or the class prefix as written */
  guint32 class_value; /* KIND_PCI_CLASSES: the prefix, shifted into place */
  guint32 class_mask;
  char *rule;          /* "deny-pci-ids entry '10de:*' ([vm gpu] of FILE)" */
} Pattern;

typedef struct {
  gboolean set;
  char *rule;          /* "max-devices=4 ([vm gpu] of FILE)" */
  GArray *ids;         /* KIND_USERS, KIND_GROUPS: guint32; KIND_VLANS: pairs first, last */
  GPtrArray *patterns; /* Pattern */
  GPtrArray *dirs;     /* KIND_DIRS: char *, normalised */
  gboolean flag;       /* KIND_BOOLEAN; KIND_VLANS: "untagged" is listed */
  guint count;         /* KIND_COUNT */
  guint32 gid;         /* KIND_GROUP */
} Setting;

typedef struct {
  Setting settings[N_KEYS];
} Section;

struct _Policy {
  uid_t daemon_uid;
  char *origin;
  Section *defaults;   /* NULL for the built-in policy */
  GHashTable *vms;     /* VM name -> Section */
};

/* ---- lifetime ----------------------------------------------------------- */

static void
pattern_free(gpointer data)
{
  Pattern *pattern = data;
  g_free(pattern->text);
  g_free(pattern->rule);
  g_free(pattern);
}

static void
section_free(gpointer data)
{
  Section *section = data;
  if (section == NULL)
    return;
  for (guint i = 0; i < N_KEYS; i++) {
    Setting *setting = &section->settings[i];
    g_free(setting->rule);
    if (setting->ids)
      g_array_unref(setting->ids);
    if (setting->patterns)
      g_ptr_array_unref(setting->patterns);
    if (setting->dirs)
      g_ptr_array_unref(setting->dirs);
  }
  g_free(section);
}

static Policy *
policy_alloc(uid_t daemon_uid, const char *origin)
{
  Policy *policy = g_new0(Policy, 1);
  policy->daemon_uid = daemon_uid;
  policy->origin = g_strdup(origin);
  policy->vms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, section_free);
  return policy;
}

Policy *
policy_new_default(uid_t daemon_uid)
{
  return policy_alloc(daemon_uid, "built-in default");
}

void
policy_free(Policy *policy)
{
  if (policy == NULL)
    return;
  section_free(policy->defaults);
  g_hash_table_unref(policy->vms);
  g_free(policy->origin);
  g_free(policy);
}

const char *
policy_get_origin(const Policy *policy)
{
  return policy->origin;
}

/* ---- parsing ------------------------------------------------------------ */

static gboolean G_GNUC_PRINTF(4, 5)
invalid(GError **error, const char *where, const char *key, const char *format, ...)
{
  va_list args;
  va_start(args, format);
  g_autofree char *message = g_strdup_vprintf(format, args);
  va_end(args);
  g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID, "%s, key '%s': %s", where, key,
              message);
  return FALSE;
}

/* Return: whether @name may name a VM (the rules hostdevd's --vm follows). */
static gboolean
vm_name_is_valid(const char *name)
{
  if (name[0] == '\0' || name[0] == '.' || strlen(name) > 64)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return TRUE;
}

/* Return: (transfer full): the entries of a list value, split at ';' or ',', trimmed. */
static GPtrArray *
split_list(const char *value)
{
  GPtrArray *entries = g_ptr_array_new_with_free_func(g_free);
  g_auto(GStrv) parts = g_strsplit_set(value, ";,", -1);
  for (char **part = parts; *part; part++) {
    char *entry = g_strstrip(*part);
    if (*entry)
      g_ptr_array_add(entries, g_strdup(entry));
  }
  return entries;
}

/* Return: TRUE with @out set when @text is a decimal number up to G_MAXUINT32 - 1. */
static gboolean
parse_decimal_id(const char *text, guint32 *out)
{
  guint64 value;
  if (!g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT32 - 1, &value, NULL))
    return FALSE;
  *out = (guint32)value;
  return TRUE;
}

static gboolean
resolve_user(const char *entry, guint32 *uid)
{
  if (parse_decimal_id(entry, uid))
    return TRUE;
  struct passwd *pw = getpwnam(entry);
  if (pw == NULL)
    return FALSE;
  *uid = pw->pw_uid;
  return TRUE;
}

static gboolean
resolve_group(const char *entry, guint32 *gid)
{
  if (parse_decimal_id(entry, gid))
    return TRUE;
  struct group *gr = getgrnam(entry);
  if (gr == NULL)
    return FALSE;
  *gid = gr->gr_gid;
  return TRUE;
}

/* Return: whether @text consists of @allowed characters only. */
static gboolean
only_chars(const char *text, const char *allowed)
{
  return strspn(text, allowed) == strlen(text);
}

/* Return: whether @path is absolute, with no empty, "." or ".." component. */
static gboolean
dir_is_plain_absolute(const char *path)
{
  if (path[0] != '/' || strlen(path) > 1024)
    return FALSE;
  g_auto(GStrv) parts = g_strsplit(path + 1, "/", -1);
  for (char **part = parts; *part; part++)
    if (**part == '\0' || strcmp(*part, ".") == 0 || strcmp(*part, "..") == 0)
      return FALSE;
  return TRUE;
}

/* Parse "N" or "N-M" (0..4095, N <= M) into @range. Return: FALSE when it is neither. */
static gboolean
parse_vlan_range(const char *entry, guint32 range[2])
{
  g_auto(GStrv) ends = g_strsplit(entry, "-", 3);
  guint64 first, last;
  guint n = g_strv_length(ends);

  if (n < 1 || n > 2 ||
      !g_ascii_string_to_unsigned(g_strstrip(ends[0]), 10, 0, 4095, &first, NULL) ||
      !g_ascii_string_to_unsigned(g_strstrip(ends[n - 1]), 10, first, 4095, &last, NULL))
    return FALSE;
  range[0] = (guint32)first;
  range[1] = (guint32)last;
  return TRUE;
}

/* Parse one pattern of @kind into @pattern. Return: FALSE with a reason in @why. */
static gboolean
parse_pattern(KeyKind kind, const char *entry, Pattern *pattern, const char **why)
{
  g_autofree char *lower = g_ascii_strdown(entry, -1);

  switch (kind) {
  case KIND_PCI_ADDRESSES:
    /* a glob over the address as sysfs writes it: 0000:01:00.0 */
    if (!only_chars(lower, "0123456789abcdef:.*?") || strlen(lower) > 12) {
      *why = "a PCI address pattern is like 0000:0a:00.0, with * or ? as wildcards";
      return FALSE;
    }
    break;
  case KIND_IDS:
    if (!only_chars(lower, "0123456789abcdef:*?") || strlen(lower) > 9 ||
        (strchr(lower, ':') == NULL && strcmp(lower, "*") != 0)) {
      *why = "an id pattern is VENDOR:DEVICE in hex, like 10de:1eb8 or 10de:*";
      return FALSE;
    }
    break;
  case KIND_MACS:
    if (!only_chars(lower, "0123456789abcdef:*?") || strlen(lower) > 17) {
      *why = "a MAC address pattern is like 52:54:00:12:34:56, in hex, with * or ? as "
             "wildcards: 52:54:00:*";
      return FALSE;
    }
    break;
  case KIND_MDEV_TYPES:
    /* the type's directory name under mdev_supported_types */
    if (!only_chars(lower, "0123456789abcdefghijklmnopqrstuvwxyz_.:-*?") || strlen(lower) > 64) {
      *why = "an mdev type pattern is a type's name as the parent offers it, like "
             "nvidia-63 or i915-GVTg_V5_*, with * or ? as wildcards";
      return FALSE;
    }
    break;
  case KIND_UUIDS:
    if (!only_chars(lower, "0123456789abcdef-*?") || strlen(lower) > 36) {
      *why = "an mdev UUID pattern is like 4b20d080-1b54-4048-85b3-a6a62d165c01, with * or "
             "? as wildcards";
      return FALSE;
    }
    break;
  case KIND_PCI_CLASSES: {
    const char *digits = g_str_has_prefix(lower, "0x") ? lower + 2 : lower;
    gsize n = strlen(digits);
    guint64 value;
    if ((n != 2 && n != 4 && n != 6) || !only_chars(digits, "0123456789abcdef") ||
        !g_ascii_string_to_unsigned(digits, 16, 0, 0xffffff, &value, NULL)) {
      *why = "a PCI class is 2, 4 or 6 hex digits: base class (0x03), base class "
             "and subclass (0x0300), or all of it (0x030000)";
      return FALSE;
    }
    guint shift = (guint)(6 - n) * 4;
    pattern->class_value = (guint32)value << shift;
    pattern->class_mask = (0xffffffu << shift) & 0xffffff;
    break;
  }
  case KIND_USERS:
  case KIND_GROUPS:
  case KIND_GROUP:
  case KIND_BOOLEAN:
  case KIND_COUNT:
  case KIND_DIRS:
  case KIND_VLANS:
  default:
    g_assert_not_reached();
  }
  pattern->text = g_steal_pointer(&lower);
  return TRUE;
}

/* Fill @setting from the value of @key in @group. Return: FALSE with @error. */
static gboolean
parse_setting(GKeyFile *file, const char *group, PolicyKey key, const char *where,
              Setting *setting, GError **error)
{
  const char *name = keys[key].name;
  g_autoptr(GError) local = NULL;
  g_autofree char *raw = g_key_file_get_value(file, group, name, NULL);
  g_autofree char *value = g_strstrip(g_strdup(raw ? raw : ""));
  g_autoptr(GPtrArray) entries = split_list(value);

  switch (keys[key].kind) {
  case KIND_USERS:
  case KIND_GROUPS: {
    gboolean users = keys[key].kind == KIND_USERS;
    setting->ids = g_array_new(FALSE, FALSE, sizeof(guint32));
    for (guint i = 0; i < entries->len; i++) {
      const char *entry = entries->pdata[i];
      guint32 id;
      if (!(users ? resolve_user(entry, &id) : resolve_group(entry, &id)))
        return invalid(error, where, name, "'%s' is not a %s of this host", entry,
                       users ? "user" : "group");
      g_array_append_val(setting->ids, id);
    }
    break;
  }
  case KIND_GROUP:
    if (entries->len != 1)
      return invalid(error, where, name, "give exactly one group");
    if (!resolve_group(entries->pdata[0], &setting->gid))
      return invalid(error, where, name, "'%s' is not a group of this host",
                     (const char *)entries->pdata[0]);
    break;
  case KIND_PCI_ADDRESSES:
  case KIND_IDS:
  case KIND_PCI_CLASSES:
  case KIND_MACS:
  case KIND_MDEV_TYPES:
  case KIND_UUIDS:
    setting->patterns = g_ptr_array_new_with_free_func(pattern_free);
    for (guint i = 0; i < entries->len; i++) {
      Pattern *pattern = g_new0(Pattern, 1);
      const char *why = NULL;
      if (!parse_pattern(keys[key].kind, entries->pdata[i], pattern, &why)) {
        pattern_free(pattern);
        return invalid(error, where, name, "'%s' is not valid: %s",
                       (const char *)entries->pdata[i], why);
      }
      pattern->rule = g_strdup_printf("%s entry '%s' (%s)", name, pattern->text, where);
      g_ptr_array_add(setting->patterns, pattern);
    }
    break;
  case KIND_VLANS:
    setting->ids = g_array_new(FALSE, FALSE, sizeof(guint32));
    for (guint i = 0; i < entries->len; i++) {
      const char *entry = entries->pdata[i];
      guint32 range[2];
      if (g_ascii_strcasecmp(entry, "untagged") == 0) {
        setting->flag = TRUE;
        continue;
      }
      if (!parse_vlan_range(entry, range))
        return invalid(error, where, name, "'%s' is not valid: an entry is a VLAN id "
                       "0..4095, a range like 100-199, or 'untagged'", entry);
      g_array_append_vals(setting->ids, range, 2);
    }
    break;
  case KIND_DIRS:
    setting->dirs = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < entries->len; i++) {
      const char *entry = entries->pdata[i];
      g_autofree char *dir = g_strdup(entry);
      gsize n = strlen(dir);
      while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
      if (!dir_is_plain_absolute(dir) || strcmp(dir, "/") == 0)
        return invalid(error, where, name, "'%s' is not valid: a ROM directory is an "
                       "absolute path with no '.', '..' or empty component, and not '/'",
                       entry);
      g_ptr_array_add(setting->dirs, g_steal_pointer(&dir));
    }
    break;
  case KIND_BOOLEAN:
    setting->flag = g_key_file_get_boolean(file, group, name, &local);
    if (local)
      return invalid(error, where, name, "'%s' is not true or false", value);
    break;
  case KIND_COUNT: {
    guint64 count;
    if (!g_ascii_string_to_unsigned(value, 10, 0, POLICY_MAX_MAX_DEVICES, &count, NULL))
      return invalid(error, where, name, "'%s' is not a number from 0 to %d", value,
                     POLICY_MAX_MAX_DEVICES);
    setting->count = (guint)count;
    break;
  }
  default:
    g_assert_not_reached();
  }
  setting->set = TRUE;
  setting->rule = g_strdup_printf("%s=%s (%s)", name, value, where);
  return TRUE;
}

/* Return: the section parsed from @group, or NULL with @error. */
static Section *
parse_section(GKeyFile *file, const char *group, const char *origin, GError **error)
{
  g_autofree char *where = g_strdup_printf("[%s] of %s", group, origin);
  g_auto(GStrv) names = g_key_file_get_keys(file, group, NULL, NULL);
  Section *section = g_new0(Section, 1);

  for (char **name = names; name && *name; name++) {
    PolicyKey key;
    for (key = 0; key < N_KEYS; key++)
      if (strcmp(keys[key].name, *name) == 0)
        break;
    if (key == N_KEYS) {
      /* a typo must not silently leave a device or a user unrestricted */
      g_autoptr(GString) known = g_string_new(NULL);
      for (PolicyKey k = 0; k < N_KEYS; k++)
        g_string_append_printf(known, "%s%s", k ? ", " : "", keys[k].name);
      invalid(error, where, *name, "unknown key; keys are %s", known->str);
      section_free(section);
      return NULL;
    }
    if (!parse_setting(file, group, key, where, &section->settings[key], error)) {
      section_free(section);
      return NULL;
    }
  }
  return section;
}

Policy *
policy_load_from_data(const char *data, gsize length, const char *origin, uid_t daemon_uid,
                      GError **error)
{
  g_autoptr(GKeyFile) file = g_key_file_new();
  g_autoptr(GError) local = NULL;

  if (!g_utf8_validate_len(data, length, NULL)) {
    g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID, "%s is not UTF-8 text", origin);
    return NULL;
  }
  if (!g_key_file_load_from_data(file, data, length, G_KEY_FILE_NONE, &local)) {
    g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID, "%s: %s", origin, local->message);
    return NULL;
  }

  g_autoptr(Policy) policy = policy_alloc(daemon_uid, origin);
  g_auto(GStrv) groups = g_key_file_get_groups(file, NULL);
  for (char **group = groups; *group; group++) {
    if (strcmp(*group, "defaults") == 0) {
      policy->defaults = parse_section(file, *group, origin, error);
      if (policy->defaults == NULL)
        return NULL;
    } else if (g_str_has_prefix(*group, "vm ") && vm_name_is_valid(*group + 3)) {
      Section *section = parse_section(file, *group, origin, error);
      if (section == NULL)
        return NULL;
      g_hash_table_replace(policy->vms, g_strdup(*group + 3), section);
    } else {
      g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
                  "%s: unknown section [%s]; sections are [defaults] and [vm NAME]",
                  origin, *group);
      return NULL;
    }
  }
  if (policy->defaults == NULL)
    policy->defaults = g_new0(Section, 1);
  return g_steal_pointer(&policy);
}

Policy *
policy_load(const char *path, uid_t daemon_uid, GError **error)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                "cannot open policy file %s: %s", path, g_strerror(saved));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
                "policy file %s is not a regular file", path);
    return NULL;
  }
  /* whoever can change the policy can give themselves every device */
  if ((st.st_uid != 0 && st.st_uid != daemon_uid) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
    close(fd);
    g_set_error(error, POLICY_ERROR, POLICY_ERROR_UNSAFE,
                "policy file %s must belong to root and not be writable by group or "
                "others (it is uid %u, mode %04o); fix with chown root %s; chmod 644 %s",
                path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), path, path);
    return NULL;
  }
  if (st.st_size > POLICY_MAX_FILE_SIZE) {
    close(fd);
    g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
                "policy file %s is larger than %d bytes", path, POLICY_MAX_FILE_SIZE);
    return NULL;
  }

  g_autoptr(GString) text = g_string_sized_new((gsize)st.st_size + 1);
  char buffer[8192];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int saved = errno;
      close(fd);
      g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                  "cannot read policy file %s: %s", path, g_strerror(saved));
      return NULL;
    }
    if (n == 0)
      break;
    if (text->len + (gsize)n > POLICY_MAX_FILE_SIZE) {
      close(fd);
      g_set_error(error, POLICY_ERROR, POLICY_ERROR_INVALID,
                  "policy file %s is larger than %d bytes", path, POLICY_MAX_FILE_SIZE);
      return NULL;
    }
    g_string_append_len(text, buffer, n);
  }
  close(fd);
  return policy_load_from_data(text->str, text->len, path, daemon_uid, error);
}

/* ---- decisions ---------------------------------------------------------- */

/* Return: the setting in force for @vm, or NULL when the built-in default applies. */
static const Setting *
lookup(const Policy *policy, const char *vm, PolicyKey key)
{
  const Section *section = vm ? g_hash_table_lookup(policy->vms, vm) : NULL;
  if (section && section->settings[key].set)
    return &section->settings[key];
  if (policy->defaults && policy->defaults->settings[key].set)
    return &policy->defaults->settings[key];
  return NULL;
}

static gboolean
ids_contain(const Setting *setting, guint32 id)
{
  if (setting == NULL)
    return FALSE;
  for (guint i = 0; i < setting->ids->len; i++)
    if (g_array_index(setting->ids, guint32, i) == id)
      return TRUE;
  return FALSE;
}

PolicyAccess
policy_client_access(const Policy *policy, const char *vm, uid_t uid, gid_t gid,
                     const char **rule)
{
  const char *unused;
  const Setting *setting;
  if (rule == NULL)
    rule = &unused;

  if (uid == 0) {
    *rule = "root always has full access";
    return POLICY_ACCESS_FULL;
  }
  if (uid == policy->daemon_uid) {
    *rule = "the user hostdevd runs as always has full access";
    return POLICY_ACCESS_FULL;
  }
  if (ids_contain(setting = lookup(policy, vm, KEY_FULL_USERS), uid) ||
      ids_contain(setting = lookup(policy, vm, KEY_FULL_GROUPS), gid)) {
    *rule = setting->rule;
    return POLICY_ACCESS_FULL;
  }
  if (ids_contain(setting = lookup(policy, vm, KEY_READ_USERS), uid) ||
      ids_contain(setting = lookup(policy, vm, KEY_READ_GROUPS), gid)) {
    *rule = setting->rule;
    return POLICY_ACCESS_READ;
  }
  if (policy->defaults == NULL) {
    *rule = "default: only root and hostdevd's own user may use the control socket "
            "(no policy file grants this user access)";
  } else {
    g_autofree char *text = g_strdup_printf(
        "no full-access-users, full-access-groups, read-only-users or read-only-groups "
        "entry of %s for VM '%s' matches this user or group", policy->origin, vm);
    *rule = g_intern_string(text);
  }
  return POLICY_ACCESS_NONE;
}

gboolean
policy_socket_group(const Policy *policy, const char *vm, gid_t *gid)
{
  const Setting *setting = lookup(policy, vm, KEY_SOCKET_GROUP);
  if (setting == NULL)
    return FALSE;
  *gid = setting->gid;
  return TRUE;
}

guint
policy_max_devices(const Policy *policy, const char *vm)
{
  const Setting *setting = lookup(policy, vm, KEY_MAX_DEVICES);
  return setting ? setting->count : POLICY_DEFAULT_MAX_DEVICES;
}

gboolean
policy_iommu_group_takeover_allowed(const Policy *policy, const char *vm, const char **rule)
{
  const Setting *setting = lookup(policy, vm, KEY_GROUP_TAKEOVER);
  if (rule)
    *rule = setting ? setting->rule
                    : "default: allow-iommu-group-takeover=false (the other devices of "
                      "the group must already be bound to vfio-pci or unbound)";
  return setting ? setting->flag : FALSE;
}

gboolean
policy_check_vf_network(const Policy *policy, const char *vm, const guint8 *mac,
                        gboolean has_vlan, guint vlan_tag, const char **rule)
{
  const char *unused;
  const Setting *macs = lookup(policy, vm, KEY_ALLOW_VF_MACS);
  const Setting *vlans = lookup(policy, vm, KEY_ALLOW_VLANS);

  if (rule == NULL)
    rule = &unused;
  if (macs && mac) {
    char subject[18];
    g_snprintf(subject, sizeof subject, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
               mac[2], mac[3], mac[4], mac[5]);
    const Pattern *hit = NULL;
    for (guint i = 0; hit == NULL && i < macs->patterns->len; i++)
      if (g_pattern_match_simple(((Pattern *)macs->patterns->pdata[i])->text, subject))
        hit = macs->patterns->pdata[i];
    if (hit == NULL) {
      g_autofree char *text = g_strdup_printf("MAC %s matches no entry of %s", subject,
                                              macs->rule);
      *rule = g_intern_string(text);
      return FALSE;
    }
  }
  if (vlans) {
    gboolean listed = !has_vlan && vlans->flag;
    for (guint i = 0; has_vlan && !listed && i + 1 < vlans->ids->len; i += 2)
      listed = vlan_tag >= g_array_index(vlans->ids, guint32, i) &&
               vlan_tag <= g_array_index(vlans->ids, guint32, i + 1);
    if (!listed) {
      g_autofree char *what = has_vlan ? g_strdup_printf("VLAN %u", vlan_tag)
                                       : g_strdup("no VLAN (untagged)");
      g_autofree char *text = g_strdup_printf("%s is not in %s%s", what, vlans->rule,
                                              has_vlan ? "" : "; list 'untagged' to allow it");
      *rule = g_intern_string(text);
      return FALSE;
    }
  }
  *rule = macs || vlans ? "the VF's MAC and VLAN match allow-vf-macs and allow-vlans"
                        : "no allow-vf-macs or allow-vlans: any MAC and VLAN";
  return TRUE;
}

gboolean
policy_usb_hubs_allowed(const Policy *policy, const char *vm, const char **rule)
{
  const Setting *setting = lookup(policy, vm, KEY_ALLOW_USB_HUBS);
  if (rule)
    *rule = setting ? setting->rule
                    : "default: USB hubs and root hubs (bDeviceClass 09) are not given to a "
                      "VM, since every device behind one would follow it; set "
                      "allow-usb-hubs=true in the policy to allow them";
  return setting ? setting->flag : FALSE;
}

GStrv
policy_rom_dirs(const Policy *policy, const char *vm, const char **rule)
{
  static const char *const builtin[] = { POLICY_BUILTIN_ROM_DIRS, NULL };
  const Setting *setting = lookup(policy, vm, KEY_ALLOW_ROM_DIRS);
  g_autoptr(GStrvBuilder) dirs = g_strv_builder_new();

  g_strv_builder_addv(dirs, (const char **)builtin);
  if (setting)
    for (guint i = 0; i < setting->dirs->len; i++)
      g_strv_builder_add(dirs, setting->dirs->pdata[i]);
  if (rule) {
    g_autofree char *joined = g_strjoinv(", ", (char **)builtin);
    g_autofree char *text =
        setting ? g_strdup_printf("<rom file> must name a file in %s, or in the system ROM "
                                  "directories %s", setting->rule, joined)
                : g_strdup_printf("<rom file> must name a file in the system ROM directories "
                                  "%s (add more with allow-rom-dirs in the policy)", joined);
    *rule = g_intern_string(text);
  }
  return g_strv_builder_end(dirs);
}

/* ---- devices ------------------------------------------------------------ */

/* Ends the key lists of DeviceRules. */
#define END_OF_KEYS N_KEYS

/*
 * DeviceRules - the lists that govern one type of device
 * @deny: any entry that matches refuses it
 * @allow: groups of keys; each group with a key in force must be matched
 *   by an entry of one of its keys in force (within a group the keys are
 *   alternatives, the groups are all required)
 * @whole_function: a PCI function of its own: bridges and the boot
 *   display are checked
 * @mdev_owner: its UUID must be the VM's own or allowed (allow-mdev-uuids)
 */
typedef struct {
  PolicyKey deny[5];
  PolicyKey allow[2][4];
  gboolean whole_function;
  gboolean mdev_owner;
  const char *without_file;   /* the rule when there is no policy file */
  const char *allow_names;    /* the allow keys, for "has no ..." */
  const char *what;           /* "PCI device" */
} DeviceRules;

static const DeviceRules device_rules[] = {
  [POLICY_DEVICE_PCI] = {
    .deny = { KEY_DENY_PCI, KEY_DENY_PCI_IDS, KEY_DENY_PCI_CLASSES, END_OF_KEYS },
    .allow = { { KEY_ALLOW_PCI, KEY_ALLOW_PCI_IDS, KEY_ALLOW_PCI_CLASSES, END_OF_KEYS },
               { END_OF_KEYS } },
    .whole_function = TRUE,
    .without_file = "default: every PCI device but bridges and the boot display may be attached",
    .allow_names = "allow-pci, allow-pci-ids or allow-pci-classes",
    .what = "PCI device",
  },
  [POLICY_DEVICE_USB] = {
    .deny = { KEY_DENY_USB, END_OF_KEYS },
    .allow = { { KEY_ALLOW_USB, END_OF_KEYS }, { END_OF_KEYS } },
    .without_file = "default: every USB device may be attached",
    .allow_names = "allow-usb",
    .what = "USB device",
  },
  /* a slice of its parent: whatever may not have the parent may not have a slice */
  [POLICY_DEVICE_MDEV] = {
    .deny = { KEY_DENY_PCI, KEY_DENY_PCI_IDS, KEY_DENY_PCI_CLASSES, KEY_DENY_MDEV_TYPES,
              END_OF_KEYS },
    .allow = { { KEY_ALLOW_PCI, KEY_ALLOW_PCI_IDS, KEY_ALLOW_PCI_CLASSES, END_OF_KEYS },
               { KEY_ALLOW_MDEV_TYPES, END_OF_KEYS } },
    .mdev_owner = TRUE,
    .without_file = "default: every mediated device whose UUID is not another VM's may be "
                    "attached",
    .allow_names = "allow-pci, allow-pci-ids, allow-pci-classes or allow-mdev-types",
    .what = "mediated device",
  },
};

/* Return: (nullable): why @facts cannot be checked against a key of @kind
 * (interned), or NULL when they can. */
static const char *
facts_unknown(KeyKind kind, const PolicyDeviceFacts *facts)
{
  if (facts->type == POLICY_DEVICE_USB && !facts->usb_ids_known)
    return "the device's vendor and product are unknown";
  if (facts->type != POLICY_DEVICE_MDEV)
    return NULL;
  if (kind == KIND_MDEV_TYPES)
    return facts->mdev_type ? NULL : "the mediated device's type is unknown";
  if (facts->mdev_parent_is_pci)
    return NULL;
  g_autofree char *text = g_strdup_printf("the mediated device's parent %s is not a PCI "
                                          "device", facts->mdev_parent ? facts->mdev_parent
                                                                       : "(unknown)");
  return g_intern_string(text);
}

/* Return: the first pattern of @setting that @facts match, or NULL. */
static const Pattern *
match_setting(const Setting *setting, KeyKind kind, const PolicyDeviceFacts *facts)
{
  g_autofree char *subject = NULL;

  if (setting == NULL)
    return NULL;
  if (kind == KIND_PCI_ADDRESSES)
    subject = g_strdup_printf("%04x:%02x:%02x.%x", facts->pci_domain, facts->pci_bus,
                              facts->pci_slot, facts->pci_function);
  else if (kind == KIND_MDEV_TYPES)
    subject = g_ascii_strdown(facts->mdev_type ? facts->mdev_type : "", -1);
  else if (kind == KIND_UUIDS)
    subject = g_ascii_strdown(facts->mdev_uuid ? facts->mdev_uuid : "", -1);
  else if (facts->type == POLICY_DEVICE_USB)
    subject = g_strdup_printf("%04x:%04x", facts->usb_vendor, facts->usb_product);
  else
    subject = g_strdup_printf("%04x:%04x", facts->pci_vendor, facts->pci_device);

  for (guint i = 0; i < setting->patterns->len; i++) {
    const Pattern *pattern = setting->patterns->pdata[i];
    gboolean hit = kind == KIND_PCI_CLASSES
                       ? (facts->pci_class & pattern->class_mask) == pattern->class_value
                       : g_pattern_match_simple(pattern->text, subject);
    if (hit)
      return pattern;
  }
  return NULL;
}

/* The rules only a whole PCI function has: never a bridge, the boot display on request. */
static gboolean
whole_function_allowed(const Policy *policy, const char *vm, const PolicyDeviceFacts *facts,
                       const char **rule)
{
  /* A bridge or root port carries every device behind it: never. */
  if ((facts->pci_class >> 16) == 0x06) {
    *rule = "always denied: PCI bridges and root ports (class 0x06xxxx) are never "
            "given to a VM";
    return FALSE;
  }
  if (facts->boot_vga) {
    const Setting *setting = lookup(policy, vm, KEY_ALLOW_BOOT_VGA);
    if (setting == NULL || !setting->flag) {
      *rule = setting ? setting->rule
                      : "default: the host's boot display (boot_vga=1) is not given to a "
                        "VM; set allow-boot-vga=true in the policy to allow it";
      return FALSE;
    }
  }
  return TRUE;
}

/* Denies accumulate: the VM's own and those of [defaults] all apply. */
static gboolean
not_denied(const Policy *policy, const char *vm, const DeviceRules *rules,
           const PolicyDeviceFacts *facts, const char **rule)
{
  const Section *vm_section = vm ? g_hash_table_lookup(policy->vms, vm) : NULL;
  const Section *sections[] = { vm_section, policy->defaults };

  for (gsize s = 0; s < G_N_ELEMENTS(sections); s++) {
    if (sections[s] == NULL)
      continue;
    for (const PolicyKey *key = rules->deny; *key != END_OF_KEYS; key++) {
      const Setting *setting = &sections[s]->settings[*key];
      if (!setting->set || setting->patterns->len == 0)
        continue;
      const char *unknown = facts_unknown(keys[*key].kind, facts);
      if (unknown) {
        g_autofree char *text = g_strdup_printf("%s cannot be checked: %s", setting->rule,
                                                unknown);
        *rule = g_intern_string(text);
        return FALSE;
      }
      const Pattern *hit = match_setting(setting, keys[*key].kind, facts);
      if (hit) {
        *rule = hit->rule;
        return FALSE;
      }
    }
  }
  return TRUE;
}

/*
 * allow_group_passes() - @facts against one allow group of @rules
 * @hit: (out): the entry that let it through, NULL when no key of the group is in force
 */
static gboolean
allow_group_passes(const Policy *policy, const char *vm, const PolicyKey *group,
                   const PolicyDeviceFacts *facts, const Pattern **hit, const char **rule)
{
  g_autoptr(GString) names = g_string_new(NULL);
  const char *unknown = NULL;

  *hit = NULL;
  for (const PolicyKey *key = group; *key != END_OF_KEYS; key++) {
    const Setting *setting = lookup(policy, vm, *key);
    if (setting == NULL)
      continue;
    g_string_append_printf(names, "%s%s", names->len ? "; " : "", setting->rule);
    if ((unknown = facts_unknown(keys[*key].kind, facts)) != NULL)
      continue;
    if ((*hit = match_setting(setting, keys[*key].kind, facts)) != NULL)
      return TRUE;
  }
  if (names->len == 0)
    return TRUE;
  g_autofree char *text = unknown
      ? g_strdup_printf("%s, so it cannot match %s", unknown, names->str)
      : g_strdup_printf("the device matches no entry of %s", names->str);
  *rule = g_intern_string(text);
  return FALSE;
}

/*
 * mdev_uuid_allowed() - an mdev's UUID: the VM's own, one allow-mdev-uuids
 * lists, or (without that key) one no VM derived; a UUID `mdev-create --vm`
 * derived for another VM names that VM's instance
 * @hit: (out): the allow-mdev-uuids entry that let it through, or NULL
 */
static gboolean
mdev_uuid_allowed(const Policy *policy, const char *vm, const PolicyDeviceFacts *facts,
                  const Pattern **hit, const char **rule)
{
  const Setting *uuids = lookup(policy, vm, KEY_ALLOW_MDEV_UUIDS);
  g_autofree char *text = NULL;

  *hit = facts->mdev_uuid_own ? NULL : match_setting(uuids, KIND_UUIDS, facts);
  if (facts->mdev_uuid_own || *hit)
    return TRUE;
  if (facts->mdev_uuid_derived)
    text = g_strdup_printf(
        "mdev UUID %s is a version 3 UUID, the kind `hostdevctl mdev-create --vm` derives, "
        "but not one derived for VM '%s': it is another VM's instance%s%s%s",
        facts->mdev_uuid, vm, uuids ? " and matches no entry of " : "",
        uuids ? uuids->rule : "", uuids ? "" : "; list it in allow-mdev-uuids to allow it");
  else if (uuids)
    text = g_strdup_printf("mdev UUID %s is not one derived for VM '%s' (`hostdevctl "
                           "mdev-create --vm %s`) and matches no entry of %s",
                           facts->mdev_uuid, vm, vm, uuids->rule);
  else
    return TRUE;
  *rule = g_intern_string(text);
  return FALSE;
}

gboolean
policy_check_device(const Policy *policy, const char *vm, const PolicyDeviceFacts *facts,
                    guint n_attached, const char **rule)
{
  const char *unused;
  const DeviceRules *rules = &device_rules[facts->type];
  const Setting *setting;

  if (rule == NULL)
    rule = &unused;
  if (rules->whole_function && !whole_function_allowed(policy, vm, facts, rule))
    return FALSE;
  setting = lookup(policy, vm, KEY_MAX_DEVICES);
  if (n_attached >= (setting ? setting->count : POLICY_DEFAULT_MAX_DEVICES)) {
    *rule = setting ? setting->rule
                    : "default: max-devices=" G_STRINGIFY(POLICY_DEFAULT_MAX_DEVICES);
    return FALSE;
  }
  if (!not_denied(policy, vm, rules, facts, rule))
    return FALSE;

  g_autoptr(GString) allowed_by = g_string_new(NULL);
  for (gsize g = 0; g < G_N_ELEMENTS(rules->allow); g++) {
    const Pattern *hit = NULL;
    if (!allow_group_passes(policy, vm, rules->allow[g], facts, &hit, rule))
      return FALSE;
    if (hit)
      g_string_append_printf(allowed_by, "%s%s", allowed_by->len ? " and " : "", hit->rule);
  }
  if (rules->mdev_owner) {
    const Pattern *hit = NULL;
    if (!mdev_uuid_allowed(policy, vm, facts, &hit, rule))
      return FALSE;
    if (hit)
      g_string_append_printf(allowed_by, "%s%s", allowed_by->len ? " and " : "", hit->rule);
  }

  if (allowed_by->len) {
    *rule = g_intern_string(allowed_by->str);
  } else if (policy->defaults == NULL) {
    *rule = rules->without_file;
  } else {
    g_autofree char *text = g_strdup_printf(
        "%s has no %s for VM '%s', so every %s not denied may be attached", policy->origin,
        rules->allow_names, vm, rules->what);
    *rule = g_intern_string(text);
  }
  return TRUE;
}

char *
policy_describe_device(const PolicyDeviceFacts *facts)
{
  g_autofree char *pci = g_strdup_printf(
      "PCI device %04x:%02x:%02x.%x [%04x:%04x] class 0x%06x", facts->pci_domain,
      facts->pci_bus, facts->pci_slot, facts->pci_function, facts->pci_vendor,
      facts->pci_device, facts->pci_class);

  if (facts->type == POLICY_DEVICE_PCI)
    return g_strdup_printf("%s%s", pci, facts->boot_vga ? " (boot display)" : "");
  if (facts->type == POLICY_DEVICE_MDEV)
    return g_strdup_printf("mediated device %s of type %s on %s%s",
                           facts->mdev_uuid ? facts->mdev_uuid : "(unknown)",
                           facts->mdev_type ? facts->mdev_type : "(unknown)",
                           facts->mdev_parent_is_pci ? "" : "parent ",
                           facts->mdev_parent_is_pci ? pci
                           : facts->mdev_parent ? facts->mdev_parent : "(unknown)");
  if (!facts->usb_ids_known)
    return g_strdup("USB device (vendor and product unknown)");
  return g_strdup_printf("USB device %04x:%04x", facts->usb_vendor, facts->usb_product);
}
