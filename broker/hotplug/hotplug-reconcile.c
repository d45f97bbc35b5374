/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-reconcile.c - make the journal agree with QEMU and the host
 * after hostdevd (re)starts
 *
 * Every record is first checked against who owns its host device now: a
 * record whose device another live VM holds (its claim names that VM) is
 * dropped and logged, never acted on — it may be that VM's GPU now.  A
 * device the administrator set since this VM left it (hostdevctl
 * nodedev-detach or nodedev-reattach; a note beside the claims says so)
 * keeps the driver the administrator chose; the rest of its record is
 * replayed.  The records are replayed in two passes: first every device
 * this QEMU still holds is registered (and its claims taken again as this
 * hostdevd), then the others are given back.  So a device whose IOMMU group a registered
 * sibling still uses waits for that sibling instead of being unbound under
 * it.  A device recorded for another QEMU process is not in this one, even
 * when this QEMU has a device of the same id.
 *
 * A <devices> request whose record (state.h, StateRequest) is still there
 * never got its answer: every device of it is undone, even one recorded as
 * attached and held by QEMU, newest first as the request's own rollback
 * does (a multifunction slot's function 0 before its other functions).
 * Only the devices still this VM's are touched: the ownership check comes
 * first for them too.
 */
#include "hotplug-private.h"
#include "claims.h"

#include <string.h>

typedef struct {
  guint kept;
  guint finished;
  guint undone;
  guint dropped;
} ReconcileCount;

/* One journal record on its way back. */
typedef struct {
  StateEntry *entry;      /* borrowed from the journal */
  Hostdev *hostdev;
  HostPrep *prep;
  gboolean present;       /* the connected QEMU holds the device */
  gboolean undo;          /* part of a request without an answer: undone whatever its state */
} Replay;

static void
replay_free(Replay *replay)
{
  g_clear_pointer(&replay->hostdev, hostdev_free);
  g_clear_pointer(&replay->prep, host_prep_free);
  g_free(replay);
}

/* Which records a pass looks at. */
typedef gboolean (*ReplayFilter)(Hotplug *hotplug, const StateEntry *entry);

static gboolean
all_present(const StateEntry *entry, const char *const *ids)
{
  for (char **id = entry->qemu_ids; id && *id; id++)
    if (!g_strv_contains(ids, *id))
      return FALSE;
  return g_strv_contains(ids, entry->alias);
}

/* Return: whether @entry's device went to the QEMU process hostdevd is connected to. */
static gboolean
recorded_for_this_qemu(Hotplug *hotplug, const StateEntry *entry)
{
  /* a record without the identity (an older journal) is judged by QEMU's ids alone */
  return entry->qemu.pid == 0 || process_identity_equal(&entry->qemu, &hotplug->qemu);
}

/*
 * owned_elsewhere() - the first claim of @prep that another live VM holds
 * Return: (transfer full) (nullable): "KEY (VM 'NAME')", or NULL when every
 * claim is this VM's, stale or free; those are taken again as this hostdevd
 * (and its QEMU), so that nobody takes the device while it is replayed.
 */
static char *
owned_elsewhere(Hotplug *hotplug, HostPrep *prep)
{
  char *holder = hotplug_held_elsewhere(hotplug, prep);
  if (holder)
    return holder;
  for (guint i = 0; i < prep->claims->len; i++) {
    const char *key = g_ptr_array_index(prep->claims, i);
    g_autoptr(GError) error = NULL;
    if (!hotplug_claim_again(hotplug, key, &error)) {
      if (g_error_matches(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY))
        return g_strdup_printf("%s (%s)", key, error->message);
      g_warning("cannot take the claim %s again: %s", key, error->message);
    }
  }
  return NULL;
}

/* Return: (transfer full) (nullable): @entry read back, or NULL (logged) when it cannot be. */
static Replay *
replay_load(Hotplug *hotplug, StateEntry *entry, const char *const *ids)
{
  g_autoptr(GError) error = NULL;
  Replay *replay = g_new0(Replay, 1);

  replay->entry = entry;
  replay->hostdev = hostdev_parse_live_xml(entry->xml, strlen(entry->xml), &error);
  g_autoptr(JsonObject) host = state_entry_host(entry);
  replay->prep = replay->hostdev && host ? host_prep_from_json(host, &error) : host_prep_new();
  if (replay->hostdev == NULL || replay->prep == NULL) {
    g_warning("journal entry %s is unreadable (%s); left for a person to check", entry->alias,
              error->message);
    replay_free(replay);
    return NULL;
  }
  replay->present = ids && recorded_for_this_qemu(hotplug, entry) &&
                    g_strv_contains(ids, entry->alias);
  return replay;
}

static VmDevice *
replay_register(Hotplug *hotplug, Replay *replay, VmDeviceState state)
{
  VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&replay->hostdev),
                                    g_steal_pointer(&replay->prep));
  device->state = state;
  return device;
}

