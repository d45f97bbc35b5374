/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-root.c - the host-root prefix and small readers for sysfs attributes
 */
#include "host-root.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

/* NULL means the real host: "/" */
static char *host_root;

void
host_root_set(const char *root)
{
  g_autofree char *copy = NULL;
  gsize len;

  g_clear_pointer(&host_root, g_free);
  if (root == NULL || *root == '\0')
    return;

  copy = g_strdup(root);
  len = strlen(copy);
  while (len > 1 && copy[len - 1] == '/')
    copy[--len] = '\0';
  if (strcmp(copy, "/") == 0)
    return;
  host_root = g_steal_pointer(&copy);
}

const char *
host_root_get(void)
{
  return host_root ? host_root : "/";
}

char *
host_path(const char *fmt, ...)
{
  g_autofree char *rel = NULL;
  const char *tail;
  va_list ap;

  va_start(ap, fmt);
  rel = g_strdup_vprintf(fmt, ap);
  va_end(ap);

  tail = rel;
  while (*tail == '/')
    tail++;

  if (host_root == NULL)
    return g_strconcat("/", tail, NULL);
  return g_strconcat(host_root, "/", tail, NULL);
}

char *
host_read_attr(const char *path, GError **error)
{
  g_autoptr(GString) buf = g_string_sized_new(64);
  char chunk[512];
  int fd;

  fd = g_open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY, 0);
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                "cannot open %s: %s", path, g_strerror(saved));
    return NULL;
  }

  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));

    if (n < 0) {
      int saved = errno;
      if (saved == EINTR)
        continue;
      g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                  "cannot read %s: %s", path, g_strerror(saved));
      close(fd);
      return NULL;
    }
    if (n == 0)
      break;
    if (buf->len + (gsize)n > HOST_ATTR_MAX_SIZE) {
      g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                  "%s is larger than %d bytes; not a sysfs attribute",
                  path, HOST_ATTR_MAX_SIZE);
      close(fd);
      return NULL;
    }
    g_string_append_len(buf, chunk, n);
  }
  close(fd);

  /* An attribute with a NUL in it is cut there: callers want text. */
  return g_strstrip(g_string_free(g_steal_pointer(&buf), FALSE));
}

char *
host_read_link_name(const char *path, GError **error)
{
  g_autofree char *target = g_file_read_link(path, error);

  if (target == NULL)
    return NULL;
  return g_path_get_basename(target);
}
