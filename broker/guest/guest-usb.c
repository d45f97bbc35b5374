/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "guest-usb.h"
#include "guest-addr.h"
#include "hostdevd-error.h"
#include "hostdev.h"

#include <string.h>

/*
 * The allocation follows libvirt 9.0 (src/conf/domain_addr.c), so that a
 * device lands where the same XML puts it under libvirt:
 *   - every USB controller is a hub with as many ports as its model has
 *     (or its "ports" option sets); a usb-hub is a hub of 8 ports and
 *     takes the port it is plugged into;
 *   - without a port in the XML, the controllers are tried in index order
 *     (only the one named by <address type='usb' bus=.../> when given);
 *   - on a hub, its lowest free port wins; only when it has none are the
 *     hubs plugged into it searched, in port order, the same way, down to
 *     port paths of 4 numbers;
 *   - libvirt never adds a hub itself: a full VM is an error.
 */

struct _GuestUsbHub {
  guint n_ports;
  char **occupant;          /* n_ports: what holds port i+1, NULL when free */
  GuestUsbHub **below;      /* n_ports: the hub plugged into port i+1 */
};

static GuestUsbHub *
hub_new(guint n_ports)
{
  GuestUsbHub *hub = g_new0(GuestUsbHub, 1);
  hub->n_ports = n_ports;
  hub->occupant = g_new0(char *, n_ports);
  hub->below = g_new0(GuestUsbHub *, n_ports);
  return hub;
}

static void
hub_free(GuestUsbHub *hub)
{
  if (hub == NULL)
    return;
  for (guint i = 0; i < hub->n_ports; i++) {
    g_free(hub->occupant[i]);
    hub_free(hub->below[i]);
  }
  g_free(hub->occupant);
  g_free(hub->below);
  g_free(hub);
}

static void
bus_free(GuestUsbBus *bus)
{
  g_free(bus->bus_id);
  g_free(bus->model);
  hub_free(bus->root);
  g_free(bus);
}

GuestUsbPorts *
guest_usb_ports_new(void)
{
  GuestUsbPorts *ports = g_new0(GuestUsbPorts, 1);
  ports->buses = g_ptr_array_new_with_free_func((GDestroyNotify)bus_free);
  return ports;
}

void
guest_usb_ports_free(GuestUsbPorts *ports)
{
  if (ports == NULL)
    return;
  g_ptr_array_unref(ports->buses);
  g_free(ports);
}

const GuestUsbBus *
guest_usb_ports_find_bus(const GuestUsbPorts *ports, guint index)
{
  for (guint i = 0; i < ports->buses->len; i++) {
    const GuestUsbBus *bus = g_ptr_array_index(ports->buses, i);
    if (bus->index == index)
      return bus;
  }
  return NULL;
}

static gint
compare_buses(gconstpointer a, gconstpointer b)
{
  const GuestUsbBus *x = *(GuestUsbBus *const *)a;
  const GuestUsbBus *y = *(GuestUsbBus *const *)b;
  return x->index < y->index ? -1 : x->index > y->index;
}

gboolean
guest_usb_ports_add_controller(GuestUsbPorts *ports, guint index, const char *id,
                               const char *model, guint n_ports, GError **error)
{
  if (guest_usb_ports_find_bus(ports, index)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                "two USB controllers have index %u", index);
    return FALSE;
  }
  GuestUsbBus *bus = g_new0(GuestUsbBus, 1);
  bus->index = index;
  bus->bus_id = g_strdup_printf("%s.0", id);
  bus->model = g_strdup(model);
  bus->root = hub_new(n_ports);
  g_ptr_array_add(ports->buses, bus);
  g_ptr_array_sort(ports->buses, compare_buses);
  return TRUE;
}

/*
 * find_port() - the hub holding @port of bus @index, and the port's slot in it
 * Return: (nullable): the hub, with @error saying what is missing.
 */
