/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "guest-topology.h"
#include "hostdevd-error.h"
#include "hostdev.h"

#include <string.h>

/*
 * Discovery runs in rounds; the commands of one round go to QEMU together
 * and the round ends when every reply is in:
 *   1. query-target, qom-get /machine type, qom-list of /machine/peripheral
 *      and /machine/peripheral-anon;
 *   2. parent_bus and addr of every device, "hotplug" of every root port,
 *      query-pci on an i440fx machine (its root bus holds built-in devices
 *      that are in no peripheral list), the zPCI bus's children on s390x;
 *   3. on s390x, uid/fid/target of every zPCI function.
 *
 * What cannot change while a device exists (its parent bus and address,
 * whether a root port takes hot-plug), and what cannot change while the
 * connection lasts (the target and machine type), is kept with the QMP
 * connection (TopologyCache) and asked again only when QEMU reports the
 * device deleted: an attach then costs the two qom-list calls, not three
 * commands per device of the VM.
 *
 * The device list of round 1 is kept too (TopologyCache.listed), for a
 * caller that may use it (guest_topology_query_async()'s @reuse): QEMU's
 * DEVICE_DELETED events take devices out of it and hostdevd's own
 * device_add puts them in (guest_topology_note_added()).  A device added
 * through another monitor is in no event: a device_add placed from a
 * remembered list that clashes with one is placed again from a fresh list
 * (hotplug-steps.c), and guest_topology_forget() drops the list.
 */

/* What a controller model gives to hot-plug, as libvirt models them. */
typedef struct {
  const char *model;
  guint first_slot;
  guint last_slot;
} ControllerModel;

static const ControllerModel controller_models[] = {
  { "pcie-root-port", 0, 0 },     /* one device, addr 0x0 */
  { "ioh3420", 0, 0 },
  { "xio3130-downstream", 0, 0 },
  { "pci-bridge", 1, 31 },        /* slot 0 is the bridge's own SHPC */
  { "pcie-pci-bridge", 1, 31 },
};

/* ---- one round of parallel commands ----------------------------------- */

typedef struct {
  char *command;
  JsonObject *arguments;
  JsonNode *reply;      /* NULL on error */
  GError *error;
  gpointer tag;         /* what the caller wants to know the reply for */
  int kind;
} Query;

typedef struct {
  GPtrArray *queries;   /* Query* */
  guint pending;
} Round;

static void
query_free(Query *query)
{
  g_free(query->command);
  if (query->arguments)
    json_object_unref(query->arguments);
  if (query->reply)
    json_node_unref(query->reply);
  g_clear_error(&query->error);
  g_free(query);
}

static Query *
round_add(Round *round, int kind, gpointer tag, const char *command, const char *path,
          const char *property)
{
  Query *query = g_new0(Query, 1);
  query->command = g_strdup(command);
  query->kind = kind;
  query->tag = tag;
  if (path) {
    query->arguments = json_object_new();
    json_object_set_string_member(query->arguments, "path", path);
    if (property)
      json_object_set_string_member(query->arguments, "property", property);
  }
  g_ptr_array_add(round->queries, query);
  return query;
}

/* ---- the discovery state --------------------------------------------- */

typedef enum {
  Q_TARGET,
  Q_MACHINE_TYPE,
  Q_LIST_PERIPHERAL,
  Q_LIST_ANON,
  Q_PARENT_BUS,
  Q_ADDR,
  Q_HOTPLUG,
  Q_QUERY_PCI,
  Q_ZPCI_CHILDREN,
  Q_ZPCI_LINK,
  Q_ZPCI_UID,
  Q_ZPCI_FID,
  Q_ZPCI_TARGET,
} QueryKind;

typedef struct {
  char *path;           /* QOM path */
  char *id;             /* id, or NULL for anonymous devices */
  char *type;           /* QOM type */
  char *parent_bus;
  gint devfn;           /* -1 unknown */
  gint hotplug;         /* a root port's "hotplug": -1 not asked */
  gboolean known;       /* taken from the cache, not asked */
} Device;

/* ---- what is known of one QMP connection ------------------------------ */

typedef struct {
  char *type;
  char *parent_bus;
  gint devfn;
  gint hotplug;
} KnownDevice;

typedef struct {
  char *arch;           /* query-target's answer */
  char *machine_type;
  GHashTable *devices;  /* QOM path -> KnownDevice* */
  guint deletions;      /* DEVICE_DELETED events seen */
  GPtrArray *listed;    /* (nullable) Device*: round 1's list, kept up to date since */
} TopologyCache;

