/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * file-replace.h - small state files replaced whole: a reader sees the old
 * contents or the new, never a part, even when the writer dies half-way.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Return: whether the directory @dir_fd is on tmpfs/ramfs: what is written
 * there outlives the process but never the host, so fsync adds nothing. */
gboolean file_dir_in_memory(int dir_fd);

/**
 * file_replace_at() - @name in @dir_fd gets @data: written to ".NAME.tmp",
 * fsynced (unless @in_memory), renamed over @name
 * The caller serializes writers of one name (the temporary name is fixed).
 * Return: 0, or the errno that left @name as it was.
 */
int file_replace_at(int dir_fd, const char *name, const char *data, gsize length,
                    gboolean in_memory);

G_END_DECLS
