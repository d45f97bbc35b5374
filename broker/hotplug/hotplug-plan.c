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

static AttachStep *
plan_step(const Op *op, guint index)
{
  return &g_array_index(op->plan, AttachStep, index);
}

AttachStep *
hotplug_plan_running(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  g_assert(op->plan && op->next < op->plan->len && op->run_end == 0);
  return plan_step(op, op->next);
}

AttachStep *
hotplug_plan_undoing(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  g_assert(op->plan && op->undo_from < op->plan->len);
  return plan_step(op, op->undo_from);
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

/* What comes before @step takes effect: its read-only preparation, then its journal entry. */
static gboolean
plan_step_ready(Op *op, AttachStep *step, GError **error)
{
  return (step->kind->prepare == NULL || step->kind->prepare(step->item, error)) &&
         plan_journal(op, step, error);
}

/* Return: the end of the run of steps of the (concurrent) kind of the step at @from. */
static guint
run_end(const Op *op, guint from)
{
  const AttachStepKind *kind = plan_step(op, from)->kind;
  guint end = from + 1;

  while (end < op->plan->len && plan_step(op, end)->kind == kind)
    end++;
  return end;
}

/* Return: whether the step at @index must be run after the one at @earlier of its run. */
static gboolean
serialized_with(const Op *op, guint earlier, guint index)
{
  const AttachStep *step = plan_step(op, index);
  return step->kind->serialize_key &&
         step->kind->serialize_key(step) == step->kind->serialize_key(plan_step(op, earlier));
}

/* Return: whether the step at @index waits for a step before it in its run, not over yet. */
static gboolean
waits_for_earlier(const Op *op, guint index)
{
  for (guint i = op->next; i < index; i++) {
    AttachStepState state = plan_step(op, i)->state;
    if ((state == ATTACH_STEP_PENDING || state == ATTACH_STEP_RUNNING) &&
        serialized_with(op, i, index))
      return TRUE;
  }
  return FALSE;
}

static void undo_begin(GTask *task);

/* The concurrent run is over, every step of it: the undo, or the plan goes on. */
static void
run_joined(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  guint end = op->run_end;

  op->run_end = 0;
  if (op->failure) {
    op->undo_from = end;
    undo_begin(task);
    return;
  }
  op->next = end;
  hotplug_plan_run(task);
}

/*
 * run_together() - start every step of the concurrent run that may start
 * now (none once one failed), each journaled first; when none is running
 * any more, the run is over.  A step that ends at once, inside its run(),
 * only counts as over: this loop goes on, and the steps that waited for it
 * come after it in the run.
 */
static void
run_together(GTask *task)
{
  Op *op = g_task_get_task_data(task);

  op->launching = TRUE;
  for (guint i = op->next; i < op->run_end && op->failure == NULL; i++) {
    AttachStep *step = plan_step(op, i);
    GError *error = NULL;

    if (step->state != ATTACH_STEP_PENDING || waits_for_earlier(op, i))
      continue;
    if (step->kind->needed && !step->kind->needed(step->item)) {
      step->state = ATTACH_STEP_SKIPPED;
      continue;
    }
    step->state = ATTACH_STEP_RUNNING;
    op->running++;
    if (!plan_step_ready(op, step, &error)) {
      hotplug_plan_step_over(task, step, error, FALSE);
      continue;
    }
    step->kind->run(task, step);
  }
  op->launching = FALSE;
  if (op->running == 0)
    run_joined(task);
}

/*
 * Send the next QEMU command ahead when only host_only steps come before
 * it: QEMU reads its bytes (one per main-loop turn) while the host is
 * prepared, and dispatches it as soon as its step sends it.  Only from the
 * first step whose work runs in threads (the VFIO bindings: the kernel's
 * time) or from the command's own step (its journal record): QEMU's
 * reading competes for the CPU, and a claim or a check is hostdevd's own
 * work (in L1 the claim phase doubled when the command went out before
 * it).  A guess, not a promise: a command sent in between, or one that
 * turns out different, ends the staged one without effect
 * (qmp_client_stage()).
 */
static void
plan_stage_ahead(Op *op)
{
  if (op->dry_run || op->next >= op->plan->len)
    return;
  const AttachStepKind *now = plan_step(op, op->next)->kind;
  if (!now->concurrent && !now->stage)
    return;
  for (guint i = op->next; i < op->plan->len; i++) {
    const AttachStep *step = plan_step(op, i);
    if (step->kind->stage) {
      step->kind->stage(step);
      return;
    }
    if (!step->kind->host_only)
      return;
  }
}

void
hotplug_plan_run(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (op->plan)
    plan_stage_ahead(op);
  while (op->plan && op->next < op->plan->len) {
    AttachStep *step = plan_step(op, op->next);
    const AttachStepKind *kind = step->kind;
    if (kind->concurrent) {
      op->run_end = run_end(op, op->next);
      run_together(task);
      return;
    }
    if (kind->needed && !kind->needed(step->item)) {
      step->state = ATTACH_STEP_SKIPPED;
      op->next++;
      continue;
    }
    step->state = ATTACH_STEP_RUNNING;
    if (!plan_step_ready(op, step, &error)) {
      hotplug_plan_step_done(task, error, FALSE);
      return;
    }
    kind->run(task, step);
    return;
  }
  op->plan_finished(task);
}

static void plan_undo(GTask *task);
static void failure_append(Op *op, const char *what);

void
hotplug_plan_step_done(GTask *task, GError *error, gboolean took_effect)
{
  hotplug_plan_step_over(task, hotplug_plan_running(task), error, took_effect);
}

void
hotplug_plan_step_over(GTask *task, AttachStep *step, GError *error, gboolean took_effect)
{
  Op *op = g_task_get_task_data(task);
  gboolean together = op->run_end != 0;

  g_assert(step->state == ATTACH_STEP_RUNNING);
  step->state = error == NULL || took_effect ? ATTACH_STEP_DONE : ATTACH_STEP_FAILED_CLEAN;
  if (error == NULL && step->kind->phase)
    hotplug_plan_phase_mark(op, step->kind->phase);
  if (error && op->failure == NULL) {
    g_message("%s: attach failed at step '%s' (%s)%s", step->item->hostdev->alias,
              step->kind->name, error->message,
              together && op->running > 1 ? "; the steps running with it finish first" : "");
    op->failure = error;
  } else if (error) {
    /* another step of the run failed first: the attach's error tells of both */
    g_message("%s: step '%s' failed too (%s)", step->item->hostdev->alias, step->kind->name,
              error->message);
    failure_append(op, error->message);
    g_error_free(error);
  }
  if (together) {
    op->running--;
    if (!op->launching)
      run_together(task);
    return;
  }
  if (op->failure) {
    op->undo_from = op->next + 1;
    undo_begin(task);
    return;
  }
  op->next++;
  hotplug_plan_run(task);
}

/* Every step below undo_from that took effect is undone, newest first. */
static void
undo_begin(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  guint count = 0;

  for (guint i = 0; i < op->undo_from; i++)
    count += plan_step(op, i)->state == ATTACH_STEP_DONE;
  g_message("attach failed: undoing %u step%s that took effect", count, count == 1 ? "" : "s");
  /* a command sent ahead for a step that will not run ends without effect */
  qmp_client_unstage(op->hotplug->qmp);
  plan_undo(task);
}

static void
plan_undo(GTask *task)
{
  Op *op = g_task_get_task_data(task);

  while (op->undo_from > 0) {
    AttachStep *step = plan_step(op, --op->undo_from);
    if (step->state == ATTACH_STEP_DONE && step->kind->undo && !step->item->handed_over) {
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

/* The steps of @step's concurrent run [@from, @end) that run at the same time as
 * the one at @index ("together") and those it waits for ("after"), by number from 1. */
static void
describe_run(const Op *op, guint from, guint end, guint index, JsonObject *entry)
{
  JsonArray *together = json_array_new();
  JsonArray *after = json_array_new();

  for (guint i = from; i < end; i++) {
    if (i == index)
      continue;
    if (!serialized_with(op, MIN(i, index), MAX(i, index)))
      json_array_add_int_element(together, i + 1);
    else if (i < index)
      json_array_add_int_element(after, i + 1);
  }
  if (json_array_get_length(together) > 0)
    json_object_set_array_member(entry, "together", together);
  else
    json_array_unref(together);
  if (json_array_get_length(after) > 0)
    json_object_set_array_member(entry, "after", after);
  else
    json_array_unref(after);
}

JsonNode *
hotplug_plan_describe(const Op *op)
{
  g_autoptr(JsonObject) reply = json_object_new();
  JsonArray *plan = json_array_new();
  JsonArray *commands = json_array_new();
  guint from = 0, end = 0;

  for (guint i = 0; op->plan && i < op->plan->len; i++) {
    const AttachStep *step = &g_array_index(op->plan, AttachStep, i);
    JsonObject *entry = json_object_new();
    if (i >= end) {
      from = i;
      end = step->kind->concurrent ? run_end(op, i) : i + 1;
    }
    g_autofree char *what = step->kind->describe(step->item, step);
    json_object_set_string_member(entry, "step", step->kind->name);
    json_object_set_string_member(entry, "alias", step->item->hostdev->alias);
    json_object_set_string_member(entry, "what", what);
    if (end - from > 1)
      describe_run(op, from, end, i, entry);
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
