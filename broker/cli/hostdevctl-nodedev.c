/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdevctl-nodedev.c - hostdevctl's host-only verbs
 *
 * Output and exit codes follow virsh: `nodedev-list` one name per line,
 * `nodedev-dumpxml` the XML, "Device NAME detached" / "re-attached".
 * Errors go to stderr as "error: ...", exit 1; usage errors exit 2.
 * Devices a VM holds (a live claim in the runtime directory) are not
 * touched, nor given back to the host while a VM uses their IOMMU group.
 * A device a VM that is gone left behind is the administrator's once
 * detached or re-attached here: a note says so (claims.h), and that VM's
 * next hostdevd leaves its driver as it is.
 */
#define G_LOG_DOMAIN "hostdevctl"

#include "hostdevctl-nodedev.h"
#include "claims.h"
#include "control-proto.h"
#include "host-pci.h"
#include "host-root.h"
#include "hostdevd-error.h"
#include "mdev.h"
#include "nodedev.h"
#include "sriov.h"
#include "vfio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

typedef struct {
  const char *verb;
  guint min_operands;
  guint max_operands;
  const char *operands;
} HostVerb;

static const HostVerb host_verbs[] = {
  { "nodedev-list", 0, 0, "" },
  { "nodedev-dumpxml", 1, 1, " NAME" },
  { "nodedev-detach", 1, 1, " NAME" },
  { "nodedev-reattach", 1, 1, " NAME" },
  { "nodedev-set-numvfs", 2, 2, " NAME N" },
  { "mdev-create", 2, 3, " PARENT TYPE [UUID]" },
  { "mdev-remove", 1, 1, " UUID" },
};

typedef struct {
  const char *host_root;
  gboolean json;
  gboolean tree;
  const char *cap;
  const char *vm;
  const char *index;
  double timeout_s;
  GPtrArray *positional;
} HostArgs;

const char *
hostdevctl_nodedev_usage(void)
{
  return
    "Host-only verbs (run in hostdevctl, no hostdevd needed):\n"
    "  nodedev-list [--cap pci|usb_device|mdev] [--tree] [--json]\n"
    "  nodedev-dumpxml NAME                node device XML (pci_0000_01_00_0, usb_1_1)\n"
    "  nodedev-detach NAME                 bind a PCI device to vfio-pci\n"
    "  nodedev-reattach NAME [--timeout S] give it back to its host driver\n"
    "  nodedev-set-numvfs NAME N           enable N SR-IOV VFs (0 disables)\n"
    "  mdev-create PARENT TYPE [UUID] [--vm NAME [--index N]]\n"
    "  mdev-remove UUID [--timeout S]\n"
    "  --host-root DIR                     read DIR/sys and DIR/dev (fixtures)\n";
}

/* Options that take a value, so that the verb scan skips the value. */
static gboolean
option_takes_value(const char *arg)
{
  static const char *const with_value[] = {
    "--host-root", "--cap", "--vm", "--index", "--timeout", "--wait", NULL,
  };

  return g_strv_contains(with_value, arg);
}

static const HostVerb *
find_verb(const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS(host_verbs); i++)
    if (g_strcmp0(host_verbs[i].verb, name) == 0)
      return &host_verbs[i];
  return NULL;
}

gboolean
hostdevctl_nodedev_handles(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-' && argv[i][1] == '-') {
      if (option_takes_value(argv[i]))
        i++;
      continue;
    }
    return find_verb(argv[i]) != NULL;
  }
  return FALSE;
}

static gboolean
parse_host_args(int argc, char **argv, HostArgs *args)
{
  args->positional = g_ptr_array_new();
  args->timeout_s = VFIO_DEFAULT_RESTORE_TIMEOUT_MS / 1000.0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;

    if (strcmp(arg, "--json") == 0) {
      args->json = TRUE;
    } else if (strcmp(arg, "--tree") == 0) {
      args->tree = TRUE;
    } else if (option_takes_value(arg)) {
      if (value == NULL) {
        g_printerr("hostdevctl: %s needs a value\n", arg);
        return FALSE;
      }
      i++;
      if (strcmp(arg, "--host-root") == 0)
        args->host_root = value;
      else if (strcmp(arg, "--cap") == 0)
        args->cap = value;
      else if (strcmp(arg, "--vm") == 0)
        args->vm = value;
      else if (strcmp(arg, "--index") == 0)
        args->index = value;
      else {
        char *end = NULL;
        double number = g_ascii_strtod(value, &end);

        if (end == value || *end != '\0' || !(number > 0 && number <= 3600)) {
          g_printerr("hostdevctl: %s needs a number of seconds from 0 to 3600\n", arg);
          return FALSE;
        }
        args->timeout_s = number;
      }
    } else if (arg[0] == '-' && arg[1] == '-') {
      g_printerr("hostdevctl: unknown option '%s'\n", arg);
      return FALSE;
    } else {
      g_ptr_array_add(args->positional, (gpointer)arg);
    }
  }
  return TRUE;
}