static void
replay_note_memlock(Hotplug *hotplug, const Replay *replay)
{
  if (replay->prep->memlock_saved && !hotplug->memlock_saved && replay->entry->qemu.pid > 0) {
    /* only the QEMU whose limit was raised gets its own limit back */
    hotplug->memlock_saved = TRUE;
    hotplug->memlock_soft = replay->prep->memlock_soft;
    hotplug->memlock_hard = replay->prep->memlock_hard;
  }
}

/*
 * replay_unplug() - QEMU holds @replay's device, which is to leave: it is
 * listed (and journaled) as detaching and QEMU is asked to remove its
 * devices, newest first; QEMU's DEVICE_DELETED then gives it back to the
 * host, as it does for an unplug the guest finishes late.
 * Return: FALSE with @error when the journal could not say so (QEMU is asked all the same).
 */
static gboolean
replay_unplug(Hotplug *hotplug, Replay *replay, const char *const *ids, GError **error)
{
  StateEntry *entry = replay->entry;
  g_auto(GStrv) qemu_ids = g_strdupv(entry->qemu_ids);
  g_autoptr(GError) local = NULL;

  VmDevice *device = replay_register(hotplug, replay, VM_DEVICE_DETACHING);
  gboolean journaled = hotplug_journal_device(hotplug, device->hostdev, STATE_DETACHING,
                                              "device-del", NULL, NULL, FALSE, &local);
  if (!journaled) {
    g_warning("%s", local->message);
    g_propagate_error(error, g_steal_pointer(&local));
  }
  for (guint i = g_strv_length(qemu_ids); i-- > 0;)
    if (g_strv_contains(ids, qemu_ids[i]))
      hotplug_remove_from_qemu(hotplug, qemu_ids[i]);
  return journaled;
}

/*
 * replay_held() - first pass: a device this QEMU still holds stays listed.
 * Return: whether @replay was taken care of.
 */
static gboolean
replay_held(Hotplug *hotplug, Replay *replay, const char *const *ids, ReconcileCount *count)
{
  StateEntry *entry = replay->entry;
  const char *alias = entry->alias;
  g_autoptr(GError) error = NULL;

  if (replay->undo)
    return FALSE;   /* what QEMU holds of it is leaving already: the second pass gives it back */
  /* a USB device waiting for its device is the VM's while this QEMU runs */
  if (ids && entry->state == STATE_ATTACHED &&
      g_strcmp0(entry->step, HOTPLUG_STEP_WAIT_FOR_DEVICE) == 0) {
    gboolean in_qemu = replay->present;
    g_message("%s: still waiting for its USB device", alias);
    hotplug_follow_resume(hotplug, replay_register(hotplug, replay, VM_DEVICE_WAITING), in_qemu);
    count->kept++;
    return TRUE;
  }
  if (!replay->present)
    return FALSE;
  replay_note_memlock(hotplug, replay);
  switch (entry->state) {
  case STATE_ATTACHED:
    replay_register(hotplug, replay, VM_DEVICE_ATTACHED);
    count->kept++;
    return TRUE;
  case STATE_ATTACHING:
    if (all_present(entry, ids)) {
      g_message("%s: finishing an attach interrupted after QEMU accepted it", alias);
      VmDevice *device = replay_register(hotplug, replay, VM_DEVICE_ATTACHED);
      if (!hotplug_journal_device(hotplug, device->hostdev, STATE_ATTACHED, "done", NULL,
                                  device->prep, FALSE, &error))
        g_warning("%s", error->message);
      count->finished++;
      return TRUE;
    }
    if (!hotplug_type_ops(replay->hostdev->type)->unplug_needs_guest)
      return FALSE;   /* leaves QEMU at once: the second pass gives it back */
    /* the guest may hold it: give it back only when QEMU reports it gone */
    g_message("%s: undoing an attach interrupted at step '%s'; the guest must let it go first",
              alias, entry->step);
    replay_unplug(hotplug, replay, ids, NULL);
    count->undone++;
    return TRUE;
  case STATE_DETACHING:
    /* the unplug request may never have reached QEMU: ask again, it is idempotent */
    replay_register(hotplug, replay, VM_DEVICE_DETACHING);
    hotplug_remove_from_qemu(hotplug, alias);
    g_message("%s: detach still pending in the guest", alias);
    count->kept++;
    return TRUE;
  }
  return FALSE;
}