#define TOPOLOGY_CACHE_KEY "hostdevd-guest-topology"

static void
known_device_free(KnownDevice *known)
{
  g_free(known->type);
  g_free(known->parent_bus);
  g_free(known);
}

static void
topology_cache_free(TopologyCache *cache)
{
  g_free(cache->arch);
  g_free(cache->machine_type);
  g_hash_table_unref(cache->devices);
  if (cache->listed)
    g_ptr_array_unref(cache->listed);
  g_free(cache);
}

/* A device QEMU deleted is asked about again, whatever takes its path or id next. */
static void
on_cache_event(QmpClient *qmp, const char *name, JsonObject *data, gint64 timestamp_us,
               gpointer user_data)
{
  TopologyCache *cache = user_data;
  if (g_strcmp0(name, "DEVICE_DELETED") != 0)
    return;
  cache->deletions++;
  const char *path = json_object_get_string_member_with_default(data, "path", NULL);
  const char *id = json_object_get_string_member_with_default(data, "device", NULL);
  g_autofree char *by_id = id ? g_strconcat("/machine/peripheral/", id, NULL) : NULL;
  if (path)
    g_hash_table_remove(cache->devices, path);
  if (by_id)
    g_hash_table_remove(cache->devices, by_id);
  for (guint i = cache->listed ? cache->listed->len : 0; i-- > 0;) {
    const Device *device = g_ptr_array_index(cache->listed, i);
    if (g_strcmp0(device->path, path) == 0 || g_strcmp0(device->path, by_id) == 0)
      g_ptr_array_remove_index(cache->listed, i);
  }
}

/* Return: (transfer none): what is known of @qmp's QEMU, kept as long as the connection. */
static TopologyCache *
topology_cache_of(QmpClient *qmp)
{
  TopologyCache *cache = g_object_get_data(G_OBJECT(qmp), TOPOLOGY_CACHE_KEY);
  if (cache)
    return cache;
  cache = g_new0(TopologyCache, 1);
  cache->devices = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)known_device_free);
  g_object_set_data_full(G_OBJECT(qmp), TOPOLOGY_CACHE_KEY, cache,
                         (GDestroyNotify)topology_cache_free);
  g_signal_connect(qmp, "event", G_CALLBACK(on_cache_event), cache);
  return cache;
}

typedef struct {
  QmpClient *qmp;
  TopologyCache *cache;
  guint deletions;      /* the cache's count when the discovery began */
  gboolean keep_list;   /* round 1's list may become the cache's */
  GuestTopology *topology;
  GPtrArray *devices;   /* Device* */
  char *machine_type;
  Round round;
} Discovery;

static void
device_free(Device *device)
{
  g_free(device->path);
  g_free(device->id);
  g_free(device->type);
  g_free(device->parent_bus);
  g_free(device);
}

/* Return: a device as a qom-list names it: its parent bus and address not known yet. */
static Device *
device_new(const char *path, const char *id, const char *type)
{
  Device *device = g_new0(Device, 1);
  device->path = g_strdup(path);
  device->id = g_strdup(id);
  device->type = g_strdup(type);
  device->devfn = -1;
  device->hotplug = -1;
  return device;
}

/* Return: (transfer full): what qom-list said of each of @devices. */
static GPtrArray *
devices_as_listed(GPtrArray *devices)
{
  GPtrArray *copy = g_ptr_array_new_full(devices->len, (GDestroyNotify)device_free);
  for (guint i = 0; i < devices->len; i++) {
    const Device *device = g_ptr_array_index(devices, i);
    g_ptr_array_add(copy, device_new(device->path, device->id, device->type));
  }
  return copy;
}

static void
discovery_free(Discovery *discovery)
{
  g_object_unref(discovery->qmp);
  if (discovery->topology)
    guest_topology_free(discovery->topology);
  g_ptr_array_unref(discovery->devices);
  if (discovery->round.queries)
    g_ptr_array_unref(discovery->round.queries);
  g_free(discovery->machine_type);
  g_free(discovery);
}

void
guest_pci_bus_free(GuestPciBus *bus)
{
  g_free(bus->id);
  g_free(bus->model);
  for (guint i = 0; i < GUEST_PCI_SLOTS; i++)
    g_free(bus->occupant[i]);
  g_free(bus);
}

