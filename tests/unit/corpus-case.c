/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "corpus-case.h"
#include "guest-addr.h"
#include "guest-usb.h"
#include "hostdev.h"
#include "qemu-device.h"

#include <string.h>

void
corpus_result_free(CorpusResult *result)
{
  if (result == NULL)
    return;
  g_clear_pointer(&result->args, json_array_unref);
  g_free(result->live_xml);
  g_clear_error(&result->error);
  g_free(result);
}

char *
corpus_json_to_string(JsonNode *node)
{
  g_autoptr(JsonGenerator) generator = json_generator_new();

  json_generator_set_root(generator, node);
  return json_generator_to_data(generator, NULL);
}

static guint
member_uint(JsonObject *object, const char *name, guint fallback)
{
  if (object == NULL || !json_object_has_member(object, name))
    return fallback;
  return (guint)json_object_get_int_member(object, name);
}

static void
corpus_bus_free(GuestPciBus *bus)
{
  g_free(bus->id);
  g_free(bus->model);
  g_free(bus);
}

static GuestPciBus *
corpus_bus(const char *id, const char *model, gint index, gboolean hotpluggable, guint first,
           guint last)
{
  GuestPciBus *bus = g_new0(GuestPciBus, 1);
  bus->id = g_strdup(id);
  bus->model = g_strdup(model);
  bus->index = index;
  bus->hotpluggable = hotpluggable;
  bus->first_slot = first;
  bus->last_slot = last;
  return bus;
}

/* The VM tests/libvirt/compare-libvirt.py defines around every case, as QEMU shows it:
 * q35 with pcie-root and empty pcie-root-ports pci.1..pci.8; or s390x with its pci-root. */
static GuestTopology *
corpus_topology(gboolean s390x)
{
  GuestTopology *topology = g_new0(GuestTopology, 1);
  topology->arch = g_strdup(s390x ? "s390x" : "x86_64");
  topology->buses = g_ptr_array_new_with_free_func((GDestroyNotify)corpus_bus_free);
  topology->zpci = g_ptr_array_new();
  if (s390x) {
    g_ptr_array_add(topology->buses, corpus_bus("pci.0", "pci-root", 0, TRUE, 1, 31));
    return topology;
  }
  g_ptr_array_add(topology->buses, corpus_bus("pcie.0", "pcie-root", 0, FALSE, 0, 31));
  for (gint index = 1; index <= 8; index++) {
    g_autofree char *id = g_strdup_printf("pci.%d", index);
    g_ptr_array_add(topology->buses, corpus_bus(id, "pcie-root-port", index, TRUE, 0, 0));
  }
  return topology;
}

/* ... and its USB controllers: qemu-xhci "usb" (index 0) and "usb1" (index 1), 4 ports each. */
static GuestUsbPorts *
corpus_usb_ports(void)
{
  GuestUsbPorts *ports = guest_usb_ports_new();
  guest_usb_ports_add_controller(ports, 0, "usb", "qemu-xhci", 4, NULL);
  guest_usb_ports_add_controller(ports, 1, "usb1", "qemu-xhci", 4, NULL);
  return ports;
}

/*
 * place_as_the_daemon_does() - a device the context gives no place and the
 * XML no address gets the one hostdevd's allocators choose in the corpus
 * VM, which compare-libvirt.py holds against libvirt's own choice.
 */
static gboolean
place_as_the_daemon_does(Hostdev *hostdev, QemuDeviceContext *ctx, char **bus_id,
                         GError **error)
{
  if (hostdev->type == HOSTDEV_TYPE_USB && hostdev->usb_guest.port == NULL) {
    g_autoptr(GuestUsbPorts) ports = corpus_usb_ports();
    guint bus;
    g_autofree char *port = NULL;
    if (!guest_usb_place(ports, hostdev->usb_guest.present, hostdev->usb_guest.bus, NULL,
                         ctx->id, &bus, &port, error))
      return FALSE;
    hostdev->usb_guest.present = TRUE;
    hostdev->usb_guest.bus = bus;
    hostdev->usb_guest.port = g_steal_pointer(&port);
    return TRUE;
  }
  if (hostdev->type == HOSTDEV_TYPE_USB || hostdev->pci_guest.present)
    return TRUE;
  g_autoptr(GuestTopology) topology = corpus_topology(ctx->s390x);
  const GuestPciBus *bus = NULL;
  PciAddress placed;
  if (!guest_pci_place(topology, NULL, &placed, &bus, error))
    return FALSE;
  *bus_id = g_strdup(bus->id);
  ctx->pci_bus_id = *bus_id;
  ctx->pci_slot = placed.slot;
  ctx->pci_function = placed.function;
  hostdev->pci_guest.present = TRUE;
  hostdev->pci_guest.addr = placed;
  return TRUE;
}

