/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * device-state.c - the lifecycle of a device of the VM after its attach:
 * which state may follow which, what the journal records for each, and
 * what list-devices shows
 */
#include "hotplug-private.h"

#define TO(state) (1u << (state))

static const struct {
  const char *name;           /* for logs and errors */
  const char *listed;         /* list-devices' "state" */
  StateDeviceState journal;   /* what the journal records ... */
  const char *step;           /* ... and the step about to take effect */
  guint next;                 /* TO() of every state that may follow */
  /* entered from a state journaled as detaching, that record stands: a
   * replay of either gives the device back once QEMU no longer has it, so
   * a record naming only another step would cost the release a write */
  gboolean detaching_record_stands;
} states[] = {
  [VM_DEVICE_ATTACHED] = {
    "attached", "attached", STATE_ATTACHED, "done",
    TO(VM_DEVICE_DETACHING) | TO(VM_DEVICE_GROUP_WAITING) | TO(VM_DEVICE_RELEASING) |
    TO(VM_DEVICE_WAITING),
  },
  [VM_DEVICE_DETACHING] = {
    "detaching", "detaching", STATE_DETACHING, "device-del",
    TO(VM_DEVICE_ATTACHED) | TO(VM_DEVICE_GROUP_WAITING) | TO(VM_DEVICE_RELEASING),
  },
  [VM_DEVICE_GROUP_WAITING] = {
    "waiting for its IOMMU group", "detaching", STATE_DETACHING, "wait-group",
    TO(VM_DEVICE_RELEASING),
  },
  [VM_DEVICE_RELEASING] = {
    "being given back to the host", "detaching", STATE_DETACHING, "host-release",
    TO(VM_DEVICE_RELEASE_FAILED), .detaching_record_stands = TRUE,
  },
  /* the record stays as it was: a restart gives the device back as for a release */
  [VM_DEVICE_RELEASE_FAILED] = {
    "failed to go back to the host", "detaching", STATE_DETACHING, "host-release",
    TO(VM_DEVICE_RELEASING),
  },
  /* recorded as attached, so that a hostdevd without this state gives the
   * record up (QEMU does not hold it) instead of refusing the journal;
   * its re-attach is a new attach, whose own record replaces this one */
  [VM_DEVICE_WAITING] = {
    "waiting for its USB device", "waiting-for-device", STATE_ATTACHED, HOTPLUG_STEP_WAIT_FOR_DEVICE,
    TO(VM_DEVICE_DETACHING) | TO(VM_DEVICE_RELEASING),
  },
};

const char *
hotplug_device_state_listed(VmDeviceState state)
{
  g_assert((gsize)state < G_N_ELEMENTS(states));
  return states[state].listed;
}

/* @strict: a journal that cannot be written leaves the state as it was (else: logged) */
static gboolean
enter(Hotplug *hotplug, VmDevice *device, VmDeviceState state, gboolean strict, GError **error)
{
  VmDeviceState from = device->state;
  g_autoptr(GError) local = NULL;

  g_assert((gsize)state < G_N_ELEMENTS(states));
  if (state == from)
    return TRUE;
  if (!(states[from].next & TO(state))) {
    /* a defect of hostdevd's, never the user's: say so and change nothing */
    g_critical("%s: %s cannot become %s", device->hostdev->alias, states[from].name,
               states[state].name);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "%s is %s and cannot become %s (a defect in hostdevd: please report it)",
                device->hostdev->alias, states[from].name, states[state].name);
    return FALSE;
  }
  /* a device that took nothing from the host has nothing to give back: its record goes */
  gboolean nothing_to_record = state == VM_DEVICE_RELEASING && host_prep_is_empty(device->prep);
  gboolean recorded = states[from].journal == states[state].journal &&
                      (g_str_equal(states[from].step, states[state].step) ||
                       (states[state].detaching_record_stands &&
                        states[from].journal == STATE_DETACHING));
  /* a waiting device's record is all a restart has of it, the attach it came back
   * from may have dropped it: its host part (usb-follow, claims) is written too */
  const HostPrep *prep = state == VM_DEVICE_WAITING ? device->prep : NULL;
  if (!nothing_to_record && !recorded &&
      !hotplug_journal_device(hotplug, device->hostdev, states[state].journal,
                              states[state].step, NULL, prep, FALSE, &local)) {
    if (strict) {
      g_propagate_error(error, g_steal_pointer(&local));
      return FALSE;
    }
    g_warning("%s; going on: %s", local->message, states[state].name);
  }
  device->state = state;
  return TRUE;
}

gboolean
hotplug_device_enter(Hotplug *hotplug, VmDevice *device, VmDeviceState state, GError **error)
{
  return enter(hotplug, device, state, TRUE, error);
}

void
hotplug_device_enter_anyway(Hotplug *hotplug, VmDevice *device, VmDeviceState state)
{
  g_autoptr(GError) error = NULL;
  if (!enter(hotplug, device, state, FALSE, &error))
    g_warning("%s", error->message);
}
