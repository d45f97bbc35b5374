/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-usb-selector.c - port path and serial syntax, and hostdevd's XML
 * extension <hostdevd:device port serial/> in a USB hostdev's <source>
 */
#include "hostdev.h"
#include "hostdevd-error.h"
#include "usb-selector.h"

#include <string.h>

#define NS "xmlns:hostdevd='urn:hostdevd:hostdev:1'"
#define USB "<hostdev mode='subsystem' type='usb'>"
#define IDS "<vendor id='0x0627'/><product id='0x0001'/>"
#define END "</hostdev>"

static void
assert_error(const GError *error, HostdevdError code, const char *substring)
{
  g_assert_nonnull(error);
  if (!g_error_matches(error, HOSTDEVD_ERROR, code) ||
      strstr(error->message, substring) == NULL)
    g_error("expected code %d containing \"%s\", got %d: %s",
            code, substring, error->code, error->message);
  g_test_message("%s", error->message);
}

static Hostdev *
parse(const char *xml, GError **error)
{
  return hostdev_parse_xml(xml, strlen(xml), error);
}

static void
test_port_path_good(void)
{
  static const struct {
    const char *text;
    const char *canonical;
    guint bus;
  } cases[] = {
    { "1-2", "1-2", 1 },
    { "1-2.3", "1-2.3", 1 },
    { "03-01.4", "3-1.4", 3 },
    { "65535-255.255.255.255.255.255", "65535-255.255.255.255.255.255", 65535 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    guint bus = 0;
    g_autofree char *path = usb_port_path_parse(cases[i].text, &bus, &error);

    g_assert_no_error(error);
    g_assert_cmpstr(path, ==, cases[i].canonical);
    g_assert_cmpuint(bus, ==, cases[i].bus);
  }
}

static void
test_port_path_bad(void)
{
  static const char *const bad[] = {
    "", "1", "1-", "-2", "usb1", "0-1", "1-0", "1-2.", "1-.2", "1-2..3",
    "1-256", "65536-1", "1-2.3.4.5.6.7.8", "1-1.1.1.1.1.1.1", "1-2:1.0",
    " 1-2", "1-2 ", "+1-2", "1--2", "1-2-3", "1-0x2", "1-2/../3",
    "99999999999-1", "1-99999999999",
  };

  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    g_autofree char *path = usb_port_path_parse(bad[i], NULL, &error);

    if (path != NULL)
      g_error("'%s' was accepted as '%s'", bad[i], path);
    assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "a port path is");
  }
}

static void
test_serial(void)
{
  static const char *const good[] = {
    "0001234567", "A1 B2", "caf\xc3\xa9", "0000:00:07.0", "x",
  };
  static const struct {
    const char *text;
    const char *why;
  } bad[] = {
    { "", "is empty" },
    { " A1", "white space" },
    { "A1\t", "white space" },
    { "A\x01" "1", "control character" },
    { "A\x7f" "1", "control character" },
    { "A\xc2\x85" "1", "control character" },       /* U+0085, a C1 control */
    { "A\xef\xbf\xbf" "1", "control character" },   /* U+FFFF */
    { "\xff\xfe", "not valid UTF-8" },
  };
  g_autofree char *longest = g_strnfill(USB_SERIAL_MAX_CHARS, 'S');
  g_autofree char *too_long = g_strnfill(USB_SERIAL_MAX_CHARS + 1, 'S');
  g_autoptr(GError) error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
    g_assert_true(usb_serial_check(good[i], &error));
    g_assert_no_error(error);
  }
  g_assert_true(usb_serial_check(longest, &error));
  g_assert_no_error(error);
  g_assert_false(usb_serial_check(too_long, &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "126 characters");
  g_clear_error(&error);
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_assert_false(usb_serial_check(bad[i].text, &error));
    assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, bad[i].why);
    g_clear_error(&error);
  }
}

/* ------------------------------------------------------------------ */

