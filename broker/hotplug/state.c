/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "state.h"
#include "hostdevd-error.h"
#include "file-replace.h"
#include "json-text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An entry is a few kilobytes; anything this big is not one of ours. */
#define JOURNAL_MAX_ENTRY_SIZE (1024 * 1024)

/* The format written; files whose min-reader-version is above it are not ours to read. */
#define JOURNAL_VERSION 2
/* The oldest reader that understands what this version writes: version 2
 * only added the "qemu" member, which a version-1 reader may ignore. */
#define JOURNAL_MIN_READER_VERSION 1

/*
 * Every file of the journal is opened, renamed and removed relative to
 * dir_fd, the journal directory opened once without following a link: a
 * name is one component (a safe alias plus ".json"), so no file operation
 * can reach outside that directory, even if the path to it is replaced.
 */
struct _StateJournal {
  char *dir;
  char *path;           /* for messages: DIR/VM.journal */
  char *vm;
  int dir_fd;           /* the journal directory */
  gboolean in_memory;   /* on tmpfs/ramfs: written data is as durable as it gets
                         * without fsync (it survives hostdevd, never the host) */
  GPtrArray *entries;   /* StateEntry* */
  GPtrArray *zpci_left; /* StateZpci* */
  GPtrArray *requests;  /* StateRequest*: requests of several devices without an answer */
};

static const char *const state_names[] = {
  [STATE_ATTACHING] = "attaching",
  [STATE_ATTACHED] = "attached",
  [STATE_DETACHING] = "detaching",
};

gboolean
state_alias_is_safe(const char *alias)
{
  gsize length = alias ? strlen(alias) : 0;
  if (length == 0 || length > STATE_ALIAS_MAX || alias[0] == '-')
    return FALSE;
  for (const char *c = alias; *c; c++)
    if (!g_ascii_isalnum(*c) && *c != '_' && *c != '-')
      return FALSE;
  return TRUE;
}

const char *
state_device_state_name(StateDeviceState state)
{
  return state_names[state];
}

static gboolean
state_from_name(const char *name, StateDeviceState *state)
{
  for (gsize i = 0; i < G_N_ELEMENTS(state_names); i++) {
    if (g_strcmp0(state_names[i], name) == 0) {
      *state = (StateDeviceState)i;
      return TRUE;
    }
  }
  return FALSE;
}

/* What @entry holds goes; the struct stays, emptied. */
static void
entry_clear(StateEntry *entry)
{
  g_clear_pointer(&entry->alias, g_free);
  g_clear_pointer(&entry->step, g_free);
  g_clear_pointer(&entry->xml, g_free);
  g_clear_pointer(&entry->qemu_ids, g_strfreev);
  g_clear_pointer(&entry->host, g_free);
}

static void
entry_free(StateEntry *entry)
{
  entry_clear(entry);
  g_free(entry);
}

void
state_journal_free(StateJournal *journal)
{
  if (journal == NULL)
    return;
  g_free(journal->dir);
  g_free(journal->path);
  g_free(journal->vm);
  if (journal->dir_fd >= 0)
    close(journal->dir_fd);
  if (journal->entries)
    g_ptr_array_unref(journal->entries);
  if (journal->zpci_left)
    g_ptr_array_unref(journal->zpci_left);
  if (journal->requests)
    g_ptr_array_unref(journal->requests);
  g_free(journal);
}

GPtrArray *
state_journal_entries(StateJournal *journal)
{
  return journal->entries;
}

StateEntry *
state_journal_find(StateJournal *journal, const char *alias)
{
  for (guint i = 0; i < journal->entries->len; i++) {
    StateEntry *entry = g_ptr_array_index(journal->entries, i);
    if (g_strcmp0(entry->alias, alias) == 0)
      return entry;
  }
  return NULL;
}

JsonObject *
state_entry_host(const StateEntry *entry)
{
  return entry->host ? json_text_parse_object(entry->host) : NULL;
}