static void
zpci_free(GuestZpci *zpci)
{
  g_free(zpci->id);
  g_free(zpci->target);
  g_free(zpci);
}

void
guest_topology_free(GuestTopology *topology)
{
  if (topology == NULL)
    return;
  g_free(topology->arch);
  g_ptr_array_unref(topology->buses);
  g_ptr_array_unref(topology->zpci);
  g_strfreev(topology->ids);
  g_strfreev(topology->types);
  g_free(topology);
}

/* ---- running a round -------------------------------------------------- */

typedef void (*RoundDoneFunc)(GTask *task);

typedef struct {
  GTask *task;
  Query *query;
  RoundDoneFunc done;
} QueryCall;

static void
on_query_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  QueryCall *call = user_data;
  GTask *task = call->task;
  Discovery *discovery = g_task_get_task_data(task);

  call->query->reply = qmp_client_execute_finish(QMP_CLIENT(source), result, &call->query->error);
  if (--discovery->round.pending == 0)
    call->done(task);
  g_free(call);
  g_object_unref(task);
}

/* round_run() - send every query of the current round; @done runs when all have answered. */
static void
round_run(GTask *task, RoundDoneFunc done)
{
  Discovery *discovery = g_task_get_task_data(task);
  GPtrArray *queries = discovery->round.queries;

  if (queries->len == 0) {
    done(task);
    return;
  }
  discovery->round.pending = queries->len;
  for (guint i = 0; i < queries->len; i++) {
    Query *query = g_ptr_array_index(queries, i);
    QueryCall *call = g_new0(QueryCall, 1);
    call->task = g_object_ref(task);
    call->query = query;
    call->done = done;
    qmp_client_execute_async(discovery->qmp, query->command, query->arguments, -1, 0,
                             g_task_get_cancellable(task), on_query_done, call);
  }
}

/* round_next() - forget the finished round, begin an empty one. */
static void
round_next(Discovery *discovery)
{
  if (discovery->round.queries)
    g_ptr_array_unref(discovery->round.queries);
  discovery->round.queries = g_ptr_array_new_with_free_func((GDestroyNotify)query_free);
}

/* Return: FALSE after failing @task when a query of the round that must succeed failed. */
static gboolean
round_check(GTask *task, Query *query)
{
  if (query->reply)
    return TRUE;
  g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                          "cannot read the VM's devices from QEMU (%s): %s", query->command,
                          query->error ? query->error->message : "no reply");
  g_object_unref(task);
  return FALSE;
}

static const char *
reply_string(const Query *query)
{
  if (query->reply && JSON_NODE_HOLDS_VALUE(query->reply) &&
      json_node_get_value_type(query->reply) == G_TYPE_STRING)
    return json_node_get_string(query->reply);
  return NULL;
}

static gboolean
reply_int(const Query *query, gint64 *value)
{
  if (query->reply && JSON_NODE_HOLDS_VALUE(query->reply) &&
      json_node_get_value_type(query->reply) == G_TYPE_INT64) {
    *value = json_node_get_int(query->reply);
    return TRUE;
  }
  return FALSE;
}

/* ---- building the topology ------------------------------------------- */

static const ControllerModel *
controller_model(const char *type)
{
  for (gsize i = 0; i < G_N_ELEMENTS(controller_models); i++)
    if (g_strcmp0(controller_models[i].model, type) == 0)
      return &controller_models[i];
  return NULL;
}

/* Return: N for "pci.N" (no leading zeros), else -1. */
static gint
controller_index(const char *id)
{
  guint64 index;
  if (id == NULL || !g_str_has_prefix(id, "pci.") ||
      !g_ascii_string_to_unsigned(id + 4, 10, 1, 255, &index, NULL) || id[4] == '0')
    return -1;
  return (gint)index;
}

GuestPciBus *
guest_pci_bus_new(const char *id, const char *model, gint index, gboolean hotpluggable,
                  guint first_slot, guint last_slot)
{
  GuestPciBus *bus = g_new0(GuestPciBus, 1);
  bus->id = g_strdup(id);
  bus->model = g_strdup(model);
  bus->index = index;
  bus->hotpluggable = hotpluggable;
  bus->first_slot = first_slot;
  bus->last_slot = last_slot;
  return bus;
}

