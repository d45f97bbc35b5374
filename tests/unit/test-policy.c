/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "policy.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAEMON_UID 4242

static Policy *
load(const char *text)
{
  g_autoptr(GError) error = NULL;
  Policy *policy = policy_load_from_data(text, strlen(text), "test.conf", DAEMON_UID, &error);
  g_assert_no_error(error);
  g_assert_nonnull(policy);
  return policy;
}

static void
assert_load_fails(const char *text, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Policy) policy = policy_load_from_data(text, strlen(text), "test.conf",
                                                   DAEMON_UID, &error);
  g_assert_null(policy);
  g_assert_error(error, POLICY_ERROR, POLICY_ERROR_INVALID);
  if (strstr(error->message, needle) == NULL)
    g_error("'%s' does not contain '%s'", error->message, needle);
}

static PolicyDeviceFacts
pci(guint bus, guint vendor, guint device, guint32 class)
{
  PolicyDeviceFacts facts = {
    .type = POLICY_DEVICE_PCI, .pci_bus = bus, .pci_vendor = vendor,
    .pci_device = device, .pci_class = class,
  };
  return facts;
}

static PolicyDeviceFacts
usb(guint vendor, guint product)
{
  PolicyDeviceFacts facts = {
    .type = POLICY_DEVICE_USB, .usb_ids_known = TRUE, .usb_vendor = vendor,
    .usb_product = product,
  };
  return facts;
}

/* An mdev of @type on the PCI device 0000:@bus:00.0 (@vendor:@device, a
 * display controller), or with @bus -1 on a parent that is no PCI device. */
static PolicyDeviceFacts
mdev(const char *uuid, const char *type, int bus, guint vendor, guint device)
{
  PolicyDeviceFacts facts = {
    .type = POLICY_DEVICE_MDEV, .mdev_uuid = uuid, .mdev_type = type,
    .mdev_parent = bus < 0 ? "mtty" : "0000:01:00.0", .mdev_parent_is_pci = bus >= 0,
  };
  if (bus >= 0) {
    facts.pci_bus = (guint)bus;
    facts.pci_vendor = vendor;
    facts.pci_device = device;
    facts.pci_class = 0x030000;
  }
  return facts;
}

static void
assert_rule(const char *rule, const char *needle)
{
  g_assert_nonnull(rule);
  if (strstr(rule, needle) == NULL)
    g_error("rule '%s' does not contain '%s'", rule, needle);
}

static void
test_default_clients(void)
{
  g_autoptr(Policy) policy = policy_new_default(DAEMON_UID);
  const char *rule = NULL;

  g_assert_cmpint(policy_client_access(policy, "vm1", 0, 0, &rule), ==, POLICY_ACCESS_FULL);
  assert_rule(rule, "root");
  g_assert_cmpint(policy_client_access(policy, "vm1", DAEMON_UID, 100, &rule), ==,
                  POLICY_ACCESS_FULL);
  g_assert_cmpint(policy_client_access(policy, "vm1", 1000, 1000, &rule), ==,
                  POLICY_ACCESS_NONE);
  assert_rule(rule, "only root");
  g_assert_cmpstr(policy_get_origin(policy), ==, "built-in default");
  gid_t gid;
  g_assert_false(policy_socket_group(policy, "vm1", &gid));
}

