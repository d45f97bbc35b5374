/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-root.h - the one prefix every sysfs and devfs path goes through, so
 * that tests can point hostdevd at a fixture tree (--host-root DIR).
 */
#pragma once

#include <glib.h>

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

G_END_DECLS
