/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sandbox.h - hostdevd's isolation, in stages (the plan is in sandbox.c)
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

typedef enum {
  SANDBOX_OFF,   /* no capability drop, no filter: for debugging only */
  SANDBOX_LOG,   /* capabilities dropped; the filter logs what it would kill */
  SANDBOX_ON,    /* capabilities dropped; the filter kills on a forbidden syscall */
} SandboxMode;

/**
 * sandbox_mode_parse() - read "on", "log" or "off"
 * Return: TRUE with @mode set, or FALSE with a G_OPTION_ERROR.
 */
gboolean sandbox_mode_parse(const char *text, SandboxMode *mode, GError **error);

/* Return: "on", "log" or "off". */
const char *sandbox_mode_to_string(SandboxMode mode);

/**
 * sandbox_early() - first stage, before anything opens a file
 * Closes every file descriptor above stderr that hostdevd inherited, and
 * points stdin, stdout and stderr at /dev/null if they are closed, so that
 * no later socket can become fd 2 and receive log lines.
 */
void sandbox_early(void);

/**
 * sandbox_prepare_threads() - before anything starts a thread
 * Starts GLib's worker thread (which GTask, signal sources and file
 * monitors use, and which lives as long as the process) from a helper
 * thread that has already dropped to the kept capabilities: capabilities
 * belong to each thread, and this one would otherwise keep root's forever.
 * Return: FALSE with @error when the helper could not drop its capabilities.
 */
gboolean sandbox_prepare_threads(SandboxMode mode, GError **error);

/**
 * sandbox_drop_privileges() - second stage, once QMP is connected
 * @mode: nothing happens for SANDBOX_OFF
 * Keeps only the capabilities listed in sandbox.c, empties the bounding,
 * inheritable and ambient sets, sets no-new-privs and makes the process not
 * dumpable.  Capabilities are per thread: this drops the calling thread's,
 * then checks that no thread holds more (see sandbox_prepare_threads()).
 * Return: FALSE with @error when a step failed.
 */
gboolean sandbox_drop_privileges(SandboxMode mode, GError **error);

/* Who files may be given to, besides root: the QEMU user, the group VFIO
 * nodes had before (vfio_node_owner_is_ours() agrees) and the control
 * socket's group (policy socket-group).  (gid_t)-1: none. */
typedef struct {
  uid_t uid;
  gid_t gid;
  gid_t vfio_gid;
  gid_t socket_gid;
} SandboxOwner;

/**
 * sandbox_lock() - last stage: load the seccomp allowlist
 * @mode: SANDBOX_ON kills the process on any other syscall, SANDBOX_LOG
 *   only logs it (audit log / kernel log); SANDBOX_OFF does nothing
 * @qemu: who files may be given to: chown may give a file only to root or
 *   to them (or leave the owner), and chmod may set no setuid,
 *   setgid or sticky bit: what survives the sandbox can hand /dev/vfio/N
 *   to QEMU and back, not a block device to anyone else or a root file a
 *   setuid bit.
 * Then checks in /proc/self/status that the filter is really in force.
 * Return: FALSE with @error when the filter could not be loaded or is not
 *   active (hostdevd must not serve then).
 */
gboolean sandbox_lock(SandboxMode mode, const SandboxOwner *qemu, GError **error);

/**
 * sandbox_filter_is_active() - what /proc/self/status says
 * Return: TRUE when "Seccomp:" is 2 (filter mode) and "NoNewPrivs:" is 1.
 */
gboolean sandbox_filter_is_active(GError **error);

G_END_DECLS
