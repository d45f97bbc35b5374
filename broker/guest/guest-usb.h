/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * guest-usb.h - the VM's USB ports: controllers, hubs, which ports are
 * taken, and where a new device goes, the way libvirt 9.0 allocates them
 *
 * A controller is known by libvirt's index: QEMU id "usb" is index 0,
 * "usbN" index N, and its bus is "<id>.0".  Each controller is a root hub
 * of a number of ports; a usb-hub plugged into a port adds 8 more below it
 * (port path "P.1".."P.8"), at most 4 levels deep.
 */
#pragma once

#include <glib.h>
#include "qmp-client.h"

G_BEGIN_DECLS

#define GUEST_USB_HUB_PORTS 8
#define GUEST_USB_MAX_DEPTH 4

typedef struct _GuestUsbHub GuestUsbHub;

typedef struct {
  guint index;          /* libvirt's controller index */
  char *bus_id;         /* the bus device_add names: "usb.0", "usb1.0" */
  char *model;          /* QOM type: "qemu-xhci", "usb-ehci", ... */
  GuestUsbHub *root;    /* the controller's own ports */
} GuestUsbBus;

typedef struct {
  GPtrArray *buses;     /* GuestUsbBus*, ordered by index */
} GuestUsbPorts;

GuestUsbPorts *guest_usb_ports_new(void);
void guest_usb_ports_free(GuestUsbPorts *ports);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GuestUsbPorts, guest_usb_ports_free)

/* guest_usb_ports_add_controller() - controller @index with @n_ports ports, known to QEMU as @id. */
gboolean guest_usb_ports_add_controller(GuestUsbPorts *ports, guint index, const char *id,
                                        const char *model, guint n_ports, GError **error);

/* guest_usb_ports_add_hub() - a hub sits at @port of bus @index: its port is taken, and it
 * offers GUEST_USB_HUB_PORTS ports below. Return: FALSE when there is no such free port. */
gboolean guest_usb_ports_add_hub(GuestUsbPorts *ports, guint index, const char *port,
                                 GError **error);

/* guest_usb_ports_take() - @occupant holds @port of bus @index.
 * Return: FALSE when the port does not exist or is taken already. */
gboolean guest_usb_ports_take(GuestUsbPorts *ports, guint index, const char *port,
                              const char *occupant, GError **error);

/* guest_usb_ports_release() - @port of bus @index is free again (no-op when unknown). */
void guest_usb_ports_release(GuestUsbPorts *ports, guint index, const char *port);

/* guest_usb_ports_give_back() - @port of bus @index is free again if @occupant holds it. */
void guest_usb_ports_give_back(GuestUsbPorts *ports, guint index, const char *port,
                               const char *occupant);
/* Return: (nullable): the controller with libvirt index @index. */
const GuestUsbBus *guest_usb_ports_find_bus(const GuestUsbPorts *ports, guint index);

/**
 * guest_usb_place() - the port a new USB device gets, as libvirt chooses it
 * @has_bus: the XML names a controller (<address type='usb' bus=.../>)
 * @port: (nullable): the port the XML names, canonical ("1", "1.2")
 * @bus_out: (out): the controller index
 * @port_out: (out) (transfer full): the port path
 * A named port must exist and be free.  Otherwise the controllers are tried
 * in index order (only the named one when @has_bus): on each, its own
 * lowest free port, else, hub by hub in port order, the same search one
 * level down.  The port is taken for @occupant, so the next device of a
 * request goes elsewhere.
 * Return: FALSE with a HOSTDEVD_ERROR saying what is missing or full.
 */
gboolean guest_usb_place(GuestUsbPorts *ports, gboolean has_bus, guint bus, const char *port,
                         const char *occupant, guint *bus_out, char **port_out, GError **error);

/**
 * guest_usb_ports_take_listed() - mark every port x-query-usb lists as taken
 * @text: its "human-readable-text"; lines "  Device B.A, Port P, ..."
 * @hub_ids: (nullable): ids of the usb-hub devices: their ports become hubs
 * Bus number B is the controller's position in index order, as QEMU
 * numbers buses in the order libvirt creates the controllers.  A port
 * below another listed port makes that one a hub too.
 * Return: FALSE with a HOSTDEVD_ERROR_QEMU_ERROR when a line is not a
 * device line or names a port the controllers do not have.
 */
gboolean guest_usb_ports_take_listed(GuestUsbPorts *ports, const char *text,
                                     const char *const *hub_ids, GError **error);

/* Return: the number of ports controller model @model (a QOM type) has by default, 0 for one
 * that is not a USB controller with a bus of its own. *@from_property: the QOM property that
 * overrides it ("p2"/"p3" of xhci, "num-ports" of ohci), or NULL. */
guint guest_usb_controller_ports(const char *model, const char **property);

/* guest_usb_ports_query_async() - read the USB ports from QEMU (qom-list, x-query-usb, qom-get). */
void guest_usb_ports_query_async(QmpClient *qmp, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data);
GuestUsbPorts *guest_usb_ports_query_finish(GAsyncResult *result, GError **error);

G_END_DECLS
