/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfio.h - host preparation of a PCI function for QEMU's vfio-pci: IOMMU
 * checks, group viability, managed binding to vfio-pci, ownership of
 * /dev/vfio/N, and giving all of it back.
 *
 * Everything done to the host is written into a VfioRecord step by step,
 * so that whatever fails, and whenever hostdevd dies, the record says
 * exactly what to undo.  The caller journals the record (as JSON) between
 * the steps.
 */
#pragma once

#include "claims.h"
#include "hostdev.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

typedef struct _VfioRecord VfioRecord;

struct _VfioRecord {
  PciAddress addr;
  int group;                  /* IOMMU group */
  gboolean managed;           /* managed='yes': we may bind and unbind */

  /* the host state before we touched anything */
  char *original_driver;      /* NULL: it was unbound */
  char *original_override;    /* NULL: driver_override was "(null)" */

  /* binding steps done and not yet undone, in the order they happen */
  gboolean override_written;  /* driver_override = vfio-pci */
  gboolean unbound;           /* unbound from original_driver */
  gboolean probed;            /* drivers_probe written */
  gboolean bound_by_us;       /* verified on vfio-pci because of us */

  /* /dev/vfio/N */
  gboolean chowned_by_us;
  gboolean node_before_known; /* the three below were read (the node existed) */
  uid_t node_uid_before;
  gid_t node_gid_before;
  mode_t node_mode_before;    /* permission bits only */

  /* (element-type VfioRecord) other endpoints of the group bound to
   * vfio-pci so that the group is viable (take_whole_group), planned by
   * vfio_record_plan_group() before any is bound; and those a VM that is
   * gone left bound, taken on with the group's claim (host_prep_claim()) */
  GPtrArray *companions;
  gboolean group_planned;     /* not journaled: only the binding steps look at it */
  /* (nullable) (element-type PciAddress) other endpoints of the group that
   * the same request binds: not in the way (not journaled) */
  GArray *joining;
};

/*
 * A QEMU process that is exiting: the kernel lets go of a device it held
 * when its fd closes, but gives the IOMMU group back (container torn
 * down, guest memory unpinned, DMA ownership released) only after that,
 * so a host driver probed too early is refused.  With one, giving back
 * waits (bounded) until the process is gone before probing host drivers.
 */
typedef struct {
  pid_t qemu;           /* the exiting QEMU */
  guint64 start_time;   /* its start time (field 22 of /proc/PID/stat), 0 unknown */
  guint timeout_ms;     /* bound of the wait, 0 for VFIO_DEFAULT_EXIT_WAIT_MS */
} HostReleaseWait;

/* Default bound of every wait (driver to appear, /dev/vfio/N to appear). */
#define VFIO_DEFAULT_WAIT_MS 5000

/* Default bound of vfio_restore_async() before it reports Timeout. */
#define VFIO_DEFAULT_RESTORE_TIMEOUT_MS 10000

/* Default bound of the wait for an exiting QEMU (HostReleaseWait). */
#define VFIO_DEFAULT_EXIT_WAIT_MS 30000

/* How long a host driver's drivers_probe refused with EINVAL/EBUSY (the
 * group not yet released) is retried when no QEMU exit is waited for. */
#define VFIO_PROBE_RETRY_MS 2000

/*
 * vfio_restore_keep_threads() - from now on a restore's thread is kept,
 * idle, for the next one, which then need not start one.  Call it once
 * the process may keep idle threads: an idle thread keeps the
 * capabilities it started with, so not before the sandbox's drop (until
 * then, each restore has a thread of its own that ends with it).
 */
void vfio_restore_keep_threads(void);

/* vfio_set_wait_ms() - bound the waits of the binding steps (tests). */
void vfio_set_wait_ms(guint ms);

/* vfio_set_use_pidfd() - wait for an exiting QEMU with pidfd_open() (the
 * default) or by polling /proc only, as on kernels before 5.3 (tests). */
void vfio_set_use_pidfd(gboolean use);

VfioRecord *vfio_record_ref(VfioRecord *record);
void vfio_record_unref(VfioRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfioRecord, vfio_record_unref)