static void
test_parse_port_and_serial(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(USB "<source>" IDS
                               "<hostdevd:device " NS " port='01-2.03' serial='A&amp;B'/>"
                               "</source>" END, &error);

  g_assert_no_error(error);
  g_assert_true(h->usb.has_vendor_product);
  g_assert_cmpstr(h->usb.port_path, ==, "1-2.3");
  g_assert_cmpstr(h->usb.serial, ==, "A&B");
  g_assert_false(h->usb.has_address);
}

/* The prefix is the writer's: the namespace decides. */
static void
test_parse_any_prefix(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(USB "<source xmlns:x='urn:hostdevd:hostdev:1'>"
                               "<x:device serial='S1'/></source>" END, &error);
  g_autoptr(Hostdev) d = NULL;

  g_assert_no_error(error);
  g_assert_false(h->usb.has_vendor_product);
  g_assert_false(h->usb.has_address);
  g_assert_null(h->usb.port_path);
  g_assert_cmpstr(h->usb.serial, ==, "S1");

  /* a default namespace works too */
  d = parse(USB "<source><device xmlns='urn:hostdevd:hostdev:1' port='2-1'/>"
            "</source>" END, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(d->usb.port_path, ==, "2-1");
}

/* Plain libvirt input has no selector and the model shows none. */
static void
test_parse_plain(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(USB "<source>" IDS "</source>" END, &error);

  g_assert_no_error(error);
  g_assert_null(h->usb.port_path);
  g_assert_null(h->usb.serial);
}

typedef struct {
  const char *name;
  const char *xml;
  const char *message;
} BadCase;

static const BadCase bad_cases[] = {
  { "empty-selector", USB "<source><hostdevd:device " NS "/></source>" END,
    "<source><hostdevd:device>: give port='...'" },
  { "bad-port", USB "<source><hostdevd:device " NS " port='1.2'/></source>" END,
    "<source><hostdevd:device port='1.2'>: a port path is the bus number" },
  { "root-hub-port", USB "<source><hostdevd:device " NS " port='usb1'/></source>" END,
    "port='usb1'>: a port path is" },
  { "empty-serial", USB "<source>" IDS "<hostdevd:device " NS " serial=''/></source>" END,
    "serial=''>: the serial is empty" },
  { "control-serial", USB "<source>" IDS "<hostdevd:device " NS " serial='a&#10;b'/></source>" END,
    "serial='a\\nb'>: the serial contains a control character" },
  { "misspelt-attr", USB "<source>" IDS "<hostdevd:device " NS " seriel='A'/></source>" END,
    "<source><hostdevd:device seriel='...'>: unknown attribute" },
  { "ns-attr", USB "<source>" IDS "<hostdevd:device " NS " hostdevd:port='1-2'/></source>" END,
    "<device hostdevd:port='...'>: hostdevd's XML extension is one element" },
  { "attr-on-source", USB "<source " NS " hostdevd:port='1-2'>" IDS "</source>" END,
    "<source hostdevd:port='...'>" },
  { "twice", USB "<source>" IDS "<hostdevd:device " NS " port='1-2'/>"
    "<hostdevd:device " NS " port='1-3'/></source>" END,
    "<hostdevd:device>: hostdevd's XML extension is one element" },
  { "outside-source", USB "<source>" IDS "</source><hostdevd:device " NS " port='1-2'/>" END,
    "once, inside the <source> of a USB hostdev" },
  { "unknown-element", USB "<source>" IDS "<hostdevd:port " NS " path='1-2'/></source>" END,
    "<hostdevd:port>: hostdevd's XML extension" },
  { "other-version", USB "<source>" IDS "<h:device xmlns:h='urn:hostdevd:hostdev:2' "
    "port='1-2'/></source>" END,
    "unknown hostdevd namespace 'urn:hostdevd:hostdev:2'" },
  { "on-pci", "<hostdev mode='subsystem' type='pci'><source><address domain='0' "
    "bus='1' slot='0' function='0'/><hostdevd:device " NS " port='1-2'/></source>" END,
    "inside the <source> of a USB hostdev" },
  { "on-interface", "<interface type='hostdev'><source><address type='pci' "
    "bus='1'/></source><hostdevd:device " NS " serial='A'/></interface>",
    "inside the <source> of a USB hostdev" },
  /* libvirt's names in another namespace are not libvirt's */
  { "vendor-in-ns", USB "<source " NS "><hostdevd:vendor id='0x0627'/>"
    "<hostdevd:product id='0x0001'/></source>" END,
    "<hostdevd:vendor>: hostdevd's XML extension" },
  { "vendor-other-ns", USB "<source xmlns:o='urn:other'><o:vendor id='0x0627'/>"
    "<o:product id='0x0001'/></source>" END,
    "<source> of a USB hostdev must name the device" },
};

static void
test_bad_case(gconstpointer data)
{
  const BadCase *c = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(c->xml, &error);

  g_assert_null(h);
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, c->message);
}

