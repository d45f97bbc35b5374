/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * memlock.h - QEMU's locked-memory limit for VFIO
 *
 * VFIO pins all guest RAM for DMA, and the kernel charges the pinned pages
 * to QEMU's RLIMIT_MEMLOCK: with the usual 8 MiB default, device_add fails
 * with "vfio_dma_map(...) = -12 (Cannot allocate memory)".  hostdevd raises
 * the limit of the running QEMU (the QMP peer's pid) before the first VFIO
 * device, as libvirt does at start-up.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* What VFIO needs beyond guest RAM: MMIO BARs of the assigned devices,
 * ROMs, the IOMMU's own tables; libvirt allows 1 GiB too. */
#define MEMLOCK_MARGIN_BYTES (G_GUINT64_CONSTANT(1) << 30)

/**
 * memlock_needed_for_guest() - the RLIMIT_MEMLOCK QEMU needs
 * @guest_ram_bytes: base-memory + plugged-memory of QMP
 *   query-memory-size-summary
 * @n_vfio_devices: the VFIO devices QEMU will hold (with this one): PCI
 *   functions on vfio-pci and mdevs alike
 * @guest_viommu: the guest has a vIOMMU (memlock_guest_has_viommu())
 * Without a vIOMMU all devices share one VFIO container, which pins guest
 * RAM once; with one, each device has its own DMA address space, which the
 * guest maps and QEMU pins separately, so each may pin all of guest RAM
 * (libvirt sizes it the same way).  Plus MEMLOCK_MARGIN_BYTES.  Saturates
 * at G_MAXUINT64.
 * Return: bytes; 0 when @n_vfio_devices is 0 (nothing to pin).
 */
guint64 memlock_needed_for_guest(guint64 guest_ram_bytes, guint n_vfio_devices,
                                 gboolean guest_viommu);

/**
 * memlock_host_ram_bytes() - the host's memory: MemTotal of /proc/meminfo
 * (under the host root, host_path("proc/meminfo"))
 * Return: bytes, or 0 with a HOSTDEVD_ERROR_HOST_ERROR naming the file
 *   when it cannot be read or has no MemTotal line.
 */
guint64 memlock_host_ram_bytes(GError **error);

/**
 * memlock_needed_for_reported_guest() - memlock_needed_for_guest() for a
 * guest RAM size QEMU reported, which hostdevd does not take on trust
 * @reported_ram_bytes: base-memory + plugged-memory of QMP
 *   query-memory-size-summary, as QEMU answered
 * @host_ram_bytes: the host's memory, memlock_host_ram_bytes() (read
 *   ahead by the caller, who may do it while it waits for other things)
 * @n_vfio_devices, @guest_viommu: as for memlock_needed_for_guest()
 * @needed: (out): the RLIMIT_MEMLOCK to raise QEMU's limit to; 0 when
 *   @n_vfio_devices is 0 (nothing to pin)
 * Refuses a size larger than the host's memory: pinned pages must be
 * resident, so such a guest cannot be backed and the answer is a lie or a
 * mistake.  Refuses a limit that does not fit in 64 bits instead of
 * saturating (G_MAXUINT64 would mean "unlimited" to memlock_raise()).
 * Return: TRUE with @needed set; FALSE with HOSTDEVD_ERROR_QEMU_ERROR saying
 *   which size QEMU reported, what bounds it and that the limit was left
 *   alone.
 */
gboolean memlock_needed_for_reported_guest(guint64 reported_ram_bytes, guint64 host_ram_bytes,
                                           guint n_vfio_devices, gboolean guest_viommu,
                                           guint64 *needed, GError **error);

/* Return: whether @qom_type, a QOM type name or a qom-list property type
 * "child<TYPE>", is a guest vIOMMU: intel-iommu, amd-iommu, virtio-iommu,
 * arm-smmuv3. */
gboolean memlock_qom_type_is_viommu(const char *qom_type);

/**
 * memlock_guest_has_viommu() - does the guest have a vIOMMU?
 * @qom_types: (array zero-terminated=1): the property types of qom-list
 *   on /machine, /machine/peripheral and /machine/peripheral-anon (or the
 *   QOM types of the guest's devices)
 * Return: whether any of them is a vIOMMU (memlock_qom_type_is_viommu()).
 */
gboolean memlock_guest_has_viommu(const char *const *qom_types);

/**
 * memlock_raise() - make @pid's RLIMIT_MEMLOCK at least @bytes
 * Never lowers a limit, and leaves an infinite one alone.  Raises the soft
 * and, when needed, the hard limit with prlimit(2).  HostError when the
 * process is gone or the raise is not allowed, saying which limit stands
 * in the way and how to raise it (CAP_SYS_RESOURCE, LimitMEMLOCK=, ulimit -l).
 * @bytes G_MAXUINT64 means unlimited.
 */
gboolean memlock_raise(pid_t pid, guint64 bytes, GError **error);

/* memlock_restore() - set @pid's RLIMIT_MEMLOCK back to @soft/@hard, as
 * recorded before memlock_raise(); lowering needs no privilege. */
gboolean memlock_restore(pid_t pid, guint64 soft, guint64 hard, GError **error);

/* memlock_get() - @pid's current soft and hard limits (RLIM_INFINITY as
 * G_MAXUINT64); HostError when unreadable. */
gboolean memlock_get(pid_t pid, guint64 *soft, guint64 *hard, GError **error);

/* Return: (transfer full): "1.5 GiB", "unlimited" for messages. */
char *memlock_format_bytes(guint64 bytes);

G_END_DECLS
