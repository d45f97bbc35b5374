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

/* @xml: the live XML, formatted once for the journal and the reply
 * @timings: (nullable): milliseconds per phase, reported so that slow steps can be told apart */
static JsonNode *
attach_reply(const Hostdev *hostdev, const char *source, const char *xml, JsonObject *timings)
{
  g_autoptr(JsonObject) reply = json_object_new();
  json_object_set_string_member(reply, "alias", hostdev->alias);
  json_object_set_string_member(reply, "source", source);
  json_object_set_string_member(reply, "xml", xml);
  if (timings)
    json_object_set_object_member(reply, "timings", json_object_ref(timings));
  return json_node_init_object(json_node_alloc(), reply);
}

/*
 * attach_recorded() - @item's "attached" record, written once its client
 * has the answer and before any other request is read.  Until then its
 * record says "device-add", which a restart finishes as an attach when QEMU
 * holds every device of it (hotplug-reconcile.c): what the client was told
 * stands either way, and the answer does not wait for the write.
 */
static void
attach_recorded(Hotplug *hotplug, AttachItem *item)
{
  g_autoptr(GError) error = NULL;

  if (item->attached_record == NULL)
    return;   /* it waits for its device: recorded as such already */
  if (!state_journal_commit(hotplug->journal, g_steal_pointer(&item->attached_record), &error))
    g_warning("%s", error->message);
  g_clear_error(&error);
  /* a reused zpci is the device's now: its record names it among its QEMU devices */
  if (item->zpci_reused && item->commands->len > 1 &&
      !state_journal_forget_zpci_left(hotplug->journal,
                                      json_object_get_string_member_with_default(
                                          g_ptr_array_index(item->commands, 0), "id", NULL), &error))
    g_warning("%s", error->message);
}

/* Once the client has its answer: each attached device is recorded as
 * such, logged, and the other clients hear of it. */
static void
attach_announced(GTask *task)
{
  Op *op = g_task_get_task_data(task);

  state_journal_crash_point("answered");
  for (guint i = 0; i < op->items->len; i++)
    attach_recorded(op->hotplug, g_ptr_array_index(op->items, i));
  for (guint i = 0; i < op->attached->len; i++) {
    JsonObject *reply = g_ptr_array_index(op->attached, i);
    g_message("%s (%s) attached", json_object_get_string_member(reply, "alias"),
              json_object_get_string_member(reply, "source"));
    hotplug_emit(op->hotplug, "DEVICE_ATTACHED", reply);
  }
}

/* @item's "attached" record and live XML, made ready unless they are. */
static void
draft_attached(Hotplug *hotplug, AttachItem *item)
{
  if (item->attached_record != NULL)
    return;
  item->attached_xml = hostdev_format_xml(item->hostdev);
  item->attached_record = hotplug_journal_draft(hotplug, item->hostdev, item->attached_xml,
                                                STATE_ATTACHED, "done", item->commands,
                                                item->prep, FALSE);
}

/* The plan's last step, a device_add, waits for QEMU: every device's record
 * is formatted meanwhile.  A device_add sent again (a slot, port or alias
 * QEMU refused) drafts them again: the device may have changed.  Should the
 * device's record be written in between, state_journal_commit() applies its
 * draft afresh. */
static void
attach_last_step_sent(GTask *task)
{
  Op *op = g_task_get_task_data(task);

  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    g_clear_pointer(&item->attached_record, state_draft_free);
    g_clear_pointer(&item->attached_xml, g_free);
    if (!item->waits_for_device)
      draft_attached(op->hotplug, item);
  }
}

/* Every step is done: the devices are the VM's. */
static void
attach_done(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  JsonArray *devices = json_array_new();

  op->attached = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
  op->after_return = attach_announced;
  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    if (item->waits_for_device) {
      json_array_add_element(devices, hotplug_follow_accept_waiting(
          hotplug, g_steal_pointer(&item->hostdev), g_steal_pointer(&item->prep)));
      continue;
    }
    draft_attached(hotplug, item);
    Hostdev *live = g_steal_pointer(&item->hostdev);
    g_autofree char *source = hostdev_describe_source(live);
    g_autofree char *xml = g_steal_pointer(&item->attached_xml);

    vm_devices_add(hotplug->devices, live, g_steal_pointer(&item->prep));
    JsonNode *reply = attach_reply(live, source, xml, op->batch ? NULL : op->timings);
    g_ptr_array_add(op->attached, json_object_ref(json_node_get_object(reply)));
    json_array_add_element(devices, reply);
  }
  if (!op->batch) {
    JsonNode *reply = json_node_copy(json_array_get_element(devices, 0));
    json_array_unref(devices);
    hotplug_op_return(task, reply, NULL);
    return;
  }
  g_autoptr(JsonObject) reply = json_object_new();
  json_object_set_array_member(reply, "devices", devices);
  json_object_set_object_member(reply, "timings", json_object_ref(op->timings));
  hotplug_op_return(task, json_node_init_object(json_node_alloc(), reply), NULL);
}

