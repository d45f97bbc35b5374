/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * claims.h - host-wide ownership of host devices and IOMMU groups
 *
 * Every hostdevd instance on a host (one per VM) sees the same runtime
 * directory.  A claim is a small file RUNTIME_DIR/claims/KEY naming the
 * VM, the hostdevd that holds KEY and that VM's QEMU (each by pid and
 * start time); it survives a broker crash.  The claim stays live while
 * either process runs: a QEMU whose hostdevd died still holds its devices.
 * Only when both are gone (or their pids now belong to other processes)
 * is it stale, and taken over.  All changes happen under an flock on
 * RUNTIME_DIR/claims/.lock, so two brokers never both win.
 *
 * A PCI device's claim also carries the device's origin: how the host had
 * it before the first holder changed anything (driver, driver_override,
 * owner of /dev/vfio/N).  Whoever takes the claim over inherits it, so a
 * device left on vfio-pci by a VM that died still goes back to its own
 * driver in the end.
 */
#pragma once

#include "hostdev.h"
#include "process-identity.h"

#include <sys/types.h>

G_BEGIN_DECLS

/* Who holds a claim: a VM's hostdevd and, once it is known, its QEMU. */
typedef struct {
  pid_t broker;       /* the hostdevd, normally getpid() */
  pid_t qemu;         /* its QEMU (the QMP peer), 0 unknown */
  /* their start times (clock ticks since boot) when the caller knows them
   * already; 0: read from /proc */
  guint64 broker_start_time;
  guint64 qemu_start_time;
} ClaimOwner;

/* How the host had a device before its first holder changed anything. */
typedef struct {
  char *driver;       /* NULL: it was unbound */
  char *override;     /* its driver_override, NULL: none */
  gboolean node_known; /* /dev/vfio/N existed: its owner and mode below */
  uid_t node_uid;
  gid_t node_gid;
  mode_t node_mode;   /* permission bits only */
} ClaimOrigin;

ClaimOrigin *claim_origin_copy(const ClaimOrigin *origin);
void claim_origin_free(ClaimOrigin *origin);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ClaimOrigin, claim_origin_free)

typedef struct {
  char *key;          /* "pci_0000_01_00_0", "usb_1_2", "iommu_group_12", "mdev_..." */
  char *vm;           /* the VM holding it */
  pid_t pid;          /* its hostdevd */
  guint64 start_time; /* the hostdevd's start time (clock ticks since boot), 0 unknown */
  pid_t qemu_pid;     /* its QEMU, 0 unknown (claims written before QEMU was named) */
  guint64 qemu_start_time; /* 0 unknown */
  gint64 since;       /* when it was claimed, seconds since the epoch */
  gboolean broker_alive; /* the hostdevd still runs */
  gboolean qemu_alive;   /* the QEMU still runs */
  gboolean stale;     /* both are gone: nobody holds the device */
  ClaimOrigin *origin; /* NULL: not recorded (not yet, or a claim of an older broker) */
} Claim;

void claim_free(Claim *claim);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Claim, claim_free)

/* Return: (transfer full): the claim key of a PCI device: "pci_0000_01_00_0". */
char *claims_key_pci(const PciAddress *addr);

/* Return: whether @key is a PCI device's claim key (as claims_key_pci() writes it), then in @addr. */
gboolean claims_key_to_pci(const char *key, PciAddress *addr);

/* Return: (transfer full): the claim key of a USB device: "usb_BUS_DEV", e.g. "usb_1_2". */
char *claims_key_usb(guint bus, guint device);

/* Return: (transfer full): the claim key of an IOMMU group: "iommu_group_12". */
char *claims_key_iommu_group(int group);

/* Return: (transfer full): the claim key of the mediated device @uuid:
 * "mdev_" and the UUID in lower case with '_' for '-'; NULL when @uuid is
 * not a UUID. */
char *claims_key_mdev(const char *uuid);

/**
 * claims_acquire() - claim @key for @vm, held by @owner's processes
 * @runtime_dir: e.g. control_runtime_dir(); created when missing
 * @owner: the hostdevd (required) and its QEMU (0 unknown); their start
 *   times are recorded with them
 * A claim of the same VM is refreshed with @owner (a restarted broker
 * takes its own claims back); a stale claim is taken over (logged); a
 * live claim of another VM is a Busy error naming that VM, its hostdevd
 * and QEMU pids, since when, and what to do.  HostError when the
 * directory is unusable.
 */
gboolean claims_acquire(const char *runtime_dir, const char *vm, const char *key,
                        const ClaimOwner *owner, GError **error);

/**
 * claims_acquire_full() - claims_acquire(), handing back the origin the
 * claim carried
 * @inherited: (out) (optional) (transfer full): the device's origin when
 *   the claim existed (this VM's own, refreshed, or a stale one taken
 *   over) and carried one; NULL otherwise.  The origin stays in the claim.
 */
gboolean claims_acquire_full(const char *runtime_dir, const char *vm, const char *key,
                             const ClaimOwner *owner, ClaimOrigin **inherited,
                             GError **error);

/**
 * ClaimOriginReader - how the device is now, read for its claim
 * Called under the claims lock once every key is known to be free for the
 * caller, so nobody else is changing the device meanwhile.
 * Return: (transfer full): the origin, or NULL with @error (then nothing
 *   is claimed)
 */
typedef ClaimOrigin *(*ClaimOriginReader)(gpointer data, GError **error);

