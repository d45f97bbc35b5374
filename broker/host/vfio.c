/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfio.c - host preparation of a PCI function for vfio-pci, and giving it
 * back
 *
 * The sysfs sequence is the kernel's documented one (and Incus's and
 * libvirt's): driver_override = vfio-pci, unbind from the current driver,
 * drivers_probe; the override makes the probe pick vfio-pci and nothing
 * else.  Giving back is the reverse: restore the override (a "\n" clears
 * it), unbind from vfio-pci, drivers_probe, and the device's own driver
 * matches it again.  Every write goes through host_write_attr() so that
 * unit tests can play the kernel.
 *
 * Messages print real /sys and /dev paths, because that is what the user
 * types, whatever host root hostdevd reads.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "vfio.h"
#include "process-identity.h"
#include "claims.h"
#include "host-pci.h"
#include "host-root.h"
#include "json-text.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static guint wait_ms = VFIO_DEFAULT_WAIT_MS;
static gboolean use_pidfd = TRUE;

#define POLL_INTERVAL_US 10000

void
vfio_set_wait_ms(guint ms)
{
  wait_ms = ms;
}

void
vfio_set_use_pidfd(gboolean use)
{
  use_pidfd = use;
}

/* ------------------------------------------------------------------ */
/* Records                                                             */

static void
record_clear(gpointer data)
{
  VfioRecord *record = data;

  g_free(record->original_driver);
  g_free(record->original_override);
  g_clear_pointer(&record->companions, g_ptr_array_unref);
  g_clear_pointer(&record->joining, g_array_unref);
}

static VfioRecord *
record_alloc(void)
{
  VfioRecord *record = g_atomic_rc_box_new0(VfioRecord);

  record->group = -1;
  record->companions = g_ptr_array_new_with_free_func((GDestroyNotify)vfio_record_unref);
  return record;
}

VfioRecord *
vfio_record_ref(VfioRecord *record)
{
  return g_atomic_rc_box_acquire(record);
}

void
vfio_record_unref(VfioRecord *record)
{
  if (record != NULL)
    g_atomic_rc_box_release_full(record, record_clear);
}

gboolean
vfio_record_is_clean(const VfioRecord *record)
{
  if (record->override_written || record->unbound || record->probed ||
      record->bound_by_us || record->chowned_by_us)
    return FALSE;
  for (guint i = 0; i < record->companions->len; i++)
    if (!vfio_record_is_clean(record->companions->pdata[i]))
      return FALSE;
  return TRUE;
}

/* @record as the journal's JSON text, member by member (no tree).
 * @self_bound: write @record's binding steps as done; @companions_bound:
 * those of every companion below it; @chowned: the node's ownership too,
 * when its owner before is known (see vfio_record_worst_case()). */
static void
append_record(GString *out, const VfioRecord *record, gboolean self_bound,
              gboolean companions_bound, gboolean chowned)
{
  g_autofree char *bdf = pci_address_format(&record->addr);

  json_text_object_begin(out);
  json_text_member_string(out, "address", bdf);
  json_text_member_int(out, "group", record->group);
  json_text_member_bool(out, "managed", record->managed);
  json_text_member_string(out, "original-driver", record->original_driver);
  json_text_member_string(out, "original-override", record->original_override);

  json_text_member_name(out, "steps");
  json_text_object_begin(out);
  json_text_member_bool(out, "override-written", record->override_written || self_bound);
  json_text_member_bool(out, "unbound", record->unbound || self_bound);
  json_text_member_bool(out, "probed", record->probed || self_bound);
  json_text_member_bool(out, "bound-by-us", record->bound_by_us || self_bound);
  json_text_object_end(out);

  json_text_member_name(out, "node");
  json_text_object_begin(out);
  json_text_member_bool(out, "chowned-by-us",
                        record->chowned_by_us || (chowned && record->node_before_known));
  json_text_member_bool(out, "before-known", record->node_before_known);
  json_text_member_int(out, "uid-before", record->node_uid_before);
  json_text_member_int(out, "gid-before", record->node_gid_before);
  json_text_member_int(out, "mode-before", record->node_mode_before);
  json_text_object_end(out);

  json_text_member_name(out, "companions");
  json_text_array_begin(out);
  for (guint i = 0; i < record->companions->len; i++) {
    json_text_element_begin(out);
    append_record(out, record->companions->pdata[i], companions_bound, companions_bound, FALSE);
  }
  json_text_array_end(out);
  json_text_object_end(out);
}

void
vfio_record_append_json(GString *out, const VfioRecord *record, gboolean worst_case)
{
  /* the worst case: the binding of every planned companion, of the device
   * itself when managed, and the node's ownership */
  append_record(out, record, worst_case && record->managed, worst_case, worst_case);
}

JsonObject *
vfio_record_to_json(const VfioRecord *record)
{
  g_autoptr(GString) text = g_string_sized_new(512);
  vfio_record_append_json(text, record, FALSE);
  JsonObject *object = json_text_parse_object(text->str);
  /* what append_record() wrote is one object */
  g_assert(object != NULL);
  return object;
}

/* Driver names become nothing but comparisons, yet a journal is input:
 * accept what the kernel could have written. */
static gboolean
driver_name_is_valid(const char *name)
{
  gsize len = strlen(name);

  if (len == 0 || len > 64 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-' && *p != '.')
      return FALSE;
  return TRUE;
}

static gboolean
json_bad(GError **error, const char *member, const char *why)
{
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "VFIO record: member '%s' %s", member, why);
  return FALSE;
}

static gboolean
json_get_bool(JsonObject *object, const char *member, gboolean *out, GError **error)
{
  JsonNode *node = json_object_get_member(object, member);

  if (node == NULL || json_node_get_value_type(node) != G_TYPE_BOOLEAN)
    return json_bad(error, member, "must be a boolean");
  *out = json_node_get_boolean(node);
  return TRUE;
}

static gboolean
json_get_int(JsonObject *object, const char *member, gint64 min, gint64 max,
             gint64 *out, GError **error)
{
  JsonNode *node = json_object_get_member(object, member);
  gint64 value;

  if (node == NULL || json_node_get_value_type(node) != G_TYPE_INT64)
    return json_bad(error, member, "must be an integer");
  value = json_node_get_int(node);
  if (value < min || value > max)
    return json_bad(error, member, "is out of range");
  *out = value;
  return TRUE;
}

/* @out: NULL for JSON null */
static gboolean
json_get_driver(JsonObject *object, const char *member, char **out, GError **error)
{
  JsonNode *node = json_object_get_member(object, member);
  const char *text;

  if (node == NULL)
    return json_bad(error, member, "is missing");
  if (JSON_NODE_HOLDS_NULL(node)) {
    *out = NULL;
    return TRUE;
  }
  if (json_node_get_value_type(node) != G_TYPE_STRING)
    return json_bad(error, member, "must be a string or null");
  text = json_node_get_string(node);
  if (!driver_name_is_valid(text))
    return json_bad(error, member, "is not a driver name");
  *out = g_strdup(text);
  return TRUE;
}

VfioRecord *
vfio_record_from_json(JsonObject *object, GError **error)
{
  g_autoptr(VfioRecord) record = record_alloc();
  JsonObject *steps;
  JsonObject *node;
  JsonArray *companions;
  const char *address;
  gint64 number;

  if (!json_object_has_member(object, "address") ||
      json_node_get_value_type(json_object_get_member(object, "address")) != G_TYPE_STRING) {
    json_bad(error, "address", "must be a PCI address string");
    return NULL;
  }
  address = json_object_get_string_member(object, "address");
  if (!pci_address_parse(address, &record->addr, error))
    return NULL;
  if (!json_get_int(object, "group", 0, G_MAXINT, &number, error))
    return NULL;
  record->group = (int)number;
  if (!json_get_bool(object, "managed", &record->managed, error) ||
      !json_get_driver(object, "original-driver", &record->original_driver, error) ||
      !json_get_driver(object, "original-override", &record->original_override, error))
    return NULL;

  steps = json_object_has_member(object, "steps") &&
          JSON_NODE_HOLDS_OBJECT(json_object_get_member(object, "steps"))
          ? json_object_get_object_member(object, "steps") : NULL;
  node = json_object_has_member(object, "node") &&
         JSON_NODE_HOLDS_OBJECT(json_object_get_member(object, "node"))
         ? json_object_get_object_member(object, "node") : NULL;
  if (steps == NULL) {
    json_bad(error, "steps", "must be an object");
    return NULL;
  }
  if (node == NULL) {
    json_bad(error, "node", "must be an object");
    return NULL;
  }
  if (!json_get_bool(steps, "override-written", &record->override_written, error) ||
      !json_get_bool(steps, "unbound", &record->unbound, error) ||
      !json_get_bool(steps, "probed", &record->probed, error) ||
      !json_get_bool(steps, "bound-by-us", &record->bound_by_us, error) ||
      !json_get_bool(node, "chowned-by-us", &record->chowned_by_us, error))
    return NULL;
  /* absent in records of older brokers: they read the owner when they chowned */
  if (!json_object_has_member(node, "before-known"))
    record->node_before_known = record->chowned_by_us;
  else if (!json_get_bool(node, "before-known", &record->node_before_known, error))
    return NULL;
  if (!json_get_int(node, "uid-before", 0, G_MAXUINT32 - 1, &number, error))
    return NULL;
  record->node_uid_before = (uid_t)number;
  if (!json_get_int(node, "gid-before", 0, G_MAXUINT32 - 1, &number, error))
    return NULL;
  record->node_gid_before = (gid_t)number;
  if (!json_get_int(node, "mode-before", 0, 07777, &number, error))
    return NULL;
  record->node_mode_before = (mode_t)number;

  if (!json_object_has_member(object, "companions") ||
      !JSON_NODE_HOLDS_ARRAY(json_object_get_member(object, "companions"))) {
    json_bad(error, "companions", "must be an array");
    return NULL;
  }
  companions = json_object_get_array_member(object, "companions");
  for (guint i = 0; i < json_array_get_length(companions); i++) {
    JsonNode *element = json_array_get_element(companions, i);
    VfioRecord *companion;

    if (!JSON_NODE_HOLDS_OBJECT(element)) {
      json_bad(error, "companions", "must hold objects");
      return NULL;
    }
    companion = vfio_record_from_json(json_node_get_object(element), error);
    if (companion == NULL)
      return NULL;
    g_ptr_array_add(record->companions, companion);
  }
  return g_steal_pointer(&record);
}

