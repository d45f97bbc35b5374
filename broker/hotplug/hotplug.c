/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hotplug-private.h"
#include "claims.h"
#include "host-root.h"
#include "memlock.h"

#include <string.h>

AttachItem *
attach_item_new(Hotplug *hotplug, Hostdev *hostdev)
{
  AttachItem *item = g_new0(AttachItem, 1);
  item->hotplug = hotplug;
  item->hostdev = hostdev;
  item->ops = hotplug_type_ops(hostdev->type);
  item->alias_given = hostdev->alias != NULL;
  item->usb_bus_given = hostdev->type == HOSTDEV_TYPE_USB && hostdev->usb_guest.present;
  item->usb_port_given = item->usb_bus_given && hostdev->usb_guest.port != NULL;
  item->pci_addr_given = hostdev->pci_guest.present;
  item->prep = host_prep_new();
  return item;
}

void
attach_item_free(AttachItem *item)
{
  g_clear_pointer(&item->hostdev, hostdev_free);
  g_clear_pointer(&item->usb, host_usb_device_free);
  g_clear_pointer(&item->mdev, mdev_device_free);
  g_clear_pointer(&item->prep, host_prep_free);
  g_free(item->usb_hostdevice);
  g_clear_pointer(&item->commands, g_ptr_array_unref);
  g_clear_pointer(&item->joining, g_array_unref);
  g_clear_pointer(&item->attached_record, state_draft_free);
  g_free(item->attached_xml);
  g_free(item);
}

static void
op_free(Op *op)
{
  g_clear_pointer(&op->items, g_ptr_array_unref);
  g_clear_pointer(&op->attached, g_ptr_array_unref);
  g_clear_pointer(&op->hostdev, hostdev_free);
  g_clear_pointer(&op->topology, guest_topology_free);
  g_clear_pointer(&op->guest_memory, json_node_unref);
  g_clear_error(&op->guest_memory_error);
  g_clear_error(&op->host_ram_error);
  if (op->timings)
    json_object_unref(op->timings);
  if (op->plan)
    g_array_unref(op->plan);
  g_clear_error(&op->failure);
  g_clear_object(&op->wait_cancel);
  g_free(op->request);
  g_free(op->alias);
  g_free(op->source);
  g_strfreev(op->slot);
  g_free(op->outcome);
  g_free(op);
}

gboolean
hotplug_qemu_connected(Hotplug *hotplug)
{
  return hotplug->qmp && qmp_client_is_connected(hotplug->qmp);
}

ClaimOwner
hotplug_claim_owner(const Hotplug *hotplug)
{
  return (ClaimOwner){ .broker = hotplug->self.pid, .qemu = hotplug->qemu.pid,
                       .broker_start_time = hotplug->self.start_time,
                       .qemu_start_time = hotplug->qemu.start_time };
}

gboolean
hotplug_claim_again(Hotplug *hotplug, const char *key, GError **error)
{
  ClaimOwner owner = hotplug_claim_owner(hotplug);
  return claims_acquire(hotplug->runtime_dir, hotplug->vm, key, &owner, error);
}

char *
hotplug_held_elsewhere(Hotplug *hotplug, const HostPrep *prep)
{
  for (guint i = 0; prep && i < prep->claims->len; i++) {
    const char *key = g_ptr_array_index(prep->claims, i);
    g_autoptr(Claim) claim = claims_lookup_held_elsewhere(hotplug->runtime_dir, key,
                                                          hotplug->vm);
    if (claim)
      return g_strdup_printf("%s (VM '%s')", key, claim->vm);
  }
  return NULL;
}

void
hotplug_emit(Hotplug *hotplug, const char *name, JsonObject *data)
{
  hotplug_metrics_count_event(hotplug->metrics, name);
  if (hotplug->emit)
    hotplug->emit(name, data, hotplug->emit_data);
}

/* ---- the queue ---------------------------------------------------------- */

static void
queue_start_head(Hotplug *hotplug)
{
  GTask *head = g_queue_peek_head(&hotplug->queue);
  if (head) {
    Op *op = g_task_get_task_data(head);
    op->start(head);
  }
}

void
hotplug_op_let_queue_go(GTask *task)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;

  g_assert(g_queue_peek_head(&hotplug->queue) == task && !op->dequeued);
  g_queue_pop_head(&hotplug->queue);
  op->dequeued = TRUE;
  queue_start_head(hotplug);
}

/* hotplug_op_return() - complete the running operation and start the next one. */
void
hotplug_op_return(GTask *task, JsonNode *value, GError *error)
{
  Op *op = g_task_get_task_data(task);
  Hotplug *hotplug = op->hotplug;
  gboolean dequeued = op->dequeued;

  if (!dequeued) {
    g_assert(g_queue_peek_head(&hotplug->queue) == task);
    g_queue_pop_head(&hotplug->queue);
  }
  /* the request is over, kept or undone: a crash from now on leaves its devices as they are */
  hotplug_request_end(op);
  /* ports a dry run or a failed attach took are not in QEMU: read them again next time */
  if (op->took_usb_ports && (error || op->dry_run))
    hotplug_forget_usb_ports(hotplug);
  if (error)
    g_task_return_error(task, error);
  else
    g_task_return_pointer(task, value, (GDestroyNotify)json_node_unref);
  if (op->after_return)
    op->after_return(task);
  g_object_unref(task);
  if (!dequeued)
    queue_start_head(hotplug);
}

static void
op_enqueue(Hotplug *hotplug, GTask *task)
{
  g_queue_push_tail(&hotplug->queue, task);
  if (g_queue_get_length(&hotplug->queue) == 1)
    queue_start_head(hotplug);
}