static gint
compare_buses(gconstpointer a, gconstpointer b)
{
  const GuestPciBus *x = *(GuestPciBus *const *)a;
  const GuestPciBus *y = *(GuestPciBus *const *)b;
  guint xi = x->index < 0 ? G_MAXUINT : (guint)x->index;
  guint yi = y->index < 0 ? G_MAXUINT : (guint)y->index;
  if (xi != yi)
    return xi < yi ? -1 : 1;
  return g_strcmp0(x->id, y->id);
}

/* Return: (nullable): the bus whose QOM object is @path ("/machine/peripheral/pci.1/pci.1"). */
static GuestPciBus *
bus_for_qom_path(Discovery *discovery, const char *path)
{
  const char *name = path ? strrchr(path, '/') : NULL;
  if (name == NULL)
    return NULL;
  name++;
  for (guint i = 0; i < discovery->topology->buses->len; i++) {
    GuestPciBus *bus = g_ptr_array_index(discovery->topology->buses, i);
    if (g_strcmp0(bus->id, name) == 0)
      return bus;
  }
  return NULL;
}

static void
mark_occupied(GuestPciBus *bus, guint slot, const char *occupant)
{
  if (bus && slot < GUEST_PCI_SLOTS && bus->occupant[slot] == NULL)
    bus->occupant[slot] = g_strdup(occupant);
}

static void
discovery_finish(GTask *task)
{
  Discovery *discovery = g_task_get_task_data(task);
  GuestTopology *topology = discovery->topology;

  for (guint i = 0; i < discovery->devices->len; i++) {
    Device *device = g_ptr_array_index(discovery->devices, i);
    if (device->devfn >= 0)
      mark_occupied(bus_for_qom_path(discovery, device->parent_bus), (guint)device->devfn >> 3,
                    device->id ? device->id : device->path);
  }
  g_ptr_array_sort(topology->buses, compare_buses);

  g_autoptr(GStrvBuilder) ids = g_strv_builder_new();
  g_autoptr(GStrvBuilder) types = g_strv_builder_new();
  for (guint i = 0; i < discovery->devices->len; i++) {
    Device *device = g_ptr_array_index(discovery->devices, i);
    if (device->id)
      g_strv_builder_add(ids, device->id);
    g_strv_builder_add(types, device->type);
  }
  topology->ids = g_strv_builder_end(ids);
  topology->types = g_strv_builder_end(types);
  /* not on s390x: its zPCI functions are read again anyway, and a clash there is not retried */
  if (discovery->keep_list && discovery->cache->deletions == discovery->deletions &&
      !guest_topology_has_zpci(topology)) {
    g_clear_pointer(&discovery->cache->listed, g_ptr_array_unref);
    discovery->cache->listed = devices_as_listed(discovery->devices);
  }
  g_task_return_pointer(task, g_steal_pointer(&discovery->topology),
                        (GDestroyNotify)guest_topology_free);
  g_object_unref(task);
}

/*
 * checked_id() - a device id QEMU reported, kept only when it is an alias
 * hostdevd itself could have given (hostdev_alias_is_valid()): such an id
 * may become an alias and a journal file name.  QEMU is untrusted input.
 * @what, @whose: what it is, for the warning
 * Return: (transfer full) (nullable): @id, or NULL (ignored, with a warning).
 */
static char *
checked_id(const char *id, const char *what, const char *whose)
{
  if (id == NULL || hostdev_alias_is_valid(id))
    return g_strdup(id);
  g_autofree char *shown = g_strndup(id, 64);
  g_autofree char *escaped = g_strescape(shown, NULL);
  g_autofree char *owner = g_strescape(whose ? whose : "(QEMU's own)", NULL);
  g_warning("QEMU reports \"%s%s\" as %s %s, which is not a device id hostdevd gives "
            "(a letter, then letters, digits, '_' or '-', at most %d): ignored, "
            "it is never reused", escaped, strlen(id) > 64 ? "..." : "", what, owner,
            HOSTDEV_ALIAS_MAX);
  return NULL;
}