/* Return: (transfer full): the strings of a JSON array member, NULL-terminated. */
static GStrv
string_array(JsonObject *object, const char *member)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  JsonNode *node = json_object_get_member(object, member);
  if (node && JSON_NODE_HOLDS_ARRAY(node)) {
    JsonArray *array = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(array); i++) {
      JsonNode *element = json_array_get_element(array, i);
      if (JSON_NODE_HOLDS_VALUE(element) && json_node_get_value_type(element) == G_TYPE_STRING)
        g_strv_builder_add(builder, json_node_get_string(element));
    }
  }
  return g_strv_builder_end(builder);
}

static StateEntry *
entry_from_json(JsonObject *object, GError **error)
{
  const char *alias = json_object_get_string_member_with_default(object, "alias", NULL);
  const char *state_name = json_object_get_string_member_with_default(object, "state", NULL);
  StateDeviceState state;

  if (alias == NULL || !state_from_name(state_name, &state)) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                        "an entry lacks a valid alias or state");
    return NULL;
  }
  StateEntry *entry = g_new0(StateEntry, 1);
  entry->alias = g_strdup(alias);
  entry->state = state;
  entry->step = g_strdup(json_object_get_string_member_with_default(object, "step", ""));
  entry->xml = g_strdup(json_object_get_string_member_with_default(object, "xml", ""));
  entry->qemu_ids = string_array(object, "qemu-ids");
  JsonNode *host = json_object_get_member(object, "host");
  if (host && JSON_NODE_HOLDS_OBJECT(host))
    entry->host = json_text_from_node(host, NULL);
  JsonNode *qemu = json_object_get_member(object, "qemu");
  if (qemu && JSON_NODE_HOLDS_OBJECT(qemu))
    entry->qemu = process_identity_from_json(json_node_get_object(qemu));
  return entry;
}

/* Return: (transfer full): @entry's record as written, member by member (no tree):
 * the entry, then the format version and the VM; its length in @length. */
static char *
entry_text(const StateJournal *journal, const StateEntry *entry, gsize *length)
{
  GString *out = g_string_sized_new(512);

  json_text_object_begin(out);
  json_text_member_string(out, "alias", entry->alias);
  json_text_member_string(out, "state", state_device_state_name(entry->state));
  json_text_member_string(out, "step", entry->step);
  json_text_member_string(out, "xml", entry->xml);
  json_text_member_strv(out, "qemu-ids", (const char *const *)entry->qemu_ids);
  if (entry->host)
    json_text_member_raw(out, "host", entry->host);
  if (entry->qemu.pid > 0) {
    json_text_member_name(out, "qemu");
    process_identity_append_json(out, &entry->qemu);
  }
  json_text_member_int(out, "version", JOURNAL_VERSION);
  json_text_member_int(out, "min-reader-version", JOURNAL_MIN_READER_VERSION);
  json_text_member_string(out, "vm", journal->vm);
  json_text_object_end(out);
  *length = out->len;
  return g_string_free(out, FALSE);
}

/* Return: (transfer full): the name of @alias's file in the journal directory. */
static char *
entry_name(const char *alias)
{
  return g_strconcat(alias, ".json", NULL);
}

/* Return: (transfer full): the contents of @name in the journal directory,
 * a regular file reached without following a link; NULL with @error. */
static char *
read_entry_file(StateJournal *journal, const char *name, gsize *length, GError **error)
{
  int fd = openat(journal->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  struct stat st;
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR, "cannot open it: %s",
                saved == ELOOP ? "it is a symbolic link" : g_strerror(saved));
    return NULL;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > JOURNAL_MAX_ENTRY_SIZE) {
    close(fd);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "it is not a regular file of at most %d bytes", JOURNAL_MAX_ENTRY_SIZE);
    return NULL;
  }
  g_autoptr(GString) text = g_string_sized_new((gsize)st.st_size + 1);
  char buffer[8192];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 || text->len + (gsize)MAX(n, 0) > JOURNAL_MAX_ENTRY_SIZE) {
      int saved = n < 0 ? errno : EFBIG;
      close(fd);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR, "cannot read it: %s",
                  g_strerror(saved));
      return NULL;
    }
    if (n == 0)
      break;
    g_string_append_len(text, buffer, n);
  }
  close(fd);
  *length = text->len;
  return g_string_free(g_steal_pointer(&text), FALSE);
}

