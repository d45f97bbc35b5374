/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug-private.h"
#include "host-pci.h"
#include "host-root.h"

#include <string.h>

/*
 * hotplug-attach.c - an attach up to its plan: the checks, the policy, the
 * alias and guest address, the QEMU commands, the steps (hotplug-steps.c)
 * that the engine (hotplug-plan.c) then runs; and what differs by type.
 */

/* @timings: (nullable): milliseconds per phase, reported so that slow steps can be told apart */
static JsonNode *
attach_reply(const Hostdev *hostdev, JsonObject *timings)
{
  g_autoptr(JsonObject) reply = json_object_new();
  g_autofree char *xml = hostdev_format_xml(hostdev);
  g_autofree char *source = hostdev_describe_source(hostdev);
  json_object_set_string_member(reply, "alias", hostdev->alias);
  json_object_set_string_member(reply, "source", source);
  json_object_set_string_member(reply, "xml", xml);
  if (timings)
    json_object_set_object_member(reply, "timings", json_object_ref(timings));
  return json_node_init_object(json_node_alloc(), reply);
}

/* Every step is done: the device is the VM's. */
static void
attach_done(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hostdev *live = g_steal_pointer(&op->hostdev);
  g_autofree char *source = hostdev_describe_source(live);
  g_autoptr(GError) error = NULL;

  if (!hotplug_journal_device(op->hotplug, live, STATE_ATTACHED, "done", op->commands, op->prep,
                              FALSE, &error))
    g_warning("%s", error->message);
  vm_devices_add(op->hotplug->devices, live, g_steal_pointer(&op->prep));
  g_message("%s (%s) attached", live->alias, source);

  JsonNode *reply = attach_reply(live, op->timings);
  hotplug_emit(op->hotplug, "DEVICE_ATTACHED", json_node_get_object(reply));
  hotplug_op_return(task, reply, NULL);
}

/* A dry run shows the fdset QEMU would give: the lowest id not in use. */
static void
on_fdsets_listed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  gint next = 0;

  if (value == NULL) {
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                              "cannot list QEMU's fd sets: %s", error->message));
    g_error_free(error);
    return;
  }
  for (gboolean taken = TRUE; taken; next += taken) {
    taken = FALSE;
    JsonArray *fdsets = JSON_NODE_HOLDS_ARRAY(value) ? json_node_get_array(value) : NULL;
    for (guint i = 0; fdsets && i < json_array_get_length(fdsets); i++)
      if (json_object_get_int_member_with_default(json_array_get_object_element(fdsets, i),
                                                  "fdset-id", -1) == next)
        taken = TRUE;
  }
  if (!hotplug_replan_with_fdset(op, next, &error)) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  hotplug_op_return(task, hotplug_plan_describe(op), NULL);
}

/* A dry run ends with the plan, as the attach would run it. */
static void
dry_run_reply(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  if (op->usb)
    qmp_client_execute_async(op->hotplug->qmp, "query-fdsets", NULL, -1, 0, NULL,
                             on_fdsets_listed, task);
  else
    hotplug_op_return(task, hotplug_plan_describe(op), NULL);
}

/*
 * stranded_zpci() - a zpci device of ours that lost its target
 * Return: (nullable): one that @hostdev can take over: its target id is
 * free, and it agrees with the alias (when @alias_given) and the uid/fid
 * the XML asks for.
 */
static const GuestZpci *
stranded_zpci(const GuestTopology *topology, const Hostdev *hostdev, gboolean alias_given)
{
  for (guint i = 0; i < topology->zpci->len; i++) {
    const GuestZpci *zpci = g_ptr_array_index(topology->zpci, i);
    if (zpci->id == NULL || zpci->target == NULL ||
        g_strv_contains((const char *const *)topology->ids, zpci->target))
      continue;
    if ((alias_given && g_strcmp0(hostdev->alias, zpci->target) != 0) ||
        (hostdev->zpci.has_uid && hostdev->zpci.uid != zpci->uid) ||
        (hostdev->zpci.has_fid && hostdev->zpci.fid != zpci->fid))
      continue;
    return zpci;
  }
  return NULL;
}