/* hotplug_op_submit() - parse @xml (when given) into the operation and queue it; bad XML fails at once. */
void
hotplug_op_submit(GTask *task, const char *xml)
{
  Op *op = g_task_get_task_data(task);
  GError *error = NULL;

  if (xml && (op->hostdev = hostdev_parse_xml(xml, strlen(xml), &error)) == NULL) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  op_enqueue(op->hotplug, task);
}

GTask *
hotplug_op_new(Hotplug *hotplug, OpStartFunc start, gpointer source_tag,
       GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, NULL, callback, user_data);
  Op *op = g_new0(Op, 1);
  op->hotplug = hotplug;
  op->start = start;
  g_task_set_task_data(task, op, (GDestroyNotify)op_free);
  g_task_set_source_tag(task, source_tag);
  return task;
}

/* ---- QEMU look-ups -------------------------------------------------------- */

/* Return: the class a failed QMP command is reported with. */
int
hotplug_qemu_failure_code(const GError *error)
{
  return g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT) ? HOSTDEVD_ERROR_TIMEOUT
                                                              : HOSTDEVD_ERROR_QEMU_ERROR;
}

/* Return: (transfer full): the ids of QEMU's user-created devices (qom-list /machine/peripheral). */
GStrv
hotplug_peripheral_ids(JsonNode *qom_list)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();

  if (qom_list && JSON_NODE_HOLDS_ARRAY(qom_list)) {
    JsonArray *entries = json_node_get_array(qom_list);
    for (guint i = 0; i < json_array_get_length(entries); i++) {
      JsonNode *node = json_array_get_element(entries, i);
      if (!JSON_NODE_HOLDS_OBJECT(node))
        continue;
      JsonObject *entry = json_node_get_object(node);
      const char *type = json_object_get_string_member_with_default(entry, "type", "");
      const char *name = json_object_get_string_member_with_default(entry, "name", NULL);
      if (name && g_str_has_prefix(type, "child<"))
        g_strv_builder_add(builder, name);
    }
  }
  return g_strv_builder_end(builder);
}

void
hotplug_list_peripherals(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer data)
{
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "path", "/machine/peripheral");
  qmp_client_execute_async(hotplug->qmp, "qom-list", args, -1, 0, NULL, callback, data);
}

/*
 * One device, not the whole list: QEMU answers with the type of
 * /machine/peripheral/@alias, or DeviceNotFound once it is gone.  The
 * answer's size does not grow with the number of devices the VM has.
 */
void
hotplug_query_present(Hotplug *hotplug, const char *alias, GAsyncReadyCallback callback,
                      gpointer data)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autofree char *path = g_strconcat("/machine/peripheral/", alias, NULL);
  json_object_set_string_member(args, "path", path);
  json_object_set_string_member(args, "property", "type");
  qmp_client_execute_async(hotplug->qmp, "qom-get", args, -1, 0, NULL, callback, data);
}

HotplugPresence
hotplug_query_present_finish(GAsyncResult *result, GObject *source, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &local);

  if (g_error_matches(local, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND))
    return HOTPLUG_ABSENT;
  if (value && JSON_NODE_HOLDS_VALUE(value) &&
      json_node_get_value_type(value) == G_TYPE_STRING)
    return HOTPLUG_PRESENT;
  if (local)
    g_propagate_error(error, g_steal_pointer(&local));
  else
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                        "QEMU answered the device's type with something not a string");
  return HOTPLUG_PRESENCE_UNKNOWN;
}

static void
on_device_del_logged(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *id = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);
  if (error && !g_error_matches(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND))
    g_warning("could not remove %s from QEMU: %s", id, error->message);
}

/* hotplug_remove_from_qemu() - device_del whose outcome only matters for the log. */
void
hotplug_remove_from_qemu(Hotplug *hotplug, const char *id)
{
  if (!hotplug_qemu_connected(hotplug))
    return;
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_string_member(args, "id", id);
  qmp_client_execute_async(hotplug->qmp, "device_del", args, -1, 0, NULL,
                           on_device_del_logged, g_strdup(id));
}

/* ---- journal --------------------------------------------------------------- */

/* Return: (transfer full): the QEMU ids of the commands, in order. */
static GStrv
command_ids(GPtrArray *commands)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  for (guint i = 0; commands && i < commands->len; i++)
    g_strv_builder_add(builder, json_object_get_string_member(g_ptr_array_index(commands, i), "id"));
  return g_strv_builder_end(builder);
}

/* hotplug_journal_device() - record @hostdev's @state and the @step about to take effect.
 * @commands, @prep: (nullable): keep what was recorded before when NULL */
gboolean
hotplug_journal_device(Hotplug *hotplug, const Hostdev *hostdev, StateDeviceState state,
               const char *step, GPtrArray *commands, const HostPrep *prep,
               gboolean binding_in_flight, GError **error)
{
  g_autofree char *xml = hostdev_format_xml(hostdev);
  return state_journal_commit(hotplug->journal,
                              hotplug_journal_draft(hotplug, hostdev, xml, state, step, commands,
                                                    prep, binding_in_flight),
                              error);
}

StateDraft *
hotplug_journal_draft(Hotplug *hotplug, const Hostdev *hostdev, const char *xml,
                      StateDeviceState state, const char *step, GPtrArray *commands,
                      const HostPrep *prep, gboolean binding_in_flight)
{
  g_auto(GStrv) ids = commands ? command_ids(commands) : NULL;
  g_autofree char *host = prep ? host_prep_to_journal(prep, binding_in_flight) : NULL;
  return state_journal_draft(hotplug->journal, hostdev->alias, state, step, xml,
                             (const char *const *)ids, host,
                             hotplug->qemu.pid > 0 ? &hotplug->qemu : NULL);
}

void
hotplug_journal_forget(Hotplug *hotplug, const char *alias)
{
  g_autoptr(GError) error = NULL;
  if (!state_journal_forget(hotplug->journal, alias, &error))
    g_warning("%s", error->message);
}

/* ---- release: the one way a device leaves the VM ----------------------- */

