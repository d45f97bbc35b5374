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
 *
 * Steps run one after the other, except a run of consecutive steps of a
 * kind marked concurrent (the VFIO bindings of a request's devices, whose
 * sysfs work happens in worker threads): those start together, each once
 * the steps of the run it must follow (serialize_key: the same IOMMU
 * group) are over, each journaled just before it starts; the step after
 * the run waits until every one of them is over.  When one fails, no more
 * of the run start, those running are waited for, and only then the undo
 * begins: nothing is undone while a thread still works on the host.
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _Op Op;
typedef struct _AttachItem AttachItem;
typedef struct _AttachStep AttachStep;

typedef enum {
  ATTACH_STEP_PENDING,       /* not started */
  ATTACH_STEP_RUNNING,
  ATTACH_STEP_SKIPPED,       /* its needed() said there was nothing to do */
  ATTACH_STEP_DONE,          /* over, and took effect (or may have) */
  ATTACH_STEP_FAILED_CLEAN,  /* failed without effect: nothing to undo */
} AttachStepState;

typedef struct {
  const char *name;          /* the journal's step, and the dry run's */
  const char *phase;         /* (nullable) the reply's timing the step counts to */
  gboolean journaled;        /* it changes the host or QEMU: journal it before it runs */
  /* it sends QEMU nothing: a QEMU command after it may be sent ahead (stage) */
  gboolean host_only;
  gboolean binding_in_flight; /* journal the binding as possibly done (a crash undoes it) */
  /* (nullable) at planning: whether the device needs the step at all */
  gboolean (*applies)(const AttachItem *item);
  /* (nullable) when its turn comes, read-only: FALSE skips it (nothing to do) */
  gboolean (*needed)(const AttachItem *item);
  /* (nullable) read-only, before the journal: gather what the journal must hold */
  gboolean (*prepare)(AttachItem *item, GError **error);
  /* consecutive steps of this kind run together (its run() only starts the
   * work, e.g. in a thread, and the work touches nothing another device's
   * step of the kind touches, serialize_key aside) */
  gboolean concurrent;
  /* (nullable) concurrent kinds: steps of one run with the same key run one
   * after the other, in plan order (the members of one IOMMU group) */
  gint (*serialize_key)(const AttachStep *step);
  /* the effect; ends with hotplug_plan_step_done(), or for a concurrent
   * kind with hotplug_plan_step_over() */
  void (*run)(GTask *task, AttachStep *step);
  /* (nullable) send the step's QEMU command ahead, held back until run() sends
   * it (qmp_client_stage()): QEMU reads it while the host_only steps before
   * it run.  Read-only: it changes nothing until run() */
  void (*stage)(const AttachStep *step);
  /* (nullable) take the effect back; ends with hotplug_plan_undo_next(), or
   * with hotplug_plan_undo_hand_over() when a later event finishes the
   * device's undo */
  void (*undo)(GTask *task, AttachStep *step);
  /* (transfer full) one line saying what the step does, for the dry run */
  char *(*describe)(const AttachItem *item, const AttachStep *step);
  /* (nullable) (transfer full) the QMP command the step sends, for the dry run */
  JsonObject *(*qmp)(const AttachItem *item, const AttachStep *step);
} AttachStepKind;

struct _AttachStep {
  const AttachStepKind *kind;
  AttachItem *item;          /* the device of the request it is for */
  guint command;             /* device_add steps: which of the device's commands */
  AttachStepState state;     /* the engine's */
};

/* hotplug_plan_add() - append a step of @kind for @item (when it applies). */
void hotplug_plan_add(Op *op, const AttachStepKind *kind, AttachItem *item, guint command);

/* Return: (transfer none): the step running now (not one of a concurrent run). */
AttachStep *hotplug_plan_running(GTask *task);
/* Return: (transfer none): the step being undone now. */
AttachStep *hotplug_plan_undoing(GTask *task);

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

/* hotplug_plan_step_over() - @step is over, as hotplug_plan_step_done()
 * says; the way a step of a concurrent kind ends (others may run with it). */
void hotplug_plan_step_over(GTask *task, AttachStep *step, GError *error,
                            gboolean took_effect);

/* hotplug_plan_undo_next() - an undo is over: undo the step before it. */
void hotplug_plan_undo_next(GTask *task);

/* hotplug_plan_undo_hand_over() - the rest of @item's undo happens later,
 * when QEMU reports the device gone (its release): its other steps are
 * skipped, the attach's error says @why, and the other devices' undo goes on. */
void hotplug_plan_undo_hand_over(GTask *task, AttachItem *item, const char *why);

/* hotplug_plan_add_failure() - an undo of @item failed too: say so in the
 * attach's error, and keep its journal entry so that a restart tries again. */
void hotplug_plan_add_failure(GTask *task, AttachItem *item, const char *what,
                              const GError *error);

/* Return: (transfer full): the dry run's reply: {"plan": [{"step", "alias",
 * "what", "qmp"?, "together"?, "after"?}...], "commands": [the QMP commands
 * in order]}; "together" lists the numbers (from 1) of the steps that run
 * at the same time as this one, "after" those of its run it waits for. */
JsonNode *hotplug_plan_describe(const Op *op);

/* Return: (transfer full): {"execute": @execute, "arguments": @arguments (when given)}. */
JsonObject *hotplug_qmp_command(const char *execute, JsonObject *arguments);

/* hotplug_plan_phase_mark() - the phase @name of the attach ends now: add
 * how long it took to the reply's timings. */
void hotplug_plan_phase_mark(Op *op, const char *name);

G_END_DECLS