/**
 * claims_acquire_all() - claims_acquire_full() of every key of @keys
 * (NULL-terminated) at once, under one lock: all are granted, or none is
 * written (the first one another VM holds is the Busy error)
 * @read_origin: (nullable): when the first key's claim carries no origin
 *   (a new claim, or one of an older broker), what it returns is recorded
 *   in that claim, for whoever takes the claim over after us; the first
 *   reading is the original one, so an origin already there is kept and
 *   @read_origin not called
 * @inherited: (out) (optional) (transfer full): the origin the first
 *   key's claim carried, as claims_acquire_full() says (never the one
 *   @read_origin gave)
 */
gboolean claims_acquire_all(const char *runtime_dir, const char *vm, const char *const *keys,
                            const ClaimOwner *owner, ClaimOriginReader read_origin,
                            gpointer read_data, ClaimOrigin **inherited, GError **error);

/**
 * claims_release() - drop @vm's claim on @key
 * Releasing what is not claimed is fine; a claim held by another VM is
 * left alone (Busy error, nothing removed).
 */
gboolean claims_release(const char *runtime_dir, const char *vm, const char *key,
                        GError **error);

/**
 * claims_release_keys() - claims_release() of every key of @keys
 * (NULL-terminated) under one lock; each goes on its own, and the first
 * that cannot be released is the error
 */
gboolean claims_release_keys(const char *runtime_dir, const char *vm, const char *const *keys,
                             GError **error);

/* claims_release_all() - drop every claim of @vm (QEMU exited).
 * Return: the number of claims dropped, or -1 with @error. */
int claims_release_all(const char *runtime_dir, const char *vm, GError **error);

/**
 * claims_lookup() - who holds @key?
 * Return: (transfer full): the claim (check ->stale), or NULL: unclaimed
 * (@error unset) or unreadable (@error set).
 */
Claim *claims_lookup(const char *runtime_dir, const char *key, GError **error);

/**
 * claims_lookup_held_elsewhere() - the live claim on @key of a VM other
 * than @vm; @vm's own claim is not looked into further
 * Return: (transfer full) (nullable): that claim; NULL when @key is @vm's,
 * unclaimed, stale or unreadable.
 */
Claim *claims_lookup_held_elsewhere(const char *runtime_dir, const char *key, const char *vm);

/**
 * claims_list() - every claim on the host, for reconcile and listings
 * @vm: (nullable): only those of this VM
 * Return: (transfer full) (element-type Claim): sorted by key, stale ones
 * marked; NULL with HostError when the directory cannot be read (a
 * missing directory is an empty list).  Unparsable files are skipped.
 */
GPtrArray *claims_list(const char *runtime_dir, const char *vm, GError **error);

/*
 * The administrator's word.  `hostdevctl nodedev-detach` and
 * `nodedev-reattach` may set a PCI device that a VM which is gone left
 * behind (its claims stale).  That VM's journal still says how to give the
 * device back, and its next hostdevd would undo the administrator's
 * choice.  So the administrator's act leaves a note,
 * RUNTIME_DIR/claims/KEY.administered, naming the holders (VM and QEMU)
 * it overrules: their records leave the device's driver as it is.
 */

/**
 * claims_note_administered() - the administrator just set a PCI device's
 * driver (and driver_override)
 * @device_key: the device's claim key
 * @group_key: (nullable): its IOMMU group's
 * @driver: (nullable): the device's driver now, NULL unbound
 * @override: (nullable): its driver_override now, NULL none
 * The holders of the two claims, when they are gone, are noted as
 * overruled on the device.  The device's own stale claim also takes
 * @driver and @override as its origin, so whoever takes it over gives the
 * device back there.  No claim: nothing to note.  A live claim is a Busy
 * error, and nothing is written.
 */
gboolean claims_note_administered(const char *runtime_dir, const char *device_key,
                                  const char *group_key, const char *driver,
                                  const char *override, GError **error);

/* Return: whether the administrator set @device_key's device since @vm, with the
 * QEMU @qemu, left it (claims_note_administered()), or another VM took over its
 * stale claim with what it left to give back (claims_acquire_all() notes that too);
 * @taken_by: (out) (optional) (transfer full): that VM, NULL: the administrator. */
gboolean claims_administered_since(const char *runtime_dir, const char *device_key,
                                   const char *vm, const ProcessIdentity *qemu,
                                   char **taken_by);

/* claims_forget_administered() - drop @vm from every note, but where it names one of
 * the @n_kept QEMUs @kept (those whose records @vm's journal still holds) */
void claims_forget_administered(const char *runtime_dir, const char *vm,
                                const ProcessIdentity *kept, guint n_kept);

/* Return: whether @key is a valid claim key: 1-64 of [a-z0-9_]. */
gboolean claims_key_is_valid(const char *key);

/* Return: (transfer full): what @key names, for people: "PCI device
 * 0000:01:00.0", "mediated device 4b20d080-...", "IOMMU group 12". */
char *claims_describe_key(const char *key);

/* Return: (transfer full): who holds @claim, for messages: "VM 'vm1'
 * (hostdevd pid 12, QEMU pid 34, since 2024-05-01 10:00:00)", each
 * process that is gone marked so. */
char *claims_describe_holder(const Claim *claim);

/* Return: (transfer full): what to do about a live @claim of another VM:
 * detach through its hostdevd, or, when only its QEMU still runs, start
 * that VM's hostdevd again or stop the VM. */
char *claims_describe_remedy(const Claim *claim);


G_END_DECLS