/* A <devices> request is checked device by device. */
static void
test_request(void)
{
  const char *xml = "<devices>" USB "<source>" IDS "<hostdevd:device " NS
                    " port='1-2'/></source>" END
                    USB "<source>" IDS "<hostdevd:device " NS " port='1-3'/>"
                    "</source>" END "</devices>";
  g_autoptr(GError) error = NULL;
  gboolean several = FALSE;
  g_autoptr(GPtrArray) devices = hostdev_parse_request(xml, strlen(xml), &several, &error);
  const Hostdev *second;

  g_assert_no_error(error);
  g_assert_true(several);
  g_assert_cmpuint(devices->len, ==, 2);
  second = devices->pdata[1];
  g_assert_cmpstr(second->usb.port_path, ==, "1-3");
}

/* ------------------------------------------------------------------ */

static void
test_format_round_trip(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_USB);
  g_autoptr(Hostdev) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *again = NULL;
  const char *expected =
    "<hostdev mode='subsystem' type='usb' managed='no'>\n"
    "  <source>\n"
    "    <vendor id='0x0627'/>\n"
    "    <product id='0x0001'/>\n"
    "    <address bus='1' device='7'/>\n"
    "    <hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' port='1-2.3' "
    "serial='&lt;A&apos;&amp;&quot;B&gt; caf\xc3\xa9'/>\n"
    "  </source>\n"
    "  <alias name='hostdev0'/>\n"
    "</hostdev>\n";

  h->usb.has_vendor_product = TRUE;
  h->usb.vendor = 0x0627;
  h->usb.product = 0x0001;
  h->usb.has_address = TRUE;
  h->usb.bus = 1;
  h->usb.device = 7;
  h->usb.port_path = g_strdup("1-2.3");
  h->usb.serial = g_strdup("<A'&\"B> caf\xc3\xa9");
  h->alias = g_strdup("hostdev0");

  xml = hostdev_format_xml(h);
  g_assert_cmpstr(xml, ==, expected);
  back = hostdev_parse_live_xml(xml, strlen(xml), &error);
  g_assert_no_error(error);
  g_assert_cmpstr(back->usb.port_path, ==, "1-2.3");
  g_assert_cmpstr(back->usb.serial, ==, h->usb.serial);
  again = hostdev_format_xml(back);
  g_assert_cmpstr(again, ==, expected);
}

/* Without a selector the live XML is libvirt's: no namespace at all. */
static void
test_format_plain(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(USB "<source>" IDS "</source>" END, &error);
  g_autofree char *xml = NULL;

  g_assert_no_error(error);
  xml = hostdev_format_xml(h);
  g_assert_null(strstr(xml, "hostdevd"));
  g_assert_null(strstr(xml, "xmlns"));
}