static int
fail(GError *error)
{
  g_printerr("error: %s\n", error->message);
  return EXIT_FAILURE;
}

static void
print_json_node(JsonNode *node)
{
  g_autoptr(JsonGenerator) generator = json_generator_new();
  g_autofree char *text = NULL;

  json_generator_set_root(generator, node);
  json_generator_set_pretty(generator, TRUE);
  text = json_generator_to_data(generator, NULL);
  printf("%s\n", text);
}

static int
cmd_list(const HostArgs *args)
{
  g_autoptr(GError) error = NULL;
  NodedevCap cap = NODEDEV_CAP_ANY;

  if (args->cap != NULL && !nodedev_cap_parse(args->cap, &cap, &error))
    return fail(error);
  if (args->json) {
    g_autoptr(JsonArray) inventory = nodedev_inventory_json(cap, &error);
    g_autoptr(JsonNode) node = NULL;

    if (inventory == NULL)
      return fail(error);
    node = json_node_init_array(json_node_alloc(), inventory);
    print_json_node(node);
    return EXIT_SUCCESS;
  }
  if (args->tree) {
    g_autofree char *tree = nodedev_format_tree(cap, &error);

    if (tree == NULL)
      return fail(error);
    fputs(tree, stdout);
    return EXIT_SUCCESS;
  }
  g_autoptr(GPtrArray) names = nodedev_list_names(cap, &error);
  if (names == NULL)
    return fail(error);
  for (guint i = 0; i < names->len; i++)
    printf("%s\n", (const char *)names->pdata[i]);
  return EXIT_SUCCESS;
}

/* Busy when a live VM (its hostdevd or its QEMU) claims @key. */
static gboolean
check_unclaimed(const char *key, const char *doing, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(Claim) claim = claims_lookup(control_runtime_dir(), key, &local_error);
  g_autofree char *what = NULL;
  g_autofree char *holder = NULL;
  g_autofree char *remedy = NULL;

  if (claim == NULL || claim->stale)
    return TRUE;
  what = claims_describe_key(key);
  holder = claims_describe_holder(claim);
  remedy = claims_describe_remedy(claim);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY, "%s is in use by %s; not %s it: %s",
              what, holder, doing, remedy);
  return FALSE;
}

static gboolean
check_pci_unclaimed(const PciAddress *addr, const char *doing, GError **error)
{
  g_autofree char *key = claims_key_pci(addr);

  return check_unclaimed(key, doing, error);
}

/* Return: (transfer full): the live claim on @key, NULL when there is
 * none (or it is stale, or cannot be read: as check_unclaimed()). */
static Claim *
live_claim(const char *key)
{
  g_autoptr(Claim) claim = claims_lookup(control_runtime_dir(), key, NULL);

  return claim != NULL && !claim->stale ? g_steal_pointer(&claim) : NULL;
}

/*
 * Busy when a live VM uses @addr's IOMMU group: a claim of another member
 * of the group, or the group's own claim (whole-group takeover binds
 * members without claims of their own).  The kernel gives no host driver
 * a device of a group whose DMA a VM's QEMU owns: the probe is refused, and
 * the device would be left without a driver.
 */
