/* SPDX-License-Identifier: GPL-2.0-or-later */
#define G_LOG_DOMAIN "hostdevd"

#include "host-prep.h"
#include "json-text.h"
#include "claims.h"
#include "host-pci.h"
#include "hostdevd-error.h"
#include "mdev.h"
#include "usb-revoke.h"

#include <string.h>
#include <unistd.h>

HostPrep *
host_prep_new(void)
{
  HostPrep *prep = g_new0(HostPrep, 1);
  prep->claims = g_ptr_array_new_with_free_func(g_free);
  prep->fdset_id = -1;
  return prep;
}

void
host_prep_free(HostPrep *prep)
{
  if (prep == NULL)
    return;
  g_ptr_array_unref(prep->claims);
  g_clear_pointer(&prep->vfio, vfio_record_unref);
  g_free(prep->usb_port_disabled);
  g_free(prep->claims_runtime_dir);
  g_free(prep->claims_vm);
  claim_origin_free(prep->inherited_origin);
  g_free(prep);
}

gboolean
host_prep_is_empty(const HostPrep *prep)
{
  return prep == NULL || (prep->claims->len == 0 && prep->vfio == NULL && prep->fdset_id < 0 &&
                          prep->usb_port_disabled == NULL && !prep->vf_saved && !prep->memlock_saved);
}

char *
host_prep_to_journal(const HostPrep *prep, gboolean binding_in_flight)
{
  GString *out = g_string_sized_new(512);

  json_text_object_begin(out);
  json_text_member_string_array(out, "claims", prep->claims);
  if (prep->vfio) {
    /* in flight: the planned companions and chown are in the record too */
    json_text_member_name(out, "vfio");
    vfio_record_append_json(out, prep->vfio, binding_in_flight);
  }
  if (prep->fdset_id >= 0)
    json_text_member_int(out, "fdset-id", prep->fdset_id);
  if (prep->usb_follow)
    json_text_member_bool(out, "usb-follow", TRUE);
  if (prep->usb_port_disabled)
    json_text_member_string(out, "usb-port-disabled", prep->usb_port_disabled);
  if (prep->vf_saved) {
    json_text_member_name(out, "vf-before");
    sriov_vf_config_append_json(out, &prep->vf_before);
  }
  if (prep->memlock_saved) {
    /* as strings: RLIM_INFINITY does not fit JSON's integers */
    char soft[24], hard[24];
    g_snprintf(soft, sizeof soft, "%" G_GUINT64_FORMAT, prep->memlock_soft);
    g_snprintf(hard, sizeof hard, "%" G_GUINT64_FORMAT, prep->memlock_hard);
    json_text_member_name(out, "memlock-before");
    json_text_object_begin(out);
    json_text_member_string(out, "soft", soft);
    json_text_member_string(out, "hard", hard);
    json_text_object_end(out);
  }
  json_text_object_end(out);
  return g_string_free(out, FALSE);
}

HostPrep *
host_prep_from_json(JsonObject *object, GError **error)
{
  g_autoptr(HostPrep) prep = host_prep_new();
  JsonNode *node;

  if ((node = json_object_get_member(object, "claims")) && JSON_NODE_HOLDS_ARRAY(node)) {
    JsonArray *claims = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(claims); i++) {
      const char *key = json_array_get_string_element(claims, i);
      if (key == NULL || !claims_key_is_valid(key)) {
        g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                    "journal: claim %u is not a valid key", i);
        return NULL;
      }
      g_ptr_array_add(prep->claims, g_strdup(key));
    }
  }
  if ((node = json_object_get_member(object, "vfio")) && JSON_NODE_HOLDS_OBJECT(node) &&
      (prep->vfio = vfio_record_from_json(json_node_get_object(node), error)) == NULL)
    return NULL;
  prep->fdset_id = (gint)json_object_get_int_member_with_default(object, "fdset-id", -1);
  prep->usb_follow = json_object_get_boolean_member_with_default(object, "usb-follow", FALSE);
  const char *port = json_object_get_string_member_with_default(object, "usb-port-disabled", NULL);
  if (port && !usb_revoke_port_is_valid(port)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "journal: usb-port-disabled is not a USB hub port under /sys/devices");
    return NULL;
  }
  prep->usb_port_disabled = g_strdup(port);
  if ((node = json_object_get_member(object, "memlock-before")) && JSON_NODE_HOLDS_OBJECT(node)) {
    JsonObject *memlock = json_node_get_object(node);
    const char *soft = json_object_get_string_member_with_default(memlock, "soft", "");
    const char *hard = json_object_get_string_member_with_default(memlock, "hard", "");
    if (!g_ascii_string_to_unsigned(soft, 10, 0, G_MAXUINT64, &prep->memlock_soft, NULL) ||
        !g_ascii_string_to_unsigned(hard, 10, 0, G_MAXUINT64, &prep->memlock_hard, NULL)) {
      g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                          "journal: memlock-before is not two numbers");
      return NULL;
    }
    prep->memlock_saved = TRUE;
  }
  if ((node = json_object_get_member(object, "vf-before")) && JSON_NODE_HOLDS_OBJECT(node)) {
    if (!sriov_vf_config_from_json(json_node_get_object(node), &prep->vf_before, error))
      return NULL;
    prep->vf_saved = TRUE;
  }
  return g_steal_pointer(&prep);
}