static void
test_clients_from_file(void)
{
  g_autoptr(Policy) policy = load("[defaults]\n"
                                  "full-access-users=1001\n"
                                  "read-only-users=1002, 1003\n"
                                  "read-only-groups=2000\n"
                                  "socket-group=2000\n"
                                  "[vm vm2]\n"
                                  "full-access-users=1002\n"
                                  "socket-group=0\n");
  const char *rule = NULL;

  g_assert_cmpint(policy_client_access(policy, "vm1", 1001, 1, &rule), ==, POLICY_ACCESS_FULL);
  assert_rule(rule, "full-access-users=1001 ([defaults] of test.conf)");
  g_assert_cmpint(policy_client_access(policy, "vm1", 1002, 1, &rule), ==, POLICY_ACCESS_READ);
  assert_rule(rule, "read-only-users");
  g_assert_cmpint(policy_client_access(policy, "vm1", 1003, 1, NULL), ==, POLICY_ACCESS_READ);
  g_assert_cmpint(policy_client_access(policy, "vm1", 5000, 2000, &rule), ==, POLICY_ACCESS_READ);
  assert_rule(rule, "read-only-groups=2000");
  g_assert_cmpint(policy_client_access(policy, "vm1", 5000, 5000, &rule), ==, POLICY_ACCESS_NONE);
  assert_rule(rule, "test.conf");
  assert_rule(rule, "vm1");
  /* a VM's key replaces the default one */
  g_assert_cmpint(policy_client_access(policy, "vm2", 1002, 1, &rule), ==, POLICY_ACCESS_FULL);
  assert_rule(rule, "[vm vm2]");
  g_assert_cmpint(policy_client_access(policy, "vm2", 1001, 1, NULL), ==, POLICY_ACCESS_NONE);
  /* root and hostdevd's own user cannot be locked out */
  g_assert_cmpint(policy_client_access(policy, "vm2", 0, 0, NULL), ==, POLICY_ACCESS_FULL);
  g_assert_cmpint(policy_client_access(policy, "vm2", DAEMON_UID, 0, NULL), ==,
                  POLICY_ACCESS_FULL);

  gid_t gid = 99;
  g_assert_true(policy_socket_group(policy, "vm1", &gid));
  g_assert_cmpuint(gid, ==, 2000);
  g_assert_true(policy_socket_group(policy, "vm2", &gid));
  g_assert_cmpuint(gid, ==, 0);
}

static void
test_names_resolved(void)
{
  g_autoptr(Policy) policy = load("[defaults]\nfull-access-users=root\nread-only-groups=root\n");
  g_assert_cmpint(policy_client_access(policy, "x", 7, 0, NULL), ==, POLICY_ACCESS_READ);
  assert_load_fails("[defaults]\nread-only-users=no-such-user-hostdevd\n", "not a user");
  assert_load_fails("[defaults]\nread-only-groups=no-such-group-hostdevd\n", "not a group");
}

static void
test_invalid_files(void)
{
  assert_load_fails("[defaults]\nmax-device=3\n", "unknown key");
  assert_load_fails("[defaults]\nmax-devices=-1\n", "max-devices");
  assert_load_fails("[defaults]\nmax-devices=99999\n", "0 to 4096");
  assert_load_fails("[defaults]\nallow-boot-vga=maybe\n", "true or false");
  assert_load_fails("[global]\n", "unknown section [global]");
  assert_load_fails("[vm ../etc]\n", "unknown section");
  assert_load_fails("[defaults]\nallow-pci=0000:01:00.0/../x\n", "PCI address pattern");
  assert_load_fails("[defaults]\nallow-pci-ids=10de\n", "VENDOR:DEVICE");
  assert_load_fails("[defaults]\nallow-pci-classes=0x030\n", "2, 4 or 6 hex digits");
  assert_load_fails("[defaults]\nallow-pci-classes=zz\n", "2, 4 or 6 hex digits");
  assert_load_fails("[defaults]\nsocket-group=1;2\n", "exactly one group");
  assert_load_fails("not a key file\n", "test.conf");
  assert_load_fails("[vm a]\nallow-usb=046d:c52b\n[vm b]\ndeny-usb=x:y\n", "[vm b]");
}

/*
 * Issue 11, item 14: a VM section's deny-usb replaced the site-wide one,
 * so a keyboard denied in [defaults] attached anyway.  Denies accumulate;
 * allow lists and other keys still replace.
 */