static gboolean
check_group_unclaimed(const PciAddress *addr, const char *doing, const char *reason,
                      GError **error)
{
  g_autoptr(GError) no_group = NULL;
  g_autoptr(GArray) members = NULL;
  g_autofree char *bdf = pci_address_format(addr);
  g_autofree char *group_key = NULL;
  g_autoptr(Claim) claim = NULL;
  int group = host_pci_get_iommu_group(addr, &no_group);

  if (group < 0)
    return TRUE; /* no group: nothing shared */
  members = host_pci_iommu_group_members(group, error);
  if (members == NULL)
    return FALSE;
  for (guint i = 0; i < members->len; i++) {
    const PciAddress *member = &g_array_index(members, PciAddress, i);
    g_autofree char *key = NULL;
    g_autofree char *other = NULL;
    g_autofree char *holder = NULL;
    g_autofree char *remedy = NULL;

    if (pci_address_compare(member, addr) == 0)
      continue;
    key = claims_key_pci(member);
    claim = live_claim(key);
    if (claim == NULL)
      continue;
    other = pci_address_format(member);
    holder = claims_describe_holder(claim);
    remedy = claims_describe_remedy(claim);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "PCI device %s shares IOMMU group %d with PCI device %s, which is in use "
                "by %s; not %s it: %s. For %s, %s; then try again",
                bdf, group, other, holder, doing, reason, other, remedy);
    return FALSE;
  }
  group_key = claims_key_iommu_group(group);
  claim = live_claim(group_key);
  if (claim != NULL) {
    g_autofree char *holder = claims_describe_holder(claim);
    g_autofree char *remedy = claims_describe_remedy(claim);

    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                "IOMMU group %d of PCI device %s is in use by %s; not %s it: %s. For "
                "the group's devices in that VM, %s; then try again",
                group, bdf, holder, doing, reason, remedy);
    return FALSE;
  }
  return TRUE;
}

/* The administrator's word on @addr, just carried out, outlives what a VM
 * that is gone left of it in its journal (claims_note_administered()). */
static void
note_administered(const PciAddress *addr, const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VfioRecord) now = vfio_record_new(addr, TRUE, &error);
  g_autofree char *key = claims_key_pci(addr);
  g_autofree char *group_key = now != NULL ? claims_key_iommu_group(now->group) : NULL;

  if (now == NULL ||
      !claims_note_administered(control_runtime_dir(), key, group_key, now->original_driver,
                                now->original_override, &error))
    g_printerr("warning: %s: this could not be noted (%s), so a VM that left the device "
               "may set it back when its hostdevd starts again; make the runtime directory "
               "usable and run the command again\n", name, error->message);
}

static int
cmd_detach(const char *name)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) not_viable = NULL;
  g_autoptr(VfioRecord) record = NULL;
  PciAddress addr;

  if (!pci_address_parse_nodedev(name, &addr, &error) ||
      !check_pci_unclaimed(&addr, "detaching", &error) ||
      !check_group_unclaimed(&addr, "detaching",
                             "the VM holding the group decides where its devices go "
                             "back to when it lets go of them", &error) ||
      !mdev_check_children_unclaimed(&addr, control_runtime_dir(), &error) ||
      !vfio_check_iommu(&error))
    return fail(error);
  record = vfio_detach_from_host(&addr, &error);
  if (record == NULL)
    return fail(error);
  note_administered(&addr, name);
  printf("Device %s detached\n", name);
  /* as virsh: one function at a time; QEMU needs the whole group later */
  if (!vfio_group_check_viable(record->group, NULL, &not_viable) && not_viable != NULL)
    g_printerr("note: %s\n", not_viable->message);
  return EXIT_SUCCESS;
}

static int
cmd_reattach(const char *name, double timeout_s)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *driver = NULL;
  PciAddress addr;

  if (!pci_address_parse_nodedev(name, &addr, &error) ||
      !check_pci_unclaimed(&addr, "re-attaching", &error) ||
      !check_group_unclaimed(&addr, "re-attaching",
                             "the kernel gives no host driver a device whose IOMMU group a "
                             "VM uses", &error))
    return fail(error);
  if (!vfio_reattach_to_host(&addr, (guint)(timeout_s * 1000), &driver, &error))
    return fail(error);
  note_administered(&addr, name);
  if (driver != NULL)
    printf("Device %s re-attached (driver %s)\n", name, driver);
  else
    printf("Device %s re-attached (no host driver took it)\n", name);
  return EXIT_SUCCESS;
}

static int
cmd_set_numvfs(const char *name, const char *count)
{
  g_autoptr(GError) error = NULL;
  PciAddress addr;
  guint64 numvfs;

  if (!pci_address_parse_nodedev(name, &addr, &error))
    return fail(error);
  if (!g_ascii_string_to_unsigned(count, 10, 0, 0xffff, &numvfs, NULL)) {
    g_printerr("hostdevctl: N must be a number of VFs from 0 to 65535\n");
    return EXIT_USAGE;
  }
  if (!sriov_set_numvfs(&addr, (guint)numvfs, control_runtime_dir(), &error))
    return fail(error);
  printf("Device %s now has %u VFs\n", name, (guint)numvfs);
  return EXIT_SUCCESS;
}