/* @keys: (transfer full): claimed together, all or none
 * @read_origin: (nullable): the first key's origin when its claim has none
 * @inherited: (out) (optional): the origin the first key's claim carried */
static gboolean
claim_all(HostPrep *prep, const char *runtime_dir, const char *vm, const ClaimOwner *owner,
          GStrv keys, ClaimOriginReader read_origin, gpointer read_data,
          ClaimOrigin **inherited, GError **error)
{
  g_auto(GStrv) owned = keys;
  if (!claims_acquire_all(runtime_dir, vm, (const char *const *)keys, owner, read_origin,
                          read_data, inherited, error))
    return FALSE;
  for (guint i = 0; keys[i]; i++)
    g_ptr_array_add(prep->claims, g_steal_pointer(&keys[i]));
  g_free(prep->claims_runtime_dir);
  prep->claims_runtime_dir = g_strdup(runtime_dir);
  g_free(prep->claims_vm);
  prep->claims_vm = g_strdup(vm);
  return TRUE;
}

static gboolean
claim_one(HostPrep *prep, const char *runtime_dir, const char *vm, const ClaimOwner *owner,
          char *key /* transfer full */, GError **error)
{
  GStrv keys = g_new0(char *, 2);
  keys[0] = key;
  return claim_all(prep, runtime_dir, vm, owner, keys, NULL, NULL, NULL, error);
}

typedef struct {
  HostPrep *prep;
  const Hostdev *hostdev;
  const VfioRecord *sibling;
} OriginReading;

/* Under the claims lock, the device free for us: its record now, and the
 * origin its claim keeps for whoever takes the claim over after us.  A
 * companion a sibling of this VM bound for its group went back to what the
 * sibling's record says, not to vfio-pci. */
static ClaimOrigin *
read_pci_origin(gpointer data, GError **error)
{
  OriginReading *reading = data;
  const PciAddress *addr = &reading->hostdev->pci_source;

  g_clear_pointer(&reading->prep->vfio, vfio_record_unref);
  reading->prep->vfio = vfio_record_new(addr, reading->hostdev->managed, error);
  if (reading->prep->vfio == NULL)
    return NULL;
  const VfioRecord *companion = reading->sibling
      ? vfio_record_find_companion(reading->sibling, addr) : NULL;
  return vfio_record_origin(companion ? companion : reading->prep->vfio);
}

/* Return: (transfer full) (element-type PciAddress): the devices of IOMMU
 * group @group but @self whose claim a VM other than @vm left stale, with
 * the origin of a device it changed. */
static GArray *
stale_group_partners(const char *runtime_dir, const char *vm, const PciAddress *self, int group)
{
  g_autoptr(GArray) members = host_pci_iommu_group_members(group, NULL);
  GArray *partners = g_array_new(FALSE, FALSE, sizeof(PciAddress));

  for (guint i = 0; members && i < members->len; i++) {
    const PciAddress *member = &g_array_index(members, PciAddress, i);
    if (pci_address_compare(member, self) == 0)
      continue;
    g_autofree char *key = claims_key_pci(member);
    g_autoptr(Claim) claim = claims_lookup(runtime_dir, key, NULL);
    if (claim && claim->stale && claim->origin && strcmp(claim->vm, vm) != 0)
      g_array_append_val(partners, *member);
  }
  return partners;
}