static void
test_denies_accumulate(void)
{
  g_autoptr(Policy) policy = load("[defaults]\ndeny-usb=0627:0001\ndeny-pci-ids=10de:0fff\n"
                                  "allow-usb=0627:*\n"
                                  "[vm box]\ndeny-usb=046d:c52b\nallow-usb=046d:*\n"
                                  "[vm empty]\ndeny-usb=\ndeny-pci-classes=0x02\n");
  PolicyDeviceFacts keyboard = usb(0x0627, 0x0001);
  PolicyDeviceFacts mouse = usb(0x046d, 0xc52b);
  PolicyDeviceFacts other_logitech = usb(0x046d, 0xc077);
  PolicyDeviceFacts tablet = usb(0x0627, 0x0002);
  PolicyDeviceFacts gpu = pci(1, 0x10de, 0x0fff, 0x030000);
  const char *rule = NULL;

  /* the site-wide deny holds in a VM with a deny list of its own */
  g_assert_false(policy_check_device(policy, "box", &keyboard, 0, &rule));
  assert_rule(rule, "deny-usb entry '0627:0001' ([defaults] of test.conf)");
  g_assert_false(policy_check_device(policy, "box", &mouse, 0, &rule));
  assert_rule(rule, "deny-usb entry '046d:c52b' ([vm box] of test.conf)");
  /* ... and in one whose deny list is empty */
  g_assert_false(policy_check_device(policy, "empty", &keyboard, 0, &rule));
  assert_rule(rule, "[defaults] of test.conf");
  g_assert_false(policy_check_device(policy, "empty", &gpu, 0, &rule));
  assert_rule(rule, "deny-pci-ids entry '10de:0fff' ([defaults] of test.conf)");
  /* an allow list still replaces the site-wide one */
  g_assert_true(policy_check_device(policy, "box", &other_logitech, 0, &rule));
  assert_rule(rule, "allow-usb entry '046d:*' ([vm box] of test.conf)");
  g_assert_false(policy_check_device(policy, "box", &tablet, 0, &rule));
  assert_rule(rule, "matches no entry of allow-usb=046d:* ([vm box]");
  g_assert_true(policy_check_device(policy, "vm1", &tablet, 0, &rule));
}

#define RANDOM_UUID "4b20d080-1b54-4048-85b3-a6a62d165c01"
#define V3_UUID "faf779ad-fa2e-3c30-abe4-b1af0abfafdc"   /* mdev-create --vm vm1 */

/* Issue 11, item 2: an mdev went past every device rule.  Its parent takes
 * the PCI lists, its type the mdev-type lists. */
static void
test_mdev_parent_and_type(void)
{
  g_autoptr(Policy) deny_all = load("[defaults]\ndeny-pci-ids=*:*\n");
  g_autoptr(Policy) policy = load("[defaults]\ndeny-mdev-types=i915-GVTg_V5_8\n"
                                  "[vm gpu]\ndeny-mdev-types=nvidia-6?\ndeny-pci=0000:02:*\n"
                                  "[vm picky]\nallow-pci-ids=10de:*\nallow-mdev-types=nvidia-63\n");
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  PolicyDeviceFacts grid = mdev(RANDOM_UUID, "nvidia-63", 1, 0x10de, 0x1bb3);
  PolicyDeviceFacts grid_2q = mdev(RANDOM_UUID, "nvidia-64", 1, 0x10de, 0x1bb3);
  PolicyDeviceFacts on_02 = mdev(RANDOM_UUID, "nvidia-63", 2, 0x10de, 0x1bb3);
  PolicyDeviceFacts gvt = mdev(RANDOM_UUID, "i915-GVTg_V5_8", 1, 0x8086, 0x3e92);
  PolicyDeviceFacts gvt_4 = mdev(RANDOM_UUID, "i915-GVTg_V5_4", 1, 0x8086, 0x3e92);
  PolicyDeviceFacts sample = mdev(RANDOM_UUID, "mtty-2", -1, 0, 0);
  const char *rule = NULL;

  /* a denied parent denies its slices */
  g_assert_false(policy_check_device(deny_all, "vm1", &grid, 0, &rule));
  assert_rule(rule, "deny-pci-ids entry '*:*' ([defaults] of test.conf)");
  g_assert_false(policy_check_device(policy, "gpu", &on_02, 0, &rule));
  assert_rule(rule, "deny-pci entry '0000:02:*' ([vm gpu] of test.conf)");
  /* a parent that is no PCI device cannot be checked against a PCI list: refused */
  g_assert_false(policy_check_device(deny_all, "vm1", &sample, 0, &rule));
  assert_rule(rule, "cannot be checked: the mediated device's parent mtty is not a PCI device");
  g_assert_true(policy_check_device(builtin, "vm1", &sample, 0, &rule));

  /* types: the denies of [defaults] and of the VM accumulate, matched without case */
  g_assert_false(policy_check_device(policy, "gpu", &grid, 0, &rule));
  assert_rule(rule, "deny-mdev-types entry 'nvidia-6?' ([vm gpu] of test.conf)");
  g_assert_false(policy_check_device(policy, "gpu", &gvt, 0, &rule));
  assert_rule(rule, "deny-mdev-types entry 'i915-gvtg_v5_8' ([defaults] of test.conf)");
  g_assert_true(policy_check_device(policy, "gpu", &gvt_4, 0, &rule));
  assert_rule(rule, "has no allow-pci, allow-pci-ids, allow-pci-classes or allow-mdev-types "
                    "for VM 'gpu', so every mediated device not denied may be attached");

  /* both allow groups in force must let it through: the parent's and the type's */
  g_assert_true(policy_check_device(policy, "picky", &grid, 0, &rule));
  assert_rule(rule, "allow-pci-ids entry '10de:*' ([vm picky] of test.conf) and "
                    "allow-mdev-types entry 'nvidia-63'");
  g_assert_false(policy_check_device(policy, "picky", &grid_2q, 0, &rule));
  assert_rule(rule, "matches no entry of allow-mdev-types=nvidia-63 ([vm picky]");
  g_assert_false(policy_check_device(policy, "picky", &gvt_4, 0, &rule));
  assert_rule(rule, "matches no entry of allow-pci-ids=10de:* ([vm picky]");

  g_autofree char *what = policy_describe_device(&grid);
  g_assert_cmpstr(what, ==, "mediated device " RANDOM_UUID " of type nvidia-63 on PCI device "
                  "0000:01:00.0 [10de:1bb3] class 0x030000");
  g_autofree char *what_sample = policy_describe_device(&sample);
  g_assert_cmpstr(what_sample, ==, "mediated device " RANDOM_UUID " of type mtty-2 on parent mtty");

  assert_load_fails("[defaults]\ndeny-mdev-types=nvidia/63\n", "an mdev type pattern");
  assert_load_fails("[defaults]\nallow-mdev-uuids=not-a-uuid\n", "an mdev UUID pattern");
}