VfioRecord *
vfio_record_worst_case(const VfioRecord *record)
{
  g_autoptr(GString) text = g_string_sized_new(512);
  vfio_record_append_json(text, record, TRUE);
  g_autoptr(JsonObject) object = json_text_parse_object(text->str);
  VfioRecord *worst = object ? vfio_record_from_json(object, NULL) : NULL;

  /* what append_record() wrote, from_json accepts */
  g_assert(worst != NULL);
  worst->group_planned = record->group_planned;
  return worst;
}

/* ------------------------------------------------------------------ */
/* Host checks                                                         */

static gboolean
dir_has_entries(const char *rel)
{
  g_autofree char *path = host_path("%s", rel);
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);

  return dir != NULL && g_dir_read_name(dir) != NULL;
}

static gboolean
host_exists(const char *rel)
{
  g_autofree char *path = host_path("%s", rel);

  return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* Return: whether the kernel command line has one of @words (NULL-terminated) as a parameter. */
static gboolean
cmdline_has_any(const char *const *words)
{
  g_autofree char *path = host_path("proc/cmdline");
  g_autofree char *text = host_read_attr(path, NULL);
  g_auto(GStrv) parameters = NULL;

  if (text == NULL)
    return FALSE;
  parameters = g_strsplit_set(text, " \t\n", -1);
  for (guint i = 0; words[i]; i++)
    if (g_strv_contains((const char *const *)parameters, words[i]))
      return TRUE;
  return FALSE;
}

static gboolean
set_no_iommu_error(GError **error)
{
  const char *why;
  const char *what;

  if (host_exists("sys/firmware/acpi/tables/DMAR")) {
    what = "the firmware describes an Intel VT-d IOMMU (ACPI DMAR table), "
           "but the kernel has not enabled it";
    why = cmdline_has_any((const char *const[]){ "intel_iommu=off", "iommu=off", NULL })
          ? "remove intel_iommu=off / iommu=off from the kernel command line"
          : "add intel_iommu=on to the kernel command line (e.g. "
            "GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot";
  } else if (host_exists("sys/firmware/acpi/tables/IVRS")) {
    what = "the firmware describes an AMD-Vi IOMMU (ACPI IVRS table), but "
           "the kernel has not enabled it";
    why = "remove amd_iommu=off / iommu=off from the kernel command line, "
          "check dmesg for AMD-Vi errors, and reboot";
  } else {
    what = "the host has no IOMMU enabled";
    why = "enable VT-d (Intel) or AMD-Vi/IOMMU/SVM (AMD) in the firmware "
          "setup, then boot Intel hosts with intel_iommu=on";
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "PCI devices cannot be assigned: %s (/sys/kernel/iommu_groups "
              "is empty); %s", what, why);
  return FALSE;
}

/* Return: NULL when interrupt remapping is known to be on (or cannot be
 * known), else (transfer full) why it is off. */
static char *
interrupt_remapping_missing(void)
{
  g_autofree char *class_dir = host_path("sys/class/iommu");
  g_autoptr(GDir) dir = NULL;
  const char *unit;

  if (cmdline_has_any((const char *const[]){ "intremap=off", "nointremap", NULL }))
    return g_strdup("the kernel command line turns interrupt remapping off "
                    "(intremap=off); remove it");

  dir = g_dir_open(class_dir, 0, NULL);
  while (dir && (unit = g_dir_read_name(dir)) != NULL) {
    g_autofree char *ecap_path = host_path("sys/class/iommu/%s/intel-iommu/ecap", unit);
    g_autofree char *ecap = host_read_attr(ecap_path, NULL);
    guint64 bits;

    /* Intel VT-d: bit 3 of the extended capabilities is IR */
    if (ecap != NULL && g_ascii_string_to_unsigned(ecap, 16, 0, G_MAXUINT64, &bits, NULL) &&
        (bits & 0x8) == 0)
      return g_strdup_printf("the IOMMU %s cannot remap interrupts (its ecap "
                             "%s lacks the IR bit); enable interrupt "
                             "remapping / x2APIC in the firmware", unit, ecap);
  }
  /* AMD-Vi always remaps when enabled; other IOMMUs isolate MSIs in the
   * interrupt controller, which the kernel checks itself. */
  return NULL;
}

/*
 * Whether the IOMMU is on and remaps interrupts is settled at boot (the
 * firmware, the kernel command line): once found so under a host root, it
 * is not read again for every attach.  What can change while the host runs
 * (the VFIO modules) is looked at every time.
 */
static char *iommu_known_on_under;   /* the host root it was found under */

gboolean
vfio_check_iommu(GError **error)
{
  g_autofree char *missing_ir = NULL;
  g_autofree char *unsafe_path = NULL;
  g_autofree char *unsafe = NULL;
  gboolean known_on = g_strcmp0(iommu_known_on_under, host_root_get()) == 0;

  if (!known_on && !dir_has_entries("sys/kernel/iommu_groups"))
    return set_no_iommu_error(error);

  if (!host_exists("sys/bus/pci/drivers/vfio-pci")) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "the vfio-pci driver is not loaded (no "
                "/sys/bus/pci/drivers/vfio-pci): run `modprobe vfio-pci`, "
                "and list vfio-pci in /etc/modules-load.d/ to load it at boot");
    return FALSE;
  }
  if (!host_exists("sys/module/vfio_iommu_type1") && !host_exists("sys/module/iommufd")) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "no VFIO IOMMU backend is loaded (neither vfio_iommu_type1 "
                "nor iommufd), so QEMU would fail with 'No available IOMMU "
                "models': run `modprobe vfio_iommu_type1` (vfio only "
                "soft-depends on it, so some module loaders skip it)");
    return FALSE;
  }

  if (known_on)
    return TRUE;
  missing_ir = interrupt_remapping_missing();
  if (missing_ir == NULL) {
    g_free(iommu_known_on_under);
    iommu_known_on_under = g_strdup(host_root_get());
    return TRUE;
  }
  unsafe_path = host_path("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts");
  unsafe = host_read_attr(unsafe_path, NULL);
  if (g_strcmp0(unsafe, "Y") == 0 || g_strcmp0(unsafe, "1") == 0) {
    g_warning("interrupt remapping is off (%s), but vfio_iommu_type1 has "
              "allow_unsafe_interrupts set: an assigned device can inject "
              "interrupts into the host", missing_ir);
    return TRUE;
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "the host has no interrupt remapping, so VFIO refuses to "
              "assign devices: without it a device (and the guest driving "
              "it) can send arbitrary MSI interrupts to the host. Fix: %s. "
              "Only on a host whose guests you trust, accept the risk with "
              "`echo 1 > /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts` "
              "(at boot: options vfio_iommu_type1 allow_unsafe_interrupts=1 "
              "in /etc/modprobe.d/)", missing_ir);
  return FALSE;
}

/* Return: whether a device of class @class_code may sit in a group QEMU uses, on @driver. */
static gboolean
member_is_harmless(guint class_code, const char *driver)
{
  if (host_pci_class_is_bridge(class_code))
    return TRUE;
  return driver == NULL ||
         strcmp(driver, "vfio-pci") == 0 ||
         strcmp(driver, "pci-stub") == 0 ||
         strcmp(driver, "pcieport") == 0;
}

/* Return: (transfer full) (element-type HostPciDevice): the endpoints of
 * @group (but @except_self) that make it not viable; NULL with @error. */
static gboolean
address_in(const GArray *addresses, const PciAddress *addr)
{
  for (guint i = 0; addresses && i < addresses->len; i++)
    if (pci_address_compare(&g_array_index(addresses, PciAddress, i), addr) == 0)
      return TRUE;
  return FALSE;
}