static GuestUsbHub *
find_port(const GuestUsbPorts *ports, guint index, const char *port, guint *slot,
          GError **error)
{
  const GuestUsbBus *bus = guest_usb_ports_find_bus(ports, index);
  if (bus == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<address type='usb' bus='%u'>: this VM has no USB controller with index %u "
                "(QEMU id %s)", index, index, index == 0 ? "usb" : "usbN");
    return NULL;
  }
  g_autoptr(GError) invalid = NULL;
  g_autofree char *canonical = hostdev_usb_guest_port_check(index, port, &invalid);
  if (canonical == NULL) {
    g_propagate_error(error, g_steal_pointer(&invalid));
    return NULL;
  }
  g_auto(GStrv) parts = g_strsplit(canonical, ".", 0);
  GuestUsbHub *hub = bus->root;
  for (guint level = 0; parts[level]; level++) {
    guint number = (guint)g_ascii_strtoull(parts[level], NULL, 10);
    if (number > hub->n_ports) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<address type='usb' bus='%u' port='%s'>: %s has %s %u ports; port %u "
                  "does not exist", index, canonical, bus->bus_id,
                  level == 0 ? "only" : "a hub there with only", hub->n_ports, number);
      return NULL;
    }
    if (parts[level + 1] == NULL) {
      *slot = number - 1;
      return hub;
    }
    if (hub->below[number - 1] == NULL) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<address type='usb' bus='%u' port='%s'>: there is no USB hub at port "
                  "%.*s of %s", index, canonical,
                  (int)(strlen(parts[0]) + (level ? 1 : 0)), canonical, bus->bus_id);
      return NULL;
    }
    hub = hub->below[number - 1];
  }
  g_assert_not_reached();
}

gboolean
guest_usb_ports_take(GuestUsbPorts *ports, guint index, const char *port,
                     const char *occupant, GError **error)
{
  guint slot;
  GuestUsbHub *hub = find_port(ports, index, port, &slot, error);
  if (hub == NULL)
    return FALSE;
  if (hub->occupant[slot]) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "<address type='usb' bus='%u' port='%s'>: the port is taken by %s; leave "
                "port out to use a free one", index, port, hub->occupant[slot]);
    return FALSE;
  }
  hub->occupant[slot] = g_strdup(occupant);
  return TRUE;
}

gboolean
guest_usb_ports_add_hub(GuestUsbPorts *ports, guint index, const char *port, GError **error)
{
  guint slot;
  GuestUsbHub *hub = find_port(ports, index, port, &slot, error);
  if (hub == NULL)
    return FALSE;
  if (hub->below[slot] == NULL)
    hub->below[slot] = hub_new(GUEST_USB_HUB_PORTS);
  if (hub->occupant[slot] == NULL)
    hub->occupant[slot] = g_strdup("a usb-hub");
  return TRUE;
}

void
guest_usb_ports_release(GuestUsbPorts *ports, guint index, const char *port)
{
  guint slot;
  GuestUsbHub *hub = find_port(ports, index, port, &slot, NULL);
  if (hub && hub->below[slot] == NULL)
    g_clear_pointer(&hub->occupant[slot], g_free);
}

void
guest_usb_ports_give_back(GuestUsbPorts *ports, guint index, const char *port,
                          const char *occupant)
{
  guint slot;
  GuestUsbHub *hub = find_port(ports, index, port, &slot, NULL);
  if (hub && hub->below[slot] == NULL && g_strcmp0(hub->occupant[slot], occupant) == 0)
    g_clear_pointer(&hub->occupant[slot], g_free);
}

/* Return: whether a free port was found under @hub at depth @level; @path gets it. */
static gboolean
find_free(GuestUsbHub *hub, guint level, guint path[GUEST_USB_MAX_DEPTH])
{
  for (guint i = 0; i < hub->n_ports; i++) {
    if (hub->occupant[i] == NULL) {
      path[level] = i + 1;
      return TRUE;
    }
  }
  if (level + 1 >= GUEST_USB_MAX_DEPTH)
    return FALSE;
  for (guint i = 0; i < hub->n_ports; i++) {
    if (hub->below[i] && find_free(hub->below[i], level + 1, path)) {
      path[level] = i + 1;
      return TRUE;
    }
  }
  return FALSE;
}

static char *
format_path(const guint path[GUEST_USB_MAX_DEPTH])
{
  GString *text = g_string_new(NULL);
  for (guint i = 0; i < GUEST_USB_MAX_DEPTH && path[i]; i++)
    g_string_append_printf(text, "%s%u", i ? "." : "", path[i]);
  return g_string_free(text, FALSE);
}

/* Return: (transfer full): "usb.0 (qemu-xhci, 4 ports), ..." for an error message. */
static char *
describe_buses(const GuestUsbPorts *ports)
{
  GString *text = g_string_new(NULL);
  for (guint i = 0; i < ports->buses->len; i++) {
    const GuestUsbBus *bus = g_ptr_array_index(ports->buses, i);
    g_string_append_printf(text, "%s%s (%s, %u ports)", i ? ", " : "", bus->bus_id,
                           bus->model, bus->root->n_ports);
  }
  return g_string_free(text, FALSE);
}

