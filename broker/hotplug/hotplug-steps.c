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
takes_from_host(const AttachItem *item)
{
  return item->hostdev->type != HOSTDEV_TYPE_USB || item->usb != NULL;
}

/* Return: (nullable): the record of a device of this VM in @item's IOMMU group. */
static const VfioRecord *
group_sibling(const AttachItem *item)
{
  VmDevice *sibling = vm_devices_find_group(item->hotplug->devices, item->prep->vfio->group, NULL);
  return sibling ? sibling->prep->vfio : NULL;
}

/* Return: (nullable): the record of the device that gave @item's IOMMU group
 * node to QEMU before @item's binding: the request's device of the group
 * bound just before it, else a device of this VM in the group.  Its record
 * says what the node was before either (a crash between the two bindings
 * undoes both, in either order, to that). */
static const VfioRecord *
bind_sibling(const AttachItem *item)
{
  if (item->bound_before != NULL && item->bound_before->prep->vfio != NULL)
    return item->bound_before->prep->vfio;
  return group_sibling(item);
}

static void
claim_run(GTask *task, AttachStep *step)
{
  AttachItem *item = step->item;
  Hotplug *hotplug = item->hotplug;
  GError *error = NULL;

  /* a refused claim may follow ones that were granted (the device's, then its group's):
   * the undo gives back what @prep holds */
  ClaimOwner owner = hotplug_claim_owner(hotplug);
  /* the record of how the device was is taken only under the claim: before it
   * another VM's release could still have been changing the device */
  const VfioRecord *sibling = item->prep->vfio ? group_sibling(item) : NULL;

  if (!host_prep_claim(item->prep, hotplug->runtime_dir, hotplug->vm, &owner, item->hostdev,
                       item->usb, sibling, &error)) {
    hotplug_plan_step_done(task, error, TRUE);
    return;
  }
  if (item->prep->vfio) {
    if (!host_prep_vfio_begin(item->prep, item->hostdev, &error)) {
      hotplug_plan_step_done(task, error, TRUE);
      return;
    }
    item->prep->vfio->joining = item->joining ? g_array_ref(item->joining) : NULL;
  }
  /* What a VM that is gone left to give back came with its claims: journaled
   * now, not with the next step, so that the record names it as soon as it
   * can (a crash before leaves claims no record names: see below). */
  if (host_prep_inherited(item->prep)) {
    /* (tests: a crash here leaves claims no record names, which the restart
     * gives back from the origin they carry: release_unbacked_claims()) */
    state_journal_crash_point("attaching:claims-taken");
    if (!hotplug_journal_device(hotplug, item->hostdev, STATE_ATTACHING, HOTPLUG_STEP_CLAIMED,
                                item->commands, item->prep, FALSE, &error)) {
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

  if (!host_prep_release_finish(result, &error)) {
    AttachItem *item = hotplug_plan_undoing(task)->item;
    g_autofree char *alias = g_strdup(item->hostdev->alias);
    /* the device stays the VM's, listed and journaled as a failed release, which
     * a detach of it or a restart tries again; its record is kept */
    hotplug_plan_add_failure(task, item, "giving the host device back", error);
    hotplug_keep_failed_release(item->hotplug, g_steal_pointer(&item->hostdev),
                                g_steal_pointer(&item->prep), error);
    g_autofree char *why = g_strdup_printf("%s is listed as detaching until it is back: "
                                           "`hostdevctl detach-device-alias VM %s` tries again",
                                           alias, alias);
    hotplug_plan_undo_hand_over(task, item, why);
    return;
  }
  hotplug_plan_undo_next(task);
}

/* Everything the host steps did goes back, newest first, from their one record. */
static void
claim_undo(GTask *task, AttachStep *step)
{
  AttachItem *item = step->item;
  hotplug_keep_shared_claims(item->hotplug, item->prep);
  host_prep_release_async(item->prep, item->hotplug->runtime_dir, item->hotplug->vm, NULL,
                          on_host_given_back, task);
}

static char *
claim_describe(const AttachItem *item, const AttachStep *step)
{
  g_autofree char *what = hostdev_describe_source(item->hostdev);
  g_autofree char *group = item->prep->vfio
      ? g_strdup_printf(" and its IOMMU group %d", item->prep->vfio->group) : g_strdup("");
  return g_strdup_printf("claim %s%s for VM '%s' host-wide (refused if another VM holds it)",
                         what, group, item->hotplug->vm);
}

const AttachStepKind hotplug_step_claim = {
  .name = "claim", .phase = "claim", .journaled = TRUE,
  .host_only = TRUE,
  .applies = takes_from_host, .run = claim_run, .undo = claim_undo,
  .describe = claim_describe,
};

/* ---- vfio-bind: the PCI function on vfio-pci, /dev/vfio/N for QEMU -------- */

static gboolean
has_vfio_record(const AttachItem *item)
{
  return item->prep->vfio != NULL;
}

/*
 * The binding is planned first (the group's companions and the node's
 * owner as they are now); the record is then journaled as if binding had
 * happened, in case we die: it holds everything the binding will do.
 */
static gboolean
vfio_bind_prepare(AttachItem *item, GError **error)
{
  return host_prep_vfio_plan(item->prep, item->hotplug->take_whole_group, bind_sibling(item),
                             error) &&
         hotplug_policy_allows_companions(item, item->prep->vfio, error);
}

/* A binding under way: the step it is, of which attach. */
typedef struct {
  GTask *task;
  AttachStep *step;
} BindCall;

static void
on_vfio_bound(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree BindCall *call = user_data;
  GError *error = NULL;
  /* a failed binding undid itself; the claim's undo gives the rest back */
  hotplug_plan_step_over(call->task, call->step,
                         host_prep_vfio_bind_finish(result, &error) ? NULL : error, FALSE);
}

/* The sysfs work runs in a worker thread on the step's own VfioRecord: the
 * bindings of devices in other IOMMU groups run beside it (the kernel
 * serializes each device's driver changes), those of its group wait. */
static void
vfio_bind_run(GTask *task, AttachStep *step)
{
  AttachItem *item = step->item;
  Hotplug *hotplug = item->hotplug;
  BindCall *call = g_new(BindCall, 1);
  *call = (BindCall){ .task = task, .step = step };
  host_prep_vfio_bind_async(item->prep, hotplug->take_whole_group, hotplug->qemu_uid,
                            hotplug->qemu_gid, bind_sibling(item), on_vfio_bound, call);
}

/* One IOMMU group's members (and the companions a whole-group takeover
 * binds) are bound one after the other: they share /dev/vfio/N and the
 * group's viability. */
static gint
vfio_bind_group(const AttachStep *step)
{
  return step->item->prep->vfio->group;
}

static char *
vfio_bind_describe(const AttachItem *item, const AttachStep *step)
{
  const VfioRecord *record = item->prep->vfio;
  g_autofree char *name = pci_address_format(&record->addr);
  g_autofree char *owner = item->hotplug->qemu_uid == (uid_t)-1
      ? g_strdup("") : g_strdup_printf("; /dev/vfio/%d to uid %u", record->group,
                                       (unsigned)item->hotplug->qemu_uid);
  if (!item->hostdev->managed)
    return g_strdup_printf("use %s as it is, on vfio-pci (managed='no')%s", name, owner);
  return g_strdup_printf("unbind %s from %s and bind it to vfio-pci%s%s", name,
                         record->original_driver ? record->original_driver : "no driver",
                         item->hotplug->take_whole_group ? " (with the rest of its IOMMU group)"
                                                       : "",
                         owner);
}

const AttachStepKind hotplug_step_vfio_bind = {
  .name = "vfio-bind", .phase = "bind", .journaled = TRUE, .binding_in_flight = TRUE,
  .host_only = TRUE,
  .concurrent = TRUE, .serialize_key = vfio_bind_group,
  .applies = has_vfio_record, .prepare = vfio_bind_prepare, .run = vfio_bind_run,
  .describe = vfio_bind_describe,
};

/* ---- vf-program: <interface type='hostdev'>'s MAC/VLAN on the VF ----------- */

static gboolean
wants_vf_settings(const AttachItem *item)
{
  return item->hostdev->is_interface && (item->hostdev->net.has_mac || item->hostdev->net.has_vlan);
}

/* the VF's MAC/VLAN as they were are in the journal before they change */
static gboolean
vf_program_prepare(AttachItem *item, GError **error)
{
  return host_prep_vf_save(item->prep, item->hostdev, error);
}

static void
vf_program_run(GTask *task, AttachStep *step)
{
  AttachItem *item = step->item;
  GError *error = NULL;
  hotplug_plan_step_done(task, host_prep_vf_apply(item->prep, item->hostdev, &error) ? NULL : error,
                         FALSE);
}

static char *
vf_program_describe(const AttachItem *item, const AttachStep *step)
{
  GString *what = g_string_new("set the VF's");
  if (item->hostdev->net.has_mac) {
    g_autofree char *mac = hostdev_format_mac(item->hostdev);
    g_string_append_printf(what, " MAC %s", mac);
  }
  if (item->hostdev->net.has_vlan)
    g_string_append_printf(what, "%s VLAN %u", item->hostdev->net.has_mac ? "," : "",
                           item->hostdev->net.vlan_tag);
  g_string_append(what, " on its physical function (the settings before are journaled first)");
  return g_string_free(what, FALSE);
}

const AttachStepKind hotplug_step_vf_program = {
  .name = "vf-program", .phase = "vf", .journaled = TRUE,
  .host_only = TRUE,
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

/* Count the VFIO devices QEMU will hold: the VM's, and every one of this request. */
static guint
vfio_device_count(const Op *op)
{
  GPtrArray *all = vm_devices_get_all(op->hotplug->devices);
  guint count = 0;
  for (guint i = 0; i < all->len; i++) {
    VmDevice *device = g_ptr_array_index(all, i);
    count += hotplug_type_ops(device->hostdev->type)->pins_guest_memory;
  }
  for (guint i = 0; i < op->items->len; i++)
    count += ((AttachItem *)g_ptr_array_index(op->items, i))->ops->pins_guest_memory;
  return count;
}

/* Read what sizing the limit needs of the host and of QEMU's process, once. */
static void
read_memlock_facts(Op *op)
{
  if (op->memlock_facts_read)
    return;
  pid_t qemu = qmp_client_get_peer_pid(op->hotplug->qmp);
  op->memlock_facts_read = TRUE;
  op->host_ram = memlock_host_ram_bytes(&op->host_ram_error);
  op->qemu_ipc_lock = qemu > 0 && process_has_ipc_lock(qemu);
}

/* The guest's RAM @value (or @error) sizes what QEMU may lock for the running step's device. */
static void
guest_memory_sized(GTask *task, JsonNode *value, const GError *error)
{
  AttachItem *item = hotplug_plan_running(task)->item;
  Hotplug *hotplug = item->hotplug;
  GError *local = NULL;
  pid_t qemu = qmp_client_get_peer_pid(hotplug->qmp);
  guint64 soft = 0, hard = 0;
  Op *op = task_op(task);

  if (value == NULL || !JSON_NODE_HOLDS_OBJECT(value)) {
    hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                             "cannot learn the guest's memory size "
                                             "(query-memory-size-summary): %s",
                                             error ? error->message : "no answer"),
                           FALSE);
    return;
  }
  JsonObject *sizes = json_node_get_object(value);
  guint64 ram = (guint64)json_object_get_int_member_with_default(sizes, "base-memory", 0) +
                (guint64)json_object_get_int_member_with_default(sizes, "plugged-memory", 0);
  /* with a vIOMMU each VFIO device may pin all guest RAM on its own */
  gboolean viommu = op->topology &&
                    memlock_guest_has_viommu((const char *const *)op->topology->types);
  guint64 needed = 0;
  guint count = vfio_device_count(op);
  read_memlock_facts(op);
  if (count > 0 && op->host_ram == 0) {
    hotplug_plan_step_done(task, g_error_copy(op->host_ram_error), FALSE);
    return;
  }
  /* what QEMU reports is bounded before it becomes a limit */
  if (!memlock_needed_for_reported_guest(ram, op->host_ram, count, viommu, &needed, &local)) {
    hotplug_plan_step_done(task, local, FALSE);
    return;
  }
  /* the limit itself is read now: only this hostdevd changes it, and a
   * release may have set it back meanwhile */
  gboolean enough = qemu <= 0 || (memlock_get(qemu, &soft, &hard, NULL) && soft >= needed) ||
                    op->qemu_ipc_lock;

  item->guest_ram = ram;   /* no more than the host has, or the check above refused it */
  item->memlock_needed = enough ? 0 : needed;
  if (!enough && !hotplug->memlock_saved) {
    hotplug->memlock_soft = soft;
    hotplug->memlock_hard = hard;
  }
  /* every VFIO device's record carries the original, so whichever leaves last restores it */
  if (!enough || hotplug->memlock_saved) {
    item->prep->memlock_saved = TRUE;
    item->prep->memlock_soft = hotplug->memlock_soft;
    item->prep->memlock_hard = hotplug->memlock_hard;
  }
  hotplug_plan_step_done(task, NULL, FALSE);
}

static void
on_memory_size(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  Op *op = task_op(task);

  op->guest_memory = qmp_client_execute_finish(QMP_CLIENT(source), result,
                                               &op->guest_memory_error);
  /* in while the host is prepared (or earlier): the rest of the sizing's
   * reads are done now, off the attach's path */
  if (op->guest_memory)
    read_memlock_facts(op);
  if (op->guest_memory_waiter) {
    op->guest_memory_waiter = NULL;
    guest_memory_sized(task, op->guest_memory, op->guest_memory_error);
  }
}

static gboolean
request_pins_guest_memory(const Op *op)
{
  for (guint i = 0; i < op->items->len; i++)
    if (((AttachItem *)g_ptr_array_index(op->items, i))->ops->pins_guest_memory)
      return TRUE;
  return FALSE;
}

/*
 * Asked while the topology is (one more command in the same exchange with
 * QEMU), and answered long before the host preparation ends: the plan then
 * does not wait a round trip for it.  The answer is the same as when asked
 * at the step: only memory hot-plug changes it, and that can race either.
 */
void
hotplug_ask_guest_memory(GTask *task)
{
  Op *op = task_op(task);
  if (op->dry_run || op->guest_memory_asked || !op->hotplug->has_memory_size_summary ||
      !request_pins_guest_memory(op))
    return;
  op->guest_memory_asked = TRUE;
  qmp_client_execute_async(op->hotplug->qmp, "query-memory-size-summary", NULL, -1, 0, NULL,
                           on_memory_size, g_object_ref(task));
}

static void
guest_memory_run(GTask *task, AttachStep *step)
{
  Op *op = task_op(task);
  if (!step->item->hotplug->has_memory_size_summary) {
    hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                             "this QEMU has no query-memory-size-summary: "
                                             "hostdevd cannot size the locked-memory limit "
                                             "VFIO needs; use QEMU 2.11 or newer"),
                           FALSE);
    return;
  }
  hotplug_ask_guest_memory(task);
  if (op->guest_memory || op->guest_memory_error)
    guest_memory_sized(task, op->guest_memory, op->guest_memory_error);
  else
    op->guest_memory_waiter = task;
}