/* Return: (transfer full): the alias of every device the journal records. */
static GStrv
journal_aliases(Hotplug *hotplug)
{
  GPtrArray *entries = state_journal_entries(hotplug->journal);
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  for (guint i = 0; i < entries->len; i++)
    g_strv_builder_add(builder, ((StateEntry *)g_ptr_array_index(entries, i))->alias);
  return g_strv_builder_end(builder);
}

static GStrv
strv_concat(const char *const *a, const char *const *b)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  g_strv_builder_addv(builder, (const char **)a);
  g_strv_builder_addv(builder, (const char **)b);
  return g_strv_builder_end(builder);
}

/*
 * choose_alias() - libvirt's choice from our own devices, counting every
 * alias the journal still holds (a device waiting for its IOMMU group, a
 * release that failed or finishes late): reusing one would let that
 * record's end delete the new device's.  QEMU's ids (nullable) only matter
 * when they clash.
 */
static char *
choose_alias(Hotplug *hotplug, const char *const *qemu_ids)
{
  g_auto(GStrv) journaled = journal_aliases(hotplug);
  char *alias = vm_devices_next_alias(hotplug->devices, (const char *const *)journaled);
  if (qemu_ids && g_strv_contains(qemu_ids, alias)) {
    g_auto(GStrv) taken = strv_concat(qemu_ids, (const char *const *)journaled);
    g_free(alias);
    alias = vm_devices_next_alias(hotplug->devices, (const char *const *)taken);
  }
  return alias;
}

gboolean
hotplug_rename_device(Op *op, const char *const *qemu_ids, GError **error)
{
  g_free(op->hostdev->alias);
  op->hostdev->alias = choose_alias(op->hotplug, qemu_ids);
  op->context.id = op->hostdev->alias;
  g_clear_pointer(&op->commands, g_ptr_array_unref);
  op->commands = qemu_device_plan(op->hostdev, &op->context, error);
  return op->commands != NULL;
}

/* The steps of the attach, in order: the host's, QEMU's, the verification. */
static void
plan_steps(Op *op)
{
  for (const AttachStepKind *const *kind = op->ops->host_steps; *kind; kind++)
    hotplug_plan_add(op, *kind, 0);
  for (guint i = 0; i < op->commands->len; i++)
    hotplug_plan_add(op, i == 0 && op->zpci_reused ? &hotplug_step_zpci_reuse
                                                   : &hotplug_step_device_add, i);
  hotplug_plan_add(op, op->ops->verify, 0);
  op->plan_finished = attach_done;
}

/*
 * attach_plan() - every read-only decision: alias, guest address, zPCI
 * ids, the exact commands, the steps; then the plan runs (a dry run
 * prints it instead).
 * @qemu_ids: (nullable): QEMU's device ids when known
 */