static int
cmd_mdev_create(const HostArgs *args, const char *parent, const char *type,
                const char *given_uuid)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *uuid = NULL;
  guint64 index = 0;

  if (given_uuid != NULL && (args->vm || args->index)) {
    g_printerr("hostdevctl: give either a UUID or --vm/--index, not both\n");
    return EXIT_USAGE;
  }
  if (args->index != NULL &&
      !g_ascii_string_to_unsigned(args->index, 10, 0, MDEV_VM_INDEX_LIMIT - 1, &index, NULL)) {
    /* hostdevd recognises a VM's own instances among these only */
    g_printerr("hostdevctl: --index needs a number from 0 to %u\n", MDEV_VM_INDEX_LIMIT - 1);
    return EXIT_USAGE;
  }
  if (given_uuid != NULL) {
    uuid = g_strdup(given_uuid);
  } else if (args->vm != NULL) {
    if (!control_vm_name_is_valid(args->vm)) {
      g_printerr("hostdevctl: --vm needs a VM name: 1-64 of A-Z a-z 0-9 . _ -\n");
      return EXIT_USAGE;
    }
    uuid = mdev_uuid_for_vm(args->vm, (guint)index);
  } else if (args->index != NULL) {
    g_printerr("hostdevctl: --index needs --vm\n");
    return EXIT_USAGE;
  } else {
    uuid = g_uuid_string_random();
  }
  if (!mdev_create(parent, type, uuid, &error))
    return fail(error);
  printf("%s\n", uuid);
  return EXIT_SUCCESS;
}

static int
cmd_mdev_remove(const char *uuid, double timeout_s)
{
  g_autoptr(GError) error = NULL;

  if (!mdev_remove(uuid, control_runtime_dir(), (guint)(timeout_s * 1000), &error))
    return fail(error);
  printf("Mediated device %s removed\n", uuid);
  return EXIT_SUCCESS;
}

int
hostdevctl_nodedev_main(int argc, char **argv)
{
  HostArgs args = { 0 };
  g_autoptr(GPtrArray) positional = NULL;
  const HostVerb *verb;
  guint operands;
  const char *op1, *op2, *op3;
  int status;

  if (!parse_host_args(argc, argv, &args)) {
    g_clear_pointer(&args.positional, g_ptr_array_unref);
    return EXIT_USAGE;
  }
  positional = args.positional;
  verb = positional->len ? find_verb(positional->pdata[0]) : NULL;
  if (verb == NULL) {
    g_printerr("hostdevctl: no host-only verb given\n");
    return EXIT_USAGE;
  }
  operands = positional->len - 1;
  if (operands < verb->min_operands || operands > verb->max_operands) {
    g_printerr("hostdevctl: '%s' takes%s; see hostdevctl --help\n", verb->verb,
               *verb->operands ? verb->operands : " no operands");
    return EXIT_USAGE;
  }
  if ((args.tree || args.cap) && strcmp(verb->verb, "nodedev-list") != 0) {
    g_printerr("hostdevctl: --cap and --tree go with nodedev-list only\n");
    return EXIT_USAGE;
  }
  if (args.tree && args.json) {
    g_printerr("hostdevctl: choose --tree or --json\n");
    return EXIT_USAGE;
  }
  if (args.host_root != NULL) {
    if (!g_file_test(args.host_root, G_FILE_TEST_IS_DIR)) {
      g_printerr("hostdevctl: --host-root %s is not a directory\n", args.host_root);
      return EXIT_USAGE;
    }
    host_root_set(args.host_root);
  }
  op1 = operands > 0 ? positional->pdata[1] : NULL;
  op2 = operands > 1 ? positional->pdata[2] : NULL;
  op3 = operands > 2 ? positional->pdata[3] : NULL;

  if (strcmp(verb->verb, "nodedev-list") == 0)
    status = cmd_list(&args);
  else if (strcmp(verb->verb, "nodedev-dumpxml") == 0) {
    g_autoptr(GError) error = NULL;
    g_autofree char *xml = nodedev_dumpxml(op1, &error);

    status = xml ? (fputs(xml, stdout), EXIT_SUCCESS) : fail(error);
  } else if (strcmp(verb->verb, "nodedev-detach") == 0)
    status = cmd_detach(op1);
  else if (strcmp(verb->verb, "nodedev-reattach") == 0)
    status = cmd_reattach(op1, args.timeout_s);
  else if (strcmp(verb->verb, "nodedev-set-numvfs") == 0)
    status = cmd_set_numvfs(op1, op2);
  else if (strcmp(verb->verb, "mdev-create") == 0)
    status = cmd_mdev_create(&args, op1, op2, op3);
  else
    status = cmd_mdev_remove(op1, args.timeout_s);
  fflush(stdout);
  return status;
}
