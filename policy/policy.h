/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policy.h - who may use a VM's control socket and which devices a VM may
 * receive, as pure decisions
 *
 * The only I/O here is reading the policy file (and resolving the user and
 * group names in it) when it is loaded.  Decisions do no I/O and know no
 * sysfs: callers hand in facts (the peer's credentials, a device's ids) and
 * get a decision plus the rule that made it, so every refusal can name its
 * rule.
 *
 * The file is a GKeyFile (/etc/hostdevd/policy.conf, or --policy FILE):
 *
 *   [defaults]                      applies to every VM
 *   full-access-users=alice;1001    may attach and detach
 *   full-access-groups=vmadmins
 *   read-only-users=monitor         may list, dumpxml, query-version
 *   read-only-groups=
 *   socket-group=kvm                group of the control socket (mode 0660)
 *   allow-pci=0000:0a:*             PCI address glob
 *   allow-pci-ids=10de:*;8086:1521  vendor:device glob
 *   allow-pci-classes=0x03;0x0c03   class prefix: base, base+sub, or all 24 bits
 *   allow-usb=046d:c52b;0627:*      vendor:product glob
 *   deny-pci=  deny-pci-ids=  deny-pci-classes=  deny-usb=
 *   allow-mdev-types=nvidia-63      mdev type glob (an mdev's parent goes
 *   deny-mdev-types=                through the PCI lists too)
 *   allow-mdev-uuids=               mdev UUID globs beyond the VM's own
 *   allow-boot-vga=false            the host's boot display
 *   max-devices=8
 *   allow-iommu-group-takeover=false
 *   allow-rom-dirs=/srv/roms        more directories <rom file> may name
 *   allow-usb-hubs=false            USB hubs and root hubs (bDeviceClass 09)
 *   allow-vf-macs=52:54:00:*        MACs an <interface type='hostdev'> may set
 *   allow-vlans=100-199;untagged    VLANs it may put its VF on
 *
 *   [vm NAME]                       the same keys, for one VM; a key given
 *                                   here replaces the one in [defaults],
 *                                   except deny-*: the VM's entries are
 *                                   added to those of [defaults]
 *
 * Root and the user hostdevd runs as always have full access.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* The policy file read when --policy is not given, if it exists. */
#define POLICY_DEFAULT_PATH "/etc/hostdevd/policy.conf"

/* max-devices when neither the file nor the built-in policy says otherwise. */
#define POLICY_DEFAULT_MAX_DEVICES 32

#define POLICY_ERROR (policy_error_quark())
GQuark policy_error_quark(void);

typedef enum {
  POLICY_ERROR_INVALID,   /* the file is not a valid policy; the message names file and key */
  POLICY_ERROR_UNSAFE,    /* the file could be changed by someone other than root */
} PolicyError;

typedef enum {
  POLICY_ACCESS_NONE,   /* may not connect */
  POLICY_ACCESS_READ,   /* the commands that only read, and events (control-commands.c) */
  POLICY_ACCESS_FULL,   /* every command */
} PolicyAccess;

typedef struct _Policy Policy;

/* policy_new_default() - the policy in force without a policy file: only
 * root, and the user hostdevd itself runs as, may connect, with full access;
 * every device but the always-denied ones, at most POLICY_DEFAULT_MAX_DEVICES,
 * no IOMMU group takeover. */
Policy *policy_new_default(uid_t daemon_uid);

/**
 * policy_load() - read a policy file
 * @path: the file; it must belong to root or @daemon_uid and not be
 *   writable by group or others
 * User and group names are resolved now, so decisions later need no NSS.
 * Return: the policy, or NULL with a POLICY_ERROR naming the file, the
 *   section and the key at fault.
 */
Policy *policy_load(const char *path, uid_t daemon_uid, GError **error);

/**
 * policy_load_from_data() - parse policy text (what policy_load() does after reading)
 * @origin: how rules name their source in messages, e.g. the file name
 * Return: the policy, or NULL with a POLICY_ERROR.
 */
Policy *policy_load_from_data(const char *data, gsize length, const char *origin,
                              uid_t daemon_uid, GError **error);

void policy_free(Policy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Policy, policy_free)

/* Return: where the policy came from ("built-in default" or the file name). */
const char *policy_get_origin(const Policy *policy);

/**
 * policy_client_access() - what a control-socket peer may do
 * @uid, @gid: the peer's SO_PEERCRED credentials (gid is its effective
 *   group; supplementary groups are not known from a socket)
 * @rule: (out) (optional): the rule that decided, for messages and logs;
 *   owned by @policy
 */
PolicyAccess policy_client_access(const Policy *policy, const char *vm,
                                  uid_t uid, gid_t gid, const char **rule);

/**
 * policy_socket_group() - the group the control socket of @vm should belong to
 * @gid: (out): the group, when there is one
 * Return: FALSE when the policy names none (the socket stays root's group).
 */
gboolean policy_socket_group(const Policy *policy, const char *vm, gid_t *gid);

typedef enum {
  POLICY_DEVICE_PCI,
  POLICY_DEVICE_USB,
  POLICY_DEVICE_MDEV,
} PolicyDeviceType;

/*
 * PolicyDeviceFacts - what the caller found out about one device
 * PCI: the host address, ids and class from sysfs (vendor, device, class,
 * boot_vga files).  USB: vendor and product, from sysfs when the device is
 * present, else from the XML (startupPolicy='optional').  mdev: the UUID,
 * the type and the parent from sysfs; when the parent is a PCI device, its
 * address, ids and class in the PCI fields (its boot_vga does not count: a
 * slice does not take the host's display away).
 */