static void
on_zpci_properties(GTask *task)
{
  Discovery *discovery = g_task_get_task_data(task);
  GPtrArray *queries = discovery->round.queries;

  for (guint i = 0; i < queries->len; i++) {
    Query *query = g_ptr_array_index(queries, i);
    GuestZpci *zpci = query->tag;
    gint64 value;
    switch ((QueryKind)query->kind) {
    case Q_ZPCI_UID:
      if (reply_int(query, &value))
        zpci->uid = (guint)value;
      break;
    case Q_ZPCI_FID:
      if (reply_int(query, &value))
        zpci->fid = (guint)value;
      break;
    case Q_ZPCI_TARGET:
      zpci->target = checked_id(reply_string(query), "the target of zpci", zpci->id);
      break;
    case Q_TARGET:
    case Q_MACHINE_TYPE:
    case Q_LIST_PERIPHERAL:
    case Q_LIST_ANON:
    case Q_PARENT_BUS:
    case Q_ADDR:
    case Q_HOTPLUG:
    case Q_QUERY_PCI:
    case Q_ZPCI_CHILDREN:
    case Q_ZPCI_LINK:
      break;
    }
  }
  discovery_finish(task);
}

/* The zPCI bus lists its functions as link properties "child[N]"; their values are QOM paths. */
static void
on_zpci_links(GTask *task)
{
  Discovery *discovery = g_task_get_task_data(task);
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);

  for (guint i = 0; i < discovery->round.queries->len; i++) {
    Query *query = g_ptr_array_index(discovery->round.queries, i);
    if (query->kind == Q_ZPCI_LINK && reply_string(query))
      g_ptr_array_add(paths, g_strdup(reply_string(query)));
  }
  round_next(discovery);
  for (guint i = 0; i < paths->len; i++) {
    const char *path = g_ptr_array_index(paths, i);
    GuestZpci *zpci = g_new0(GuestZpci, 1);
    if (g_str_has_prefix(path, "/machine/peripheral/"))
      zpci->id = checked_id(path + strlen("/machine/peripheral/"), "the id of zpci at", path);
    g_ptr_array_add(discovery->topology->zpci, zpci);
    round_add(&discovery->round, Q_ZPCI_UID, zpci, "qom-get", path, "uid");
    round_add(&discovery->round, Q_ZPCI_FID, zpci, "qom-get", path, "fid");
    round_add(&discovery->round, Q_ZPCI_TARGET, zpci, "qom-get", path, "target");
  }
  round_run(task, on_zpci_properties);
}

#define ZPCI_BUS "/machine/s390-pcihost/s390-pcibus.0"

/* a root port started with hotplug=off takes no hot-plugged device */
static void
root_port_hotplug(GuestTopology *topology, const Device *device)
{
  if (device->hotplug != 0)
    return;
  for (guint b = 0; b < topology->buses->len; b++) {
    GuestPciBus *bus = g_ptr_array_index(topology->buses, b);
    if (g_strcmp0(bus->id, device->id) == 0)
      bus->hotpluggable = FALSE;
  }
}

/*
 * What QEMU answered of each device goes into the cache, unless a device
 * was deleted while the answers came in: an answer read before that event
 * would be stored after it, for a path that may then be another device's.
 */
static void
remember_devices(Discovery *discovery)
{
  if (discovery->cache->deletions != discovery->deletions)
    return;
  for (guint i = 0; i < discovery->devices->len; i++) {
    Device *device = g_ptr_array_index(discovery->devices, i);
    if (device->known || device->parent_bus == NULL)
      continue;
    KnownDevice *known = g_new0(KnownDevice, 1);
    known->type = g_strdup(device->type);
    known->parent_bus = g_strdup(device->parent_bus);
    known->devfn = device->devfn;
    known->hotplug = device->hotplug;
    g_hash_table_replace(discovery->cache->devices, g_strdup(device->path), known);
  }
}

/* Return: whether @device was filled in from the cache (its type unchanged). */
static gboolean
recall_device(Discovery *discovery, Device *device)
{
  KnownDevice *known = g_hash_table_lookup(discovery->cache->devices, device->path);
  if (known == NULL || g_strcmp0(known->type, device->type) != 0)
    return FALSE;
  device->parent_bus = g_strdup(known->parent_bus);
  device->devfn = known->devfn;
  device->hotplug = known->hotplug;
  device->known = TRUE;
  root_port_hotplug(discovery->topology, device);
  return TRUE;
}