static void
test_copy(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_USB);
  g_autoptr(Hostdev) copy = NULL;

  h->usb.port_path = g_strdup("1-2");
  h->usb.serial = g_strdup("S");
  copy = hostdev_copy(h);
  g_clear_pointer(&h, hostdev_free);
  g_assert_cmpstr(copy->usb.port_path, ==, "1-2");
  g_assert_cmpstr(copy->usb.serial, ==, "S");
}

static Hostdev *
usb(const char *port, const char *serial, gboolean ids)
{
  Hostdev *h = hostdev_new(HOSTDEV_TYPE_USB);

  h->usb.port_path = g_strdup(port);
  h->usb.serial = g_strdup(serial);
  h->usb.has_vendor_product = ids;
  h->usb.vendor = 0x0627;
  h->usb.product = 0x0001;
  return h;
}

static void
test_match(void)
{
  /* what attach recorded: the selector, the ids, the address found */
  g_autoptr(Hostdev) held = usb("1-2", "A1", TRUE);
  g_autoptr(Hostdev) twin = usb("1-3", "B2", TRUE);
  g_autoptr(Hostdev) by_port = usb("1-2", NULL, FALSE);
  g_autoptr(Hostdev) by_serial = usb(NULL, "A1", FALSE);
  g_autoptr(Hostdev) by_ids_port = usb("1-2", NULL, TRUE);
  g_autoptr(Hostdev) by_ids = usb(NULL, NULL, TRUE);
  g_autoptr(Hostdev) plain_held = usb(NULL, NULL, TRUE);

  held->usb.has_address = TRUE;
  held->usb.bus = 1;
  held->usb.device = 5;

  g_assert_true(hostdev_source_matches(by_port, held));
  g_assert_false(hostdev_source_matches(by_port, twin));
  g_assert_true(hostdev_source_matches(by_serial, held));
  g_assert_false(hostdev_source_matches(by_serial, twin));
  g_assert_true(hostdev_source_matches(by_ids_port, held));
  g_assert_false(hostdev_source_matches(by_ids_port, twin));
  /* libvirt's rule unchanged: ids alone match both twins */
  g_assert_true(hostdev_source_matches(by_ids, held));
  g_assert_true(hostdev_source_matches(by_ids, twin));
  /* a device attached without a selector does not know its port */
  g_assert_false(hostdev_source_matches(by_port, plain_held));
}

static void
test_describe(void)
{
  g_autoptr(Hostdev) all = usb("1-2.3", "A1", TRUE);
  g_autoptr(Hostdev) port = usb("1-2.3", NULL, FALSE);
  g_autofree char *a = hostdev_describe_source(all);
  g_autofree char *p = hostdev_describe_source(port);

  g_assert_cmpstr(a, ==, "USB device 0627:0001 at port 1-2.3 with serial 'A1'");
  g_assert_cmpstr(p, ==, "USB device at port 1-2.3");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);

  g_test_add_func("/usb-selector/port-path/good", test_port_path_good);
  g_test_add_func("/usb-selector/port-path/bad", test_port_path_bad);
  g_test_add_func("/usb-selector/serial", test_serial);
  g_test_add_func("/usb-selector/xml/port-and-serial", test_parse_port_and_serial);
  g_test_add_func("/usb-selector/xml/any-prefix", test_parse_any_prefix);
  g_test_add_func("/usb-selector/xml/plain", test_parse_plain);
  for (gsize i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
    g_autofree char *path = g_strdup_printf("/usb-selector/xml/bad/%s",
                                            bad_cases[i].name);
    g_test_add_data_func(path, &bad_cases[i], test_bad_case);
  }
  g_test_add_func("/usb-selector/xml/request", test_request);
  g_test_add_func("/usb-selector/format/round-trip", test_format_round_trip);
  g_test_add_func("/usb-selector/format/plain", test_format_plain);
  g_test_add_func("/usb-selector/copy", test_copy);
  g_test_add_func("/usb-selector/match", test_match);
  g_test_add_func("/usb-selector/describe", test_describe);
  return g_test_run();
}
