/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * host-root.c - the host-root prefix and small readers for sysfs attributes
 */
#include "host-root.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

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

char *
host_resolve_link(const char *rel, GError **error)
{
  g_autofree char *link = host_path("%s", rel);
  g_autofree char *target = g_file_read_link(link, error);
  g_autofree char *dir = NULL;
  g_autofree char *joined = NULL;
  g_auto(GStrv) parts = NULL;
  g_autoptr(GPtrArray) kept = g_ptr_array_new();
  const char *tail = rel;

  if (target == NULL)
    return NULL;
  while (*tail == '/')
    tail++;
  if (target[0] == '/') {
    /* an absolute target names a path of the host, below its root */
    joined = g_strdup(target + 1);
  } else {
    dir = g_path_get_dirname(tail);
    joined = g_strconcat(dir, "/", target, NULL);
  }

  parts = g_strsplit(joined, "/", -1);
  for (guint i = 0; parts[i] != NULL; i++) {
    if (parts[i][0] == '\0' || strcmp(parts[i], ".") == 0)
      continue;
    if (strcmp(parts[i], "..") == 0) {
      if (kept->len == 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "%s points outside the host root: %s", link, target);
        return NULL;
      }
      g_ptr_array_remove_index(kept, kept->len - 1);
      continue;
    }
    g_ptr_array_add(kept, parts[i]);
  }
  g_ptr_array_add(kept, NULL);
  return g_strjoinv("/", (char **)kept->pdata);
}

char *
host_path_display(const char *path)
{
  gsize len;

  if (host_root == NULL)
    return g_strdup(path);
  len = strlen(host_root);
  if (strncmp(path, host_root, len) == 0 && path[len] == '/')
    return g_strdup(path + len);
  return g_strdup(path);
}

static int
real_write_attr(const char *path, const char *value, gpointer user_data)
{
  gsize len = strlen(value);
  ssize_t n;
  int fd;

  fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return errno;
  do
    n = write(fd, value, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int saved = errno;
    close(fd);
    return saved;
  }
  /* sysfs reports some failures only at close, e.g. of a store callback
   * that ran deferred */
  if (close(fd) < 0 && errno != EINTR)
    return errno;
  return (gsize)n == len ? 0 : EIO;
}

static int
real_chown(const char *path, uid_t uid, gid_t gid, gpointer user_data)
{
  return chown(path, uid, gid) == 0 ? 0 : errno;
}

static int
real_chmod(const char *path, mode_t mode, gpointer user_data)
{
  return chmod(path, mode) == 0 ? 0 : errno;
}

static const HostOps real_ops = {
  .write_attr = real_write_attr,
  .chown = real_chown,
  .chmod = real_chmod,
  .user_data = NULL,
};

static HostOps current_ops = {
  .write_attr = real_write_attr,
  .chown = real_chown,
  .chmod = real_chmod,
  .user_data = NULL,
};

void
host_ops_set(const HostOps *ops)
{
  current_ops = ops ? *ops : real_ops;
}

const HostOps *
host_ops_real(void)
{
  return &real_ops;
}

/* Echo-style display of what is written: the trailing newline dropped. */
static char *
shown_value(const char *value)
{
  char *copy = g_strdup(value);

  g_strchomp(copy);
  return copy;
}

int
host_write_attr(const char *path, const char *value, GError **error)
{
  int err = current_ops.write_attr(path, value, current_ops.user_data);

  if (err != 0) {
    g_autofree char *shown = shown_value(value);
    g_autofree char *display = host_path_display(path);

    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
                "writing '%s' to %s failed: %s", shown, display, g_strerror(err));
  }
  return err;
}

int
host_chown(const char *path, uid_t uid, gid_t gid, GError **error)
{
  int err = current_ops.chown(path, uid, gid, current_ops.user_data);

  if (err != 0) {
    g_autofree char *display = host_path_display(path);

    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
                "cannot change the owner of %s to %u:%u: %s", display,
                (unsigned)uid, (unsigned)gid, g_strerror(err));
  }
  return err;
}

int
host_chmod(const char *path, mode_t mode, GError **error)
{
  int err = current_ops.chmod(path, mode, current_ops.user_data);

  if (err != 0) {
    g_autofree char *display = host_path_display(path);

    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
                "cannot change the mode of %s to %04o: %s", display,
                (unsigned)mode, g_strerror(err));
  }
  return err;
}

GDir *
host_dir_open_listing(const char *path, const char *what, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  GDir *dir = g_dir_open(path, 0, &local_error);

  if (dir == NULL && !g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR, "cannot list %s: %s", what,
                local_error->message);
  return dir;
}
