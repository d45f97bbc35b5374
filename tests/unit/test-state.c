/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-state.c - the journal's files stay inside its directory: written,
 * read and removed relative to the directory hostdevd opened, whatever
 * happens to the path leading there.
 */
#include "hostdevd-error.h"
#include "state.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

typedef struct {
  char *root;      /* the state directory */
  char *outside;   /* a directory hostdevd must never write to */
} Tree;

static void
tree_setup(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  tree->root = g_dir_make_tmp("hostdevd-state-XXXXXX", &error);
  g_assert_no_error(error);
  tree->outside = g_build_filename(tree->root, "outside", NULL);
  g_assert_cmpint(g_mkdir(tree->outside, 0700), ==, 0);
}

static void
tree_teardown(Tree *tree, gconstpointer data)
{
  const char *argv[] = { "rm", "-rf", tree->root, NULL };
  g_autoptr(GError) error = NULL;
  g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL,
               &error);
  g_assert_no_error(error);
  g_free(tree->root);
  g_free(tree->outside);
}

static gboolean
exists(const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename(dir, name, NULL);
  return g_file_test(path, G_FILE_TEST_EXISTS | G_FILE_TEST_IS_SYMLINK);
}

static guint
count_files(const char *dir)
{
  g_autoptr(GDir) listing = g_dir_open(dir, 0, NULL);
  guint n = 0;
  g_assert_nonnull(listing);
  while (g_dir_read_name(listing))
    n++;
  return n;
}

static void
record(StateJournal *journal, const char *alias)
{
  g_autoptr(GError) error = NULL;
  const char *ids[] = { alias, NULL };
  g_assert_true(state_journal_record(journal, alias, STATE_ATTACHED, "done", "<hostdev/>", ids,
                                     NULL, NULL, &error));
  g_assert_no_error(error);
}

static void
test_round_trip(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  {
    g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
    g_assert_no_error(error);
    record(journal, "hostdev0");
    record(journal, "ua-nic");
    g_assert_true(state_journal_forget(journal, "ua-nic", &error));
    g_assert_no_error(error);
  }
  struct stat st;
  g_assert_cmpint(g_stat(dir, &st), ==, 0);
  g_assert_cmpint(st.st_mode & 0777, ==, 0700);
  g_assert_true(exists(dir, "hostdev0.json"));
  g_assert_false(exists(dir, "ua-nic.json"));
  g_assert_cmpuint(count_files(dir), ==, 1);

  g_autoptr(StateJournal) again = state_journal_open(tree->root, "vm1", &error);
  g_assert_no_error(error);
  g_assert_cmpuint(state_journal_entries(again)->len, ==, 1);
  StateEntry *entry = state_journal_find(again, "hostdev0");
  g_assert_nonnull(entry);
  g_assert_cmpint(entry->state, ==, STATE_ATTACHED);
  g_assert_cmpstr(entry->xml, ==, "<hostdev/>");
}

static char *
file_text(const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename(dir, name, NULL);
  char *text = NULL;
  g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
  return text;
}

/* A draft writes nothing until committed, then exactly what state_journal_record() writes. */
static void
test_draft_is_the_record(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
  const char *ids[] = { "hostdev0", NULL };
  ProcessIdentity qemu = { .pid = 4242, .start_time = 77 };

  g_assert_no_error(error);
  g_assert_true(state_journal_record(journal, "hostdev0", STATE_ATTACHING, "device-add",
                                     "<hostdev/>", ids, NULL, &qemu, &error));
  g_autofree char *recorded = file_text(dir, "hostdev0.json");
  g_assert_true(state_journal_record(journal, "hostdev0", STATE_ATTACHED, "done", NULL, NULL,
                                     NULL, NULL, &error));
  g_autofree char *direct = file_text(dir, "hostdev0.json");
  g_assert_true(state_journal_forget(journal, "hostdev0", &error));

  g_assert_true(state_journal_record(journal, "hostdev0", STATE_ATTACHING, "device-add",
                                     "<hostdev/>", ids, NULL, &qemu, &error));
  StateDraft *draft = state_journal_draft(journal, "hostdev0", STATE_ATTACHED, "done", NULL,
                                          NULL, NULL, NULL);
  g_autofree char *unchanged = file_text(dir, "hostdev0.json");
  g_assert_cmpstr(unchanged, ==, recorded);
  g_assert_cmpint(state_journal_find(journal, "hostdev0")->state, ==, STATE_ATTACHING);
  g_assert_true(state_journal_commit(journal, draft, &error));
  g_assert_no_error(error);
  g_autofree char *committed = file_text(dir, "hostdev0.json");
  g_assert_cmpstr(committed, ==, direct);
  StateEntry *entry = state_journal_find(journal, "hostdev0");
  g_assert_cmpint(entry->state, ==, STATE_ATTACHED);
  g_assert_cmpint(entry->qemu.pid, ==, 4242);
  g_assert_cmpuint(state_journal_entries(journal)->len, ==, 1);
}