/*
 * take_on_group_partners() - with an IOMMU group just claimed, the devices
 * of it that a VM which is gone left claimed (on vfio-pci, say) become this
 * VM's to give back: their claims join @prep's and their undo joins its
 * record as companions, done when the group goes back to the host with
 * this device.  Nobody else could: that VM's next hostdevd finds the group
 * held by this VM and drops its records of them.  A partner that is no
 * longer as its holder left it has nothing to give back: its stale claim
 * is simply dropped.  Failing here fails no attach: the partner's claim
 * stays as it was, for whoever comes next.
 */
static void
take_on_group_partners(HostPrep *prep, const char *runtime_dir, const char *vm,
                       const ClaimOwner *owner, const Hostdev *hostdev, int group)
{
  g_autoptr(GArray) partners = stale_group_partners(runtime_dir, vm, &hostdev->pci_source, group);
  g_autoptr(GError) no_record = NULL;

  if (partners->len > 0 && prep->vfio == NULL &&
      (prep->vfio = vfio_record_new(&hostdev->pci_source, hostdev->managed, &no_record)) == NULL) {
    g_warning("IOMMU group %d: the devices a VM that is gone left claimed in it are not taken "
              "on: %s", group, no_record->message);
    return;
  }
  for (guint i = 0; i < partners->len; i++) {
    const PciAddress *addr = &g_array_index(partners, PciAddress, i);
    g_autofree char *key = claims_key_pci(addr);
    g_autofree char *bdf = pci_address_format(addr);
    g_autoptr(ClaimOrigin) origin = NULL;
    g_autoptr(GError) error = NULL;

    if (!claims_acquire_full(runtime_dir, vm, key, owner, &origin, &error)) {
      g_warning("PCI device %s, left claimed in IOMMU group %d: its claim stays as it is (%s)",
                bdf, group, error->message);
      continue;
    }
    g_autoptr(VfioRecord) partner = vfio_record_new_from_origin(addr, TRUE, origin, &error);
    if (partner == NULL || vfio_record_is_clean(partner)) {
      g_autoptr(GError) release_error = NULL;
      if (!claims_release(runtime_dir, vm, key, &release_error))
        g_warning("%s", release_error->message);
      continue;
    }
    partner->chowned_by_us = FALSE; /* the group's node is the device's record's to give back */
    g_autofree char *with = pci_address_format(&hostdev->pci_source);
    g_message("PCI device %s of IOMMU group %d, left claimed by a VM that is gone, goes back "
              "to the host with %s", bdf, group, with);
    g_ptr_array_add(prep->claims, g_steal_pointer(&key));
    g_ptr_array_add(prep->vfio->companions, g_steal_pointer(&partner));
  }
}

