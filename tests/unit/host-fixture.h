/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-fixture.h - sysfs trees for the host-preparation tests, and a fake
 * kernel that reacts to sysfs writes the way Linux does
 *
 * A fixture tree cannot react to "echo BDF > drivers_probe".  The fake
 * kernel sits in the HostOps layer (host-root.h): it sees each write,
 * chown and chmod that hostdevd's code makes, and changes the tree as the
 * kernel would: driver links move, /dev/vfio/N appears and disappears,
 * driver_override reads back "(null)", VFs and mdevs come and go.  A test
 * can make any step fail, do nothing, do the wrong thing, or block (an
 * unbind from vfio-pci while "QEMU" holds the device).
 */
#pragma once

#include "hostdevd-error.h"
#include "host-root.h"

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

#define FIXTURE_TARBALL "sysfs-linux-6.1-q35-viommu.tar.gz"

/* Return: (transfer full): a fresh copy of the captured q35 tree in a
 * temporary directory, with /dev/vfio/12 and the /dev/bus/usb nodes as
 * regular files (devnodes.txt lists them; the tarball has no nodes). */
char *fixture_extract(void);

/* fixture_remove() - delete a tree made by fixture_extract() or mkdtemp. */
void fixture_remove(const char *root);

void fixture_write(const char *root, const char *rel, const char *contents);
void fixture_mkdir(const char *root, const char *rel);
void fixture_link(const char *root, const char *rel, const char *target);
void fixture_unlink(const char *root, const char *rel);
/* Return: (transfer full): the contents, whitespace stripped; NULL if absent. */
char *fixture_read(const char *root, const char *rel);
/* Return: (transfer full): the last component of the link's target, or NULL. */
char *fixture_link_name(const char *root, const char *rel);
gboolean fixture_exists(const char *root, const char *rel);

/* assert_hostdevd_error() - @error is HOSTDEVD_ERROR @code and its message
 * contains @substring; logs the message (each error text is shown). */
void assert_hostdevd_error(const GError *error, HostdevdError code,
                           const char *substring);

typedef enum {
  FAKE_PROBE_NORMAL,       /* the override's driver, else the native one */
  FAKE_PROBE_NOTHING,      /* the probe binds nothing */
  FAKE_PROBE_OTHER,        /* binds "pci-stub" whatever the override says */
} FakeProbeMode;

typedef struct _FakeKernel FakeKernel;

/* fake_kernel_new() - play the kernel for the tree at @root and install
 * it as the HostOps; the driver each device has now is its "native"
 * driver, which a probe without override binds again. */
FakeKernel *fake_kernel_new(const char *root);

/* fake_kernel_free() - uninstall (real HostOps again) and free. */
void fake_kernel_free(FakeKernel *fake);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FakeKernel, fake_kernel_free)

/* Every injected failure happens once: the next write to a path ending
 * in @suffix fails with @err; a probe mode, chown or chmod failure
 * likewise applies to the next one only. */
void fake_kernel_fail_write(FakeKernel *fake, const char *suffix, int err);
void fake_kernel_set_probe_mode(FakeKernel *fake, FakeProbeMode mode);
/* /dev/vfio/N: never created (@never) or created @delay_ms after the bind */
void fake_kernel_set_vfio_node(FakeKernel *fake, gboolean never, guint delay_ms);
void fake_kernel_fail_chown(FakeKernel *fake, int err);
void fake_kernel_fail_chmod(FakeKernel *fake, int err);
/* Unbinds from vfio-pci block until fake_kernel_release_vfio() ("QEMU
 * closed the device"). */
void fake_kernel_hold_vfio(FakeKernel *fake);
void fake_kernel_release_vfio(FakeKernel *fake);
/* Return: whether an unbind is blocked right now. */
gboolean fake_kernel_unbind_blocked(FakeKernel *fake);
/* Return: (transfer full): every operation so far, "write PATH VALUE",
 * "chown PATH UID GID", "chmod PATH MODE", PATH relative to the root,
 * joined with "\n". */
char *fake_kernel_log(FakeKernel *fake);
/* fake_kernel_set_native() - the driver a plain probe binds @bdf to. */
void fake_kernel_set_native(FakeKernel *fake, const char *bdf, const char *driver);
/* Removing an mdev blocks until fake_kernel_release_mdev(), as Linux 5.19+
 * does while a VM has the device open. */
void fake_kernel_hold_mdev(FakeKernel *fake);
void fake_kernel_release_mdev(FakeKernel *fake);
/* Return: whether an mdev remove is blocked right now. */
gboolean fake_kernel_mdev_remove_blocked(FakeKernel *fake);
/* Every drivers_probe write takes @delay_ms before it acts (a slow host driver). */
void fake_kernel_set_probe_delay(FakeKernel *fake, guint delay_ms);
/* Process @pid (a stand-in QEMU) owns IOMMU group @group's DMA while it
 * runs: drivers_probe of a member for a host driver fails with EINVAL, as
 * the kernel does until the exiting QEMU has torn the group's container
 * down.  @pid 0 clears it. */
void fake_kernel_set_group_owner(FakeKernel *fake, int group, pid_t pid);

G_END_DECLS
