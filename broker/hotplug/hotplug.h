/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hotplug.h - attach and detach of host devices in one VM: the workflow
 * from a <hostdev> document to a device QEMU has realized, and back
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include "qmp-client.h"
#include "policy.h"
#include "state.h"
#include "process-identity.h"

G_BEGIN_DECLS

typedef struct _Hotplug Hotplug;

/* HotplugEventFunc - a device came or went ("DEVICE_ATTACHED", "DEVICE_DETACHED"). */
typedef void (*HotplugEventFunc)(const char *name, JsonObject *data, gpointer user_data);

/* Default time detach waits for the guest to release a device, in ms. */
#define HOTPLUG_DEFAULT_DETACH_WAIT_MS 5000
/* Time QEMU gets for one device_add: a VFIO reset can take seconds. */
#define HOTPLUG_DEVICE_ADD_TIMEOUT_MS 30000
/* ...and, for a device that pins guest memory (VFIO), one more millisecond
 * per this many bytes of guest RAM: QEMU's device_add returns only once the
 * kernel has pinned all of it, which takes ~1 s per GiB on a loaded host and
 * tens of seconds per GiB under nested emulation.  The RAM is QEMU's report,
 * bounded by the host's memory, so a lying QEMU cannot stretch it further. */
#define HOTPLUG_PIN_BYTES_PER_MS (32 * 1024)

/* What a VM's hot-plug needs to know about its surroundings. */
typedef struct {
  const char *vm;
  const char *runtime_dir;   /* host-wide claims live here */
  uid_t qemu_uid;            /* who gets /dev/vfio/N; (uid_t)-1 leaves the owner */
  gid_t qemu_gid;
  const Policy *policy;      /* borrowed: which devices the VM may receive */
  /* an absent startupPolicy='optional' USB device goes to QEMU by vendorid/productid
   * (QEMU opens it itself when it appears), instead of waiting in hostdevd */
  gboolean optional_usb_to_qemu;
} HotplugConfig;

/* hotplug_new() - manage the devices of the VM behind @qmp (nullable: connected
 * later with hotplug_connect_qemu()), journaling to @journal (borrowed). */
Hotplug *hotplug_new(QmpClient *qmp, StateJournal *journal, const HotplugConfig *config,
                     HotplugEventFunc emit, gpointer user_data);

/* hotplug_connect_qemu() - the VM's QEMU is @qmp, run by process @qemu_pid. */
void hotplug_connect_qemu(Hotplug *hotplug, QmpClient *qmp, pid_t qemu_pid);

/* hotplug_set_qemu_arch() - the architecture QEMU's executable (or --qemu-arch,
 * described by @how) says it emulates; NULL: unknown.  query-target is only
 * checked against it (guest_topology_check_arch()). */
void hotplug_set_qemu_arch(Hotplug *hotplug, const char *arch, const char *how);

/* hotplug_set_qemu_user() - who gets /dev/vfio/N from now on ((uid_t)-1: leave the owner). */
void hotplug_set_qemu_user(Hotplug *hotplug, uid_t uid, gid_t gid);

/* Return: (transfer none): the connected QEMU process (pid 0 before). */
const ProcessIdentity *hotplug_get_qemu(Hotplug *hotplug);

/**
 * hotplug_release_orphans_async() - before any QEMU is connected: give
 * back every device the journal records for a QEMU process that is gone
 * (hostdevd was not running when it exited), so nothing waits for the
 * next QEMU to be given back.  Records of devices another live VM holds
 * now are dropped, never acted on.
 */
void hotplug_release_orphans_async(Hotplug *hotplug, GAsyncReadyCallback callback,
                                   gpointer user_data);
gboolean hotplug_release_orphans_finish(Hotplug *hotplug, GAsyncResult *result, GError **error);

/* Return: how many host releases are running (a SIGTERM lets them finish). */
guint hotplug_releases_running(Hotplug *hotplug);

/* hotplug_drain_async() - complete once no host release is running. */
void hotplug_drain_async(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer user_data);
gboolean hotplug_drain_finish(Hotplug *hotplug, GAsyncResult *result, GError **error);

/**
 * hotplug_reconcile_async() - make the journal agree with QEMU after a start
 * Attaches QEMU accepted are finished, others undone; detaches whose
 * device is gone are finished; devices still held stay listed.  Run it
 * before serving requests.
 */
void hotplug_reconcile_async(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer user_data);
gboolean hotplug_reconcile_finish(Hotplug *hotplug, GAsyncResult *result, GError **error);
void hotplug_free(Hotplug *hotplug);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Hotplug, hotplug_free)

/**
 * hotplug_attach_async() - attach the device a <hostdev> document names
 * @dry_run: do every read-only step and return the QMP commands instead
 * Operations run one at a time, in the order they were asked for.  On any
 * failure every finished step is undone.
 */
void hotplug_attach_async(Hotplug *hotplug, const char *xml, gboolean dry_run,
                          GAsyncReadyCallback callback, gpointer user_data);
/* Return: (transfer full): {"alias", "xml"} (or {"commands"} for a dry run), or NULL with @error. */
JsonNode *hotplug_attach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error);

/**
 * hotplug_detach_async() - detach a device, by @xml source match or by @alias
 * @wait_ms: how long to wait for the guest to release it; past that the
 *   reply says the unplug is pending and the release finishes when QEMU
 *   reports DEVICE_DELETED
 */
void hotplug_detach_async(Hotplug *hotplug, const char *xml, const char *alias,
                          guint wait_ms, GAsyncReadyCallback callback, gpointer user_data);
/* Return: (transfer full): {"alias", "status": "detached"|"pending"}, or NULL with @error. */
JsonNode *hotplug_detach_finish(Hotplug *hotplug, GAsyncResult *result, GError **error);

/* Return: (transfer full): [{"alias", "type", "source", "state", "xml"}, ...]. */
JsonNode *hotplug_list(Hotplug *hotplug);

/* Return: (transfer full): the live XML of every device, inside <devices>. */
char *hotplug_dumpxml(Hotplug *hotplug);

/* hotplug_release_all_async() - QEMU is gone: give every device back to the host. */
void hotplug_release_all_async(Hotplug *hotplug, GAsyncReadyCallback callback, gpointer user_data);
gboolean hotplug_release_all_finish(Hotplug *hotplug, GAsyncResult *result, GError **error);

G_END_DECLS