typedef struct {
  HotplugContinue then;
  gpointer data;
  gint fdset_id;
} FdsetRemoval;

static void
on_fdset_removed(GObject *source, GAsyncResult *result, gpointer user_data)
{
  FdsetRemoval *removal = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (error && !g_error_matches(error, QMP_ERROR, QMP_ERROR_DISCONNECTED))
    g_warning("could not drop fdset %d from QEMU: %s", removal->fdset_id, error->message);
  removal->then(removal->data);
  g_free(removal);
}

void
hotplug_remove_fdset(Hotplug *hotplug, HostPrep *prep, HotplugContinue then, gpointer data)
{
  if (prep == NULL || prep->fdset_id < 0 || !hotplug_qemu_connected(hotplug)) {
    then(data);
    return;
  }
  FdsetRemoval *removal = g_new0(FdsetRemoval, 1);
  removal->then = then;
  removal->data = data;
  removal->fdset_id = prep->fdset_id;
  g_autoptr(JsonObject) args = json_object_new();
  json_object_set_int_member(args, "fdset-id", prep->fdset_id);
  prep->fdset_id = -1;
  qmp_client_execute_async(hotplug->qmp, "remove-fd", args, -1, 0, NULL, on_fdset_removed,
                           removal);
}

/*
 * A release gives the host its device back, then forgets it.  Running
 * releases are counted so that hotplug_release_all_async() can wait for
 * all of them before hostdevd exits.
 */
typedef struct {
  Hotplug *hotplug;
  VmDevice *device;      /* owned: already out of the registry */
  char *why;
  GTask *then;           /* (nullable) the operation to finish after */
  JsonNode *reply;       /* its reply */
  gboolean folded;       /* waiting: its binding is undone with its group's last device */
  guint attempts;        /* host releases tried so far */
  char *failure;         /* why the last attempt failed, once given up */
} Release;

/* A failed host release is tried this often, RELEASE_RETRY_FIRST_MS apart and doubling. */
#define RELEASE_ATTEMPTS 3
#define RELEASE_RETRY_FIRST_MS 500

static void
release_free(Release *release)
{
  if (release->then)
    hotplug_op_return(release->then, g_steal_pointer(&release->reply), NULL);
  g_clear_pointer(&release->reply, json_node_unref);
  g_free(release->why);
  g_free(release->failure);
  vm_device_free(release->device);
  g_free(release);
}

static void release_group_waiters(Hotplug *hotplug, int group);

/* One more release is running (or about to start): hotplug_drain_async() waits for it. */
static void
releases_hold(Hotplug *hotplug)
{
  hotplug->releases_pending++;
}

static void
releases_unhold(Hotplug *hotplug)
{
  if (--hotplug->releases_pending > 0)
    return;
  while (hotplug->drain_waiters->len > 0) {
    GTask *task = g_ptr_array_steal_index(hotplug->drain_waiters, 0);
    g_task_return_boolean(task, TRUE);
    g_object_unref(task);
  }
}

/* Return: (nullable): the first device of the release lists @lists (NULL-ended) that @matches. */
static VmDevice *
find_released(GPtrArray *const *lists, gboolean (*matches)(const VmDevice *, gconstpointer),
              gconstpointer data)
{
  for (; *lists; lists++)
    for (guint i = 0; i < (*lists)->len; i++) {
      VmDevice *device = ((Release *)g_ptr_array_index(*lists, i))->device;
      if (matches(device, data))
        return device;
    }
  return NULL;
}

typedef struct {
  const Hostdev *hostdev;
  const char *alias;
} LeavingQuery;

static gboolean
is_queried(const VmDevice *device, gconstpointer data)
{
  const LeavingQuery *query = data;
  return (query->hostdev && hostdev_source_matches(query->hostdev, device->hostdev)) ||
         (query->alias && g_strcmp0(query->alias, device->hostdev->alias) == 0);
}

VmDevice *
hotplug_find_leaving(Hotplug *hotplug, const Hostdev *hostdev, const char *alias)
{
  GPtrArray *lists[] = { hotplug->releasing, hotplug->group_waiting, hotplug->failed, NULL };
  return find_released(lists, is_queried, &(LeavingQuery){ hostdev, alias });
}

static gboolean
gives_back_companion(const VmDevice *device, gconstpointer addr)
{
  return device->prep && device->prep->vfio &&
         vfio_record_find_companion(device->prep->vfio, addr) != NULL;
}

VmDevice *
hotplug_find_releasing_with(Hotplug *hotplug, const PciAddress *addr)
{
  /* a device waiting for its group goes back only once the whole group has left */
  GPtrArray *lists[] = { hotplug->releasing, hotplug->failed, NULL };
  return find_released(lists, gives_back_companion, addr);
}

static gboolean
in_group(const VmDevice *device, gconstpointer group)
{
  return device->prep && device->prep->vfio && device->prep->vfio->group == *(const int *)group;
}

VmDevice *
hotplug_find_releasing_in_group(Hotplug *hotplug, int group)
{
  GPtrArray *lists[] = { hotplug->releasing, NULL };
  return find_released(lists, in_group, &group);
}

/* Return: whether a device of this VM other than @prep's, attached or
 * waiting for its IOMMU group (not folded into a release), still names @key. */
static gboolean
claim_shared(Hotplug *hotplug, const HostPrep *prep, const char *key)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);

  for (guint i = 0; i < all->len; i++) {
    const VmDevice *device = g_ptr_array_index(all, i);
    if (device->prep != prep && host_prep_holds_claim(device->prep, key))
      return TRUE;
  }
  for (guint i = 0; i < hotplug->group_waiting->len; i++) {
    const Release *waiting = g_ptr_array_index(hotplug->group_waiting, i);
    if (waiting->device->prep != prep && !waiting->folded &&
        host_prep_holds_claim(waiting->device->prep, key))
      return TRUE;
  }
  return FALSE;
}