/* Read one entry file; a damaged one is kept aside and skipped, with a warning. */
static void
load_entry(StateJournal *journal, const char *name)
{
  g_autofree char *path = g_build_filename(journal->path, name, NULL);
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  StateEntry *entry = NULL;

  if ((contents = read_entry_file(journal, name, &length, &error)) != NULL &&
      json_parser_load_from_data(parser, contents, (gssize)length, &error)) {
    JsonNode *root = json_parser_get_root(parser);
    JsonObject *object = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
    gint64 version = object ? json_object_get_int_member_with_default(object, "version", 0) : 0;
    gint64 min_reader = object ? json_object_get_int_member_with_default(
                                     object, "min-reader-version", version) : 0;
    if (version >= 1 && min_reader >= 1 && min_reader <= JOURNAL_VERSION)
      entry = entry_from_json(object, &error);
    else if (object)
      g_set_error(&error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "format version %" G_GINT64_FORMAT " needs a reader of version %" G_GINT64_FORMAT
                  " (this hostdevd reads %d)", version, min_reader, JOURNAL_VERSION);
  }
  /* the file name is the alias: one that could not have been written is not trusted */
  g_autofree char *expected = entry ? g_strconcat(entry->alias, ".json", NULL) : NULL;
  if (entry && (!state_alias_is_safe(entry->alias) || !g_str_equal(name, expected))) {
    g_clear_pointer(&entry, entry_free);
    g_set_error_literal(&error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                        "its alias does not match its file name");
  }
  if (entry == NULL) {
    /* Keep the evidence; skipping it leaves a device in QEMU, never frees a held one. */
    g_autofree char *aside = g_strconcat(name, ".corrupt", NULL);
    g_warning("journal entry %s is damaged (%s); kept as %s.corrupt", path,
              error ? error->message : "unexpected layout", path);
    renameat(journal->dir_fd, name, journal->dir_fd, aside);
    return;
  }
  g_ptr_array_add(journal->entries, entry);
}

static void
zpci_free(StateZpci *zpci)
{
  g_free(zpci->id);
  g_free(zpci->target);
  g_free(zpci);
}

/* Read one ID.zpci record; one that is damaged or names what hostdevd never
 * writes is kept aside (ID.zpci.corrupt), and so is never reused. */
static void
load_zpci(StateJournal *journal, const char *name)
{
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  StateZpci *zpci = NULL;

  if ((contents = read_entry_file(journal, name, &length, &error)) != NULL &&
      json_parser_load_from_data(parser, contents, (gssize)length, &error)) {
    JsonNode *root = json_parser_get_root(parser);
    JsonObject *object = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
    const char *id = object ? json_object_get_string_member_with_default(object, "id", NULL) : NULL;
    const char *target = object ? json_object_get_string_member_with_default(object, "target",
                                                                             NULL) : NULL;
    gint64 uid = object ? json_object_get_int_member_with_default(object, "uid", -1) : -1;
    gint64 fid = object ? json_object_get_int_member_with_default(object, "fid", -1) : -1;
    g_autofree char *expected = id ? g_strconcat(id, ".zpci", NULL) : NULL;
    JsonNode *qemu = object ? json_object_get_member(object, "qemu") : NULL;
    if (state_alias_is_safe(id) && state_alias_is_safe(target) && g_str_equal(name, expected) &&
        uid >= 1 && uid <= 0xffff && fid >= 0 && fid <= 0xffffffff && qemu &&
        JSON_NODE_HOLDS_OBJECT(qemu)) {
      zpci = g_new0(StateZpci, 1);
      zpci->id = g_strdup(id);
      zpci->target = g_strdup(target);
      zpci->uid = (guint)uid;
      zpci->fid = (guint)fid;
      zpci->qemu = process_identity_from_json(json_node_get_object(qemu));
    }
  }
  if (zpci == NULL) {
    g_autofree char *aside = g_strconcat(name, ".corrupt", NULL);
    g_warning("journal record %s/%s of a zpci left in QEMU is damaged (%s); kept as %s and "
              "never reused", journal->path, name, error ? error->message : "unexpected layout",
              aside);
    renameat(journal->dir_fd, name, journal->dir_fd, aside);
    return;
  }
  g_ptr_array_add(journal->zpci_left, zpci);
}

