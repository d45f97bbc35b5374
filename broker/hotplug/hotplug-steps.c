/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug-steps.c - the steps an attach is made of, each with its undo and
 * the line a dry run prints for it (hotplug-plan.h runs them)
 *
 * The host's preparation (claim, VFIO binding, VF settings) is one record,
 * HostPrep, that host_prep_release_async() undoes newest first: the claim's
 * undo gives back everything the later host steps did, so those have none
 * of their own.
 */
#include "hotplug-private.h"
#include "host-pci.h"
#include "memlock.h"
#include "usb-fd.h"

#include <string.h>
#include <unistd.h>

static Op *
task_op(GTask *task)
{
  return g_task_get_task_data(task);
}

static void
undo_next(gpointer task)
{
  hotplug_plan_undo_next(task);
}

/* ---- claim: the device (and its IOMMU group) is this VM's, host-wide ------ */

static gboolean
takes_from_host(const Op *op)
{
  return op->hostdev->type != HOSTDEV_TYPE_USB || op->usb != NULL;
}

static void
claim_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  Hotplug *hotplug = op->hotplug;
  GError *error = NULL;

  /* a refused claim may follow ones that were granted (the device's, then its group's):
   * the undo gives back what @prep holds */
  if (!host_prep_claim(op->prep, hotplug->runtime_dir, hotplug->vm,
                       &(ClaimOwner){ getpid(), hotplug->qemu.pid }, op->hostdev, op->usb,
                       &error)) {
    hotplug_plan_step_done(task, error, TRUE);
    return;
  }
  if (op->prep->vfio) {
    /* the record of how the device was is taken only now that it is ours: before the
     * claim another VM's release could still have been changing it */
    g_clear_pointer(&op->prep->vfio, vfio_record_unref);
    if (!host_prep_vfio_begin(op->prep, op->hostdev, &error)) {
      hotplug_plan_step_done(task, error, TRUE);
      return;
    }
  }
  hotplug_plan_step_done(task, NULL, FALSE);
}

static void
on_host_given_back(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  g_autoptr(GError) error = NULL;

  /* the journal keeps the entry then, so a restart tries again */
  if (!host_prep_release_finish(result, &error))
    hotplug_plan_add_failure(task, "giving the host device back", error);
  hotplug_plan_undo_next(task);
}

/* Everything the host steps did goes back, newest first, from their one record. */
static void
claim_undo(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  hotplug_keep_shared_claims(op->hotplug, op->prep);
  host_prep_release_async(op->prep, op->hotplug->runtime_dir, op->hotplug->vm, NULL,
                          on_host_given_back, task);
}

static char *
claim_describe(const Op *op, const AttachStep *step)
{
  g_autofree char *what = hostdev_describe_source(op->hostdev);
  g_autofree char *group = op->prep->vfio
      ? g_strdup_printf(" and its IOMMU group %d", op->prep->vfio->group) : g_strdup("");
  return g_strdup_printf("claim %s%s for VM '%s' host-wide (refused if another VM holds it)",
                         what, group, op->hotplug->vm);
}

const AttachStepKind hotplug_step_claim = {
  .name = "claim", .phase = "claim", .journaled = TRUE,
  .applies = takes_from_host, .run = claim_run, .undo = claim_undo,
  .describe = claim_describe,
};

/* ---- vfio-bind: the PCI function on vfio-pci, /dev/vfio/N for QEMU -------- */

static gboolean
has_vfio_record(const Op *op)
{
  return op->prep->vfio != NULL;
}

static const VfioRecord *
group_sibling(const Op *op)
{
  VmDevice *sibling = vm_devices_find_group(op->hotplug->devices, op->prep->vfio->group, NULL);
  return sibling ? sibling->prep->vfio : NULL;
}

/*
 * The binding is planned first (the group's companions and the node's
 * owner as they are now); the record is then journaled as if binding had
 * happened, in case we die: it holds everything the binding will do.
 */
static gboolean
vfio_bind_prepare(Op *op, GError **error)
{
  return host_prep_vfio_plan(op->prep, op->hotplug->take_whole_group, group_sibling(op), error);
}