gboolean
guest_usb_place(GuestUsbPorts *ports, gboolean has_bus, guint bus, const char *port,
                const char *occupant, guint *bus_out, char **port_out, GError **error)
{
  if (port) {
    if (!guest_usb_ports_take(ports, bus, port, occupant, error))
      return FALSE;
    *bus_out = bus;
    *port_out = g_strdup(port);
    return TRUE;
  }
  if (has_bus && guest_usb_ports_find_bus(ports, bus) == NULL) {
    g_autofree char *known = describe_buses(ports);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<address type='usb' bus='%u'>: this VM has no USB controller with index %u; "
                "its USB controllers: %s", bus, bus, *known ? known : "none");
    return FALSE;
  }
  if (ports->buses->len == 0) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "this VM has no USB controller to plug a USB device into; start it "
                        "with one, e.g. -device qemu-xhci,id=usb");
    return FALSE;
  }
  for (guint i = 0; i < ports->buses->len; i++) {
    GuestUsbBus *candidate = g_ptr_array_index(ports->buses, i);
    guint path[GUEST_USB_MAX_DEPTH] = { 0 };
    if ((has_bus && candidate->index != bus) || !find_free(candidate->root, 0, path))
      continue;
    g_autofree char *found = format_path(path);
    if (!guest_usb_ports_take(ports, candidate->index, found, occupant, error))
      return FALSE;
    *bus_out = candidate->index;
    *port_out = g_steal_pointer(&found);
    return TRUE;
  }
  g_autofree char *known = describe_buses(ports);
  if (has_bus)
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "no free port on USB controller %u (%s): every port, and every port of "
                "the hubs on it, holds a device. Name another controller, or leave bus out",
                bus, known);
  else
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "no free USB port in this VM: every port of its controllers (%s) and of "
                "their hubs holds a device. Detach one, or start the VM with more ports "
                "(-device qemu-xhci,p2=8,p3=8) or a usb-hub", known);
  return FALSE;
}

/* ---- what QEMU says is taken -------------------------------------------- */

gboolean
guest_usb_ports_take_listed(GuestUsbPorts *ports, const char *text,
                            const char *const *hub_ids, GError **error)
{
  /* without a controller QEMU says "USB support not enabled": nothing is taken */
  if (ports->buses->len == 0)
    return TRUE;
  g_autoptr(GPtrArray) lines = guest_usb_lines_parse(text, error);
  if (lines == NULL)
    return FALSE;
  /* hubs first, shallow before deep, so that every port below them exists */
  for (guint depth = 1; depth <= GUEST_USB_MAX_DEPTH + 1; depth++) {
    for (guint i = 0; i < lines->len; i++) {
      const GuestUsbLine *line = g_ptr_array_index(lines, i);
      guint line_depth = 1;
      for (const char *p = line->port; *p; p++)
        line_depth += *p == '.';
      /* a path deeper than any hub chain goes last, and is refused there */
      if (MIN(line_depth, GUEST_USB_MAX_DEPTH + 1) != depth)
        continue;
      gboolean is_hub = line->id && hub_ids && g_strv_contains(hub_ids, line->id);
      for (guint j = 0; !is_hub && j < lines->len; j++) {
        const GuestUsbLine *other = g_ptr_array_index(lines, j);
        is_hub = other->bus == line->bus && g_str_has_prefix(other->port, line->port) &&
                 other->port[strlen(line->port)] == '.';
      }
      if (line->bus >= ports->buses->len) {
        g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                    "QEMU's x-query-usb shows a device on USB bus %u, but the VM has %u USB "
                    "controller%s named as libvirt names them (usb, usb1, ...)", line->bus,
                    ports->buses->len, ports->buses->len == 1 ? "" : "s");
        return FALSE;
      }
      guint index = ((GuestUsbBus *)g_ptr_array_index(ports->buses, line->bus))->index;
      g_autoptr(GError) invalid = NULL;
      gboolean taken = is_hub ? guest_usb_ports_add_hub(ports, index, line->port, &invalid)
                              : guest_usb_ports_take(ports, index, line->port,
                                                     line->id ? line->id : "a device",
                                                     &invalid);
      if (!taken) {
        g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                    "QEMU's x-query-usb shows a device at USB bus %u port %s that the "
                    "controllers do not explain: %s", line->bus, line->port, invalid->message);
        return FALSE;
      }
    }
  }
  return TRUE;
}

typedef struct {
  const char *model;
  guint ports;
  const char *property;
} ControllerModel;