/* The entry written between draft and commit: the draft's arguments go onto it as it
 * is then, keeping what was written meanwhile and the draft did not name. */
static void
test_draft_on_a_changed_entry(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
  const char *first[] = { "hostdev0", NULL };
  const char *later[] = { "zpci0", "hostdev0", NULL };

  g_assert_no_error(error);
  g_assert_true(state_journal_record(journal, "hostdev0", STATE_ATTACHING, "claim",
                                     "<hostdev/>", first, NULL, NULL, &error));
  StateDraft *draft = state_journal_draft(journal, "hostdev0", STATE_ATTACHED, "done",
                                          "<hostdev alias='new'/>", NULL, NULL, NULL);
  g_assert_true(state_journal_record(journal, "hostdev0", STATE_ATTACHING, "device-add", NULL,
                                     later, NULL, NULL, &error));
  g_assert_true(state_journal_commit(journal, draft, &error));
  g_assert_no_error(error);

  StateEntry *entry = state_journal_find(journal, "hostdev0");
  g_assert_cmpint(entry->state, ==, STATE_ATTACHED);
  g_assert_cmpstr(entry->step, ==, "done");
  g_assert_cmpstr(entry->xml, ==, "<hostdev alias='new'/>");
  g_assert_cmpstrv(entry->qemu_ids, later);
  g_autoptr(StateJournal) again = state_journal_open(tree->root, "vm1", &error);
  g_assert_no_error(error);
  g_assert_cmpstrv(state_journal_find(again, "hostdev0")->qemu_ids, later);
  g_assert_cmpstr(state_journal_find(again, "hostdev0")->step, ==, "done");

  /* forgotten in between: written as a record made now would be */
  draft = state_journal_draft(journal, "hostdev0", STATE_ATTACHED, "done", NULL, NULL, NULL,
                              NULL);
  g_assert_true(state_journal_forget(journal, "hostdev0", &error));
  g_assert_true(state_journal_commit(journal, draft, &error));
  entry = state_journal_find(journal, "hostdev0");
  g_assert_cmpstr(entry->xml, ==, "");
  g_assert_cmpuint(g_strv_length(entry->qemu_ids), ==, 0);
}

/*
 * Issue 11, item 3: journal paths were rebuilt from DIR/VM.journal for every
 * write, so replacing that path with a link sent the next write - and the
 * next removal - wherever the link pointed.
 */
static void
test_path_replaced_by_link(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  g_autofree char *moved = g_build_filename(tree->root, "moved", NULL);
  g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
  g_assert_no_error(error);
  record(journal, "hostdev0");

  /* someone moves the directory away and puts a link in its place */
  g_assert_cmpint(g_rename(dir, moved), ==, 0);
  g_assert_cmpint(symlink(tree->outside, dir), ==, 0);
  g_autofree char *victim = g_build_filename(tree->outside, "hostdev0.json", NULL);
  g_assert_true(g_file_set_contents(victim, "precious", -1, NULL));

  record(journal, "hostdev1");
  record(journal, "hostdev0");
  g_assert_true(state_journal_forget(journal, "hostdev0", &error));
  g_assert_no_error(error);

  /* the writes and the removal happened in the journal's own directory */
  g_assert_true(exists(moved, "hostdev1.json"));
  g_assert_false(exists(moved, "hostdev0.json"));
  g_autofree char *contents = NULL;
  g_assert_true(g_file_get_contents(victim, &contents, NULL, NULL));
  g_assert_cmpstr(contents, ==, "precious");
  g_assert_cmpuint(count_files(tree->outside), ==, 1);
}