static GPtrArray *
group_offenders(int group, const PciAddress *except_self, const GArray *joining, GError **error)
{
  g_autoptr(GArray) members = host_pci_iommu_group_members(group, error);
  g_autoptr(GPtrArray) offenders =
    g_ptr_array_new_with_free_func((GDestroyNotify)host_pci_device_free);

  if (members == NULL)
    return NULL;
  for (guint i = 0; i < members->len; i++) {
    const PciAddress *member = &g_array_index(members, PciAddress, i);
    g_autoptr(HostPciDevice) device = NULL;
    g_autoptr(GError) local_error = NULL;
    g_autofree char *driver = NULL;
    guint class_code;

    if ((except_self && pci_address_compare(member, except_self) == 0) ||
        address_in(joining, member))
      continue;
    /* its class and driver decide; the whole record only names an offender */
    driver = host_pci_get_driver(member, &local_error);
    if (local_error == NULL && host_pci_read_class(member, &class_code) &&
        member_is_harmless(class_code, driver))
      continue;
    if (local_error == NULL)
      device = host_pci_device_read(member, &local_error);
    if (device == NULL) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "cannot check IOMMU group %d: %s", group, local_error->message);
      return NULL;
    }
    g_ptr_array_add(offenders, g_steal_pointer(&device));
  }
  return g_steal_pointer(&offenders);
}

gboolean
vfio_group_check_viable(int group, const PciAddress *except_self, GError **error)
{
  return vfio_group_check_viable_joining(group, except_self, NULL, error);
}

gboolean
vfio_group_check_viable_joining(int group, const PciAddress *except_self, const GArray *joining,
                                GError **error)
{
  g_autoptr(GPtrArray) offenders = group_offenders(group, except_self, joining, error);
  g_autoptr(GString) list = NULL;
  g_autoptr(GString) detach = NULL;
  g_autofree char *self = except_self ? pci_address_format(except_self) : NULL;

  if (offenders == NULL)
    return FALSE;
  if (offenders->len == 0)
    return TRUE;

  list = g_string_new(NULL);
  detach = g_string_new(NULL);
  for (guint i = 0; i < offenders->len; i++) {
    const HostPciDevice *device = offenders->pdata[i];
    g_autofree char *nodedev = pci_address_nodedev_name(&device->addr);

    g_string_append_printf(list, "%s%s [%04x:%04x] on driver %s",
                           i ? ", " : "", device->name, device->vendor,
                           device->device, device->driver);
    g_string_append_printf(detach, "%s`hostdevctl nodedev-detach %s`",
                           i ? ", " : "", nodedev);
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "IOMMU group %d%s%s is not viable: the IOMMU cannot isolate "
              "the devices of a group from each other, so VFIO needs every "
              "other endpoint in it on vfio-pci or pci-stub, or unbound. "
              "In the way: %s. Assign those devices to this VM too, detach "
              "them from their drivers (%s), allow hostdevd to take the "
              "whole group, or move the card to a slot with its own IOMMU group",
              group, self ? " of " : "", self ? self : "", list->str, detach->str);
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* Binding                                                             */

/* Return: (transfer full): the current driver (NULL: unbound); @error
 * only when the device cannot be read. */
static char *
current_driver(const PciAddress *addr, GError **error)
{
  return host_pci_get_driver(addr, error);
}

typedef gboolean (*Predicate)(gconstpointer data, gconstpointer expected);

static gboolean
driver_is(gconstpointer data, gconstpointer expected)
{
  g_autofree char *driver = current_driver(data, NULL);

  return g_strcmp0(driver, expected) == 0;
}

static gboolean
path_exists(gconstpointer data, gconstpointer unused)
{
  return g_file_test(data, G_FILE_TEST_EXISTS);
}

/* Poll @predicate every 10 ms for at most wait_ms. */
static gboolean
wait_until(Predicate predicate, gconstpointer data, gconstpointer expected)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)wait_ms * 1000;

  for (;;) {
    if (predicate(data, expected))
      return TRUE;
    if (g_get_monotonic_time() >= deadline)
      return FALSE;
    g_usleep(POLL_INTERVAL_US);
  }
}

VfioRecord *
vfio_record_new(const PciAddress *addr, gboolean managed, GError **error)
{
  g_autoptr(VfioRecord) record = record_alloc();
  g_autoptr(GError) local_error = NULL;
  g_autofree char *bdf = NULL;
  g_autofree char *override_path = NULL;
  g_autofree char *override = NULL;

  record->addr = *addr;
  record->managed = managed;
  record->group = host_pci_get_iommu_group(addr, error);
  if (record->group < 0)
    return NULL;
  record->original_driver = current_driver(addr, &local_error);
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return NULL;
  }
  bdf = pci_address_format(addr);
  override_path = host_path("sys/bus/pci/devices/%s/driver_override", bdf);
  override = host_read_attr(override_path, &local_error);
  if (override == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read driver_override of PCI device %s (%s): hostdevd "
                "needs Linux 3.16 or later and read access to /sys",
                bdf, local_error->message);
    return NULL;
  }
  if (*override != '\0' && strcmp(override, "(null)") != 0) {
    if (!driver_name_is_valid(override)) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s has an unexpected driver_override '%s'",
                  bdf, override);
      return NULL;
    }
    record->original_override = g_steal_pointer(&override);
  }
  vfio_record_plan_node(record, NULL);
  return g_steal_pointer(&record);
}

/* Return: whether the device's state now (@driver, @override) is @origin
 * with nothing but a holder's binding steps on it. */
static gboolean
origin_explains(const ClaimOrigin *origin, const char *driver, const char *override)
{
  gboolean driver_ok = driver == NULL || g_strcmp0(driver, "vfio-pci") == 0 ||
                       g_strcmp0(driver, origin->driver) == 0;
  gboolean override_ok = g_strcmp0(override, "vfio-pci") == 0 ||
                         g_strcmp0(override, origin->override) == 0;

  return driver_ok && override_ok;
}

VfioRecord *
vfio_record_new_from_origin(const PciAddress *addr, gboolean managed,
                            const ClaimOrigin *origin, GError **error)
{
  g_autoptr(VfioRecord) record = vfio_record_new(addr, managed, error);
  g_autofree char *bdf = NULL;
  g_autofree char *driver = NULL;
  g_autofree char *override = NULL;

  if (record == NULL || origin == NULL)
    return g_steal_pointer(&record);
  bdf = pci_address_format(addr);
  if (origin->node_known) {
    g_autofree char *node = host_path("dev/vfio/%d", record->group);
    struct stat st;

    /* the group node's owner before the first holder gave it to its QEMU */
    if (stat(node, &st) == 0 &&
        (st.st_uid != origin->node_uid || st.st_gid != origin->node_gid ||
         (st.st_mode & 07777) != (origin->node_mode & 07777)))
      record->chowned_by_us = TRUE;
    record->node_uid_before = origin->node_uid;
    record->node_gid_before = origin->node_gid;
    record->node_mode_before = origin->node_mode & 07777;
    record->node_before_known = TRUE;
  }
  /*
   * managed='no' leaves a binding the user made as it is.  One the holder
   * before made and left behind when it died is not the user's: whoever
   * takes the device over gives it back as that holder would have, or the
   * host would keep it on vfio-pci (and its group node with a QEMU's owner)
   * once nobody holds it any more.
   */
  gboolean explained = origin_explains(origin, record->original_driver,
                                       record->original_override);
  gboolean holder_left_it = explained && g_strcmp0(record->original_driver, origin->driver) != 0;
  if (!managed && !holder_left_it)
    return g_steal_pointer(&record); /* its binding is the user's */
  if (!explained) {
    g_message("PCI device %s is on %s%s with driver_override %s, which is not what the "
              "holder before left (its original driver was %s): someone changed it since, "
              "so this is the state it goes back to", bdf,
              record->original_driver ? "driver " : "no driver",
              record->original_driver ? record->original_driver : "",
              record->original_override ? record->original_override : "(none)",
              origin->driver ? origin->driver : "(none)");
    return g_steal_pointer(&record);
  }
  driver = g_steal_pointer(&record->original_driver);
  override = g_steal_pointer(&record->original_override);
  record->original_driver = g_strdup(origin->driver);
  record->original_override = g_strdup(origin->override);
  record->override_written = g_strcmp0(override, origin->override) != 0;
  record->unbound = origin->driver != NULL && g_strcmp0(driver, origin->driver) != 0;
  record->probed = record->bound_by_us =
    g_strcmp0(driver, "vfio-pci") == 0 && g_strcmp0(origin->driver, "vfio-pci") != 0;
  if (!vfio_record_is_clean(record))
    g_message("PCI device %s is still as its holder before left it (%s%s, "
              "driver_override %s): it goes back to its original driver %s and "
              "driver_override %s", bdf, driver ? "on " : "unbound", driver ? driver : "",
              override ? override : "(none)", origin->driver ? origin->driver : "(none)",
              origin->override ? origin->override : "(none)");
  return g_steal_pointer(&record);
}

ClaimOrigin *
vfio_record_origin(const VfioRecord *record)
{
  ClaimOrigin *origin = g_new0(ClaimOrigin, 1);

  origin->driver = g_strdup(record->original_driver);
  origin->override = g_strdup(record->original_override);
  origin->node_known = record->node_before_known;
  origin->node_uid = record->node_uid_before;
  origin->node_gid = record->node_gid_before;
  origin->node_mode = record->node_mode_before;
  return origin;
}