/* libvirt's port counts per model; the UHCI companions of an EHCI have no bus of their own */
static const ControllerModel usb_models[] = {
  { "qemu-xhci", 4, "p2" },
  { "nec-usb-xhci", 4, "p2" },
  { "usb-ehci", 6, NULL },
  { "ich9-usb-ehci1", 6, NULL },
  { "ich9-usb-ehci2", 6, NULL },
  { "piix3-usb-uhci", 2, NULL },
  { "piix4-usb-uhci", 2, NULL },
  { "vt82c686b-usb-uhci", 2, NULL },
  { "pci-ohci", 3, "num-ports" },
  { "sysbus-ohci", 3, "num-ports" },
};

guint
guest_usb_controller_ports(const char *model, const char **property)
{
  for (gsize i = 0; i < G_N_ELEMENTS(usb_models); i++) {
    if (g_strcmp0(usb_models[i].model, model) == 0) {
      if (property)
        *property = usb_models[i].property;
      return usb_models[i].ports;
    }
  }
  if (property)
    *property = NULL;
  return 0;
}

/* Return: libvirt's index of a controller with QEMU id @id ("usb" 0, "usbN" N), or -1. */
static gint
controller_index(const char *id)
{
  guint64 index;
  if (g_strcmp0(id, "usb") == 0)
    return 0;
  if (!g_str_has_prefix(id, "usb") || id[3] == '0' ||
      !g_ascii_string_to_unsigned(id + 3, 10, 1, HOSTDEV_USB_GUEST_BUS_MAX, &index, NULL))
    return -1;
  return (gint)index;
}

/* ---- reading it from QEMU ------------------------------------------------ */

typedef struct {
  char *id;
  char *type;
  guint ports;
  gint64 property_value[2];   /* p2 and p3, or num-ports and -1 */
} Controller;

typedef struct {
  QmpClient *qmp;
  GPtrArray *controllers;     /* Controller* */
  GStrvBuilder *hub_ids;
  JsonNode *usb_list;         /* x-query-usb */
  GError *error;
  guint pending;
} UsbQuery;

static void
controller_free(Controller *controller)
{
  g_free(controller->id);
  g_free(controller->type);
  g_free(controller);
}

static void
usb_query_free(UsbQuery *query)
{
  g_object_unref(query->qmp);
  g_ptr_array_unref(query->controllers);
  g_strv_builder_unref(query->hub_ids);
  if (query->usb_list)
    json_node_unref(query->usb_list);
  g_clear_error(&query->error);
  g_free(query);
}

static void
usb_query_finish(GTask *task)
{
  UsbQuery *query = g_task_get_task_data(task);
  g_autoptr(GuestUsbPorts) ports = guest_usb_ports_new();
  GError *error = NULL;

  if (query->error) {
    g_task_return_error(task, g_steal_pointer(&query->error));
    g_object_unref(task);
    return;
  }
  for (guint i = 0; i < query->controllers->len; i++) {
    Controller *controller = g_ptr_array_index(query->controllers, i);
    guint n_ports = controller->ports;
    /* xhci has MAX(p2, p3) ports; ohci num-ports */
    if (controller->property_value[0] > 0 || controller->property_value[1] > 0)
      n_ports = (guint)CLAMP(MAX(controller->property_value[0], controller->property_value[1]),
                             1, 255);
    if (!guest_usb_ports_add_controller(ports, (guint)controller_index(controller->id),
                                        controller->id, controller->type, n_ports, &error)) {
      g_task_return_error(task, error);
      g_object_unref(task);
      return;
    }
  }
  const char *text = query->usb_list && JSON_NODE_HOLDS_OBJECT(query->usb_list)
      ? json_object_get_string_member_with_default(json_node_get_object(query->usb_list),
                                                   "human-readable-text", NULL)
      : NULL;
  g_auto(GStrv) hub_ids = g_strv_builder_end(query->hub_ids);
  if (text == NULL) {
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                            "cannot read the VM's USB ports: x-query-usb gave no text");
  } else if (!guest_usb_ports_take_listed(ports, text, (const char *const *)hub_ids, &error)) {
    g_task_return_error(task, error);
  } else {
    g_task_return_pointer(task, g_steal_pointer(&ports), (GDestroyNotify)guest_usb_ports_free);
  }
  g_object_unref(task);
}

typedef struct {
  GTask *task;
  Controller *controller;   /* NULL: the x-query-usb reply */
  guint which;
} PropertyCall;