static void
test_link_at_open_is_refused(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  g_assert_cmpint(symlink(tree->outside, dir), ==, 0);

  g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
  g_assert_null(journal);
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR);
  g_assert_nonnull(strstr(error->message, "vm1.journal: it is a symbolic link"));
  g_assert_cmpuint(count_files(tree->outside), ==, 0);
}

static void
test_open_directory_is_refused(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
  g_assert_cmpint(g_chmod(dir, 0777), ==, 0);

  g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
  g_assert_null(journal);
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR);
  g_assert_nonnull(strstr(error->message, "not be writable by group or others"));
  g_assert_nonnull(strstr(error->message, "chmod 700"));
}

static void
test_entry_links_are_not_read(Tree *tree, gconstpointer data)
{
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  g_autofree char *secret = g_build_filename(tree->outside, "secret.json", NULL);
  g_autofree char *link = g_build_filename(dir, "hostdev0.json", NULL);
  g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
  g_assert_true(g_file_set_contents(secret,
                                    "{\"version\": 2, \"alias\": \"hostdev0\", "
                                    "\"state\": \"attached\"}", -1, NULL));
  g_assert_cmpint(symlink(secret, link), ==, 0);

  /* the journal warns about the entry: in a child (with a tree of its own),
   * where a warning is not fatal */
  if (g_test_subprocess()) {
    g_autoptr(GError) error = NULL;
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(state_journal_entries(journal)->len, ==, 0);
    /* set aside, and the file it pointed to untouched */
    g_assert_true(exists(dir, "hostdev0.json.corrupt"));
    g_assert_false(exists(dir, "hostdev0.json"));
    g_assert_true(g_file_test(secret, G_FILE_TEST_IS_REGULAR));
    return;
  }
  g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed();
  g_test_trap_assert_stderr("*hostdev0.json is damaged (cannot open it: it is a symbolic link)*");
}

static void
test_unsafe_alias(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
  g_assert_no_error(error);
  g_assert_false(state_journal_record(journal, "../outside/x", STATE_ATTACHED, "done", NULL,
                                      NULL, NULL, NULL, &error));
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint(count_files(tree->outside), ==, 0);
}

/* A request of several devices: recorded, read back, forgotten; its aliases are file
 * names of the journal, so only safe ones, and at least two (one device needs none). */
static void
test_request_round_trip(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  const char *aliases[] = { "hostdev1", "hostdev0", NULL };
  const char *one[] = { "hostdev0", NULL };
  const char *unsafe[] = { "hostdev0", "../outside/x", NULL };
  {
    g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
    g_assert_no_error(error);
    g_assert_true(state_journal_note_request(journal, "request-1", aliases, &error));
    g_assert_no_error(error);
    g_assert_false(state_journal_note_request(journal, "request-2", one, &error));
    g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
    g_assert_false(state_journal_note_request(journal, "request-3", unsafe, &error));
    g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
    g_clear_error(&error);
  }
  g_assert_true(exists(dir, "request-1.request"));
  g_assert_cmpuint(count_files(dir), ==, 1);
  g_assert_cmpuint(count_files(tree->outside), ==, 0);

  g_autoptr(StateJournal) again = state_journal_open(tree->root, "vm1", &error);
  g_assert_no_error(error);
  GPtrArray *requests = state_journal_requests(again);
  g_assert_cmpuint(requests->len, ==, 1);
  const StateRequest *request = g_ptr_array_index(requests, 0);
  g_assert_cmpstr(request->id, ==, "request-1");
  g_assert_true(g_strv_equal((const char *const *)request->aliases, aliases));
  g_assert_cmpuint(state_journal_entries(again)->len, ==, 0);
  g_assert_true(state_journal_forget_request(again, "request-1", &error));
  g_assert_no_error(error);
  g_assert_cmpuint(requests->len, ==, 0);
  g_assert_cmpuint(count_files(dir), ==, 0);
}

/* A request record hostdevd cannot read is set aside with a warning saying that its
 * devices are then handled each on its own. */