gboolean
host_prep_claim(HostPrep *prep, const char *runtime_dir, const char *vm,
                const ClaimOwner *owner, const Hostdev *hostdev, const HostUsbDevice *usb,
                const VfioRecord *sibling, GError **error)
{
  switch (hostdev->type) {
  case HOSTDEV_TYPE_USB:
    /* an absent optional device is QEMU's to find; nothing of the host is held */
    return usb == NULL ||
           claim_one(prep, runtime_dir, vm, owner, claims_key_usb(usb->bus, usb->device),
                     error);
  case HOSTDEV_TYPE_PCI: {
    g_autoptr(GError) no_group = NULL;
    int group = host_pci_get_iommu_group(&hostdev->pci_source, &no_group);
    /* the device and its IOMMU group (one group never spans two VMs), at once */
    GStrv keys = g_new0(char *, 3);
    keys[0] = claims_key_pci(&hostdev->pci_source);
    keys[1] = group < 0 ? NULL : claims_key_iommu_group(group);
    g_autoptr(GError) busy = NULL;
    OriginReading reading = { prep, hostdev, sibling };
    g_clear_pointer(&prep->inherited_origin, claim_origin_free);
    /* a parent and its mdevs exclude each other; each side looks at the other after
     * taking its own claim, so of two racing attaches at least one sees the other */
    if (claim_all(prep, runtime_dir, vm, owner, keys, read_pci_origin, &reading,
                  &prep->inherited_origin, &busy)) {
      if (!mdev_check_children_unclaimed(&hostdev->pci_source, runtime_dir, error))
        return FALSE;
      /* a companion of a sibling's record is the sibling's to give back, not this record's */
      if (sibling && vfio_record_find_companion(sibling, &hostdev->pci_source))
        g_clear_pointer(&prep->inherited_origin, claim_origin_free);
      if (group >= 0)
        take_on_group_partners(prep, runtime_dir, vm, owner, hostdev, group);
      return TRUE;
    }
    /* a mediated device of it in use says best why its group is taken */
    if (!g_error_matches(busy, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY) ||
        mdev_check_children_unclaimed(&hostdev->pci_source, runtime_dir, error))
      g_propagate_error(error, g_steal_pointer(&busy));
    return FALSE;
  }
  case HOSTDEV_TYPE_MDEV: {
    /* the kernel opens a mediated device once, but a claim says who has
     * it before QEMU tries, and keeps mdev-remove off it */
    char *key = claims_key_mdev(hostdev->mdev.uuid);
    if (key == NULL) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "'%s' is not an mdev UUID", hostdev->mdev.uuid);
      return FALSE;
    }
    return claim_one(prep, runtime_dir, vm, owner, key, error) &&
           mdev_check_parent_unclaimed(hostdev->mdev.uuid, runtime_dir, error);
  }
  }
  return TRUE;
}

gboolean
host_prep_holds_claim(const HostPrep *prep, const char *key)
{
  for (guint i = 0; prep && i < prep->claims->len; i++)
    if (strcmp(g_ptr_array_index(prep->claims, i), key) == 0)
      return TRUE;
  return FALSE;
}

gboolean
host_prep_inherited(const HostPrep *prep)
{
  return prep->vfio != NULL && (prep->inherited_origin != NULL || !vfio_record_is_clean(prep->vfio));
}

gboolean
host_prep_vfio_begin(HostPrep *prep, const Hostdev *hostdev, GError **error)
{
  g_autofree char *key = claims_key_pci(&hostdev->pci_source);
  gboolean claimed = prep->claims_runtime_dir != NULL && host_prep_holds_claim(prep, key);

  if (claimed && prep->inherited_origin != NULL) {
    g_autoptr(VfioRecord) read = g_steal_pointer(&prep->vfio);
    prep->vfio = vfio_record_new_from_origin(&hostdev->pci_source, hostdev->managed,
                                             prep->inherited_origin, error);
    if (prep->vfio == NULL) {
      prep->vfio = g_steal_pointer(&read); /* with the group partners taken on, for the undo */
      return FALSE;
    }
    for (guint i = 0; read && i < read->companions->len; i++)
      g_ptr_array_add(prep->vfio->companions, vfio_record_ref(read->companions->pdata[i]));
    return TRUE;
  }
  /* claimed: read under the claims lock by host_prep_claim(), its origin
   * recorded in the claim with it */
  if (claimed && prep->vfio != NULL)
    return TRUE;
  g_clear_pointer(&prep->vfio, vfio_record_unref);
  prep->vfio = vfio_record_new(&hostdev->pci_source, hostdev->managed, error);
  return prep->vfio != NULL;
}

gboolean
host_prep_vfio_plan(HostPrep *prep, gboolean take_whole_group, const VfioRecord *sibling,
                    GError **error)
{
  if (!vfio_record_plan_group(prep->vfio, take_whole_group, error))
    return FALSE;
  vfio_record_plan_node(prep->vfio, sibling);
  return TRUE;
}

typedef struct {
  VfioRecord *record;
  gboolean take_whole_group;
  uid_t uid;
  gid_t gid;
  VfioRecord *sibling;
} BindJob;