static void
request_free(StateRequest *request)
{
  g_free(request->id);
  g_strfreev(request->aliases);
  g_free(request);
}

/* Return: (transfer full) (nullable): @object's request, when its id, its file
 * @name and every alias are ones hostdevd writes (two or more aliases). */
static StateRequest *
request_from_json(JsonObject *object, const char *name)
{
  const char *id = json_object_get_string_member_with_default(object, "id", NULL);
  JsonNode *node = json_object_get_member(object, "aliases");
  g_autofree char *expected = id ? g_strconcat(id, ".request", NULL) : NULL;

  if (!state_alias_is_safe(id) || !g_str_equal(name, expected) || node == NULL ||
      !JSON_NODE_HOLDS_ARRAY(node) || json_array_get_length(json_node_get_array(node)) < 2)
    return NULL;
  JsonArray *array = json_node_get_array(node);
  for (guint i = 0; i < json_array_get_length(array); i++) {
    JsonNode *alias = json_array_get_element(array, i);
    if (!JSON_NODE_HOLDS_VALUE(alias) || json_node_get_value_type(alias) != G_TYPE_STRING ||
        !state_alias_is_safe(json_node_get_string(alias)))
      return NULL;
  }
  StateRequest *request = g_new0(StateRequest, 1);
  request->id = g_strdup(id);
  request->aliases = string_array(object, "aliases");
  return request;
}

/* Read one ID.request record; a damaged one is kept aside (ID.request.corrupt) and its
 * devices' records are then finished or undone each on its own, with a warning. */