typedef struct {
  PolicyDeviceType type;
  /* PCI */
  guint pci_domain;        /* 0..0xffff */
  guint pci_bus;           /* 0..0xff */
  guint pci_slot;          /* 0..0x1f */
  guint pci_function;      /* 0..7 */
  guint pci_vendor;        /* 0..0xffff */
  guint pci_device;        /* 0..0xffff */
  guint32 pci_class;       /* 24 bits: base class, subclass, programming interface */
  gboolean boot_vga;       /* the boot_vga file says 1 */
  /* USB */
  gboolean usb_ids_known;  /* FALSE: vendor/product could not be found out */
  guint usb_vendor;
  guint usb_product;
  /* mdev (borrowed strings, valid for the call) */
  const char *mdev_uuid;        /* canonical, lower case */
  const char *mdev_type;        /* "nvidia-63"; NULL: unknown */
  const char *mdev_parent;      /* the parent's sysfs name; NULL: unknown */
  gboolean mdev_parent_is_pci;  /* the PCI fields describe the parent */
  gboolean mdev_uuid_derived;   /* a version 3 UUID: the kind `mdev-create --vm` derives */
  gboolean mdev_uuid_own;       /* derived for this VM (`mdev-create --vm VM`) */
} PolicyDeviceFacts;

/**
 * policy_check_device() - may @vm receive the device described by @facts?
 * @n_attached: how many devices hostdevd has attached to @vm already
 *   (the new one not counted)
 * @rule: (out) (optional): the rule that decided, owned by @policy; on a
 *   refusal it names the rule and where it was written
 * Order: always-denied classes (bridges and root ports), the boot display,
 * max-devices, deny lists (the VM's and [defaults]' together), then allow
 * lists (when the VM has any allow list for the device's bus, the device
 * must match one of its entries).  An mdev: its parent through the PCI
 * lists, its type through the mdev-type lists (each list in force must let
 * it through), then its UUID's owner: a derived UUID that is not this VM's
 * only when allow-mdev-uuids lists it, and with allow-mdev-uuids in force
 * only the VM's own and the listed ones.
 * Return: TRUE when the device may be attached.
 */
gboolean policy_check_device(const Policy *policy, const char *vm,
                             const PolicyDeviceFacts *facts, guint n_attached,
                             const char **rule);

/**
 * policy_check_vf_network() - may @vm program this MAC and VLAN on a VF?
 * (<interface type='hostdev'>: hostdevd sets them on the host, where they
 * decide which network the VF reaches)
 * @mac: (nullable): the 6 bytes of <mac address>, NULL when the XML has none
 *   (the VF keeps the MAC the host gave it)
 * @has_vlan, @vlan_tag: <vlan><tag id/>; without one the VF is untagged
 * @rule: (out) (optional): the rule that decided, interned
 * With allow-vf-macs in force the MAC must match one of its globs; with
 * allow-vlans in force the tag must be in one of its ranges, and an
 * untagged VF needs the entry 'untagged'.  Without them anything goes.
 * Return: TRUE when allowed.
 */
gboolean policy_check_vf_network(const Policy *policy, const char *vm, const guint8 *mac,
                                 gboolean has_vlan, guint vlan_tag, const char **rule);

/**
 * policy_usb_hubs_allowed() - may @vm receive a USB hub or root hub?
 * (bDeviceClass 09: every device behind it would follow it into the guest)
 * @rule: (out) (optional): the rule that decided, owned by @policy
 * Return: allow-usb-hubs for @vm; FALSE by default.
 */
gboolean policy_usb_hubs_allowed(const Policy *policy, const char *vm, const char **rule);

/* The directories of option ROMs shipped with QEMU and iPXE (Debian's
 * qemu-system-data, ipxe-qemu and seabios): a <rom file> may always name a
 * file in them. */
#define POLICY_BUILTIN_ROM_DIRS "/usr/share/qemu", "/usr/lib/ipxe/qemu", "/usr/share/seabios"

/**
 * policy_rom_dirs() - the directories a <rom file='...'> of @vm may name a file in
 * @rule: (out) (optional): the rule, for a refusal, interned
 * The built-in POLICY_BUILTIN_ROM_DIRS, then the allow-rom-dirs entries in
 * force for @vm (its section's, else [defaults]'s), each absolute and
 * without '.', '..' or a trailing '/'.
 * Return: (transfer full): NULL-terminated.
 */
GStrv policy_rom_dirs(const Policy *policy, const char *vm, const char **rule);

/* Return: the most devices hostdevd may attach to @vm at once. */
guint policy_max_devices(const Policy *policy, const char *vm);

/**
 * policy_iommu_group_takeover_allowed() - may hostdevd bind every endpoint
 * of a device's IOMMU group to vfio-pci, or must the rest of the group
 * already be viable?
 * @rule: (out) (optional): the rule that decided, owned by @policy
 */
gboolean policy_iommu_group_takeover_allowed(const Policy *policy, const char *vm,
                                             const char **rule);

/* Return: (transfer full): @facts for messages, e.g.
 * "PCI device 0000:01:00.0 [8086:1521] class 0x020000". */
char *policy_describe_device(const PolicyDeviceFacts *facts);

G_END_DECLS