static void
on_vfio_bound(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GError *error = NULL;
  /* a failed binding undid itself; the claim's undo gives the rest back */
  hotplug_plan_step_done(user_data, host_prep_vfio_bind_finish(result, &error) ? NULL : error,
                         FALSE);
}

static void
vfio_bind_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  Hotplug *hotplug = op->hotplug;
  host_prep_vfio_bind_async(op->prep, hotplug->take_whole_group, hotplug->qemu_uid,
                            hotplug->qemu_gid, group_sibling(op), on_vfio_bound, task);
}

static char *
vfio_bind_describe(const Op *op, const AttachStep *step)
{
  const VfioRecord *record = op->prep->vfio;
  g_autofree char *name = pci_address_format(&record->addr);
  g_autofree char *owner = op->hotplug->qemu_uid == (uid_t)-1
      ? g_strdup("") : g_strdup_printf("; /dev/vfio/%d to uid %u", record->group,
                                       (unsigned)op->hotplug->qemu_uid);
  if (!op->hostdev->managed)
    return g_strdup_printf("use %s as it is, on vfio-pci (managed='no')%s", name, owner);
  return g_strdup_printf("unbind %s from %s and bind it to vfio-pci%s%s", name,
                         record->original_driver ? record->original_driver : "no driver",
                         op->hotplug->take_whole_group ? " (with the rest of its IOMMU group)"
                                                       : "",
                         owner);
}

const AttachStepKind hotplug_step_vfio_bind = {
  .name = "vfio-bind", .phase = "bind", .journaled = TRUE, .binding_in_flight = TRUE,
  .applies = has_vfio_record, .prepare = vfio_bind_prepare, .run = vfio_bind_run,
  .describe = vfio_bind_describe,
};

/* ---- vf-program: <interface type='hostdev'>'s MAC/VLAN on the VF ----------- */

static gboolean
wants_vf_settings(const Op *op)
{
  return op->hostdev->is_interface && (op->hostdev->net.has_mac || op->hostdev->net.has_vlan);
}

/* the VF's MAC/VLAN as they were are in the journal before they change */
static gboolean
vf_program_prepare(Op *op, GError **error)
{
  return host_prep_vf_save(op->prep, op->hostdev, error);
}

static void
vf_program_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  GError *error = NULL;
  hotplug_plan_step_done(task, host_prep_vf_apply(op->prep, op->hostdev, &error) ? NULL : error,
                         FALSE);
}

static char *
vf_program_describe(const Op *op, const AttachStep *step)
{
  GString *what = g_string_new("set the VF's");
  if (op->hostdev->net.has_mac) {
    g_autofree char *mac = hostdev_format_mac(op->hostdev);
    g_string_append_printf(what, " MAC %s", mac);
  }
  if (op->hostdev->net.has_vlan)
    g_string_append_printf(what, "%s VLAN %u", op->hostdev->net.has_mac ? "," : "",
                           op->hostdev->net.vlan_tag);
  g_string_append(what, " on its physical function (the settings before are journaled first)");
  return g_string_free(what, FALSE);
}

const AttachStepKind hotplug_step_vf_program = {
  .name = "vf-program", .phase = "vf", .journaled = TRUE,
  .applies = wants_vf_settings, .prepare = vf_program_prepare, .run = vf_program_run,
  .describe = vf_program_describe,
};

/* ---- guest-memory, memlock: QEMU may pin all guest RAM for VFIO ------------ */

/* Return: whether process @pid may lock memory without limit (CAP_IPC_LOCK). */
static gboolean
process_has_ipc_lock(pid_t pid)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
  g_autofree char *status = NULL;
  if (!g_file_get_contents(path, &status, NULL, NULL))
    return FALSE;
  const char *line = strstr(status, "\nCapEff:");
  guint64 caps = line ? g_ascii_strtoull(line + strlen("\nCapEff:"), NULL, 16) : 0;
  return (caps >> 14) & 1;   /* CAP_IPC_LOCK */
}

/* Count the VFIO devices QEMU will hold, this one included. */
static guint
vfio_device_count(Hotplug *hotplug)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  guint count = 1;
  for (guint i = 0; i < all->len; i++) {
    VmDevice *device = g_ptr_array_index(all, i);
    count += hotplug_type_ops(device->hostdev->type)->pins_guest_memory;
  }
  return count;
}