static void
load_request(StateJournal *journal, const char *name)
{
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  StateRequest *request = NULL;

  if ((contents = read_entry_file(journal, name, &length, &error)) != NULL &&
      json_parser_load_from_data(parser, contents, (gssize)length, &error)) {
    JsonNode *root = json_parser_get_root(parser);
    JsonObject *object = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
    gint64 min_reader = object ? json_object_get_int_member_with_default(
                                     object, "min-reader-version", 0) : 0;
    if (min_reader >= 1 && min_reader <= JOURNAL_VERSION)
      request = request_from_json(object, name);
  }
  if (request == NULL) {
    g_autofree char *aside = g_strconcat(name, ".corrupt", NULL);
    g_warning("journal record %s/%s of a <devices> request without an answer is damaged (%s); "
              "kept as %s: the devices of that request are finished or undone each on its "
              "own, as their own records say, not as one request", journal->path, name,
              error ? error->message : "unexpected layout", aside);
    renameat(journal->dir_fd, name, journal->dir_fd, aside);
    return;
  }
  g_ptr_array_add(journal->requests, request);
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
  return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* Open (making it if needed) DIR/VM.journal without following a link into @journal->dir_fd. */
static gboolean
open_directory(StateJournal *journal, GError **error)
{
  g_autofree char *name = g_strdup_printf("%s.journal", journal->vm);
  struct stat st;
  int saved = 0;
  int parent = -1;

  if (g_mkdir_with_parents(journal->dir, 0700) != 0 ||
      (parent = open(journal->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot open the state directory %s: %s", journal->dir, g_strerror(saved));
    return FALSE;
  }
  if (mkdirat(parent, name, 0700) != 0 && errno != EEXIST)
    saved = errno;
  else if ((journal->dir_fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                                       O_CLOEXEC)) < 0)
    saved = errno == ENOTDIR ? ELOOP : errno;
  close(parent);
  if (saved != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot open the journal directory %s: %s", journal->path,
                saved == ELOOP ? "it is a symbolic link or not a directory; hostdevd makes "
                                 "it itself, remove what is there"
                               : g_strerror(saved));
    return FALSE;
  }
  journal->in_memory = file_dir_in_memory(journal->dir_fd);
  /* its files say what to give back to the host: only hostdevd's user may change them */
  if (fstat(journal->dir_fd, &st) != 0 || st.st_uid != geteuid() ||
      (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "the journal directory %s must belong to uid %u and not be writable by "
                "group or others (it is uid %u, mode %04o); fix with chown %u %s; chmod 700 %s",
                journal->path, (unsigned)geteuid(), (unsigned)st.st_uid,
                (unsigned)(st.st_mode & 07777), (unsigned)geteuid(), journal->path,
                journal->path);
    return FALSE;
  }
  return TRUE;
}

static gboolean
load(StateJournal *journal, GError **error)
{
  if (!open_directory(journal, error))
    return FALSE;
  int listing_fd = dup(journal->dir_fd);
  DIR *dir = listing_fd >= 0 ? fdopendir(listing_fd) : NULL;
  if (dir == NULL) {
    int saved = errno;
    if (listing_fd >= 0)
      close(listing_fd);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot list the journal directory %s: %s", journal->path, g_strerror(saved));
    return FALSE;
  }
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  struct dirent *item;
  while ((item = readdir(dir)) != NULL)
    if ((g_str_has_suffix(item->d_name, ".json") || g_str_has_suffix(item->d_name, ".zpci") ||
         g_str_has_suffix(item->d_name, ".request")) && item->d_name[0] != '.')
      g_ptr_array_add(names, g_strdup(item->d_name));
  closedir(dir);
  g_ptr_array_sort(names, compare_names);
  for (guint i = 0; i < names->len; i++) {
    const char *name = g_ptr_array_index(names, i);
    if (g_str_has_suffix(name, ".zpci"))
      load_zpci(journal, name);
    else if (g_str_has_suffix(name, ".request"))
      load_request(journal, name);
    else
      load_entry(journal, name);
  }
  return TRUE;
}

StateJournal *
state_journal_open(const char *dir, const char *vm, GError **error)
{
  g_autoptr(StateJournal) journal = g_new0(StateJournal, 1);

  journal->dir = g_strdup(dir);
  journal->vm = g_strdup(vm);
  journal->path = g_strdup_printf("%s/%s.journal", dir, vm);
  journal->dir_fd = -1;
  journal->entries = g_ptr_array_new_with_free_func((GDestroyNotify)entry_free);
  journal->zpci_left = g_ptr_array_new_with_free_func((GDestroyNotify)zpci_free);
  journal->requests = g_ptr_array_new_with_free_func((GDestroyNotify)request_free);
  if (!load(journal, error))
    return NULL;
  return g_steal_pointer(&journal);
}

/*
 * maybe_crash() - a test hook, compiled in only with meson -Dtest_hooks=true:
 * the environment variable HOSTDEVD_TEST_CRASH_AT=STEP kills hostdevd right
 * after STEP is journaled, for any device; ALIAS:STEP only for the device
 * ALIAS (a step of the second device of a request).  A shipped hostdevd has
 * no such code: nothing in its environment can make it die half-way.
 */
#ifdef HOSTDEVD_TEST_HOOKS
static void
maybe_crash(const char *alias, const char *step)
{
  const char *crash_at = g_getenv("HOSTDEVD_TEST_CRASH_AT");
  g_autofree char *qualified = alias ? g_strconcat(alias, ":", step, NULL) : NULL;
  if (crash_at && (g_strcmp0(crash_at, step) == 0 || g_strcmp0(crash_at, qualified) == 0)) {
    g_message("HOSTDEVD_TEST_CRASH_AT=%s: killing myself", crash_at);
    raise(SIGKILL);
  }
}
#else
static void
maybe_crash(const char *alias, const char *step)
{
}
#endif

void
state_journal_crash_point(const char *point)
{
  maybe_crash(NULL, point);
}

/* fsync_dir() - make a rename or unlink in the journal directory durable. */
static void
fsync_dir(StateJournal *journal)
{
  if (!journal->in_memory)
    fsync(journal->dir_fd);
}

static gboolean write_record(StateJournal *journal, const char *name, JsonObject *root,
                             GError **error);
static gboolean remove_record(StateJournal *journal, const char *name, GError **error);

/* A device's record replaces its own file: one small file per device keeps
 * the cost of a step the same however many devices the VM has. */
struct _StateDraft {
  StateEntry entry;      /* the entry as the record has it */
  guint64 base;          /* the journal entry's revision it was drafted on (0: none yet) */
  gboolean has_xml, has_ids, has_host, has_qemu;   /* what the caller gave, not kept */
  char *name;            /* the entry's file */
  char *text;
  gsize length;
};

void
state_draft_free(StateDraft *draft)
{
  if (draft == NULL)
    return;
  entry_clear(&draft->entry);
  g_free(draft->name);
  g_free(draft->text);
  g_free(draft);
}

StateDraft *
state_journal_draft(StateJournal *journal, const char *alias, StateDeviceState state,
                    const char *step, const char *xml, const char *const *qemu_ids,
                    const char *host, const ProcessIdentity *qemu)
{
  const StateEntry *was = state_journal_find(journal, alias);
  StateDraft *draft = g_new0(StateDraft, 1);
  StateEntry *entry = &draft->entry;

  draft->base = was ? was->revision : 0;
  draft->has_xml = xml != NULL;
  draft->has_ids = qemu_ids != NULL;
  draft->has_host = host != NULL;
  draft->has_qemu = qemu != NULL;
  entry->alias = g_strdup(alias);
  entry->state = state;
  entry->step = g_strdup(step);
  entry->xml = g_strdup(xml ? xml : was ? was->xml : "");
  entry->qemu_ids = qemu_ids ? g_strdupv((char **)qemu_ids)
                    : was ? g_strdupv(was->qemu_ids) : g_new0(char *, 1);
  entry->host = g_strdup(host ? host : was ? was->host : NULL);
  if (qemu)
    entry->qemu = *qemu;
  else if (was)
    entry->qemu = was->qemu;

  draft->text = entry_text(journal, entry, &draft->length);
  draft->name = entry_name(alias);
  return draft;
}

gboolean
state_journal_commit(StateJournal *journal, StateDraft *draft, GError **error)
{
  g_autoptr(StateDraft) owned = draft;
  StateEntry *entry = state_journal_find(journal, draft->entry.alias);

  if (!state_alias_is_safe(draft->entry.alias)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "alias '%s' cannot be journaled: an alias is 1-%d of A-Z a-z 0-9 _ -",
                draft->entry.alias, STATE_ALIAS_MAX);
    return FALSE;
  }
  if ((entry ? entry->revision : 0) != draft->base) {
    /* written since: what the caller gave, applied to the entry as it is now */
    StateEntry *given = &draft->entry;
    owned = state_journal_draft(journal, given->alias, given->state, given->step,
                                draft->has_xml ? given->xml : NULL,
                                draft->has_ids ? (const char *const *)given->qemu_ids : NULL,
                                draft->has_host ? given->host : NULL,
                                draft->has_qemu ? &given->qemu : NULL);
    state_draft_free(draft);
    draft = owned;
  }
  int saved = file_replace_at(journal->dir_fd, draft->name, draft->text, draft->length,
                              journal->in_memory);
  if (saved != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot write the journal %s/%s: %s; nothing was changed", journal->path,
                draft->name, g_strerror(saved));
    return FALSE;
  }
  if (entry == NULL) {
    entry = g_new0(StateEntry, 1);
    g_ptr_array_add(journal->entries, entry);
  }
  entry_clear(entry);
  guint64 revision = entry->revision + 1;
  *entry = draft->entry;   /* the draft's strings are the entry's now */
  entry->revision = revision;
  memset(&draft->entry, 0, sizeof draft->entry);
