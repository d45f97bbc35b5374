/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-prep.h - everything done to the host for one attached device, as
 * one record that the journal keeps, and its undo
 *
 * It composes the host modules in the order an attach needs them: claims
 * (host-wide ownership), the VFIO binding and /dev/vfio/N ownership, the
 * VF's MAC/VLAN for <interface type='hostdev'>.  The QEMU side (fdsets,
 * device_add) stays with the caller.
 */
#pragma once

#include "claims.h"
#include "hostdev.h"
#include "host-usb.h"
#include "sriov.h"
#include "vfio.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct {
  GPtrArray *claims;          /* keys held (char *) */
  VfioRecord *vfio;           /* PCI: what binding did; NULL otherwise */
  gint fdset_id;              /* USB: QEMU fdset holding our descriptor, -1 none */
  gboolean usb_follow;        /* USB: attached again when it re-enumerates (usb-follow.h);
                               * journaled with the rest, but no host effect of its own */
  char *usb_port_disabled;    /* USB: the hub port disabled to revoke QEMU's descriptors
                               * (usb-revoke.h), relative to the host root; journaled
                               * before the write, so any undo enables it again */
  gboolean vf_saved;          /* <interface type='hostdev'>: the VF settings before */
  SriovVfConfig vf_before;
  gboolean memlock_saved;     /* QEMU's RLIMIT_MEMLOCK before hostdevd raised it for VFIO */
  guint64 memlock_soft;
  guint64 memlock_hard;

  /* set by host_prep_claim(), not journaled: where the claims are, and the
   * PCI device's origin its claim carried (a stale holder's, or this VM's
   * own), NULL none; host_prep_vfio_begin() builds the record from it */
  char *claims_runtime_dir;
  char *claims_vm;
  ClaimOrigin *inherited_origin;
} HostPrep;

HostPrep *host_prep_new(void);
void host_prep_free(HostPrep *prep);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HostPrep, host_prep_free)

/* Return: whether nothing was done to the host (nothing to journal or undo). */
gboolean host_prep_is_empty(const HostPrep *prep);

/**
 * host_prep_to_journal() - the record for the journal, as the JSON text of an
 * object (what host_prep_from_json() reads back)
 * @binding_in_flight: a binding step may be under way: write the binding as
 *   possibly done, so an undo after a crash restores it (the undo looks at
 *   the device's real driver, so undoing what never happened is harmless)
 */
char *host_prep_to_journal(const HostPrep *prep, gboolean binding_in_flight);

/* Return: (transfer full): the record read back from the journal, or NULL with @error. */
HostPrep *host_prep_from_json(JsonObject *object, GError **error);

/**
 * host_prep_claim() - claim @hostdev's host device (and its IOMMU group;
 * an mdev by its UUID) for @vm host-wide, held by @owner's hostdevd and
 * QEMU; a Busy error names the VM that holds it.  A parent and its
 * mediated devices exclude each other: a PCI device one of whose mdevs a
 * VM holds, or an mdev whose parent a VM holds whole, is Busy too (the
 * claim just taken stays in @prep for the undo).  A PCI device's claim
 * taken over from a holder that is gone (or this VM's own) hands its
 * origin on to host_prep_vfio_begin(); a claim without one gets it now:
 * @prep's VFIO record is read under the claims lock, the device free for
 * this VM, and its original state stored in the claim in the same write,
 * for whoever takes the claim over after us.  The other devices of the
 * IOMMU group that a VM which is gone left claimed are taken on too: their
 * claims join @prep's, and what that VM left to give back joins @prep's
 * VFIO record as companions.
 * @usb: (nullable): the resolved USB device
 * @sibling: (nullable): PCI: the record of a device of the same IOMMU group
 *   this VM holds: when it bound this device as a companion (whole-group
 *   takeover), the claim stores the companion's original state, so a VM
 *   that takes the claim over after us gives the device back there
 */
gboolean host_prep_claim(HostPrep *prep, const char *runtime_dir, const char *vm,
                         const ClaimOwner *owner, const Hostdev *hostdev,
                         const HostUsbDevice *usb, const VfioRecord *sibling,
                         GError **error);