static char *
guest_memory_describe(const AttachItem *item, const AttachStep *step)
{
  return g_strdup("read the guest's RAM size (QEMU may pin all of it for VFIO)");
}

const AttachStepKind hotplug_step_guest_memory = {
  .name = "guest-memory", .phase = "memlock",
  /* its query went out before the plan (hotplug_ask_guest_memory()) */
  .host_only = TRUE,
  .run = guest_memory_run, .describe = guest_memory_describe,
};

static gboolean
memlock_too_low(const AttachItem *item)
{
  return item->memlock_needed > 0;
}

static void
memlock_run(GTask *task, AttachStep *step)
{
  AttachItem *item = step->item;
  pid_t qemu = qmp_client_get_peer_pid(item->hotplug->qmp);
  GError *error = NULL;

  if (!memlock_raise(qemu, item->memlock_needed, &error)) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  item->hotplug->memlock_saved = TRUE;
  g_autofree char *size = memlock_format_bytes(item->memlock_needed);
  g_message("raised QEMU's (pid %d) locked-memory limit to %s for VFIO", (int)qemu, size);
  hotplug_plan_step_done(task, NULL, FALSE);
}

static void
memlock_undo(GTask *task, AttachStep *step)
{
  hotplug_restore_memlock_if_unused(step->item->hotplug);
  hotplug_plan_undo_next(task);
}

