/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-host-rom.c - <rom file> paths a client might use to read a host file
 * into the guest, against a small tree under a host root: each must be
 * refused, and a plain ROM in an allowed directory accepted.
 */
#include "host-fixture.h"
#include "host-rom.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

static const char *const dirs[] = { "/usr/share/qemu", "/srv/roms", NULL };

typedef struct {
  char *root;
} Tree;

static void
tree_setup(Tree *tree, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  tree->root = g_dir_make_tmp("hostdevd-rom-XXXXXX", &error);
  g_assert_no_error(error);
  g_assert_cmpint(chmod(tree->root, 0755), ==, 0);
  fixture_write(tree->root, "etc/shadow", "root:secret:::\n");
  fixture_write(tree->root, "usr/share/qemu/efi-e1000.rom", "ROM");
  fixture_write(tree->root, "usr/share/qemu/vendor/gpu.rom", "ROM");
  fixture_write(tree->root, "usr/share/qemu/open/x.rom", "ROM");
  fixture_write(tree->root, "srv/roms/nic.rom", "ROM");
  g_autofree char *open_dir = g_build_filename(tree->root, "usr/share/qemu/open", NULL);
  g_assert_cmpint(chmod(open_dir, 0777), ==, 0);
  g_autofree char *abs_shadow = g_build_filename(tree->root, "etc/shadow", NULL);
  g_autofree char *abs_etc = g_build_filename(tree->root, "etc", NULL);
  fixture_link(tree->root, "usr/share/qemu/shadow.rom", "../../../etc/shadow");
  fixture_link(tree->root, "usr/share/qemu/abs.rom", abs_shadow);
  fixture_link(tree->root, "usr/share/qemu/etc", abs_etc);
  fixture_link(tree->root, "usr/share/qemu/inside.rom", "efi-e1000.rom");
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
assert_refused(const char *file, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_assert_false(host_rom_file_check(file, dirs, &error));
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED);
  if (strstr(error->message, needle) == NULL)
    g_error("'%s' does not contain '%s'", error->message, needle);
  g_assert_nonnull(strstr(error->message, file));
}

static void
assert_allowed(const char *file)
{
  g_autoptr(GError) error = NULL;
  g_assert_true(host_rom_file_check(file, dirs, &error));
  g_assert_no_error(error);
}

static void
test_allowed(Tree *tree, gconstpointer data)
{
  assert_allowed("/usr/share/qemu/efi-e1000.rom");
  assert_allowed("/usr/share/qemu/vendor/gpu.rom");
  assert_allowed("/srv/roms/nic.rom");
}

static void
test_outside(Tree *tree, gconstpointer data)
{
  assert_refused("/etc/shadow", "not in a directory the policy allows (/usr/share/qemu, "
                 "/srv/roms)");
  /* a prefix of a name is not the directory */
  assert_refused("/usr/share/qemuX/efi-e1000.rom", "not in a directory");
  assert_refused("/srv/roms", "not in a directory");
  assert_refused("efi-e1000.rom", "not in a directory");
}

static void
test_dot_dot(Tree *tree, gconstpointer data)
{
  assert_refused("/usr/share/qemu/../../../etc/shadow", "'..' component");
  assert_refused("/usr/share/qemu/./efi-e1000.rom", "'..' component");
  assert_refused("/usr/share/qemu//efi-e1000.rom", "'..' component");
  assert_refused("/usr/share/qemu/", "not a regular file");
}

static void
test_links(Tree *tree, gconstpointer data)
{
  assert_refused("/usr/share/qemu/shadow.rom", "symbolic link");
  assert_refused("/usr/share/qemu/abs.rom", "symbolic link");
  assert_refused("/usr/share/qemu/etc/shadow", "symbolic link");
  /* even a link that stays inside: QEMU would follow whatever it points to then */
  assert_refused("/usr/share/qemu/inside.rom", "symbolic link");
}

static void
test_not_private(Tree *tree, gconstpointer data)
{
  assert_refused("/usr/share/qemu/open/x.rom", "someone other than root can change");
  g_autofree char *dir = g_build_filename(tree->root, "srv/roms", NULL);
  g_assert_cmpint(chmod(dir, 0775), ==, 0);
  assert_refused("/srv/roms/nic.rom", "/srv/roms, which someone other than root");
}

static void
test_not_a_file(Tree *tree, gconstpointer data)
{
  assert_refused("/usr/share/qemu/vendor", "not a regular file");
  assert_refused("/usr/share/qemu/missing.rom", "cannot be opened");
  assert_refused("/usr/share/qemu/efi-e1000.rom/x", "not a directory");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add("/host-rom/allowed", Tree, NULL, tree_setup, test_allowed, tree_teardown);
  g_test_add("/host-rom/outside", Tree, NULL, tree_setup, test_outside, tree_teardown);
  g_test_add("/host-rom/dot-dot", Tree, NULL, tree_setup, test_dot_dot, tree_teardown);
  g_test_add("/host-rom/links", Tree, NULL, tree_setup, test_links, tree_teardown);
  g_test_add("/host-rom/not-private", Tree, NULL, tree_setup, test_not_private,
             tree_teardown);
  g_test_add("/host-rom/not-a-file", Tree, NULL, tree_setup, test_not_a_file, tree_teardown);
  return g_test_run();
}
