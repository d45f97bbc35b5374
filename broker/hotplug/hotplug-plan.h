/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-plan.h - an attach as a plan of steps, and the one engine that
 * runs it
 *
 * Once every read-only decision is made (alias, guest address, the QEMU
 * commands), an attach is a list of steps: the host's preparation (claim,
 * VFIO binding, VF settings, the locked-memory limit), QEMU's side (the USB
 * descriptor, zpci, device_add) and the verification.  The list is built
 * once from the device's type (HotplugTypeOps) and the request.  The
 * engine journals each step that changes something before it takes
 * effect, runs it, and on a failure undoes every step that took effect,
 * newest first, before the reply; a dry run prints the same list.
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _Op Op;
typedef struct _AttachStep AttachStep;

typedef struct {
  const char *name;          /* the journal's step, and the dry run's */
  const char *phase;         /* (nullable) the reply's timing the step counts to */
  gboolean journaled;        /* it changes the host or QEMU: journal it before it runs */
  gboolean binding_in_flight; /* journal the binding as possibly done (a crash undoes it) */
  /* (nullable) at planning: whether the request needs the step at all */
  gboolean (*applies)(const Op *op);
  /* (nullable) when its turn comes, read-only: FALSE skips it (nothing to do) */
  gboolean (*needed)(const Op *op);
  /* (nullable) read-only, before the journal: gather what the journal must hold */
  gboolean (*prepare)(Op *op, GError **error);
  /* the effect; ends with hotplug_plan_step_done() */
  void (*run)(GTask *task, AttachStep *step);
  /* (nullable) take the effect back; ends with hotplug_plan_undo_next(), or
   * with hotplug_plan_undo_hand_over() when a later event finishes the undo */
  void (*undo)(GTask *task, AttachStep *step);
  /* (transfer full) one line saying what the step does, for the dry run */
  char *(*describe)(const Op *op, const AttachStep *step);
  /* (nullable) (transfer full) the QMP command the step sends, for the dry run */
  JsonObject *(*qmp)(const Op *op, const AttachStep *step);
} AttachStepKind;

struct _AttachStep {
  const AttachStepKind *kind;
  guint command;             /* device_add steps: which of the Op's commands */
};

/* hotplug_plan_add() - append a step of @kind (when it applies to @op). */
void hotplug_plan_add(Op *op, const AttachStepKind *kind, guint command);

/* hotplug_plan_run() - run the steps not run yet; after the last one, the Op's
 * plan_finished continues. */
void hotplug_plan_run(GTask *task);

/**
 * hotplug_plan_step_done() - the running step is over
 * @error: (transfer full) (nullable): it failed: the steps that took
 *   effect are undone, newest first, and the attach fails with @error
 * @took_effect: on failure, whether the step may have taken effect anyway
 *   (a timed-out QEMU command), so that it is undone too
 */
void hotplug_plan_step_done(GTask *task, GError *error, gboolean took_effect);

/* hotplug_plan_undo_next() - an undo is over: undo the step before it. */
void hotplug_plan_undo_next(GTask *task);

/* hotplug_plan_undo_hand_over() - the rest of the undo happens later, when
 * QEMU reports the device gone: fail the attach now, saying @why. */
void hotplug_plan_undo_hand_over(GTask *task, const char *why);

/* hotplug_plan_add_failure() - an undo failed too: say so in the attach's
 * error, and keep the journal entry so that a restart tries again. */
void hotplug_plan_add_failure(GTask *task, const char *what, const GError *error);

/* Return: (transfer full): the dry run's reply: {"plan": [{"step", "what",
 * "qmp"?}...], "commands": [the QMP commands in order]}. */
JsonNode *hotplug_plan_describe(const Op *op);

/* Return: (transfer full): {"execute": @execute, "arguments": @arguments (when given)}. */
JsonObject *hotplug_qmp_command(const char *execute, JsonObject *arguments);

/* hotplug_plan_phase_mark() - the phase @name of the attach ends now: add
 * how long it took to the reply's timings. */
void hotplug_plan_phase_mark(Op *op, const char *name);

G_END_DECLS