static char *
memlock_describe(const AttachItem *item, const AttachStep *step)
{
  return g_strdup("raise QEMU's locked-memory limit (RLIMIT_MEMLOCK) to cover the guest's RAM, "
                  "when it does not already (the limit before is journaled first)");
}

const AttachStepKind hotplug_step_memlock = {
  .name = "memlock", .phase = "memlock", .journaled = TRUE,
  .host_only = TRUE,
  .needed = memlock_too_low, .run = memlock_run, .undo = memlock_undo,
  .describe = memlock_describe,
};

/* ---- pass-fd: QEMU gets the USB device as an open descriptor --------------- */

static gboolean
usb_device_found(const AttachItem *item)
{
  return item->usb != NULL;
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
hotplug_replan_with_fdset(AttachItem *item, gint fdset_id, GError **error)
{
  g_free(item->usb_hostdevice);
  item->usb_hostdevice = g_strdup_printf("/dev/fdset/%d", fdset_id);
  item->context.usb_hostdevice = item->usb_hostdevice;
  g_clear_pointer(&item->commands, g_ptr_array_unref);
  item->commands = qemu_device_plan(item->hostdev, &item->context, error);
  return item->commands != NULL;
}

static void
on_fd_added(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  AttachItem *item = hotplug_plan_running(task)->item;
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
  item->prep->fdset_id = (gint)json_object_get_int_member_with_default(json_node_get_object(value),
                                                                     "fdset-id", -1);
  /* alone, the device's next step journals the fdset at once; in a request of several
   * devices the others' steps come first, and a crash then must find it on record */
  if (!hotplug_replan_with_fdset(item, item->prep->fdset_id, &error) ||
      (task_op(task)->request &&
       !hotplug_journal_device(item->hotplug, item->hostdev, STATE_ATTACHING, "pass-fd",
                               item->commands, item->prep, FALSE, &error))) {
    hotplug_plan_step_done(task, error, TRUE);
    return;
  }
  hotplug_plan_step_done(task, NULL, FALSE);
}

/* The device node is opened here, so QEMU needs no access to /dev/bus/usb at all. */
static void
pass_fd_run(GTask *task, AttachStep *step)
{
  AttachItem *item = step->item;
  GError *error = NULL;
  int fd = usb_fd_open(item->usb->bus, item->usb->device, item->usb->sysfs_name, &error);

  if (fd < 0) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  g_autoptr(JsonObject) args = add_fd_arguments(item->hostdev->alias);
  qmp_client_execute_async(item->hotplug->qmp, "add-fd", args, fd, 0, NULL, on_fd_added, task);
  close(fd);   /* the QMP client passes its own duplicate */
}

static void
pass_fd_undo(GTask *task, AttachStep *step)
{
  AttachItem *item = step->item;
  hotplug_remove_fdset(item->hotplug, item->prep, undo_next, task);
}

static char *
pass_fd_describe(const AttachItem *item, const AttachStep *step)
{
  return g_strdup_printf("open /dev/bus/usb/%03u/%03u and hand the descriptor to QEMU",
                         item->usb->bus, item->usb->device);
}

static JsonObject *
pass_fd_qmp(const AttachItem *item, const AttachStep *step)
{
  g_autoptr(JsonObject) args = add_fd_arguments(item->hostdev->alias);
  return hotplug_qmp_command("add-fd", args);
}

const AttachStepKind hotplug_step_pass_fd = {
  .name = "pass-fd", .phase = "pass-fd", .journaled = TRUE,
  .applies = usb_device_found, .run = pass_fd_run, .undo = pass_fd_undo,
  .describe = pass_fd_describe, .qmp = pass_fd_qmp,
};

/* ---- device-add: one device_add (a zpci device, then its target) ---------- */

static JsonObject *
step_command(const AttachItem *item, const AttachStep *step)
{
  return g_ptr_array_index(item->commands, step->command);
}

static const char *
command_member(const AttachItem *item, const AttachStep *step, const char *name)
{
  return json_object_get_string_member_with_default(step_command(item, step), name, NULL);
}

static void device_add_run(GTask *task, AttachStep *step);

/* Our alias guess clashed with a device hostdevd did not add: learn QEMU's ids once. */
static void
on_ids_refreshed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  AttachItem *item = hotplug_plan_running(task)->item;
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
  if (!hotplug_rename_device(task, item, (const char *const *)ids, &error)) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  item->journaled_step = NULL;   /* the record goes under the new alias */
  hotplug_plan_run(task);
}