#ifdef HOSTDEVD_TEST_HOOKS   /* a shipped hostdevd does not format what it never compares */
  g_autofree char *crash_step = g_strdup_printf("%s:%s", state_device_state_name(entry->state),
                                                entry->step);
  maybe_crash(entry->alias, crash_step);
#endif
  return TRUE;
}

gboolean
state_journal_record(StateJournal *journal, const char *alias, StateDeviceState state,
                     const char *step, const char *xml, const char *const *qemu_ids,
                     const char *host, const ProcessIdentity *qemu, GError **error)
{
  return state_journal_commit(journal, state_journal_draft(journal, alias, state, step, xml,
                                                           qemu_ids, host, qemu), error);
}

gboolean
state_journal_forget(StateJournal *journal, const char *alias, GError **error)
{
  StateEntry *entry = state_journal_find(journal, alias);
  if (entry == NULL)
    return TRUE;
  g_autofree char *name = entry_name(alias);
  if (!state_alias_is_safe(alias)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot remove the journal entry %s/%s: %s", journal->path, name,
                g_strerror(EINVAL));
    return FALSE;
  }
  if (!remove_record(journal, name, error))
    return FALSE;
  /* before the entry goes: @alias may be its own */
  maybe_crash(alias, "forgotten");
  g_ptr_array_remove(journal->entries, entry);
  return TRUE;
}

