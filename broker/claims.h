/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * claims.h - host-wide ownership of host devices and IOMMU groups
 *
 * Every hostdevd instance on a host (one per VM) sees the same runtime
 * directory.  A claim is a small file RUNTIME_DIR/claims/KEY naming the
 * VM and the pid of the hostdevd that holds KEY; it survives a broker
 * crash, and a claim whose owner process is gone (or whose pid now
 * belongs to another process) is stale and is taken over.  All changes
 * happen under an flock on RUNTIME_DIR/claims/.lock, so two brokers never
 * both win.
 */
#pragma once

#include "hostdev.h"

#include <sys/types.h>

G_BEGIN_DECLS

typedef struct {
  char *key;          /* "pci_0000_01_00_0", "usb_1_2", "iommu_group_12" */
  char *vm;           /* the VM holding it */
  pid_t pid;          /* its hostdevd */
  guint64 start_time; /* the owner's start time (clock ticks since boot), 0 unknown */
  gint64 since;       /* when it was claimed, seconds since the epoch */
  gboolean stale;     /* the owner is gone */
} Claim;

void claim_free(Claim *claim);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Claim, claim_free)

/* Return: (transfer full): the claim key of a PCI device: "pci_0000_01_00_0". */
char *claims_key_pci(const PciAddress *addr);

/* Return: (transfer full): the claim key of a USB device: "usb_BUS_DEV", e.g. "usb_1_2". */
char *claims_key_usb(guint bus, guint device);

/* Return: (transfer full): the claim key of an IOMMU group: "iommu_group_12". */
char *claims_key_iommu_group(int group);

/**
 * claims_acquire() - claim @key for @vm, owned by process @owner
 * @runtime_dir: e.g. control_runtime_dir(); created when missing
 * A claim of the same VM is refreshed (a restarted broker takes its own
 * claims back); a stale claim is taken over (logged); a live claim of
 * another VM is a Busy error naming that VM, its hostdevd pid and since
 * when, and what to do.  HostError when the directory is unusable.
 */
gboolean claims_acquire(const char *runtime_dir, const char *vm, const char *key,
                        pid_t owner, GError **error);

/**
 * claims_release() - drop @vm's claim on @key
 * Releasing what is not claimed is fine; a claim held by another VM is
 * left alone (Busy error, nothing removed).
 */
gboolean claims_release(const char *runtime_dir, const char *vm, const char *key,
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
 * claims_list() - every claim on the host, for reconcile and listings
 * @vm: (nullable): only those of this VM
 * Return: (transfer full) (element-type Claim): sorted by key, stale ones
 * marked; NULL with HostError when the directory cannot be read (a
 * missing directory is an empty list).  Unparsable files are skipped.
 */
GPtrArray *claims_list(const char *runtime_dir, const char *vm, GError **error);

/* Return: whether @key is a valid claim key: 1-64 of [a-z0-9_]. */
gboolean claims_key_is_valid(const char *key);

G_END_DECLS