static void
attach_plan(GTask *task, const char *const *qemu_ids)
{
  Op *op = g_task_get_task_data(task);
  Hostdev *hostdev = op->hostdev;
  const GuestPciBus *bus = NULL;
  GError *error = NULL;

  if (qemu_ids == NULL && op->topology)
    qemu_ids = (const char *const *)op->topology->ids;
  if (hostdev->alias == NULL) {
    hostdev->alias = choose_alias(op->hotplug, qemu_ids);
  } else if (qemu_ids && g_strv_contains(qemu_ids, hostdev->alias)) {
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                                      "alias '%s' is already the id of a device in QEMU; "
                                      "choose another <alias name='ua-…'/> or leave it out",
                                      hostdev->alias));
    return;
  }

  op->context = (QemuDeviceContext){ .id = hostdev->alias, .usb = op->usb };
  if (op->topology && op->ops->placed_on_pci_bus) {
    PciAddress placed;
    op->context.s390x = guest_topology_has_zpci(op->topology);
    op->context.pcie_root = guest_topology_find_bus(op->topology, 0) &&
                        g_strcmp0(guest_topology_find_bus(op->topology, 0)->id, "pcie.0") == 0;
    /* On s390x QEMU picks the slot; the guest addresses the device by its zPCI ids. */
    if (!op->context.s390x || hostdev->pci_guest.present) {
      if (!guest_pci_place(op->topology, hostdev->pci_guest.present ? &hostdev->pci_guest.addr : NULL,
                           &placed, &bus, &error)) {
        hotplug_op_return(task, NULL, error);
        return;
      }
      hostdev->pci_guest.present = TRUE;
      hostdev->pci_guest.addr = placed;
      op->context.pci_bus_id = bus->id;
      op->context.pci_slot = placed.slot;
      op->context.pci_function = placed.function;
    }
    if (op->context.s390x) {
      const GuestZpci *reuse = stranded_zpci(op->topology, hostdev, op->alias_given);
      guint uid, fid;
      if (reuse) {
        g_free(hostdev->alias);
        hostdev->alias = g_strdup(reuse->target);
        op->context.id = hostdev->alias;
        uid = reuse->uid;
        fid = reuse->fid;
        op->zpci_reused = TRUE;
      } else if (!guest_zpci_assign(op->topology, hostdev->zpci.has_uid, hostdev->zpci.uid,
                                    hostdev->zpci.has_fid, hostdev->zpci.fid, &uid, &fid,
                                    &error)) {
        hotplug_op_return(task, NULL, error);
        return;
      }
      hostdev->zpci.has_uid = hostdev->zpci.has_fid = TRUE;
      hostdev->zpci.uid = uid;
      hostdev->zpci.fid = fid;
    }
  }

  op->commands = qemu_device_plan(hostdev, &op->context, &error);
  if (op->commands == NULL) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  if (op->zpci_reused)
    g_message("%s: reusing zpci uid %u fid %u left by an earlier attempt", hostdev->alias,
              hostdev->zpci.uid, hostdev->zpci.fid);
  plan_steps(op);
  hotplug_plan_phase_mark(op, "checks");
  if (op->dry_run)
    dry_run_reply(task);
  else
    hotplug_plan_run(task);
}

static void
on_attach_topology(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  op->topology = guest_topology_query_finish(result, &error);
  if (op->topology == NULL) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  attach_plan(task, NULL);
}

/* Return: FALSE with @error when @hostdev clashes with what the VM already has. */
static gboolean
check_not_attached(Hotplug *hotplug, const Hostdev *hostdev, GError **error)
{
  VmDevice *same_source = vm_devices_find_source(hotplug->devices, hostdev);
  if (same_source) {
    g_autofree char *what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "%s is already attached to this VM as %s%s", what,
                same_source->hostdev->alias,
                same_source->state == VM_DEVICE_DETACHING
                    ? " (its detach is still pending in the guest)" : "");
    return FALSE;
  }
  if (hostdev->alias && vm_devices_find_alias(hotplug->devices, hostdev->alias)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "alias '%s' is already used by another device of this VM", hostdev->alias);
    return FALSE;
  }
  /* a device still on its way back to the host: its original state is not back yet */
  VmDevice *leaving = hotplug_find_leaving(hotplug, hostdev, NULL);
  if (leaving) {
    g_autofree char *what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "%s left this VM as %s and is still being given back to the host (or waits "
                "for the rest of its IOMMU group to leave); try again once `hostdevctl list` "
                "no longer shows it and the DEVICE_DETACHED event came", what,
                leaving->hostdev->alias);
    return FALSE;
  }
  if (hostdev->alias && state_journal_find(hotplug->journal, hostdev->alias)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "alias '%s' still names a device that is being given back to the host; "
                "choose another <alias name='ua-…'/> or try again later", hostdev->alias);
    return FALSE;
  }
  return TRUE;
}

/* policy_allows() - FALSE with PolicyDenied naming the rule when the VM may not have the device. */
static gboolean
policy_allows(Op *op, GError **error)
{
  PolicyDeviceFacts facts = { 0 };
  const char *rule = NULL;

  if (op->hotplug->policy == NULL || !op->ops->policy_facts(op, &facts))
    return TRUE;
  if (policy_check_device(op->hotplug->policy, op->hotplug->vm, &facts,
                          vm_devices_get_all(op->hotplug->devices)->len, &rule))
    return TRUE;
  g_autofree char *what = policy_describe_device(&facts);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED,
              "VM '%s' may not receive %s: %s", op->hotplug->vm, what, rule);
  return FALSE;
}