GPtrArray *
state_journal_zpci_left(StateJournal *journal)
{
  return journal->zpci_left;
}

const StateZpci *
state_journal_find_zpci_left(StateJournal *journal, const char *id, guint uid, guint fid,
                             const char *target, const ProcessIdentity *qemu)
{
  for (guint i = 0; i < journal->zpci_left->len; i++) {
    const StateZpci *zpci = g_ptr_array_index(journal->zpci_left, i);
    if (g_strcmp0(zpci->id, id) == 0 && zpci->uid == uid && zpci->fid == fid &&
        g_strcmp0(zpci->target, target) == 0 && process_identity_equal(&zpci->qemu, qemu))
      return zpci;
  }
  return NULL;
}

/* write_record() - @name in the journal directory becomes @root, with the format
 * version and the VM, durably. */
static gboolean
write_record(StateJournal *journal, const char *name, JsonObject *root, GError **error)
{
  json_object_set_int_member(root, "version", JOURNAL_VERSION);
  json_object_set_int_member(root, "min-reader-version", JOURNAL_MIN_READER_VERSION);
  json_object_set_string_member(root, "vm", journal->vm);
  gsize length;
  g_autofree char *data = json_text_from_object(root, &length);
  int saved = file_replace_at(journal->dir_fd, name, data, length, journal->in_memory);
  if (saved != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot write the journal %s/%s: %s; nothing was changed", journal->path, name,
                g_strerror(saved));
    return FALSE;
  }
  return TRUE;
}

/* remove_record() - @name leaves the journal directory durably (absent: TRUE). */
static gboolean
remove_record(StateJournal *journal, const char *name, GError **error)
{
  if (unlinkat(journal->dir_fd, name, 0) != 0 && errno != ENOENT) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot remove the journal record %s/%s: %s", journal->path, name,
                g_strerror(saved));
    return FALSE;
  }
  fsync_dir(journal);
  return TRUE;
}