/* vfio_record_append_json() - the record as the journal's JSON object, appended
 * to @out (json-text.h); @worst_case: as vfio_record_worst_case() has it. */
void vfio_record_append_json(GString *out, const VfioRecord *record, gboolean worst_case);

/* Return: (transfer full): the record as a JSON object (what vfio_record_append_json() writes). */
JsonObject *vfio_record_to_json(const VfioRecord *record);

/* Return: (transfer full): the record read back from the journal, every
 * field checked (address ranges, driver names, ids), or NULL with
 * InvalidArgument naming the bad member. */
VfioRecord *vfio_record_from_json(JsonObject *object, GError **error);

/* Return: whether the record holds nothing left to undo. */
gboolean vfio_record_is_clean(const VfioRecord *record);

/**
 * vfio_record_worst_case() - @record as if every step it plans had happened
 * Managed: the binding steps of the device and of each planned companion;
 * the node's ownership when its owner before is known.  For the journal
 * while a binding runs: an undo looks at the real drivers and owners, so
 * undoing what never happened is harmless.
 * Return: (transfer full): a new record.
 */
VfioRecord *vfio_record_worst_case(const VfioRecord *record);

/**
 * vfio_check_iommu() - can this host assign any PCI device through VFIO?
 * In order: an IOMMU is enabled (else how to enable it: firmware setting
 * and kernel command line, reading the ACPI DMAR/IVRS tables and
 * /proc/cmdline to say which); the vfio-pci driver and an IOMMU backend
 * (vfio_iommu_type1 or iommufd) are loaded; interrupts are remapped, or
 * vfio_iommu_type1's allow_unsafe_interrupts is set (the message explains
 * the risk).  HostError.  Reads only.
 */
gboolean vfio_check_iommu(GError **error);

/**
 * vfio_group_check_viable() - may QEMU use IOMMU group @group?
 * @except_self: (nullable): the device about to be bound, not counted
 * Viable when every other endpoint is unbound or on vfio-pci or pci-stub;
 * bridges and PCIe ports are exempt.  Otherwise HostError listing each
 * offending device with its ids and driver, and what to do.
 */
/* vfio_group_check_viable_joining() - the same, when the same request binds
 * @joining (nullable, element-type PciAddress) too: those are not in the way. */
gboolean vfio_group_check_viable_joining(int group, const PciAddress *except_self,
                                         const GArray *joining, GError **error);
gboolean vfio_group_check_viable(int group, const PciAddress *except_self,
                                 GError **error);

/**
 * vfio_record_new() - start a record: note @addr's driver, driver_override
 * and IOMMU group, and the owner and mode of /dev/vfio/N when it exists,
 * touching nothing.
 * Return: (transfer full): the record, or NULL with NotFound (no such
 * device) or HostError (no IOMMU group: the error says how to get one).
 */
VfioRecord *vfio_record_new(const PciAddress *addr, gboolean managed,
                            GError **error);

/**
 * vfio_record_new_from_origin() - start a record for a device a holder
 * that is gone may have left changed, from the @origin its claim carried
 * Like vfio_record_new(), touching nothing, but the original driver and
 * driver_override are @origin's, and every binding step whose trace the
 * device shows now counts as done (driver_override vfio-pci where the
 * origin had another; off its original driver; on vfio-pci where it was
 * not), as does the chown when /dev/vfio/N's owner or mode is not the
 * origin's: undoing the record gives the device back as the origin says.
 * A device that shows something else than the origin or the holder's
 * steps (another driver or driver_override: someone changed it since)
 * counts as it is now, and so does a managed='no' device's binding.
 * Return: (transfer full): the record, or NULL as vfio_record_new().
 */
VfioRecord *vfio_record_new_from_origin(const PciAddress *addr, gboolean managed,
                                        const ClaimOrigin *origin, GError **error);

/**
 * vfio_record_leave_binding() - the binding of @addr (@record's device or
 * a companion) is no longer @record's to undo: somebody else set the
 * device since; the node's ownership stays @record's
 * Return: whether @record had binding steps on @addr to undo
 */