static void
on_memory_size(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = task_op(task);
  Hotplug *hotplug = op->hotplug;
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  pid_t qemu = qmp_client_get_peer_pid(hotplug->qmp);
  guint64 soft = 0, hard = 0;

  if (value == NULL || !JSON_NODE_HOLDS_OBJECT(value)) {
    GError *failure = g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "cannot learn the guest's memory size "
                                  "(query-memory-size-summary): %s",
                                  error ? error->message : "no answer");
    g_clear_error(&error);
    hotplug_plan_step_done(task, failure, FALSE);
    return;
  }
  JsonObject *sizes = json_node_get_object(value);
  guint64 ram = (guint64)json_object_get_int_member_with_default(sizes, "base-memory", 0) +
                (guint64)json_object_get_int_member_with_default(sizes, "plugged-memory", 0);
  /* with a vIOMMU each VFIO device may pin all guest RAM on its own */
  gboolean viommu = op->topology &&
                    memlock_guest_has_viommu((const char *const *)op->topology->types);
  guint64 needed = memlock_needed_for_guest(ram, vfio_device_count(hotplug), viommu);
  gboolean enough = qemu <= 0 || (memlock_get(qemu, &soft, &hard, NULL) && soft >= needed) ||
                    process_has_ipc_lock(qemu);

  op->memlock_needed = enough ? 0 : needed;
  if (!enough && !hotplug->memlock_saved) {
    hotplug->memlock_soft = soft;
    hotplug->memlock_hard = hard;
  }
  /* every VFIO device's record carries the original, so whichever leaves last restores it */
  if (!enough || hotplug->memlock_saved) {
    op->prep->memlock_saved = TRUE;
    op->prep->memlock_soft = hotplug->memlock_soft;
    op->prep->memlock_hard = hotplug->memlock_hard;
  }
  hotplug_plan_step_done(task, NULL, FALSE);
}

static void
guest_memory_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  if (!op->hotplug->has_memory_size_summary) {
    hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                             "this QEMU has no query-memory-size-summary: "
                                             "hostdevd cannot size the locked-memory limit "
                                             "VFIO needs; use QEMU 2.11 or newer"),
                           FALSE);
    return;
  }
  qmp_client_execute_async(op->hotplug->qmp, "query-memory-size-summary", NULL, -1, 0, NULL,
                           on_memory_size, task);
}

static char *
guest_memory_describe(const Op *op, const AttachStep *step)
{
  return g_strdup("read the guest's RAM size (QEMU may pin all of it for VFIO)");
}

const AttachStepKind hotplug_step_guest_memory = {
  .name = "guest-memory", .phase = "memlock",
  .run = guest_memory_run, .describe = guest_memory_describe,
};

static gboolean
memlock_too_low(const Op *op)
{
  return op->memlock_needed > 0;
}

static void
memlock_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  pid_t qemu = qmp_client_get_peer_pid(op->hotplug->qmp);
  GError *error = NULL;

  if (!memlock_raise(qemu, op->memlock_needed, &error)) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  op->hotplug->memlock_saved = TRUE;
  g_autofree char *size = memlock_format_bytes(op->memlock_needed);
  g_message("raised QEMU's (pid %d) locked-memory limit to %s for VFIO", (int)qemu, size);
  hotplug_plan_step_done(task, NULL, FALSE);
}

static void
memlock_undo(GTask *task, AttachStep *step)
{
  hotplug_restore_memlock_if_unused(task_op(task)->hotplug);
  hotplug_plan_undo_next(task);
}

static char *
memlock_describe(const Op *op, const AttachStep *step)
{
  return g_strdup("raise QEMU's locked-memory limit (RLIMIT_MEMLOCK) to cover the guest's RAM, "
                  "when it does not already (the limit before is journaled first)");
}

const AttachStepKind hotplug_step_memlock = {
  .name = "memlock", .phase = "memlock", .journaled = TRUE,
  .needed = memlock_too_low, .run = memlock_run, .undo = memlock_undo,
  .describe = memlock_describe,
};

/* ---- pass-fd: QEMU gets the USB device as an open descriptor --------------- */