/* replay_gone() - second pass: QEMU does not hold the device: give it back and forget it. */
static void
replay_gone(Hotplug *hotplug, Replay *replay, ReconcileCount *count)
{
  StateEntry *entry = replay->entry;
  g_autofree char *alias = g_strdup(entry->alias);

  switch (replay->undo ? STATE_ATTACHING : entry->state) {
  case STATE_ATTACHED:
    g_message("%s left the VM while hostdevd was not running", alias);
    count->finished++;
    break;
  case STATE_ATTACHING:
    /* a zpci whose target never arrived stays in QEMU (7.2 crashes removing one) */
    g_message("%s: undoing an attach interrupted at step '%s'", alias, entry->step);
    count->undone++;
    break;
  case STATE_DETACHING:
    g_message("%s: finishing a detach interrupted at step '%s'", alias, entry->step);
    count->finished++;
    break;
  }
  VmDevice *device = replay_register(hotplug, replay, VM_DEVICE_DETACHING);
  hotplug_release_device(hotplug, device, "reconciled after a restart", NULL, NULL);
}

static Replay *
find_replay(GPtrArray *replays, const char *alias, guint *index)
{
  for (guint i = 0; i < replays->len; i++) {
    Replay *replay = g_ptr_array_index(replays, i);
    if (g_strcmp0(replay->entry->alias, alias) == 0) {
      *index = i;
      return replay;
    }
  }
  return NULL;
}

/*
 * undo_unanswered_requests() - every device of a request whose record is
 * still there is undone: the ones QEMU holds leave it now, newest first
 * (their replays are done with), the others are marked for the second
 * pass to give back.  The request's record goes once every record it
 * names is in hand here (or unreadable: left for a person, never acted
 * on); one left for a later replay (another QEMU's, or this QEMU's while
 * only a dead one's records are replayed) keeps it, so that the later
 * replay still undoes that device.  A request record left behind would
 * otherwise outlive its aliases, which a new device may take.
 */
static void
undo_unanswered_requests(Hotplug *hotplug, GPtrArray *replays, GHashTable *unreadable,
                         const char *const *ids, ReconcileCount *count)
{
  GPtrArray *requests = state_journal_requests(hotplug->journal);

  for (guint r = 0; r < requests->len;) {
    const StateRequest *request = g_ptr_array_index(requests, r);
    g_autofree char *id = g_strdup(request->id);
    g_autofree char *names = g_strjoinv(", ", request->aliases);
    gboolean whole = TRUE;
    gboolean any = FALSE;
    guint index;

    for (char **alias = request->aliases; *alias; alias++)
      any |= find_replay(replays, *alias, &index) != NULL;
    if (any)
      g_message("the <devices> request of %s was interrupted before its answer: undoing every "
                "device of it", names);
    for (guint i = g_strv_length(request->aliases); i-- > 0;) {
      const char *alias = request->aliases[i];
      Replay *replay = find_replay(replays, alias, &index);
      if (replay == NULL) {
        /* gone already (another VM's now: dropped), unreadable, or left for later */
        whole &= state_journal_find(hotplug->journal, alias) == NULL ||
                 g_hash_table_contains(unreadable, alias);
        continue;
      }
      replay->undo = TRUE;
      if (!replay->present)
        continue;
      g_message("%s: undoing it although QEMU accepted it (%s at step '%s'); %s", alias,
                state_device_state_name(replay->entry->state), replay->entry->step,
                hotplug_type_ops(replay->hostdev->type)->unplug_needs_guest
                    ? "the guest must let it go first" : "QEMU removes it at once");
      replay_note_memlock(hotplug, replay);
      whole &= replay_unplug(hotplug, replay, ids, NULL);
      count->undone++;
      g_ptr_array_remove_index(replays, index);
    }
    g_autoptr(GError) error = NULL;
    if (!whole) {
      if (any)
        g_message("the record of request %s stays until every device of it is undone", id);
      r++;
    } else if (!state_journal_forget_request(hotplug->journal, id, &error)) {
      g_warning("%s", error->message);
      r++;
    }
  }
}

/*
 * reconcile_records() - replay the records @filter selects
 * @ids: (nullable): the ids of QEMU's devices; NULL when no QEMU runs
 */
