/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "guest-addr.h"
#include "hostdevd-error.h"

#include <stdio.h>
#include <string.h>

/* A port path is dotted decimal: "1", "1.4", "2.1.3". */
static gboolean
is_port_path(const char *text)
{
  gboolean digit_seen = FALSE;
  for (const char *p = text; *p; p++) {
    if (g_ascii_isdigit(*p))
      digit_seen = TRUE;
    else if (*p == '.' && digit_seen)
      digit_seen = FALSE;
    else
      return FALSE;
  }
  return digit_seen;
}

gboolean
guest_usb_address_from_query(const char *text, const char *id, guint *bus, char **port)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

  for (char **line = lines; *line; line++) {
    const char *id_field = strstr(*line, ", ID: ");
    if (id_field == NULL)
      continue;
    g_autofree char *found_id = g_strstrip(g_strdup(id_field + strlen(", ID: ")));
    if (g_strcmp0(found_id, id) != 0)
      continue;
    guint bus_number, device_address;
    char port_buf[64] = "";
    if (sscanf(*line, " Device %u.%u, Port %63[0-9.],", &bus_number, &device_address,
               port_buf) != 3 || !is_port_path(port_buf))
      return FALSE;
    *bus = bus_number;
    *port = g_strdup(port_buf);
    return TRUE;
  }
  return FALSE;
}

/* Return: (transfer full): "pci.1, pci.2" — the buses that take hot-plugged devices. */
static char *
hotpluggable_buses(const GuestTopology *topology)
{
  g_autoptr(GString) list = g_string_new(NULL);
  for (guint i = 0; i < topology->buses->len; i++) {
    const GuestPciBus *bus = g_ptr_array_index(topology->buses, i);
    if (bus->hotpluggable && bus->index >= 0)
      g_string_append_printf(list, "%s%s (%s)", list->len ? ", " : "", bus->id, bus->model);
  }
  return g_string_free(g_steal_pointer(&list), list->len == 0);
}

static gboolean
place_requested(const GuestTopology *topology, const PciAddress *requested,
                PciAddress *placed, const GuestPciBus **bus_out, GError **error)
{
  if (requested->domain != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "guest <address domain='0x%04x'>: QEMU has one PCI domain, use 0x0000",
                requested->domain);
    return FALSE;
  }
  const GuestPciBus *bus = guest_topology_find_bus(topology, requested->bus);
  if (bus == NULL) {
    g_autofree char *usable = hotpluggable_buses(topology);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "guest <address bus='0x%02x'>: this VM has no PCI controller with index %u "
                "(QEMU id pci.%u); buses that take hot-plugged devices: %s",
                requested->bus, requested->bus, requested->bus, usable ? usable : "none");
    return FALSE;
  }
  if (!bus->hotpluggable) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "guest <address bus='0x%02x'>: %s (%s) does not take hot-plugged devices; "
                "leave <address> out or name a free pcie-root-port", requested->bus, bus->id,
                bus->model);
    return FALSE;
  }
  if (requested->slot < bus->first_slot || requested->slot > bus->last_slot) {
    if (bus->first_slot == bus->last_slot)
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "guest <address slot='0x%02x'>: %s (%s) has only slot 0x%02x",
                  requested->slot, bus->id, bus->model, bus->first_slot);
    else
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "guest <address slot='0x%02x'>: %s (%s) takes slots 0x%02x..0x%02x",
                  requested->slot, bus->id, bus->model, bus->first_slot, bus->last_slot);
    return FALSE;
  }
  if (requested->function != 0) {
    /* The guest learns of a slot when function 0 arrives; lone other functions are never seen. */
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "guest <address function='0x%x'>: only function 0 can be hot-plugged; "
                "a guest announces a hot-plugged slot by its function 0, so a device at "
                "another function would stay invisible. Use function='0x0'",
                requested->function);
    return FALSE;
  }
  if (bus->occupant[requested->slot]) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "guest <address bus='0x%02x' slot='0x%02x'>: the slot is taken by %s; "
                "leave <address> out to use a free slot", requested->bus, requested->slot,
                bus->occupant[requested->slot]);
    return FALSE;
  }
  *placed = *requested;
  *bus_out = bus;
  return TRUE;
}

gboolean
guest_pci_place(const GuestTopology *topology, const PciAddress *requested,
                PciAddress *placed, const GuestPciBus **bus_out, GError **error)
{
  if (requested)
    return place_requested(topology, requested, placed, bus_out, error);

  for (guint i = 0; i < topology->buses->len; i++) {
    const GuestPciBus *bus = g_ptr_array_index(topology->buses, i);
    if (!bus->hotpluggable || bus->index < 0)
      continue;
    for (guint slot = bus->first_slot; slot <= bus->last_slot; slot++) {
      if (bus->occupant[slot] == NULL) {
        *placed = (PciAddress){ .domain = 0, .bus = (guint)bus->index, .slot = slot, .function = 0 };
        *bus_out = bus;
        return TRUE;
      }
    }
  }
  guint next = 1;
  for (guint i = 0; i < topology->buses->len; i++) {
    const GuestPciBus *bus = g_ptr_array_index(topology->buses, i);
    if (bus->index >= 0)
      next = MAX(next, (guint)bus->index + 1);
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
              "no free hot-pluggable PCI slot in this VM: every pcie-root-port (pci.N) holds a "
              "device already. QEMU cannot add root ports to a running VM, so start it with "
              "spare ones, one per device to hot-plug, e.g. "
              "-device pcie-root-port,id=pci.%u,chassis=%u", next, next);
  return FALSE;
}

static const GuestZpci *
zpci_holding(const GuestTopology *topology, gboolean by_uid, guint value)
{
  for (guint i = 0; i < topology->zpci->len; i++) {
    const GuestZpci *zpci = g_ptr_array_index(topology->zpci, i);
    if ((by_uid ? zpci->uid : zpci->fid) == value)
      return zpci;
  }
  return NULL;
}

static gboolean
zpci_pick(const GuestTopology *topology, gboolean by_uid, gboolean has_value, guint value,
          guint *out, GError **error)
{
  const char *name = by_uid ? "uid" : "fid";
  if (has_value) {
    const GuestZpci *holder = zpci_holding(topology, by_uid, value);
    if (holder) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                  "<zpci %s='0x%04x'>: zPCI %s 0x%04x is already used by %s%s%s; choose "
                  "another or leave it out", name, value, name, value,
                  holder->id ? holder->id : "QEMU's own zPCI function",
                  holder->target ? " of " : "", holder->target ? holder->target : "");
      return FALSE;
    }
    *out = value;
    return TRUE;
  }
  guint64 limit = by_uid ? 0xffff : 0xffffffffu;
  for (guint64 candidate = by_uid ? 1 : 0; candidate <= limit; candidate++) {
    if (zpci_holding(topology, by_uid, (guint)candidate) == NULL) {
      *out = (guint)candidate;
      return TRUE;
    }
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY, "every zPCI %s is in use", name);
  return FALSE;
}

gboolean
guest_zpci_assign(const GuestTopology *topology, gboolean has_uid, guint uid,
                  gboolean has_fid, guint fid, guint *uid_out, guint *fid_out, GError **error)
{
  return zpci_pick(topology, TRUE, has_uid, uid, uid_out, error) &&
         zpci_pick(topology, FALSE, has_fid, fid, fid_out, error);
}