/*
 * The port hostdevd chose was taken behind its back (a device added through
 * another monitor): read the port map again and choose once more, keeping
 * the ports of the request's devices that are not in QEMU yet.
 */
static void
on_usb_ports_refreshed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  AttachItem *item = hotplug_plan_running(task)->item;
  GError *error = NULL;
  GuestUsbPorts *ports = guest_usb_ports_query_finish(result, &error);

  if (ports == NULL) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  hotplug_forget_usb_ports(item->hotplug);
  item->hotplug->usb_ports = ports;
  hotplug_follow_reserve_usb_ports(item->hotplug, ports);
  for (guint i = 0; i < op->items->len; i++) {
    const AttachItem *other = g_ptr_array_index(op->items, i);
    const Hostdev *hostdev = other->hostdev;
    if (other != item && hostdev->type == HOSTDEV_TYPE_USB && hostdev->usb_guest.port)
      guest_usb_ports_take(ports, hostdev->usb_guest.bus, hostdev->usb_guest.port,
                           hostdev->alias, NULL);
  }
  g_clear_pointer(&item->commands, g_ptr_array_unref);
  if (!hotplug_place_usb(op, item, &error) ||
      !(item->commands = qemu_device_plan(item->hostdev, &item->context, &error))) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  g_message("%s: its USB port was taken meanwhile; bus %u port %s instead", item->hostdev->alias,
            item->hostdev->usb_guest.bus, item->hostdev->usb_guest.port);
  hotplug_plan_run(task);
}

