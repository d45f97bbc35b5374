/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nodedev.c - host device inventory: libvirt node device names and XML,
 * JSON, and the IOMMU group tree
 *
 * libvirt takes vendor and product names from udev's hwdb, which is built
 * from pci.ids and usb.ids; we read those files directly (under the host
 * root, so fixtures can carry their own), and fall back to the USB
 * device's own strings like libvirt does.  Without the files a PCI device
 * has ids only, as libvirt shows it without hwdb.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "nodedev.h"
#include "host-pci.h"
#include "host-root.h"
#include "host-usb.h"
#include "usb-selector.h"
#include "hostdevd-error.h"
#include "mdev.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* pci.ids / usb.ids                                                   */

#define IDS_MAX_SIZE (16 * 1024 * 1024)

typedef struct {
  char *path;          /* the file loaded, to reload when the root changes */
  GHashTable *names;   /* "8086" → vendor, "8086:10d3" → device */
} IdsDatabase;

static IdsDatabase pci_ids;
static IdsDatabase usb_ids;

/* Load "VVVV  name" / "\tDDDD  name" lines up to the first class section. */
static void
ids_load(IdsDatabase *db, const char *const *candidates)
{
  g_autofree char *found = NULL;
  g_autofree char *text = NULL;
  char vendor[5] = "";
  gsize length = 0;

  for (guint i = 0; candidates[i] && found == NULL; i++) {
    char *path = host_path("%s", candidates[i]);

    if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
      found = path;
    else
      g_free(path);
  }
  if (db->names != NULL && g_strcmp0(db->path, found) == 0)
    return;
  g_clear_pointer(&db->names, g_hash_table_unref);
  g_clear_pointer(&db->path, g_free);
  db->names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  if (found == NULL)
    return;
  db->path = g_strdup(found);
  if (!g_file_get_contents(found, &text, &length, NULL) || length > IDS_MAX_SIZE)
    return;

  /* Walk the lines in place: g_strsplit() searches the rest of the text
   * for every line, which sanitizer builds make quadratic (their strstr
   * measures the whole haystack each time). */
  for (char *line = text, *next; line != NULL; line = next) {
    char *end = memchr(line, '\n', length - (gsize)(line - text));
    char *name;

    next = end ? end + 1 : NULL;
    if (end)
      *end = '\0';
    if (line[0] == '#' || line[0] == '\0')
      continue;
    if (line[0] == 'C' && line[1] == ' ')
      break; /* device classes follow; not ids */
    if (g_ascii_isxdigit(line[0]) && strlen(line) > 6 && line[4] == ' ') {
      memcpy(vendor, line, 4);
      vendor[4] = '\0';
      name = g_utf8_make_valid(g_strstrip(line + 5), -1);
      g_hash_table_replace(db->names, g_ascii_strdown(vendor, -1), name);
    } else if (line[0] == '\t' && line[1] != '\t' && vendor[0] != '\0' &&
               strlen(line) > 7 && line[5] == ' ') {
      g_autofree char *device = g_strndup(line + 1, 4);
      g_autofree char *key = g_strdup_printf("%s:%s", vendor, device);

      name = g_utf8_make_valid(g_strstrip(line + 6), -1);
      g_hash_table_replace(db->names, g_ascii_strdown(key, -1), name);
    }
  }
}

static const char *
ids_vendor(IdsDatabase *db, guint vendor)
{
  char key[8];

  g_snprintf(key, sizeof(key), "%04x", vendor);
  return db->names ? g_hash_table_lookup(db->names, key) : NULL;
}

static const char *
ids_product(IdsDatabase *db, guint vendor, guint product)
{
  char key[16];

  g_snprintf(key, sizeof(key), "%04x:%04x", vendor, product);
  return db->names ? g_hash_table_lookup(db->names, key) : NULL;
}

static void
ids_load_all(void)
{
  static const char *const pci_paths[] = {
    "usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", NULL,
  };
  static const char *const usb_paths[] = {
    "usr/share/misc/usb.ids", "var/lib/usbutils/usb.ids",
    "usr/share/hwdata/usb.ids", NULL,
  };

  ids_load(&pci_ids, pci_paths);
  ids_load(&usb_ids, usb_paths);
}

/* ------------------------------------------------------------------ */
/* Names                                                               */