void
vfio_record_plan_node(VfioRecord *record, const VfioRecord *sibling)
{
  g_autofree char *node = host_path("dev/vfio/%d", record->group);
  struct stat st;

  if (sibling != NULL && sibling->group == record->group && sibling->chowned_by_us &&
      sibling->node_before_known) {
    record->node_uid_before = sibling->node_uid_before;
    record->node_gid_before = sibling->node_gid_before;
    record->node_mode_before = sibling->node_mode_before;
    record->node_before_known = TRUE;
    return;
  }
  if (record->chowned_by_us || stat(node, &st) < 0)
    return;
  record->node_uid_before = st.st_uid;
  record->node_gid_before = st.st_gid;
  record->node_mode_before = st.st_mode & 07777;
  record->node_before_known = TRUE;
}

/* Wrap a failed sysfs write of a binding step into a HostError. */
static void
set_write_error(GError **error, int err, const char *bdf, const char *what,
                const GError *write_error)
{
  const char *hint;

  /* only the first three are about hostdevd's rights; the others are the
   * kernel's answer to this device and value */
  switch (err) {
  case EROFS:
    hint = "/sys is read-only for hostdevd (under systemd, ProtectKernelTunables=yes "
           "mounts it so: hostdevd's unit must not set it)";
    break;
  case EACCES:
    hint = "hostdevd may not write sysfs attributes: they belong to root, so it must "
           "run as uid 0";
    break;
  case EPERM:
    hint = "the write was denied (a security module such as SELinux or AppArmor, or "
           "kernel lockdown); the audit log or dmesg says which";
    break;
  case EINVAL:
    hint = "the kernel refused it for this device: its IOMMU group is probably still "
           "in use (a QEMU that has not released it yet, or another member still on "
           "vfio-pci), or no driver accepted the device; dmesg says which";
    break;
  case EBUSY:
    hint = "the kernel refused it because the device is busy: a process (a VM's "
           "QEMU) still holds it; dmesg may say more";
    break;
  case ENOENT:
    hint = "the attribute is missing: the device was removed, or the kernel "
           "lacks driver_override (Linux 3.16+)";
    break;
  case ENODEV:
    hint = "the kernel refused it: the device is gone or not bound to that driver "
           "any more";
    break;
  default:
    hint = "dmesg may say why";
    break;
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot %s PCI device %s: %s; %s", what, bdf,
              write_error->message, hint);
}

static gboolean
write_override(VfioRecord *record, const char *bdf, const char *value,
               const char *what, GError **error)
{
  g_autofree char *path = host_path("sys/bus/pci/devices/%s/driver_override", bdf);
  g_autoptr(GError) local_error = NULL;
  int err = host_write_attr(path, value, &local_error);

  if (err != 0) {
    set_write_error(error, err, bdf, what, local_error);
    return FALSE;
  }
  return TRUE;
}

static gboolean
write_unbind(const char *bdf, const char *driver, GError **error)
{
  g_autofree char *path = host_path("sys/bus/pci/drivers/%s/unbind", driver);
  g_autofree char *what = g_strdup_printf("unbind from driver %s", driver);
  g_autoptr(GError) local_error = NULL;
  int err = host_write_attr(path, bdf, &local_error);

  if (err != 0) {
    set_write_error(error, err, bdf, what, local_error);
    return FALSE;
  }
  return TRUE;
}

static gboolean
write_probe(const char *bdf, GError **error)
{
  g_autofree char *path = host_path("sys/bus/pci/drivers_probe");
  g_autoptr(GError) local_error = NULL;
  int err = host_write_attr(path, bdf, &local_error);

  if (err != 0) {
    set_write_error(error, err, bdf, "probe drivers for", local_error);
    return FALSE;
  }
  return TRUE;
}

static gboolean
driver_name_safe_for_path(const char *driver)
{
  return driver != NULL && driver_name_is_valid(driver);
}

gboolean
vfio_step_bind(VfioRecord *record, GError **error)
{
  g_autofree char *bdf = pci_address_format(&record->addr);
  g_autofree char *nodedev = pci_address_nodedev_name(&record->addr);
  g_autofree char *now = NULL;
  g_autoptr(GError) local_error = NULL;

  now = current_driver(&record->addr, &local_error);
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  if (g_strcmp0(now, "vfio-pci") == 0)
    return TRUE;

  if (!record->managed) {
    if (now != NULL)
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s is bound to driver '%s', not vfio-pci, and "
                  "managed='no' forbids hostdevd to rebind it: use "
                  "managed='yes', or bind it first with "
                  "`hostdevctl nodedev-detach %s`", bdf, now, nodedev);
    else
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s is not bound to any driver, and managed='no' "
                  "needs it on vfio-pci: use managed='yes', or bind it first "
                  "with `hostdevctl nodedev-detach %s`", bdf, nodedev);
    return FALSE;
  }

  /* 1. the override: from now on only vfio-pci may take the device */
  if (!write_override(record, bdf, "vfio-pci", "set driver_override=vfio-pci on", error))
    return FALSE;
  record->override_written = TRUE;

  /* 2. let go of the current driver */
  if (now != NULL) {
    if (!driver_name_safe_for_path(now)) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s has an unexpected driver name '%s'", bdf, now);
      return FALSE;
    }
    if (!write_unbind(bdf, now, error))
      return FALSE;
    record->unbound = TRUE;
  }

  /* 3. probe: the override makes vfio-pci the only candidate */
  if (!write_probe(bdf, error))
    return FALSE;
  record->probed = TRUE;

  /* 4. verify, bounded: drivers may probe asynchronously */
  if (!wait_until(driver_is, &record->addr, "vfio-pci")) {
    g_autofree char *got = current_driver(&record->addr, NULL);

    if (got == NULL)
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "vfio-pci did not take PCI device %s within %u ms (it "
                  "stayed unbound): is vfio-pci loaded (`modprobe vfio-pci`)? "
                  "dmesg says why vfio-pci refused it", bdf, wait_ms);
    else
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s went to driver '%s' instead of vfio-pci "
                  "after drivers_probe: something else rewrote its "
                  "driver_override; check udev rules and other tools "
                  "managing the device", bdf, got);
    return FALSE;
  }
  record->bound_by_us = TRUE;
  return TRUE;
}

gboolean
vfio_record_plan_group(VfioRecord *record, gboolean take_whole_group, GError **error)
{
  g_autoptr(GPtrArray) offenders = NULL;
  g_autoptr(GError) viable_error = NULL;
  g_autoptr(GPtrArray) planned =
    g_ptr_array_new_with_free_func((GDestroyNotify)vfio_record_unref);

  /* companions before the plan are group partners taken on with the claim
   * (on vfio-pci as their holder left them): the group is planned all the same */
  if (record->group_planned)
    return TRUE;
  if (vfio_group_check_viable_joining(record->group, &record->addr, record->joining,
                                      &viable_error)) {
    record->group_planned = TRUE;
    return TRUE;
  }
  if (!take_whole_group || !record->managed ||
      !g_error_matches(viable_error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR)) {
    g_propagate_error(error, g_steal_pointer(&viable_error));
    return FALSE;
  }
  offenders = group_offenders(record->group, &record->addr, record->joining, error);
  if (offenders == NULL)
    return FALSE;
  for (guint i = 0; i < offenders->len; i++) {
    const HostPciDevice *device = offenders->pdata[i];
    VfioRecord *companion = vfio_record_new(&device->addr, TRUE, error);

    if (companion == NULL)
      return FALSE;
    g_ptr_array_add(planned, companion);
  }
  /* all or nothing: a half-planned group is no plan */
  for (guint i = 0; i < planned->len; i++)
    g_ptr_array_add(record->companions, vfio_record_ref(planned->pdata[i]));
  record->group_planned = TRUE;
  return TRUE;
}

const VfioRecord *
vfio_record_find_companion(const VfioRecord *record, const PciAddress *addr)
{
  for (guint i = 0; i < record->companions->len; i++) {
    const VfioRecord *companion = record->companions->pdata[i];
    if (pci_address_compare(&companion->addr, addr) == 0)
      return companion;
  }
  return NULL;
}

gboolean
vfio_record_leave_binding(VfioRecord *record, const PciAddress *addr)
{
  VfioRecord *device = pci_address_compare(&record->addr, addr) == 0
                       ? record : (VfioRecord *)vfio_record_find_companion(record, addr);
  gboolean had_steps = device != NULL && (device->override_written || device->unbound ||
                                          device->probed || device->bound_by_us);

  if (had_steps)
    device->override_written = device->unbound = device->probed = device->bound_by_us = FALSE;
  return had_steps;
}

/* HostError when an endpoint of the group is in the way that the plan
 * does not hold, or holds on another driver. */
