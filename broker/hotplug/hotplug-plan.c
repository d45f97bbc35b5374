/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug-private.h"

void
hotplug_plan_phase_mark(Op *op, const char *name)
{
  gint64 now = g_get_monotonic_time();
  if (op->timings == NULL)
    op->timings = json_object_new();
  double before = json_object_get_double_member_with_default(op->timings, name, 0.0);
  json_object_set_double_member(op->timings, name,
                                before + (double)(now - op->phase_start) / 1000.0);
  op->phase_start = now;
}

void
hotplug_plan_add(Op *op, const AttachStepKind *kind, AttachItem *item, guint command)
{
  if (kind->applies && !kind->applies(item))
    return;
  if (op->plan == NULL)
    op->plan = g_array_new(FALSE, TRUE, sizeof(AttachStep));
  AttachStep step = { .kind = kind, .item = item, .command = command };
  g_array_append_val(op->plan, step);
}

AttachStep *
hotplug_plan_running(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  g_assert(op->plan && op->next < op->plan->len);
  return &g_array_index(op->plan, AttachStep, op->next);
}

AttachStep *
hotplug_plan_undoing(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  g_assert(op->plan && op->undo_from < op->plan->len);
  return &g_array_index(op->plan, AttachStep, op->undo_from);
}

/* Journal @step unless its device's record names it already. */
static gboolean
plan_journal(Op *op, const AttachStep *step, GError **error)
{
  AttachItem *item = step->item;
  const AttachStepKind *kind = step->kind;

  if (!kind->journaled || g_strcmp0(item->journaled_step, kind->name) == 0)
    return TRUE;
  if (!hotplug_journal_device(op->hotplug, item->hostdev, STATE_ATTACHING, kind->name,
                              item->commands, item->prep, kind->binding_in_flight, error))
    return FALSE;
  item->journaled_step = kind->name;
  return TRUE;
}

void
hotplug_plan_run(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  while (op->plan && op->next < op->plan->len) {
    AttachStep *step = &g_array_index(op->plan, AttachStep, op->next);
    const AttachStepKind *kind = step->kind;
    if (kind->needed && !kind->needed(step->item)) {
      op->next++;
      continue;
    }
    if ((kind->prepare && !kind->prepare(step->item, &error)) ||
        !plan_journal(op, step, &error)) {
      hotplug_plan_step_done(task, error, FALSE);
      return;
    }
    kind->run(task, step);
    return;
  }
  op->plan_finished(task);
}

static void plan_undo(GTask *task);

void
hotplug_plan_step_done(GTask *task, GError *error, gboolean took_effect)
{
  Op *op = g_task_get_task_data(task);
  const AttachStep *step = &g_array_index(op->plan, AttachStep, op->next);

  if (error == NULL || took_effect)
    op->undo_from = ++op->next;
  if (error == NULL) {
    if (step->kind->phase)
      hotplug_plan_phase_mark(op, step->kind->phase);
    hotplug_plan_run(task);
    return;
  }
  g_message("%s: attach failed at step '%s' (%s); undoing %u step%s that took effect",
            step->item->hostdev->alias, step->kind->name, error->message, op->undo_from,
            op->undo_from == 1 ? "" : "s");
  op->failure = error;
  plan_undo(task);
}

static void
plan_undo(GTask *task)
{
  Op *op = g_task_get_task_data(task);

  while (op->undo_from > 0) {
    AttachStep *step = &g_array_index(op->plan, AttachStep, --op->undo_from);
    if (step->kind->undo && !step->item->handed_over) {
      step->kind->undo(task, step);
      return;
    }
  }
  /* everything is back as it was: the records of the attempt go */
  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    if (!item->keep_record && !item->handed_over && item->hostdev->alias &&
        state_journal_find(op->hotplug->journal, item->hostdev->alias))
      hotplug_journal_forget(op->hotplug, item->hostdev->alias);
  }
  hotplug_op_return(task, NULL, g_steal_pointer(&op->failure));
}

void
hotplug_plan_undo_next(GTask *task)
{
  plan_undo(task);
}

/* Add @what to the error the attach fails with. */
static void
failure_append(Op *op, const char *what)
{
  GError *failure = op->failure;
  op->failure = g_error_new(failure->domain, failure->code, "%s; %s", failure->message, what);
  g_error_free(failure);
}

void
hotplug_plan_undo_hand_over(GTask *task, AttachItem *item, const char *why)
{
  item->handed_over = TRUE;
  failure_append(g_task_get_task_data(task), why);
  plan_undo(task);
}

void
hotplug_plan_add_failure(GTask *task, AttachItem *item, const char *what, const GError *error)
{
  g_autofree char *text = g_strdup_printf("%s failed too: %s", what, error->message);
  failure_append(g_task_get_task_data(task), text);
  item->keep_record = TRUE;
}

JsonObject *
hotplug_qmp_command(const char *execute, JsonObject *arguments)
{
  JsonObject *command = json_object_new();
  json_object_set_string_member(command, "execute", execute);
  if (arguments)
    json_object_set_object_member(command, "arguments", json_object_ref(arguments));
  return command;
}

JsonNode *
hotplug_plan_describe(const Op *op)
{
  g_autoptr(JsonObject) reply = json_object_new();
  JsonArray *plan = json_array_new();
  JsonArray *commands = json_array_new();

  for (guint i = 0; op->plan && i < op->plan->len; i++) {
    const AttachStep *step = &g_array_index(op->plan, AttachStep, i);
    JsonObject *entry = json_object_new();
    g_autofree char *what = step->kind->describe(step->item, step);
    json_object_set_string_member(entry, "step", step->kind->name);
    json_object_set_string_member(entry, "alias", step->item->hostdev->alias);
    json_object_set_string_member(entry, "what", what);
    JsonObject *qmp = step->kind->qmp ? step->kind->qmp(step->item, step) : NULL;
    if (qmp) {
      json_array_add_object_element(commands, json_object_ref(qmp));
      json_object_set_object_member(entry, "qmp", qmp);
    }
    json_array_add_object_element(plan, entry);
  }
  json_object_set_array_member(reply, "plan", plan);
  json_object_set_array_member(reply, "commands", commands);
  return json_node_init_object(json_node_alloc(), reply);
}
