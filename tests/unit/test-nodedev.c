/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-nodedev.c - the inventory: node device names, XML (validated with
 * xmllint against libvirt's nodedev.rng for every device of the fixture),
 * JSON and the IOMMU group tree
 */
#include "host-fixture.h"
#include "host-pci.h"
#include "mdev.h"
#include "nodedev.h"

#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

typedef struct {
  char *root;
  FakeKernel *fake;
} Tree;

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

static char *
joined(GPtrArray *names)
{
  g_ptr_array_add(names, NULL);
  return g_strjoinv(" ", (char **)names->pdata);
}

static void
test_names(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) all = nodedev_list_names(NODEDEV_CAP_ANY, &error);
  g_autoptr(GPtrArray) pci = nodedev_list_names(NODEDEV_CAP_PCI, &error);
  g_autoptr(GPtrArray) usb = nodedev_list_names(NODEDEV_CAP_USB_DEVICE, &error);
  g_autoptr(GPtrArray) mdevs = nodedev_list_names(NODEDEV_CAP_MDEV, &error);
  g_autofree char *usb_text = NULL;
  NodedevCap cap;

  g_assert_no_error(error);
  g_assert_cmpuint(all->len, ==, 22);
  g_assert_cmpuint(pci->len, ==, 19);
  g_assert_cmpstr(pci->pdata[0], ==, "pci_0000_00_00_0");
  g_assert_cmpstr(pci->pdata[18], ==, "pci_0000_05_00_1");
  usb_text = joined(usb);
  g_assert_cmpstr(usb_text, ==, "usb_1_1 usb_usb1 usb_usb2");
  g_assert_cmpuint(mdevs->len, ==, 0);

  g_assert_true(nodedev_cap_parse("usb_device", &cap, &error));
  g_assert_cmpint(cap, ==, NODEDEV_CAP_USB_DEVICE);
  g_assert_false(nodedev_cap_parse("net", &cap, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "unknown capability 'net': use pci, usb_device or mdev");
}

static void
test_pci_xml(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *vf = NULL;
  g_autofree char *by_address = NULL;

  fixture_write(tree->root, "usr/share/misc/pci.ids",
                "# test\n8086  Intel Corporation\n\t10d3  82574L Gigabit Network Connection\n"
                "\t\t8086 0000  Subsystem line\n1b36  Red Hat, Inc.\n\t0010  QEMU NVM Express "
                "Controller\nC 02  Network controller\n\t00  Ethernet controller\n");
  xml = nodedev_dumpxml("pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_cmpstr(xml, ==,
    "<device>\n"
    "  <name>pci_0000_01_00_0</name>\n"
    "  <path>/sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0</path>\n"
    "  <parent>pci_0000_00_03_0</parent>\n"
    "  <driver>\n"
    "    <name>e1000e</name>\n"
    "  </driver>\n"
    "  <capability type='pci'>\n"
    "    <class>0x020000</class>\n"
    "    <domain>0</domain>\n"
    "    <bus>1</bus>\n"
    "    <slot>0</slot>\n"
    "    <function>0</function>\n"
    "    <product id='0x10d3'>82574L Gigabit Network Connection</product>\n"
    "    <vendor id='0x8086'>Intel Corporation</vendor>\n"
    "    <iommuGroup number='9'>\n"
    "      <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n"
    "    </iommuGroup>\n"
    "    <pci-express>\n"
    "      <link validity='cap' speed='2.5' width='1'/>\n"
    "      <link validity='sta' speed='2.5' width='1'/>\n"
    "    </pci-express>\n"
    "  </capability>\n"
    "</device>\n");

  vf = nodedev_dumpxml("pci_0000_02_00_1", &error);
  g_assert_no_error(error);
  g_assert_nonnull(strstr(vf, "    <product id='0x0010'>QEMU NVM Express Controller</product>\n"
                              "    <vendor id='0x1b36'>Red Hat, Inc.</vendor>\n"
                              "    <capability type='phys_function'>\n"
                              "      <address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>\n"
                              "    </capability>\n"));
  g_assert_null(strstr(vf, "<driver>"));

  /* an address is accepted too, as virsh accepts only names: a convenience */
  by_address = nodedev_dumpxml("0000:04:01.0", &error);
  g_assert_no_error(error);
  g_assert_nonnull(strstr(by_address,
    "    <iommuGroup number='11'>\n"
    "      <address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>\n"
    "      <address domain='0x0000' bus='0x04' slot='0x01' function='0x0'/>\n"
    "      <address domain='0x0000' bus='0x04' slot='0x02' function='0x0'/>\n"
    "    </iommuGroup>\n"));
  g_assert_nonnull(strstr(by_address, "<parent>pci_0000_03_00_0</parent>"));
}

static void
test_pf_xml(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = nodedev_dumpxml("pci_0000_02_00_0", &error);

  g_assert_no_error(error);
  g_assert_nonnull(strstr(xml,
    "    <capability type='virt_functions' maxCount='2'>\n"
    "      <address domain='0x0000' bus='0x02' slot='0x00' function='0x1'/>\n"
    "    </capability>\n"));
}

static void
test_usb_xml(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = nodedev_dumpxml("usb_1_1", &error);
  g_autofree char *hub = NULL;
  g_autofree char *named = NULL;

  g_assert_no_error(error);
  g_assert_cmpstr(xml, ==,
    "<device>\n"
    "  <name>usb_1_1</name>\n"
    "  <path>/sys/devices/pci0000:00/0000:00:07.0/usb1/1-1</path>\n"
    "  <devnode type='dev'>/dev/bus/usb/001/002</devnode>\n"
    "  <parent>usb_usb1</parent>\n"
    "  <driver>\n"
    "    <name>usb</name>\n"
    "  </driver>\n"
    "  <capability type='usb_device'>\n"
    "    <bus>1</bus>\n"
    "    <device>2</device>\n"
    "    <product id='0x0001'>QEMU USB Keyboard</product>\n"
    "    <vendor id='0x0627'>QEMU</vendor>\n"
    "    <hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' port='1-1' "
    "serial='68284-0000:00:07.0-1'/>\n"
    "  </capability>\n"
    "</device>\n");
  hub = nodedev_dumpxml("usb_usb1", &error);
  g_assert_no_error(error);
  g_assert_nonnull(strstr(hub, "<parent>pci_0000_00_07_0</parent>"));
  /* a root hub: the serial only */
  g_assert_nonnull(strstr(hub, "<hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' "
                               "serial='0000:00:07.0'/>"));

  /* usb.ids wins over the device's own strings, as udev's hwdb does */
  fixture_write(tree->root, "usr/share/misc/usb.ids",
                "0627  Adomax Technology Co., Ltd\n\t0001  QEMU Tablet <&>\n");
  named = nodedev_dumpxml("usb_1_1", &error);
  g_assert_nonnull(strstr(named, "<product id='0x0001'>QEMU Tablet &lt;&amp;&gt;</product>"));
  g_assert_nonnull(strstr(named, "<vendor id='0x0627'>Adomax Technology Co., Ltd</vendor>"));
}

static void
test_xml_errors(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_null(nodedev_dumpxml("pci_0000_09_00_0", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "no node device 'pci_0000_09_00_0' on this host; list them with "
                        "`hostdevctl nodedev-list`");
  g_clear_error(&error);
  g_assert_null(nodedev_dumpxml("pci_0000_01_00_9", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "'pci_0000_01_00_9' is not a PCI node device name: expected "
                        "pci_DDDD_BB_SS_F");
  g_clear_error(&error);
  g_assert_null(nodedev_dumpxml("usb_9_9", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND, "no node device 'usb_9_9'");
  g_clear_error(&error);
  g_assert_null(nodedev_dumpxml("", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "a node device name is 1-128 characters");
  g_clear_error(&error);
  g_assert_null(nodedev_dumpxml("net_eth0", &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND, "no node device 'net_eth0'");
}

/* An mdev parent and one instance, for their XML. */
static void
add_mdev(Tree *tree)
{
  const char *base = "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0/mdev_supported_types/nvidia-63";
  g_autofree char *name = g_strconcat(base, "/name", NULL);
  g_autofree char *api = g_strconcat(base, "/device_api", NULL);
  g_autofree char *avail = g_strconcat(base, "/available_instances", NULL);
  g_autofree char *create = g_strconcat(base, "/create", NULL);
  g_autoptr(GError) error = NULL;

  fixture_write(tree->root, name, "GRID P4-1Q\n");
  fixture_write(tree->root, api, "vfio-pci\n");
  fixture_write(tree->root, avail, "4\n");
  fixture_write(tree->root, create, "");
  fixture_link(tree->root, "sys/class/mdev_bus/0000:01:00.0",
               "../../devices/pci0000:00/0000:00:03.0/0000:01:00.0");
  fixture_mkdir(tree->root, "sys/bus/mdev/devices");
  g_assert_true(mdev_create("0000:01:00.0", "nvidia-63",
                            "4b20d080-1b54-4048-85b3-a6a62d165c01", &error));
  g_assert_no_error(error);
}

static void
test_mdev_xml(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = NULL;
  g_autofree char *xml = NULL;
  g_autoptr(GPtrArray) names = NULL;

  add_mdev(tree);
  parent = nodedev_dumpxml("pci_0000_01_00_0", &error);
  g_assert_no_error(error);
  g_assert_nonnull(strstr(parent,
    "    <capability type='mdev_types'>\n"
    "      <type id='nvidia-63'>\n"
    "        <name>GRID P4-1Q</name>\n"
    "        <deviceAPI>vfio-pci</deviceAPI>\n"
    "        <availableInstances>3</availableInstances>\n"
    "      </type>\n"
    "    </capability>\n"));
  names = nodedev_list_names(NODEDEV_CAP_MDEV, &error);
  g_assert_cmpuint(names->len, ==, 1);
  g_assert_cmpstr(names->pdata[0], ==, "mdev_4b20d080_1b54_4048_85b3_a6a62d165c01");
  xml = nodedev_dumpxml(names->pdata[0], &error);
  g_assert_no_error(error);
  g_assert_cmpstr(xml, ==,
    "<device>\n"
    "  <name>mdev_4b20d080_1b54_4048_85b3_a6a62d165c01</name>\n"
    "  <path>/sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0/"
    "4b20d080-1b54-4048-85b3-a6a62d165c01</path>\n"
    "  <parent>pci_0000_01_00_0</parent>\n"
    "  <capability type='mdev'>\n"
    "    <type id='nvidia-63'/>\n"
    "    <uuid>4b20d080-1b54-4048-85b3-a6a62d165c01</uuid>\n"
    "  </capability>\n"
    "</device>\n");
}

/* Remove hostdevd's extension elements below @node.
 * Return: how many were removed. */
static guint
strip_extensions(xmlNode *node)
{
  guint removed = 0;
  xmlNode *next;

  for (xmlNode *child = node->children; child != NULL; child = next) {
    next = child->next;
    if (child->type == XML_ELEMENT_NODE && child->ns != NULL &&
        g_str_has_prefix((const char *)child->ns->href, "urn:hostdevd:")) {
      xmlUnlinkNode(child);
      xmlFreeNode(child);
      removed++;
    } else {
      removed += strip_extensions(child);
    }
  }
  return removed;
}

/* Return: (transfer full): @xml without hostdevd's extension, which
 * libvirt's schema does not know; *@removed counts the elements. */
static char *
without_extensions(const char *xml, guint *removed)
{
  xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL, XML_PARSE_NONET);
  xmlChar *text = NULL;
  int length = 0;
  char *copy;

  g_assert_nonnull(doc);
  *removed += strip_extensions(xmlDocGetRootElement(doc));
  xmlDocDumpMemory(doc, &text, &length);
  copy = g_strndup((const char *)text, (gsize)length);
  xmlFree(text);
  xmlFreeDoc(doc);
  return copy;
}

/* Every device's XML against libvirt's schema, hostdevd's extension (the
 * USB selector, usb-selector.h) taken out. */
static void
test_validate_all(Tree *tree, gconstpointer data)
{
  const char *xmllint = g_getenv("XMLLINT");
  const char *rng = g_getenv("NODEDEV_RNG");
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) names = NULL;
  g_autofree char *dir = g_dir_make_tmp("hostdevd-nodedev-XXXXXX", &error);
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status = 0;
  guint extensions = 0;

  if (xmllint == NULL || *xmllint == '\0' || rng == NULL ||
      !g_file_test(rng, G_FILE_TEST_EXISTS)) {
    g_test_skip("xmllint or libvirt's nodedev.rng is not installed "
                "(contrib/install-deps.sh installs libxml2-utils and libvirt0)");
    fixture_remove(dir);
    return;
  }
  add_mdev(tree);
  fixture_write(tree->root, "usr/share/misc/pci.ids",
                "8086  Intel Corporation\n\t10d3  82574L Gigabit Network Connection\n");
  names = nodedev_list_names(NODEDEV_CAP_ANY, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(names->len, ==, 23);

  g_ptr_array_add(argv, g_strdup(xmllint));
  g_ptr_array_add(argv, g_strdup("--noout"));
  g_ptr_array_add(argv, g_strdup("--relaxng"));
  g_ptr_array_add(argv, g_strdup(rng));
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *xml = nodedev_dumpxml(names->pdata[i], &error);
    g_autofree char *file = g_strdup_printf("%s/%s.xml", dir, (char *)names->pdata[i]);
    g_autofree char *plain = NULL;

    g_assert_no_error(error);
    plain = without_extensions(xml, &extensions);
    g_assert_true(g_file_set_contents(file, plain, -1, &error));
    g_ptr_array_add(argv, g_steal_pointer(&file));
  }
  /* usb1, 1-1 and usb2 all have serials */
  g_assert_cmpuint(extensions, ==, 3);
  g_ptr_array_add(argv, NULL);
  g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
               &out, &err, &status, &error);
  g_assert_no_error(error);
  g_test_message("%s", err);
  g_spawn_check_wait_status(status, &error);
  g_assert_no_error(error);
  /* one "validates" line per device */
  {
    guint validated = 0;
    for (const char *p = err; (p = strstr(p, " validates")) != NULL; p++)
      validated++;
    g_assert_cmpuint(validated, ==, names->len);
  }
  fixture_remove(dir);
}

static JsonObject *
find_device(JsonArray *array, const char *name)
{
  for (guint i = 0; i < json_array_get_length(array); i++) {
    JsonObject *object = json_array_get_object_element(array, i);

    if (g_strcmp0(json_object_get_string_member(object, "name"), name) == 0)
      return object;
  }
  g_error("no %s in the inventory", name);
  return NULL;
}

static void
test_json(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) all = nodedev_inventory_json(NODEDEV_CAP_ANY, &error);
  g_autoptr(JsonArray) usb_only = nodedev_inventory_json(NODEDEV_CAP_USB_DEVICE, &error);
  JsonObject *pf, *vf, *e1000, *kbd;
  JsonArray *members;

  g_assert_no_error(error);
  g_assert_cmpuint(json_array_get_length(all), ==, 22);
  g_assert_cmpuint(json_array_get_length(usb_only), ==, 3);

  pf = find_device(all, "pci_0000_02_00_0");
  g_assert_cmpstr(json_object_get_string_member(pf, "capability"), ==, "pci");
  g_assert_cmpstr(json_object_get_string_member(pf, "address"), ==, "0000:02:00.0");
  g_assert_cmpstr(json_object_get_string_member(pf, "vendor_id"), ==, "0x1b36");
  g_assert_cmpstr(json_object_get_string_member(pf, "product_id"), ==, "0x0010");
  g_assert_cmpstr(json_object_get_string_member(pf, "class"), ==, "0x010802");
  g_assert_cmpstr(json_object_get_string_member(pf, "driver"), ==, "nvme");
  g_assert_cmpint(json_object_get_int_member(pf, "totalvfs"), ==, 2);
  g_assert_cmpint(json_object_get_int_member(pf, "numvfs"), ==, 1);
  g_assert_cmpstr(json_array_get_string_element(json_object_get_array_member(pf, "virtfns"), 0),
                  ==, "0000:02:00.1");
  g_assert_true(json_object_get_null_member(pf, "physfn"));
  g_assert_cmpstr(json_object_get_string_member(pf, "parent"), ==, "pci_0000_00_04_0");

  vf = find_device(all, "pci_0000_02_00_1");
  g_assert_cmpstr(json_object_get_string_member(vf, "physfn"), ==, "0000:02:00.0");
  g_assert_true(json_object_get_null_member(vf, "driver"));
  g_assert_cmpint(json_object_get_int_member(vf, "iommu_group"), ==, 13);
  g_assert_true(json_object_get_null_member(vf, "totalvfs"));

  e1000 = find_device(all, "pci_0000_04_01_0");
  members = json_object_get_array_member(e1000, "iommu_group_members");
  g_assert_cmpuint(json_array_get_length(members), ==, 3);
  g_assert_cmpstr(json_array_get_string_element(members, 0), ==, "0000:03:00.0");
  g_assert_cmpstr(json_array_get_string_element(json_object_get_array_member(e1000, "net"), 0),
                  ==, "eth3");

  kbd = find_device(all, "usb_1_1");
  g_assert_cmpstr(json_object_get_string_member(kbd, "capability"), ==, "usb_device");
  g_assert_cmpint(json_object_get_int_member(kbd, "bus"), ==, 1);
  g_assert_cmpint(json_object_get_int_member(kbd, "device"), ==, 2);
  g_assert_cmpstr(json_object_get_string_member(kbd, "port"), ==, "1-1");
  g_assert_cmpstr(json_object_get_string_member(kbd, "vendor_id"), ==, "0x0627");
  g_assert_cmpstr(json_object_get_string_member(kbd, "product_name"), ==, "QEMU USB Keyboard");
  g_assert_cmpstr(json_object_get_string_member(kbd, "devnode"), ==, "/dev/bus/usb/001/002");
  g_assert_cmpstr(json_object_get_string_member(kbd, "parent"), ==, "usb_usb1");
  g_assert_cmpstr(json_object_get_string_member(kbd, "serial"), ==, "68284-0000:00:07.0-1");
  /* a root hub has no port path */
  g_assert_true(json_object_get_null_member(find_device(all, "usb_usb1"), "port"));
}

static void
test_tree(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = nodedev_format_tree(NODEDEV_CAP_ANY, &error);
  g_autofree char *usb = nodedev_format_tree(NODEDEV_CAP_USB_DEVICE, &error);

  g_assert_no_error(error);
  g_test_message("%s", text);
  g_assert_nonnull(strstr(text,
    "IOMMU group 11 (3 devices): held by host drivers: 0000:04:01.0 on e1000, "
    "0000:04:02.0 on e1000\n"
    "  0000:03:00.0  PCI bridge [0604] 1b36:000e  driver: none (bridge: exempt)\n"
    "  0000:04:01.0  Ethernet controller [0200] 8086:100e  driver: e1000\n"
    "  0000:04:02.0  Ethernet controller [0200] 8086:100e  driver: e1000\n"));
  g_assert_nonnull(strstr(text,
    "IOMMU group 12 (2 devices): held by host drivers: 0000:05:00.0 on e1000e\n"));
  g_assert_nonnull(strstr(text,
    "  0000:05:00.1  Ethernet controller [0200] 8086:10d3  driver: vfio-pci "
    "(driver_override=vfio-pci)\n"));
  g_assert_nonnull(strstr(text,
    "IOMMU group 13 (1 device): ready for VFIO\n"
    "  0000:02:00.1  NVMe controller [0108] 1b36:0010  driver: none (VF of 0000:02:00.0)\n"));
  g_assert_nonnull(strstr(text, "driver: nvme (SR-IOV PF 1/2 VFs)"));
  g_assert_null(strstr(usb, "IOMMU"));
  g_assert_nonnull(strstr(usb, "USB bus 1 (pci_0000_00_07_0)\n"
                               "  usb_usb1  bus 1 device 1  1d6b:0002"));
  g_assert_nonnull(strstr(usb, "    usb_1_1  bus 1 device 2  0627:0001 QEMU QEMU USB "
                               "Keyboard  port 1-1  serial '68284-0000:00:07.0-1'  "
                               "driver: usb\n"));
  /* a root hub has no port path; its serial is its controller's address */
  g_assert_nonnull(strstr(usb, "xHCI Host Controller  port none  serial '0000:00:07.0'  "
                               "driver: usb\n"));
}

/* Serials are the device's: shown escaped, and absent ones say so. */
static void
test_tree_odd_serial(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *usb = NULL;
  g_autofree char *xml = NULL;

  fixture_write(tree->root, "sys/bus/usb/devices/1-1/serial", "it's <red>\n");
  usb = nodedev_format_tree(NODEDEV_CAP_USB_DEVICE, &error);
  g_assert_no_error(error);
  g_assert_nonnull(strstr(usb, "port 1-1  serial 'it\\x27s <red>'  driver: usb\n"));
  xml = nodedev_dumpxml("usb_1_1", &error);
  g_assert_no_error(error);
  g_assert_nonnull(strstr(xml, " port='1-1' serial='it&apos;s &lt;red&gt;'/>\n"));
  g_clear_pointer(&usb, g_free);
  g_clear_pointer(&xml, g_free);

  /* a terminal escape: shown escaped, and no selector (XML 1.0 has no
   * control characters, and usb_serial_check() refuses them) */
  fixture_write(tree->root, "sys/bus/usb/devices/1-1/serial", "x\x1b[31m\n");
  usb = nodedev_format_tree(NODEDEV_CAP_USB_DEVICE, &error);
  g_assert_nonnull(strstr(usb, "port 1-1  serial 'x\\x1b[31m'  driver: usb\n"));
  xml = nodedev_dumpxml("usb_1_1", &error);
  g_assert_nonnull(strstr(xml, " port='1-1'/>\n"));
  g_clear_pointer(&usb, g_free);

  fixture_unlink(tree->root, "sys/bus/usb/devices/1-1/serial");
  usb = nodedev_format_tree(NODEDEV_CAP_USB_DEVICE, &error);
  g_assert_nonnull(strstr(usb, "port 1-1  serial none  driver: usb\n"));
}

static void
test_pci_device_read(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  const PciAddress addr = { 0, 1, 0, 0 };
  g_autoptr(HostPciDevice) device = host_pci_device_read(&addr, &error);
  PciAddress parsed;

  g_assert_no_error(error);
  g_assert_cmpstr(device->sysfs_path, ==, "/sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0");
  g_assert_true(device->has_parent);
  g_assert_cmpuint(device->parent.slot, ==, 3);
  g_assert_cmpuint(device->subsystem_vendor, ==, 0x8086);
  g_assert_cmpint(device->numa_node, ==, -1);
  g_assert_cmpstr(device->max_link_speed, ==, "2.5");
  g_assert_null(device->driver_override);

  g_assert_true(pci_address_parse_nodedev("pci_0000_05_00_1", &parsed, &error));
  g_assert_cmpuint(parsed.function, ==, 1);
  g_assert_false(pci_address_parse_nodedev("pci_0000_05_00", &parsed, &error));
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "'pci_0000_05_00' is not a PCI node device name");
  g_clear_error(&error);
  g_assert_false(pci_address_parse_nodedev("pci_0000_05_20_0", &parsed, &error));
  g_clear_error(&error);
  g_assert_false(pci_address_parse_nodedev("pci_10000_05_00_0", &parsed, &error));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define TREE_TEST(path, func) \
  g_test_add("/nodedev/" path, Tree, NULL, tree_setup, func, tree_teardown)
  TREE_TEST("names", test_names);
  TREE_TEST("pci-xml", test_pci_xml);
  TREE_TEST("pf-xml", test_pf_xml);
  TREE_TEST("usb-xml", test_usb_xml);
  TREE_TEST("mdev-xml", test_mdev_xml);
  TREE_TEST("xml-errors", test_xml_errors);
  TREE_TEST("validate-all", test_validate_all);
  TREE_TEST("json", test_json);
  TREE_TEST("tree", test_tree);
  TREE_TEST("tree-odd-serial", test_tree_odd_serial);
  TREE_TEST("pci-device-read", test_pci_device_read);
  return g_test_run();
}
