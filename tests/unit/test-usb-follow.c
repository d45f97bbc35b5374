/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-usb-follow.c - which kernel USB events concern a USB hostdev that
 * follows its device (broker/host/usb-follow.c): parsed from real-looking
 * uevent messages and hostdevs parsed from XML, as hostdevd sees them
 */
#include "hostdevd-error.h"
#include "usb-follow.h"

#include <string.h>

#define NS "xmlns:hostdevd='urn:hostdevd:hostdev:1'"

/* A uevent as the kernel sends it for a device at @port of bus 1. */
static UsbUevent *
uevent(const char *action, const char *port, guint devnum, const char *product)
{
  g_autofree char *devpath = g_strdup_printf("/devices/pci0000:00/0000:00:14.0/usb1/%s", port);
  g_autofree char *header = g_strdup_printf("%s@%s", action, devpath);
  g_autofree char *fields[] = {
    g_strdup_printf("ACTION=%s", action), g_strdup_printf("DEVPATH=%s", devpath),
    g_strdup("SUBSYSTEM=usb"), g_strdup("DEVTYPE=usb_device"),
    g_strdup_printf("PRODUCT=%s", product), g_strdup("BUSNUM=001"),
    g_strdup_printf("DEVNUM=%03u", devnum), g_strdup("SEQNUM=77"),
  };
  g_autoptr(GByteArray) bytes = g_byte_array_new();
  g_autoptr(GError) error = NULL;

  g_byte_array_append(bytes, (const guint8 *)header, (guint)strlen(header) + 1);
  for (gsize i = 0; i < G_N_ELEMENTS(fields); i++) {
    g_byte_array_append(bytes, (const guint8 *)fields[i], (guint)strlen(fields[i]) + 1);
    g_free(fields[i]);
    fields[i] = NULL;
  }
  UsbUevent *event = usb_uevent_parse(bytes->data, bytes->len, &error);
  g_assert_no_error(error);
  return event;
}

static Hostdev *
usb_hostdev(const char *source)
{
  g_autofree char *xml = g_strdup_printf("<hostdev mode='subsystem' type='usb'>"
                                         "<source>%s</source></hostdev>", source);
  g_autoptr(GError) error = NULL;
  Hostdev *hostdev = hostdev_parse_xml(xml, strlen(xml), &error);
  g_assert_no_error(error);
  return hostdev;
}