/* Fail the device-add @step with what QEMU said (@error). */
static void
device_add_failed(GTask *task, const AttachStep *step, const GError *error)
{
  AttachItem *item = step->item;
  g_autofree char *what = hostdev_describe_source(item->hostdev);
  /* a timed-out device_add may still complete: it is undone as if it had */
  hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, hotplug_qemu_failure_code(error),
                                           "QEMU could not add %s for %s: %s",
                                           command_member(item, step, "driver"), what,
                                           error->message),
                         g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT));
}

typedef struct {
  GTask *task;
  GError *clash;        /* what QEMU said of the slot */
  char *bus;            /* where it was placed */
  guint slot;
} SlotRetry;

static void
slot_retry_free(SlotRetry *retry)
{
  g_error_free(retry->clash);
  g_free(retry->bus);
  g_free(retry);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SlotRetry, slot_retry_free)

/*
 * The slot placed from a remembered device list was taken behind
 * hostdevd's back (a device added through another monitor): read the list
 * again and place the device once more; a slot the XML names is checked
 * again, and refused as taken.  Placed where it was, the clash was not the
 * list's: QEMU's answer stands.
 */
static void
on_pci_topology_refreshed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SlotRetry) retry = user_data;
  GTask *task = retry->task;
  Op *op = g_task_get_task_data(task);
  const AttachStep *step = hotplug_plan_running(task);
  AttachItem *item = step->item;
  GError *error = NULL;
  GuestTopology *topology = guest_topology_query_finish(result, &error);

  if (topology == NULL ||
      !guest_topology_check_arch(topology, op->hotplug->qemu_arch, op->hotplug->qemu_arch_how,
                                 &error)) {
    guest_topology_free(topology);
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  guest_topology_free(op->topology);
  op->topology = topology;
  item->hostdev->pci_guest.present = item->pci_addr_given;   /* a named one is checked again */
  item->context = (QemuDeviceContext){ .id = item->hostdev->alias, .usb = item->usb };
  g_clear_pointer(&item->commands, g_ptr_array_unref);
  if (!hotplug_place_pci(op, item, &error) ||
      !(item->commands = qemu_device_plan(item->hostdev, &item->context, &error))) {
    hotplug_plan_step_done(task, error, FALSE);
    return;
  }
  if (g_strcmp0(item->context.pci_bus_id, retry->bus) == 0 && item->context.pci_slot == retry->slot) {
    device_add_failed(task, step, retry->clash);
    return;
  }
  g_message("%s: its guest slot (%s slot %u) was taken meanwhile; %s slot %u instead",
            item->hostdev->alias, retry->bus, retry->slot, item->context.pci_bus_id,
            item->context.pci_slot);
  item->journaled_step = NULL;   /* the record names the new address first */
  hotplug_plan_run(task);
}