static void
on_round_two(GTask *task)
{
  Discovery *discovery = g_task_get_task_data(task);
  GuestTopology *topology = discovery->topology;
  GPtrArray *queries = discovery->round.queries;
  g_autoptr(GPtrArray) zpci_links = g_ptr_array_new_with_free_func(g_free);

  for (guint i = 0; i < queries->len; i++) {
    Query *query = g_ptr_array_index(queries, i);
    Device *device = query->tag;
    gint64 value;
    switch ((QueryKind)query->kind) {
    case Q_PARENT_BUS:
      device->parent_bus = g_strdup(reply_string(query));
      break;
    case Q_ADDR:
      if (reply_int(query, &value) && value >= 0 && value < 256)
        device->devfn = (gint)value;
      break;
    case Q_HOTPLUG:
      if (query->reply && JSON_NODE_HOLDS_VALUE(query->reply) &&
          json_node_get_value_type(query->reply) == G_TYPE_BOOLEAN) {
        device->hotplug = json_node_get_boolean(query->reply);
        root_port_hotplug(topology, device);
      }
      break;
    case Q_QUERY_PCI:
      /* i440fx root bus: bus 0 is numbered from the start, and built-in devices live there */
      if (query->reply && JSON_NODE_HOLDS_ARRAY(query->reply)) {
        GuestPciBus *root = bus_for_qom_path(discovery, "/pci.0");
        JsonArray *pci_buses = json_node_get_array(query->reply);
        for (guint b = 0; b < json_array_get_length(pci_buses); b++) {
          JsonObject *pci_bus = json_array_get_object_element(pci_buses, b);
          if (json_object_get_int_member_with_default(pci_bus, "bus", -1) != 0 ||
              !json_object_has_member(pci_bus, "devices"))
            continue;
          JsonArray *devices = json_object_get_array_member(pci_bus, "devices");
          for (guint d = 0; devices && d < json_array_get_length(devices); d++) {
            JsonObject *pci = json_array_get_object_element(devices, d);
            const char *qdev_id = json_object_get_string_member_with_default(pci, "qdev_id", "");
            g_autofree char *what = *qdev_id ? g_strdup(qdev_id)
                                             : g_strdup_printf("a built-in device (%s)",
                                                 json_object_get_string_member_with_default(
                                                     json_object_get_object_member(pci, "class_info"),
                                                     "desc", "PCI device"));
            mark_occupied(root, (guint)json_object_get_int_member_with_default(pci, "slot", 0), what);
          }
        }
      }
      break;
    case Q_ZPCI_CHILDREN:
      if (query->reply && JSON_NODE_HOLDS_ARRAY(query->reply)) {
        JsonArray *entries = json_node_get_array(query->reply);
        for (guint e = 0; e < json_array_get_length(entries); e++) {
          JsonObject *entry = json_array_get_object_element(entries, e);
          const char *name = json_object_get_string_member_with_default(entry, "name", "");
          const char *type = json_object_get_string_member_with_default(entry, "type", "");
          if (g_str_has_prefix(name, "child[") && g_strcmp0(type, "link<zpci>") == 0)
            g_ptr_array_add(zpci_links, g_strdup(name));
        }
      }
      break;
    case Q_TARGET:
    case Q_MACHINE_TYPE:
    case Q_LIST_PERIPHERAL:
    case Q_LIST_ANON:
    case Q_ZPCI_LINK:
    case Q_ZPCI_UID:
    case Q_ZPCI_FID:
    case Q_ZPCI_TARGET:
      break;
    }
  }

  remember_devices(discovery);
  round_next(discovery);
  for (guint i = 0; i < zpci_links->len; i++)
    round_add(&discovery->round, Q_ZPCI_LINK, NULL, "qom-get", ZPCI_BUS,
              g_ptr_array_index(zpci_links, i));
  round_run(task, on_zpci_links);
}

/* Remember the devices one qom-list reply names, under @prefix. */
static void
collect_devices(Discovery *discovery, const Query *query, const char *prefix, gboolean with_ids)
{
  JsonArray *entries = json_node_get_array(query->reply);
  for (guint i = 0; i < json_array_get_length(entries); i++) {
    JsonObject *entry = json_array_get_object_element(entries, i);
    const char *name = json_object_get_string_member_with_default(entry, "name", NULL);
    const char *type = json_object_get_string_member_with_default(entry, "type", "");
    if (name == NULL || !g_str_has_prefix(type, "child<") || !g_str_has_suffix(type, ">"))
      continue;
    g_autofree char *path = g_strdup_printf("%s/%s", prefix, name);
    g_autofree char *child_type = g_strndup(type + 6, strlen(type) - 7);
    g_ptr_array_add(discovery->devices, device_new(path, with_ids ? name : NULL, child_type));
  }
}