static gboolean
check_group_as_planned(const VfioRecord *record, GError **error)
{
  g_autoptr(GPtrArray) offenders = NULL;

  if (record->companions->len == 0)
    return vfio_group_check_viable_joining(record->group, &record->addr, record->joining,
                                           error);
  /* each planned companion still as it was when journaled */
  for (guint i = 0; i < record->companions->len; i++) {
    const VfioRecord *companion = record->companions->pdata[i];
    g_autoptr(GError) local_error = NULL;
    g_autofree char *now = NULL;

    if (!vfio_record_is_clean(companion))
      continue; /* bound by an earlier attempt */
    now = current_driver(&companion->addr, &local_error);
    if (local_error != NULL) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "IOMMU group %d changed since hostdevd planned to take it whole: %s; "
                  "nothing of the group was bound, try again", record->group,
                  local_error->message);
      return FALSE;
    }
    if (g_strcmp0(now, companion->original_driver) != 0) {
      g_autofree char *bdf = pci_address_format(&companion->addr);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "IOMMU group %d changed since hostdevd planned to take it whole: "
                  "%s is now on %s%s, planned on %s%s; nothing of the group was bound, "
                  "try again", record->group, bdf, now ? "driver " : "no driver",
                  now ? now : "", companion->original_driver ? "driver " : "no driver",
                  companion->original_driver ? companion->original_driver : "");
      return FALSE;
    }
  }
  /* and no other endpoint in the way */
  offenders = group_offenders(record->group, &record->addr, record->joining, error);
  if (offenders == NULL)
    return FALSE;
  for (guint i = 0; i < offenders->len; i++) {
    const HostPciDevice *device = offenders->pdata[i];
    const VfioRecord *companion = vfio_record_find_companion(record, &device->addr);

    if (companion == NULL) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "IOMMU group %d changed since hostdevd planned to take it whole: "
                  "%s is now in the way on driver %s, not planned; nothing of the group "
                  "was bound, try again", record->group, device->name, device->driver);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
vfio_step_take_group(VfioRecord *record, gboolean take_whole_group, GError **error)
{
  if (!vfio_record_plan_group(record, take_whole_group, error) ||
      !check_group_as_planned(record, error))
    return FALSE;
  for (guint i = 0; i < record->companions->len; i++) {
    VfioRecord *companion = record->companions->pdata[i];
    g_autoptr(GError) local_error = NULL;

    if (!vfio_step_bind(companion, &local_error)) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "taking the whole IOMMU group %d failed: %s",
                  record->group, local_error->message);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
vfio_step_wait_node(VfioRecord *record, GError **error)
{
  g_autofree char *node = host_path("dev/vfio/%d", record->group);
  g_autofree char *bdf = NULL;

  if (wait_until(path_exists, node, NULL))
    return TRUE;
  bdf = pci_address_format(&record->addr);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "PCI device %s is on vfio-pci, but /dev/vfio/%d (its IOMMU "
              "group) did not appear within %u ms: check that devtmpfs is "
              "mounted on /dev and that udev is running "
              "(`udevadm settle`), and dmesg for vfio errors",
              bdf, record->group, wait_ms);
  return FALSE;
}

gid_t
vfio_node_group(void)
{
  g_autofree char *container = host_path("dev/vfio/vfio");
  struct stat st;
  return stat(container, &st) == 0 ? st.st_gid : (gid_t)-1;
}

gboolean
vfio_node_owner_is_ours(uid_t owner, gid_t group, uid_t uid, gid_t gid)
{
  return (owner == 0 || owner == uid) &&
         (group == 0 || group == gid || group == vfio_node_group());
}

gboolean
vfio_step_chown(VfioRecord *record, uid_t uid, gid_t gid,
                const VfioRecord *sibling, GError **error)
{
  g_autofree char *node = host_path("dev/vfio/%d", record->group);
  g_autoptr(GError) local_error = NULL;
  struct stat st;
  const char *hint;
  int err;

  if (uid == (uid_t)-1)
    return TRUE;
  if (stat(node, &st) < 0) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read the owner of /dev/vfio/%d: %s", record->group,
                g_strerror(saved));
    return FALSE;
  }

  if (sibling != NULL && sibling->group == record->group && sibling->chowned_by_us) {
    record->node_uid_before = sibling->node_uid_before;
    record->node_gid_before = sibling->node_gid_before;
    record->node_mode_before = sibling->node_mode_before;
    record->node_before_known = TRUE;
  } else if (!vfio_node_owner_is_ours(st.st_uid, st.st_gid, uid, gid)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "/dev/vfio/%d belongs to uid %u gid %u, neither root nor QEMU's user (uid %u "
                "gid %u): another user was given this IOMMU group, and hostdevd would not give "
                "it back to them; if it is free, `chown root:root /dev/vfio/%d` and try again",
                record->group, (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)uid,
                (unsigned)gid, record->group);
    return FALSE;
  } else {
    /* planned (and journaled) before, when the node existed then */
    if (!record->node_before_known) {
      record->node_uid_before = st.st_uid;
      record->node_gid_before = st.st_gid;
      record->node_mode_before = st.st_mode & 07777;
      record->node_before_known = TRUE;
    }
    if (st.st_uid == uid && st.st_gid == gid && (st.st_mode & 07777) == 0600)
      return TRUE; /* nothing to change, nothing to give back */
  }
  err = host_chown(node, uid, gid, &local_error);
  if (err == 0) {
    /* from here on there is something to give back, even if chmod fails */
    record->chowned_by_us = TRUE;
    err = host_chmod(node, 0600, &local_error);
  }
  if (err == 0)
    return TRUE;

  hint = err == EPERM ? "hostdevd needs CAP_CHOWN and CAP_FOWNER (and, "
                        "under systemd, chown allowed by SystemCallFilter=)"
       : err == EROFS ? "/dev is read-only for hostdevd (ProtectSystem / "
                        "PrivateDevices=?)"
       : "check the node";
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot give QEMU (uid %u, gid %u) access to /dev/vfio/%d: %s; %s",
              (unsigned)uid, (unsigned)gid, record->group, local_error->message, hint);
  return FALSE;
}

/* Say in @error how the undo after a failed preparation went. */
static void
append_undo_outcome(GError **error, const VfioRecord *record, gboolean undone,
                    const GError *undo_error)
{
  char *message;

  if (error == NULL || *error == NULL)
    return;
  if (undone)
    message = g_strdup_printf("%s; nothing was changed: the device is %s%s",
                              (*error)->message,
                              record->original_driver ? "on its driver " : "unbound",
                              record->original_driver ? record->original_driver : "");
  else
    message = g_strdup_printf("%s; giving the device back failed too: %s",
                              (*error)->message, undo_error->message);
  g_free((*error)->message);
  (*error)->message = message;
}

VfioRecord *
vfio_prepare(const PciAddress *addr, gboolean managed, gboolean take_whole_group,
             uid_t uid, gid_t gid, const VfioRecord *sibling, GError **error)
{
  g_autoptr(VfioRecord) record = vfio_record_new(addr, managed, error);
  g_autoptr(GError) undo_error = NULL;
  gboolean undone;

  if (record == NULL)
    return NULL;
  if (!vfio_record_plan_group(record, take_whole_group, error))
    return NULL;
  vfio_record_plan_node(record, sibling);
  if (vfio_step_take_group(record, take_whole_group, error) &&
      vfio_step_bind(record, error) &&
      vfio_step_wait_node(record, error) &&
      vfio_step_chown(record, uid, gid, sibling, error))
    return g_steal_pointer(&record);

  undone = vfio_undo(record, &undo_error);
  append_undo_outcome(error, record, undone, undo_error);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Giving back                                                         */

static void
keep_first(GError **first, GError *error)
{
  if (error == NULL)
    return;
  g_warning("%s", error->message);
  if (*first == NULL)
    *first = error;
  else
    g_error_free(error);
}

static gboolean
undo_ownership(VfioRecord *record, GError **error)
{
  g_autofree char *node = host_path("dev/vfio/%d", record->group);
  g_autoptr(GError) local_error = NULL;
  int err;

  if (!record->chowned_by_us)
    return TRUE;
  if (!g_file_test(node, G_FILE_TEST_EXISTS)) {
    /* gone with the last device of the group leaving vfio-pci */
    record->chowned_by_us = FALSE;
    return TRUE;
  }
  err = host_chown(node, record->node_uid_before, record->node_gid_before, &local_error);
  if (err == 0)
    err = host_chmod(node, record->node_mode_before, &local_error);
  if (err != 0 && err != ENOENT) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot give /dev/vfio/%d back to uid %u gid %u mode %04o: %s",
                record->group, (unsigned)record->node_uid_before,
                (unsigned)record->node_gid_before,
                (unsigned)record->node_mode_before, local_error->message);
    return FALSE;
  }
  record->chowned_by_us = FALSE;
  return TRUE;
}

/*
 * undo_unbind() - the first half of giving one device's binding back (not
 * its companions): driver_override restored, and off vfio-pci (or a driver
 * our probe caused).  The host driver is probed for in undo_probe() only
 * once every device of the group is off vfio-pci: the kernel refuses a
 * host driver for a device while another member of its IOMMU group is
 * still owned by vfio (drivers_probe fails with EINVAL).
 */