/* Return: whether @error is QEMU refusing the guest slot a remembered device list gave. */
static gboolean
slot_taken_behind_our_back(const Op *op, const AttachItem *item, const GError *error)
{
  /* QEMU 7.2: "PCI: slot 1 function 0 not available for vfio-pci, in use by e1000e,id=x" */
  return item->ops->placed_on_pci_bus && !item->pci_slot_retried &&
         op->topology && op->topology->remembered && g_str_has_prefix(error->message, "PCI: ");
}

#ifdef HOSTDEVD_TEST_HOOKS
static gboolean
on_hold_over(gpointer user_data)
{
  hotplug_plan_step_done(user_data, NULL, FALSE);
  return G_SOURCE_REMOVE;
}

/*
 * hold_after_device_add() - a test hook, compiled in only with meson
 * -Dtest_hooks=true: HOSTDEVD_TEST_HOLD_AFTER_DEVICE_ADD_MS=N keeps an attach
 * N ms between QEMU's device_add returning and the device becoming the VM's,
 * the main loop running, so that a test can make the host device leave in
 * that window.  Return: whether it holds (it finishes the step later).
 */
static gboolean
hold_after_device_add(GTask *task)
{
  guint64 ms = 0;
  const char *hold = g_getenv("HOSTDEVD_TEST_HOLD_AFTER_DEVICE_ADD_MS");
  if (hold == NULL || !g_ascii_string_to_unsigned(hold, 10, 1, 60000, &ms, NULL))
    return FALSE;
  g_message("HOSTDEVD_TEST_HOLD_AFTER_DEVICE_ADD_MS=%s: holding the attach", hold);
  g_timeout_add((guint)ms, on_hold_over, task);
  return TRUE;
}
#else
static gboolean
hold_after_device_add(GTask *task)
{
  return FALSE;
}
#endif