gboolean
nodedev_cap_parse(const char *text, NodedevCap *cap, GError **error)
{
  if (g_strcmp0(text, "pci") == 0)
    *cap = NODEDEV_CAP_PCI;
  else if (g_strcmp0(text, "usb_device") == 0)
    *cap = NODEDEV_CAP_USB_DEVICE;
  else if (g_strcmp0(text, "mdev") == 0)
    *cap = NODEDEV_CAP_MDEV;
  else {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "unknown capability '%s': use pci, usb_device or mdev",
                text ? text : "");
    return FALSE;
  }
  return TRUE;
}

char *
nodedev_usb_name(const char *sysfs_name)
{
  char *name = g_strconcat("usb_", sysfs_name, NULL);

  for (char *p = name + 4; *p; p++)
    if (!g_ascii_isalnum(*p))
      *p = '_';
  return name;
}

static char *
mdev_name(const char *uuid)
{
  char *name = g_strconcat("mdev_", uuid, NULL);

  g_strdelimit(name + 5, "-", '_');
  return name;
}

/* Return: (transfer full): the node device name of the device whose
 * sysfs directory is @rel (relative to the host root), "computer" for
 * anything that is not a device we name. */
static char *
parent_of(const char *rel)
{
  g_autofree char *dir = g_path_get_dirname(rel);
  g_autofree char *base = g_path_get_basename(dir);
  g_autofree char *usb = host_path("sys/bus/usb/devices/%s/busnum", base);
  PciAddress addr;

  if (pci_address_parse(base, &addr, NULL))
    return pci_address_nodedev_name(&addr);
  if (strchr(base, ':') == NULL && g_file_test(usb, G_FILE_TEST_EXISTS))
    return nodedev_usb_name(base);
  return g_strdup("computer");
}

/* USB devices with what the inventory needs beyond HostUsbDevice. */
typedef struct {
  HostUsbDevice *usb;
  char *name;
  char *path;       /* "/sys/devices/..." */
  char *parent;
  char *driver;
} UsbEntry;

static void
usb_entry_free(UsbEntry *entry)
{
  host_usb_device_free(entry->usb);
  g_free(entry->name);
  g_free(entry->path);
  g_free(entry->parent);
  g_free(entry->driver);
  g_free(entry);
}

