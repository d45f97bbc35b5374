/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-rom.h - may QEMU be told to read this ROM file?
 *
 * A client's <rom file='...'> becomes QEMU's romfile, and QEMU puts the
 * file's bytes in a BAR the guest reads.  So the file must lie in a
 * directory the policy allows, reached without a symbolic link and through
 * directories only their owner (root, or hostdevd's user) can change: then
 * nobody else can swap the path for another file between this check and
 * QEMU's open.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * host_rom_file_check() - is @file a regular file beneath one of @dirs?
 * @file: the path from the XML, absolute
 * @dirs: (array zero-terminated=1): allowed directories, absolute, no
 *   trailing '/'; each is opened under the host root (host_path())
 * @file must start with one of @dirs and a '/', have no empty, "." or ".."
 * component after it, and each component is opened with O_NOFOLLOW from the
 * directory before it; every directory on the way (the allowed one
 * included) must belong to root or to the user hostdevd runs as and not be
 * writable by group or others.
 * Return: TRUE, or FALSE with a HOSTDEVD_ERROR_POLICY_DENIED that says what
 *   is wrong with @file (the caller adds the rule).
 */
gboolean host_rom_file_check(const char *file, const char *const *dirs, GError **error);

G_END_DECLS