static void ask_round_two(GTask *task);

static void
on_round_one(GTask *task)
{
  Discovery *discovery = g_task_get_task_data(task);
  GPtrArray *queries = discovery->round.queries;

  for (guint i = 0; i < queries->len; i++) {
    Query *query = g_ptr_array_index(queries, i);
    switch ((QueryKind)query->kind) {
    case Q_TARGET:
      if (!round_check(task, query))
        return;
      if (JSON_NODE_HOLDS_OBJECT(query->reply))
        discovery->cache->arch = g_strdup(json_object_get_string_member_with_default(
            json_node_get_object(query->reply), "arch", NULL));
      break;
    case Q_MACHINE_TYPE:
      discovery->cache->machine_type = g_strdup(reply_string(query));
      break;
    case Q_LIST_PERIPHERAL:
      if (!round_check(task, query))
        return;
      collect_devices(discovery, query, "/machine/peripheral", TRUE);
      break;
    case Q_LIST_ANON:
      if (query->reply)
        collect_devices(discovery, query, "/machine/peripheral-anon", FALSE);
      break;
    case Q_PARENT_BUS:
    case Q_ADDR:
    case Q_HOTPLUG:
    case Q_QUERY_PCI:
    case Q_ZPCI_CHILDREN:
    case Q_ZPCI_LINK:
    case Q_ZPCI_UID:
    case Q_ZPCI_FID:
    case Q_ZPCI_TARGET:
      break;
    }
  }
  ask_round_two(task);
}

/* Round 2: from the list of devices, the buses; what is not known of each device. */
static void
ask_round_two(GTask *task)
{
  Discovery *discovery = g_task_get_task_data(task);
  GuestTopology *topology = discovery->topology;

  topology->arch = g_strdup(discovery->cache->arch ? discovery->cache->arch : "unknown");
  discovery->machine_type = g_strdup(discovery->cache->machine_type);
  /* the root bus: pcie.0 of q35 takes no hot-plug; pci.0 of i440fx does (ACPI) */
  gboolean i440fx = discovery->machine_type && g_str_has_prefix(discovery->machine_type, "pc-i440fx");
  if (discovery->machine_type && g_str_has_prefix(discovery->machine_type, "pc-q35"))
    g_ptr_array_add(topology->buses, guest_pci_bus_new("pcie.0", "pcie-root", 0, FALSE, 0, 31));
  else if (i440fx)
    g_ptr_array_add(topology->buses, guest_pci_bus_new("pci.0", "pci-root", 0, TRUE, 1, 31));
  /* s390x: the zPCI host bus, where libvirt's pci-root leaves slot 0 alone as on a PC */
  else if (g_strcmp0(topology->arch, "s390x") == 0)
    g_ptr_array_add(topology->buses, guest_pci_bus_new("pci.0", "pci-root", 0, TRUE, 1, 31));

  round_next(discovery);
  for (guint i = 0; i < discovery->devices->len; i++) {
    Device *device = g_ptr_array_index(discovery->devices, i);
    const ControllerModel *model = controller_model(device->type);
    if (model && device->id)
      g_ptr_array_add(topology->buses,
                      guest_pci_bus_new(device->id, device->type, controller_index(device->id), TRUE,
                              model->first_slot, model->last_slot));
    if (recall_device(discovery, device))
      continue;
    round_add(&discovery->round, Q_PARENT_BUS, device, "qom-get", device->path, "parent_bus");
    round_add(&discovery->round, Q_ADDR, device, "qom-get", device->path, "addr");
    if (model && model->last_slot == 0 && device->id)
      round_add(&discovery->round, Q_HOTPLUG, device, "qom-get", device->path, "hotplug");
  }
  if (i440fx)
    round_add(&discovery->round, Q_QUERY_PCI, NULL, "query-pci", NULL, NULL);
  if (g_strcmp0(topology->arch, "s390x") == 0)
    round_add(&discovery->round, Q_ZPCI_CHILDREN, NULL, "qom-list", ZPCI_BUS, NULL);
  round_run(task, on_round_two);
}