static void
on_reply(GObject *source, GAsyncResult *result, gpointer user_data)
{
  PropertyCall *call = user_data;
  GTask *task = call->task;
  UsbQuery *query = g_task_get_task_data(task);
  g_autoptr(GError) error = NULL;
  JsonNode *value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (call->controller == NULL) {
    query->usb_list = value;
    if (value == NULL && query->error == NULL)
      query->error = g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                                 "cannot read the VM's USB ports (x-query-usb): %s",
                                 error->message);
  } else {
    if (value && JSON_NODE_HOLDS_VALUE(value) &&
        json_node_get_value_type(value) == G_TYPE_INT64)
      call->controller->property_value[call->which] = json_node_get_int(value);
    if (value)
      json_node_unref(value);
  }
  if (--query->pending == 0)
    usb_query_finish(task);
  else
    g_object_unref(task);
  g_free(call);
}

/* @arguments: (nullable) (transfer full) */
static void
send_call(GTask *task, Controller *controller, guint which, const char *command,
          JsonObject *arguments)
{
  UsbQuery *query = g_task_get_task_data(task);
  PropertyCall *call = g_new0(PropertyCall, 1);
  call->task = g_object_ref(task);
  call->controller = controller;
  call->which = which;
  query->pending++;
  qmp_client_execute_async(query->qmp, command, arguments, -1, 0, NULL, on_reply, call);
  if (arguments)
    json_object_unref(arguments);
}

static JsonObject *
qom_get_arguments(const char *id, const char *property)
{
  JsonObject *arguments = json_object_new();
  g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
  json_object_set_string_member(arguments, "path", path);
  json_object_set_string_member(arguments, "property", property);
  return arguments;
}

static void
on_peripherals(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  UsbQuery *query = g_task_get_task_data(task);
  GError *error = NULL;
  g_autoptr(JsonNode) value = qmp_client_execute_finish(QMP_CLIENT(source), result, &error);

  if (value == NULL || !JSON_NODE_HOLDS_ARRAY(value)) {
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                            "cannot read the VM's devices from QEMU (qom-list): %s",
                            error ? error->message : "not a list");
    g_clear_error(&error);
    g_object_unref(task);
    return;
  }
  JsonArray *entries = json_node_get_array(value);
  /* the controllers' port counts and QEMU's list of USB devices, in one round */
  query->pending = 1;
  for (guint i = 0; i < json_array_get_length(entries); i++) {
    JsonObject *entry = json_array_get_object_element(entries, i);
    const char *name = entry ? json_object_get_string_member_with_default(entry, "name", "") : "";
    const char *type = entry ? json_object_get_string_member_with_default(entry, "type", "") : "";
    if (!g_str_has_prefix(type, "child<") || !g_str_has_suffix(type, ">"))
      continue;
    g_autofree char *qom_type = g_strndup(type + 6, strlen(type) - 7);
    const char *property;
    guint n_ports = guest_usb_controller_ports(qom_type, &property);
    if (g_strcmp0(qom_type, "usb-hub") == 0)
      g_strv_builder_add(query->hub_ids, name);
    if (n_ports == 0 || controller_index(name) < 0)
      continue;
    Controller *controller = g_new0(Controller, 1);
    controller->id = g_strdup(name);
    controller->type = g_steal_pointer(&qom_type);
    controller->ports = n_ports;
    controller->property_value[0] = controller->property_value[1] = -1;
    g_ptr_array_add(query->controllers, controller);
    if (property) {
      send_call(task, controller, 0, "qom-get", qom_get_arguments(name, property));
      if (g_strcmp0(property, "p2") == 0)
        send_call(task, controller, 1, "qom-get", qom_get_arguments(name, "p3"));
    }
  }
  send_call(task, NULL, 0, "x-query-usb", NULL);
  if (--query->pending == 0)
    usb_query_finish(task);
  else
    g_object_unref(task);
}

void
guest_usb_ports_query_async(QmpClient *qmp, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, cancellable, callback, user_data);
  UsbQuery *query = g_new0(UsbQuery, 1);
  g_autoptr(JsonObject) arguments = json_object_new();

  g_task_set_source_tag(task, guest_usb_ports_query_async);
  query->qmp = g_object_ref(qmp);
  query->controllers = g_ptr_array_new_with_free_func((GDestroyNotify)controller_free);
  query->hub_ids = g_strv_builder_new();
  g_task_set_task_data(task, query, (GDestroyNotify)usb_query_free);
  json_object_set_string_member(arguments, "path", "/machine/peripheral");
  qmp_client_execute_async(qmp, "qom-list", arguments, -1, 0, cancellable, on_peripherals, task);
}

GuestUsbPorts *
guest_usb_ports_query_finish(GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer(G_TASK(result), error);
}