/* The UUID `mdev-create --vm` derives names a VM's instance; another VM may
 * not take it unless allow-mdev-uuids lists it.  max-devices counts mdevs. */
static void
test_mdev_uuid_owner(void)
{
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  g_autoptr(Policy) policy = load("[defaults]\nmax-devices=0\n"
                                  "[vm vm2]\nmax-devices=4\nallow-mdev-uuids=" V3_UUID "\n"
                                  "[vm vm3]\nmax-devices=4\nallow-mdev-uuids=4b20d080-*\n");
  PolicyDeviceFacts own = mdev(V3_UUID, "nvidia-63", 1, 0x10de, 0x1bb3);
  PolicyDeviceFacts others = own;
  PolicyDeviceFacts random_uuid = mdev(RANDOM_UUID, "nvidia-63", 1, 0x10de, 0x1bb3);
  const char *rule = NULL;

  own.mdev_uuid_derived = own.mdev_uuid_own = TRUE;
  others.mdev_uuid_derived = TRUE;

  g_assert_true(policy_check_device(builtin, "vm1", &own, 0, &rule));
  g_assert_true(policy_check_device(builtin, "vm1", &random_uuid, 0, &rule));
  g_assert_false(policy_check_device(builtin, "vm9", &others, 0, &rule));
  assert_rule(rule, "mdev UUID " V3_UUID " is a version 3 UUID, the kind `hostdevctl "
                    "mdev-create --vm` derives, but not one derived for VM 'vm9': it is "
                    "another VM's instance; list it in allow-mdev-uuids to allow it");

  /* max-devices=0 refuses an mdev like any device */
  g_assert_false(policy_check_device(policy, "vm1", &own, 0, &rule));
  assert_rule(rule, "max-devices=0 ([defaults] of test.conf)");

  /* allowed by name; and with the key in force, only the VM's own and those listed */
  g_assert_true(policy_check_device(policy, "vm2", &others, 0, &rule));
  assert_rule(rule, "allow-mdev-uuids entry '" V3_UUID "' ([vm vm2] of test.conf)");
  g_assert_false(policy_check_device(policy, "vm2", &random_uuid, 0, &rule));
  assert_rule(rule, "mdev UUID " RANDOM_UUID " is not one derived for VM 'vm2' (`hostdevctl "
                    "mdev-create --vm vm2`) and matches no entry of allow-mdev-uuids=");
  g_assert_true(policy_check_device(policy, "vm2", &own, 0, &rule));
  g_assert_true(policy_check_device(policy, "vm3", &random_uuid, 0, &rule));
  g_assert_false(policy_check_device(policy, "vm3", &others, 0, &rule));
  assert_rule(rule, "another VM's instance and matches no entry of allow-mdev-uuids=4b20d080-*");
}

