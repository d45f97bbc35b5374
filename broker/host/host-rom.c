/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-rom.c - walk a ROM path one component at a time, never through a link
 */
#include "host-rom.h"
#include "host-root.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static gboolean G_GNUC_PRINTF(3, 4)
refuse(GError **error, const char *file, const char *format, ...)
{
  va_list args;
  va_start(args, format);
  g_autofree char *why = g_strdup_vprintf(format, args);
  va_end(args);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED, "ROM file '%s' %s", file,
              why);
  return FALSE;
}

/* Return: whether only its owner, root or hostdevd's user, can change the directory @fd. */
static gboolean
dir_is_private(int fd, struct stat *st)
{
  if (fstat(fd, st) != 0 || !S_ISDIR(st->st_mode))
    return FALSE;
  return (st->st_uid == 0 || st->st_uid == geteuid()) &&
         (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* Return: the part of @file after "@dir/", or NULL when @file is not under @dir. */
static const char *
beneath(const char *file, const char *dir)
{
  gsize n = strlen(dir);
  if (strncmp(file, dir, n) != 0 || file[n] != '/')
    return NULL;
  return file + n + 1;
}

/* Open each component of @rest below @dir_fd (taken) without following links. */
static gboolean
walk(const char *file, const char *dir, int dir_fd, const char *rest, GError **error)
{
  g_auto(GStrv) parts = g_strsplit(rest, "/", -1);
  struct stat st;
  int fd = dir_fd;
  gboolean ok = FALSE;
  g_autoptr(GString) reached = g_string_new(dir);

  if (!dir_is_private(fd, &st)) {
    refuse(error, file, "is in %s, which someone other than root can change", dir);
    goto out;
  }
  for (char **part = parts; *part; part++) {
    gboolean last = part[1] == NULL;
    if (**part == '\0' || strcmp(*part, ".") == 0 || strcmp(*part, "..") == 0) {
      refuse(error, file, "has an empty, '.' or '..' component; name the file by its "
             "plain path");
      goto out;
    }
    int next = openat(fd, *part,
                      O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK |
                          (last ? 0 : O_DIRECTORY));
    if (next < 0) {
      int saved = errno;
      if (saved == ELOOP || (saved == ENOTDIR && !last))
        refuse(error, file, "reaches %s/%s, which is a symbolic link or not a directory; "
               "name the file by its real path", reached->str, *part);
      else
        refuse(error, file, "cannot be opened: %s", g_strerror(saved));
      goto out;
    }
    close(fd);
    fd = next;
    g_string_append_printf(reached, "/%s", *part);
    if (!last && !dir_is_private(fd, &st)) {
      refuse(error, file, "is in %s, which someone other than root can change",
             reached->str);
      goto out;
    }
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    refuse(error, file, "is not a regular file");
    goto out;
  }
  ok = TRUE;
out:
  close(fd);
  return ok;
}

gboolean
host_rom_file_check(const char *file, const char *const *dirs, GError **error)
{
  for (const char *const *dir = dirs; *dir; dir++) {
    const char *rest = beneath(file, *dir);
    if (rest == NULL)
      continue;
    g_autofree char *path = host_path("%s", *dir + 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
    if (fd < 0) {
      int saved = errno;
      return refuse(error, file, "is in %s, which cannot be opened: %s", *dir,
                    g_strerror(saved));
    }
    return walk(file, *dir, fd, rest, error);
  }
  g_autofree char *allowed = g_strjoinv(", ", (char **)dirs);
  return refuse(error, file, "is not in a directory the policy allows (%s)", allowed);
}