static gboolean
undo_unbind(VfioRecord *record, GError **error)
{
  g_autofree char *bdf = pci_address_format(&record->addr);
  g_autofree char *now = NULL;
  g_autoptr(GError) local_error = NULL;
  gboolean we_moved_it = record->unbound || record->probed || record->bound_by_us;

  if (record->override_written) {
    g_autofree char *value = g_strconcat(record->original_override ?
                                         record->original_override : "", "\n", NULL);

    if (!write_override(record, bdf, value, "restore driver_override of", error))
      return FALSE;
    record->override_written = FALSE;
  }
  if (!we_moved_it)
    return TRUE;

  now = current_driver(&record->addr, &local_error);
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  /* whatever our probe bound it to (vfio-pci, normally) lets go first;
   * this is the write the kernel blocks while QEMU holds the device */
  if (now != NULL && g_strcmp0(now, record->original_driver) != 0) {
    if (!driver_name_safe_for_path(now)) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s has an unexpected driver name '%s'", bdf, now);
      return FALSE;
    }
    if (!write_unbind(bdf, now, error))
      return FALSE;
  }
  record->bound_by_us = FALSE;
  record->probed = FALSE;
  return TRUE;
}

/* Where an undo is, for a Timeout message that names the slow step. */
typedef enum {
  UNDO_PHASE_RELEASE,    /* restoring, unbinding: blocks while QEMU holds the device */
  UNDO_PHASE_QEMU_EXIT,  /* waiting for an exiting QEMU to be gone */
  UNDO_PHASE_PROBE,      /* probing and waiting for the host drivers */
} UndoPhase;

static void
set_phase(gint *phase, UndoPhase value)
{
  if (phase != NULL)
    g_atomic_int_set(phase, value);
}

/* Add @suffix to the message of *@error. */
static void
append_to_error(GError **error, const char *suffix)
{
  char *message;

  if (error == NULL || *error == NULL)
    return;
  message = g_strconcat((*error)->message, suffix, NULL);
  g_free((*error)->message);
  (*error)->message = message;
}

/*
 * write_probe_retrying() - drivers_probe for @addr, again while the
 * kernel answers EINVAL or EBUSY (its IOMMU group not given back yet:
 * the container of an exiting QEMU still being torn down), until
 * @deadline (monotonic, µs).  At least one attempt is made.
 */
static gboolean
write_probe_retrying(const PciAddress *addr, const char *bdf, gint64 deadline, GError **error)
{
  g_autofree char *path = host_path("sys/bus/pci/drivers_probe");
  gint64 started = g_get_monotonic_time();
  gulong pause_us = 20000;
  guint attempts = 0;

  for (;;) {
    g_autoptr(GError) local_error = NULL;
    int err = host_write_attr(path, bdf, &local_error);
    g_autofree char *driver = NULL;
    gint64 now;

    attempts++;
    if (err == 0)
      return TRUE;
    now = g_get_monotonic_time();
    if ((err != EINVAL && err != EBUSY) || now >= deadline) {
      set_write_error(error, err, bdf, "probe drivers for", local_error);
      if (attempts > 1) {
        g_autofree char *tries = g_strdup_printf(" (refused %u times over %" G_GINT64_FORMAT
                                                 " ms)", attempts, (now - started) / 1000);
        append_to_error(error, tries);
      }
      return FALSE;
    }
    /* a driver may have taken it meanwhile after all */
    driver = current_driver(addr, NULL);
    if (driver != NULL)
      return TRUE;
    g_usleep((gulong)MIN((gint64)pause_us, deadline - now));
    pause_us = MIN(pause_us * 2, 500000);
  }
}

/* undo_probe() - the second half: the original driver probed for and waited for. */
static gboolean
undo_probe(VfioRecord *record, gint64 deadline, GError **error)
{
  g_autofree char *bdf = pci_address_format(&record->addr);
  g_autofree char *now = NULL;
  g_autoptr(GError) local_error = NULL;

  if (!record->unbound)
    return TRUE;
  now = current_driver(&record->addr, &local_error);
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  if (record->original_driver == NULL || now != NULL) {
    record->unbound = FALSE;
    return TRUE;
  }
  if (!write_probe_retrying(&record->addr, bdf, deadline, error))
    return FALSE;
  if (!wait_until(driver_is, &record->addr, record->original_driver)) {
    g_autofree char *got = current_driver(&record->addr, NULL);

    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "PCI device %s did not return to its driver %s within %u ms "
                "(it is %s%s): load the driver (`modprobe %s`) or bind it "
                "by hand: echo %s > /sys/bus/pci/drivers/%s/bind",
                bdf, record->original_driver, wait_ms,
                got ? "on " : "unbound", got ? got : "",
                record->original_driver, bdf, record->original_driver);
    return FALSE;
  }
  record->unbound = FALSE;
  return TRUE;
}

/* Return: whether undoing @record will probe a host driver. */
static gboolean
needs_probe(const VfioRecord *record)
{
  if (record->unbound && record->original_driver != NULL)
    return TRUE;
  for (guint i = 0; i < record->companions->len; i++)
    if (needs_probe(record->companions->pdata[i]))
      return TRUE;
  return FALSE;
}

/*
 * wait_process_gone() - wait until process @pid (started at @start_time,
 * 0 unknown) has exited, at most until @deadline (monotonic, µs).
 * A pidfd becomes readable when the process has exited, its files closed;
 * without pidfd_open (Linux < 5.3, or refused) /proc is polled.
 * Return: whether it is gone.
 */
static gboolean
wait_process_gone(pid_t pid, guint64 start_time, gint64 deadline)
{
  gulong pause_us = 5000;

  if (!process_identity_alive(&(ProcessIdentity){ pid, start_time }))
    return TRUE;
#ifdef SYS_pidfd_open
  if (use_pidfd) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (fd < 0 && errno == ESRCH)
      return TRUE;
    if (fd >= 0) {
      gboolean gone = FALSE;

      /* the pid may have been recycled before the open: check it is still the one */
      if (!process_identity_alive(&(ProcessIdentity){ pid, start_time })) {
        close(fd);
        return TRUE;
      }
      for (;;) {
        struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
        gint64 left_ms = (deadline - g_get_monotonic_time() + 999) / 1000;
        int rc = poll(&poll_fd, 1, (int)CLAMP(left_ms, 0, G_MAXINT));

        if (rc > 0) {
          gone = TRUE;
          break;
        }
        if (rc == 0 || errno != EINTR)
          break;
      }
      close(fd);
      if (gone || g_get_monotonic_time() >= deadline)
        return gone;
      /* poll failed: go on with /proc */
    }
  }
#endif
  while (process_identity_alive(&(ProcessIdentity){ pid, start_time })) {
    gint64 now = g_get_monotonic_time();

    if (now >= deadline)
      return FALSE;
    g_usleep((gulong)MIN((gint64)pause_us, deadline - now));
    pause_us = MIN(pause_us * 2, 50000);
  }
  return TRUE;
}

/*
 * undo_all() - vfio_undo(), after an exiting QEMU when @wait says so
 * @phase: (nullable): where it is, updated as it goes
 */
static gboolean
undo_all(VfioRecord *record, const HostReleaseWait *wait, gint *phase, GError **error)
{
  GError *first = NULL;
  GError *local_error = NULL;
  guint n = record->companions->len;
  gint64 deadline;

  set_phase(phase, UNDO_PHASE_RELEASE);
  if (!undo_ownership(record, &local_error))
    keep_first(&first, g_steal_pointer(&local_error));
  /* every device of the group leaves vfio-pci before any host driver
   * returns (the device first, then its companions, newest first) */
  if (!undo_unbind(record, &local_error))
    keep_first(&first, g_steal_pointer(&local_error));
  for (guint i = n; i > 0; i--) {
    VfioRecord *companion = record->companions->pdata[i - 1];
    if (!undo_ownership(companion, &local_error) || !undo_unbind(companion, &local_error))
      keep_first(&first, g_steal_pointer(&local_error));
  }
  /* a device still on vfio-pci is not probed: the record keeps saying so,
   * and a later attempt unbinds and probes it */
  if (first != NULL) {
    g_propagate_error(error, first);
    return FALSE;
  }

  deadline = g_get_monotonic_time() + (gint64)VFIO_PROBE_RETRY_MS * 1000;
  if (wait != NULL && wait->qemu > 0 && needs_probe(record)) {
    guint timeout_ms = wait->timeout_ms ? wait->timeout_ms : VFIO_DEFAULT_EXIT_WAIT_MS;
    gint64 exit_deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    /* the unbind returned when QEMU closed the device; the group's memory
     * is unpinned and its DMA ownership dropped only as the process ends */
    set_phase(phase, UNDO_PHASE_QEMU_EXIT);
    if (!wait_process_gone(wait->qemu, wait->start_time, exit_deadline)) {
      g_autofree char *bdf = pci_address_format(&record->addr);
      g_warning("PCI device %s: QEMU (pid %d) is still exiting after %u ms; probing the "
                "host driver anyway", bdf, (int)wait->qemu, timeout_ms);
    }
    deadline = MAX(exit_deadline, g_get_monotonic_time() + (gint64)VFIO_PROBE_RETRY_MS * 1000);
  }

  set_phase(phase, UNDO_PHASE_PROBE);
  if (!undo_probe(record, deadline, &local_error))
    keep_first(&first, g_steal_pointer(&local_error));
  for (guint i = n; i > 0; i--)
    if (!undo_probe(record->companions->pdata[i - 1], deadline, &local_error))
      keep_first(&first, g_steal_pointer(&local_error));

  if (first != NULL) {
    g_propagate_error(error, first);
    return FALSE;
  }
  return TRUE;
}

