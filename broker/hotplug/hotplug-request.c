/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-request.c - an attach of several devices journaled as one request
 *
 * Each device of a <devices> request has its own journal record, which a
 * restart would finish or undo on its own; the request's record
 * (state.h, StateRequest) is what makes the request all or nothing across
 * a crash too.  It is written once every alias is chosen and before the
 * first step takes effect, and removed just before the answer, whatever
 * the answer is: after a success every device is the VM's, after a failure
 * every device was undone (or is recorded as leaving).  So the removal is
 * the request's commit point: a crash before it undoes every device of
 * the request (hotplug-reconcile.c), a crash after it keeps them all.
 * A request of one device needs no such record.
 */
#include "hotplug-private.h"

/* Return: (transfer full): the aliases of @op's devices in the order they go into QEMU
 * (a multifunction slot's function 0 after its other functions); those that never
 * do (a USB device waiting for its device) first. */
static GStrv
request_aliases(const Op *op)
{
  g_autoptr(GPtrArray) order = g_ptr_array_new();

  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    gboolean added = FALSE;
    for (guint s = 0; op->plan && s < op->plan->len && !added; s++) {
      const AttachStep *step = &g_array_index(op->plan, AttachStep, s);
      added = step->item == item && step->kind == &hotplug_step_device_add;
    }
    if (!added)
      g_ptr_array_add(order, item->hostdev->alias);
  }
  for (guint s = 0; op->plan && s < op->plan->len; s++) {
    const AttachStep *step = &g_array_index(op->plan, AttachStep, s);
    const char *alias = step->item->hostdev->alias;
    if (step->kind == &hotplug_step_device_add && !g_ptr_array_find_with_equal_func(order, alias, g_str_equal, NULL))
      g_ptr_array_add(order, (gpointer)alias);
  }
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  for (guint i = 0; i < order->len; i++)
    g_strv_builder_add(builder, g_ptr_array_index(order, i));
  return g_strv_builder_end(builder);
}

gboolean
hotplug_request_begin(Op *op, GError **error)
{
  if (op->items->len < 2)
    return TRUE;
  if (op->request == NULL)
    op->request = g_strdup_printf("request-%" G_GINT64_FORMAT, g_get_real_time());
  g_auto(GStrv) aliases = request_aliases(op);
  return state_journal_note_request(op->hotplug->journal, op->request,
                                    (const char *const *)aliases, error);
}

void
hotplug_request_end(Op *op)
{
  g_autoptr(GError) error = NULL;

  if (op->request == NULL)
    return;
  if (!state_journal_forget_request(op->hotplug->journal, op->request, &error))
    g_warning("%s: a restart would undo every device of this request", error->message);
  g_clear_pointer(&op->request, g_free);
}
