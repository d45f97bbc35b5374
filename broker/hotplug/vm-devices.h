/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vm-devices.h - the host devices hostdevd has placed in its VM
 */
#pragma once

#include "host-prep.h"
#include "hostdev.h"

G_BEGIN_DECLS

/*
 * VmDeviceState - where a device of the VM is in its life after the
 * attach (an attach in progress is its plan's, hotplug-plan.h).  Every
 * change goes through hotplug_device_enter(), which refuses a change the
 * lifecycle does not have and journals the new state before it is true.
 */
typedef enum {
  VM_DEVICE_ATTACHED,       /* in QEMU */
  VM_DEVICE_DETACHING,      /* device_del sent, the guest has not released it yet */
  VM_DEVICE_GROUP_WAITING,  /* out of QEMU; its IOMMU group is still in use by another
                             * device of the VM: it goes back to the host with the last */
  VM_DEVICE_RELEASING,      /* out of QEMU; the host is getting it back */
  VM_DEVICE_RELEASE_FAILED, /* out of QEMU; giving it back failed: a detach or a restart
                             * tries again */
  VM_DEVICE_WAITING,        /* a followed USB device left the host (or is not there yet):
                             * out of QEMU, still the VM's, attached again when it
                             * appears (hotplug-follow.c) */
} VmDeviceState;

/* The last state, for tables and counts that cover them all. */
#define VM_DEVICE_STATE_LAST VM_DEVICE_WAITING

typedef struct {
  Hostdev *hostdev;      /* the live definition: alias and guest address filled in */
  VmDeviceState state;
  gboolean detach_waiting; /* a detach request is waiting for DEVICE_DELETED */
  gboolean gone_check;     /* a DEVICE_DELETED is being checked against QEMU's view */
  HostPrep *prep;        /* what was done to the host for it (owned) */
} VmDevice;

typedef struct _VmDevices VmDevices;

VmDevices *vm_devices_new(void);
void vm_devices_free(VmDevices *devices);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmDevices, vm_devices_free)

/* vm_devices_add() - record @hostdev and @prep (both transfer full; @prep may be NULL) as attached. Return: its entry. */
VmDevice *vm_devices_add(VmDevices *devices, Hostdev *hostdev, HostPrep *prep);

/* Return: (nullable): another device whose VFIO binding shares IOMMU group @group. */
VmDevice *vm_devices_find_group(VmDevices *devices, int group, const VmDevice *except);

/* vm_devices_remove() - forget @device; it is freed. */
void vm_devices_remove(VmDevices *devices, VmDevice *device);

/* vm_devices_steal() - take @device out of the set. Return: (transfer full): it; free it with vm_device_free(). */
VmDevice *vm_devices_steal(VmDevices *devices, VmDevice *device);
void vm_device_free(VmDevice *device);

/* Return: (transfer none) (element-type VmDevice): in attach order. */
GPtrArray *vm_devices_get_all(VmDevices *devices);

/* Return: (nullable): the device with QEMU id / alias @alias. */
VmDevice *vm_devices_find_alias(VmDevices *devices, const char *alias);

/* Return: (nullable): the device whose host source @hostdev names. */
VmDevice *vm_devices_find_source(VmDevices *devices, const Hostdev *hostdev);

/**
 * vm_devices_next_alias() - the alias libvirt would give the next hostdev
 * @qemu_ids: (nullable): ids QEMU already uses, so devices that hostdevd did
 *   not add are never shadowed
 * Return: (transfer full): "hostdevN", N one more than the highest in use.
 */
char *vm_devices_next_alias(VmDevices *devices, const char *const *qemu_ids);

G_END_DECLS
