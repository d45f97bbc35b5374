/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-sriov.c - sriov_numvfs with the kernel's rules, VF look-up, and
 * the rtnetlink messages for a VF's MAC and VLAN (built, parsed, and sent
 * to the real kernel on the loopback interface)
 */
#include "claims.h"
#include "host-fixture.h"
#include "host-pci.h"
#include "sriov.h"
#include "json-text.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define PF_DIR "sys/devices/pci0000:00/0000:00:04.0/0000:02:00.0"

typedef struct {
  char *root;
  FakeKernel *fake;
} Tree;

static const PciAddress pf = { 0, 2, 0, 0 };
static const PciAddress vf = { 0, 2, 0, 1 };
static const PciAddress e1000e = { 0, 1, 0, 0 };

static void
tree_setup(Tree *tree, gconstpointer data)
{
  tree->root = fixture_extract();
  tree->fake = fake_kernel_new(tree->root);
}

static void
tree_teardown(Tree *tree, gconstpointer data)
{
  g_clear_pointer(&tree->fake, fake_kernel_free);
  host_root_set(NULL);
  fixture_remove(tree->root);
  g_free(tree->root);
}

static void
test_numvfs(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *count = NULL;

  g_assert_true(sriov_set_numvfs(&pf, 1, NULL, &error));
  g_assert_no_error(error);

  g_assert_false(sriov_set_numvfs(&pf, 2, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "0000:02:00.0 has 1 VFs enabled, and the kernel only changes "
                        "the count from 0: set 0 first (this removes every VF, so "
                        "detach them from VMs before), then 2");
  g_clear_error(&error);

  g_assert_false(sriov_set_numvfs(&pf, 3, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "0000:02:00.0 supports at most 2 VFs (sriov_totalvfs); 3 asked");
  g_clear_error(&error);

  g_assert_true(sriov_set_numvfs(&pf, 0, NULL, &error));
  g_assert_no_error(error);
  count = fixture_read(tree->root, PF_DIR "/sriov_numvfs");
  g_assert_cmpstr(count, ==, "0");
  g_assert_false(fixture_exists(tree->root, PF_DIR "/virtfn0"));

  g_assert_true(sriov_set_numvfs(&pf, 2, NULL, &error));
  g_assert_no_error(error);
  g_assert_true(fixture_exists(tree->root, PF_DIR "/virtfn1"));
}

static void
test_numvfs_not_pf(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_false(sriov_set_numvfs(&e1000e, 1, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "PCI device 0000:01:00.0 is not an SR-IOV physical function "
                        "(it has no sriov_totalvfs)");
  g_clear_error(&error);
  g_assert_false(sriov_set_numvfs(&vf, 1, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "(it has no sriov_totalvfs; it is a VF itself)");
}

static void
test_numvfs_no_driver(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  fixture_unlink(tree->root, PF_DIR "/driver");
  g_assert_false(sriov_set_numvfs(&pf, 0, NULL, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "0000:02:00.0 has no driver, and only the PF's driver can "
                        "enable VFs");
}

static void
test_numvfs_claimed(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *runtime = g_dir_make_tmp("hostdevd-sriov-XXXXXX", &error);

  g_assert_true(claims_acquire(runtime, "vm7", "pci_0000_02_00_1",
                               &(ClaimOwner){ getpid(), 0 }, &error));
  g_assert_false(sriov_set_numvfs(&pf, 0, runtime, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_BUSY,
                        "VF 0000:02:00.1 of 0000:02:00.0 is in use by VM 'vm7' (hostdevd pid ");
  g_assert_nonnull(strstr(error->message, "): setting 0 VFs would remove it; detach it from "
                                          "that VM first (hostdevctl detach-device vm7 ...)"));
  g_clear_error(&error);
  g_assert_true(claims_release(runtime, "vm7", "pci_0000_02_00_1", &error));
  g_assert_true(sriov_set_numvfs(&pf, 0, runtime, &error));
  g_assert_no_error(error);
  fixture_remove(runtime);
}

static void
test_numvfs_kernel_errors(Tree *tree, gconstpointer data)
{
  static const struct {
    int err;
    const char *message;
  } cases[] = {
    { ENOMEM, "cannot set 2 VFs on 0000:02:00.0: the kernel could not find bus "
              "numbers or MMIO space for the VFs: enable SR-IOV support in the "
              "firmware, or boot with pci=realloc" },
    { ENOENT, "the PF's driver does not support SR-IOV configuration through sysfs" },
    { EBUSY, "VFs are enabled already, and the kernel only changes the count from 0" },
    { ERANGE, "more VFs than sriov_totalvfs" },
    { EIO, "the PF's driver refused; see dmesg (writing '2' to "
           "/sys/bus/pci/devices/0000:02:00.0/sriov_numvfs failed: Input/output error)" },
  };
  g_autoptr(GError) error = NULL;

  g_assert_true(sriov_set_numvfs(&pf, 0, NULL, &error));
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    fake_kernel_fail_write(tree->fake, "/sriov_numvfs", cases[i].err);
    g_assert_false(sriov_set_numvfs(&pf, 2, NULL, &error));
    assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR, cases[i].message);
    g_clear_error(&error);
  }
}

static void
test_vf_lookup(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  SriovVfLink link = { 0 };

  g_assert_false(sriov_vf_lookup(&vf, &link, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "the PF 0000:02:00.0 of VF 0000:02:00.1 has no network interface "
                        "(driver: nvme), so the VF's MAC and VLAN cannot be set through it");
  g_clear_error(&error);

  g_assert_false(sriov_vf_lookup(&e1000e, &link, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "PCI device 0000:01:00.0 is not an SR-IOV VF (it has no physfn)");
  g_clear_error(&error);

  /* a network PF: net/IFNAME/ifindex */
  fixture_write(tree->root, PF_DIR "/net/enp2s0f0/ifindex", "7\n");
  g_assert_true(sriov_vf_lookup(&vf, &link, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(link.vf_index, ==, 0);
  g_assert_cmpstr(link.pf_ifname, ==, "enp2s0f0");
  g_assert_cmpint(link.pf_ifindex, ==, 7);
  g_assert_cmpint(pci_address_compare(&link.pf, &pf), ==, 0);
  sriov_vf_link_clear(&link);
}

static void
test_mac_json(void)
{
  g_autoptr(GError) error = NULL;
  SriovVfConfig config = { { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef }, 42, 3 };
  SriovVfConfig back = { 0 };
  g_autoptr(GString) text = g_string_new(NULL);
  sriov_vf_config_append_json(text, &config);
  g_autoptr(JsonObject) json = json_text_parse_object(text->str);
  g_autofree char *mac = sriov_mac_format(config.mac);
  guint8 bytes[6];

  g_assert_cmpstr(mac, ==, "52:54:00:ab:cd:ef");
  g_assert_true(sriov_mac_parse("52:54:00:AB:CD:EF", bytes));
  g_assert_cmpmem(bytes, 6, config.mac, 6);
  g_assert_false(sriov_mac_parse("52:54:00:ab:cd", bytes));
  g_assert_false(sriov_mac_parse("52-54-00-ab-cd-ef", bytes));

  g_assert_true(sriov_vf_config_from_json(json, &back, &error));
  g_assert_cmpmem(back.mac, 6, config.mac, 6);
  g_assert_cmpuint(back.vlan, ==, 42);
  g_assert_cmpuint(back.qos, ==, 3);
  json_object_set_int_member(json, "vlan", 4096);
  g_assert_false(sriov_vf_config_from_json(json, &back, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "VF configuration: expected {\"mac\": \"xx:xx:xx:xx:xx:xx\", "
                        "\"vlan\": 0..4095, \"qos\": 0..7}");
}

static void
test_netlink_messages(void)
{
  g_autoptr(GError) error = NULL;
  SriovVfConfig config = { { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }, 100, 0 };
  SriovVfConfig parsed = { 0 };
  g_autoptr(GBytes) set = sriov_build_setlink(7, 3, &config, 42);
  g_autoptr(GBytes) get = sriov_build_getlink(7, 43);
  gsize size = 0;
  const guint8 *data = g_bytes_get_data(set, &size);
  g_autofree guint8 *copy = g_memdup2(data, size);
  struct nlmsghdr header;
  struct ifinfomsg info;
  guint16 newlink = RTM_NEWLINK;
  guint32 mask;

  memcpy(&header, data, sizeof(header));
  g_assert_cmpuint(header.nlmsg_len, ==, size);
  g_assert_cmpuint(header.nlmsg_type, ==, RTM_SETLINK);
  g_assert_cmpuint(header.nlmsg_flags, ==, NLM_F_REQUEST | NLM_F_ACK);
  g_assert_cmpuint(header.nlmsg_seq, ==, 42);
  memcpy(&info, data + NLMSG_HDRLEN, sizeof(info));
  g_assert_cmpint(info.ifi_index, ==, 7);
  /* header + ifinfomsg + LIST(INFO(MAC 36 + VLAN 12)) */
  g_assert_cmpuint(size, ==, NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(info)) + 4 + 4 +
                             RTA_LENGTH(sizeof(struct ifla_vf_mac)) +
                             RTA_LENGTH(sizeof(struct ifla_vf_vlan)));

  /* the same attributes read back as the kernel's RTM_NEWLINK would be */
  memcpy(copy + G_STRUCT_OFFSET(struct nlmsghdr, nlmsg_type), &newlink, sizeof(newlink));
  g_assert_true(sriov_parse_newlink(copy, size, 3, &parsed, &error));
  g_assert_no_error(error);
  g_assert_cmpmem(parsed.mac, 6, config.mac, 6);
  g_assert_cmpuint(parsed.vlan, ==, 100);
  g_assert_cmpuint(parsed.qos, ==, 0);

  g_assert_false(sriov_parse_newlink(copy, size, 2, &parsed, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "the PF reports no VF 2 over netlink");
  g_clear_error(&error);
  g_assert_false(sriov_parse_newlink(copy, size - 8, 3, &parsed, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "malformed RTM_NEWLINK message from the kernel");
  g_clear_error(&error);

  data = g_bytes_get_data(get, &size);
  memcpy(&header, data, sizeof(header));
  g_assert_cmpuint(header.nlmsg_type, ==, RTM_GETLINK);
  g_assert_cmpuint(size, ==, NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(info)) + RTA_LENGTH(4));
  memcpy(&mask, data + size - 4, 4);
  g_assert_cmpuint(mask, ==, RTEXT_FILTER_VF);
}

/* The real kernel: the loopback device has no VFs and no VF operations. */
static void
test_netlink_kernel(void)
{
  g_autoptr(GError) error = NULL;
  SriovVfLink link = { .vf_index = 0, .pf_ifname = (char *)"lo", .pf_ifindex = 1 };
  SriovVfConfig config = { { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 }, 0, 0 };

  if (!sriov_vf_get_config(&link, &config, &error) &&
      g_error_matches(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR) &&
      strstr(error->message, "NETLINK_ROUTE") != NULL) {
    g_test_skip(error->message);
    return;
  }
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "the PF reports no VF 0 over netlink: its driver does not "
                        "expose VF configuration");
  g_clear_error(&error);

  g_assert_false(sriov_vf_set_config(&link, &config, &error));
  g_assert_true(g_error_matches(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR));
  g_test_message("%s", error->message);
  g_assert_nonnull(strstr(error->message, "cannot set MAC 52:54:00:12:34:56 VLAN 0 on VF 0 of lo"));
  g_clear_error(&error);

  config.vlan = 5000;
  g_assert_false(sriov_vf_set_config(&link, &config, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "VLAN 5000 / QoS 0 out of range (0..4095, 0..7)");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define TREE_TEST(path, func) \
  g_test_add("/sriov/" path, Tree, NULL, tree_setup, func, tree_teardown)
  TREE_TEST("numvfs", test_numvfs);
  TREE_TEST("numvfs-not-pf", test_numvfs_not_pf);
  TREE_TEST("numvfs-no-driver", test_numvfs_no_driver);
  TREE_TEST("numvfs-claimed", test_numvfs_claimed);
  TREE_TEST("numvfs-kernel-errors", test_numvfs_kernel_errors);
  TREE_TEST("vf-lookup", test_vf_lookup);
  g_test_add_func("/sriov/mac-json", test_mac_json);
  g_test_add_func("/sriov/netlink-messages", test_netlink_messages);
  g_test_add_func("/sriov/netlink-kernel", test_netlink_kernel);
  return g_test_run();
}