/* Issue 11, item 14: nothing governed the MAC and VLAN a VF is given. */
static void
test_vf_network(void)
{
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  g_autoptr(Policy) policy = load("[defaults]\nallow-vf-macs=52:54:00:*;02:00:00:00:00:0?\n"
                                  "allow-vlans=100-199;300\n"
                                  "[vm flat]\nallow-vlans=untagged\n");
  const guint8 qemu_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
  const guint8 local_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x07 };
  const guint8 other_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x10 };
  const char *rule = NULL;

  g_assert_true(policy_check_vf_network(builtin, "vm1", other_mac, TRUE, 42, &rule));
  g_assert_true(policy_check_vf_network(builtin, "vm1", NULL, FALSE, 0, &rule));

  g_assert_true(policy_check_vf_network(policy, "vm1", qemu_mac, TRUE, 100, &rule));
  g_assert_true(policy_check_vf_network(policy, "vm1", local_mac, TRUE, 199, &rule));
  g_assert_true(policy_check_vf_network(policy, "vm1", NULL, TRUE, 300, &rule));
  g_assert_false(policy_check_vf_network(policy, "vm1", other_mac, TRUE, 100, &rule));
  assert_rule(rule, "MAC 02:00:00:00:00:10 matches no entry of allow-vf-macs=");
  g_assert_false(policy_check_vf_network(policy, "vm1", qemu_mac, TRUE, 42, &rule));
  assert_rule(rule, "VLAN 42 is not in allow-vlans=100-199;300 ([defaults] of test.conf)");
  g_assert_false(policy_check_vf_network(policy, "vm1", qemu_mac, TRUE, 200, &rule));
  g_assert_false(policy_check_vf_network(policy, "vm1", qemu_mac, FALSE, 0, &rule));
  assert_rule(rule, "no VLAN (untagged) is not in allow-vlans=100-199;300");
  assert_rule(rule, "list 'untagged' to allow it");
  /* the VM's allow-vlans replaces the site-wide one; allow-vf-macs still applies */
  g_assert_true(policy_check_vf_network(policy, "flat", qemu_mac, FALSE, 0, &rule));
  g_assert_false(policy_check_vf_network(policy, "flat", qemu_mac, TRUE, 100, &rule));
  assert_rule(rule, "[vm flat]");
  g_assert_false(policy_check_vf_network(policy, "flat", other_mac, FALSE, 0, &rule));

  assert_load_fails("[defaults]\nallow-vlans=4096\n", "VLAN id 0..4095");
  assert_load_fails("[defaults]\nallow-vlans=200-100\n", "VLAN id 0..4095");
  assert_load_fails("[defaults]\nallow-vlans=1-2-3\n", "VLAN id 0..4095");
  assert_load_fails("[defaults]\nallow-vf-macs=52:54:00:zz\n", "MAC address pattern");
}

static void
test_usb_hubs(void)
{
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  g_autoptr(Policy) policy = load("[defaults]\nallow-usb=*\n[vm hubby]\nallow-usb-hubs=true\n"
                                  "[vm strict]\nallow-usb-hubs=false\n");
  const char *rule = NULL;

  g_assert_false(policy_usb_hubs_allowed(builtin, "vm1", &rule));
  assert_rule(rule, "allow-usb-hubs=true");
  /* allow-usb=* says nothing about hubs */
  g_assert_false(policy_usb_hubs_allowed(policy, "vm1", &rule));
  assert_rule(rule, "default: USB hubs and root hubs");
  g_assert_true(policy_usb_hubs_allowed(policy, "hubby", &rule));
  assert_rule(rule, "allow-usb-hubs=true ([vm hubby] of test.conf)");
  g_assert_false(policy_usb_hubs_allowed(policy, "strict", &rule));
  assert_rule(rule, "allow-usb-hubs=false ([vm strict] of test.conf)");
  assert_load_fails("[defaults]\nallow-usb-hubs=sometimes\n", "true or false");
}