/*
 * pci_precheck() - every read-only check of a PCI device, so that a dry
 * run fails exactly where the attach would, before QEMU is asked: the
 * device exists, the host's IOMMU is usable, the device is on vfio-pci
 * when not managed, and its IOMMU group is viable (or may be taken whole).
 */
static gboolean
pci_precheck(Op *op, GError **error)
{
  const Hostdev *hostdev = op->hostdev;
  g_autofree char *driver = NULL;
  g_autoptr(GError) missing = NULL;

  driver = host_pci_get_driver(&hostdev->pci_source, &missing);
  if (missing) {
    g_propagate_error(error, g_steal_pointer(&missing));
    return FALSE;
  }
  if (!host_prep_vfio_begin(op->prep, hostdev, error))
    return FALSE;
  if (!hostdev->managed && !host_pci_check_assignable(&hostdev->pci_source, FALSE, error))
    return FALSE;
  return op->hotplug->take_whole_group && hostdev->managed
             ? TRUE
             : vfio_group_check_viable(op->prep->vfio->group, &hostdev->pci_source, error);
}

/* ---- what differs by type ------------------------------------------------ */

static gboolean
usb_resolve(Op *op, GError **error)
{
  g_autoptr(GError) local = NULL;
  op->usb = host_usb_resolve(op->hostdev, &local);
  if (local) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  if (op->usb) {
    /* Keep where it was found, as libvirt does, so detach by address matches too. */
    op->hostdev->usb.has_address = TRUE;
    op->hostdev->usb.bus = op->usb->bus;
    op->hostdev->usb.device = op->usb->device;
  }
  return TRUE;
}

/* QEMU opens the mediated device by its sysfs path; it checks the UUID itself. */
static gboolean
mdev_resolve(Op *op, GError **error)
{
  return TRUE;
}

static gboolean
usb_policy_facts(Op *op, PolicyDeviceFacts *facts)
{
  const Hostdev *hostdev = op->hostdev;
  facts->type = POLICY_DEVICE_USB;
  facts->usb_ids_known = op->usb || hostdev->usb.has_vendor_product;
  facts->usb_vendor = op->usb ? op->usb->vendor : hostdev->usb.vendor;
  facts->usb_product = op->usb ? op->usb->product : hostdev->usb.product;
  return TRUE;
}

static gboolean
pci_policy_facts(Op *op, PolicyDeviceFacts *facts)
{
  const Hostdev *hostdev = op->hostdev;
  g_autoptr(HostPciDevice) pci = host_pci_device_read(&hostdev->pci_source, NULL);
  facts->type = POLICY_DEVICE_PCI;
  facts->pci_domain = hostdev->pci_source.domain;
  facts->pci_bus = hostdev->pci_source.bus;
  facts->pci_slot = hostdev->pci_source.slot;
  facts->pci_function = hostdev->pci_source.function;
  if (pci) {
    g_autofree char *path = host_path("sys/bus/pci/devices/%s/boot_vga", pci->name);
    g_autofree char *boot_vga = host_read_attr(path, NULL);
    facts->pci_vendor = pci->vendor;
    facts->pci_device = pci->device;
    facts->pci_class = pci->class_code;
    facts->boot_vga = g_strcmp0(boot_vga, "1") == 0;
  }
  return TRUE;
}

/* A mediated device is a slice of its parent, which the policy governs. */
static gboolean
mdev_policy_facts(Op *op, PolicyDeviceFacts *facts)
{
  return FALSE;
}

static const AttachStepKind *const usb_host_steps[] = {
  &hotplug_step_claim, &hotplug_step_pass_fd, NULL,
};

static const AttachStepKind *const pci_host_steps[] = {
  &hotplug_step_claim, &hotplug_step_vfio_bind, &hotplug_step_vf_program,
  &hotplug_step_guest_memory, &hotplug_step_memlock, NULL,
};

static const AttachStepKind *const mdev_host_steps[] = {
  &hotplug_step_claim, &hotplug_step_guest_memory, &hotplug_step_memlock, NULL,
};

