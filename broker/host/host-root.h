/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-root.h - the one prefix every sysfs and devfs path goes through, so
 * that tests can point hostdevd at a fixture tree (--host-root DIR).
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* host_root_set() - use @root ("/" or NULL for the real host) from now on.
 * Trailing slashes are dropped.  Not thread-safe: call it at start-up (or
 * at the start of a test), before any look-up. */
void host_root_set(const char *root);

/* Return: the current prefix, "/" by default. */
const char *host_root_get(void);

/* Return: (transfer full): the host path for @fmt, e.g.
 * host_path("sys/bus/usb/devices/%s/busnum", name) → "ROOT/sys/bus/…".
 * @fmt is relative (no leading '/'; one is tolerated and dropped), so the
 * result never contains "//" at the join. */
char *host_path(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Largest attribute host_read_attr() reads; sysfs attributes are one page. */
#define HOST_ATTR_MAX_SIZE 4096

/**
 * host_read_attr() - read a small text attribute (sysfs or similar)
 * @path: full path, usually from host_path()
 * @error: G_FILE_ERROR on failure (G_FILE_ERROR_NOENT when absent)
 * Reads at most HOST_ATTR_MAX_SIZE bytes, so a wrong host root cannot make
 * hostdevd slurp a huge file.
 * Return: (transfer full): the contents with surrounding whitespace (the
 * kernel's trailing newline) removed, or NULL with @error set.
 */
char *host_read_attr(const char *path, GError **error);

/**
 * host_read_link_name() - the last component of a symlink's target
 * @path: the link, e.g. ".../0000:01:00.0/driver"
 * @error: G_FILE_ERROR on failure (G_FILE_ERROR_NOENT when absent)
 * Return: (transfer full): e.g. "e1000e" for "../../bus/pci/drivers/e1000e",
 * or NULL with @error set.
 */
char *host_read_link_name(const char *path, GError **error);

/**
 * host_resolve_link() - where a symlink under the host root points
 * @rel: the link relative to the host root, e.g. "sys/bus/pci/devices/0000:01:00.0"
 * @error: G_FILE_ERROR on failure
 * The kernel's links are relative; this resolves the target lexically
 * (".." and "."), without following further links, and refuses a target
 * that leaves the host root.
 * Return: (transfer full): the target relative to the host root, e.g.
 * "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0", or NULL.
 */
char *host_resolve_link(const char *rel, GError **error);

/*
 * Every write to sysfs and every ownership change of a device node goes
 * through these operations, so that unit tests can put a fake kernel in
 * between: it sees each write and reacts the way the kernel would (a
 * driver link moves, /dev/vfio/N appears) or fails where a test wants.
 * Each operation returns 0 or an errno value.
 */
typedef struct {
  int (*write_attr)(const char *path, const char *value, gpointer user_data);
  int (*chown)(const char *path, uid_t uid, gid_t gid, gpointer user_data);
  int (*chmod)(const char *path, mode_t mode, gpointer user_data);
  gpointer user_data;
} HostOps;

/* host_ops_set() - use @ops (copied) from now on; NULL restores the real
 * operations.  Not thread-safe: call it while no operation runs. */
void host_ops_set(const HostOps *ops);

/* Return: the real operations (open/write, chown, chmod), for a fake
 * that lets the real write happen before it reacts. */
const HostOps *host_ops_real(void);

/**
 * host_write_attr() - write @value to a sysfs attribute in one write()
 * @path: full path, usually from host_path()
 * Sysfs takes an attribute in a single write; a short write is EIO.
 * Return: 0, or the errno value with @error set (G_IO_ERROR, the message
 * naming the path, the value and the kernel's answer).
 */
int host_write_attr(const char *path, const char *value, GError **error);

/* host_chown() - chown(2) @path; Return: 0 or errno with @error set. */
int host_chown(const char *path, uid_t uid, gid_t gid, GError **error);

/* host_chmod() - chmod(2) @path; Return: 0 or errno with @error set. */
int host_chmod(const char *path, mode_t mode, GError **error);

/* Return: (transfer full): @path with the host root prefix removed, i.e.
 * the path as the kernel names it ("/sys/..."), for messages and XML. */
char *host_path_display(const char *path);

/**
 * host_dir_open_listing() - open a sysfs directory to list what it holds
 * @what: what it lists, for the message ("USB devices")
 * Return: the directory; NULL with @error unset when it does not exist
 * (nothing to list: a host without that subsystem), or NULL with a
 * HostError "cannot list @what: ..." when it cannot be read.
 */
GDir *host_dir_open_listing(const char *path, const char *what, GError **error);

G_END_DECLS
