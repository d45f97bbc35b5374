/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The lifecycle of a device after its attach (broker/hotplug/device-state.c):
 * which changes exist, and that each is in the journal on disk before the
 * device is in its new state; a change the lifecycle does not have changes
 * nothing.
 */
#include "hotplug-private.h"

#include <glib/gstdio.h>
#include <string.h>

/* What hostdevd logged as critical: a defect it reports instead of acting on it. */
static GString *criticals;

static GLogWriterOutput
capture_criticals(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  if (!(level & G_LOG_LEVEL_CRITICAL))
    return g_log_writer_default(level, fields, n_fields, data);
  for (gsize i = 0; i < n_fields; i++)
    if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
      g_string_append_printf(criticals, "%s\n", (const char *)fields[i].value);
  return G_LOG_WRITER_HANDLED;
}

typedef struct {
  char *dir;
  StateJournal *journal;
  Hotplug *hotplug;
  VmDevice *device;
} Fixture;

static void
fixture_set_up(Fixture *fixture, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  gboolean took_from_host = GPOINTER_TO_INT(data);
  HotplugConfig config = { .vm = "vm1", .qemu_uid = (uid_t)-1, .qemu_gid = (gid_t)-1 };

  fixture->dir = g_dir_make_tmp("hostdevd-device-state-XXXXXX", &error);
  g_assert_no_error(error);
  config.runtime_dir = fixture->dir;
  fixture->journal = state_journal_open(fixture->dir, "vm1", &error);
  g_assert_no_error(error);
  fixture->hotplug = hotplug_new(NULL, fixture->journal, &config, NULL, NULL);

  Hostdev *hostdev = hostdev_new(HOSTDEV_TYPE_USB);
  hostdev->alias = g_strdup("hostdev0");
  hostdev->usb.has_vendor_product = TRUE;
  hostdev->usb.vendor = 0x0627;
  hostdev->usb.product = 0x0001;
  HostPrep *prep = host_prep_new();
  if (took_from_host)
    g_ptr_array_add(prep->claims, g_strdup("usb_1_2"));
  fixture->device = vm_devices_add(fixture->hotplug->devices, hostdev, prep);
  g_assert_true(hotplug_journal_device(fixture->hotplug, hostdev, STATE_ATTACHED, "done", NULL,
                                       prep, FALSE, &error));
  g_assert_no_error(error);
}

static void
fixture_tear_down(Fixture *fixture, gconstpointer data)
{
  hotplug_free(fixture->hotplug);
  state_journal_free(fixture->journal);
  g_autofree char *journal_dir = g_build_filename(fixture->dir, "vm1.journal", NULL);
  g_autofree char *entry = g_build_filename(journal_dir, "hostdev0.json", NULL);
  g_unlink(entry);
  g_rmdir(journal_dir);
  g_rmdir(fixture->dir);
  g_free(fixture->dir);
}

/* The journal as a second reader sees it on disk: "state/step" of hostdev0. */
static char *
on_disk(Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(StateJournal) reread = state_journal_open(fixture->dir, "vm1", &error);
  g_assert_no_error(error);
  StateEntry *entry = state_journal_find(reread, "hostdev0");
  if (entry == NULL)
    return g_strdup("none");
  return g_strdup_printf("%s/%s", state_device_state_name(entry->state), entry->step);
}

static void
enter_ok(Fixture *fixture, VmDeviceState state, const char *journaled)
{
  g_autoptr(GError) error = NULL;
  g_assert_true(hotplug_device_enter(fixture->hotplug, fixture->device, state, &error));
  g_assert_no_error(error);
  g_assert_cmpint(fixture->device->state, ==, state);
  g_autofree char *disk = on_disk(fixture);
  g_assert_cmpstr(disk, ==, journaled);
}

static void
enter_refused(Fixture *fixture, VmDeviceState state)
{
  g_autoptr(GError) error = NULL;
  VmDeviceState before = fixture->device->state;
  g_autofree char *disk_before = on_disk(fixture);

  g_string_truncate(criticals, 0);
  g_assert_false(hotplug_device_enter(fixture->hotplug, fixture->device, state, &error));
  g_assert_nonnull(strstr(criticals->str, "cannot become"));
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR);
  g_assert_nonnull(strstr(error->message, "a defect in hostdevd"));
  g_assert_cmpint(fixture->device->state, ==, before);
  g_autofree char *disk = on_disk(fixture);
  g_assert_cmpstr(disk, ==, disk_before);
}

