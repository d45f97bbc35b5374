/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mdev.h - mediated devices (vGPU slices and the like): the types a parent
 * device offers, the instances that exist, creating and removing them,
 * and the deterministic UUID a VM's instance gets.
 */
#pragma once

#include "hostdev.h"

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *id;            /* the type's directory name, e.g. "nvidia-63" */
  char *name;          /* its "name" attribute, NULL if absent */
  char *device_api;    /* "vfio-pci", "vfio-ccw", "vfio-ap" */
  guint available;     /* available_instances */
  char *description;   /* NULL if absent */
} MdevType;

typedef struct {
  char *uuid;          /* "4b20d080-1b54-4048-85b3-a6a62d165c01" */
  char *parent;        /* the parent's sysfs name, "0000:00:02.0" */
  char *type;          /* its type id */
  int iommu_group;     /* -1: none */
  char *sysfs_path;    /* "/sys/devices/.../UUID" */
  char *driver;        /* NULL when unbound */
} MdevDevice;

void mdev_type_free(MdevType *type);
void mdev_device_free(MdevDevice *device);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MdevType, mdev_type_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MdevDevice, mdev_device_free)

/* UUID of the namespace of hostdevd's deterministic mdev UUIDs. */
#define MDEV_UUID_NAMESPACE "57cc83f9-3422-4737-97f9-30ad5193f722"

/* mdev_uuid_parse() - parse the canonical 8-4-4-4-12 hex form (either case). */
gboolean mdev_uuid_parse(const char *text, guint8 out[16]);

/* Return: (transfer full): the RFC 4122 version 3 (MD5) UUID of @name in
 * @namespace_uuid, in lower case. */
char *mdev_uuid_v3(const guint8 namespace_uuid[16], const char *name);

/* Return: (transfer full): the UUID of instance @index of VM @vm: version
 * 3 of "VM/INDEX" in MDEV_UUID_NAMESPACE, the same on every call. */
char *mdev_uuid_for_vm(const char *vm, guint index);

/* Indices `mdev-create --vm NAME --index N` accepts, and mdev_uuid_vm_index() tries: 0..N-1. */
#define MDEV_VM_INDEX_LIMIT 1024

/* Return: whether @uuid (canonical, either case) is a version 3 UUID, the
 * kind mdev_uuid_for_vm() gives (which VM's it is cannot be told from it). */
gboolean mdev_uuid_is_version3(const char *uuid);

/**
 * mdev_uuid_vm_index() - is @uuid one that mdev_uuid_for_vm() gives @vm?
 * @index: (out) (optional): which instance, 0..MDEV_VM_INDEX_LIMIT-1
 * Return: TRUE when it is instance @index of @vm.
 */
gboolean mdev_uuid_vm_index(const char *uuid, const char *vm, guint *index);

/* mdev_parent_parse() - accept "0000:00:02.0" or "pci_0000_00_02_0" (or
 * another bus's sysfs name: [A-Za-z0-9:._-], no leading dot) and give
 * the parent's sysfs name; InvalidArgument otherwise. */
gboolean mdev_parent_parse(const char *text, char **sysfs_name, GError **error);

/**
 * mdev_list_types() - the mdev types @parent offers
 * Return: (transfer full) (element-type MdevType): sorted by id; empty
 * when @parent is no mdev parent; NULL with HostError on read errors.
 */
GPtrArray *mdev_list_types(const char *parent, GError **error);

/* Return: (transfer full) (element-type MdevDevice): every mdev of the
 * host, sorted by UUID; NULL with HostError. */
GPtrArray *mdev_list_devices(GError **error);

/**
 * mdev_device_find() - the mdev @uuid as sysfs shows it now
 * Return: (transfer full): the device, or NULL with InvalidArgument (not a
 * UUID) or NotFound (no such mdev: how to create it).
 */
MdevDevice *mdev_device_find(const char *uuid, GError **error);

/**
 * mdev_create() - create instance @uuid of @type on @parent
 * Checks first (InvalidArgument: malformed names; NotFound: no such
 * parent or type; Busy: no instance left, or @uuid exists), then writes
 * the UUID to the type's "create" and checks the device appeared
 * (HostError with the kernel's answer explained).
 */
gboolean mdev_create(const char *parent, const char *type, const char *uuid,
                     GError **error);

/**
 * mdev_check_children_unclaimed() - may the PCI device @addr leave its driver?
 * Return: FALSE with a Busy error naming the VM when a live claim in
 * @runtime_dir holds one of its mediated devices: unbinding the parent's
 * driver would take the mdev away from that VM.
 */
gboolean mdev_check_children_unclaimed(const PciAddress *addr, const char *runtime_dir,
                                       GError **error);

/* Return: FALSE with a Busy error naming the VM when a live claim in
 * @runtime_dir holds the parent of mdev @uuid whole (its PCI device). */
gboolean mdev_check_parent_unclaimed(const char *uuid, const char *runtime_dir,
                                     GError **error);

/* Default bound of mdev_remove()'s wait for the kernel. */
#define MDEV_DEFAULT_REMOVE_TIMEOUT_MS 10000

/**
 * mdev_remove() - remove the mdev @uuid, never blocking longer than @timeout_ms
 * @runtime_dir: (nullable): where the claims are; a live claim on the UUID
 *   is a Busy error naming the VM and how to detach the device first
 * @timeout_ms: 0 for MDEV_DEFAULT_REMOVE_TIMEOUT_MS
 * Since Linux 5.19 the kernel does not refuse to remove an mdev that is
 * open: it blocks and asks its user to release it.  So the claim is
 * checked first, and the write runs in a worker thread: past @timeout_ms
 * the result is a Timeout error (the removal goes on in the kernel).
 * NotFound; Busy (EBUSY from older kernels too); HostError.
 */
gboolean mdev_remove(const char *uuid, const char *runtime_dir, guint timeout_ms,
                     GError **error);

G_END_DECLS