/* Return: whether @prep's claims brought something to give back that a
 * holder which is gone left (host_prep_claim()): its VFIO record is not clean
 * before any binding of this VM, or came from an origin. */
gboolean host_prep_inherited(const HostPrep *prep);

/* Return: whether @prep (nullable) holds the claim @key. */
gboolean host_prep_holds_claim(const HostPrep *prep, const char *key);

/**
 * host_prep_vfio_begin() - the record of the device's original state,
 * touching nothing (vfio_check_iommu() is the caller's, once per attach)
 * Once host_prep_claim() holds the device: when its claim carried an
 * origin, the record is built from it (vfio_record_new_from_origin(): what
 * a holder that is gone left done counts as done, so the undo restores the
 * original driver); otherwise it is the one host_prep_claim() read under
 * the claims lock.  Before the claim (a dry run's checks), the state now.
 */
gboolean host_prep_vfio_begin(HostPrep *prep, const Hostdev *hostdev, GError **error);

/**
 * host_prep_vfio_plan() - plan the binding, touching nothing: the
 * companions a whole-group takeover binds (their driver and
 * driver_override now) and the owner of /dev/vfio/N before the chown
 * (when the node exists), so that the record journaled before
 * host_prep_vfio_bind_async() holds everything it will do.  HostError
 * when the group is not viable and may not be taken whole.
 * @sibling: (nullable): the record of a device of the same group this VM holds
 */
gboolean host_prep_vfio_plan(HostPrep *prep, gboolean take_whole_group,
                             const VfioRecord *sibling, GError **error);

/**
 * host_prep_vfio_bind_async() - make the group viable, bind to vfio-pci,
 * wait for /dev/vfio/N and give it to @uid:@gid, in a worker thread
 * (the kernel's writes and waits can take seconds).  Binds exactly what
 * host_prep_vfio_plan() planned (planning first when it was not called),
 * and fails, nothing bound, if the group changed since.  On failure what
 * was done is undone before the error is returned.
 * @sibling: (nullable): the record of a device of the same group this VM holds
 */
void host_prep_vfio_bind_async(HostPrep *prep, gboolean take_whole_group, uid_t uid,
                               gid_t gid, const VfioRecord *sibling,
                               GAsyncReadyCallback callback, gpointer user_data);
gboolean host_prep_vfio_bind_finish(GAsyncResult *result, GError **error);

/* host_prep_vf_save() - read the VF's MAC/VLAN into @prep (nothing changes), when
 * <interface type='hostdev'> sets either; journal @prep before host_prep_vf_apply(). */
gboolean host_prep_vf_save(HostPrep *prep, const Hostdev *hostdev, GError **error);

/* host_prep_vf_apply() - program the XML's MAC/VLAN on the VF (after host_prep_vf_save()). */
gboolean host_prep_vf_apply(const HostPrep *prep, const Hostdev *hostdev, GError **error);

/**
 * host_prep_leave_administered() - the PCI devices of @prep's binding
 * that the administrator set since @vm, with the QEMU @qemu, left them
 * (claims_note_administered()): their binding is left out of the undo, so
 * they stay on the driver the administrator chose (logged)
 */
void host_prep_leave_administered(HostPrep *prep, const char *runtime_dir, const char *vm,
                                  const ProcessIdentity *qemu);

/**
 * host_prep_release_async() - undo everything, newest first: a USB hub port
 * left disabled (usb_port_disabled) enabled again, the VF's
 * settings, the binding (waiting, bounded, while QEMU lets go: the kernel
 * blocks the unbind until then), the claims.  Call it only once QEMU no
 * longer holds the device, or never had it.
 * @wait: (nullable): QEMU is exiting (it held the device until its end):
 *   host drivers are probed only once that process is gone, waiting at
 *   most @wait->timeout_ms; NULL when QEMU lives on and has let go already
 * A Timeout error names the slow step (QEMU still holding the device,
 * still exiting, or the host driver's probe); the claims stay then.
 */
void host_prep_release_async(HostPrep *prep, const char *runtime_dir, const char *vm,
                             const HostReleaseWait *wait,
                             GAsyncReadyCallback callback, gpointer user_data);
gboolean host_prep_release_finish(GAsyncResult *result, GError **error);

G_END_DECLS
