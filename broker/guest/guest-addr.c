/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "guest-addr.h"
#include "hostdevd-error.h"

#include <stdio.h>
#include <string.h>

/*
 * x-query-usb is QEMU's "info usb", one printf per device (hw/usb/bus.c):
 *
 *   "  Device %d.%d, Port %s, Speed %s Mb/s, Product %s[, ID: %s]\n"
 *
 * The product is the device's own string descriptor for a usb-host device,
 * so the device chooses it: it may hold ", ID: hostdev3" or a line break.
 * Hence: the id is the last ", ID: " of a line and ends it; every line must
 * be a whole device line (a line break in a product leaves a fragment that
 * is not).  A product cannot carry a whole forged line: QEMU keeps at most
 * 31 bytes of it (USBDevice.product_desc), fewer than the fixed part of a
 * line ("  Device 0.1, Port 1, Speed 12 Mb/s, Product ").  So a hostile
 * product can at most make its own port look taken (guest-usb.c), and the
 * guest port of hostdevd's devices is never read from this text: hostdevd
 * chooses it.
 */

/* Return: whether @id is a QEMU id as QEMU checks it (id_wellformed()). */
static gboolean
qemu_id_is_wellformed(const char *id)
{
  if (!g_ascii_isalpha(id[0]))
    return FALSE;
  return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") ==
         strlen(id);
}

/* Parse one device line strictly into @out (whose id points into @line). Return: FALSE when
 * @line is not one. */
static gboolean
parse_usb_line(char *line, GuestUsbLine *out)
{
  int consumed = -1;
  char speed[8] = "";

  memset(out, 0, sizeof *out);
  if (sscanf(line, "  Device %u.%u, Port %15[0-9.], Speed %7[0-9.] Mb/s, Product %n",
             &out->bus, &out->address, out->port, speed, &consumed) != 4 || consumed < 0)
    return FALSE;
  /* USB device addresses are 7 bits */
  if (out->address > 127)
    return FALSE;
  char *id_field = g_strrstr(line + consumed, ", ID: ");
  if (id_field && qemu_id_is_wellformed(id_field + strlen(", ID: ")))
    out->id = g_strdup(id_field + strlen(", ID: "));
  return TRUE;
}

static void
usb_line_free(GuestUsbLine *line)
{
  g_free(line->id);
  g_free(line);
}

GPtrArray *
guest_usb_lines_parse(const char *text, GError **error)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autoptr(GPtrArray) parsed = g_ptr_array_new_with_free_func((GDestroyNotify)usb_line_free);

  for (guint i = 0; lines[i]; i++) {
    /* the final newline; an empty line (a product ending in a line break) says nothing */
    if (lines[i][0] == '\0')
      continue;
    GuestUsbLine *line = g_new0(GuestUsbLine, 1);
    if (!parse_usb_line(lines[i], line)) {
      g_autofree char *shown = g_strescape(lines[i], NULL);
      usb_line_free(line);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                  "QEMU's x-query-usb answer has a line that is not a USB device: "
                  "'%.80s' (line %u); a device's product string may have broken it, so "
                  "no guest USB address in it is trusted", shown, i + 1);
      return NULL;
    }
    g_ptr_array_add(parsed, line);
  }
  return g_steal_pointer(&parsed);
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