static const HotplugTypeOps type_ops[] = {
  [HOSTDEV_TYPE_USB] = {
    .unplug_needs_guest = FALSE,
    .pins_guest_memory = FALSE,
    .placed_on_pci_bus = FALSE,
    .resolve = usb_resolve,
    .policy_facts = usb_policy_facts,
    .host_steps = usb_host_steps,
    .after_last_add_sent = hotplug_query_usb_behind_add,
    .verify = &hotplug_step_verify_usb,
  },
  [HOSTDEV_TYPE_PCI] = {
    .unplug_needs_guest = TRUE,
    .pins_guest_memory = TRUE,
    .placed_on_pci_bus = TRUE,
    .resolve = pci_precheck,
    .policy_facts = pci_policy_facts,
    .host_steps = pci_host_steps,
    .verify = &hotplug_step_verify_listed,
  },
  [HOSTDEV_TYPE_MDEV] = {
    .unplug_needs_guest = TRUE,
    .pins_guest_memory = TRUE,
    .placed_on_pci_bus = TRUE,
    .resolve = mdev_resolve,
    .policy_facts = mdev_policy_facts,
    .host_steps = mdev_host_steps,
    .verify = &hotplug_step_verify_listed,
  },
};

const HotplugTypeOps *
hotplug_type_ops(HostdevType type)
{
  g_assert((gsize)type < G_N_ELEMENTS(type_ops) && type_ops[type].resolve);
  return &type_ops[type];
}

static void
attach_checked(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  /*
   * A PCI device needs the bus layout.  A USB device goes wherever QEMU has
   * a free port, so the common case needs no look-up at all: an alias that
   * clashes with a foreign device is corrected once when QEMU says so.
   */
  if (op->ops->placed_on_pci_bus || op->dry_run)
    guest_topology_query_async(op->hotplug->qmp, NULL, on_attach_topology, task);
  else
    attach_plan(task, NULL);
}

/* What this QEMU can do, learned once per connection instead of from its version. */
static void
on_commands_listed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Hotplug *hotplug = ((Op *)g_task_get_task_data(task))->hotplug;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  JsonArray *commands = value && JSON_NODE_HOLDS_ARRAY(value) ? json_node_get_array(value) : NULL;

  hotplug->features_known = TRUE;
  if (commands == NULL) {
    /* a QEMU that cannot list its commands is assumed to have what 7.2 has */
    g_message("QEMU did not list its commands (%s): assuming x-query-usb and "
              "query-memory-size-summary", error ? error->message : "no list");
    hotplug->has_x_query_usb = hotplug->has_memory_size_summary = TRUE;
  } else {
    hotplug->has_x_query_usb = hotplug->has_memory_size_summary = FALSE;
    for (guint i = 0; i < json_array_get_length(commands); i++) {
      JsonNode *entry = json_array_get_element(commands, i);
      const char *name = JSON_NODE_HOLDS_OBJECT(entry)
          ? json_object_get_string_member_with_default(json_node_get_object(entry), "name", "")
          : "";
      hotplug->has_x_query_usb |= g_strcmp0(name, "x-query-usb") == 0;
      hotplug->has_memory_size_summary |= g_strcmp0(name, "query-memory-size-summary") == 0;
    }
  }
  attach_checked(task);
}

static void
attach_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (!check_not_attached(op->hotplug, op->hostdev, &error)) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  op->alias_given = op->hostdev->alias != NULL;
  op->prep = host_prep_new();
  op->phase_start = g_get_monotonic_time();
  op->ops = hotplug_type_ops(op->hostdev->type);
  if (op->ops->resolve(op, &error))
    policy_allows(op, &error);
  if (error) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  if (op->hotplug->features_known)
    attach_checked(task);
  else
    qmp_client_execute_async(op->hotplug->qmp, "query-commands", NULL, -1, 0, NULL,
                             on_commands_listed, task);
}

void
hotplug_attach_async(Hotplug *hotplug, const char *xml, gboolean dry_run,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = hotplug_op_new(hotplug, attach_start, hotplug_attach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);

  op->dry_run = dry_run;
  hotplug_op_submit(task, xml);
}

JsonNode *
hotplug_attach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