gboolean
state_journal_note_zpci_left(StateJournal *journal, const StateZpci *zpci, GError **error)
{
  if (!state_alias_is_safe(zpci->id) || !state_alias_is_safe(zpci->target)) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "a zpci left in QEMU is journaled only with a valid id and target");
    return FALSE;
  }
  g_autoptr(JsonObject) root = json_object_new();
  json_object_set_string_member(root, "id", zpci->id);
  json_object_set_int_member(root, "uid", zpci->uid);
  json_object_set_int_member(root, "fid", zpci->fid);
  json_object_set_string_member(root, "target", zpci->target);
  json_object_set_object_member(root, "qemu", process_identity_to_json(&zpci->qemu));
  g_autofree char *name = g_strconcat(zpci->id, ".zpci", NULL);
  if (!write_record(journal, name, root, error))
    return FALSE;
  for (guint i = 0; i < journal->zpci_left->len; i++)   /* an older record of that id: replaced */
    if (g_strcmp0(((StateZpci *)g_ptr_array_index(journal->zpci_left, i))->id, zpci->id) == 0)
      g_ptr_array_remove_index(journal->zpci_left, i--);
  StateZpci *copy = g_new0(StateZpci, 1);
  *copy = *zpci;
  copy->id = g_strdup(zpci->id);
  copy->target = g_strdup(zpci->target);
  g_ptr_array_add(journal->zpci_left, copy);
  return TRUE;
}

gboolean
state_journal_forget_zpci_left(StateJournal *journal, const char *id, GError **error)
{
  for (guint i = 0; i < journal->zpci_left->len; i++) {
    StateZpci *zpci = g_ptr_array_index(journal->zpci_left, i);
    if (g_strcmp0(zpci->id, id) != 0)
      continue;
    g_autofree char *name = g_strconcat(id, ".zpci", NULL);
    if (!remove_record(journal, name, error))
      return FALSE;
    g_ptr_array_remove_index(journal->zpci_left, i);
    return TRUE;
  }
  return TRUE;
}

GPtrArray *
state_journal_requests(StateJournal *journal)
{
  return journal->requests;
}

static StateRequest *
find_request(StateJournal *journal, const char *id, guint *index)
{
  for (guint i = 0; i < journal->requests->len; i++) {
    StateRequest *request = g_ptr_array_index(journal->requests, i);
    if (g_strcmp0(request->id, id) == 0) {
      *index = i;
      return request;
    }
  }
  return NULL;
}

gboolean
state_journal_note_request(StateJournal *journal, const char *id, const char *const *aliases,
                           GError **error)
{
  g_autoptr(JsonObject) root = json_object_new();
  JsonArray *array = json_array_new();
  gboolean safe = state_alias_is_safe(id) && aliases && g_strv_length((char **)aliases) >= 2;

  for (const char *const *alias = aliases; safe && *alias; alias++) {
    safe = state_alias_is_safe(*alias);
    json_array_add_string_element(array, *alias);
  }
  json_object_set_array_member(root, "aliases", array);
  if (!safe) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "a request is journaled only with a valid id and two or more valid "
                        "aliases");
    return FALSE;
  }
  json_object_set_string_member(root, "id", id);
  g_autofree char *name = g_strconcat(id, ".request", NULL);
  if (!write_record(journal, name, root, error))
    return FALSE;
  guint index;
  StateRequest *request = find_request(journal, id, &index);
  if (request == NULL) {
    request = g_new0(StateRequest, 1);
    request->id = g_strdup(id);
    g_ptr_array_add(journal->requests, request);
  }
  g_strfreev(request->aliases);
  request->aliases = g_strdupv((char **)aliases);
  maybe_crash(NULL, "request:noted");
  return TRUE;
}

gboolean
state_journal_forget_request(StateJournal *journal, const char *id, GError **error)
{
  guint index;
  if (find_request(journal, id, &index) == NULL)
    return TRUE;
  g_autofree char *name = g_strconcat(id, ".request", NULL);
  if (!remove_record(journal, name, error))
    return FALSE;
  g_ptr_array_remove_index(journal->requests, index);
  maybe_crash(NULL, "request:forgotten");
  return TRUE;
}