static void
bind_job_free(BindJob *job)
{
  vfio_record_unref(job->record);
  g_clear_pointer(&job->sibling, vfio_record_unref);
  g_free(job);
}

static void
bind_in_thread(GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  BindJob *job = data;
  GError *error = NULL;

  if (vfio_step_take_group(job->record, job->take_whole_group, &error) &&
      vfio_step_bind(job->record, &error) && vfio_step_wait_node(job->record, &error) &&
      vfio_step_chown(job->record, job->uid, job->gid, job->sibling, &error)) {
    g_task_return_boolean(task, TRUE);
    return;
  }
  /* QEMU never had the device: the synchronous undo cannot block on it */
  g_autoptr(GError) undo_error = NULL;
  if (!vfio_undo(job->record, &undo_error)) {
    GError *both = g_error_new(error->domain, error->code,
                               "%s (and giving the device back failed too: %s)",
                               error->message, undo_error->message);
    g_error_free(error);
    error = both;
  }
  g_task_return_error(task, error);
}

void
host_prep_vfio_bind_async(HostPrep *prep, gboolean take_whole_group, uid_t uid, gid_t gid,
                          const VfioRecord *sibling, GAsyncReadyCallback callback,
                          gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new(NULL, NULL, callback, user_data);
  BindJob *job = g_new0(BindJob, 1);

  job->record = vfio_record_ref(prep->vfio);
  job->take_whole_group = take_whole_group;
  job->uid = uid;
  job->gid = gid;
  job->sibling = sibling ? vfio_record_ref((VfioRecord *)sibling) : NULL;
  g_task_set_task_data(task, job, (GDestroyNotify)bind_job_free);
  g_task_run_in_thread(task, bind_in_thread);
}

gboolean
host_prep_vfio_bind_finish(GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}

/* Return: whether @hostdev asks for a VF's MAC or VLAN to be set. */
static gboolean
wants_vf_config(const Hostdev *hostdev)
{
  return hostdev->is_interface && (hostdev->net.has_mac || hostdev->net.has_vlan);
}

gboolean
host_prep_vf_save(HostPrep *prep, const Hostdev *hostdev, GError **error)
{
  SriovVfLink link = { 0 };
  gboolean ok;

  if (!wants_vf_config(hostdev))
    return TRUE;
  ok = sriov_vf_lookup(&hostdev->pci_source, &link, error) &&
       sriov_vf_get_config(&link, &prep->vf_before, error);
  prep->vf_saved = ok;
  sriov_vf_link_clear(&link);
  return ok;
}

gboolean
host_prep_vf_apply(const HostPrep *prep, const Hostdev *hostdev, GError **error)
{
  SriovVfLink link = { 0 };
  SriovVfConfig wanted;
  gboolean ok;

  if (!wants_vf_config(hostdev))
    return TRUE;
  g_return_val_if_fail(prep->vf_saved, FALSE);
  wanted = prep->vf_before;
  if (hostdev->net.has_mac)
    memcpy(wanted.mac, hostdev->net.mac, sizeof wanted.mac);
  if (hostdev->net.has_vlan)
    wanted.vlan = hostdev->net.vlan_tag;
  ok = sriov_vf_lookup(&hostdev->pci_source, &link, error) &&
       sriov_vf_set_config(&link, &wanted, error);
  sriov_vf_link_clear(&link);
  return ok;
}

/* ---- release -------------------------------------------------------- */

typedef struct {
  HostPrep *prep;         /* borrowed: the caller keeps it until the callback */
  char *runtime_dir;
  char *vm;
  GError *first_error;
} Release;

static void
release_free(Release *release)
{
  g_free(release->runtime_dir);
  g_free(release->vm);
  g_clear_error(&release->first_error);
  g_free(release);
}

static void
keep_first(Release *release, GError *error)
{
  if (release->first_error == NULL)
    release->first_error = error;
  else
    g_error_free(error);
}

static void
release_claims_and_return(GTask *task)
{
  Release *release = g_task_get_task_data(task);
  GPtrArray *claims = release->prep->claims;
  GError *error = NULL;

  g_ptr_array_add(claims, NULL);
  if (!claims_release_keys(release->runtime_dir, release->vm, (const char *const *)claims->pdata,
                           &error))
    keep_first(release, error);
  g_ptr_array_set_size(claims, 0);
  if (release->first_error)
    g_task_return_error(task, g_steal_pointer(&release->first_error));
  else
    g_task_return_boolean(task, TRUE);
  g_object_unref(task);
}

