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
hotplug_plan_add(Op *op, const AttachStepKind *kind, guint command)
{
  if (kind->applies && !kind->applies(op))
    return;
  if (op->plan == NULL)
    op->plan = g_array_new(FALSE, TRUE, sizeof(AttachStep));
  AttachStep step = { .kind = kind, .command = command };
  g_array_append_val(op->plan, step);
}

/* Journal @kind's step unless the last one written already named it. */
static gboolean
plan_journal(Op *op, const AttachStepKind *kind, GError **error)
{
  if (!kind->journaled || g_strcmp0(op->journaled_step, kind->name) == 0)
    return TRUE;
  if (!hotplug_journal_device(op->hotplug, op->hostdev, STATE_ATTACHING, kind->name,
                              op->commands, op->prep, kind->binding_in_flight, error))
    return FALSE;
  op->journaled_step = kind->name;
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
    if (kind->needed && !kind->needed(op)) {
      op->next++;
      continue;
    }
    if ((kind->prepare && !kind->prepare(op, &error)) || !plan_journal(op, kind, &error)) {
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
            op->hostdev->alias, step->kind->name, error->message, op->undo_from,
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
    if (step->kind->undo) {
      step->kind->undo(task, step);
      return;
    }
  }
  /* everything is back as it was: the record of the attempt goes */
  if (!op->keep_record && op->hostdev->alias &&
      state_journal_find(op->hotplug->journal, op->hostdev->alias))
    hotplug_journal_forget(op->hotplug, op->hostdev->alias);
  hotplug_restore_memlock_if_unused(op->hotplug);
  hotplug_op_return(task, NULL, g_steal_pointer(&op->failure));
}

void
hotplug_plan_undo_next(GTask *task)
{
  plan_undo(task);
}

void
hotplug_plan_undo_hand_over(GTask *task, const char *why)
{
  Op *op = g_task_get_task_data(task);
  GError *failure = g_steal_pointer(&op->failure);
  GError *reported = g_error_new(failure->domain, failure->code, "%s; %s", failure->message, why);

  g_error_free(failure);
  hotplug_op_return(task, NULL, reported);
}

void
hotplug_plan_add_failure(GTask *task, const char *what, const GError *error)
{
  Op *op = g_task_get_task_data(task);
  GError *failure = op->failure;

  op->failure = g_error_new(failure->domain, failure->code, "%s; %s failed too: %s",
                            failure->message, what, error->message);
  g_error_free(failure);
  op->keep_record = TRUE;
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
    g_autofree char *what = step->kind->describe(op, step);
    json_object_set_string_member(entry, "step", step->kind->name);
    json_object_set_string_member(entry, "what", what);
    JsonObject *qmp = step->kind->qmp ? step->kind->qmp(op, step) : NULL;
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