static gboolean
usb_device_found(const Op *op)
{
  return op->usb != NULL;
}

static JsonObject *
add_fd_arguments(const char *alias)
{
  JsonObject *args = json_object_new();
  g_autofree char *opaque = g_strdup_printf("hostdevd:%s", alias);
  json_object_set_string_member(args, "opaque", opaque);
  return args;
}

gboolean
hotplug_replan_with_fdset(Op *op, gint fdset_id, GError **error)
{
  g_free(op->usb_hostdevice);
  op->usb_hostdevice = g_strdup_printf("/dev/fdset/%d", fdset_id);
  op->context.usb_hostdevice = op->usb_hostdevice;
  g_clear_pointer(&op->commands, g_ptr_array_unref);
  op->commands = qemu_device_plan(op->hostdev, &op->context, error);
  return op->commands != NULL;
}

static void
on_fd_added(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = task_op(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (value == NULL || !JSON_NODE_HOLDS_OBJECT(value)) {
    GError *failure = g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "QEMU did not take the USB device's descriptor (add-fd): %s",
                                  error ? error->message : "no fdset in the reply");
    g_clear_error(&error);
    hotplug_plan_step_done(task, failure, FALSE);
    return;
  }
  op->prep->fdset_id = (gint)json_object_get_int_member_with_default(json_node_get_object(value),
                                                                     "fdset-id", -1);
  hotplug_plan_step_done(task, hotplug_replan_with_fdset(op, op->prep->fdset_id, &error)
                                   ? NULL : error, TRUE);
}

/* The device node is opened here, so QEMU needs no access to /dev/bus/usb at all. */
static void
pass_fd_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  GError *error = NULL;
  int fd = usb_fd_open(op->usb->bus, op->usb->device, op->usb->sysfs_name, &error);

  if (fd < 0) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  g_autoptr(JsonObject) args = add_fd_arguments(op->hostdev->alias);
  qmp_client_execute_async(op->hotplug->qmp, "add-fd", args, fd, 0, NULL, on_fd_added, task);
  close(fd);   /* the QMP client passes its own duplicate */
}

static void
pass_fd_undo(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  hotplug_remove_fdset(op->hotplug, op->prep, undo_next, task);
}

static char *
pass_fd_describe(const Op *op, const AttachStep *step)
{
  return g_strdup_printf("open /dev/bus/usb/%03u/%03u and hand the descriptor to QEMU",
                         op->usb->bus, op->usb->device);
}

static JsonObject *
pass_fd_qmp(const Op *op, const AttachStep *step)
{
  g_autoptr(JsonObject) args = add_fd_arguments(op->hostdev->alias);
  return hotplug_qmp_command("add-fd", args);
}

const AttachStepKind hotplug_step_pass_fd = {
  .name = "pass-fd", .phase = "pass-fd", .journaled = TRUE,
  .applies = usb_device_found, .run = pass_fd_run, .undo = pass_fd_undo,
  .describe = pass_fd_describe, .qmp = pass_fd_qmp,
};

/* ---- device-add: one device_add (a zpci device, then its target) ---------- */

static JsonObject *
step_command(const Op *op, const AttachStep *step)
{
  return g_ptr_array_index(op->commands, step->command);
}

static const char *
command_member(const Op *op, const AttachStep *step, const char *name)
{
  return json_object_get_string_member_with_default(step_command(op, step), name, NULL);
}

static void device_add_run(GTask *task, AttachStep *step);

/* Our alias guess clashed with a device hostdevd did not add: learn QEMU's ids once. */
static void
on_ids_refreshed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = task_op(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (value == NULL) {
    GError *failure = g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                  "cannot list QEMU's devices: %s", error->message);
    g_error_free(error);
    hotplug_plan_step_done(task, failure, FALSE);
    return;
  }
  g_auto(GStrv) ids = hotplug_peripheral_ids(value);
  if (!hotplug_rename_device(op, (const char *const *)ids, &error)) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  op->journaled_step = NULL;   /* the record goes under the new alias */
  hotplug_plan_run(task);
}