/* After a timeout the kernel finishes the unbind on its own once QEMU lets go. */
static void
on_late_restore(VfioRecord *record, const GError *error, gpointer user_data)
{
  g_autofree char *bdf = pci_address_format(&record->addr);
  if (error)
    g_warning("PCI device %s: giving it back finished late and failed: %s", bdf, error->message);
  else
    g_message("PCI device %s: given back to the host after QEMU let go", bdf);
}

static void
on_vfio_restored(GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Release *release = g_task_get_task_data(task);
  GError *error = NULL;

  if (!vfio_restore_finish(result, &error)) {
    /* a device that is still held keeps its claims: no other VM may take it yet */
    if (g_error_matches(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_TIMEOUT)) {
      g_task_return_error(task, error);
      g_object_unref(task);
      return;
    }
    keep_first(release, error);
  }
  release_claims_and_return(task);
}

/* Leave @device's binding out of @record's undo when the administrator set it since,
 * or a VM took it over with what @vm left to give back. */
static void
leave_if_administered(VfioRecord *record, const VfioRecord *device, const char *runtime_dir,
                      const char *vm, const ProcessIdentity *qemu)
{
  g_autofree char *key = claims_key_pci(&device->addr);
  g_autofree char *taken_by = NULL;
  g_autofree char *bdf = NULL;

  if (!claims_administered_since(runtime_dir, key, vm, qemu, &taken_by) ||
      !vfio_record_leave_binding(record, &device->addr))
    return;
  bdf = pci_address_format(&device->addr);
  if (taken_by)
    g_message("PCI device %s: VM '%s' took it over after VM '%s' left it, with what was to "
              "give back: its driver is left as it is", bdf, taken_by, vm);
  else
    g_message("PCI device %s: the administrator set its driver after VM '%s' left it "
              "(hostdevctl nodedev-detach or nodedev-reattach): it stays so", bdf, vm);
}

void
host_prep_leave_administered(HostPrep *prep, const char *runtime_dir, const char *vm,
                             const ProcessIdentity *qemu)
{
  if (prep->vfio == NULL)
    return;
  leave_if_administered(prep->vfio, prep->vfio, runtime_dir, vm, qemu);
  for (guint i = 0; i < prep->vfio->companions->len; i++)
    leave_if_administered(prep->vfio, prep->vfio->companions->pdata[i], runtime_dir, vm, qemu);
}

void
host_prep_release_async(HostPrep *prep, const char *runtime_dir, const char *vm,
                        const HostReleaseWait *wait,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, NULL, callback, user_data);
  Release *release = g_new0(Release, 1);

  release->prep = prep;
  release->runtime_dir = g_strdup(runtime_dir);
  release->vm = g_strdup(vm);
  g_task_set_task_data(task, release, (GDestroyNotify)release_free);

  if (prep->usb_port_disabled) {
    GError *error = NULL;
    if (usb_revoke_port_enable(prep->usb_port_disabled, &error))
      g_clear_pointer(&prep->usb_port_disabled, g_free);
    else
      keep_first(release, error);
  }
  if (prep->vf_saved && prep->vfio) {
    SriovVfLink link = { 0 };
    GError *error = NULL;
    if (sriov_vf_lookup(&prep->vfio->addr, &link, &error) &&
        sriov_vf_set_config(&link, &prep->vf_before, &error))
      prep->vf_saved = FALSE;
    else
      keep_first(release, error);
    sriov_vf_link_clear(&link);
  }
  if (prep->vfio && !vfio_record_is_clean(prep->vfio)) {
    vfio_restore_async(prep->vfio, VFIO_DEFAULT_RESTORE_TIMEOUT_MS, wait, on_late_restore, NULL,
                       NULL, on_vfio_restored, task);
    return;
  }
  release_claims_and_return(task);
}

gboolean
host_prep_release_finish(GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean(G_TASK(result), error);
}