/*
 * hotplug_keep_shared_claims() - a claim stays while another device of
 * this VM (attached, or waiting for the group) still names it: the IOMMU
 * group's, which every device of the group holds, and a group partner's
 * that one device took on (host_prep_claim()) and another attached since.
 * Only the last one gives it up.  @prep's device is out of the registry
 * already (or was never in it); a waiter folded into this release leaves
 * with it and keeps nothing.
 */
void
hotplug_keep_shared_claims(Hotplug *hotplug, HostPrep *prep)
{
  for (guint i = 0; prep && i < prep->claims->len;) {
    if (claim_shared(hotplug, prep, g_ptr_array_index(prep->claims, i)))
      g_ptr_array_remove_index(prep->claims, i);
    else
      i++;
  }
}

void
hotplug_restore_memlock_if_unused(Hotplug *hotplug)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  g_autoptr(GError) error = NULL;

  if (!hotplug->memlock_saved || hotplug->group_waiting->len > 0)
    return;
  for (guint i = 0; i < all->len; i++)
    if (hotplug_type_ops(((VmDevice *)g_ptr_array_index(all, i))->hostdev->type)->pins_guest_memory)
      return;
  hotplug->memlock_saved = FALSE;
  if (!hotplug_qemu_connected(hotplug))
    return;
  if (memlock_restore(qmp_client_get_peer_pid(hotplug->qmp), hotplug->memlock_soft,
                      hotplug->memlock_hard, &error))
    g_message("QEMU's locked-memory limit is back to what it was before VFIO");
  else
    g_warning("%s", error->message);
}

static void
release_finish(Release *release, const GError *error)
{
  Hotplug *hotplug = release->hotplug;
  VmDevice *device = release->device;
  g_autofree char *source = hostdev_describe_source(device->hostdev);
  const char *alias = device->hostdev->alias;
  int group = device->prep && device->prep->vfio ? device->prep->vfio->group : -1;

  if (error) {
    /* keep the journal entry and list it: a detach of it or a restart tries again */
    g_warning("%s (%s): giving it back to the host failed after %u attempt(s): %s; "
              "`hostdevctl detach-device-alias VM %s` tries again", alias, source,
              release->attempts, error->message, alias);
  } else {
    hotplug_journal_forget(hotplug, alias);
    /* the client waiting for this detach is answered first, as an attach's is: the log
     * line, the event and its audit records tell others what it already knows */
    if (release->then)
      hotplug_op_return(g_steal_pointer(&release->then), g_steal_pointer(&release->reply), NULL);
    g_message("%s (%s) released: %s", alias, source, release->why);
  }
  g_autoptr(JsonObject) data = json_object_new();
  json_object_set_string_member(data, "alias", alias);
  json_object_set_string_member(data, "source", source);
  json_object_set_string_member(data, "reason", release->why);
  if (error)
    json_object_set_string_member(data, "host-error", error->message);
  hotplug_emit(hotplug, "DEVICE_DETACHED", data);

  g_ptr_array_remove(hotplug->releasing, release);
  if (release->then && error && release->reply && JSON_NODE_HOLDS_OBJECT(release->reply))
    json_object_set_string_member(json_node_get_object(release->reply), "host-error",
                                  error->message);
  if (error) {
    hotplug_device_enter_anyway(hotplug, device, VM_DEVICE_RELEASE_FAILED);
    if (release->then)
      hotplug_op_return(g_steal_pointer(&release->then), g_steal_pointer(&release->reply), NULL);
    g_free(release->failure);
    release->failure = g_strdup(error->message);
    g_ptr_array_add(hotplug->failed, release);
  } else {
    release_free(release);
  }

  if (group >= 0)
    release_group_waiters(hotplug, group);
  hotplug_restore_memlock_if_unused(hotplug);
  releases_unhold(hotplug);
}

static void release_host_after_fdset(gpointer data);
static void on_usb_revoked(GObject *source, GAsyncResult *result, gpointer user_data);
static void release_host_prep(Release *release);

static gboolean
on_release_retry(gpointer data)
{
  release_host_after_fdset(data);
  return G_SOURCE_REMOVE;
}

/*
 * A host release that failed is tried again a little later (the undo looks
 * at the device's real state, so a retry redoes only what is left): a
 * probe that bound nothing, a driver still busy.  A device QEMU still
 * holds is not retried here: the kernel finishes that unbind on its own.
 */
static void
on_host_released(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Release *release = user_data;
  g_autoptr(GError) error = NULL;

  release->attempts++;
  if (!host_prep_release_finish(result, &error) && release->attempts < RELEASE_ATTEMPTS &&
      !g_error_matches(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_TIMEOUT)) {
    guint delay = RELEASE_RETRY_FIRST_MS << (release->attempts - 1);
    g_message("%s: giving it back to the host failed (%s); trying again in %u ms",
              release->device->hostdev->alias, error->message, delay);
    g_timeout_add(delay, on_release_retry, release);
    return;
  }
  release_finish(release, error);
}

static void
release_host_after_fdset(gpointer data)
{
  Release *release = data;
  HostPrep *prep = release->device->prep;
  hotplug_keep_shared_claims(release->hotplug, prep);
  if (prep == NULL) {
    release_finish(release, NULL);
    return;
  }
  /* every record is checked against who owns the device now, before it is acted on */
  g_autofree char *holder = hotplug_held_elsewhere(release->hotplug, prep);
  if (holder) {
    g_warning("%s: its host device is left as it is, without undoing anything: %s holds "
              "it now", release->device->hostdev->alias, holder);
    release_finish(release, NULL);
    return;
  }
  if (hotplug_revoke_usb_applies(release->device))
    hotplug_revoke_usb_async(release->hotplug, release->device, on_usb_revoked, release);
  else
    release_host_prep(release);
}