static void
test_damaged_request_is_set_aside(Tree *tree, gconstpointer data)
{
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  g_autofree char *path = g_build_filename(dir, "request-1.request", NULL);
  g_autofree char *other = g_build_filename(dir, "request-2.request", NULL);
  g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
  g_assert_true(g_file_set_contents(path, "{\"version\": 2, \"aliases\": [", -1, NULL));
  /* whole JSON, but naming another file's id */
  g_assert_true(g_file_set_contents(other, "{\"version\": 2, \"min-reader-version\": 1, "
                                    "\"id\": \"request-1\", \"aliases\": [\"a\", \"b\"]}",
                                    -1, NULL));
  if (g_test_subprocess()) {
    g_autoptr(GError) error = NULL;
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(state_journal_requests(journal)->len, ==, 0);
    g_assert_true(exists(dir, "request-1.request.corrupt"));
    g_assert_true(exists(dir, "request-2.request.corrupt"));
    g_assert_false(exists(dir, "request-1.request"));
    return;
  }
  g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed();
  g_test_trap_assert_stderr("*request-1.request of a <devices> request without an answer is "
                            "damaged*finished or undone each on its own*");
}

/* The host record is kept as the text it was given, written inside the
 * entry as an object, carried over by records that give none, and read
 * back as a tree; a file an earlier hostdevd wrote reads the same. */
static void
test_host_record(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename(tree->root, "vm1.journal", NULL);
  const char *host = "{\"claims\":[\"pci_0000_01_00_0\"],\"fdset-id\":3}";
  {
    g_autoptr(StateJournal) journal = state_journal_open(tree->root, "vm1", &error);
    g_assert_no_error(error);
    g_assert_true(state_journal_record(journal, "hostdev0", STATE_ATTACHING, "claim",
                                       "<hostdev/>", NULL, host, NULL, &error));
    g_assert_true(state_journal_record(journal, "hostdev0", STATE_ATTACHED, "done", NULL,
                                       NULL, NULL, NULL, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(state_journal_find(journal, "hostdev0")->host, ==, host);
  }
  g_autofree char *text = file_text(dir, "hostdev0.json");
  g_assert_nonnull(strstr(text, "\"host\":{\"claims\":[\"pci_0000_01_00_0\"],\"fdset-id\":3},"));

  /* as an earlier hostdevd wrote it: spaces and another order */
  g_autofree char *earlier = g_build_filename(dir, "hostdev1.json", NULL);
  g_assert_true(g_file_set_contents(earlier,
                                    "{\"alias\": \"hostdev1\", \"state\": \"attached\", "
                                    "\"host\": {\"fdset-id\": 4, \"claims\": [\"usb_1_2\"]}, "
                                    "\"version\": 1, \"min-reader-version\": 1}", -1, NULL));
  g_autoptr(StateJournal) again = state_journal_open(tree->root, "vm1", &error);
  g_assert_no_error(error);
  g_autoptr(JsonObject) first = state_entry_host(state_journal_find(again, "hostdev0"));
  g_autoptr(JsonObject) second = state_entry_host(state_journal_find(again, "hostdev1"));
  g_assert_cmpint(json_object_get_int_member(first, "fdset-id"), ==, 3);
  g_assert_cmpstr(json_array_get_string_element(json_object_get_array_member(first, "claims"), 0),
                  ==, "pci_0000_01_00_0");
  g_assert_cmpint(json_object_get_int_member(second, "fdset-id"), ==, 4);
  g_assert_cmpstr(json_array_get_string_element(json_object_get_array_member(second, "claims"),
                                                0), ==, "usb_1_2");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define ADD(path, func) g_test_add(path, Tree, NULL, tree_setup, func, tree_teardown)
  ADD("/state/round-trip", test_round_trip);
  ADD("/state/draft-is-the-record", test_draft_is_the_record);
  ADD("/state/draft-on-a-changed-entry", test_draft_on_a_changed_entry);
  ADD("/state/path-replaced-by-link", test_path_replaced_by_link);
  ADD("/state/link-at-open", test_link_at_open_is_refused);
  ADD("/state/open-directory", test_open_directory_is_refused);
  ADD("/state/entry-links", test_entry_links_are_not_read);
  ADD("/state/unsafe-alias", test_unsafe_alias);
  ADD("/state/host-record", test_host_record);
  ADD("/state/request-round-trip", test_request_round_trip);
  ADD("/state/damaged-request", test_damaged_request_is_set_aside);
  return g_test_run();
}