CorpusResult *
corpus_case_run(const char *xml, gsize length, JsonObject *spec)
{
  CorpusResult *result = g_new0(CorpusResult, 1);
  JsonObject *context = NULL;
  JsonObject *usb = NULL;
  JsonObject *zpci = NULL;
  g_autoptr(Hostdev) hostdev = NULL;
  g_autoptr(GPtrArray) plan = NULL;
  g_autofree char *bus_id = NULL;
  g_autofree char *id = NULL;
  HostUsbDevice resolved = { .sysfs_name = (char *)"corpus" };
  QemuDeviceContext ctx = { 0 };

  if (json_object_has_member(spec, "context"))
    context = json_object_get_object_member(spec, "context");

  hostdev = hostdev_parse_xml(xml, length, &result->error);
  if (hostdev == NULL)
    return result;

  id = g_strdup(context && json_object_has_member(context, "id")
                   ? json_object_get_string_member(context, "id")
                   : hostdev->alias ? hostdev->alias : "hostdev0");
  ctx.id = id;
  ctx.s390x = context && json_object_get_boolean_member_with_default(context, "s390x", FALSE);
  /* the corpus machine is q35, or s390x */
  ctx.pcie_root = !ctx.s390x;

  if (context && json_object_has_member(context, "usb")) {
    usb = json_object_get_object_member(context, "usb");
    resolved.bus = member_uint(usb, "bus", 0);
    resolved.device = member_uint(usb, "device", 0);
    resolved.vendor = hostdev->usb.vendor;
    resolved.product = hostdev->usb.product;
    ctx.usb = &resolved;
  }
  if (context)
    ctx.usb_hostdevice = json_object_get_string_member_with_default(context, "usb_hostdevice",
                                                                    NULL);
  if (context && json_object_has_member(context, "pci_bus")) {
    bus_id = qemu_pci_bus_id(member_uint(context, "pci_bus", 0), ctx.pcie_root);
    ctx.pci_bus_id = bus_id;
    ctx.pci_slot = member_uint(context, "slot", 0);
    ctx.pci_function = member_uint(context, "function", 0);
  }
  /* what the caller assigns for zPCI when the XML leaves it out */
  if (context && json_object_has_member(context, "zpci")) {
    zpci = json_object_get_object_member(context, "zpci");
    if (!hostdev->zpci.has_uid && json_object_has_member(zpci, "uid")) {
      hostdev->zpci.has_uid = TRUE;
      hostdev->zpci.uid = member_uint(zpci, "uid", 0);
    }
    if (!hostdev->zpci.has_fid && json_object_has_member(zpci, "fid")) {
      hostdev->zpci.has_fid = TRUE;
      hostdev->zpci.fid = member_uint(zpci, "fid", 0);
    }
  }

  if (ctx.pci_bus_id == NULL && !place_as_the_daemon_does(hostdev, &ctx, &bus_id, &result->error))
    return result;

  plan = qemu_device_plan(hostdev, &ctx, &result->error);
  if (plan == NULL)
    return result;
  result->args = json_array_new();
  for (guint i = 0; i < plan->len; i++)
    json_array_add_object_element(result->args,
                                  json_object_ref(g_ptr_array_index(plan, i)));

  /* what an attach records before it formats the live XML */
  g_free(hostdev->alias);
  hostdev->alias = g_strdup(id);
  if (ctx.pci_bus_id != NULL && context && json_object_has_member(context, "pci_bus")) {
    hostdev->pci_guest.present = TRUE;
    hostdev->pci_guest.addr = (PciAddress){ 0, member_uint(context, "pci_bus", 0),
                                            ctx.pci_slot, ctx.pci_function };
  }
  if (ctx.usb != NULL && !hostdev->usb.has_address) {
    hostdev->usb.has_address = TRUE;
    hostdev->usb.bus = resolved.bus;
    hostdev->usb.device = resolved.device;
  }
  result->live_xml = hostdev_format_xml(hostdev);
  return result;
}