/* A dry run shows the fdsets QEMU would give: the lowest ids not in use. */
static void
on_fdsets_listed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  JsonArray *fdsets = value && JSON_NODE_HOLDS_ARRAY(value) ? json_node_get_array(value) : NULL;
  gint next = 0;

  if (value == NULL) {
    hotplug_op_return(task, NULL, g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                              "cannot list QEMU's fd sets: %s", error->message));
    g_error_free(error);
    return;
  }
  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    if (item->usb == NULL)
      continue;
    for (gboolean taken = TRUE; taken; next += taken) {
      taken = FALSE;
      for (guint f = 0; fdsets && f < json_array_get_length(fdsets); f++)
        if (json_object_get_int_member_with_default(json_array_get_object_element(fdsets, f),
                                                    "fdset-id", -1) == next)
          taken = TRUE;
    }
    if (!hotplug_replan_with_fdset(item, next++, &error)) {
      hotplug_op_return(task, NULL, error);
      return;
    }
  }
  hotplug_op_return(task, hotplug_plan_describe(op), NULL);
}

static gboolean
has_usb_descriptor(const Op *op)
{
  for (guint i = 0; i < op->items->len; i++)
    if (((AttachItem *)g_ptr_array_index(op->items, i))->usb)
      return TRUE;
  return FALSE;
}

/* A dry run ends with the plan, as the attach would run it. */
static void
dry_run_reply(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  if (has_usb_descriptor(op))
    qmp_client_execute_async(op->hotplug->qmp, "query-fdsets", NULL, -1, 0, NULL,
                             on_fdsets_listed, task);
  else
    hotplug_op_return(task, hotplug_plan_describe(op), NULL);
}

/*
 * stranded_zpci() - a zpci device of ours that lost its target
 * Return: (nullable): one that @hostdev can take over: hostdevd's journal
 * records leaving it (same id, uid, fid, target, in this QEMU process), its
 * target id is free, and it agrees with the alias (when @alias_given) and
 * the uid/fid the XML asks for.  QEMU's word alone makes nothing ours.
 */
static GuestZpci *
stranded_zpci(Hotplug *hotplug, const GuestTopology *topology, const Hostdev *hostdev,
              gboolean alias_given)
{
  for (guint i = 0; i < topology->zpci->len; i++) {
    GuestZpci *zpci = g_ptr_array_index(topology->zpci, i);
    if (zpci->id == NULL || zpci->target == NULL ||
        g_strv_contains((const char *const *)topology->ids, zpci->target))
      continue;
    if ((alias_given && g_strcmp0(hostdev->alias, zpci->target) != 0) ||
        (hostdev->zpci.has_uid && hostdev->zpci.uid != zpci->uid) ||
        (hostdev->zpci.has_fid && hostdev->zpci.fid != zpci->fid))
      continue;
    if (state_journal_find_zpci_left(hotplug->journal, zpci->id, zpci->uid, zpci->fid,
                                     zpci->target, &hotplug->qemu) == NULL) {
      g_message("zpci '%s' (uid %u fid %u) has no target in QEMU, but hostdevd's journal does "
                "not record leaving it there: not reused", zpci->id, zpci->uid, zpci->fid);
      continue;
    }
    return zpci;
  }
  return NULL;
}

/*
 * taken_aliases() - every alias a new device must not get: those the
 * journal records (a device waiting for its IOMMU group, a release that
 * failed or finishes late: reusing one would let that record's end delete
 * the new device's), those the request's other devices have, and (when
 * given) QEMU's ids.
 */
static GStrv
taken_aliases(const Op *op, const AttachItem *except, const char *const *qemu_ids)
{
  GPtrArray *entries = state_journal_entries(op->hotplug->journal);
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();

  for (guint i = 0; i < entries->len; i++)
    g_strv_builder_add(builder, ((StateEntry *)g_ptr_array_index(entries, i))->alias);
  for (guint i = 0; i < op->items->len; i++) {
    const AttachItem *item = g_ptr_array_index(op->items, i);
    if (item != except && item->hostdev->alias)
      g_strv_builder_add(builder, item->hostdev->alias);
  }
  if (qemu_ids)
    g_strv_builder_addv(builder, (const char **)qemu_ids);
  return g_strv_builder_end(builder);
}

/* Return: (transfer full): libvirt's choice of alias from our own devices;
 * QEMU's ids (nullable) only matter when they clash. */
static char *
choose_alias(const Op *op, const AttachItem *item, const char *const *qemu_ids)
{
  g_auto(GStrv) ours = taken_aliases(op, item, NULL);
  char *alias = vm_devices_next_alias(op->hotplug->devices, (const char *const *)ours);
  if (qemu_ids && g_strv_contains(qemu_ids, alias)) {
    g_auto(GStrv) all = taken_aliases(op, item, qemu_ids);
    g_free(alias);
    alias = vm_devices_next_alias(op->hotplug->devices, (const char *const *)all);
  }
  return alias;
}