static GPtrArray *
usb_entries(GError **error)
{
  g_autoptr(GPtrArray) devices = host_usb_list(error);
  GPtrArray *entries;

  if (devices == NULL)
    return NULL;
  entries = g_ptr_array_new_with_free_func((GDestroyNotify)usb_entry_free);
  for (guint i = 0; i < devices->len; i++) {
    UsbEntry *entry = g_new0(UsbEntry, 1);
    g_autofree char *link = NULL;
    g_autofree char *rel = NULL;
    g_autofree char *driver = NULL;

    entry->usb = g_steal_pointer(&devices->pdata[i]);
    entry->name = nodedev_usb_name(entry->usb->sysfs_name);
    link = g_strdup_printf("sys/bus/usb/devices/%s", entry->usb->sysfs_name);
    rel = host_resolve_link(link, NULL);
    entry->path = rel ? g_strconcat("/", rel, NULL) : g_strconcat("/", link, NULL);
    entry->parent = rel ? parent_of(rel) : g_strdup("computer");
    driver = host_path("sys/bus/usb/devices/%s/driver", entry->usb->sysfs_name);
    entry->driver = host_read_link_name(driver, NULL);
    g_ptr_array_add(entries, entry);
  }
  return entries;
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
  return g_strcmp0(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *
nodedev_list_names(NodedevCap cap, GError **error)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

  if (cap == NODEDEV_CAP_ANY || cap == NODEDEV_CAP_PCI) {
    g_autoptr(GPtrArray) pci = host_pci_list(error);

    if (pci == NULL)
      return NULL;
    for (guint i = 0; i < pci->len; i++)
      g_ptr_array_add(names, pci_address_nodedev_name(&((HostPciDevice *)pci->pdata[i])->addr));
  }
  if (cap == NODEDEV_CAP_ANY || cap == NODEDEV_CAP_USB_DEVICE) {
    g_autoptr(GPtrArray) usb = host_usb_list(error);

    if (usb == NULL)
      return NULL;
    for (guint i = 0; i < usb->len; i++)
      g_ptr_array_add(names, nodedev_usb_name(((HostUsbDevice *)usb->pdata[i])->sysfs_name));
  }
  if (cap == NODEDEV_CAP_ANY || cap == NODEDEV_CAP_MDEV) {
    g_autoptr(GPtrArray) mdevs = mdev_list_devices(error);

    if (mdevs == NULL)
      return NULL;
    for (guint i = 0; i < mdevs->len; i++)
      g_ptr_array_add(names, mdev_name(((MdevDevice *)mdevs->pdata[i])->uuid));
  }
  g_ptr_array_sort(names, compare_names);
  return g_steal_pointer(&names);
}

/* ------------------------------------------------------------------ */
/* XML                                                                 */

static void
xml_text(GString *out, int indent, const char *element, const char *text)
{
  g_autofree char *escaped = g_markup_escape_text(text, -1);

  g_string_append_printf(out, "%*s<%s>%s</%s>\n", indent, "", element, escaped, element);
}

static void
xml_address(GString *out, int indent, const PciAddress *addr)
{
  g_string_append_printf(out, "%*s<address domain='0x%04x' bus='0x%02x' "
                         "slot='0x%02x' function='0x%x'/>\n", indent, "",
                         addr->domain, addr->bus, addr->slot, addr->function);
}

static void
xml_id_name(GString *out, const char *element, guint id, const char *name)
{
  if (name != NULL) {
    g_autofree char *escaped = g_markup_escape_text(name, -1);
    g_string_append_printf(out, "    <%s id='0x%04x'>%s</%s>\n", element, id, escaped, element);
  } else {
    g_string_append_printf(out, "    <%s id='0x%04x'/>\n", element, id);
  }
}

static void
xml_mdev_types(GString *out, const char *parent)
{
  g_autoptr(GPtrArray) types = mdev_list_types(parent, NULL);

  if (types == NULL || types->len == 0)
    return;
  g_string_append(out, "    <capability type='mdev_types'>\n");
  for (guint i = 0; i < types->len; i++) {
    const MdevType *type = types->pdata[i];
    g_autofree char *id = g_markup_escape_text(type->id, -1);

    g_string_append_printf(out, "      <type id='%s'>\n", id);
    if (type->name)
      xml_text(out, 8, "name", type->name);
    xml_text(out, 8, "deviceAPI", type->device_api ? type->device_api : "vfio-pci");
    g_string_append_printf(out, "        <availableInstances>%u</availableInstances>\n",
                           type->available);
    g_string_append(out, "      </type>\n");
  }
  g_string_append(out, "    </capability>\n");
}

static char *
pci_xml(const PciAddress *addr, GError **error)
{
  g_autoptr(HostPciDevice) device = host_pci_device_read(addr, error);
  g_autoptr(GString) out = NULL;
  g_autofree char *name = NULL;

  if (device == NULL)
    return NULL;
  ids_load_all();
  out = g_string_new("<device>\n");
  name = pci_address_nodedev_name(addr);
  xml_text(out, 2, "name", name);
  xml_text(out, 2, "path", device->sysfs_path);
  if (device->has_parent) {
    g_autofree char *parent = pci_address_nodedev_name(&device->parent);
    xml_text(out, 2, "parent", parent);
  } else {
    xml_text(out, 2, "parent", "computer");
  }
  if (device->driver) {
    g_string_append(out, "  <driver>\n");
    xml_text(out, 4, "name", device->driver);
    g_string_append(out, "  </driver>\n");
  }
  g_string_append(out, "  <capability type='pci'>\n");
  g_string_append_printf(out, "    <class>0x%06x</class>\n", device->class_code);
  g_string_append_printf(out, "    <domain>%u</domain>\n    <bus>%u</bus>\n"
                         "    <slot>%u</slot>\n    <function>%u</function>\n",
                         addr->domain, addr->bus, addr->slot, addr->function);
  xml_id_name(out, "product", device->device,
              ids_product(&pci_ids, device->vendor, device->device));
  xml_id_name(out, "vendor", device->vendor, ids_vendor(&pci_ids, device->vendor));
  if (device->is_virtfn) {
    g_string_append(out, "    <capability type='phys_function'>\n");
    xml_address(out, 6, &device->physfn);
    g_string_append(out, "    </capability>\n");
  }
  if (device->is_sriov_pf) {
    if (device->virtfns->len == 0) {
      g_string_append_printf(out, "    <capability type='virt_functions' maxCount='%u'/>\n",
                             device->totalvfs);
    } else {
      g_string_append_printf(out, "    <capability type='virt_functions' maxCount='%u'>\n",
                             device->totalvfs);
      for (guint i = 0; i < device->virtfns->len; i++)
        xml_address(out, 6, &g_array_index(device->virtfns, PciAddress, i));
      g_string_append(out, "    </capability>\n");
    }
  }
  xml_mdev_types(out, device->name);
  if (device->iommu_group >= 0) {
    g_autoptr(GArray) members = host_pci_iommu_group_members(device->iommu_group, NULL);

    if (members != NULL && members->len > 0) {
      g_string_append_printf(out, "    <iommuGroup number='%d'>\n", device->iommu_group);
      for (guint i = 0; i < members->len; i++)
        xml_address(out, 6, &g_array_index(members, PciAddress, i));
      g_string_append(out, "    </iommuGroup>\n");
    }
  }
  if (device->numa_node >= 0)
    g_string_append_printf(out, "    <numa node='%d'/>\n", device->numa_node);
  if (device->max_link_speed || device->cur_link_speed) {
    g_string_append(out, "    <pci-express>\n");
    if (device->max_link_speed)
      g_string_append_printf(out, "      <link validity='cap' speed='%s' width='%u'/>\n",
                             device->max_link_speed, device->max_link_width);
    if (device->cur_link_speed)
      g_string_append_printf(out, "      <link validity='sta' speed='%s' width='%u'/>\n",
                             device->cur_link_speed, device->cur_link_width);
    g_string_append(out, "    </pci-express>\n");
  }
  g_string_append(out, "  </capability>\n</device>\n");
  return g_string_free(g_steal_pointer(&out), FALSE);
}

static const char *
usb_vendor_name(const UsbEntry *entry)
{
  const char *name = ids_vendor(&usb_ids, entry->usb->vendor);

  return name ? name : entry->usb->manufacturer;
}

static const char *
usb_product_name(const UsbEntry *entry)
{
  const char *name = ids_product(&usb_ids, entry->usb->vendor, entry->usb->product);

  return name ? name : entry->usb->product_name;
}

static char *
usb_xml(const UsbEntry *entry)
{
  GString *out = g_string_new("<device>\n");
  g_autofree char *devnode = g_strdup_printf("/dev/bus/usb/%03u/%03u",
                                             entry->usb->bus, entry->usb->device);

  ids_load_all();
  xml_text(out, 2, "name", entry->name);
  xml_text(out, 2, "path", entry->path);
  g_string_append_printf(out, "  <devnode type='dev'>%s</devnode>\n", devnode);
  xml_text(out, 2, "parent", entry->parent);
  if (entry->driver) {
    g_string_append(out, "  <driver>\n");
    xml_text(out, 4, "name", entry->driver);
    g_string_append(out, "  </driver>\n");
  }
  g_string_append(out, "  <capability type='usb_device'>\n");
  g_string_append_printf(out, "    <bus>%u</bus>\n    <device>%u</device>\n",
                         entry->usb->bus, entry->usb->device);
  xml_id_name(out, "product", entry->usb->product, usb_product_name(entry));
  xml_id_name(out, "vendor", entry->usb->vendor, usb_vendor_name(entry));
  /* hostdevd's extension, ready to paste into a hostdev's <source>; a
   * serial that cannot select (control characters) is left out */
  usb_selector_format_xml(out, 4, host_usb_port_path(entry->usb),
                          entry->usb->serial && usb_serial_check(entry->usb->serial, NULL)
                            ? entry->usb->serial : NULL, NULL);
  g_string_append(out, "  </capability>\n</device>\n");
  return g_string_free(out, FALSE);
}

static char *
mdev_xml(const MdevDevice *device)
{
  GString *out = g_string_new("<device>\n");
  g_autofree char *name = mdev_name(device->uuid);
  g_autofree char *parent = NULL;
  PciAddress addr;

  if (device->parent && pci_address_parse(device->parent, &addr, NULL))
    parent = pci_address_nodedev_name(&addr);
  else
    parent = g_strdup(device->parent ? device->parent : "computer");
  xml_text(out, 2, "name", name);
  xml_text(out, 2, "path", device->sysfs_path);
  xml_text(out, 2, "parent", parent);
  if (device->driver) {
    g_string_append(out, "  <driver>\n");
    xml_text(out, 4, "name", device->driver);
    g_string_append(out, "  </driver>\n");
  }
  g_string_append(out, "  <capability type='mdev'>\n");
  if (device->type) {
    g_autofree char *type = g_markup_escape_text(device->type, -1);
    g_string_append_printf(out, "    <type id='%s'/>\n", type);
  } else {
    g_string_append(out, "    <type id=''/>\n");
  }
  xml_text(out, 4, "uuid", device->uuid);
  if (device->iommu_group >= 0)
    g_string_append_printf(out, "    <iommuGroup number='%d'/>\n", device->iommu_group);
  g_string_append(out, "  </capability>\n</device>\n");
  return g_string_free(out, FALSE);
}

static void
set_not_found(GError **error, const char *name)
{
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
              "no node device '%s' on this host; list them with "
              "`hostdevctl nodedev-list`", name);
}