/* A USB device's descriptors are revoked (usb-revoke.h): undo the host preparation. */
static void
on_usb_revoked(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Release *release = user_data;
  g_autoptr(GError) error = NULL;

  if (!hotplug_revoke_usb_finish(result, &error)) {
    release->attempts++;
    release_finish(release, error);
    return;
  }
  release_host_prep(release);
}

/* Nothing of QEMU's is left on the device: undo its host preparation. */
static void
release_host_prep(Release *release)
{
  HostPrep *prep = release->device->prep;
  /* after QEMU exited, host drivers are probed only once its process is gone */
  Hotplug *hotplug = release->hotplug;
  HostReleaseWait wait = { hotplug->qemu.pid, hotplug->qemu.start_time, 0 };
  host_prep_release_async(prep, hotplug->runtime_dir, hotplug->vm,
                          hotplug->qemu_exited && wait.qemu > 0 ? &wait : NULL,
                          on_host_released, release);
}

/* release_host() - undo @release's host preparation (asynchronously), the USB descriptor first. */
static void
release_host(Release *release)
{
  hotplug_device_enter_anyway(release->hotplug, release->device, VM_DEVICE_RELEASING);
  g_clear_pointer(&release->failure, g_free);
  release->attempts = 0;
  releases_hold(release->hotplug);
  g_ptr_array_add(release->hotplug->releasing, release);
  hotplug_remove_fdset(release->hotplug, release->device->prep, release_host_after_fdset,
                       release);
}

/*
 * hotplug_release_device() - QEMU no longer holds @device: give it back to the
 * host and forget it; then finish @then (nullable) with @reply.
 * A VFIO device whose IOMMU group another device of this VM still uses
 * waits for that one: the kernel does not let a host driver take a device
 * whose group QEMU holds.
 */
void
hotplug_release_device(Hotplug *hotplug, VmDevice *device, const char *why, GTask *then, JsonNode *reply)
{
  const char *alias = device->hostdev->alias;
  int group = device->prep && device->prep->vfio ? device->prep->vfio->group : -1;
  gboolean group_in_use = group >= 0 && vm_devices_find_group(hotplug->devices, group, device);

  hotplug_device_enter_anyway(hotplug, device,
                              group_in_use ? VM_DEVICE_GROUP_WAITING : VM_DEVICE_RELEASING);
  if (hotplug->usb_ports && device->hostdev->type == HOSTDEV_TYPE_USB &&
      device->hostdev->usb_guest.present && device->hostdev->usb_guest.port) {
    guest_usb_ports_release(hotplug->usb_ports, device->hostdev->usb_guest.bus,
                            device->hostdev->usb_guest.port);
    g_hash_table_add(hotplug->usb_ports_released, g_strdup(alias));
  }
  /* QEMU removes a device, not its companions (the zpci of an s390x function) */
  StateEntry *entry = state_journal_find(hotplug->journal, alias);
  for (char **id = entry ? entry->qemu_ids : NULL; id && *id; id++)
    if (g_strcmp0(*id, alias) != 0)
      hotplug_remove_from_qemu(hotplug, *id);

  Release *release = g_new0(Release, 1);
  release->hotplug = hotplug;
  release->device = vm_devices_steal(hotplug->devices, device);
  release->why = g_strdup(why);
  release->then = then;
  release->reply = reply;

  if (group_in_use) {
    g_message("%s left QEMU; IOMMU group %d goes back to the host with its last device",
              alias, group);
    g_ptr_array_add(hotplug->group_waiting, release);
    if (then)
      hotplug_op_return(then, g_steal_pointer(&release->reply), NULL);
    release->then = NULL;
    return;
  }
  /*
   * The last device of its group: the devices that waited for it leave
   * vfio-pci in the same step, all before any host driver is probed for
   * (the kernel refuses one while a group member is still with vfio).
   */
  for (guint i = 0; group >= 0 && i < hotplug->group_waiting->len; i++) {
    Release *waiting = g_ptr_array_index(hotplug->group_waiting, i);
    if (waiting->device->prep->vfio->group == group && !waiting->folded) {
      waiting->folded = TRUE;
      g_ptr_array_add(device->prep->vfio->companions,
                      vfio_record_ref(waiting->device->prep->vfio));
    }
  }
  release_host(release);
}

/* The last device of @group left: the ones that waited for it go back now. */
static void
release_group_waiters(Hotplug *hotplug, int group)
{
  if (vm_devices_find_group(hotplug->devices, group, NULL))
    return;
  for (guint i = 0; i < hotplug->group_waiting->len;) {
    Release *release = g_ptr_array_index(hotplug->group_waiting, i);
    if (release->device->prep->vfio->group == group) {
      g_ptr_array_remove_index(hotplug->group_waiting, i);
      release_host(release);
    } else {
      i++;
    }
  }
}

/* Return to "attached" after a refused unplug. */
void
hotplug_detach_abandon(Hotplug *hotplug, VmDevice *device)
{
  device->detach_waiting = FALSE;
  hotplug_device_enter_anyway(hotplug, device, VM_DEVICE_ATTACHED);
}

/* Whether @a and @b sit in one guest PCI slot. */
static gboolean
same_guest_slot(const Hostdev *a, const Hostdev *b)
{
  return a->pci_guest.present && b->pci_guest.present &&
         hotplug_type_ops(a->type)->placed_on_pci_bus &&
         hotplug_type_ops(b->type)->placed_on_pci_bus &&
         a->pci_guest.addr.domain == b->pci_guest.addr.domain &&
         a->pci_guest.addr.bus == b->pci_guest.addr.bus &&
         a->pci_guest.addr.slot == b->pci_guest.addr.slot;
}

