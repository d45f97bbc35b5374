/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug-private.h"

#include <string.h>

/* ---- reconcile after a restart ---------------------------------------- */

typedef struct {
  guint kept;
  guint finished;
  guint undone;
} ReconcileCount;

static gboolean
all_present(const StateEntry *entry, const char *const *ids)
{
  for (char **id = entry->qemu_ids; id && *id; id++)
    if (!g_strv_contains(ids, *id))
      return FALSE;
  return g_strv_contains(ids, entry->alias);
}

/* reconcile_entry() - make one journal entry agree with what QEMU really has. */
static void
reconcile_entry(Hotplug *hotplug, StateEntry *entry, const char *const *ids, ReconcileCount *count)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *alias = g_strdup(entry->alias);
  g_autoptr(Hostdev) hostdev = hostdev_parse_live_xml(entry->xml, strlen(entry->xml), &error);
  g_autoptr(HostPrep) prep = hostdev && entry->host ? host_prep_from_json(entry->host, &error)
                                                    : host_prep_new();
  gboolean present = g_strv_contains(ids, alias);

  if (hostdev == NULL || prep == NULL) {
    g_warning("journal entry %s is unreadable (%s); left for a person to check", alias,
              error->message);
    return;
  }
  if (prep->memlock_saved && !hotplug->memlock_saved) {
    hotplug->memlock_saved = TRUE;
    hotplug->memlock_soft = prep->memlock_soft;
    hotplug->memlock_hard = prep->memlock_hard;
  }
  switch (entry->state) {
  case STATE_ATTACHED:
    if (present) {
      vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev), g_steal_pointer(&prep));
      count->kept++;
      return;
    }
    g_message("%s left the VM while hostdevd was not running", alias);
    break;
  case STATE_ATTACHING:
    if (all_present(entry, ids)) {
      g_message("%s: finishing an attach interrupted after QEMU accepted it", alias);
      if (!hotplug_journal_device(hotplug, hostdev, STATE_ATTACHED, "done", NULL, prep, FALSE, &error))
        g_warning("%s", error->message);
      vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev), g_steal_pointer(&prep));
      count->finished++;
      return;
    }
    g_message("%s: undoing an attach interrupted at step '%s'", alias, entry->step);
    for (guint i = g_strv_length(entry->qemu_ids); i-- > 0;) {
      const char *id = entry->qemu_ids[i];
      if (g_strv_contains(ids, id) && (g_strcmp0(id, alias) == 0 || present))
        hotplug_remove_from_qemu(hotplug, id);
    }
    if (present && hostdev->type == HOSTDEV_TYPE_PCI) {
      /* the guest may hold it: give it back only when QEMU reports it gone */
      VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev), g_steal_pointer(&prep));
      device->state = VM_DEVICE_DETACHING;
      if (!hotplug_journal_device(hotplug, device->hostdev, STATE_DETACHING, "device-del", NULL, NULL, FALSE, &error))
        g_warning("%s", error->message);
      count->undone++;
      return;
    }
    count->undone++;
    break;
  case STATE_DETACHING:
    if (g_strcmp0(entry->step, "wait-group") == 0 && !present) {
      /* left QEMU; its IOMMU group goes back with the group's last device */
      VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev),
                                        g_steal_pointer(&prep));
      hotplug_release_device(hotplug, device, "reconciled after a restart", NULL, NULL);
      count->finished++;
      return;
    }
    if (present) {
      /* the unplug request may never have reached QEMU: ask again, it is idempotent */
      VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev), g_steal_pointer(&prep));
      device->state = VM_DEVICE_DETACHING;
      hotplug_remove_from_qemu(hotplug, alias);
      g_message("%s: detach still pending in the guest", alias);
      count->kept++;
      return;
    }
    g_message("%s: finishing a detach interrupted at step '%s'", alias, entry->step);
    count->finished++;
    break;
  }
  /* QEMU does not hold it: give the host device back and forget it */
  VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&hostdev),
                                    g_steal_pointer(&prep));
  hotplug_release_device(hotplug, device, "reconciled after a restart", NULL, NULL);
}

static void
on_reconcile_ids(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  Hotplug *hotplug = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  ReconcileCount count = { 0 };

  if (value == NULL) {
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                            "cannot list QEMU's devices to reconcile the journal: %s",
                            error->message);
    g_error_free(error);
    return;
  }
  g_auto(GStrv) ids = hotplug_peripheral_ids(value);
  /* reconcile_entry() may forget entries: walk a snapshot of the aliases */
  GPtrArray *entries = state_journal_entries(hotplug->journal);
  g_autoptr(GPtrArray) aliases = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < entries->len; i++)
    g_ptr_array_add(aliases, g_strdup(((StateEntry *)g_ptr_array_index(entries, i))->alias));
  for (guint i = 0; i < aliases->len; i++) {
    StateEntry *entry = state_journal_find(hotplug->journal, g_ptr_array_index(aliases, i));
    if (entry)
      reconcile_entry(hotplug, entry, (const char *const *)ids, &count);
  }
  if (aliases->len > 0)
    g_message("journal reconciled: %u device(s) kept, %u finished, %u undone", count.kept,
              count.finished, count.undone);
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