static void
test_rom_dirs(void)
{
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  g_autoptr(Policy) policy = load("[defaults]\nallow-rom-dirs=/srv/roms/;/opt/fw\n"
                                  "[vm gpu]\nallow-rom-dirs=/srv/gpu-roms\n");
  const char *rule = NULL;

  g_auto(GStrv) plain = policy_rom_dirs(builtin, "vm1", &rule);
  g_assert_true(g_strv_contains((const char *const *)plain, "/usr/share/qemu"));
  g_assert_cmpuint(g_strv_length(plain), ==, 3);
  assert_rule(rule, "allow-rom-dirs");

  g_auto(GStrv) vm1 = policy_rom_dirs(policy, "vm1", &rule);
  g_assert_true(g_strv_contains((const char *const *)vm1, "/srv/roms"));
  g_assert_true(g_strv_contains((const char *const *)vm1, "/opt/fw"));
  g_assert_true(g_strv_contains((const char *const *)vm1, "/usr/share/qemu"));
  assert_rule(rule, "allow-rom-dirs=/srv/roms/;/opt/fw ([defaults] of test.conf)");

  g_auto(GStrv) gpu = policy_rom_dirs(policy, "gpu", &rule);
  g_assert_true(g_strv_contains((const char *const *)gpu, "/srv/gpu-roms"));
  g_assert_false(g_strv_contains((const char *const *)gpu, "/srv/roms"));
  assert_rule(rule, "[vm gpu]");

  assert_load_fails("[defaults]\nallow-rom-dirs=roms\n", "absolute path");
  assert_load_fails("[defaults]\nallow-rom-dirs=/usr/share/../../etc\n", "absolute path");
  assert_load_fails("[defaults]\nallow-rom-dirs=/srv//roms\n", "absolute path");
  assert_load_fails("[defaults]\nallow-rom-dirs=/\n", "absolute path");
}

static void
test_always_denied(void)
{
  g_autoptr(Policy) policy = load("[defaults]\nallow-pci-classes=0x06\nallow-boot-vga=false\n");
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  const char *rule = NULL;
  PolicyDeviceFacts root_port = pci(0, 0x8086, 0x29c0, 0x060400);
  PolicyDeviceFacts host_bridge = pci(0, 0x8086, 0x29c0, 0x060000);

  g_assert_false(policy_check_device(policy, "vm1", &root_port, 0, &rule));
  assert_rule(rule, "always denied");
  g_assert_false(policy_check_device(builtin, "vm1", &host_bridge, 0, &rule));
  assert_rule(rule, "bridges and root ports");

  PolicyDeviceFacts vga = pci(1, 0x1234, 0x1111, 0x030000);
  vga.boot_vga = TRUE;
  g_assert_false(policy_check_device(builtin, "vm1", &vga, 0, &rule));
  assert_rule(rule, "boot_vga");
  g_assert_false(policy_check_device(policy, "vm1", &vga, 0, &rule));
  assert_rule(rule, "allow-boot-vga=false ([defaults] of test.conf)");

  g_autoptr(Policy) allowing = load("[vm desk]\nallow-boot-vga=true\n");
  g_assert_true(policy_check_device(allowing, "desk", &vga, 0, NULL));
  g_assert_false(policy_check_device(allowing, "other", &vga, 0, NULL));
}

static void
test_max_devices(void)
{
  g_autoptr(Policy) policy = load("[defaults]\nmax-devices=2\n[vm big]\nmax-devices=3\n");
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  PolicyDeviceFacts key = usb(0x046d, 0xc52b);
  const char *rule = NULL;

  g_assert_true(policy_check_device(policy, "vm1", &key, 1, NULL));
  g_assert_false(policy_check_device(policy, "vm1", &key, 2, &rule));
  assert_rule(rule, "max-devices=2");
  g_assert_true(policy_check_device(policy, "big", &key, 2, NULL));
  g_assert_cmpuint(policy_max_devices(policy, "big"), ==, 3);
  g_assert_cmpuint(policy_max_devices(builtin, "big"), ==, POLICY_DEFAULT_MAX_DEVICES);
  g_assert_false(policy_check_device(builtin, "vm1", &key, POLICY_DEFAULT_MAX_DEVICES, &rule));
  assert_rule(rule, "max-devices");
}