gboolean
hotplug_rename_device(GTask *task, AttachItem *item, const char *const *qemu_ids, GError **error)
{
  g_free(item->hostdev->alias);
  item->hostdev->alias = choose_alias(g_task_get_task_data(task), item, qemu_ids);
  item->context.id = item->hostdev->alias;
  g_clear_pointer(&item->commands, g_ptr_array_unref);
  item->commands = qemu_device_plan(item->hostdev, &item->context, error);
  /* the request's record names the new alias before the device's record does */
  return item->commands != NULL && hotplug_request_begin(g_task_get_task_data(task), error);
}

/*
 * The host steps planned stage by stage over the request's devices (as
 * libvirt prepares an array of devices: step 1 for all, then step 2 for
 * all): every claim first, so that a device another VM holds fails the
 * request before anything is bound; then every VFIO binding, one run that
 * the engine starts together (one IOMMU group's members in order).  The
 * other host steps follow device by device.
 */
static const AttachStepKind *const request_wide_steps[] = {
  &hotplug_step_claim, &hotplug_step_vfio_bind, NULL,
};

/* Return: whether @kind is one of @kinds (NULL-terminated). */
static gboolean
kind_in(const AttachStepKind *const *kinds, const AttachStepKind *kind)
{
  for (; *kinds; kinds++)
    if (*kinds == kind)
      return TRUE;
  return FALSE;
}

/* Each VFIO binding after another of its IOMMU group in the plan knows that one. */
static void
link_group_bindings(Op *op)
{
  for (guint i = 0; op->plan && i < op->plan->len; i++) {
    AttachStep *step = &g_array_index(op->plan, AttachStep, i);
    for (guint j = i; step->kind == &hotplug_step_vfio_bind && j-- > 0;) {
      AttachStep *earlier = &g_array_index(op->plan, AttachStep, j);
      if (earlier->kind == step->kind &&
          earlier->item->prep->vfio->group == step->item->prep->vfio->group) {
        step->item->bound_before = earlier->item;
        break;
      }
    }
  }
}

/* The steps of the attach, in order: the host preparation (request-wide
 * stages, then each device's other steps; an IOMMU group held whole by the
 * request is all on vfio-pci before QEMU opens it), QEMU's commands (a
 * multifunction slot's function 0 last), the verifications. */
static void
plan_steps(Op *op)
{
  for (const AttachStepKind *const *stage = request_wide_steps; *stage; stage++)
    for (guint i = 0; i < op->items->len; i++) {
      AttachItem *item = g_ptr_array_index(op->items, i);
      if (!item->waits_for_device && kind_in(item->ops->host_steps, *stage))
        hotplug_plan_add(op, *stage, item, 0);
    }
  link_group_bindings(op);
  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    for (const AttachStepKind *const *kind = item->ops->host_steps;
         *kind && !item->waits_for_device; kind++)
      if (!kind_in(request_wide_steps, *kind))
        hotplug_plan_add(op, *kind, item, 0);
  }
  /* a multifunction slot's functions 1-7 first, unseen by the guest; its
   * function 0 last, which announces the whole slot */
  for (guint pass = 0; pass < 2; pass++)
    for (guint i = 0; i < op->items->len; i++) {
      AttachItem *item = g_ptr_array_index(op->items, i);
      if ((item->slot_leader == NULL) != pass || item->waits_for_device)
        continue;
      for (guint c = 0; c < item->commands->len; c++)
        hotplug_plan_add(op, c == 0 && item->zpci_reused ? &hotplug_step_zpci_reuse
                                                         : &hotplug_step_device_add, item, c);
    }
  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    if (!item->waits_for_device && item->ops->verify)
      hotplug_plan_add(op, item->ops->verify, item, 0);
  }
  op->plan_finished = attach_done;
  op->last_step_sent = attach_last_step_sent;
}

