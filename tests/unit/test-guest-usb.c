/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-guest-usb - the USB port map and libvirt 9.0's choice of a port
 * (guest-usb.c), and how x-query-usb's answer fills the map
 */
#include "guest-addr.h"
#include "guest-usb.h"
#include "hostdevd-error.h"

#include <string.h>

static void
assert_contains(const char *text, const char *needle)
{
  if (strstr(text, needle) == NULL)
    g_error("'%s' does not contain '%s'", text, needle);
}

/* usb (index 0) and usb1 (index 1), both qemu-xhci with @ports ports */
static GuestUsbPorts *
two_controllers(guint ports0, guint ports1)
{
  GuestUsbPorts *ports = guest_usb_ports_new();
  /* added out of order: the index decides, not the order QEMU lists them */
  g_assert_true(guest_usb_ports_add_controller(ports, 1, "usb1", "qemu-xhci", ports1, NULL));
  g_assert_true(guest_usb_ports_add_controller(ports, 0, "usb", "qemu-xhci", ports0, NULL));
  return ports;
}

static void
assert_placed(GuestUsbPorts *ports, gboolean has_bus, guint bus, const char *port,
              guint want_bus, const char *want_port)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;
  guint got_bus = 99;
  g_assert_true(guest_usb_place(ports, has_bus, bus, port, "dev", &got_bus, &got, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(got_bus, ==, want_bus);
  g_assert_cmpstr(got, ==, want_port);
}

static void
assert_refused(GuestUsbPorts *ports, gboolean has_bus, guint bus, const char *port, gint code,
               const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;
  guint got_bus = 99;
  g_assert_false(guest_usb_place(ports, has_bus, bus, port, "dev", &got_bus, &got, &error));
  g_assert_error(error, HOSTDEVD_ERROR, code);
  g_assert_null(got);
  assert_contains(error->message, needle);
}

/* The lowest port of the lowest index first; each placement takes its port. */
static void
test_controllers_in_index_order(void)
{
  g_autoptr(GuestUsbPorts) ports = two_controllers(2, 4);

  assert_placed(ports, FALSE, 0, NULL, 0, "1");
  assert_placed(ports, FALSE, 0, NULL, 0, "2");
  assert_placed(ports, FALSE, 0, NULL, 1, "1");
  /* a controller named in the XML: only that one */
  assert_placed(ports, TRUE, 1, NULL, 1, "2");
  assert_refused(ports, TRUE, 0, NULL, HOSTDEVD_ERROR_BUSY, "no free port on USB controller 0");
  assert_refused(ports, TRUE, 5, NULL, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                 "no USB controller with index 5; its USB controllers: usb.0 (qemu-xhci, "
                 "2 ports), usb1.0 (qemu-xhci, 4 ports)");
  /* a port that left is the first free one again */
  guest_usb_ports_release(ports, 0, "1");
  assert_placed(ports, FALSE, 0, NULL, 0, "1");
}

static void
test_explicit_port(void)
{
  g_autoptr(GuestUsbPorts) ports = two_controllers(4, 4);

  assert_placed(ports, TRUE, 0, "3", 0, "3");
  assert_refused(ports, TRUE, 0, "3", HOSTDEVD_ERROR_BUSY, "the port is taken by dev");
  assert_refused(ports, TRUE, 0, "5", HOSTDEVD_ERROR_INVALID_ARGUMENT, "has only 4 ports");
  assert_refused(ports, TRUE, 0, "1.1", HOSTDEVD_ERROR_INVALID_ARGUMENT,
                 "there is no USB hub at port 1 of usb.0");
  assert_refused(ports, TRUE, 2, "1", HOSTDEVD_ERROR_INVALID_ARGUMENT,
                 "no USB controller with index 2");
  /* the automatic choice steps over it */
  assert_placed(ports, FALSE, 0, NULL, 0, "1");
  assert_placed(ports, FALSE, 0, NULL, 0, "2");
  assert_placed(ports, FALSE, 0, NULL, 0, "4");
}

/* A hub's own port is taken; its ports are searched only once its controller's are full. */
static void
test_hubs(void)
{
  g_autoptr(GuestUsbPorts) ports = two_controllers(2, 2);

  g_assert_true(guest_usb_ports_add_hub(ports, 0, "1", NULL));
  assert_placed(ports, FALSE, 0, NULL, 0, "2");
  /* usb.0's own ports are full: its hub's, before the next controller */
  assert_placed(ports, FALSE, 0, NULL, 0, "1.1");
  assert_placed(ports, FALSE, 0, NULL, 0, "1.2");
  /* a hub on the hub: the first hub's free ports still come before it */
  g_assert_true(guest_usb_ports_add_hub(ports, 0, "1.3", NULL));
  for (guint i = 4; i <= GUEST_USB_HUB_PORTS; i++) {
    g_autofree char *want = g_strdup_printf("1.%u", i);
    assert_placed(ports, FALSE, 0, NULL, 0, want);
  }
  assert_placed(ports, FALSE, 0, NULL, 0, "1.3.1");
  assert_placed(ports, TRUE, 0, "1.3.8", 0, "1.3.8");
  assert_refused(ports, TRUE, 0, "1.3.9", HOSTDEVD_ERROR_INVALID_ARGUMENT,
                 "a hub there with only 8 ports");
}

/* A port kept for a waiting device is given back only by that device. */
static void
test_give_back_only_by_holder(void)
{
  g_autoptr(GuestUsbPorts) ports = guest_usb_ports_new();

  g_assert_true(guest_usb_ports_add_controller(ports, 0, "usb", "qemu-xhci", 4, NULL));
  g_assert_true(guest_usb_ports_take(ports, 0, "1", "hostdev0", NULL));
  guest_usb_ports_give_back(ports, 0, "1", "hostdev1");
  assert_placed(ports, FALSE, 0, NULL, 0, "2");
  guest_usb_ports_give_back(ports, 0, "1", "hostdev0");
  assert_placed(ports, FALSE, 0, NULL, 0, "1");
  /* unknown ports and buses are no-ops */
  guest_usb_ports_give_back(ports, 0, "9", "hostdev0");
  guest_usb_ports_give_back(ports, 3, "1", "hostdev0");
}

/* libvirt looks no deeper than port paths of 4 numbers. */
static void
test_hub_depth(void)
{
  g_autoptr(GuestUsbPorts) ports = guest_usb_ports_new();
  const char *chain[] = { "1", "1.1", "1.1.1", "1.1.1.1" };

  g_assert_true(guest_usb_ports_add_controller(ports, 0, "usb", "piix3-usb-uhci", 1, NULL));
  for (guint i = 0; i < G_N_ELEMENTS(chain); i++)
    g_assert_true(guest_usb_ports_add_hub(ports, 0, chain[i], NULL));
  for (guint i = 2; i <= GUEST_USB_HUB_PORTS; i++) {
    for (guint level = 1; level < 3; level++) {
      g_autofree char *port = g_strdup_printf("%s.%u", chain[level - 1], i);
      g_assert_true(guest_usb_ports_take(ports, 0, port, "x", NULL));
    }
  }
  for (guint i = 2; i <= GUEST_USB_HUB_PORTS; i++) {
    g_autofree char *port = g_strdup_printf("1.1.1.%u", i);
    assert_placed(ports, FALSE, 0, NULL, 0, port);
  }
  /* the hub at 1.1.1.1 has free ports, but they would be a 5th level */
  assert_refused(ports, FALSE, 0, NULL, HOSTDEVD_ERROR_BUSY, "no free USB port in this VM");
}

static void
test_full_and_none(void)
{
  g_autoptr(GuestUsbPorts) none = guest_usb_ports_new();
  assert_refused(none, FALSE, 0, NULL, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                 "this VM has no USB controller");

  g_autoptr(GuestUsbPorts) ports = two_controllers(1, 1);
  assert_placed(ports, FALSE, 0, NULL, 0, "1");
  assert_placed(ports, FALSE, 0, NULL, 1, "1");
  assert_refused(ports, FALSE, 0, NULL, HOSTDEVD_ERROR_BUSY,
                 "no free USB port in this VM: every port of its controllers (usb.0 "
                 "(qemu-xhci, 1 ports), usb1.0 (qemu-xhci, 1 ports)) and of their hubs holds "
                 "a device");
  /* a duplicate index is QEMU's mistake */
  g_autoptr(GError) error = NULL;
  g_assert_false(guest_usb_ports_add_controller(ports, 1, "usb1", "qemu-xhci", 4, &error));
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR);
}