GPtrArray *
hotplug_slot_of(Hotplug *hotplug, VmDevice *device)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  GPtrArray *slot = g_ptr_array_new();

  g_ptr_array_add(slot, device);
  for (guint i = 0; i < all->len; i++) {
    VmDevice *other = g_ptr_array_index(all, i);
    if (other != device && same_guest_slot(device->hostdev, other->hostdev)) {
      if (other->hostdev->pci_guest.addr.function == 0)
        g_ptr_array_insert(slot, 0, other);
      else
        g_ptr_array_add(slot, other);
    }
  }
  /* @device itself may be function 0 */
  for (guint i = 1; i < slot->len; i++)
    if (((VmDevice *)g_ptr_array_index(slot, i))->hostdev->pci_guest.addr.function == 0) {
      VmDevice *zero = g_ptr_array_steal_index(slot, i);
      g_ptr_array_insert(slot, 0, zero);
    }
  return slot;
}

void
hotplug_detach_abandon_slot(Hotplug *hotplug, VmDevice *device)
{
  g_autoptr(GPtrArray) slot = hotplug_slot_of(hotplug, device);
  for (guint i = 0; i < slot->len; i++)
    hotplug_detach_abandon(hotplug, g_ptr_array_index(slot, i));
}

/* ---- what is attached --------------------------------------------------- */

/* Return: (transfer full): one device as list-devices shows it; @phase nullable. */
static JsonObject *
list_entry(const Hostdev *hostdev, VmDeviceState state, const char *phase)
{
  JsonObject *entry = json_object_new();
  g_autofree char *source = hostdev_describe_source(hostdev);
  g_autofree char *xml = hostdev_format_xml(hostdev);
  json_object_set_string_member(entry, "alias", hostdev->alias);
  json_object_set_string_member(entry, "type", hostdev_type_name(hostdev->type));
  json_object_set_string_member(entry, "source", source);
  json_object_set_string_member(entry, "state", hotplug_device_state_listed(state));
  if (phase)
    json_object_set_string_member(entry, "phase", phase);
  json_object_set_string_member(entry, "xml", xml);
  return entry;
}

/* Return: (transfer full): what a device that left QEMU but is not back on the host waits for. */
static char *
leaving_phase(const Release *release)
{
  const VmDevice *device = release->device;
  switch (device->state) {
  case VM_DEVICE_GROUP_WAITING:
    return g_strdup_printf("left QEMU; waits for the rest of IOMMU group %d to leave it",
                           device->prep->vfio->group);
  case VM_DEVICE_RELEASE_FAILED:
    return g_strdup_printf("left QEMU; giving it back to the host failed: %s; "
                           "`hostdevctl detach-device-alias VM %s` tries again",
                           release->failure, device->hostdev->alias);
  case VM_DEVICE_RELEASING:
  case VM_DEVICE_ATTACHED:
  case VM_DEVICE_DETACHING:
  case VM_DEVICE_WAITING:
    break;
  }
  return g_strdup("left QEMU; being given back to the host");
}

gboolean
hotplug_retry_failed_release(Hotplug *hotplug, const Hostdev *hostdev, const char *alias,
                             GTask *then)
{
  for (guint i = 0; i < hotplug->failed->len; i++) {
    Release *release = g_ptr_array_index(hotplug->failed, i);
    const Hostdev *leaving = release->device->hostdev;
    if ((alias && g_strcmp0(alias, leaving->alias) == 0) ||
        (hostdev && hostdev_source_matches(hostdev, leaving))) {
      g_ptr_array_steal_index(hotplug->failed, i);   /* the list would free it */
      g_message("%s: trying again to give it back to the host", leaving->alias);
      JsonObject *reply = json_object_new();
      g_autofree char *source = hostdev_describe_source(leaving);
      json_object_set_string_member(reply, "alias", leaving->alias);
      json_object_set_string_member(reply, "source", source);
      json_object_set_string_member(reply, "status", "detached");
      release->then = then;
      release->reply = json_node_init_object(json_node_alloc(), reply);
      json_object_unref(reply);
      release_host(release);
      return TRUE;
    }
  }
  return FALSE;
}

void
hotplug_keep_failed_release(Hotplug *hotplug, Hostdev *hostdev, HostPrep *prep,
                            const GError *error)
{
  VmDevice *device = vm_devices_add(hotplug->devices, hostdev, prep);
  /* the record a failed release leaves: a restart gives it back as for a detach */
  hotplug_device_enter_anyway(hotplug, device, VM_DEVICE_RELEASING);
  hotplug_device_enter_anyway(hotplug, device, VM_DEVICE_RELEASE_FAILED);

  Release *release = g_new0(Release, 1);
  release->hotplug = hotplug;
  release->device = vm_devices_steal(hotplug->devices, device);
  release->why = g_strdup("its attach failed");
  release->attempts = 1;
  release->failure = g_strdup(error->message);
  g_ptr_array_add(hotplug->failed, release);
}

/*
 * hotplug_list() - every device of the VM: those in QEMU, and those that
 * left it but whose host device is not back yet (still this VM's: listed
 * as detaching, with what they wait for).
 */
void
hotplug_foreach_device(Hotplug *hotplug, HotplugDeviceFunc func, gpointer user_data)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  GPtrArray *leaving[] = { hotplug->group_waiting, hotplug->releasing, hotplug->failed };

  for (guint i = 0; i < all->len; i++)
    func(g_ptr_array_index(all, i), hotplug_follow_phase(g_ptr_array_index(all, i)), user_data);
  for (guint l = 0; l < G_N_ELEMENTS(leaving); l++)
    for (guint i = 0; i < leaving[l]->len; i++) {
      Release *release = g_ptr_array_index(leaving[l], i);
      g_autofree char *phase = leaving_phase(release);
      func(release->device, phase, user_data);
    }
}

static void
add_list_entry(const VmDevice *device, const char *phase, gpointer user_data)
{
  json_array_add_object_element(user_data, list_entry(device->hostdev, device->state, phase));
}