gboolean vfio_record_leave_binding(VfioRecord *record, const PciAddress *addr);

/* Return: (nullable) (transfer none): the companion of @record at @addr. */
const VfioRecord *vfio_record_find_companion(const VfioRecord *record, const PciAddress *addr);

/* Return: (transfer full): the original state @record noted, for the
 * device's claim. */
ClaimOrigin *vfio_record_origin(const VfioRecord *record);

/**
 * vfio_record_plan_group() - plan what making the group viable will do,
 * touching nothing
 * When the group is not viable: with @take_whole_group (and managed) each
 * offending endpoint becomes a companion of @record, with its driver and
 * driver_override as they are now, so the caller can journal them before
 * vfio_step_take_group() binds them; else the error of
 * vfio_group_check_viable().  Planning twice does nothing more.
 */
gboolean vfio_record_plan_group(VfioRecord *record, gboolean take_whole_group,
                                GError **error);

/**
 * vfio_record_plan_node() - note who owns /dev/vfio/N before the chown,
 * touching nothing
 * @sibling: (nullable): the record of another device of the same group
 *   this VM holds: when it changed the node's owner, its "before" is the
 *   original one
 * Does nothing when the node does not exist yet (a managed binding
 * creates it; vfio_step_chown() reads it then).
 */
void vfio_record_plan_node(VfioRecord *record, const VfioRecord *sibling);

/**
 * vfio_step_take_group() - make the group viable for @record's device
 * Binds exactly the companions vfio_record_plan_group() planned (planning
 * first if the caller did not).  HostError, nothing bound, when the group
 * changed since it was planned (a member on another driver than planned).
 * Companions bound before a failure stay in @record, so vfio_undo() gives
 * them back.
 */
gboolean vfio_step_take_group(VfioRecord *record, gboolean take_whole_group,
                              GError **error);

/**
 * vfio_step_bind() - put @record's device on vfio-pci
 * Managed: driver_override = vfio-pci, unbind from the current driver,
 * drivers_probe, and a bounded wait until the driver is vfio-pci; the
 * record is updated after each write.  Not managed: HostError unless the
 * device is on vfio-pci already, saying how to bind it.  A device on
 * vfio-pci already is left as it is (and not unbound on restore).
 */
gboolean vfio_step_bind(VfioRecord *record, GError **error);

/* vfio_step_wait_node() - bounded wait for /dev/vfio/N to appear (udev
 * creates it after the bind); HostError saying what to check. */
gboolean vfio_step_wait_node(VfioRecord *record, GError **error);

/**
 * vfio_step_chown() - give QEMU (@uid:@gid) the group node, mode 0600
 * @sibling: (nullable): the record of another device of the same group
 *   that this VM holds; its "before" ownership is inherited, so whichever
 *   device of the group is given back last restores the original owner
 * The previous owner and mode are recorded before anything changes (as
 * planned by vfio_record_new()/vfio_record_plan_node() when the node
 * existed then).
 * @uid (uid_t)-1 skips the step.  HostError saying which capability or
 * mount option is missing; BUSY, changing nothing, when the node belongs to
 * someone hostdevd could not give it back to (vfio_node_owner_is_ours()).
 */
/* Return: the group of /dev/vfio/vfio, which udev gives every VFIO node
 * (root, or e.g. kvm), or (gid_t)-1 when there is no such node. */
gid_t vfio_node_group(void);

/* Return: whether a VFIO group node owned by @owner:@group may be handed to
 * QEMU's @uid:@gid and back: the owner is root or @uid, the group root, @gid
 * or vfio_node_group().  hostdevd's sandbox lets chown give to those only. */
gboolean vfio_node_owner_is_ours(uid_t owner, gid_t group, uid_t uid, gid_t gid);

gboolean vfio_step_chown(VfioRecord *record, uid_t uid, gid_t gid,
                         const VfioRecord *sibling, GError **error);