static void
test_controller_models(void)
{
  const char *property = "unset";
  g_assert_cmpuint(guest_usb_controller_ports("qemu-xhci", &property), ==, 4);
  g_assert_cmpstr(property, ==, "p2");
  g_assert_cmpuint(guest_usb_controller_ports("ich9-usb-ehci1", &property), ==, 6);
  g_assert_null(property);
  g_assert_cmpuint(guest_usb_controller_ports("piix3-usb-uhci", NULL), ==, 2);
  g_assert_cmpuint(guest_usb_controller_ports("pci-ohci", &property), ==, 3);
  g_assert_cmpstr(property, ==, "num-ports");
  /* an EHCI's UHCI companions have no bus of their own, as in libvirt */
  g_assert_cmpuint(guest_usb_controller_ports("ich9-usb-uhci1", NULL), ==, 0);
  g_assert_cmpuint(guest_usb_controller_ports("usb-host", NULL), ==, 0);
}

/* What QEMU 7.2's x-query-usb printed with a keyboard, a hub with a device, on two xhci. */
static const char query_usb[] =
    "  Device 0.1, Port 1, Speed 480 Mb/s, Product QEMU USB Keyboard, ID: kbd0\n"
    "  Device 0.2, Port 2, Speed 12 Mb/s, Product QEMU USB Hub, ID: hub\n"
    "  Device 0.0, Port 2.1, Speed 1.5 Mb/s, Product USB Host Device, ID: hostdev0\n"
    "  Device 1.0, Port 1, Speed 1.5 Mb/s, Product USB Host Device, ID: hostdev10\n";