gboolean
vfio_undo(VfioRecord *record, GError **error)
{
  return undo_all(record, NULL, NULL, error);
}

/* Shared by the task, its timeout and the worker. */
typedef struct {
  gint ref;
  GMutex lock;
  VfioRecord *record;
  GTask *task;                 /* NULL once returned */
  GSource *timeout;
  GMainContext *context;
  GCancellable *cancellable;
  gulong cancel_id;
  VfioLateRestoreFunc late;
  gpointer late_data;
  GError *late_error;          /* the worker's outcome after a timeout */
  guint timeout_ms;
  gboolean has_wait;
  HostReleaseWait wait;        /* the exiting QEMU, when has_wait */
  gint phase;                  /* UndoPhase, set by the worker */
} Restore;

static Restore *
restore_ref(Restore *restore)
{
  g_atomic_int_inc(&restore->ref);
  return restore;
}

static void
restore_unref(Restore *restore)
{
  if (!g_atomic_int_dec_and_test(&restore->ref))
    return;
  g_mutex_clear(&restore->lock);
  vfio_record_unref(restore->record);
  g_clear_object(&restore->task);
  g_clear_pointer(&restore->context, g_main_context_unref);
  g_clear_object(&restore->cancellable);
  g_clear_error(&restore->late_error);
  g_free(restore);
}

/* Under the lock: take the task to return it, NULL if already returned. */
static GTask *
restore_take_task(Restore *restore)
{
  GTask *task;

  g_mutex_lock(&restore->lock);
  task = g_steal_pointer(&restore->task);
  g_mutex_unlock(&restore->lock);
  return task;
}

static void
restore_stop_timeout(Restore *restore)
{
  if (restore->timeout != NULL) {
    g_source_destroy(restore->timeout);
    g_clear_pointer(&restore->timeout, g_source_unref);
  }
  if (restore->cancel_id != 0) {
    g_cancellable_disconnect(restore->cancellable, restore->cancel_id);
    restore->cancel_id = 0;
  }
}

static void
restore_give_up(Restore *restore, const char *why)
{
  g_autoptr(GTask) task = restore_take_task(restore);
  g_autofree char *bdf = pci_address_format(&restore->record->addr);

  if (task == NULL)
    return;
  /* name the step that is slow: blaming QEMU for a slow driver misleads */
  switch ((UndoPhase)g_atomic_int_get(&restore->phase)) {
  case UNDO_PHASE_QEMU_EXIT:
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_TIMEOUT,
                            "PCI device %s is off vfio-pci, but QEMU (pid %d) is still "
                            "exiting %s: the kernel gives its IOMMU group back only once "
                            "QEMU's guest memory is unpinned, which takes longer for large "
                            "guests. Its host driver is probed as soon as QEMU is gone",
                            bdf, (int)restore->wait.qemu, why);
    break;
  case UNDO_PHASE_PROBE:
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_TIMEOUT,
                            "PCI device %s is off vfio-pci and QEMU has let go of it, but "
                            "its host driver %s has not taken it back yet %s: the driver's "
                            "probe is slow (dmesg says what it is doing). It goes on, and "
                            "the device is the host's once the driver is done",
                            bdf, restore->record->original_driver
                                 ? restore->record->original_driver : "", why);
    break;
  case UNDO_PHASE_RELEASE:
  default:
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_TIMEOUT,
                            "PCI device %s is still held by QEMU: the kernel "
                            "keeps its unbind from vfio-pci waiting %s. The "
                            "device goes back to the host as soon as QEMU "
                            "releases it (device_del completed, or QEMU exited)",
                            bdf, why);
    break;
  }
}

static gboolean
on_restore_timeout(gpointer data)
{
  Restore *restore = data;
  g_autofree char *why = g_strdup_printf("(more than %u ms so far)", restore->timeout_ms);

  g_clear_pointer(&restore->timeout, g_source_unref);
  restore_give_up(restore, why);
  return G_SOURCE_REMOVE;
}

static gboolean
on_restore_cancelled_idle(gpointer data)
{
  restore_give_up(data, "(the wait was cancelled)");
  return G_SOURCE_REMOVE;
}

static void
on_restore_cancelled(GCancellable *cancellable, gpointer data)
{
  Restore *restore = data;

  /* may run in any thread: hop to the caller's context */
  g_main_context_invoke_full(restore->context, G_PRIORITY_DEFAULT,
                             on_restore_cancelled_idle, restore_ref(restore),
                             (GDestroyNotify)restore_unref);
}

/* In the caller's context, after the worker finished. */
static gboolean
on_restore_done(gpointer data)
{
  Restore *restore = data;
  g_autoptr(GTask) task = restore_take_task(restore);

  restore_stop_timeout(restore);
  if (task != NULL) {
    if (restore->late_error != NULL)
      g_task_return_error(task, g_steal_pointer(&restore->late_error));
    else
      g_task_return_boolean(task, TRUE);
    return G_SOURCE_REMOVE;
  }
  /* the caller was told Timeout: now tell how it ended */
  if (restore->late_error == NULL) {
    g_autofree char *bdf = pci_address_format(&restore->record->addr);
    g_message("PCI device %s is back on the host (after more than %u ms)", bdf,
              restore->timeout_ms);
  } else {
    g_warning("%s", restore->late_error->message);
  }
  if (restore->late != NULL)
    restore->late(restore->record, restore->late_error, restore->late_data);
  return G_SOURCE_REMOVE;
}

static gpointer
restore_worker(gpointer data)
{
  Restore *restore = data;
  GError *local_error = NULL;

  if (!undo_all(restore->record, restore->has_wait ? &restore->wait : NULL,
                &restore->phase, &local_error))
    restore->late_error = local_error;
  g_main_context_invoke_full(restore->context, G_PRIORITY_DEFAULT,
                             on_restore_done, restore, (GDestroyNotify)restore_unref);
  return NULL;
}

/* The restores' own threads, kept idle between restores; NULL until the
 * process may keep idle threads (vfio_restore_keep_threads()). */
static GThreadPool *restore_pool;

static void
restore_in_pool(gpointer data, gpointer unused)
{
  restore_worker(data);
}

void
vfio_restore_keep_threads(void)
{
  g_autoptr(GError) error = NULL;

  /* unbounded: a blocked unbind holds its thread, never the next restore */
  if (restore_pool == NULL &&
      (restore_pool = g_thread_pool_new(restore_in_pool, NULL, -1, FALSE, &error)) == NULL)
    g_warning("restores start a thread each: %s", error->message);
}

/* Return: whether @restore's worker runs (or is queued to, on a kept thread). */
static gboolean
restore_start_worker(Restore *restore, GError **error)
{
  GThread *thread;

  if (restore_pool != NULL) {
    g_autoptr(GError) local = NULL;
    /* queued even when no new thread could be started: a kept one takes it */
    if (!g_thread_pool_push(restore_pool, restore_ref(restore), &local))
      g_warning("the restore waits for a thread: %s", local->message);
    return TRUE;
  }
  thread = g_thread_try_new("vfio-restore", restore_worker, restore_ref(restore), error);
  if (thread == NULL) {
    restore_unref(restore); /* the worker's */
    return FALSE;
  }
  g_thread_unref(thread);
  return TRUE;
}

void
vfio_restore_async(VfioRecord *record, guint timeout_ms, const HostReleaseWait *wait,
                   VfioLateRestoreFunc late, gpointer late_data,
                   GCancellable *cancellable,
                   GAsyncReadyCallback callback, gpointer user_data)
{
  Restore *restore = g_new0(Restore, 1);
  g_autoptr(GError) error = NULL;

  g_atomic_int_set(&restore->ref, 1);
  g_mutex_init(&restore->lock);
  restore->record = vfio_record_ref(record);
  restore->task = g_task_new(NULL, cancellable, callback, user_data);
  g_task_set_source_tag(restore->task, vfio_restore_async);
  /* a cancelled wait is reported as our Timeout, which says more */
  g_task_set_check_cancellable(restore->task, FALSE);
  restore->context = g_main_context_ref_thread_default();
  restore->late = late;
  restore->late_data = late_data;
  restore->timeout_ms = timeout_ms ? timeout_ms : VFIO_DEFAULT_RESTORE_TIMEOUT_MS;
  if (wait != NULL) {
    restore->has_wait = TRUE;
    restore->wait = *wait;
  }

  restore->timeout = g_timeout_source_new(restore->timeout_ms);
  g_source_set_callback(restore->timeout, on_restore_timeout, restore, NULL);
  g_source_attach(restore->timeout, restore->context);
  if (cancellable != NULL) {
    restore->cancellable = g_object_ref(cancellable);
    restore->cancel_id = g_cancellable_connect(cancellable, G_CALLBACK(on_restore_cancelled),
                                               restore, NULL);
  }

  /* never on GTask's pool: a blocked unbind may hold its thread for as long
   * as QEMU keeps the device, and the pool is bounded */
  if (!restore_start_worker(restore, &error)) {
    g_autoptr(GTask) task = restore_take_task(restore);

    restore_stop_timeout(restore);
    g_task_return_new_error(task, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                            "cannot start a thread to give the device back: %s",
                            error->message);
  }
  restore_unref(restore);
}

