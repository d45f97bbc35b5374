/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "file-replace.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <sys/vfs.h>
#include <unistd.h>

gboolean
file_dir_in_memory(int dir_fd)
{
  struct statfs fs;
  return fstatfs(dir_fd, &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
}

/* Return: 0, or the errno that stopped writing @length bytes of @data to @fd. */
static int
write_all(int fd, const char *data, gsize length)
{
  while (length > 0) {
    ssize_t n = write(fd, data, length);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno;
    data += n;
    length -= (gsize)n;
  }
  return 0;
}

int
file_replace_at(int dir_fd, const char *name, const char *data, gsize length,
                gboolean in_memory)
{
  g_autofree char *temporary = g_strconcat(".", name, ".tmp", NULL);
  int fd = openat(dir_fd, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                  0600);
  if (fd < 0)
    return errno;
  int saved = write_all(fd, data, length);
  if (saved == 0 && !in_memory && fsync(fd) != 0)
    saved = errno;
  if (close(fd) != 0 && saved == 0)
    saved = errno;
  if (saved == 0 && renameat(dir_fd, temporary, dir_fd, name) != 0)
    saved = errno;
  if (saved != 0)
    unlinkat(dir_fd, temporary, 0);
  else if (!in_memory)
    fsync(dir_fd);   /* the rename itself survives a power loss */
  return saved;
}