static void
on_device_added(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  const AttachStep *step = hotplug_plan_running(task);
  AttachItem *item = step->item;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (error == NULL) {
    /* a command naming a PCI bus and address places the item's own device there */
    gboolean on_pci = command_member(item, step, "addr") && item->context.pci_bus_id;
    guest_topology_note_added(item->hotplug->qmp, command_member(item, step, "id"),
                              command_member(item, step, "driver"),
                              on_pci ? command_member(item, step, "bus") : NULL,
                              on_pci ? (gint)(item->context.pci_slot << 3 |
                                              item->context.pci_function) : -1);
    if (!hold_after_device_add(task))
      hotplug_plan_step_done(task, NULL, FALSE);
    return;
  }
  /* QEMU's devices may not be what hostdevd remembers: asked again next time */
  guest_topology_forget(item->hotplug->qmp);
  if (slot_taken_behind_our_back(task_op(task), item, error)) {
    SlotRetry *retry = g_new0(SlotRetry, 1);
    item->pci_slot_retried = TRUE;
    retry->task = task;
    retry->clash = g_steal_pointer(&error);
    retry->bus = g_strdup(item->context.pci_bus_id);
    retry->slot = item->context.pci_slot;
    guest_topology_query_async(item->hotplug->qmp, FALSE, NULL, on_pci_topology_refreshed, retry);
    return;
  }
  if (step->command == 0 && !item->alias_given && !item->alias_retried &&
      g_str_has_prefix(error->message, "Duplicate device ID")) {
    item->alias_retried = TRUE;
    hotplug_journal_forget(item->hotplug, item->hostdev->alias);
    hotplug_list_peripherals(item->hotplug, on_ids_refreshed, task);
    return;
  }
  /* QEMU 7.2: "usb port 1 (bus usb.0) not found (in use?)" */
  if (item->ops->placed_on_usb_port && !item->usb_port_given && !item->usb_port_retried &&
      item->hotplug->usb_ports && strstr(error->message, "usb port") &&
      strstr(error->message, "not found")) {
    item->usb_port_retried = TRUE;
    guest_usb_ports_query_async(item->hotplug->qmp, NULL, on_usb_ports_refreshed, task);
    return;
  }
  device_add_failed(task, step, error);
}

/* Return: how long QEMU gets for @item's device_add: longer the more RAM it pins. */
static guint
device_add_timeout_ms(const AttachItem *item)
{
  guint64 pinning = item->ops->pins_guest_memory ? item->guest_ram / HOTPLUG_PIN_BYTES_PER_MS : 0;
  return (guint)MIN(HOTPLUG_DEVICE_ADD_TIMEOUT_MS + pinning, G_MAXINT);
}

static void
device_add_stage(const AttachStep *step)
{
  qmp_client_stage(step->item->hotplug->qmp, "device_add", step_command(step->item, step));
}