/* The PCI slot (and zPCI ids) of @item: the lowest free ones, or those its XML asks for. */
gboolean
hotplug_place_pci(Op *op, AttachItem *item, GError **error)
{
  Hostdev *hostdev = item->hostdev;
  GuestTopology *topology = op->topology;
  const GuestPciBus *bus = NULL;
  PciAddress placed;

  item->context.s390x = guest_topology_has_zpci(topology);
  item->context.pcie_root = guest_topology_find_bus(topology, 0) &&
                            g_strcmp0(guest_topology_find_bus(topology, 0)->id, "pcie.0") == 0;
  if (item->slot_leader) {
    /* another function of its slot: where function 0 goes, at its own function */
    const AttachItem *leader = item->slot_leader;
    guint function = hostdev->pci_guest.present ? hostdev->pci_guest.addr.function
                                                : hostdev->pci_source.function;
    hostdev->pci_guest.present = TRUE;
    hostdev->pci_guest.addr = leader->hostdev->pci_guest.addr;
    hostdev->pci_guest.addr.function = function;
    item->context.pci_bus_id = leader->context.pci_bus_id;
    item->context.pci_slot = leader->context.pci_slot;
    item->context.pci_function = function;
    return TRUE;
  }
  /* s390x too: the guest addresses the device by its zPCI ids, but libvirt still gives it
   * a slot on the zPCI host bus, and so does hostdevd */
  if (!guest_pci_place(topology, hostdev->pci_guest.present ? &hostdev->pci_guest.addr : NULL,
                       &placed, &bus, error))
    return FALSE;
  hostdev->pci_guest.present = TRUE;
  hostdev->pci_guest.addr = placed;
  item->context.pci_bus_id = bus->id;
  item->context.pci_slot = placed.slot;
  item->context.pci_function = placed.function;
  /* the request's next device is placed with this one in the slot */
  GuestPciBus *taken = guest_topology_find_bus(topology, placed.bus);
  if (taken && taken->occupant[placed.slot] == NULL)
    taken->occupant[placed.slot] = g_strdup(hostdev->alias);
  if (!item->context.s390x)
    return TRUE;
  GuestZpci *reuse = stranded_zpci(op->hotplug, topology, hostdev, item->alias_given);
  guint uid, fid;
  if (reuse) {
    g_free(hostdev->alias);
    hostdev->alias = g_strdup(reuse->target);
    item->context.id = hostdev->alias;
    uid = reuse->uid;
    fid = reuse->fid;
    item->zpci_reused = TRUE;
    g_clear_pointer(&reuse->id, g_free);   /* one device of the request takes it */
    g_message("%s: reusing zpci uid %u fid %u left by an earlier attempt", hostdev->alias,
              uid, fid);
  } else if (!guest_zpci_assign(topology, hostdev->zpci.has_uid, hostdev->zpci.uid,
                                hostdev->zpci.has_fid, hostdev->zpci.fid, &uid, &fid, error)) {
    return FALSE;
  } else {
    /* the request's next device gets other ids */
    GuestZpci *assigned = g_new0(GuestZpci, 1);
    assigned->uid = uid;
    assigned->fid = fid;
    assigned->target = g_strdup(hostdev->alias);
    g_ptr_array_add(topology->zpci, assigned);
  }
  hostdev->zpci.has_uid = hostdev->zpci.has_fid = TRUE;
  hostdev->zpci.uid = uid;
  hostdev->zpci.fid = fid;
  return TRUE;
}

/* The USB port of @item: the one its XML names, or libvirt's choice of a free one. */
gboolean
hotplug_place_usb(Op *op, AttachItem *item, GError **error)
{
  Hostdev *hostdev = item->hostdev;
  guint bus;
  g_autofree char *port = NULL;

  /* a followed device coming back: the port kept for it while it waited is its own */
  if (op->reattach && item->usb_port_given)
    guest_usb_ports_give_back(op->hotplug->usb_ports, hostdev->usb_guest.bus,
                              hostdev->usb_guest.port, hostdev->alias);
  if (!guest_usb_place(op->hotplug->usb_ports, item->usb_bus_given, hostdev->usb_guest.bus,
                       item->usb_port_given ? hostdev->usb_guest.port : NULL, hostdev->alias,
                       &bus, &port, error))
    return FALSE;
  op->took_usb_ports = TRUE;
  hostdev->usb_guest.present = TRUE;
  hostdev->usb_guest.bus = bus;
  g_free(hostdev->usb_guest.port);
  hostdev->usb_guest.port = g_steal_pointer(&port);
  return TRUE;
}

/* name_device() - @item's alias: the XML's, or libvirt's choice. */
static gboolean
name_device(Op *op, AttachItem *item, const char *const *qemu_ids, GError **error)
{
  Hostdev *hostdev = item->hostdev;

  if (hostdev->alias == NULL) {
    hostdev->alias = choose_alias(op, item, qemu_ids);
  } else if (qemu_ids && g_strv_contains(qemu_ids, hostdev->alias)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "alias '%s' is already the id of a device in QEMU; "
                "choose another <alias name='ua-…'/> or leave it out", hostdev->alias);
    return FALSE;
  }
  return TRUE;
}

/* plan_device() - @item's guest address, zPCI ids and QEMU commands. */
static gboolean
plan_device(Op *op, AttachItem *item, GError **error)
{
  item->context = (QemuDeviceContext){ .id = item->hostdev->alias, .usb = item->usb };
  /* nothing goes to QEMU until its device appears (hotplug-follow.c) */
  if (item->waits_for_device) {
    item->commands = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
    return TRUE;
  }
  if (op->topology && item->ops->placed_on_pci_bus && !hotplug_place_pci(op, item, error))
    return FALSE;
  if (op->hotplug->usb_ports && item->ops->placed_on_usb_port &&
      !hotplug_place_usb(op, item, error))
    return FALSE;
  item->commands = qemu_device_plan(item->hostdev, &item->context, error);
  return item->commands != NULL;
}

