/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-fd.c - open a host USB device for fd passing to QEMU
 */
#define G_LOG_DOMAIN "hostdevd"

#include "usb-fd.h"
#include "host-root.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Return: whether sysfs's "MAJOR:MINOR" for @sysfs_name equals @rdev; TRUE
 * when sysfs has no such attribute to compare with. */
static gboolean
same_device(const char *sysfs_name, dev_t rdev, char **sysfs_dev)
{
  g_autofree char *path = host_path("sys/bus/usb/devices/%s/dev", sysfs_name);
  g_autofree char *text = host_read_attr(path, NULL);
  g_autofree char *have = g_strdup_printf("%u:%u", major(rdev), minor(rdev));

  if (text == NULL)
    return TRUE;
  *sysfs_dev = g_strdup(text);
  return strcmp(text, have) == 0;
}

int
usb_fd_open(guint bus, guint device, const char *sysfs_name, GError **error)
{
  g_autofree char *path = NULL;
  g_autofree char *sysfs_dev = NULL;
  struct stat st;
  int fd;

  if (bus < 1 || bus > 0xffff || device < 1 || device > 0xffff) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "USB bus %u device %u is out of range (1..65535 each)", bus, device);
    return -1;
  }
  if (sysfs_name != NULL &&
      (strchr(sysfs_name, '/') != NULL || sysfs_name[0] == '.' || sysfs_name[0] == '\0')) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "'%s' is not a USB device's sysfs name", sysfs_name);
    return -1;
  }

  path = host_path("dev/bus/usb/%03u/%03u", bus, device);
  fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int saved = errno;

    if (saved == ENOENT)
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                  "/dev/bus/usb/%03u/%03u does not exist: the USB device at "
                  "bus %u device %u was unplugged (device numbers change on "
                  "every replug; check `hostdevctl nodedev-list --cap "
                  "usb_device`), or devtmpfs is not mounted on /dev",
                  bus, device, bus, device);
    else
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "cannot open /dev/bus/usb/%03u/%03u for QEMU: %s%s",
                  bus, device, g_strerror(saved),
                  saved == EACCES || saved == EPERM
                    ? "; hostdevd needs read-write access to the node (root, "
                      "or DeviceAllow=char-usb_device rw under systemd)"
                    : "");
    return -1;
  }
  if (fstat(fd, &st) < 0) {
    int saved = errno;
    close(fd);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot stat /dev/bus/usb/%03u/%03u: %s", bus, device, g_strerror(saved));
    return -1;
  }
  if (S_ISCHR(st.st_mode)) {
    if (sysfs_name != NULL && !same_device(sysfs_name, st.st_rdev, &sysfs_dev)) {
      close(fd);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "/dev/bus/usb/%03u/%03u is device %u:%u, but USB device %s "
                  "is %s: it was replugged meanwhile; try again",
                  bus, device, major(st.st_rdev), minor(st.st_rdev),
                  sysfs_name, sysfs_dev);
      return -1;
    }
  } else if (strcmp(host_root_get(), "/") == 0) {
    /* fixture trees hold regular files; a real /dev does not */
    close(fd);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "/dev/bus/usb/%03u/%03u is not a character device", bus, device);
    return -1;
  }
  return fd;
}