static void
device_add_run(GTask *task, AttachStep *step)
{
  AttachItem *item = step->item;
  Op *op = task_op(task);
  qmp_client_execute_async(item->hotplug->qmp, "device_add", step_command(item, step), -1,
                           device_add_timeout_ms(item), NULL, on_device_added, task);
  /* its answer comes from another main-loop iteration: QEMU works meanwhile */
  if (op->last_step_sent && op->next + 1 == op->plan->len)
    op->last_step_sent(task);
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
  AttachItem *item = step->item;
  Hotplug *hotplug = item->hotplug;
  const char *id = command_member(item, step, "id");
  gboolean target = step->command + 1 == item->commands->len;

  if (!target && g_strcmp0(command_member(item, step, "driver"), "zpci") == 0) {
    /* journaled, so that only this zpci is ever taken over (stranded_zpci()) */
    StateZpci left = { .id = (char *)id, .uid = item->hostdev->zpci.uid,
                       .fid = item->hostdev->zpci.fid,
                       .target = (char *)command_member(item, step, "target"),
                       .qemu = hotplug->qemu };
    g_autoptr(GError) error = NULL;
    if (!state_journal_note_zpci_left(hotplug->journal, &left, &error))
      g_warning("%s; it will not be reused", error->message);
    g_message("%s stays in QEMU without its target %s: QEMU 7.2 crashes removing a zpci "
              "device whose target never existed; the next attach reuses it", id,
              left.target);
    hotplug_plan_undo_next(task);
    return;
  }
  hotplug_remove_from_qemu(hotplug, id);
  if (!target || !item->ops->unplug_needs_guest) {
    hotplug_plan_undo_next(task);
    return;
  }
  VmDevice *device = vm_devices_add(hotplug->devices, g_steal_pointer(&item->hostdev),
                                    g_steal_pointer(&item->prep));
  hotplug_device_enter_anyway(hotplug, device, VM_DEVICE_DETACHING);
  g_autofree char *why = g_strdup_printf("QEMU was asked to remove %s again, and it is listed "
                                         "as detaching until the guest lets it go",
                                         device->hostdev->alias);
  hotplug_plan_undo_hand_over(task, item, why);
}

static char *
device_add_describe(const AttachItem *item, const AttachStep *step)
{
  return g_strdup_printf("add %s '%s' to the guest", command_member(item, step, "driver"),
                         command_member(item, step, "id"));
}

static JsonObject *
device_add_qmp(const AttachItem *item, const AttachStep *step)
{
  return hotplug_qmp_command("device_add", step_command(item, step));
}

const AttachStepKind hotplug_step_device_add = {
  .name = "device-add", .phase = "device_add", .journaled = TRUE,
  .stage = device_add_stage, .run = device_add_run, .undo = device_add_undo,
  .describe = device_add_describe, .qmp = device_add_qmp,
};

/* A zpci device an earlier attempt left behind is in QEMU already: its target joins it. */
static void
zpci_reuse_run(GTask *task, AttachStep *step)
{
  hotplug_plan_step_done(task, NULL, FALSE);
}

static char *
zpci_reuse_describe(const AttachItem *item, const AttachStep *step)
{
  return g_strdup_printf("reuse zpci '%s' (uid %u fid %u), left in QEMU by an earlier attempt",
                         command_member(item, step, "id"), item->hostdev->zpci.uid,
                         item->hostdev->zpci.fid);
}

const AttachStepKind hotplug_step_zpci_reuse = {
  .name = "zpci-reuse", .run = zpci_reuse_run, .describe = zpci_reuse_describe,
};

/* ---- verify: QEMU shows the device -------------------------------------- */

static void
on_listed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  AttachItem *item = hotplug_plan_running(task)->item;
  g_autoptr(GError) error = NULL;

  if (hotplug_query_present_finish(result, source, &error) != HOTPLUG_PRESENT) {
    hotplug_plan_step_done(task, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                             "QEMU accepted %s but does not have it "
                                             "afterwards%s%s", item->hostdev->alias,
                                             error ? ": " : "", error ? error->message : ""),
                           FALSE);
    return;
  }
  hotplug_plan_step_done(task, NULL, FALSE);
}

static void
verify_listed_run(GTask *task, AttachStep *step)
{
  hotplug_query_present(task_op(task)->hotplug, step->item->hostdev->alias, on_listed, task);
}

static char *
verify_listed_describe(const AttachItem *item, const AttachStep *step)
{
  return g_strdup_printf("confirm QEMU has '%s' among its devices", item->hostdev->alias);
}

/*
 * A USB device on the port hostdevd chose needs no confirmation: QEMU
 * answers device_add only once the device is realized and plugged into
 * that port, so its success is the proof (and the address is ours).  A
 * QEMU without x-query-usb chose the port itself: the device is looked
 * for in its device list, and its guest address stays unknown.
 */
static gboolean
usb_port_unknown(const AttachItem *item)
{
  return !item->hostdev->usb_guest.present || item->hostdev->usb_guest.port == NULL;
}

const AttachStepKind hotplug_step_verify_usb = {
  .name = "verify", .phase = "verify", .applies = usb_port_unknown,
  .run = verify_listed_run, .describe = verify_listed_describe,
};
