/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * guest-topology.h - the VM's PCI buses and zPCI identifiers, read from
 * QEMU's object tree (QOM)
 *
 * Guest bus numbers exist only after the firmware has run, so buses are
 * known here by their QEMU ids ("pci.3") and devices by the bus object they
 * hang on (their "parent_bus"), never by query-pci bus numbers.
 */
#pragma once

#include "qmp-client.h"

G_BEGIN_DECLS

#define GUEST_PCI_SLOTS 32

typedef struct {
  char *id;             /* the bus name device_add takes: "pci.3", "pcie.0" */
  char *model;          /* QOM type of the controller: "pcie-root-port", "pci-bridge", ... */
  gint index;           /* N of a "pci.N" controller (libvirt's index), 0 for the root bus, -1 otherwise */
  gboolean hotpluggable;
  guint first_slot;     /* slots a device may be hot-plugged into */
  guint last_slot;
  char *occupant[GUEST_PCI_SLOTS];  /* what sits in each slot (any function), NULL when free */
} GuestPciBus;

typedef struct {
  guint uid;
  guint fid;
  char *id;             /* the zpci device's id, NULL for one QEMU made itself */
  char *target;         /* the PCI device it describes */
} GuestZpci;

typedef struct {
  char *arch;           /* "x86_64", "s390x", ...: query-target's until
                         * guest_topology_check_arch() puts the executable's */
  GPtrArray *buses;     /* GuestPciBus*, ordered by index, then id */
  GPtrArray *zpci;      /* GuestZpci*, every zPCI function QEMU knows (s390x only) */
  GStrv ids;            /* ids of all user-created devices */
  GStrv types;          /* QOM types of all user-created devices, named or not */
  gboolean remembered;  /* the device list was not asked again: a device added through
                         * another monitor since may be missing */
} GuestTopology;

/* guest_pci_bus_new() - a bus with no slot taken; slots @first_slot..@last_slot hold devices. */
GuestPciBus *guest_pci_bus_new(const char *id, const char *model, gint index,
                               gboolean hotpluggable, guint first_slot, guint last_slot);
void guest_pci_bus_free(GuestPciBus *bus);

void guest_topology_free(GuestTopology *topology);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GuestTopology, guest_topology_free)

/**
 * guest_topology_query_async() - ask QEMU (a few rounds of parallel QOM queries)
 * @reuse: the device list of the last answer may serve again, kept up to date
 *   by QEMU's DEVICE_DELETED events and guest_topology_note_added() (no QMP
 *   round trip at all when every device is known); the result says so
 *   (GuestTopology.remembered).  FALSE: everything is asked again.
 */
void guest_topology_query_async(QmpClient *qmp, gboolean reuse, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data);
/* Return: (transfer full): the topology, or NULL with @error set. */
GuestTopology *guest_topology_query_finish(GAsyncResult *result, GError **error);

/* guest_topology_note_added() - @qmp's QEMU took device @id of QOM type @type
 * (a device_add hostdevd sent answered OK), on PCI bus @pci_bus at @devfn
 * (NULL, -1: on no PCI bus): a remembered list names it now, and no
 * discovery asks QEMU where it sits. */
void guest_topology_note_added(QmpClient *qmp, const char *id, const char *type,
                               const char *pci_bus, gint devfn);

/* guest_topology_forget() - the remembered device list may be wrong (a device_add
 * failed or may still complete, or clashed with a device hostdevd did not add). */
void guest_topology_forget(QmpClient *qmp);

/* Return: (nullable): the bus with libvirt controller index @index. */
GuestPciBus *guest_topology_find_bus(const GuestTopology *topology, guint index);

/**
 * guest_topology_check_arch() - cross-check QEMU's query-target with the
 * architecture its executable names (qemu-arch.h)
 * @expected: (nullable): from the executable or --qemu-arch; NULL: unknown
 * @how: (nullable): where @expected came from, for the message
 * They must agree, and @expected is kept.  Unknown, QEMU's answer is kept
 * only when it is not s390x: QEMU's word may narrow what hostdevd does,
 * never make it read and reuse zPCI identifiers.
 * Return: FALSE with a QemuError saying what disagrees and what to do.
 */
gboolean guest_topology_check_arch(GuestTopology *topology, const char *expected,
                                   const char *how, GError **error);

/* Return: whether the machine has zPCI (s390x). */
gboolean guest_topology_has_zpci(const GuestTopology *topology);

G_END_DECLS