JsonNode *
hotplug_list(Hotplug *hotplug)
{
  JsonArray *list = json_array_new();
  hotplug_foreach_device(hotplug, add_list_entry, list);
  return json_node_init_array(json_node_alloc(), list);
}

char *
hotplug_dumpxml(Hotplug *hotplug)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);
  g_autoptr(GString) out = g_string_new("<devices>\n");

  for (guint i = 0; i < all->len; i++) {
    VmDevice *device = g_ptr_array_index(all, i);
    g_autofree char *xml = hostdev_format_xml(device->hostdev);
    g_auto(GStrv) lines = g_strsplit(xml, "\n", -1);
    for (char **line = lines; *line; line++)
      if (**line)
        g_string_append_printf(out, "  %s\n", *line);
  }
  g_string_append(out, "</devices>\n");
  return g_string_free(g_steal_pointer(&out), FALSE);
}

void
hotplug_drain_async(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, NULL, callback, user_data);
  if (hotplug->releases_pending == 0) {
    g_task_return_boolean(task, TRUE);
    g_object_unref(task);
    return;
  }
  g_ptr_array_add(hotplug->drain_waiters, task);
}

gboolean
hotplug_drain_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}

guint
hotplug_releases_running(Hotplug *hotplug)
{
  return hotplug->releases_pending;
}

void
hotplug_release_all_async(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer user_data)
{
  GPtrArray *all = vm_devices_get_all(hotplug->devices);

  /* held, so the count cannot reach zero before every release has started */
  releases_hold(hotplug);
  hotplug->qemu_exited = TRUE;
  while (all->len > 0)
    hotplug_release_device(hotplug, g_ptr_array_index(all, all->len - 1), "QEMU exited", NULL, NULL);
  while (hotplug->failed->len > 0)
    release_host(g_ptr_array_steal_index(hotplug->failed, 0));
  /*
   * QEMU is gone, so no group is in use any more.  A waiter whose group's
   * last device has just taken its binding along is left to that release
   * (it finishes the waiter's claims and journal after): undoing the same
   * binding twice, concurrently, is what must never happen.
   */
  for (guint i = 0; i < hotplug->group_waiting->len;) {
    Release *waiting = g_ptr_array_index(hotplug->group_waiting, i);
    if (waiting->folded) {
      i++;
      continue;
    }
    g_ptr_array_remove_index(hotplug->group_waiting, i);
    release_host(waiting);
  }
  hotplug_drain_async(hotplug, callback, user_data);
  releases_unhold(hotplug);
}

gboolean
hotplug_release_all_finish(Hotplug *hotplug, GAsyncResult *result, GError **error)
{
  return hotplug_drain_finish(hotplug, result, error);
}

void
hotplug_forget_usb_ports(Hotplug *hotplug)
{
  g_clear_pointer(&hotplug->usb_ports, guest_usb_ports_free);
  g_hash_table_remove_all(hotplug->usb_ports_released);
}

/* ---- events from QEMU ------------------------------------------------- */

/* A DEVICE_DELETED waiting for QEMU's own view to agree. */
typedef struct {
  Hotplug *hotplug;
  char *alias;
  char *why;
  GTask *then;           /* (nullable) the detach request it answers */
  JsonNode *reply;       /* (nullable) its reply */
} GoneCheck;

static void
on_gone_checked(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GoneCheck *check = user_data;
  Hotplug *hotplug = check->hotplug;
  g_autoptr(GError) error = NULL;
  HotplugPresence presence = hotplug_query_present_finish(result, source, &error);
  VmDevice *device = vm_devices_find_alias(hotplug->devices, check->alias);

  if (device)
    device->gone_check = FALSE;
  if (device && presence == HOTPLUG_ABSENT) {
    hotplug_release_device(hotplug, device, check->why, check->then, check->reply);
  } else if (device == NULL && check->then) {
    /* released meanwhile by another path: gone all the same */
    hotplug_op_return(check->then, check->reply, NULL);
  } else {
    if (device)
      g_warning("%s: QEMU reported DEVICE_DELETED, but %s; it stays listed as %s and is not "
                "given back to the host until QEMU no longer has it (a forged or early event?)",
                check->alias, presence == HOTPLUG_PRESENT
                                  ? "still has it" : "whether it still has it is unknown",
                hotplug_device_state_listed(device->state));
    if (check->then) {
      if (check->reply && JSON_NODE_HOLDS_OBJECT(check->reply))
        json_object_set_string_member(json_node_get_object(check->reply), "status", "pending");
      hotplug_op_return(check->then, check->reply, NULL);
    } else if (check->reply) {
      json_node_unref(check->reply);
    }
  }
  g_free(check->alias);
  g_free(check->why);
  g_free(check);
}

void
hotplug_release_when_gone(Hotplug *hotplug, VmDevice *device, const char *why, GTask *then,
                          JsonNode *reply)
{
  const HotplugTypeOps *ops = hotplug_type_ops(device->hostdev->type);

  if (ops->let_go_in_kernel && ops->let_go_in_kernel(device)) {
    g_autofree char *proven = g_strdup_printf("%s; the kernel shows QEMU let go of it", why);
    hotplug_release_device(hotplug, device, proven, then, reply);
    return;
  }
  GoneCheck *check = g_new0(GoneCheck, 1);
  check->hotplug = hotplug;
  check->alias = g_strdup(device->hostdev->alias);
  check->why = g_strdup(why);
  check->then = then;
  check->reply = reply;
  device->gone_check = TRUE;   /* the VM-wide handler leaves this event to us */
  hotplug_query_present(hotplug, check->alias, on_gone_checked, check);
}