char *
nodedev_dumpxml(const char *name, GError **error)
{
  PciAddress addr;

  if (name == NULL || *name == '\0' || strlen(name) > 128) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "a node device name is 1-128 characters, e.g. pci_0000_01_00_0");
    return NULL;
  }
  if (g_str_has_prefix(name, "pci_") || pci_address_parse(name, &addr, NULL)) {
    g_autoptr(GError) local_error = NULL;
    char *xml;

    if (!pci_address_parse_nodedev(name, &addr, error))
      return NULL;
    xml = pci_xml(&addr, &local_error);
    if (xml == NULL) {
      if (g_error_matches(local_error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND))
        set_not_found(error, name);
      else
        g_propagate_error(error, g_steal_pointer(&local_error));
    }
    return xml;
  }
  if (g_str_has_prefix(name, "usb_")) {
    g_autoptr(GPtrArray) entries = usb_entries(error);

    if (entries == NULL)
      return NULL;
    for (guint i = 0; i < entries->len; i++) {
      const UsbEntry *entry = entries->pdata[i];

      if (strcmp(entry->name, name) == 0)
        return usb_xml(entry);
    }
  } else if (g_str_has_prefix(name, "mdev_")) {
    g_autoptr(GPtrArray) mdevs = mdev_list_devices(error);

    if (mdevs == NULL)
      return NULL;
    for (guint i = 0; i < mdevs->len; i++) {
      const MdevDevice *device = mdevs->pdata[i];
      g_autofree char *mdev = mdev_name(device->uuid);

      if (strcmp(mdev, name) == 0)
        return mdev_xml(device);
    }
  }
  set_not_found(error, name);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */

static void
json_set_string_or_null(JsonObject *object, const char *member, const char *value)
{
  if (value != NULL)
    json_object_set_string_member(object, member, value);
  else
    json_object_set_null_member(object, member);
}

static void
json_set_hex(JsonObject *object, const char *member, guint value, int digits)
{
  g_autofree char *text = g_strdup_printf("0x%0*x", digits, value);

  json_object_set_string_member(object, member, text);
}

static JsonArray *
json_addresses(const GArray *addresses)
{
  JsonArray *array = json_array_new();

  for (guint i = 0; addresses && i < addresses->len; i++) {
    g_autofree char *bdf = pci_address_format(&g_array_index(addresses, PciAddress, i));
    json_array_add_string_element(array, bdf);
  }
  return array;
}

static JsonObject *
pci_json(const HostPciDevice *device)
{
  JsonObject *object = json_object_new();
  g_autofree char *name = pci_address_nodedev_name(&device->addr);
  g_autofree char *parent = device->has_parent
                            ? pci_address_nodedev_name(&device->parent) : g_strdup("computer");
  g_autoptr(GArray) members = device->iommu_group >= 0
                              ? host_pci_iommu_group_members(device->iommu_group, NULL) : NULL;
  g_autoptr(GPtrArray) types = mdev_list_types(device->name, NULL);
  JsonArray *net = json_array_new();
  JsonArray *mdev_types = json_array_new();

  json_object_set_string_member(object, "name", name);
  json_object_set_string_member(object, "capability", "pci");
  json_object_set_string_member(object, "address", device->name);
  json_object_set_string_member(object, "path", device->sysfs_path);
  json_object_set_string_member(object, "parent", parent);
  json_set_hex(object, "vendor_id", device->vendor, 4);
  json_set_string_or_null(object, "vendor_name", ids_vendor(&pci_ids, device->vendor));
  json_set_hex(object, "product_id", device->device, 4);
  json_set_string_or_null(object, "product_name",
                          ids_product(&pci_ids, device->vendor, device->device));
  json_set_hex(object, "class", device->class_code, 6);
  json_set_string_or_null(object, "driver", device->driver);
  json_set_string_or_null(object, "driver_override", device->driver_override);
  if (device->iommu_group >= 0)
    json_object_set_int_member(object, "iommu_group", device->iommu_group);
  else
    json_object_set_null_member(object, "iommu_group");
  json_object_set_array_member(object, "iommu_group_members", json_addresses(members));
  if (device->numa_node >= 0)
    json_object_set_int_member(object, "numa_node", device->numa_node);
  else
    json_object_set_null_member(object, "numa_node");
  if (device->is_virtfn) {
    g_autofree char *physfn = pci_address_format(&device->physfn);
    json_object_set_string_member(object, "physfn", physfn);
  } else {
    json_object_set_null_member(object, "physfn");
  }
  if (device->is_sriov_pf) {
    json_object_set_int_member(object, "totalvfs", device->totalvfs);
    json_object_set_int_member(object, "numvfs", device->numvfs);
  } else {
    json_object_set_null_member(object, "totalvfs");
    json_object_set_null_member(object, "numvfs");
  }
  json_object_set_array_member(object, "virtfns", json_addresses(device->virtfns));
  for (guint i = 0; i < device->net->len; i++)
    json_array_add_string_element(net, device->net->pdata[i]);
  json_object_set_array_member(object, "net", net);
  for (guint i = 0; types && i < types->len; i++) {
    const MdevType *type = types->pdata[i];
    JsonObject *entry = json_object_new();

    json_object_set_string_member(entry, "id", type->id);
    json_set_string_or_null(entry, "name", type->name);
    json_set_string_or_null(entry, "device_api", type->device_api);
    json_object_set_int_member(entry, "available_instances", type->available);
    json_array_add_object_element(mdev_types, entry);
  }
  json_object_set_array_member(object, "mdev_types", mdev_types);
  return object;
}

