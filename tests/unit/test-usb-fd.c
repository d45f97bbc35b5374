/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-usb-fd.c - opening /dev/bus/usb/BBB/DDD for fd passing
 */
#include "host-fixture.h"
#include "usb-fd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

typedef struct {
  char *root;
} Tree;

static void
tree_setup(Tree *tree, gconstpointer data)
{
  tree->root = fixture_extract();
  host_root_set(tree->root);
}

static void
tree_teardown(Tree *tree, gconstpointer data)
{
  host_root_set(NULL);
  fixture_remove(tree->root);
  g_free(tree->root);
}

static void
test_open(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  int fd = usb_fd_open(1, 2, "1-1", &error);
  int flags;

  g_assert_no_error(error);
  g_assert_cmpint(fd, >=, 0);
  flags = fcntl(fd, F_GETFD);
  g_assert_true(flags & FD_CLOEXEC);
  g_assert_cmpint(fcntl(fd, F_GETFL) & O_ACCMODE, ==, O_RDWR);
  close(fd);
}

static void
test_errors(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint(usb_fd_open(1, 9, NULL, &error), ==, -1);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_NOT_FOUND,
                        "/dev/bus/usb/001/009 does not exist: the USB device at bus 1 "
                        "device 9 was unplugged (device numbers change on every replug");
  g_clear_error(&error);

  g_assert_cmpint(usb_fd_open(0, 2, NULL, &error), ==, -1);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "USB bus 0 device 2 is out of range (1..65535 each)");
  g_clear_error(&error);
  g_assert_cmpint(usb_fd_open(1, 0x10000, NULL, &error), ==, -1);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "out of range");
  g_clear_error(&error);
  g_assert_cmpint(usb_fd_open(1, 2, "../1-1", &error), ==, -1);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "'../1-1' is not a USB device's sysfs name");
  g_clear_error(&error);

  /* a directory where the node should be */
  fixture_mkdir(tree->root, "dev/bus/usb/001/003");
  g_assert_cmpint(usb_fd_open(1, 3, NULL, &error), ==, -1);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "cannot open /dev/bus/usb/001/003 for QEMU: Is a directory");
}

/* With real nodes (root only): the node must be the device sysfs names. */
static void
test_device_node(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *node = g_build_filename(tree->root, "dev/bus/usb/001/002", NULL);
  int fd;

  if (geteuid() != 0) {
    g_test_skip("mknod needs root");
    return;
  }
  unlink(node);
  /* /dev/null's numbers: a character device that opens anywhere */
  g_assert_cmpint(mknod(node, S_IFCHR | 0600, makedev(1, 3)), ==, 0);
  fixture_write(tree->root, "sys/devices/pci0000:00/0000:00:07.0/usb1/1-1/dev", "1:3\n");
  fd = usb_fd_open(1, 2, "1-1", &error);
  g_assert_no_error(error);
  g_assert_cmpint(fd, >=, 0);
  close(fd);

  /* replugged meanwhile: sysfs now names another device */
  fixture_write(tree->root, "sys/devices/pci0000:00/0000:00:07.0/usb1/1-1/dev", "189:5\n");
  g_assert_cmpint(usb_fd_open(1, 2, "1-1", &error), ==, -1);
  assert_hostdevd_error(error, HOSTDEVD_ERROR_HOST_ERROR,
                        "/dev/bus/usb/001/002 is device 1:3, but USB device 1-1 is "
                        "189:5: it was replugged meanwhile; try again");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add("/usb-fd/open", Tree, NULL, tree_setup, test_open, tree_teardown);
  g_test_add("/usb-fd/errors", Tree, NULL, tree_setup, test_errors, tree_teardown);
  g_test_add("/usb-fd/device-node", Tree, NULL, tree_setup, test_device_node, tree_teardown);
  return g_test_run();
}