/* A detach the guest refuses, then one it lets go, then a release that fails and is retried. */
static void
test_detach_refused_then_released(Fixture *fixture, gconstpointer data)
{
  enter_ok(fixture, VM_DEVICE_DETACHING, "detaching/device-del");
  enter_ok(fixture, VM_DEVICE_DETACHING, "detaching/device-del");   /* a second detach */
  enter_ok(fixture, VM_DEVICE_ATTACHED, "attached/done");
  enter_ok(fixture, VM_DEVICE_DETACHING, "detaching/device-del");
  /* the detaching record stands: its replay gives the device back as well */
  enter_ok(fixture, VM_DEVICE_RELEASING, "detaching/device-del");
  /* a failure and its retry change nothing on disk: the record says "give it back" */
  enter_ok(fixture, VM_DEVICE_RELEASE_FAILED, "detaching/device-del");
  enter_ok(fixture, VM_DEVICE_RELEASING, "detaching/device-del");
  g_assert_cmpstr(hotplug_device_state_listed(fixture->device->state), ==, "detaching");
}

static void
test_group_waiter(Fixture *fixture, gconstpointer data)
{
  enter_ok(fixture, VM_DEVICE_GROUP_WAITING, "detaching/wait-group");
  enter_refused(fixture, VM_DEVICE_ATTACHED);
  enter_refused(fixture, VM_DEVICE_DETACHING);
  enter_refused(fixture, VM_DEVICE_RELEASE_FAILED);
  enter_ok(fixture, VM_DEVICE_RELEASING, "detaching/wait-group");
}

/* Once out of QEMU a device never comes back to it, nor skips its release. */
static void
test_changes_the_lifecycle_lacks(Fixture *fixture, gconstpointer data)
{
  enter_refused(fixture, VM_DEVICE_RELEASE_FAILED);
  enter_ok(fixture, VM_DEVICE_RELEASING, "detaching/host-release");
  enter_refused(fixture, VM_DEVICE_ATTACHED);
  enter_refused(fixture, VM_DEVICE_DETACHING);
  enter_refused(fixture, VM_DEVICE_GROUP_WAITING);
}

/* A followed USB device whose device left: recorded as waiting (a record an older
 * hostdevd reads as attached, and gives up), listed as such, counted by the
 * metrics; it leaves by a detach or a release, and never turns "attached" again
 * (its re-attach is a new attach). */
static void
test_waiting_for_device(Fixture *fixture, gconstpointer data)
{
  enter_ok(fixture, VM_DEVICE_WAITING, "attached/wait-for-device");
  g_assert_cmpstr(hotplug_device_state_listed(fixture->device->state), ==, "waiting-for-device");
  g_assert_nonnull(hotplug_follow_phase(fixture->device));
  g_autofree char *metrics = hotplug_metrics_text(fixture->hotplug);
  g_assert_nonnull(strstr(metrics, "hostdevd_devices{vm=\"vm1\",type=\"usb\","
                                   "state=\"waiting-for-device\"} 1\n"));
  enter_refused(fixture, VM_DEVICE_ATTACHED);
  enter_refused(fixture, VM_DEVICE_GROUP_WAITING);
  enter_refused(fixture, VM_DEVICE_RELEASE_FAILED);
  enter_ok(fixture, VM_DEVICE_DETACHING, "detaching/device-del");
}

/* A device that took nothing from the host has nothing to record for its release. */
static void
test_nothing_taken_nothing_recorded(Fixture *fixture, gconstpointer data)
{
  enter_ok(fixture, VM_DEVICE_RELEASING, "attached/done");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  /* the refused changes log a critical, which the tests expect, and read back */
  criticals = g_string_new("");
  g_log_set_always_fatal(G_LOG_FATAL_MASK);
  g_log_set_writer_func(capture_criticals, NULL, NULL);
  g_test_add("/device-state/detach-refused-then-released", Fixture, GINT_TO_POINTER(TRUE),
             fixture_set_up, test_detach_refused_then_released, fixture_tear_down);
  g_test_add("/device-state/group-waiter", Fixture, GINT_TO_POINTER(TRUE), fixture_set_up,
             test_group_waiter, fixture_tear_down);
  g_test_add("/device-state/changes-the-lifecycle-lacks", Fixture, GINT_TO_POINTER(TRUE),
             fixture_set_up, test_changes_the_lifecycle_lacks, fixture_tear_down);
  g_test_add("/device-state/waiting-for-device", Fixture, GINT_TO_POINTER(TRUE),
             fixture_set_up, test_waiting_for_device, fixture_tear_down);
  g_test_add("/device-state/nothing-taken-nothing-recorded", Fixture, GINT_TO_POINTER(FALSE),
             fixture_set_up, test_nothing_taken_nothing_recorded, fixture_tear_down);
  return g_test_run();
}