static void
reconcile_records(Hotplug *hotplug, const char *const *ids, ReplayFilter filter)
{
  GPtrArray *entries = state_journal_entries(hotplug->journal);
  g_autoptr(GPtrArray) replays = g_ptr_array_new_with_free_func((GDestroyNotify)replay_free);
  g_autoptr(GHashTable) unreadable = g_hash_table_new(g_str_hash, g_str_equal);
  ReconcileCount count = { 0 };

  for (guint i = 0; i < entries->len; i++) {
    StateEntry *entry = g_ptr_array_index(entries, i);
    if (filter && !filter(hotplug, entry))
      continue;
    if (!recorded_for_this_qemu(hotplug, entry) && entry->qemu.pid > 0 &&
        process_identity_alive(&entry->qemu)) {
      g_warning("%s belongs to QEMU pid %d, which still runs but is not the QEMU hostdevd is "
                "connected to; its record is left as it is", entry->alias, (int)entry->qemu.pid);
      continue;
    }
    Replay *replay = replay_load(hotplug, entry, ids);
    if (replay)
      g_ptr_array_add(replays, replay);
    else
      g_hash_table_add(unreadable, entry->alias);
  }
  /* ownership first: a record of a device another live VM holds now is never acted on */
  for (guint i = 0; i < replays->len;) {
    Replay *replay = g_ptr_array_index(replays, i);
    g_autofree char *holder = owned_elsewhere(hotplug, replay->prep);
    if (holder == NULL) {
      /* what the administrator set since this VM left it is theirs */
      host_prep_leave_administered(replay->prep, hotplug->runtime_dir, hotplug->vm,
                                   &replay->entry->qemu);
      i++;
      continue;
    }
    g_warning("%s: dropping its journal record without touching the device: %s holds it now",
              replay->entry->alias, holder);
    hotplug_journal_forget(hotplug, replay->entry->alias);
    count.dropped++;
    g_ptr_array_remove_index(replays, i);
  }
  undo_unanswered_requests(hotplug, replays, unreadable, ids, &count);
  /* what QEMU still holds is registered before anything is given back */
  for (guint i = 0; i < replays->len;) {
    if (replay_held(hotplug, g_ptr_array_index(replays, i), ids, &count))
      g_ptr_array_remove_index(replays, i);
    else
      i++;
  }
  for (guint i = 0; i < replays->len; i++)
    replay_gone(hotplug, g_ptr_array_index(replays, i), &count);
  if (count.kept + count.finished + count.undone + count.dropped > 0)
    g_message("journal reconciled: %u device(s) kept, %u finished, %u undone, %u dropped "
              "(held by another VM)", count.kept, count.finished, count.undone, count.dropped);
}

/*
 * give_back_unbacked() - a PCI device's claim that no record names carries
 * the device's origin.  A device that is not as its origin says was left
 * so by a VM that is gone, whose claim this VM's attach took over (and
 * with it, that VM's journal's duty: claims_administered_since()) before
 * dying ahead of journaling it.  The device goes back now, as the record
 * never written would have given it back; what the administrator set on
 * it since stays.  Return: whether the claim may go (nothing is left to
 * give back).
 */
static gboolean
give_back_unbacked(Hotplug *hotplug, const Claim *claim)
{
  PciAddress addr;
  g_autoptr(GError) error = NULL;

  if (claim->origin == NULL || !claims_key_to_pci(claim->key, &addr))
    return TRUE;
  /* a device gone from the host has nothing to give back */
  g_autoptr(VfioRecord) record = vfio_record_new_from_origin(&addr, TRUE, claim->origin, NULL);
  if (record == NULL || vfio_record_is_clean(record))
    return TRUE;
  g_autofree char *bdf = pci_address_format(&addr);
  const ProcessIdentity qemu = { claim->qemu_pid, claim->qemu_start_time };
  g_autofree char *taken_by = NULL;
  gboolean administered = claims_administered_since(hotplug->runtime_dir, claim->key,
                                                    hotplug->vm, &qemu, &taken_by) &&
                          taken_by == NULL && vfio_record_leave_binding(record, &addr);
  if (!vfio_undo(record, &error)) {
    g_warning("PCI device %s: its claim, which no record names, carries what a VM that is gone "
              "left to give back, and giving it back failed (%s): the claim stays, and whoever "
              "takes it over next gives the device back; to give it back now, stop this VM "
              "(its hostdevd and its QEMU), then run 'hostdevctl nodedev-reattach %s'",
              bdf, error->message, claim->key);
    return FALSE;
  }
  if (administered)
    g_message("PCI device %s: the administrator set its driver since, which stays; the rest "
              "given back", bdf);
  else
    g_message("PCI device %s given back to %s: this VM took its claim over from a VM that is "
              "gone, and hostdevd died before journaling it", bdf,
              claim->origin->driver ? claim->origin->driver : "no driver");
  return TRUE;
}