static void
test_pci_lists(void)
{
  g_autoptr(Policy) policy = load("[defaults]\n"
                                  "allow-pci=0000:0A:*\n"
                                  "allow-pci-ids=10de:*;8086:1521\n"
                                  "allow-pci-classes=0x0c03;0x0200\n"
                                  "deny-pci-ids=10de:0fff\n"
                                  "[vm locked]\n"
                                  "allow-pci=\n"
                                  "allow-pci-ids=\n"
                                  "allow-pci-classes=\n");
  const char *rule = NULL;
  PolicyDeviceFacts gpu = pci(1, 0x10de, 0x1eb8, 0x030000);
  PolicyDeviceFacts denied_gpu = pci(1, 0x10de, 0x0fff, 0x030000);
  PolicyDeviceFacts nic = pci(2, 0x8086, 0x1521, 0x020000);
  PolicyDeviceFacts other_nic = pci(2, 0x14e4, 0x1657, 0x020000);
  PolicyDeviceFacts xhci = pci(3, 0x1b36, 0x000d, 0x0c0330);
  PolicyDeviceFacts on_bus_a = pci(0xa, 0x1af4, 0x1000, 0x010000);
  PolicyDeviceFacts storage = pci(4, 0x1af4, 0x1001, 0x010000);

  g_assert_true(policy_check_device(policy, "vm1", &gpu, 0, &rule));
  assert_rule(rule, "allow-pci-ids entry '10de:*'");
  g_assert_false(policy_check_device(policy, "vm1", &denied_gpu, 0, &rule));
  assert_rule(rule, "deny-pci-ids entry '10de:0fff' ([defaults] of test.conf)");
  g_assert_true(policy_check_device(policy, "vm1", &nic, 0, &rule));
  g_assert_true(policy_check_device(policy, "vm1", &other_nic, 0, &rule));
  assert_rule(rule, "allow-pci-classes entry '0x0200'");
  g_assert_true(policy_check_device(policy, "vm1", &xhci, 0, &rule));
  assert_rule(rule, "0x0c03");
  g_assert_true(policy_check_device(policy, "vm1", &on_bus_a, 0, &rule));
  assert_rule(rule, "allow-pci entry '0000:0a:*'");
  g_assert_false(policy_check_device(policy, "vm1", &storage, 0, &rule));
  assert_rule(rule, "matches no entry of allow-pci=0000:0A:*");
  /* empty allow lists in a VM's section allow nothing */
  g_assert_false(policy_check_device(policy, "locked", &gpu, 0, &rule));
  assert_rule(rule, "[vm locked]");
  /* USB is not restricted by PCI lists */
  PolicyDeviceFacts key = usb(0x046d, 0xc52b);
  g_assert_true(policy_check_device(policy, "locked", &key, 0, &rule));
  assert_rule(rule, "no allow-usb");
}

static void
test_usb_lists(void)
{
  g_autoptr(Policy) policy = load("[defaults]\nallow-usb=046D:C52B;0627:*\ndeny-usb=0627:0002\n");
  g_autoptr(Policy) deny_only = load("[defaults]\ndeny-usb=dead:*\n");
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  const char *rule = NULL;
  PolicyDeviceFacts logitech = usb(0x046d, 0xc52b);
  PolicyDeviceFacts tablet = usb(0x0627, 0x0001);
  PolicyDeviceFacts denied = usb(0x0627, 0x0002);
  PolicyDeviceFacts stranger = usb(0x1d6b, 0x0104);
  PolicyDeviceFacts unknown = { .type = POLICY_DEVICE_USB };

  g_assert_true(policy_check_device(policy, "vm1", &logitech, 0, &rule));
  assert_rule(rule, "allow-usb entry '046d:c52b'");
  g_assert_true(policy_check_device(policy, "vm1", &tablet, 0, NULL));
  g_assert_false(policy_check_device(policy, "vm1", &denied, 0, &rule));
  assert_rule(rule, "deny-usb entry '0627:0002'");
  g_assert_false(policy_check_device(policy, "vm1", &stranger, 0, &rule));
  assert_rule(rule, "matches no entry of allow-usb");
  g_assert_false(policy_check_device(policy, "vm1", &unknown, 0, &rule));
  assert_rule(rule, "unknown");
  g_assert_false(policy_check_device(deny_only, "vm1", &unknown, 0, &rule));
  assert_rule(rule, "cannot be checked");
  g_assert_true(policy_check_device(deny_only, "vm1", &stranger, 0, NULL));
  g_assert_true(policy_check_device(builtin, "vm1", &unknown, 0, &rule));
  assert_rule(rule, "default");
}

