/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "state.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <unistd.h>

#define JOURNAL_VERSION 1

struct _StateJournal {
  char *dir;
  char *path;
  char *vm;
  GPtrArray *entries;   /* StateEntry* */
};

static const char *const state_names[] = {
  [STATE_ATTACHING] = "attaching",
  [STATE_ATTACHED] = "attached",
  [STATE_DETACHING] = "detaching",
};

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

static void
entry_free(StateEntry *entry)
{
  g_free(entry->alias);
  g_free(entry->step);
  g_free(entry->xml);
  g_strfreev(entry->qemu_ids);
  if (entry->host)
    json_object_unref(entry->host);
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
  g_ptr_array_unref(journal->entries);
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
    entry->host = json_object_ref(json_node_get_object(host));
  return entry;
}

static JsonObject *
entry_to_json(const StateEntry *entry)
{
  JsonObject *object = json_object_new();
  JsonArray *ids = json_array_new();

  json_object_set_string_member(object, "alias", entry->alias);
  json_object_set_string_member(object, "state", state_device_state_name(entry->state));
  json_object_set_string_member(object, "step", entry->step);
  json_object_set_string_member(object, "xml", entry->xml);
  for (char **id = entry->qemu_ids; id && *id; id++)
    json_array_add_string_element(ids, *id);
  json_object_set_array_member(object, "qemu-ids", ids);
  if (entry->host)
    json_object_set_object_member(object, "host", json_object_ref(entry->host));
  return object;
}

static gboolean
load(StateJournal *journal, GError **error)
{
  g_autofree char *contents = NULL;
  gsize length;
  g_autoptr(GError) local = NULL;

  if (!g_file_get_contents(journal->path, &contents, &length, &local)) {
    if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return TRUE;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read the journal %s: %s", journal->path, local->message);
    return FALSE;
  }

  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  JsonNode *root = NULL;
  JsonArray *devices = NULL;
  if (json_parser_load_from_data(parser, contents, (gssize)length, &local) &&
      (root = json_parser_get_root(parser)) && JSON_NODE_HOLDS_OBJECT(root) &&
      json_object_get_int_member_with_default(json_node_get_object(root), "version", 0) ==
          JOURNAL_VERSION &&
      json_object_has_member(json_node_get_object(root), "devices"))
    devices = json_object_get_array_member(json_node_get_object(root), "devices");

  for (guint i = 0; devices && i < json_array_get_length(devices); i++) {
    JsonNode *element = json_array_get_element(devices, i);
    StateEntry *entry = JSON_NODE_HOLDS_OBJECT(element)
                            ? entry_from_json(json_node_get_object(element), &local)
                            : NULL;
    if (entry == NULL) {
      devices = NULL;
      break;
    }
    g_ptr_array_add(journal->entries, entry);
  }
  if (devices == NULL) {
    /* Keep the evidence; starting empty leaves devices in QEMU, never frees a held one. */
    g_autofree char *aside = g_strconcat(journal->path, ".corrupt", NULL);
    g_warning("journal %s is damaged (%s); kept as %s, starting with an empty journal",
              journal->path, local ? local->message : "unexpected layout", aside);
    g_rename(journal->path, aside);
    g_ptr_array_set_size(journal->entries, 0);
  }
  return TRUE;
}

StateJournal *
state_journal_open(const char *dir, const char *vm, GError **error)
{
  g_autoptr(StateJournal) journal = g_new0(StateJournal, 1);

  journal->dir = g_strdup(dir);
  journal->vm = g_strdup(vm);
  journal->path = g_strdup_printf("%s/%s.json", dir, vm);
  journal->entries = g_ptr_array_new_with_free_func((GDestroyNotify)entry_free);
  if (!load(journal, error))
    return NULL;
  return g_steal_pointer(&journal);
}

/* A test hook: HOSTDEVD_TEST_CRASH_AT=STEP kills hostdevd right after STEP is journaled. */
static void
maybe_crash(const char *step)
{
  const char *crash_at = g_getenv("HOSTDEVD_TEST_CRASH_AT");
  if (crash_at && g_strcmp0(crash_at, step) == 0) {
    g_message("HOSTDEVD_TEST_CRASH_AT=%s: killing myself", step);
    raise(SIGKILL);
  }
}

static gboolean
save(StateJournal *journal, GError **error)
{
  g_autoptr(JsonObject) root = json_object_new();
  JsonArray *devices = json_array_new();

  json_object_set_int_member(root, "version", JOURNAL_VERSION);
  json_object_set_string_member(root, "vm", journal->vm);
  for (guint i = 0; i < journal->entries->len; i++)
    json_array_add_object_element(devices, entry_to_json(g_ptr_array_index(journal->entries, i)));
  json_object_set_array_member(root, "devices", devices);

  g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), root);
  g_autoptr(JsonGenerator) generator = json_generator_new();
  json_generator_set_root(generator, node);
  json_generator_set_pretty(generator, TRUE);
  gsize length;
  g_autofree char *data = json_generator_to_data(generator, &length);

  g_autoptr(GError) local = NULL;
  if (!g_file_set_contents_full(journal->path, data, (gssize)length,
                                G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                0600, &local)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot write the journal %s: %s; nothing was changed", journal->path,
                local->message);
    return FALSE;
  }
  /* the rename itself is durable only once the directory is */
  int dir_fd = open(journal->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return TRUE;
}

gboolean
state_journal_record(StateJournal *journal, const char *alias, StateDeviceState state,
                     const char *step, const char *xml, const char *const *qemu_ids,
                     JsonObject *host, GError **error)
{
  StateEntry *entry = state_journal_find(journal, alias);
  if (entry == NULL) {
    entry = g_new0(StateEntry, 1);
    entry->alias = g_strdup(alias);
    entry->qemu_ids = g_new0(char *, 1);
    entry->xml = g_strdup("");
    g_ptr_array_add(journal->entries, entry);
  }
  entry->state = state;
  g_free(entry->step);
  entry->step = g_strdup(step);
  if (xml) {
    g_free(entry->xml);
    entry->xml = g_strdup(xml);
  }
  if (qemu_ids) {
    g_strfreev(entry->qemu_ids);
    entry->qemu_ids = g_strdupv((char **)qemu_ids);
  }
  if (host) {
    if (entry->host)
      json_object_unref(entry->host);
    entry->host = json_object_ref(host);
  }
  if (!save(journal, error))
    return FALSE;
  g_autofree char *crash_step = g_strdup_printf("%s:%s", state_device_state_name(state), step);
  maybe_crash(crash_step);
  return TRUE;
}

gboolean
state_journal_forget(StateJournal *journal, const char *alias, GError **error)
{
  StateEntry *entry = state_journal_find(journal, alias);
  if (entry == NULL)
    return TRUE;
  g_ptr_array_remove(journal->entries, entry);
  if (!save(journal, error))
    return FALSE;
  maybe_crash("forgotten");
  return TRUE;
}