static void
on_device_added(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = task_op(task);
  const AttachStep *step = &g_array_index(op->plan, AttachStep, op->next);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (error == NULL) {
    hotplug_plan_step_done(task, NULL, FALSE);
    return;
  }
  /* the query that went out behind this device_add answers nothing useful now */
  op->usb_query_generation++;
  if (step->command == 0 && !op->alias_given && !op->alias_retried &&
      g_str_has_prefix(error->message, "Duplicate device ID")) {
    op->alias_retried = TRUE;
    hotplug_journal_forget(op->hotplug, op->hostdev->alias);
    hotplug_list_peripherals(op->hotplug, on_ids_refreshed, task);
    return;
  }
  g_autofree char *what = hostdev_describe_source(op->hostdev);
  /* a timed-out device_add may still complete: it is undone as if it had */
  hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, hotplug_qemu_failure_code(error),
                                           "QEMU could not add %s for %s: %s",
                                           command_member(op, step, "driver"), what,
                                           error->message),
                         g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT));
}

static void
device_add_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  qmp_client_execute_async(op->hotplug->qmp, "device_add", step_command(op, step), -1,
                           HOTPLUG_DEVICE_ADD_TIMEOUT_MS, NULL, on_device_added, task);
  if (op->ops->after_last_add_sent && step->command + 1 == op->commands->len)
    op->ops->after_last_add_sent(task);
}

/*
 * A USB device leaves QEMU at once.  A PCI device QEMU accepted needs the
 * guest to let go: it stays listed as detaching until QEMU reports it
 * gone, and that release gives the host back (with the zpci companions).
 * A zpci device whose target never arrived stays in QEMU (QEMU 7.2
 * crashes removing one); the next attach reuses it.
 */
static void
device_add_undo(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  Hotplug *hotplug = op->hotplug;
  const char *id = command_member(op, step, "id");
  gboolean target = step->command + 1 == op->commands->len;

  if (!target && g_strcmp0(command_member(op, step, "driver"), "zpci") == 0) {
    g_message("%s stays in QEMU without its target %s: QEMU 7.2 crashes removing a zpci "
              "device whose target never existed; the next attach reuses it", id,
              command_member(op, step, "target"));
    hotplug_plan_undo_next(task);
    return;
  }
  hotplug_remove_from_qemu(hotplug, id);
  if (!target || !op->ops->unplug_needs_guest) {
    hotplug_plan_undo_next(task);
    return;
  }
  VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&op->hostdev),
                                    g_steal_pointer(&op->prep));
  hotplug_device_enter_anyway(hotplug, device, VM_DEVICE_DETACHING);
  g_autofree char *why = g_strdup_printf("QEMU was asked to remove %s again, and it is listed "
                                         "as detaching until the guest lets it go",
                                         device->hostdev->alias);
  hotplug_plan_undo_hand_over(task, why);
}

static char *
device_add_describe(const Op *op, const AttachStep *step)
{
  return g_strdup_printf("add %s '%s' to the guest", command_member(op, step, "driver"),
                         command_member(op, step, "id"));
}

static JsonObject *
device_add_qmp(const Op *op, const AttachStep *step)
{
  return hotplug_qmp_command("device_add", step_command(op, step));
}

const AttachStepKind hotplug_step_device_add = {
  .name = "device-add", .phase = "device_add", .journaled = TRUE,
  .run = device_add_run, .undo = device_add_undo,
  .describe = device_add_describe, .qmp = device_add_qmp,
};

/* A zpci device an earlier attempt left behind is in QEMU already: its target joins it. */
static void
zpci_reuse_run(GTask *task, AttachStep *step)
{
  hotplug_plan_step_done(task, NULL, FALSE);
}

static char *
zpci_reuse_describe(const Op *op, const AttachStep *step)
{
  return g_strdup_printf("reuse zpci '%s' (uid %u fid %u), left in QEMU by an earlier attempt",
                         command_member(op, step, "id"), op->hostdev->zpci.uid,
                         op->hostdev->zpci.fid);
}

const AttachStepKind hotplug_step_zpci_reuse = {
  .name = "zpci-reuse", .run = zpci_reuse_run, .describe = zpci_reuse_describe,
};

/* ---- verify: QEMU shows the device -------------------------------------- */