/* libvirt's meaning stays for bus/device numbers; names are followed; follow= decides. */
static void
test_wanted(void)
{
  static const struct {
    const char *source;
    gboolean wanted;
  } cases[] = {
    { "<vendor id='0x1050'/><product id='0x0407'/>", TRUE },
    { "<hostdevd:device " NS " port='1-2.3'/>", TRUE },
    { "<hostdevd:device " NS " serial='A1'/>", TRUE },
    { "<address bus='1' device='9'/>", FALSE },
    { "<vendor id='0x1050'/><product id='0x0407'/><address bus='1' device='9'/>", FALSE },
    { "<address bus='1' device='9'/><hostdevd:device " NS " follow='yes'/>", TRUE },
    { "<vendor id='0x1050'/><product id='0x0407'/><hostdevd:device " NS " follow='no'/>",
      FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(Hostdev) hostdev = usb_hostdev(cases[i].source);
    g_test_message("%s", cases[i].source);
    g_assert_cmpint(usb_follow_wanted(hostdev), ==, cases[i].wanted);
  }
}

/* follow= is hostdevd's: kept in the live XML, read back, and strict. */
static void
test_follow_attribute(void)
{
  g_autoptr(Hostdev) hostdev = usb_hostdev("<address bus='1' device='9'/>"
                                           "<hostdevd:device " NS " follow='yes'/>");
  g_autofree char *xml = hostdev_format_xml(hostdev);
  g_autoptr(GError) error = NULL;

  g_assert_nonnull(strstr(xml, "follow='yes'"));
  g_autoptr(Hostdev) again = hostdev_parse_live_xml(xml, strlen(xml), &error);
  g_assert_no_error(error);
  g_assert_cmpint(again->usb.follow, ==, HOSTDEV_TRISTATE_ON);

  const char *bad = "<hostdev mode='subsystem' type='usb'><source><address bus='1' device='9'/>"
                    "<hostdevd:device " NS " follow='always'/></source></hostdev>";
  g_autoptr(Hostdev) refused = hostdev_parse_xml(bad, strlen(bad), &error);
  g_assert_null(refused);
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull(strstr(error->message, "follow"));

  /* plain libvirt XML gains nothing of hostdevd's */
  g_autoptr(Hostdev) plain = usb_hostdev("<vendor id='0x1050'/><product id='0x0407'/>");
  g_autofree char *plain_xml = hostdev_format_xml(plain);
  g_assert_null(strstr(plain_xml, "hostdevd"));
}

/* The device held leaves: its bus and device number (and port, when named). */
static void
test_leaving(void)
{
  g_autoptr(Hostdev) by_ids = usb_hostdev("<vendor id='0x1050'/><product id='0x0407'/>");
  g_autoptr(Hostdev) by_port = usb_hostdev("<hostdevd:device " NS " port='1-2.3'/>");
  g_autoptr(UsbUevent) gone = uevent("remove", "1-2/1-2.3", 9, "1050/407/543");
  g_autoptr(UsbUevent) other = uevent("remove", "1-2/1-2.3", 10, "1050/407/543");
  g_autoptr(UsbUevent) elsewhere = uevent("remove", "1-4", 9, "1050/407/543");
  g_autoptr(UsbUevent) added = uevent("add", "1-2/1-2.3", 9, "1050/407/543");

  /* found at attach: bus 1 device 9, as the live XML records it */
  for (Hostdev **h = (Hostdev *[]){ by_ids, by_port, NULL }; *h; h++) {
    (*h)->usb.has_address = TRUE;
    (*h)->usb.bus = 1;
    (*h)->usb.device = 9;
  }
  g_assert_true(usb_follow_is_leaving(by_ids, gone));
  g_assert_true(usb_follow_is_leaving(by_port, gone));
  g_assert_false(usb_follow_is_leaving(by_ids, other));
  g_assert_false(usb_follow_is_leaving(by_ids, added));
  /* the same numbers at another port is not the device named by port */
  g_assert_true(usb_follow_is_leaving(by_ids, elsewhere));
  g_assert_false(usb_follow_is_leaving(by_port, elsewhere));
  /* a waiting hostdev has no address: nothing of it can leave */
  by_ids->usb.has_address = FALSE;
  g_assert_false(usb_follow_is_leaving(by_ids, gone));
}

/* What may be the device waited for: every name the event carries must agree. */
static void
test_arriving(void)
{
  g_autoptr(Hostdev) by_ids = usb_hostdev("<vendor id='0x1050'/><product id='0x0407'/>");
  g_autoptr(Hostdev) by_port = usb_hostdev("<hostdevd:device " NS " port='1-2.3'/>");
  g_autoptr(Hostdev) by_both = usb_hostdev("<vendor id='0x1050'/><product id='0x0407'/>"
                                           "<hostdevd:device " NS " port='1-2.3'/>");
  g_autoptr(Hostdev) by_serial = usb_hostdev("<hostdevd:device " NS " serial='A1'/>");
  g_autoptr(UsbUevent) key = uevent("add", "1-2/1-2.3", 12, "1050/407/543");
  g_autoptr(UsbUevent) mouse = uevent("add", "1-2/1-2.3", 13, "46d/c52b/1211");
  g_autoptr(UsbUevent) key_elsewhere = uevent("add", "1-4", 14, "1050/407/543");
  g_autoptr(UsbUevent) key_bound = uevent("bind", "1-2/1-2.3", 12, "1050/407/543");

  g_assert_true(usb_follow_may_arrive(by_ids, key));
  g_assert_true(usb_follow_may_arrive(by_ids, key_elsewhere));
  g_assert_false(usb_follow_may_arrive(by_ids, mouse));
  g_assert_true(usb_follow_may_arrive(by_port, key));
  /* the port's new device is a candidate; the look-up and the policy decide */
  g_assert_true(usb_follow_may_arrive(by_port, mouse));
  g_assert_false(usb_follow_may_arrive(by_port, key_elsewhere));
  g_assert_true(usb_follow_may_arrive(by_both, key));
  g_assert_false(usb_follow_may_arrive(by_both, mouse));
  g_assert_false(usb_follow_may_arrive(by_both, key_elsewhere));
  /* the serial is not in the event: any device is a candidate, sysfs decides */
  g_assert_true(usb_follow_may_arrive(by_serial, mouse));
  g_assert_false(usb_follow_may_arrive(by_ids, key_bound));
}

/* A root hub appearing is never a hostdev's device. */
static void
test_root_hub_never_arrives(void)
{
  g_autoptr(Hostdev) by_ids = usb_hostdev("<vendor id='0x1d6b'/><product id='0x0002'/>");
  const char text[] = "add@/devices/pci0000:00/0000:00:14.0/usb1\0ACTION=add\0"
                      "DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1\0SUBSYSTEM=usb\0"
                      "DEVTYPE=usb_device\0PRODUCT=1d6b/2/601\0BUSNUM=001\0DEVNUM=001\0";
  g_autoptr(GError) error = NULL;
  g_autoptr(UsbUevent) hub = usb_uevent_parse((const guint8 *)text, sizeof text - 1, &error);

  g_assert_no_error(error);
  g_assert_null(hub->port_path);
  g_assert_false(usb_follow_may_arrive(by_ids, hub));
}

/* The look-up after a re-enumeration drops the old number, keeps every other name. */
static void
test_source_for_lookup(void)
{
  g_autoptr(Hostdev) live = usb_hostdev("<vendor id='0x1050'/><product id='0x0407'/>"
                                        "<address bus='1' device='9'/>"
                                        "<hostdevd:device " NS " serial='A1'/>");
  live->alias = g_strdup("ua-key");
  live->usb_guest.present = TRUE;
  live->usb_guest.port = g_strdup("2");
  g_autoptr(Hostdev) lookup = usb_follow_source_for_lookup(live);

  g_assert_false(lookup->usb.has_address);
  g_assert_true(lookup->usb.has_vendor_product);
  g_assert_cmpstr(lookup->usb.serial, ==, "A1");
  g_assert_cmpstr(lookup->alias, ==, "ua-key");
  g_assert_cmpstr(lookup->usb_guest.port, ==, "2");
  g_assert_true(live->usb.has_address);

  /* an optional device named by its address alone waits for that address */
  g_autoptr(Hostdev) by_address = usb_hostdev("<address bus='3' device='7'/>");
  g_autoptr(Hostdev) same = usb_follow_source_for_lookup(by_address);
  g_assert_true(same->usb.has_address);
  g_assert_cmpuint(same->usb.device, ==, 7);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/usb-follow/wanted", test_wanted);
  g_test_add_func("/usb-follow/follow-attribute", test_follow_attribute);
  g_test_add_func("/usb-follow/leaving", test_leaving);
  g_test_add_func("/usb-follow/arriving", test_arriving);
  g_test_add_func("/usb-follow/root-hub", test_root_hub_never_arrives);
  g_test_add_func("/usb-follow/source-for-lookup", test_source_for_lookup);
  return g_test_run();
}