/* Whether @a and @b of a request go into one guest slot: both name the same
 * guest slot, or neither names one and they are functions of one host slot. */
static gboolean
share_a_slot(const Hostdev *a, const Hostdev *b)
{
  if (a->type != HOSTDEV_TYPE_PCI || b->type != HOSTDEV_TYPE_PCI ||
      a->pci_guest.present != b->pci_guest.present)
    return FALSE;
  const PciAddress *x = a->pci_guest.present ? &a->pci_guest.addr : &a->pci_source;
  const PciAddress *y = b->pci_guest.present ? &b->pci_guest.addr : &b->pci_source;
  return x->domain == y->domain && x->bus == y->bus && x->slot == y->slot;
}

/* Return: the function @hostdev has in its guest slot. */
static guint
slot_function(const Hostdev *hostdev)
{
  return hostdev->pci_guest.present ? hostdev->pci_guest.addr.function
                                    : hostdev->pci_source.function;
}

/*
 * find_multifunction_slots() - devices of the request that share a guest
 * slot (their <address>es name one slot, or they are functions of one
 * host slot and name none) become one multifunction slot: its function 0
 * goes last, and carries multifunction='on' (the XML must say so when it
 * places the functions itself, as libvirt requires).  Host functions
 * without their function 0 in the request stay single devices.
 */
static gboolean
find_multifunction_slots(Op *op, GError **error)
{
  /* on s390x each function is a zPCI function of its own */
  if (op->topology == NULL || guest_topology_has_zpci(op->topology))
    return TRUE;
  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *leader = g_ptr_array_index(op->items, i);
    Hostdev *zero = leader->hostdev;
    if (zero->type != HOSTDEV_TYPE_PCI || slot_function(zero) != 0)
      continue;
    guint members = 0;
    for (guint j = 0; j < op->items->len; j++) {
      AttachItem *item = g_ptr_array_index(op->items, j);
      if (j == i || !share_a_slot(zero, item->hostdev))
        continue;
      if (slot_function(item->hostdev) == 0) {
        g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                    "devices %u and %u of <devices> both are function 0 of one guest slot; "
                    "give each function of a slot its own function number", i + 1, j + 1);
        return FALSE;
      }
      for (guint k = 0; k < j; k++) {
        AttachItem *other = g_ptr_array_index(op->items, k);
        if (other->slot_leader == leader &&
            slot_function(other->hostdev) == slot_function(item->hostdev)) {
          g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                      "devices %u and %u of <devices> both are function %u of one guest "
                      "slot; give each function of a slot its own function number", k + 1,
                      j + 1, slot_function(item->hostdev));
          return FALSE;
        }
      }
      item->slot_leader = leader;
      members++;
    }
    if (members == 0)
      continue;
    if (zero->pci_guest.present && !zero->pci_guest.multifunction) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "device %u of <devices> is function 0 of a guest slot that %u more device%s "
                  "of the request share: its <address> needs multifunction='on', as libvirt "
                  "requires", i + 1, members, members == 1 ? "" : "s");
      return FALSE;
    }
    zero->pci_guest.multifunction = zero->pci_guest.multifunction_explicit = TRUE;
  }
  return TRUE;
}

/* Prefix @error with which device of a <devices> request it is about. */
static void
name_device_of_request(const Op *op, guint index, GError *error)
{
  if (!op->batch || error == NULL)
    return;
  g_autofree char *what = op->items->len ? hostdev_describe_source(
      ((AttachItem *)g_ptr_array_index(op->items, index))->hostdev) : NULL;
  g_prefix_error(&error, "device %u of <devices> (%s): ", index + 1, what);
}

/*
 * attach_plan() - every read-only decision for every device of the
 * request (alias, guest address, zPCI ids, the exact commands), then the
 * steps; the plan runs (a dry run prints it instead).  Nothing changed
 * yet when it fails.
 */
static void
attach_plan(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  const char *const *qemu_ids = op->topology ? (const char *const *)op->topology->ids : NULL;
  GError *error = NULL;

  if (!find_multifunction_slots(op, &error)) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  for (guint i = 0; i < op->items->len; i++) {
    if (!name_device(op, g_ptr_array_index(op->items, i), qemu_ids, &error)) {
      name_device_of_request(op, i, error);
      hotplug_op_return(task, NULL, error);
      return;
    }
  }
  /* a slot's other functions go where its function 0 goes: placed after it */
  for (guint pass = 0; pass < 2; pass++)
    for (guint i = 0; i < op->items->len; i++) {
      AttachItem *item = g_ptr_array_index(op->items, i);
      if ((item->slot_leader != NULL) == pass && !plan_device(op, item, &error)) {
        name_device_of_request(op, i, error);
        hotplug_op_return(task, NULL, error);
        return;
      }
    }
  plan_steps(op);
  hotplug_plan_phase_mark(op, "checks");
  if (op->dry_run)
    dry_run_reply(task);
  else if (!hotplug_request_begin(op, &error))
    hotplug_op_return(task, NULL, error);
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
  if (op->topology == NULL ||
      !guest_topology_check_arch(op->topology, op->hotplug->qemu_arch, op->hotplug->qemu_arch_how,
                                 &error)) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  attach_plan(task);
}