static void
test_taken_from_query(void)
{
  g_autoptr(GuestUsbPorts) ports = two_controllers(3, 4);
  const char *hubs[] = { "hub", NULL };
  g_autoptr(GError) error = NULL;

  g_assert_true(guest_usb_ports_take_listed(ports, query_usb, hubs, &error));
  g_assert_no_error(error);
  assert_placed(ports, FALSE, 0, NULL, 0, "3");
  assert_placed(ports, FALSE, 0, NULL, 0, "2.2");
  assert_refused(ports, TRUE, 0, "2.1", HOSTDEVD_ERROR_BUSY, "taken by hostdev0");
  assert_refused(ports, TRUE, 1, "1", HOSTDEVD_ERROR_BUSY, "taken by hostdev10");

  /* an empty hub without an id is not known as one: its port is just taken */
  g_autoptr(GuestUsbPorts) anonymous = two_controllers(2, 2);
  g_assert_true(guest_usb_ports_take_listed(
      anonymous, "  Device 0.2, Port 1, Speed 12 Mb/s, Product QEMU USB Hub\n", NULL, NULL));
  assert_placed(anonymous, FALSE, 0, NULL, 0, "2");
  assert_placed(anonymous, FALSE, 0, NULL, 1, "1");

  /* no controller: QEMU says so in words, and nothing is taken */
  g_autoptr(GuestUsbPorts) none = guest_usb_ports_new();
  g_assert_true(guest_usb_ports_take_listed(none, "USB support not enabled\n", NULL, NULL));
}

static void
assert_listing_refused(const char *text, const char *needle)
{
  g_autoptr(GuestUsbPorts) ports = two_controllers(4, 4);
  g_autoptr(GError) error = NULL;
  g_assert_false(guest_usb_ports_take_listed(ports, text, NULL, &error));
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR);
  assert_contains(error->message, needle);
}

/*
 * Issue 11, item 12, carried over: x-query-usb prints each device's own
 * product string, which a USB device chooses.  A line it breaks, a port or
 * bus the controllers do not have, refuse the whole answer; a product can
 * at most make its own line's port look taken.
 */
static void
test_taken_from_hostile_query(void)
{
  assert_listing_refused("  Device 0.3, Port 2, Speed 12 Mb/s, Product x\n Device 0.9, Port 9\n",
                         "line 2");
  assert_listing_refused("  Device 0.200, Port 1, Speed 12 Mb/s, Product P\n",
                         "not a USB device");
  assert_listing_refused("  Device 7.1, Port 1, Speed 12 Mb/s, Product P\n",
                         "shows a device on USB bus 7");
  assert_listing_refused("  Device 0.1, Port 1.2.3.4.5, Speed 12 Mb/s, Product P\n",
                         "1 to 4 numbers 1..255");
  assert_listing_refused("  Device 0.1, Port 0, Speed 12 Mb/s, Product P\n",
                         "1 to 4 numbers 1..255");
  assert_listing_refused("  Device 0.1, Port 9, Speed 12 Mb/s, Product P\n",
                         "has only 4 ports");
  assert_listing_refused("  Device 0.1, Port 1, Speed 12 Mb/s, Product P\n"
                         "  Device 0.2, Port 1, Speed 12 Mb/s, Product P\n",
                         "the port is taken");

  g_autoptr(GuestUsbPorts) ports = two_controllers(4, 4);
  g_assert_true(guest_usb_ports_take_listed(
      ports, "  Device 0.3, Port 1, Speed 12 Mb/s, Product x, ID: hostdev9, ID: hostdev0\n",
      NULL, NULL));
  assert_refused(ports, TRUE, 0, "1", HOSTDEVD_ERROR_BUSY, "taken by hostdev0");
  assert_placed(ports, FALSE, 0, NULL, 0, "2");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/guest-usb/controllers-in-index-order", test_controllers_in_index_order);
  g_test_add_func("/guest-usb/explicit-port", test_explicit_port);
  g_test_add_func("/guest-usb/hubs", test_hubs);
  g_test_add_func("/guest-usb/give-back-only-by-holder", test_give_back_only_by_holder);
  g_test_add_func("/guest-usb/hub-depth", test_hub_depth);
  g_test_add_func("/guest-usb/full-and-none", test_full_and_none);
  g_test_add_func("/guest-usb/controller-models", test_controller_models);
  g_test_add_func("/guest-usb/taken-from-query", test_taken_from_query);
  g_test_add_func("/guest-usb/taken-from-query/hostile", test_taken_from_hostile_query);
  return g_test_run();
}