static void
on_qemu_event(QmpClient *qmp, const char *name, JsonObject *data, gint64 timestamp_us,
              gpointer user_data)
{
  Hotplug *hotplug = user_data;
  gboolean deleted = g_strcmp0(name, "DEVICE_DELETED") == 0;

  if (!deleted && g_strcmp0(name, "DEVICE_UNPLUG_GUEST_ERROR") != 0)
    return;
  const char *alias = json_object_get_string_member_with_default(data, "device", NULL);
  VmDevice *device = alias ? vm_devices_find_alias(hotplug->devices, alias) : NULL;
  /* a device hostdevd did not add left: the USB port map may have changed */
  if (deleted && device == NULL && !(alias && g_hash_table_remove(hotplug->usb_ports_released,
                                                                  alias)))
    hotplug_forget_usb_ports(hotplug);
  /* A detach request that is still waiting handles its own events; a device
   * waiting for its USB device was removed from QEMU on purpose. */
  if (device == NULL || device->detach_waiting || device->gone_check ||
      device->state == VM_DEVICE_WAITING)
    return;
  if (deleted) {
    hotplug_release_when_gone(hotplug, device,
                              device->state == VM_DEVICE_DETACHING
                                  ? "the guest finished the pending unplug"
                                  : "QEMU removed it (unplugged from inside the guest)",
                              NULL, NULL);
  } else if (device->state == VM_DEVICE_DETACHING) {
    g_autoptr(JsonObject) event = json_object_new();
    g_message("%s: the guest refused the pending unplug; it stays attached", alias);
    hotplug_detach_abandon_slot(hotplug, device);
    json_object_set_string_member(event, "alias", alias);
    json_object_set_string_member(event, "reason", "the guest refused the unplug");
    hotplug_emit(hotplug, "DEVICE_DETACH_FAILED", event);
  }
}

Hotplug *
hotplug_new(QmpClient *qmp, StateJournal *journal, const HotplugConfig *config,
            HotplugEventFunc emit, gpointer user_data)
{
  Hotplug *hotplug = g_new0(Hotplug, 1);
  hotplug->self = process_identity_of(getpid());
  hotplug->journal = journal;
  hotplug->vm = g_strdup(config->vm);
  hotplug->runtime_dir = g_strdup(config->runtime_dir);
  hotplug->qemu_uid = config->qemu_uid;
  hotplug->qemu_gid = config->qemu_gid;
  hotplug->policy = config->policy;
  hotplug->optional_usb_to_qemu = config->optional_usb_to_qemu;
  hotplug->take_whole_group = config->policy &&
      policy_iommu_group_takeover_allowed(config->policy, config->vm, NULL);
  hotplug->group_waiting = g_ptr_array_new();
  hotplug->releasing = g_ptr_array_new();
  hotplug->failed = g_ptr_array_new_with_free_func((GDestroyNotify)release_free);
  hotplug->drain_waiters = g_ptr_array_new();
  hotplug->devices = vm_devices_new();
  hotplug->usb_ports_released = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  hotplug->emit = emit;
  hotplug->emit_data = user_data;
  hotplug->metrics = hotplug_metrics_new();
  g_queue_init(&hotplug->queue);
  if (qmp)
    hotplug_connect_qemu(hotplug, qmp, qmp_client_get_peer_pid(qmp));
  return hotplug;
}

void
hotplug_connect_qemu(Hotplug *hotplug, QmpClient *qmp, pid_t qemu_pid)
{
  g_return_if_fail(hotplug->qmp == NULL);
  hotplug->qmp = g_object_ref(qmp);
  hotplug->qemu = process_identity_of(qemu_pid);
  /* zpci devices left in another QEMU process went with it */
  GPtrArray *left = state_journal_zpci_left(hotplug->journal);
  for (guint i = left->len; i > 0; i--) {
    const StateZpci *zpci = g_ptr_array_index(left, i - 1);
    g_autoptr(GError) error = NULL;
    if (!process_identity_equal(&zpci->qemu, &hotplug->qemu) &&
        !state_journal_forget_zpci_left(hotplug->journal, zpci->id, &error))
      g_warning("%s", error->message);
  }
  hotplug->features_known = FALSE;   /* this QEMU's are probed at its first attach */
  hotplug_forget_usb_ports(hotplug);
  hotplug->event_handler = g_signal_connect(qmp, "event", G_CALLBACK(on_qemu_event), hotplug);
}

void
hotplug_set_qemu_arch(Hotplug *hotplug, const char *arch, const char *how)
{
  g_free(hotplug->qemu_arch);
  g_free(hotplug->qemu_arch_how);
  hotplug->qemu_arch = g_strdup(arch);
  hotplug->qemu_arch_how = g_strdup(how);
}

void
hotplug_set_qemu_user(Hotplug *hotplug, uid_t uid, gid_t gid)
{
  hotplug->qemu_uid = uid;
  hotplug->qemu_gid = gid;
}

const ProcessIdentity *
hotplug_get_qemu(Hotplug *hotplug)
{
  return &hotplug->qemu;
}

void
hotplug_free(Hotplug *hotplug)
{
  if (hotplug == NULL)
    return;
  if (hotplug->qmp) {
    g_signal_handler_disconnect(hotplug->qmp, hotplug->event_handler);
    g_object_unref(hotplug->qmp);
  }
  vm_devices_free(hotplug->devices);
  g_free(hotplug->qemu_arch);
  g_free(hotplug->qemu_arch_how);
  guest_usb_ports_free(hotplug->usb_ports);
  g_hash_table_unref(hotplug->usb_ports_released);
  /* waiting and failed releases keep their journal records for the next hostdevd */
  g_ptr_array_set_free_func(hotplug->group_waiting, (GDestroyNotify)release_free);
  g_ptr_array_unref(hotplug->group_waiting);
  g_ptr_array_unref(hotplug->failed);
  g_ptr_array_unref(hotplug->releasing);
  g_ptr_array_unref(hotplug->drain_waiters);
  hotplug_metrics_free(hotplug->metrics);
  g_free(hotplug->vm);
  g_free(hotplug->runtime_dir);
  g_free(hotplug);
}