static JsonObject *
usb_json(const UsbEntry *entry)
{
  JsonObject *object = json_object_new();
  g_autofree char *devnode = g_strdup_printf("/dev/bus/usb/%03u/%03u",
                                             entry->usb->bus, entry->usb->device);

  json_object_set_string_member(object, "name", entry->name);
  json_object_set_string_member(object, "capability", "usb_device");
  json_object_set_int_member(object, "bus", entry->usb->bus);
  json_object_set_int_member(object, "device", entry->usb->device);
  /* the port path a selector takes; a root hub ("usb1") has none */
  json_set_string_or_null(object, "port", host_usb_port_path(entry->usb));
  json_set_hex(object, "vendor_id", entry->usb->vendor, 4);
  json_set_string_or_null(object, "vendor_name", usb_vendor_name(entry));
  json_set_hex(object, "product_id", entry->usb->product, 4);
  json_set_string_or_null(object, "product_name", usb_product_name(entry));
  json_set_string_or_null(object, "serial", entry->usb->serial);
  json_set_string_or_null(object, "driver", entry->driver);
  json_object_set_string_member(object, "parent", entry->parent);
  json_object_set_string_member(object, "path", entry->path);
  json_object_set_string_member(object, "devnode", devnode);
  return object;
}

static JsonObject *
mdev_json(const MdevDevice *device)
{
  JsonObject *object = json_object_new();
  g_autofree char *name = mdev_name(device->uuid);

  json_object_set_string_member(object, "name", name);
  json_object_set_string_member(object, "capability", "mdev");
  json_object_set_string_member(object, "uuid", device->uuid);
  json_set_string_or_null(object, "type", device->type);
  json_set_string_or_null(object, "parent", device->parent);
  if (device->iommu_group >= 0)
    json_object_set_int_member(object, "iommu_group", device->iommu_group);
  else
    json_object_set_null_member(object, "iommu_group");
  return object;
}