gboolean
vfio_restore_finish(GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}

/* ------------------------------------------------------------------ */
/* hostdevctl nodedev-detach / nodedev-reattach                         */

VfioRecord *
vfio_detach_from_host(const PciAddress *addr, GError **error)
{
  g_autoptr(VfioRecord) record = vfio_record_new(addr, TRUE, error);
  g_autoptr(GError) undo_error = NULL;
  gboolean undone;

  if (record == NULL)
    return NULL;
  /* no viability check: binding one function never hurts the group */
  if (vfio_step_bind(record, error) && vfio_step_wait_node(record, error))
    return g_steal_pointer(&record);
  undone = vfio_undo(record, &undo_error);
  append_undo_outcome(error, record, undone, undo_error);
  return NULL;
}

typedef struct {
  PciAddress addr;
  GMutex lock;
  GCond done_cond;
  gboolean done;
  gint ref;
  GError *error;
  char *driver;
} Reattach;

static void
reattach_unref(Reattach *reattach)
{
  if (!g_atomic_int_dec_and_test(&reattach->ref))
    return;
  g_mutex_clear(&reattach->lock);
  g_cond_clear(&reattach->done_cond);
  g_clear_error(&reattach->error);
  g_free(reattach->driver);
  g_free(reattach);
}

/* What a reattach changed so far, to put back when a later step fails. */
typedef struct {
  const PciAddress *addr;
  const char *bdf;
  char *override;            /* driver_override before, NULL: none */
  gboolean override_cleared; /* a driver_override of vfio-pci cleared */
  gboolean unbound;          /* off vfio-pci */
} ReattachSteps;

/* Put the device back on vfio-pci with its driver_override, as it was
 * before the reattach began.  Return: whether it is. */
static gboolean
reattach_put_back(ReattachSteps *steps, GError **error)
{
  g_autoptr(VfioRecord) scratch = record_alloc();
  g_autofree char *restored = g_strconcat(steps->override ? steps->override : "", "\n", NULL);
  g_autofree char *now = NULL;

  scratch->addr = *steps->addr;
  if (steps->unbound) {
    now = current_driver(steps->addr, NULL);
    if (now == NULL) {
      /* the override makes vfio-pci the only driver the probe may bind,
       * and the kernel lets vfio-pci into a group a VM uses */
      if (!write_override(scratch, steps->bdf, "vfio-pci", "set driver_override=vfio-pci on",
                          error))
        return FALSE;
      steps->override_cleared = TRUE; /* whatever it was, it is restored below */
      if (!write_probe(steps->bdf, error))
        return FALSE;
      if (!wait_until(driver_is, steps->addr, "vfio-pci")) {
        g_autofree char *got = current_driver(steps->addr, NULL);

        g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                    "vfio-pci did not take PCI device %s back within %u ms (it is %s%s)",
                    steps->bdf, wait_ms, got ? "on " : "unbound", got ? got : "");
        return FALSE;
      }
    } else if (g_strcmp0(now, "vfio-pci") != 0) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "PCI device %s is on driver %s now, not vfio-pci; it is left there", steps->bdf,
                  now);
      return FALSE;
    }
    steps->unbound = FALSE;
  }
  if (steps->override_cleared) {
    if (!write_override(scratch, steps->bdf, restored, "restore driver_override of", error))
      return FALSE;
    steps->override_cleared = FALSE;
  }
  return TRUE;
}

/* Say in @error whether the device was put back after a failed step. */
static void
reattach_fail(ReattachSteps *steps, GError **error)
{
  g_autoptr(GError) put_back_error = NULL;
  gboolean changed = steps->override_cleared || steps->unbound;
  char *message;

  if (error == NULL || *error == NULL)
    return;
  if (!changed)
    message = g_strdup_printf("%s; nothing was changed", (*error)->message);
  else if (reattach_put_back(steps, &put_back_error))
    message = g_strdup_printf("%s; the device was put back as it was: on vfio-pci, "
                              "driver_override %s", (*error)->message,
                              steps->override ? steps->override : "(none)");
  else
    message = g_strdup_printf("%s; putting the device back on vfio-pci failed too: %s",
                              (*error)->message, put_back_error->message);
  g_free((*error)->message);
  (*error)->message = message;
}

/* The steps of reattach_sync(), noted in @steps as they are done. */
static gboolean
reattach_steps(ReattachSteps *steps, const char *override, char **new_driver, GError **error)
{
  g_autoptr(VfioRecord) scratch = record_alloc();
  g_autofree char *now = NULL;
  g_autoptr(GError) local_error = NULL;

  now = current_driver(steps->addr, &local_error);
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  scratch->addr = *steps->addr;
  if (g_strcmp0(override, "vfio-pci") == 0) {
    if (!write_override(scratch, steps->bdf, "\n", "clear driver_override of", error))
      return FALSE;
    steps->override_cleared = TRUE;
  }
  if (g_strcmp0(now, "vfio-pci") == 0) {
    if (!write_unbind(steps->bdf, "vfio-pci", error))
      return FALSE;
    steps->unbound = TRUE;
  }
  g_clear_pointer(&now, g_free);
  now = current_driver(steps->addr, NULL);
  if (now == NULL) {
    if (!write_probe_retrying(steps->addr, steps->bdf,
                              g_get_monotonic_time() + (gint64)VFIO_PROBE_RETRY_MS * 1000,
                              error))
      return FALSE;
    now = current_driver(steps->addr, NULL);
  }
  if (new_driver)
    *new_driver = g_steal_pointer(&now);
  return TRUE;
}

static gboolean
reattach_sync(const PciAddress *addr, char **new_driver, GError **error)
{
  g_autofree char *bdf = pci_address_format(addr);
  g_autofree char *override_path = host_path("sys/bus/pci/devices/%s/driver_override", bdf);
  g_autofree char *override = host_read_attr(override_path, NULL);
  ReattachSteps steps = { addr, bdf, NULL, FALSE, FALSE };
  gboolean ok;

  if (override != NULL && *override != '\0' && strcmp(override, "(null)") != 0)
    steps.override = g_strdup(override);
  ok = reattach_steps(&steps, override, new_driver, error);
  if (!ok)
    reattach_fail(&steps, error);
  g_free(steps.override);
  return ok;
}

static gpointer
reattach_worker(gpointer data)
{
  Reattach *reattach = data;
  GError *local_error = NULL;
  char *driver = NULL;

  reattach_sync(&reattach->addr, &driver, &local_error);
  g_mutex_lock(&reattach->lock);
  reattach->error = local_error;
  reattach->driver = driver;
  reattach->done = TRUE;
  g_cond_signal(&reattach->done_cond);
  g_mutex_unlock(&reattach->lock);
  reattach_unref(reattach);
  return NULL;
}

gboolean
vfio_reattach_to_host(const PciAddress *addr, guint timeout_ms,
                      char **new_driver, GError **error)
{
  Reattach *reattach;
  GThread *thread;
  g_autofree char *bdf = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *driver = current_driver(addr, &local_error);
  gint64 deadline;
  gboolean finished;
  gboolean ok;

  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  reattach = g_new0(Reattach, 1);
  reattach->addr = *addr;
  g_mutex_init(&reattach->lock);
  g_cond_init(&reattach->done_cond);
  g_atomic_int_set(&reattach->ref, 2);
  thread = g_thread_try_new("vfio-reattach", reattach_worker, reattach, &local_error);
  if (thread == NULL) {
    reattach_unref(reattach);
    reattach_unref(reattach);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot start a thread: %s", local_error->message);
    return FALSE;
  }
  g_thread_unref(thread);

  deadline = g_get_monotonic_time() + (gint64)(timeout_ms ? timeout_ms
                                               : VFIO_DEFAULT_RESTORE_TIMEOUT_MS) * 1000;
  g_mutex_lock(&reattach->lock);
  while (!reattach->done)
    if (!g_cond_wait_until(&reattach->done_cond, &reattach->lock, deadline))
      break;
  finished = reattach->done;
  ok = finished;
  if (finished) {
    if (reattach->error != NULL) {
      g_propagate_error(error, g_steal_pointer(&reattach->error));
      ok = FALSE;
    } else if (new_driver) {
      *new_driver = g_steal_pointer(&reattach->driver);
    }
  }
  g_mutex_unlock(&reattach->lock);
  if (!finished) {
    bdf = pci_address_format(addr);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_TIMEOUT,
                "PCI device %s is still held by a QEMU process: the kernel "
                "keeps its unbind from vfio-pci waiting until QEMU releases "
                "it; detach it from the VM first", bdf);
    ok = FALSE;
  }
  reattach_unref(reattach);
  return ok;
}