/*
 * release_unbacked_claims() - a claim of this VM that no journal record
 * names was taken by a hostdevd that died before journaling it (the claim
 * is written, then the record): nothing of the host was changed for it by
 * this VM, so it is dropped, once what it took over from a VM that is gone
 * went back (give_back_unbacked()).  Run once every record is registered.
 */
static void
release_unbacked_claims(Hotplug *hotplug)
{
  GPtrArray *entries = state_journal_entries(hotplug->journal);
  g_autoptr(GHashTable) backed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < entries->len; i++) {
    StateEntry *entry = g_ptr_array_index(entries, i);
    g_autoptr(JsonObject) host = state_entry_host(entry);
    JsonNode *keys = host ? json_object_get_member(host, "claims") : NULL;
    JsonArray *array = keys && JSON_NODE_HOLDS_ARRAY(keys) ? json_node_get_array(keys) : NULL;
    for (guint k = 0; array && k < json_array_get_length(array); k++) {
      JsonNode *key = json_array_get_element(array, k);
      if (JSON_NODE_HOLDS_VALUE(key) && json_node_get_value_type(key) == G_TYPE_STRING)
        g_hash_table_add(backed, g_strdup(json_node_get_string(key)));
    }
  }
  g_autoptr(GPtrArray) claims = claims_list(hotplug->runtime_dir, hotplug->vm, &error);
  if (claims == NULL) {
    g_warning("cannot list this VM's claims: %s", error->message);
    return;
  }
  for (guint i = 0; i < claims->len; i++) {
    const Claim *claim = g_ptr_array_index(claims, i);
    g_autoptr(GError) release_error = NULL;
    if (g_hash_table_contains(backed, claim->key) || !give_back_unbacked(hotplug, claim))
      continue;
    if (claims_release(hotplug->runtime_dir, hotplug->vm, claim->key, &release_error))
      g_message("dropped the claim %s: no journal record names it (hostdevd died between "
                "claiming and journaling)", claim->key);
    else
      g_warning("%s", release_error->message);
  }
}

/*
 * forget_served_notes() - the administrator's notes on what a QEMU of this
 * VM left are read by the replay of its records; once the journal holds
 * none of that QEMU's, they have served.  Run once the records are replayed.
 */
static void
forget_served_notes(Hotplug *hotplug)
{
  GPtrArray *entries = state_journal_entries(hotplug->journal);
  g_autofree ProcessIdentity *recorded = g_new0(ProcessIdentity, entries->len + 1);

  for (guint i = 0; i < entries->len; i++)
    recorded[i] = ((StateEntry *)g_ptr_array_index(entries, i))->qemu;
  claims_forget_administered(hotplug->runtime_dir, hotplug->vm, recorded, entries->len);
}

static void
on_reconcile_ids(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  Hotplug *hotplug = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (value == NULL) {
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                            "cannot list QEMU's devices to reconcile the journal: %s",
                            error->message);
    g_error_free(error);
    return;
  }
  g_auto(GStrv) ids = hotplug_peripheral_ids(value);
  reconcile_records(hotplug, (const char *const *)ids, NULL);
  release_unbacked_claims(hotplug);
  forget_served_notes(hotplug);
  g_task_return_boolean(task, TRUE);
}

void
hotplug_reconcile_async(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, NULL, callback, user_data);
  g_task_set_task_data(task, hotplug, NULL);
  hotplug_list_peripherals(hotplug, on_reconcile_ids, task);
}

gboolean
hotplug_reconcile_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}

/* A record whose QEMU process is known and gone: nobody holds its device in a guest. */
static gboolean
recorded_for_dead_qemu(Hotplug *hotplug, const StateEntry *entry)
{
  return entry->qemu.pid > 0 && !process_identity_alive(&entry->qemu);
}

static void
on_orphans_released(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  if (!hotplug_drain_finish(g_task_get_task_data(task), result, &error))
    g_task_return_error(task, error);
  else
    g_task_return_boolean(task, TRUE);
}

void
hotplug_release_orphans_async(Hotplug *hotplug, GAsyncReadyCallback callback,
                              gpointer user_data)
{
  GTask *task = g_task_new(NULL, NULL, callback, user_data);
  g_task_set_task_data(task, hotplug, NULL);
  reconcile_records(hotplug, NULL, recorded_for_dead_qemu);
  hotplug_drain_async(hotplug, on_orphans_released, task);
}

gboolean
hotplug_release_orphans_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}