JsonArray *
nodedev_inventory_json(NodedevCap cap, GError **error)
{
  g_autoptr(JsonArray) array = json_array_new();

  ids_load_all();
  if (cap == NODEDEV_CAP_ANY || cap == NODEDEV_CAP_PCI) {
    g_autoptr(GPtrArray) pci = host_pci_list(error);

    if (pci == NULL)
      return NULL;
    for (guint i = 0; i < pci->len; i++)
      json_array_add_object_element(array, pci_json(pci->pdata[i]));
  }
  if (cap == NODEDEV_CAP_ANY || cap == NODEDEV_CAP_USB_DEVICE) {
    g_autoptr(GPtrArray) usb = usb_entries(error);

    if (usb == NULL)
      return NULL;
    for (guint i = 0; i < usb->len; i++)
      json_array_add_object_element(array, usb_json(usb->pdata[i]));
  }
  if (cap == NODEDEV_CAP_ANY || cap == NODEDEV_CAP_MDEV) {
    g_autoptr(GPtrArray) mdevs = mdev_list_devices(error);

    if (mdevs == NULL)
      return NULL;
    for (guint i = 0; i < mdevs->len; i++)
      json_array_add_object_element(array, mdev_json(mdevs->pdata[i]));
  }
  return g_steal_pointer(&array);
}

/* ------------------------------------------------------------------ */
/* Tree                                                                */

/* PCI base class / subclass names (PCI Code and Assignment spec), for a
 * readable tree without pci.ids. */
static const char *
class_name(guint class_code)
{
  static const struct { guint code; const char *name; } names[] = {
    { 0x0100, "SCSI controller" }, { 0x0101, "IDE controller" },
    { 0x0104, "RAID controller" }, { 0x0106, "SATA controller" },
    { 0x0107, "SAS controller" }, { 0x0108, "NVMe controller" },
    { 0x0200, "Ethernet controller" }, { 0x0280, "Network controller" },
    { 0x0300, "VGA controller" }, { 0x0302, "3D controller" },
    { 0x0380, "Display controller" }, { 0x0401, "Audio device" },
    { 0x0403, "Audio device" }, { 0x0600, "Host bridge" },
    { 0x0601, "ISA bridge" }, { 0x0604, "PCI bridge" },
    { 0x0609, "PCI bridge" }, { 0x0c03, "USB controller" },
    { 0x0c05, "SMBus" }, { 0x0d00, "IrDA controller" },
    { 0x1200, "Processing accelerator" }, { 0x0002, "Unclassified device" },
  };
  guint base_sub = class_code >> 8;

  for (gsize i = 0; i < G_N_ELEMENTS(names); i++)
    if (names[i].code == base_sub)
      return names[i].name;
  return "Device";
}

static gboolean
member_blocks_vfio(const HostPciDevice *device)
{
  if (host_pci_device_is_bridge(device))
    return FALSE;
  return device->driver != NULL && strcmp(device->driver, "vfio-pci") != 0 &&
         strcmp(device->driver, "pci-stub") != 0 && strcmp(device->driver, "pcieport") != 0;
}

static void
tree_pci_line(GString *out, const HostPciDevice *device)
{
  const char *vendor = ids_vendor(&pci_ids, device->vendor);
  const char *product = ids_product(&pci_ids, device->vendor, device->device);
  g_autoptr(GString) extra = g_string_new(NULL);

  if (device->is_virtfn) {
    g_autofree char *pf = pci_address_format(&device->physfn);
    g_string_append_printf(extra, ", VF of %s", pf);
  }
  if (device->is_sriov_pf)
    g_string_append_printf(extra, ", SR-IOV PF %u/%u VFs", device->numvfs, device->totalvfs);
  if (host_pci_device_is_bridge(device))
    g_string_append(extra, ", bridge: exempt");
  if (device->driver_override)
    g_string_append_printf(extra, ", driver_override=%s", device->driver_override);

  g_string_append_printf(out, "  %s  %s [%04x] %04x:%04x%s%s%s%s  driver: %s%s%s%s\n",
                         device->name, class_name(device->class_code),
                         device->class_code >> 8, device->vendor, device->device,
                         vendor ? " " : "", vendor ? vendor : "",
                         product ? " " : "", product ? product : "",
                         device->driver ? device->driver : "none",
                         extra->len ? " (" : "", extra->len ? extra->str + 2 : "",
                         extra->len ? ")" : "");
}