static void
on_listed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = task_op(task);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  g_auto(GStrv) ids = value ? hotplug_peripheral_ids(value) : NULL;

  if (ids == NULL || !g_strv_contains((const char *const *)ids, op->hostdev->alias)) {
    hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                             "QEMU accepted %s but does not list it "
                                             "afterwards%s%s", op->hostdev->alias,
                                             error ? ": " : "", error ? error->message : ""),
                           FALSE);
    return;
  }
  hotplug_plan_step_done(task, NULL, FALSE);
}

static void
verify_listed_run(GTask *task, AttachStep *step)
{
  hotplug_list_peripherals(task_op(task)->hotplug, on_listed, task);
}

static char *
verify_listed_describe(const Op *op, const AttachStep *step)
{
  return g_strdup_printf("confirm QEMU lists '%s' among its devices", op->hostdev->alias);
}

const AttachStepKind hotplug_step_verify_listed = {
  .name = "verify", .phase = "verify",
  .run = verify_listed_run, .describe = verify_listed_describe,
};

/* x-query-usb both confirms the device is on a USB bus and tells its guest address. */
static void
usb_confirm(GTask *task)
{
  Op *op = task_op(task);
  JsonNode *value = op->usb_query;
  const char *text = value && JSON_NODE_HOLDS_OBJECT(value)
      ? json_object_get_string_member_with_default(json_node_get_object(value),
                                                   "human-readable-text", "")
      : NULL;
  guint bus;
  g_autofree char *port = NULL;

  if (text == NULL) {
    hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                             "cannot confirm %s in QEMU: x-query-usb gave no "
                                             "answer", op->hostdev->alias), FALSE);
    return;
  }
  if (!guest_usb_address_from_query(text, op->hostdev->alias, &bus, &port)) {
    hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                             "QEMU accepted %s but does not show it on any "
                                             "USB bus", op->hostdev->alias), FALSE);
    return;
  }
  if (!op->hostdev->usb_guest.present) {
    op->hostdev->usb_guest.present = TRUE;
    op->hostdev->usb_guest.bus = bus;
    op->hostdev->usb_guest.port = g_steal_pointer(&port);
  }
  hotplug_plan_step_done(task, NULL, FALSE);
}

typedef struct {
  GTask *task;
  guint generation;
} UsbQuery;

static void
on_usb_queried(GObject *source, GAsyncResult *result, gpointer user_data)
{
  UsbQuery *query = user_data;
  Op *op = task_op(query->task);
  g_autoptr(GError) error = NULL;
  JsonNode *value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (query->generation == op->usb_query_generation) {
    op->usb_query = value;
    op->usb_query_done = TRUE;
    if (op->usb_added)
      usb_confirm(query->task);
  } else if (value) {
    json_node_unref(value);
  }
  g_object_unref(query->task);
  g_free(query);
}

/*
 * QEMU answers commands in order, so the query sent right behind the USB
 * device's device_add sees the device, without a second round trip.
 */
void
hotplug_query_usb_behind_add(GTask *task)
{
  Op *op = task_op(task);
  if (!op->hotplug->has_x_query_usb)
    return;
  UsbQuery *query = g_new0(UsbQuery, 1);
  query->task = g_object_ref(task);
  query->generation = ++op->usb_query_generation;
  op->usb_query_done = FALSE;
  g_clear_pointer(&op->usb_query, json_node_unref);
  qmp_client_execute_async(op->hotplug->qmp, "x-query-usb", NULL, -1, 0, NULL,
                           on_usb_queried, query);
}

/* The x-query-usb sent behind device_add confirms the device once both answered. */
static void
verify_usb_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  if (!op->hotplug->has_x_query_usb) {
    verify_listed_run(task, step);
    return;
  }
  op->usb_added = TRUE;
  if (op->usb_query_done)
    usb_confirm(task);
}

static char *
verify_usb_describe(const Op *op, const AttachStep *step)
{
  if (!op->hotplug->has_x_query_usb)
    return verify_listed_describe(op, step);
  return g_strdup_printf("confirm '%s' is on a USB bus and read its guest port (x-query-usb, "
                         "sent right behind device_add)", op->hostdev->alias);
}

const AttachStepKind hotplug_step_verify_usb = {
  .name = "verify", .phase = "verify",
  .run = verify_usb_run, .describe = verify_usb_describe,
};