/* Return: FALSE with @error when @hostdev clashes with what the VM already has. */
/* @reattach: a followed device coming back; the journal record of its alias is its own */
static gboolean
check_not_attached(Hotplug *hotplug, const Hostdev *hostdev, gboolean reattach, GError **error)
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
  /* one that goes back with it, its group's companion: that release would take it from QEMU */
  leaving = hostdev->type == HOSTDEV_TYPE_PCI
      ? hotplug_find_releasing_with(hotplug, &hostdev->pci_source) : NULL;
  if (leaving) {
    g_autofree char *what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "%s goes back to the host with %s, which left this VM and shares its IOMMU "
                "group, and that is not done yet; try again once `hostdevctl list` no longer "
                "shows %s (`hostdevctl detach-device-alias VM %s` retries a release that "
                "failed)", what, leaving->hostdev->alias, leaving->hostdev->alias,
                leaving->hostdev->alias);
    return FALSE;
  }
  if (!reattach && hostdev->alias && state_journal_find(hotplug->journal, hostdev->alias)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "alias '%s' still names a device that is being given back to the host; "
                "choose another <alias name='ua-…'/> or try again later", hostdev->alias);
    return FALSE;
  }
  return TRUE;
}

/* Return: FALSE with @error when item @index repeats an earlier device of the request. */
static gboolean
check_not_repeated(const Op *op, guint index, GError **error)
{
  const Hostdev *hostdev = ((AttachItem *)g_ptr_array_index(op->items, index))->hostdev;
  for (guint i = 0; i < index; i++) {
    const Hostdev *earlier = ((AttachItem *)g_ptr_array_index(op->items, i))->hostdev;
    if (hostdev_source_matches(earlier, hostdev) || hostdev_source_matches(hostdev, earlier)) {
      g_autofree char *what = hostdev_describe_source(hostdev);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "devices %u and %u of <devices> both name %s; name each host device once",
                  i + 1, index + 1, what);
      return FALSE;
    }
    if (hostdev->alias && g_strcmp0(hostdev->alias, earlier->alias) == 0) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "devices %u and %u of <devices> both ask for alias '%s'; give each its own",
                  i + 1, index + 1, hostdev->alias);
      return FALSE;
    }
  }
  return TRUE;
}

/*
 * pci_precheck() - every read-only check of a PCI device, so that a dry
 * run fails exactly where the attach would, before QEMU is asked: the
 * device exists and is no bridge, the host's IOMMU is usable, the device
 * is on vfio-pci when not managed, and its IOMMU group is viable (or may be
 * taken whole).
 */
static gboolean
pci_precheck(AttachItem *item, GError **error)
{
  const Hostdev *hostdev = item->hostdev;
  g_autofree char *driver = NULL;
  g_autoptr(GError) missing = NULL;

  driver = host_pci_get_driver(&hostdev->pci_source, &missing);
  if (missing) {
    g_propagate_error(error, g_steal_pointer(&missing));
    return FALSE;
  }
  /* before the IOMMU group is looked at: a bridge's group is about the devices behind it */
  if (!host_pci_check_not_bridge(&hostdev->pci_source, error))
    return FALSE;
  if (!vfio_check_iommu(error) || !host_prep_vfio_begin(item->prep, hostdev, error))
    return FALSE;
  /* a release under way in its group chose, when it began, to give the group's claim up */
  VmDevice *leaving = hotplug_find_releasing_in_group(item->hotplug, item->prep->vfio->group);
  if (leaving) {
    g_autofree char *what = hostdev_describe_source(hostdev);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "%s is in IOMMU group %d with %s, which left this VM and is still being "
                "given back to the host; try again once `hostdevctl list` no longer shows %s "
                "and the DEVICE_DETACHED event came", what, item->prep->vfio->group,
                leaving->hostdev->alias, leaving->hostdev->alias);
    return FALSE;
  }
  if (!hostdev->managed && !host_pci_check_assignable(&hostdev->pci_source, FALSE, error))
    return FALSE;
  if (item->hotplug->take_whole_group && hostdev->managed)
    return TRUE;
  item->prep->vfio->joining = item->joining ? g_array_ref(item->joining) : NULL;
  if (vfio_group_check_viable_joining(item->prep->vfio->group, &hostdev->pci_source,
                                      item->joining, error))
    return TRUE;
  /* the devices in the way: one request holding them all makes the group viable */
  if (error && *error) {
    GError *not_viable = *error;
    *error = g_error_new(not_viable->domain, not_viable->code,
                         "%s%s; or attach them with it in one request: a <devices> element "
                         "holding a <hostdev> for each", item->joining
                         ? "the request does not hold every endpoint of the IOMMU group: " : "",
                         not_viable->message);
    g_error_free(not_viable);
  }
  return FALSE;
}

