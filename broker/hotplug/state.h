/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state.h - the per-VM journal: what hostdevd has done to QEMU and to the
 * host, written before each step takes effect, so a restarted hostdevd can
 * finish or undo whatever a crash interrupted
 *
 * One small JSON file per device, STATE_DIR/VM.journal/ALIAS.json,
 * replaced atomically (write, fsync, rename, fsync of the directory) on
 * every change, so a step costs the same however many devices there are.
 * Each file carries "version" (the format written) and
 * "min-reader-version" (the oldest reader that still understands it): a
 * reader takes any file whose minimum it meets, ignoring members it does
 * not know, so an added member does not strand an older hostdevd.
 * Aliases are file names only after state_alias_is_safe() accepted them.
 * The journal directory is made (0700) and opened once, without following
 * a link, and must belong to hostdevd's user and not be writable by group
 * or others; every file is then opened, renamed and removed relative to
 * that open directory, so no journal operation can reach outside it, even
 * if the path DIR/VM.journal is later replaced.  An entry file that is a
 * link is not read: it is set aside as damaged.
 */
#pragma once

#include <json-glib/json-glib.h>
#include "process-identity.h"

G_BEGIN_DECLS

typedef enum {
  STATE_ATTACHING,   /* on its way in: steps may be half done */
  STATE_ATTACHED,
  STATE_DETACHING,   /* device_del sent; QEMU may still hold it */
} StateDeviceState;

typedef struct {
  char *alias;
  StateDeviceState state;
  char *step;        /* the step about to take effect, e.g. "device-add" */
  char *xml;         /* the live XML */
  GStrv qemu_ids;    /* every QEMU device it consists of, in the order added (zpci first) */
  char *host;        /* what host preparation did, to undo it: the JSON text of an
                      * object (host_prep_to_journal()); NULL when nothing */
  ProcessIdentity qemu; /* the QEMU process the device was given to (pid 0: unknown) */
  guint64 revision;  /* bumped by every write of the entry (state_journal_commit()) */
} StateEntry;

typedef struct _StateJournal StateJournal;

/**
 * state_journal_open() - load (or start) the journal of @vm in @dir
 * Return: the journal, or NULL with @error when its directory cannot be
 * made or read; a damaged entry is kept aside as ALIAS.json.corrupt and
 * skipped, with a warning.
 */
StateJournal *state_journal_open(const char *dir, const char *vm, GError **error);
void state_journal_free(StateJournal *journal);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StateJournal, state_journal_free)

/* Return: (transfer none) (element-type StateEntry): every entry, oldest first. */
GPtrArray *state_journal_entries(StateJournal *journal);

/* Return: (transfer full) (nullable): @entry's host record as a tree; NULL when it has none. */
JsonObject *state_entry_host(const StateEntry *entry);

/* Return: (nullable) (transfer none): the entry of @alias. */
StateEntry *state_journal_find(StateJournal *journal, const char *alias);

/**
 * state_journal_record() - write @alias's entry, creating it if needed
 * @qemu_ids: (nullable): replaces the recorded ids when given
 * @host: (nullable): replaces the host record when given: the JSON text of one
 *   object, written as it is
 * @qemu: (nullable): the QEMU process concerned; replaces the recorded one when given
 * Return: FALSE with @error when the journal could not be made durable;
 * the caller must not go on with the step then.
 */
gboolean state_journal_record(StateJournal *journal, const char *alias, StateDeviceState state,
                              const char *step, const char *xml, const char *const *qemu_ids,
                              const char *host, const ProcessIdentity *qemu, GError **error);

/*
 * A record made ready ahead of the moment it is due: formatted while QEMU
 * works on a step, written once the step's answer comes, so that the
 * answer reaches the client without waiting for the record to be formatted.
 * The draft holds the entry as it will be; if the entry was written in
 * between, state_journal_commit() applies the same arguments afresh.
 */
typedef struct _StateDraft StateDraft;