static void
test_group_takeover(void)
{
  g_autoptr(Policy) policy = load("[vm gpu]\nallow-iommu-group-takeover=true\n");
  g_autoptr(Policy) builtin = policy_new_default(DAEMON_UID);
  const char *rule = NULL;

  g_assert_true(policy_iommu_group_takeover_allowed(policy, "gpu", &rule));
  assert_rule(rule, "allow-iommu-group-takeover=true ([vm gpu] of test.conf)");
  g_assert_false(policy_iommu_group_takeover_allowed(policy, "other", &rule));
  assert_rule(rule, "default");
  g_assert_false(policy_iommu_group_takeover_allowed(builtin, "gpu", NULL));
}

static void
test_describe(void)
{
  PolicyDeviceFacts nic = pci(1, 0x8086, 0x1521, 0x020000);
  PolicyDeviceFacts key = usb(0x046d, 0xc52b);
  g_autofree char *a = policy_describe_device(&nic);
  g_autofree char *b = policy_describe_device(&key);
  g_assert_cmpstr(a, ==, "PCI device 0000:01:00.0 [8086:1521] class 0x020000");
  g_assert_cmpstr(b, ==, "USB device 046d:c52b");
}

static void
test_load_file(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("hostdevd-policy-XXXXXX", &error);
  g_assert_no_error(error);
  g_autofree char *path = g_build_filename(dir, "policy.conf", NULL);
  g_assert_true(g_file_set_contents(path, "[defaults]\nmax-devices=1\n", -1, &error));

  g_assert_cmpint(g_chmod(path, 0644), ==, 0);
  {
    g_autoptr(Policy) policy = policy_load(path, getuid(), &error);
    g_assert_no_error(error);
    g_assert_cmpuint(policy_max_devices(policy, "x"), ==, 1);
    g_assert_cmpstr(policy_get_origin(policy), ==, path);
  }
  /* anyone who could write it could give themselves every device */
  g_assert_cmpint(g_chmod(path, 0666), ==, 0);
  {
    g_autoptr(Policy) policy = policy_load(path, getuid(), &error);
    g_assert_null(policy);
    g_assert_error(error, POLICY_ERROR, POLICY_ERROR_UNSAFE);
    g_clear_error(&error);
  }
  g_unlink(path);
  {
    g_autoptr(Policy) policy = policy_load(path, getuid(), &error);
    g_assert_null(policy);
    g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
    g_clear_error(&error);
  }
  g_rmdir(dir);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/policy/clients/default", test_default_clients);
  g_test_add_func("/policy/clients/file", test_clients_from_file);
  g_test_add_func("/policy/clients/names", test_names_resolved);
  g_test_add_func("/policy/file/invalid", test_invalid_files);
  g_test_add_func("/policy/file/load", test_load_file);
  g_test_add_func("/policy/devices/always-denied", test_always_denied);
  g_test_add_func("/policy/devices/max", test_max_devices);
  g_test_add_func("/policy/devices/pci", test_pci_lists);
  g_test_add_func("/policy/devices/usb", test_usb_lists);
  g_test_add_func("/policy/devices/group-takeover", test_group_takeover);
  g_test_add_func("/policy/devices/describe", test_describe);
  g_test_add_func("/policy/rom-dirs", test_rom_dirs);
  g_test_add_func("/policy/usb-hubs", test_usb_hubs);
  g_test_add_func("/policy/vf-network", test_vf_network);
  g_test_add_func("/policy/devices/denies-accumulate", test_denies_accumulate);
  g_test_add_func("/policy/devices/mdev", test_mdev_parent_and_type);
  g_test_add_func("/policy/devices/mdev-uuid-owner", test_mdev_uuid_owner);
  return g_test_run();
}