/* Each PCI function of the request knows the others: an IOMMU group the
 * request holds whole is viable once they are all bound. */
static void
note_joining_functions(Op *op)
{
  for (guint i = 0; op->items->len > 1 && i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    if (item->hostdev->type != HOSTDEV_TYPE_PCI)
      continue;
    item->joining = g_array_new(FALSE, FALSE, sizeof(PciAddress));
    for (guint j = 0; j < op->items->len; j++) {
      const AttachItem *other = g_ptr_array_index(op->items, j);
      if (j != i && other->hostdev->type == HOSTDEV_TYPE_PCI)
        g_array_append_val(item->joining, other->hostdev->pci_source);
    }
  }
}

/* ---- what differs by type ------------------------------------------------ */

static gboolean
usb_resolve(AttachItem *item, GError **error)
{
  g_autoptr(GError) local = NULL;
  item->usb = host_usb_resolve(item->hostdev, &local);
  if (local && !hotplug_follow_may_wait(item, local)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  hotplug_follow_note_resolved(item);
  if (item->usb) {
    /* Keep where it was found, as libvirt does, so detach by address matches too. */
    item->hostdev->usb.has_address = TRUE;
    item->hostdev->usb.bus = item->usb->bus;
    item->hostdev->usb.device = item->usb->device;
  }
  return TRUE;
}

/* The mediated device must exist: its parent, type and UUID are what the policy decides on. */
static gboolean
mdev_resolve(AttachItem *item, GError **error)
{
  item->mdev = mdev_device_find(item->hostdev->mdev.uuid, error);
  return item->mdev != NULL;
}

static gboolean
usb_policy_facts(const AttachItem *item, PolicyDeviceFacts *facts)
{
  const Hostdev *hostdev = item->hostdev;
  facts->type = POLICY_DEVICE_USB;
  facts->usb_ids_known = item->usb || hostdev->usb.has_vendor_product;
  facts->usb_vendor = item->usb ? item->usb->vendor : hostdev->usb.vendor;
  facts->usb_product = item->usb ? item->usb->product : hostdev->usb.product;
  return TRUE;
}

static gboolean
pci_policy_facts(const AttachItem *item, PolicyDeviceFacts *facts)
{
  hotplug_pci_policy_facts(&item->hostdev->pci_source, facts);
  return TRUE;
}

/* A mediated device is a slice of its parent: the parent's PCI facts, the
 * type, and whose UUID it is. */
static gboolean
mdev_policy_facts(const AttachItem *item, PolicyDeviceFacts *facts)
{
  const MdevDevice *mdev = item->mdev;
  PciAddress parent;

  if (mdev->parent && pci_address_parse(mdev->parent, &parent, NULL)) {
    guint vendor, device, class_code;
    hotplug_pci_policy_facts(&parent, facts);
    facts->mdev_parent_is_pci = host_pci_read_ids(&parent, &vendor, &device, &class_code);
    facts->boot_vga = FALSE;   /* a slice leaves the host its display */
  }
  facts->type = POLICY_DEVICE_MDEV;
  facts->mdev_uuid = item->hostdev->mdev.uuid;
  facts->mdev_type = mdev->type;
  facts->mdev_parent = mdev->parent;
  facts->mdev_uuid_derived = mdev_uuid_is_version3(item->hostdev->mdev.uuid);
  facts->mdev_uuid_own = mdev_uuid_vm_index(item->hostdev->mdev.uuid, item->hotplug->vm, NULL);
  return TRUE;
}

/* A VFIO function QEMU had open is disabled again only once QEMU closed it. */
static gboolean
pci_let_go_in_kernel(const VmDevice *device)
{
  return device->prep && device->prep->vfio && host_pci_is_disabled(&device->prep->vfio->addr);
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
    .placed_on_usb_port = TRUE,
    .resolve = usb_resolve,
    .policy_facts = usb_policy_facts,
    .host_steps = usb_host_steps,
    .verify = &hotplug_step_verify_usb,
  },
  [HOSTDEV_TYPE_PCI] = {
    .unplug_needs_guest = TRUE,
    .pins_guest_memory = TRUE,
    .placed_on_pci_bus = TRUE,
    .resolve = pci_precheck,
    .policy_facts = pci_policy_facts,
    .host_steps = pci_host_steps,
    .let_go_in_kernel = pci_let_go_in_kernel,
    /* none: hostdevd chose its bus and address, and QEMU answers device_add
     * only once the device is realized and plugged there (as for USB on a
     * chosen port); asking again would only cost a round trip */
  },
  [HOSTDEV_TYPE_MDEV] = {
    .unplug_needs_guest = TRUE,
    .pins_guest_memory = TRUE,
    .placed_on_pci_bus = TRUE,
    .resolve = mdev_resolve,
    .policy_facts = mdev_policy_facts,
    .host_steps = mdev_host_steps,
  },
};