/* state_journal_draft() - state_journal_record()'s arguments, made ready; nothing is written. */
StateDraft *state_journal_draft(StateJournal *journal, const char *alias, StateDeviceState state,
                                const char *step, const char *xml, const char *const *qemu_ids,
                                const char *host, const ProcessIdentity *qemu);

/* state_journal_commit() - write @draft as state_journal_record() would; @draft is consumed. */
gboolean state_journal_commit(StateJournal *journal, StateDraft *draft, GError **error);

void state_draft_free(StateDraft *draft);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StateDraft, state_draft_free)

/* state_journal_crash_point() - the test hook of a moment that writes
 * nothing: HOSTDEVD_TEST_CRASH_AT=@point kills hostdevd here (test builds only). */
void state_journal_crash_point(const char *point);

/* state_journal_forget() - drop @alias's entry durably. */
gboolean state_journal_forget(StateJournal *journal, const char *alias, GError **error);

/*
 * A zpci device hostdevd added whose target never arrived stays in QEMU
 * (QEMU 7.2 crashes removing it) and is reused by the next attach.  Only
 * one the journal records may be reused: STATE_DIR/VM.journal/ID.zpci
 * names it with the uid, fid and target hostdevd gave it and the QEMU
 * process it was left in; QEMU's own word that a zpci is free is not
 * enough (a guest may own its QEMU).
 */
typedef struct {
  char *id;          /* "zpci5" */
  guint uid;
  guint fid;
  char *target;      /* the alias it was added for */
  ProcessIdentity qemu;
} StateZpci;

/* Return: (transfer none) (element-type StateZpci): the zpci devices left in QEMU. */
GPtrArray *state_journal_zpci_left(StateJournal *journal);

/* Return: (nullable) (transfer none): the record of zpci @id left in QEMU process @qemu
 * with these @uid, @fid and @target, if the journal has one. */
const StateZpci *state_journal_find_zpci_left(StateJournal *journal, const char *id, guint uid,
                                              guint fid, const char *target,
                                              const ProcessIdentity *qemu);

/* state_journal_note_zpci_left() - record durably that @zpci stays in QEMU. */
gboolean state_journal_note_zpci_left(StateJournal *journal, const StateZpci *zpci,
                                      GError **error);

/* state_journal_forget_zpci_left() - drop the record of zpci @id (none: TRUE). */
gboolean state_journal_forget_zpci_left(StateJournal *journal, const char *id, GError **error);

/*
 * A <devices> request attaches every device or none.  Its devices' records
 * alone cannot say so after a crash (each would be finished or undone on
 * its own), so a request of several devices is journaled as a whole too:
 * STATE_DIR/VM.journal/ID.request names the alias of every device of it,
 * in the order they go into QEMU.  It is written before the request's
 * first step takes effect and removed just before its answer: a record
 * still there after a crash means an answer never went out, and every
 * device it names is undone.  A request of one device needs none (its
 * device's record is the whole request).
 */
typedef struct {
  char *id;          /* the file's name without ".request" */
  GStrv aliases;     /* in the order their devices go into QEMU */
} StateRequest;

/* Return: (transfer none) (element-type StateRequest): the requests without an answer. */
GPtrArray *state_journal_requests(StateJournal *journal);

/* state_journal_note_request() - record durably (replacing a record of the same @id)
 * that the request @id holds the devices @aliases. */
gboolean state_journal_note_request(StateJournal *journal, const char *id,
                                    const char *const *aliases, GError **error);

/* state_journal_forget_request() - drop the record of request @id durably (none: TRUE). */
gboolean state_journal_forget_request(StateJournal *journal, const char *id, GError **error);

/* Longest alias the journal takes: a file name, with room for the suffixes of its temporaries. */
#define STATE_ALIAS_MAX 200

/* Return: whether @alias may name a journal file: 1-STATE_ALIAS_MAX of [A-Za-z0-9_-], not starting with '-'. */
gboolean state_alias_is_safe(const char *alias);

/* Return: "attaching", "attached" or "detaching". */
const char *state_device_state_name(StateDeviceState state);

G_END_DECLS