void
guest_topology_query_async(QmpClient *qmp, gboolean reuse, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, cancellable, callback, user_data);
  Discovery *discovery = g_new0(Discovery, 1);

  g_task_set_source_tag(task, guest_topology_query_async);
  discovery->qmp = g_object_ref(qmp);
  discovery->cache = topology_cache_of(qmp);
  discovery->deletions = discovery->cache->deletions;
  discovery->devices = g_ptr_array_new_with_free_func((GDestroyNotify)device_free);
  discovery->topology = g_new0(GuestTopology, 1);
  discovery->topology->buses = g_ptr_array_new_with_free_func((GDestroyNotify)guest_pci_bus_free);
  discovery->topology->zpci = g_ptr_array_new_with_free_func((GDestroyNotify)zpci_free);
  g_task_set_task_data(task, discovery, (GDestroyNotify)discovery_free);

  round_next(discovery);
  TopologyCache *cache = discovery->cache;
  if (reuse && cache->listed && cache->arch && cache->machine_type) {
    g_ptr_array_unref(discovery->devices);
    discovery->devices = devices_as_listed(cache->listed);
    discovery->topology->remembered = TRUE;
    ask_round_two(task);
    return;
  }
  discovery->keep_list = TRUE;
  if (discovery->cache->arch == NULL)
    round_add(&discovery->round, Q_TARGET, NULL, "query-target", NULL, NULL);
  if (discovery->cache->machine_type == NULL)
    round_add(&discovery->round, Q_MACHINE_TYPE, NULL, "qom-get", "/machine", "type");
  round_add(&discovery->round, Q_LIST_PERIPHERAL, NULL, "qom-list", "/machine/peripheral", NULL);
  round_add(&discovery->round, Q_LIST_ANON, NULL, "qom-list", "/machine/peripheral-anon", NULL);
  round_run(task, on_round_one);
}

GuestTopology *
guest_topology_query_finish(GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}

GuestPciBus *
guest_topology_find_bus(const GuestTopology *topology, guint index)
{
  for (guint i = 0; i < topology->buses->len; i++) {
    GuestPciBus *bus = g_ptr_array_index(topology->buses, i);
    if (bus->index >= 0 && (guint)bus->index == index)
      return bus;
  }
  return NULL;
}

gboolean
guest_topology_has_zpci(const GuestTopology *topology)
{
  return g_strcmp0(topology->arch, "s390x") == 0;
}

gboolean
guest_topology_check_arch(GuestTopology *topology, const char *expected, const char *how,
                          GError **error)
{
  g_autofree char *said = g_strescape(topology->arch ? topology->arch : "", NULL);

  if (expected == NULL && g_strcmp0(topology->arch, "s390x") != 0)
    return TRUE;
  if (expected == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                "QEMU says it emulates s390x, but hostdevd could not read its executable to "
                "confirm it (see the warning at start-up): start hostdevd with --qemu-arch "
                "s390x if that QEMU is qemu-system-s390x");
    return FALSE;
  }
  if (g_strcmp0(topology->arch, expected) != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                "QEMU answers query-target with \"%.32s\", but %s emulates %s: refusing to "
                "act on a QEMU that misreports itself (a compromised QEMU, or a wrong "
                "--qemu-arch)", said, how ? how : "its executable", expected);
    return FALSE;
  }
  g_free(topology->arch);
  topology->arch = g_strdup(expected);
  return TRUE;
}

void
guest_topology_note_added(QmpClient *qmp, const char *id, const char *type, const char *pci_bus,
                          gint devfn)
{
  TopologyCache *cache = topology_cache_of(qmp);
  g_autofree char *path = g_strconcat("/machine/peripheral/", id, NULL);
  KnownDevice *known = g_new0(KnownDevice, 1);

  /* what qom-get of its parent_bus and addr would say; of the bus's QOM path
   * only the last component, the bus id, is ever read (bus_for_qom_path()) */
  known->type = g_strdup(type);
  known->parent_bus = g_strconcat("/", pci_bus ? pci_bus : "", NULL);
  known->devfn = pci_bus ? devfn : -1;
  known->hotplug = -1;
  g_hash_table_replace(cache->devices, g_strdup(path), known);
  if (cache->listed == NULL)
    return;
  for (guint i = cache->listed->len; i-- > 0;)
    if (g_strcmp0(((Device *)g_ptr_array_index(cache->listed, i))->path, path) == 0)
      g_ptr_array_remove_index(cache->listed, i);
  g_ptr_array_add(cache->listed, device_new(path, id, type));
}

void
guest_topology_forget(QmpClient *qmp)
{
  g_clear_pointer(&topology_cache_of(qmp)->listed, g_ptr_array_unref);
}
