/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The example policy shipped in /usr/share/doc/hostdevd/examples loads as
 * it is, and loads with every commented-out line switched on; together its
 * lines name every key the policy file has.
 */
#include "policy.h"

#include <string.h>

static char *
read_example(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_test_build_filename(G_TEST_DIST, "..", "..", "contrib",
                                                "policy.conf.example", NULL);
  char *text = NULL;

  g_file_get_contents(path, &text, NULL, &error);
  g_assert_no_error(error);
  return text;
}

static void
assert_loads(const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Policy) policy = policy_load_from_data(text, strlen(text), "policy.conf.example",
                                                   0, &error);
  g_assert_no_error(error);
  g_assert_nonnull(policy);
}

static void
test_as_shipped(void)
{
  g_autofree char *text = read_example();

  assert_loads(text);
}

static void
test_every_line_switched_on(void)
{
  static const char *const keys[] = {
    "full-access-users", "full-access-groups", "read-only-users", "read-only-groups",
    "socket-group", "allow-pci", "allow-pci-ids", "allow-pci-classes", "allow-usb",
    "deny-pci", "deny-pci-ids", "deny-pci-classes", "deny-usb", "allow-boot-vga",
    "max-devices", "allow-iommu-group-takeover", "allow-usb-hubs", "allow-rom-dirs",
    "allow-vf-macs", "allow-vlans",
  };
  g_autofree char *text = read_example();
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autoptr(GString) on = g_string_new(NULL);

  /* "#key=value" and "#[vm NAME]" are settings; "# words" stay comments */
  for (char **line = lines; *line; line++) {
    const char *l = *line;
    if (l[0] == '#' && (l[1] == '[' || g_ascii_isalpha(l[1])))
      l++;
    g_string_append_printf(on, "%s\n", l);
  }
  assert_loads(on->str);
  for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
    g_autofree char *needle = g_strdup_printf("\n%s=", keys[i]);
    if (strstr(on->str, needle) == NULL)
      g_error("the example policy does not show %s", keys[i]);
  }
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/policy-example/as-shipped", test_as_shipped);
  g_test_add_func("/policy-example/every-line-switched-on", test_every_line_switched_on);
  return g_test_run();
}