static gint
compare_ints(gconstpointer a, gconstpointer b)
{
  int x = *(const int *)a;
  int y = *(const int *)b;

  return x < y ? -1 : x > y;
}

static void
tree_pci(GString *out, GPtrArray *devices)
{
  g_autoptr(GArray) numbers = g_array_new(FALSE, FALSE, sizeof(int));
  gboolean any_ungrouped = FALSE;

  for (guint i = 0; i < devices->len; i++) {
    const HostPciDevice *device = devices->pdata[i];
    gboolean seen = FALSE;

    if (device->iommu_group < 0) {
      any_ungrouped = TRUE;
      continue;
    }
    for (guint j = 0; j < numbers->len && !seen; j++)
      seen = g_array_index(numbers, int, j) == device->iommu_group;
    if (!seen)
      g_array_append_val(numbers, device->iommu_group);
  }
  g_array_sort(numbers, compare_ints);

  for (guint j = 0; j < numbers->len; j++) {
    int group = g_array_index(numbers, int, j);
    g_autoptr(GString) blockers = g_string_new(NULL);
    guint count = 0;

    for (guint i = 0; i < devices->len; i++) {
      const HostPciDevice *device = devices->pdata[i];

      if (device->iommu_group != group)
        continue;
      count++;
      if (member_blocks_vfio(device))
        g_string_append_printf(blockers, "%s%s on %s", blockers->len ? ", " : "",
                               device->name, device->driver);
    }
    g_string_append_printf(out, "IOMMU group %d (%u device%s): %s%s\n", group, count,
                           count == 1 ? "" : "s",
                           blockers->len ? "held by host drivers: " : "ready for VFIO",
                           blockers->str);
    for (guint i = 0; i < devices->len; i++) {
      const HostPciDevice *device = devices->pdata[i];

      if (device->iommu_group == group)
        tree_pci_line(out, device);
    }
  }
  if (any_ungrouped) {
    g_string_append(out, "No IOMMU group (cannot be assigned):\n");
    for (guint i = 0; i < devices->len; i++)
      if (((const HostPciDevice *)devices->pdata[i])->iommu_group < 0)
        tree_pci_line(out, devices->pdata[i]);
  }
}

char *
nodedev_format_tree(NodedevCap cap, GError **error)
{
  g_autoptr(GString) out = g_string_new(NULL);

  ids_load_all();
  if (cap == NODEDEV_CAP_ANY || cap == NODEDEV_CAP_PCI) {
    g_autoptr(GPtrArray) pci = host_pci_list(error);

    if (pci == NULL)
      return NULL;
    tree_pci(out, pci);
  }
  if (cap == NODEDEV_CAP_ANY || cap == NODEDEV_CAP_USB_DEVICE) {
    g_autoptr(GPtrArray) usb = usb_entries(error);

    if (usb == NULL)
      return NULL;
    for (guint i = 0; i < usb->len; i++) {
      const UsbEntry *entry = usb->pdata[i];
      const char *vendor = usb_vendor_name(entry);
      const char *product = usb_product_name(entry);
      /* depth from the port path: "1-1.2" is one hub deeper than "1-1" */
      guint depth = g_str_has_prefix(entry->usb->sysfs_name, "usb") ? 0 : 1;

      for (const char *p = entry->usb->sysfs_name; *p; p++)
        depth += *p == '.';
      if (depth == 0)
        g_string_append_printf(out, "%sUSB bus %u (%s)\n", out->len ? "\n" : "",
                               entry->usb->bus, entry->parent);
      g_autofree char *serial = entry->usb->serial ? usb_serial_quote(entry->usb->serial) : NULL;
      const char *port = host_usb_port_path(entry->usb);

      g_string_append_printf(out, "%*s%s  bus %u device %u  %04x:%04x%s%s%s%s  "
                             "port %s  serial %s  driver: %s\n",
                             2 + 2 * depth, "", entry->name, entry->usb->bus,
                             entry->usb->device, entry->usb->vendor, entry->usb->product,
                             vendor ? " " : "", vendor ? vendor : "",
                             product ? " " : "", product ? product : "",
                             port ? port : "none", serial ? serial : "none",
                             entry->driver ? entry->driver : "none");
    }
  }
  return g_string_free(g_steal_pointer(&out), FALSE);
}