/**
 * vfio_prepare() - the whole preparation: vfio_record_new(),
 * vfio_step_take_group(), vfio_step_bind(), vfio_step_wait_node(),
 * vfio_step_chown().  On failure everything done is undone (the error
 * says so, or that undoing failed too) and NULL is returned.
 * Return: (transfer full): the record of what was done.
 */
VfioRecord *vfio_prepare(const PciAddress *addr, gboolean managed,
                         gboolean take_whole_group, uid_t uid, gid_t gid,
                         const VfioRecord *sibling, GError **error);

/**
 * vfio_undo() - give everything in @record back, synchronously
 * In reverse: the node's owner and mode, driver_override, unbind from
 * vfio-pci (or a driver our probe caused), drivers_probe and a bounded
 * wait for the original driver; then the companions.  Each undone step is
 * cleared in @record, so a second call does only what is left.  Best
 * effort: a failing step does not stop the others; the first error is
 * returned.  The unbind BLOCKS while QEMU holds the device: call this
 * only when QEMU never had it (preparation failed, device_add failed);
 * otherwise use vfio_restore_async().  Call it for the last device of a
 * group in use; records of the others wait until then (the kernel refuses
 * a host driver for a device whose group QEMU still uses).
 */
gboolean vfio_undo(VfioRecord *record, GError **error);

/* Called, in the main context of the vfio_restore_async() call, when a
 * restore that was reported as Timeout (or cancelled) finishes later. */
typedef void (*VfioLateRestoreFunc)(VfioRecord *record, const GError *error,
                                    gpointer user_data);

/**
 * vfio_restore_async() - vfio_undo() in a worker thread, bounded
 * @timeout_ms: 0 for VFIO_DEFAULT_RESTORE_TIMEOUT_MS
 * @wait: (nullable): the QEMU that is exiting: host drivers are probed only
 *   once it is gone (pidfd_open() and poll(), or /proc where there is no
 *   pidfd), waiting at most @wait->timeout_ms; NULL when QEMU lives on and
 *   has let go of the device already
 * @late: (nullable): see VfioLateRestoreFunc
 * The kernel blocks the unbind from vfio-pci until QEMU has closed the
 * device, so the writes never run in the main loop.  A drivers_probe the
 * kernel refuses with EINVAL or EBUSY (the group not given back yet) is
 * retried within the bound.  When it all exceeds @timeout_ms, or
 * @cancellable fires, the result is a Timeout error naming the slow step
 * (QEMU still holding the device, QEMU still exiting, or the host
 * driver's probe); the worker goes on, and @late reports the outcome.
 * The record is shared with the worker (a reference is taken): read it
 * only after the callback, or after @late following a Timeout.
 */
void vfio_restore_async(VfioRecord *record, guint timeout_ms, const HostReleaseWait *wait,
                        VfioLateRestoreFunc late, gpointer late_data,
                        GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data);
gboolean vfio_restore_finish(GAsyncResult *result, GError **error);

/**
 * vfio_detach_from_host() - `hostdevctl nodedev-detach`: bind @addr to
 * vfio-pci (managed binding, no ownership change), as virsh does: one
 * function at a time, whatever the rest of its IOMMU group is bound to
 * (viability matters when QEMU opens the group; the attach checks it).
 * Return: (transfer full): the record, or NULL with @error (undone).
 */
VfioRecord *vfio_detach_from_host(const PciAddress *addr, GError **error);

/**
 * vfio_reattach_to_host() - `hostdevctl nodedev-reattach`: clear a
 * driver_override of vfio-pci, unbind from vfio-pci and let the kernel
 * probe the device's own driver, waiting at most @timeout_ms for a QEMU
 * that still holds it (Timeout).  When a step fails (the kernel refuses
 * the host driver's probe: a VM uses the device's IOMMU group), the
 * device is put back as it was, on vfio-pci with its driver_override,
 * before the error (which says so) is returned.
 * @new_driver: (out) (optional): the driver it ended on, NULL if none
 */
gboolean vfio_reattach_to_host(const PciAddress *addr, guint timeout_ms,
                               char **new_driver, GError **error);

G_END_DECLS