const HotplugTypeOps *
hotplug_type_ops(HostdevType type)
{
  g_assert((gsize)type < G_N_ELEMENTS(type_ops) && type_ops[type].resolve);
  return &type_ops[type];
}

static void attach_placed_on_usb(GTask *task);

static void
on_usb_ports(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;
  GuestUsbPorts *ports = guest_usb_ports_query_finish(result, &error);

  if (ports == NULL) {
    hotplug_op_return(task, NULL, error);
    return;
  }
  /* an operation that ran meanwhile may have read them too */
  hotplug_forget_usb_ports(op->hotplug);
  op->hotplug->usb_ports = ports;
  hotplug_follow_reserve_usb_ports(op->hotplug, ports);
  attach_placed_on_usb(task);
}

static void
attach_checked(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  /*
   * A USB device takes a port hostdevd chooses, as libvirt does, from the
   * port map read once per QEMU (x-query-usb lists the taken ports) and
   * kept up to date since; a QEMU without x-query-usb chooses itself.
   */
  gboolean usb = FALSE;
  for (guint i = 0; i < op->items->len; i++)
    usb |= ((AttachItem *)g_ptr_array_index(op->items, i))->ops->placed_on_usb_port;
  if (usb && op->hotplug->has_x_query_usb && op->hotplug->usb_ports == NULL)
    guest_usb_ports_query_async(op->hotplug->qmp, NULL, on_usb_ports, task);
  else
    attach_placed_on_usb(task);
}

static void
attach_placed_on_usb(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  /*
   * A PCI device needs the bus layout.  A USB device needs no more: an
   * alias that clashes with a foreign device is corrected once when QEMU
   * says so.
   */
  gboolean placed = op->dry_run;
  for (guint i = 0; i < op->items->len; i++)
    placed |= ((AttachItem *)g_ptr_array_index(op->items, i))->ops->placed_on_pci_bus;
  if (placed) {
    /* one device placed from the device list QEMU last gave (kept up to date
     * since) costs no round trip; a clash with a device added behind
     * hostdevd's back is placed again from a fresh list (hotplug-steps.c).
     * A dry run and a request of several devices ask QEMU. */
    gboolean reuse = !op->dry_run && op->items->len == 1;
    hotplug_ask_guest_memory(task);
    guest_topology_query_async(op->hotplug->qmp, reuse, NULL, on_attach_topology, task);
  } else
    attach_plan(task);
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

/* Every device of the request, checked as the attach would: nothing changes yet. */
static gboolean
check_request(Op *op, GError **error)
{
  for (guint i = 0; i < op->items->len; i++) {
    AttachItem *item = g_ptr_array_index(op->items, i);
    GError *local = NULL;
    if (!check_not_repeated(op, i, error))
      return FALSE;
    if (!check_not_attached(op->hotplug, item->hostdev, op->reattach, &local) ||
        !hotplug_policy_allows_xml(item, &local) || !item->ops->resolve(item, &local) ||
        (op->reattach && item->usb == NULL &&
         !(local = g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                               "its USB device is not on the host (any more)"))) ||
        !hotplug_policy_allows(item, i, &local)) {
      name_device_of_request(op, i, local);
      g_propagate_error(error, local);
      return FALSE;
    }
  }
  return TRUE;
}

static void
attach_start(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  op->phase_start = g_get_monotonic_time();
  note_joining_functions(op);
  if (!check_request(op, &error)) {
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
  GError *error = NULL;
  g_autoptr(GPtrArray) devices = hostdev_parse_request(xml, strlen(xml), &op->batch, &error);

  op->dry_run = dry_run;
  if (devices == NULL) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  op->items = g_ptr_array_new_with_free_func((GDestroyNotify)attach_item_free);
  for (guint i = 0; i < devices->len; i++)
    g_ptr_array_add(op->items, attach_item_new(hotplug, g_ptr_array_steal_index(devices, i--)));
  hotplug_op_submit(task, NULL);
}

void
hotplug_reattach_async(Hotplug *hotplug, Hostdev *hostdev, GAsyncReadyCallback callback,
                       gpointer user_data)
{
  GTask *task = hotplug_op_new(hotplug, attach_start, hotplug_attach_async, callback, user_data);
  Op *op = g_task_get_task_data(task);

  op->reattach = TRUE;
  op->items = g_ptr_array_new_with_free_func((GDestroyNotify)attach_item_free);
  g_ptr_array_add(op->items, attach_item_new(hotplug, hostdev));
  hotplug_op_submit(task, NULL);
}

JsonNode *
hotplug_attach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

