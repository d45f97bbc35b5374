/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-hostdev.c - the <hostdev> parser, formatter and matcher
 */
#include "hostdev.h"
#include "hostdevd-error.h"

#include <string.h>

#define USB "<hostdev mode='subsystem' type='usb'>"
#define PCI "<hostdev mode='subsystem' type='pci'>"
#define USB_SRC "<source><vendor id='0x0627'/><product id='0x0001'/></source>"
#define PCI_SRC "<source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source>"
#define END "</hostdev>"

#define BILLION_LAUGHS \
  "<?xml version='1.0'?>\n" \
  "<!DOCTYPE lolz [\n" \
  " <!ENTITY lol 'lol'>\n" \
  " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n" \
  " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n" \
  " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n" \
  " <!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>\n" \
  " <!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>\n" \
  " <!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>\n" \
  " <!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>\n" \
  " <!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>\n" \
  " <!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>\n" \
  "]>\n" \
  "<hostdev mode='subsystem' type='usb'><source><vendor id='&lol9;'/></source></hostdev>\n"

typedef struct {
  const char *name;
  const char *xml;
  HostdevdError code;
  const char *message; /* a substring the message must contain */
} BadCase;

static const BadCase bad_cases[] = {
  /* InvalidXML: not well-formed, hostile, or not a hostdev */
  { "malformed", USB "<source>" END, HOSTDEVD_ERROR_INVALID_XML,
    "malformed XML: line 1, column" },
  { "malformed-attr", "<hostdev type=usb/>", HOSTDEVD_ERROR_INVALID_XML,
    "malformed XML: line 1" },
  { "malformed-line", "<hostdev type='usb'>\n<source>\n</hostdev>",
    HOSTDEVD_ERROR_INVALID_XML, "line 3" },
  { "two-roots", USB USB_SRC END "<hostdev/>", HOSTDEVD_ERROR_INVALID_XML,
    "malformed XML" },
  { "duplicate-attr", "<hostdev type='usb' type='pci'/>",
    HOSTDEVD_ERROR_INVALID_XML, "malformed XML" },
  { "empty", "", HOSTDEVD_ERROR_INVALID_XML, "empty" },
  { "whitespace-only", "  \n ", HOSTDEVD_ERROR_INVALID_XML, "malformed XML" },
  { "not-hostdev", "<disk type='file'/>", HOSTDEVD_ERROR_INVALID_XML,
    "expected <hostdev> or <interface type='hostdev'>, got <disk>" },
  { "interface-network", "<interface type='network'/>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<interface type='network'>: hostdevd hot-plugs only <interface type='hostdev'>" },
  { "interface-no-type", "<interface/>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<interface>: hostdevd hot-plugs only <interface type='hostdev'>" },
  { "interface-no-source", "<interface type='hostdev'/>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<interface type='hostdev'>: missing <source>" },
  { "dtd-internal-entity",
    "<!DOCTYPE hostdev [<!ENTITY t 'usb'>]><hostdev type='&t;'>" USB_SRC END,
    HOSTDEVD_ERROR_INVALID_XML, "DTDs and entities are not accepted" },
  { "dtd-empty", "<!DOCTYPE hostdev>" USB USB_SRC END,
    HOSTDEVD_ERROR_INVALID_XML, "DTDs and entities are not accepted" },
  { "dtd-external", "<!DOCTYPE hostdev SYSTEM 'http://127.0.0.1:9/x.dtd'>"
    USB USB_SRC END, HOSTDEVD_ERROR_INVALID_XML,
    "DTDs and entities are not accepted" },
  { "xxe-file",
    "<!DOCTYPE hostdev [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
    USB "<alias name='&xxe;'/>" USB_SRC END,
    HOSTDEVD_ERROR_INVALID_XML, "DTDs and entities are not accepted" },
  { "xxe-parameter",
    "<!DOCTYPE hostdev [<!ENTITY % pe SYSTEM 'http://127.0.0.1:9/x'> %pe;]>"
    USB USB_SRC END, HOSTDEVD_ERROR_INVALID_XML,
    "DTDs and entities are not accepted" },
  { "billion-laughs", BILLION_LAUGHS, HOSTDEVD_ERROR_INVALID_XML,
    "DTDs and entities are not accepted" },
  { "undeclared-entity-text", USB USB_SRC "&foo;" END,
    HOSTDEVD_ERROR_INVALID_XML, "DTDs and entities are not accepted" },
  { "undeclared-entity-attr", "<hostdev type='&foo;'>" USB_SRC END,
    HOSTDEVD_ERROR_INVALID_XML, "DTDs and entities are not accepted" },

  /* InvalidArgument: mode and type */
  { "mode-capabilities", "<hostdev mode='capabilities' type='storage'/>",
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "mode 'capabilities' (container devices) is not supported by hostdevd" },
  { "mode-unknown", "<hostdev mode='magic' type='usb'/>",
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<hostdev mode='magic'>: mode must be 'subsystem' or 'capabilities'" },
  { "type-missing", "<hostdev mode='subsystem'>" USB_SRC END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<hostdev>: missing type='...' (supported: usb, pci, mdev)" },
  { "type-scsi", "<hostdev mode='subsystem' type='scsi'/>",
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<hostdev type='scsi'>: type 'scsi' is not supported by hostdevd "
    "(supported: usb, pci, mdev)" },
  { "type-scsi-host", "<hostdev mode='subsystem' type='scsi_host'/>",
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "type 'scsi_host' is not supported by hostdevd (supported: usb, pci, mdev)" },
  { "type-mdev-ccw", "<hostdev mode='subsystem' type='mdev' model='vfio-ccw'/>",
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<hostdev type='mdev' model='vfio-ccw'>: model 'vfio-ccw' is not supported by "
    "hostdevd (supported: vfio-pci)" },
  { "type-unknown", "<hostdev mode='subsystem' type='floppy'/>",
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<hostdev type='floppy'>: unknown hostdev type (libvirt knows usb, pci, "
    "mdev, scsi, scsi_host; hostdevd supports usb, pci, mdev)" },
  { "managed-true", "<hostdev type='usb' managed='true'>" USB_SRC END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<hostdev type='usb' managed='true'>: managed must be 'yes' or 'no'" },
  { "source-missing", USB "<alias name='ua-x'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<hostdev type='usb'>: missing <source> naming the host device" },

  /* USB source */
  { "usb-source-empty", USB "<source/>" END, HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source> of a USB hostdev must name the device" },
  { "usb-vendor-alone", USB "<source><vendor id='0x0627'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<source><vendor/> needs a <product" },
  { "usb-product-alone", USB "<source><product id='0x0001'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<source><product/> needs a <vendor" },
  { "usb-vendor-zero",
    USB "<source><vendor id='0x0000'/><product id='0x0001'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><vendor id='0x0000'>: id must be 0x0001..0xffff" },
  { "usb-vendor-big",
    USB "<source><vendor id='0x10000'/><product id='0x0001'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><vendor id='0x10000'>: id must be 0x0001..0xffff" },
  { "usb-vendor-text",
    USB "<source><vendor id='logitech'/><product id='0x0001'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><vendor id='logitech'>: id must be a number 0x0001..0xffff "
    "(decimal or 0x-prefixed hex)" },
  { "usb-vendor-negative",
    USB "<source><vendor id='-1'/><product id='0x0001'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<source><vendor id='-1'>: id must be a number" },
  { "usb-vendor-trailing",
    USB "<source><vendor id='0x0627 '/><product id='0x0001'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "id must be a number" },
  { "usb-vendor-no-id",
    USB "<source><vendor/><product id='0x0001'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><vendor>: missing id='...' (0x0001..0xffff)" },
  { "usb-product-big",
    USB "<source><vendor id='0x0627'/><product id='65536'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><product id='65536'>: id must be 0x0000..0xffff" },
  { "usb-product-huge",
    USB "<source><vendor id='0x0627'/><product id='99999999999999999999999'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "id must be 0x0000..0xffff" },
  { "usb-bus-zero", USB "<source><address bus='0' device='2'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address bus='0'>: bus must be 1..65535" },
  { "usb-bus-big", USB "<source><address bus='65536' device='2'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address bus='65536'>: bus must be 1..65535" },
  { "usb-device-zero", USB "<source><address bus='1' device='0'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address device='0'>: device must be 1..65535" },
  { "usb-device-big", USB "<source><address bus='1' device='0x10000'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address device='0x10000'>: device must be 1..65535" },
  { "usb-device-missing", USB "<source><address bus='1'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address>: missing device='...' (1..65535)" },
  { "usb-bus-missing", USB "<source><address device='1'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address>: missing bus='...' (1..65535)" },
  { "usb-startup-unknown",
    USB "<source startupPolicy='sometimes'><vendor id='1'/><product id='1'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source startupPolicy='sometimes'>: startupPolicy must be 'mandatory', "
    "'requisite' or 'optional'" },
  { "usb-startup-default",
    USB "<source startupPolicy='default'><vendor id='1'/><product id='1'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "startupPolicy must be 'mandatory'" },

  /* PCI source */
  { "pci-startup-policy",
    PCI "<source startupPolicy='optional'><address bus='1'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source startupPolicy='optional'>: startupPolicy is only allowed for "
    "USB hostdevs, not type 'pci'" },
  { "pci-no-address", PCI "<source/>" END, HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source> of a PCI hostdev needs <address" },
  { "pci-domain-big", PCI "<source><address domain='0x10000' bus='0x01'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address domain='0x10000'>: domain must be 0x0000..0xffff" },
  { "pci-bus-big", PCI "<source><address bus='0x100'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address bus='0x100'>: bus must be 0x00..0xff" },
  { "pci-slot-big", PCI "<source><address bus='0x01' slot='0x20'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address slot='0x20'>: slot must be 0x00..0x1f" },
  { "pci-function-big",
    PCI "<source><address bus='0x01' slot='0x00' function='8'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address function='8'>: function must be 0..7" },
  { "pci-slot-garbage", PCI "<source><address bus='0x01' slot='0x1g'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address slot='0x1g'>: slot must be a number 0x00..0x1f" },
  { "pci-bus-bare-0x", PCI "<source><address bus='0x'/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "bus must be a number" },
  { "pci-bus-empty", PCI "<source><address bus=''/></source>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<source><address bus=''>: bus must be a number" },
  { "pci-driver-kvm", PCI "<driver name='kvm'/>" PCI_SRC END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<driver name='kvm'>: hostdevd assigns PCI devices with VFIO only" },
  { "pci-driver-unknown", PCI "<driver name='nouveau'/>" PCI_SRC END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<driver name='nouveau'>: name must be 'vfio'" },

  /* guest addresses */
  { "guest-pci-slot-big",
    PCI PCI_SRC "<address type='pci' domain='0x0000' bus='0x02' slot='0x20' function='0x0'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='pci' slot='0x20'>: slot must be 0x00..0x1f" },
  { "guest-pci-domain-big",
    PCI PCI_SRC "<address type='pci' domain='0x10000' bus='0x02'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='pci' domain='0x10000'>: domain must be 0x0000..0xffff" },
  { "guest-pci-bus-big", PCI PCI_SRC "<address type='pci' bus='256'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='pci' bus='256'>: bus must be 0x00..0xff" },
  { "guest-pci-function-big",
    PCI PCI_SRC "<address type='pci' bus='0x02' function='0x8'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='pci' function='0x8'>: function must be 0..7" },
  { "guest-pci-multifunction",
    PCI PCI_SRC "<address type='pci' bus='0x02' multifunction='yes'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='pci' multifunction='yes'>: multifunction must be 'on' or 'off'" },
  { "guest-address-no-type", PCI PCI_SRC "<address bus='0x02'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<address>: missing type='...'" },
  { "guest-address-wrong-type", USB USB_SRC "<address type='pci' bus='0x02'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='pci'>: a usb hostdev takes only <address type='usb' .../>" },
  { "guest-address-unknown-type", PCI PCI_SRC "<address type='pcie'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<address type='pcie'>: unknown address type" },
  { "guest-usb-bus-hex", USB USB_SRC "<address type='usb' bus='0x1'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='usb' bus='0x1'>: bus must be a number 0..65535 (decimal)" },
  { "guest-usb-bus-big", USB USB_SRC "<address type='usb' bus='65536'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='usb' bus='65536'>: bus must be 0..65535" },
  { "guest-usb-port-zero", USB USB_SRC "<address type='usb' bus='0' port='0'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='usb' port='0'>: port must be 1 to 4 numbers 1..255" },
  { "guest-usb-port-deep",
    USB USB_SRC "<address type='usb' bus='0' port='1.2.3.4.5'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<address type='usb' port='1.2.3.4.5'>" },
  { "guest-usb-port-big", USB USB_SRC "<address type='usb' bus='0' port='1.256'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<address type='usb' port='1.256'>" },
  { "guest-usb-port-empty-level",
    USB USB_SRC "<address type='usb' bus='0' port='1..2'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "port must be 1 to 4 numbers" },
  { "guest-usb-port-empty", USB USB_SRC "<address type='usb' bus='0' port=''/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<address type='usb' port=''>: port must be" },
  { "guest-usb-port-trailing-dot",
    USB USB_SRC "<address type='usb' bus='0' port='1.'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "port must be 1 to 4 numbers" },

  /* the rest of libvirt's grammar (more in tests/xml) */
  { "rom-file-newline", PCI PCI_SRC "<rom file='/a&#10;b'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<rom file='/a\\nb'>: file must be an absolute path" },
  { "rom-file-root", PCI PCI_SRC "<rom file='/'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<rom file='/'>: file must be an absolute path" },
  { "mac-missing", "<interface type='hostdev'><source><address type='pci' bus='2'/>"
    "</source><mac/></interface>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<mac>: missing address='...'" },
  { "vlan-no-tag", "<interface type='hostdev'><source><address type='pci' bus='2'/>"
    "</source><vlan/></interface>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<vlan>: needs one <tag id='0..4095'/>" },
  { "interface-bus-big", "<interface type='hostdev'><source><address type='pci' "
    "bus='0x100'/></source></interface>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address type='pci' bus='0x100'>: bus must be 0x00..0xff" },
  { "interface-driver-kvm", "<interface type='hostdev'><driver name='kvm'/><source>"
    "<address type='pci' bus='2'/></source></interface>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<driver name='kvm'>: hostdevd assigns PCI devices with VFIO only" },
  { "interface-managed-typo", "<interface type='hostdev' managed='on'/>",
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<interface type='hostdev' managed='on'>: managed must be 'yes' or 'no'" },
  { "mdev-uuid-missing", "<hostdev type='mdev' model='vfio-pci'><source><address/>"
    "</source></hostdev>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<source><address>: missing uuid='...'" },
  { "mdev-model-ap", "<hostdev type='mdev' model='vfio-ap'/>", HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "model 'vfio-ap' is not supported by hostdevd (supported: vfio-pci)" },
  { "mdev-address-usb", "<hostdev type='mdev' model='vfio-pci'><source><address "
    "uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source><address type='usb'/></hostdev>",
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='usb'>: an mdev hostdev takes only <address type='pci' .../>" },
  { "zpci-uid-text", PCI PCI_SRC "<address type='pci'><zpci uid='one'/></address>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<address type='pci'><zpci uid='one'>: uid must be a number 0x0001..0xffff "
    "(decimal or 0x-prefixed hex)" },
  { "acpi-negative", PCI PCI_SRC "<acpi index='-1'/>" END, HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<acpi index='-1'>: index must be a number 1..16383" },

  /* boot */
  { "boot-zero", USB USB_SRC "<boot order='0'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<boot order='0'>: order must be 1..2147483647" },
  { "boot-big", USB USB_SRC "<boot order='2147483648'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<boot order='2147483648'>: order must be 1..2147483647" },
  { "boot-hex", USB USB_SRC "<boot order='0x1'/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT,
    "<boot order='0x1'>: order must be a number 1..2147483647 (decimal)" },
  { "boot-missing", USB USB_SRC "<boot/>" END,
    HOSTDEVD_ERROR_INVALID_ARGUMENT, "<boot>: missing order='...' (1..2147483647)" },
};

static Hostdev *
parse(const char *xml, GError **error)
{
  return hostdev_parse_xml(xml, strlen(xml), error);
}

static void
assert_error(GError *error, HostdevdError code, const char *substring)
{
  g_assert_nonnull(error);
  if (!g_error_matches(error, HOSTDEVD_ERROR, code) ||
      strstr(error->message, substring) == NULL)
    g_error("expected %s containing \"%s\", got %s (%d): %s",
            hostdevd_error_class(&(GError){ HOSTDEVD_ERROR, (gint)code, NULL }),
            substring, g_quark_to_string(error->domain), error->code,
            error->message);
}

static void
test_bad_case(gconstpointer data)
{
  const BadCase *c = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = parse(c->xml, &error);

  g_assert_null(hostdev);
  assert_error(error, c->code, c->message);
  g_test_message("%s: %s", hostdevd_error_class(error), error->message);
}

static void
test_too_big(void)
{
  g_autoptr(GString) xml = g_string_new(USB USB_SRC "<!--");
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = NULL;
  const char *tail = "-->" END;

  while (xml->len + strlen(tail) < HOSTDEV_XML_MAX_SIZE + 1)
    g_string_append_c(xml, 'x');
  g_string_append(xml, tail);
  g_assert_cmpuint(xml->len, ==, HOSTDEV_XML_MAX_SIZE + 1);

  hostdev = hostdev_parse_xml(xml->str, xml->len, &error);
  g_assert_null(hostdev);
  assert_error(error, HOSTDEVD_ERROR_INVALID_XML, "65537 bytes");
  assert_error(error, HOSTDEVD_ERROR_INVALID_XML, "at most 65536 bytes");
}

static void
test_max_size_accepted(void)
{
  g_autoptr(GString) xml = g_string_new(USB USB_SRC "<!--");
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = NULL;
  const char *tail = "-->" END;

  while (xml->len + strlen(tail) < HOSTDEV_XML_MAX_SIZE)
    g_string_append_c(xml, 'x');
  g_string_append(xml, tail);
  g_assert_cmpuint(xml->len, ==, HOSTDEV_XML_MAX_SIZE);

  hostdev = hostdev_parse_xml(xml->str, xml->len, &error);
  g_assert_no_error(error);
  g_assert_nonnull(hostdev);
}

/* <hostdev> is level 1; @levels more elements nest inside it. */
static char *
nested_hostdev(guint levels)
{
  GString *xml = g_string_new(USB USB_SRC);

  for (guint i = 0; i < levels; i++)
    g_string_append(xml, "<x>");
  for (guint i = 0; i < levels; i++)
    g_string_append(xml, "</x>");
  g_string_append(xml, END);
  return g_string_free(xml, FALSE);
}

static void
test_too_deep(void)
{
  g_autofree char *xml = nested_hostdev(HOSTDEV_XML_MAX_DEPTH);
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = parse(xml, &error);

  g_assert_null(hostdev);
  assert_error(error, HOSTDEVD_ERROR_INVALID_XML, "deeper than 32 levels");
}

static void
test_max_depth_accepted(void)
{
  g_autofree char *xml = nested_hostdev(HOSTDEV_XML_MAX_DEPTH - 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = parse(xml, &error);

  g_assert_no_error(error);
  g_assert_nonnull(hostdev);
}

static void
test_not_nul_terminated(void)
{
  const char *xml = USB USB_SRC END "garbage that is not part of it";
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev =
    hostdev_parse_xml(xml, strlen(USB USB_SRC END), &error);

  g_assert_no_error(error);
  g_assert_cmpuint(hostdev->usb.vendor, ==, 0x0627);
}

static void
test_null_input(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) hostdev = hostdev_parse_xml(NULL, 0, &error);

  g_assert_null(hostdev);
  assert_error(error, HOSTDEVD_ERROR_INVALID_XML, "empty");
}

/* libxml2 must not write to stderr: the daemon logs through GLib only. */
static void
test_quiet(void)
{
  if (g_test_subprocess()) {
    for (gsize i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
      g_autoptr(GError) error = NULL;
      g_autoptr(Hostdev) hostdev = parse(bad_cases[i].xml, &error);
      g_assert_null(hostdev);
    }
    return;
  }
  g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed();
  g_test_trap_assert_stdout("");
  g_test_trap_assert_stderr("");
}

/* ------------------------------------------------------------------ */
/* Valid documents                                                     */

static void
test_usb_ids(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(USB USB_SRC END, &error);

  g_assert_no_error(error);
  g_assert_cmpint(h->type, ==, HOSTDEV_TYPE_USB);
  g_assert_false(h->managed);
  g_assert_true(h->usb.has_vendor_product);
  g_assert_cmpuint(h->usb.vendor, ==, 0x0627);
  g_assert_cmpuint(h->usb.product, ==, 0x0001);
  g_assert_false(h->usb.has_address);
  g_assert_cmpint(h->usb.startup_policy, ==, HOSTDEV_STARTUP_DEFAULT);
  g_assert_null(h->alias);
  g_assert_cmpuint(h->boot_order, ==, 0);
  g_assert_false(h->usb_guest.present);
}

static void
test_usb_full(void)
{
  const char *xml =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<!-- a comment -->\n"
    "<hostdev mode='subsystem' type='usb' managed='yes'>\n"
    "  <source startupPolicy='optional'>\n"
    "    <vendor id='0x046d'/>\n"
    "    <product id='0xc52b'/>\n"
    "    <address bus='3' device='017'/>\n"
    "  </source>\n"
    "  <boot order='2'/>\n"
    "  <alias name='ua-receiver'/>\n"
    "  <address type='usb' bus='0' port='01.2'/>\n"
    "</hostdev>\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(xml, &error);

  g_assert_no_error(error);
  g_assert_true(h->managed);
  g_assert_cmpint(h->usb.startup_policy, ==, HOSTDEV_STARTUP_OPTIONAL);
  g_assert_cmpuint(h->usb.vendor, ==, 0x046d);
  g_assert_cmpuint(h->usb.product, ==, 0xc52b);
  g_assert_true(h->usb.has_address);
  g_assert_cmpuint(h->usb.bus, ==, 3);
  g_assert_cmpuint(h->usb.device, ==, 15); /* base 0: 017 is octal, as in libvirt */
  g_assert_cmpuint(h->boot_order, ==, 2);
  g_assert_cmpstr(h->alias, ==, "ua-receiver");
  g_assert_true(h->usb_guest.present);
  g_assert_cmpuint(h->usb_guest.bus, ==, 0);
  g_assert_cmpstr(h->usb_guest.port, ==, "1.2");
}

static void
test_usb_address_only(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h =
    parse("<hostdev type='usb'><source startupPolicy='requisite'>"
          "<address bus='1' device='2'/></source></hostdev>", &error);

  g_assert_no_error(error);
  g_assert_false(h->usb.has_vendor_product);
  g_assert_true(h->usb.has_address);
  g_assert_cmpuint(h->usb.bus, ==, 1);
  g_assert_cmpuint(h->usb.device, ==, 2);
  g_assert_cmpint(h->usb.startup_policy, ==, HOSTDEV_STARTUP_REQUISITE);
}

/* virStrToLong_uip takes leading white space and '+', and base 0 takes
 * decimal as well as hex; so do we. */
static void
test_number_notations(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h =
    parse(USB "<source startupPolicy='mandatory'><vendor id=' +0x0627'/>"
          "<product id='1'/></source><boot order='+7'/>"
          "<address type='usb' bus='3' port='4.5.6.255'/>" END, &error);

  g_assert_no_error(error);
  g_assert_cmpuint(h->usb.vendor, ==, 0x0627);
  g_assert_cmpuint(h->usb.product, ==, 1);
  g_assert_cmpuint(h->boot_order, ==, 7);
  g_assert_cmpint(h->usb.startup_policy, ==, HOSTDEV_STARTUP_MANDATORY);
  g_assert_cmpuint(h->usb_guest.bus, ==, 3);
  g_assert_cmpstr(h->usb_guest.port, ==, "4.5.6.255");
}

static void
test_pci_full(void)
{
  const char *xml =
    "<hostdev mode='subsystem' type='pci' managed='yes'>\n"
    "  <driver name='vfio'/>\n"
    "  <source>\n"
    "    <address domain='0x0000' bus='0x05' slot='0x00' function='0x1'/>\n"
    "  </source>\n"
    "  <rom bar='off'/>\n"
    "  <boot order='1'/>\n"
    "  <alias name='ua-nic'/>\n"
    "  <address type='pci' domain='0x0000' bus='0x07' slot='0x1f' "
    "function='0x7' multifunction='on'/>\n"
    "</hostdev>\n";
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(xml, &error);

  g_assert_no_error(error);
  g_assert_cmpint(h->type, ==, HOSTDEV_TYPE_PCI);
  g_assert_true(h->managed);
  g_assert_cmpuint(h->pci_source.domain, ==, 0);
  g_assert_cmpuint(h->pci_source.bus, ==, 5);
  g_assert_cmpuint(h->pci_source.slot, ==, 0);
  g_assert_cmpuint(h->pci_source.function, ==, 1);
  g_assert_cmpuint(h->boot_order, ==, 1);
  g_assert_cmpstr(h->alias, ==, "ua-nic");
  g_assert_true(h->pci_guest.present);
  g_assert_cmpuint(h->pci_guest.addr.bus, ==, 7);
  g_assert_cmpuint(h->pci_guest.addr.slot, ==, 0x1f);
  g_assert_cmpuint(h->pci_guest.addr.function, ==, 7);
  g_assert_true(h->pci_guest.multifunction);
}

/* PCI attributes are optional, default 0, and take decimal and octal too;
 * a <driver> without name is libvirt's default, i.e. vfio. */
static void
test_pci_defaults(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h =
    parse(PCI "<driver/><source><address bus='16' slot='010'/></source>"
          "<address type='pci' multifunction='off'/>" END, &error);

  g_assert_no_error(error);
  g_assert_cmpuint(h->pci_source.domain, ==, 0);
  g_assert_cmpuint(h->pci_source.bus, ==, 16);
  g_assert_cmpuint(h->pci_source.slot, ==, 8);
  g_assert_cmpuint(h->pci_source.function, ==, 0);
  /* domain, bus and slot 0: an "empty" address, the place is ours to pick */
  g_assert_false(h->pci_guest.present);
  g_assert_false(h->managed);
}

/* Like libvirt: unknown elements and attributes are ignored and of repeated
 * elements the first counts. */
static void
test_unknown_and_repeated(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h =
    parse("<hostdev type='usb' mode='subsystem' color='blue'>"
          "<?pi something?><future><deeper a='1'/></future>"
          "<source extra='x'><vendor id='0x0627'/><product id='0x0001'/>"
          "<serial>123</serial></source>"
          "<source><vendor id='0x1111'/><product id='0x2222'/></source>"
          "<alias name='ua-first'/><alias name='ua-second'/>"
          "text is ignored too"
          "</hostdev>", &error);

  g_assert_no_error(error);
  g_assert_cmpuint(h->usb.vendor, ==, 0x0627);
  g_assert_cmpstr(h->alias, ==, "ua-first");
}

/* attach-device keeps only user aliases, as libvirt does; character
 * references are plain text, not entities. */
static void
test_alias_client(void)
{
  struct {
    const char *alias;
    const char *expected;
  } cases[] = {
    { "ua-kbd", "ua-kbd" },
    { "ua-x&#45;y_Z9", "ua-x-y_Z9" },
    { "ua-", "ua-" },
    { "hostdev0", NULL },
    { "ua-a.b", NULL },
    { "ua-a b", NULL },
    { "", NULL },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *xml =
      g_strdup_printf(USB USB_SRC "<alias name='%s'/>" END, cases[i].alias);
    g_autoptr(GError) error = NULL;
    g_autoptr(Hostdev) h = parse(xml, &error);

    g_assert_no_error(error);
    g_assert_cmpstr(h->alias, ==, cases[i].expected);
  }
}

static void
test_alias_live(void)
{
  const char *good = USB USB_SRC "<alias name='hostdev0'/>" END;
  const char *bad = USB USB_SRC "<alias name='host dev'/>" END;
  const char *digit = USB USB_SRC "<alias name='0dev'/>" END;
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = hostdev_parse_live_xml(good, strlen(good), &error);

  g_assert_no_error(error);
  g_assert_cmpstr(h->alias, ==, "hostdev0");

  g_assert_null(hostdev_parse_live_xml(bad, strlen(bad), &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT,
               "<alias name='host dev'>: an alias must start with a letter");
  g_clear_error(&error);
  g_assert_null(hostdev_parse_live_xml(digit, strlen(digit), &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "must start with a letter");
}

/* Values in messages are escaped and cut short: they come from clients. */
static void
test_message_value_escaped(void)
{
  g_autofree char *long_value = g_strnfill(200, '7');
  g_autofree char *xml =
    g_strdup_printf(USB "<source><vendor id='%s'/><product id='1'/></source>" END,
                    long_value);
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h = parse(xml, &error);

  g_assert_null(h);
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "7777...'>: id must be");
  g_assert_cmpuint(strlen(error->message), <, 150);
  g_clear_error(&error);

  g_assert_null(parse(USB "<source><vendor id='1&#10;2'/><product id='1'/></source>" END,
                      &error));
  assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "id='1\\n2'");
}

/* ------------------------------------------------------------------ */
/* Formatting and round trips                                          */

static gboolean
hostdev_equal(const Hostdev *a, const Hostdev *b)
{
  return a->type == b->type && a->is_interface == b->is_interface &&
         a->managed == b->managed &&
         g_strcmp0(a->alias, b->alias) == 0 &&
         a->boot_order == b->boot_order && a->acpi_index == b->acpi_index &&
         a->rom.bar == b->rom.bar && a->rom.enabled == b->rom.enabled &&
         g_strcmp0(a->rom.file, b->rom.file) == 0 &&
         a->usb.has_vendor_product == b->usb.has_vendor_product &&
         a->usb.vendor == b->usb.vendor && a->usb.product == b->usb.product &&
         a->usb.has_address == b->usb.has_address &&
         a->usb.bus == b->usb.bus && a->usb.device == b->usb.device &&
         a->usb.startup_policy == b->usb.startup_policy &&
         a->usb.guest_reset == b->usb.guest_reset &&
         a->usb_guest.present == b->usb_guest.present &&
         a->usb_guest.bus == b->usb_guest.bus &&
         g_strcmp0(a->usb_guest.port, b->usb_guest.port) == 0 &&
         memcmp(&a->pci_source, &b->pci_source, sizeof(a->pci_source)) == 0 &&
         a->pci_guest.present == b->pci_guest.present &&
         memcmp(&a->pci_guest.addr, &b->pci_guest.addr,
                sizeof(a->pci_guest.addr)) == 0 &&
         a->pci_guest.multifunction == b->pci_guest.multifunction &&
         a->zpci.has_uid == b->zpci.has_uid && a->zpci.has_fid == b->zpci.has_fid &&
         (!a->zpci.has_uid || a->zpci.uid == b->zpci.uid) &&
         (!a->zpci.has_fid || a->zpci.fid == b->zpci.fid) &&
         strcmp(a->mdev.uuid, b->mdev.uuid) == 0 &&
         a->mdev.display == b->mdev.display && a->mdev.ramfb == b->mdev.ramfb &&
         a->net.has_mac == b->net.has_mac &&
         (!a->net.has_mac || memcmp(a->net.mac, b->net.mac, sizeof(a->net.mac)) == 0) &&
         a->net.has_vlan == b->net.has_vlan &&
         (!a->net.has_vlan || a->net.vlan_tag == b->net.vlan_tag);
}

static void
assert_round_trip(const Hostdev *model, const char *expected)
{
  g_autofree char *xml = hostdev_format_xml(model);
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) back = NULL;
  g_autofree char *again = NULL;

  g_assert_cmpstr(xml, ==, expected);
  back = hostdev_parse_live_xml(xml, strlen(xml), &error);
  g_assert_no_error(error);
  g_assert_true(hostdev_equal(model, back));
  again = hostdev_format_xml(back);
  g_assert_cmpstr(again, ==, expected);
}

static void
test_format_usb(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_USB);

  h->usb.has_vendor_product = TRUE;
  h->usb.vendor = 0x0627;
  h->usb.product = 0x0001;
  h->usb.has_address = TRUE;
  h->usb.bus = 1;
  h->usb.device = 2;
  h->usb.startup_policy = HOSTDEV_STARTUP_OPTIONAL;
  h->alias = g_strdup("hostdev0");
  h->usb_guest.present = TRUE;
  h->usb_guest.bus = 0;
  h->usb_guest.port = g_strdup("1");

  assert_round_trip(h,
    "<hostdev mode='subsystem' type='usb' managed='no'>\n"
    "  <source startupPolicy='optional'>\n"
    "    <vendor id='0x0627'/>\n"
    "    <product id='0x0001'/>\n"
    "    <address bus='1' device='2'/>\n"
    "  </source>\n"
    "  <alias name='hostdev0'/>\n"
    "  <address type='usb' bus='0' port='1'/>\n"
    "</hostdev>\n");
}

static void
test_format_usb_minimal(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_USB);

  h->managed = TRUE;
  h->usb.has_address = TRUE;
  h->usb.bus = 3;
  h->usb.device = 127;
  h->boot_order = 4;
  h->usb_guest.present = TRUE;
  h->usb_guest.bus = 1;

  assert_round_trip(h,
    "<hostdev mode='subsystem' type='usb' managed='yes'>\n"
    "  <source>\n"
    "    <address bus='3' device='127'/>\n"
    "  </source>\n"
    "  <boot order='4'/>\n"
    "  <address type='usb' bus='1'/>\n"
    "</hostdev>\n");
}

static void
test_format_pci(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_PCI);

  h->managed = TRUE;
  h->pci_source = (PciAddress){ 0x0000, 0x01, 0x00, 0x0 };
  h->boot_order = 1;
  h->alias = g_strdup("ua-nic");
  h->pci_guest.present = TRUE;
  h->pci_guest.addr = (PciAddress){ 0x0000, 0x07, 0x00, 0x0 };
  h->pci_guest.multifunction = TRUE;

  assert_round_trip(h,
    "<hostdev mode='subsystem' type='pci' managed='yes'>\n"
    "  <driver name='vfio'/>\n"
    "  <source>\n"
    "    <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n"
    "  </source>\n"
    "  <boot order='1'/>\n"
    "  <alias name='ua-nic'/>\n"
    "  <address type='pci' domain='0x0000' bus='0x07' slot='0x00' "
    "function='0x0' multifunction='on'/>\n"
    "</hostdev>\n");
}

static void
test_format_pci_minimal(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_PCI);

  h->pci_source = (PciAddress){ 0xffff, 0xff, 0x1f, 0x7 };

  assert_round_trip(h,
    "<hostdev mode='subsystem' type='pci' managed='no'>\n"
    "  <driver name='vfio'/>\n"
    "  <source>\n"
    "    <address domain='0xffff' bus='0xff' slot='0x1f' function='0x7'/>\n"
    "  </source>\n"
    "</hostdev>\n");
}

/* What a client sends comes back normalised, like libvirt's live XML. */
static void
test_format_normalises(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h =
    parse("<hostdev type='usb'><source><product id='1'/><vendor id='1133'/>"
          "</source><address type='usb' port='002.03'/></hostdev>", &error);
  g_autofree char *xml = NULL;

  g_assert_no_error(error);
  xml = hostdev_format_xml(h);
  g_assert_cmpstr(xml, ==,
    "<hostdev mode='subsystem' type='usb' managed='no'>\n"
    "  <source>\n"
    "    <vendor id='0x046d'/>\n"
    "    <product id='0x0001'/>\n"
    "  </source>\n"
    "  <address type='usb' bus='0' port='2.3'/>\n"
    "</hostdev>\n");
}

static void
test_copy(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h =
    parse(USB USB_SRC "<alias name='ua-a'/><address type='usb' bus='0' port='1.2'/>" END,
          &error);
  g_autoptr(Hostdev) copy = NULL;

  g_assert_no_error(error);
  copy = hostdev_copy(h);
  g_assert_true(hostdev_equal(h, copy));
  g_assert_true(copy->alias != h->alias);
  g_assert_true(copy->usb_guest.port != h->usb_guest.port);
  g_clear_pointer(&h, hostdev_free);
  g_assert_cmpstr(copy->alias, ==, "ua-a");
  g_assert_cmpstr(copy->usb_guest.port, ==, "1.2");

  h = parse(PCI PCI_SRC "<rom file='/r.rom'/>" END, &error);
  g_assert_no_error(error);
  g_clear_pointer(&copy, hostdev_free);
  copy = hostdev_copy(h);
  g_assert_true(hostdev_equal(h, copy));
  g_assert_true(copy->rom.file != h->rom.file);
  g_clear_pointer(&h, hostdev_free);
  g_assert_cmpstr(copy->rom.file, ==, "/r.rom");
}

static void
test_format_pci_everything(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_PCI);

  h->pci_source = (PciAddress){ 0x0000, 0x06, 0x12, 0x5 };
  h->boot_order = 1;
  h->alias = g_strdup("ua-crypto");
  h->rom.enabled = HOSTDEV_TRISTATE_ON;
  h->rom.bar = HOSTDEV_TRISTATE_OFF;
  h->rom.file = g_strdup("/roms/a&b's.rom");
  h->acpi_index = 16383;
  h->pci_guest.present = TRUE;
  h->pci_guest.addr = (PciAddress){ 0x0000, 0x00, 0x02, 0x1 };
  h->pci_guest.multifunction = FALSE;
  h->pci_guest.multifunction_explicit = TRUE;
  h->zpci.has_uid = TRUE;
  h->zpci.uid = 0xffff;
  h->zpci.has_fid = TRUE;
  h->zpci.fid = 0xffffffff;

  assert_round_trip(h,
    "<hostdev mode='subsystem' type='pci' managed='no'>\n"
    "  <driver name='vfio'/>\n"
    "  <source>\n"
    "    <address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/>\n"
    "  </source>\n"
    "  <boot order='1'/>\n"
    "  <alias name='ua-crypto'/>\n"
    "  <rom enabled='yes' bar='off' file='/roms/a&amp;b&apos;s.rom'/>\n"
    "  <acpi index='16383'/>\n"
    "  <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x1' "
    "multifunction='off'>\n"
    "    <zpci uid='0xffff' fid='0xffffffff'/>\n"
    "  </address>\n"
    "</hostdev>\n");
}

/* zPCI ids without a guest place yet: the address carries only them */
static void
test_format_zpci_unplaced(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_PCI);

  h->pci_source = (PciAddress){ 0, 1, 0, 0 };
  h->zpci.has_uid = TRUE;
  h->zpci.uid = 3;

  assert_round_trip(h,
    "<hostdev mode='subsystem' type='pci' managed='no'>\n"
    "  <driver name='vfio'/>\n"
    "  <source>\n"
    "    <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n"
    "  </source>\n"
    "  <address type='pci'>\n"
    "    <zpci uid='0x0003'/>\n"
    "  </address>\n"
    "</hostdev>\n");
}

static void
test_format_mdev(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_MDEV);

  g_strlcpy(h->mdev.uuid, "c2177883-f1bb-47f0-914d-32a22e3a8804", sizeof(h->mdev.uuid));
  h->mdev.display = TRUE;
  h->mdev.ramfb = HOSTDEV_TRISTATE_OFF;
  h->alias = g_strdup("hostdev3");
  h->pci_guest.present = TRUE;
  h->pci_guest.addr = (PciAddress){ 0, 2, 0, 0 };

  assert_round_trip(h,
    "<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' "
    "display='on' ramfb='off'>\n"
    "  <source>\n"
    "    <address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/>\n"
    "  </source>\n"
    "  <alias name='hostdev3'/>\n"
    "  <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>\n"
    "</hostdev>\n");
}

static void
test_format_usb_guest_reset(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_USB);

  h->usb.has_address = TRUE;
  h->usb.bus = 1;
  h->usb.device = 2;
  h->usb.startup_policy = HOSTDEV_STARTUP_REQUISITE;
  h->usb.guest_reset = HOSTDEV_GUEST_RESET_UNINITIALIZED;

  assert_round_trip(h,
    "<hostdev mode='subsystem' type='usb' managed='no'>\n"
    "  <source startupPolicy='requisite' guestReset='uninitialized'>\n"
    "    <address bus='1' device='2'/>\n"
    "  </source>\n"
    "</hostdev>\n");
}

static void
test_format_interface(void)
{
  g_autoptr(Hostdev) h = hostdev_new(HOSTDEV_TYPE_PCI);

  h->is_interface = TRUE;
  h->managed = TRUE;
  h->pci_source = (PciAddress){ 0, 2, 7, 1 };
  h->net.has_mac = TRUE;
  memcpy(h->net.mac, (guint8[]){ 0x52, 0x54, 0x00, 0x6d, 0x90, 0x02 }, 6);
  h->net.has_vlan = TRUE;
  h->net.vlan_tag = 0;
  h->alias = g_strdup("hostdev0");
  h->acpi_index = 2;

  assert_round_trip(h,
    "<interface type='hostdev' managed='yes'>\n"
    "  <mac address='52:54:00:6d:90:02'/>\n"
    "  <driver name='vfio'/>\n"
    "  <source>\n"
    "    <address type='pci' domain='0x0000' bus='0x02' slot='0x07' function='0x1'/>\n"
    "  </source>\n"
    "  <vlan>\n"
    "    <tag id='0'/>\n"
    "  </vlan>\n"
    "  <alias name='hostdev0'/>\n"
    "  <acpi index='2'/>\n"
    "</interface>\n");

  /* managed='no' is libvirt's default and not shown; no MAC, no VLAN */
  h->managed = FALSE;
  h->net.has_mac = FALSE;
  h->net.has_vlan = FALSE;
  h->acpi_index = 0;
  assert_round_trip(h,
    "<interface type='hostdev'>\n"
    "  <driver name='vfio'/>\n"
    "  <source>\n"
    "    <address type='pci' domain='0x0000' bus='0x02' slot='0x07' function='0x1'/>\n"
    "  </source>\n"
    "  <alias name='hostdev0'/>\n"
    "</interface>\n");
}

#define MDEV_WITH_UUID(u) \
  "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='" u \
  "'/></source></hostdev>"

/* virUUIDParse's leniency: dashes and spaces between byte pairs, white space around */
static void
test_uuid_forms(void)
{
  static const char *const good[] = {
    MDEV_WITH_UUID("c2177883-f1bb-47f0-914d-32a22e3a8804"),
    MDEV_WITH_UUID("C2177883F1BB47F0914D32A22E3A8804"),
    MDEV_WITH_UUID("  c2-17-78-83-f1-bb-47-f0-91-4d-32-a2-2e-3a-88-04\t"),
    MDEV_WITH_UUID("--c2177883 f1bb 47f0 914d 32a22e3a8804"),
  };
  static const char *const bad[] = {
    MDEV_WITH_UUID(""),
    MDEV_WITH_UUID("c2177883-f1bb-47f0-914d-32a22e3a880"),
    MDEV_WITH_UUID("c2177883-f1bb-47f0-914d-32a22e3a8804-"),
    MDEV_WITH_UUID("c2177883-f1bb-47f0-914d-32a22e3a88041"),
    MDEV_WITH_UUID("c-2177883-f1bb-47f0-914d-32a22e3a8804"),
    MDEV_WITH_UUID("g2177883-f1bb-47f0-914d-32a22e3a8804"),
    MDEV_WITH_UUID("c2177883-f1bb-47f0-914d-32a22e3a8804 x"),
  };

  for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(Hostdev) h = parse(good[i], &error);

    g_assert_no_error(error);
    g_assert_cmpint(h->type, ==, HOSTDEV_TYPE_MDEV);
    g_assert_cmpstr(h->mdev.uuid, ==, "c2177883-f1bb-47f0-914d-32a22e3a8804");
    g_assert_false(h->mdev.display);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(Hostdev) h = parse(bad[i], &error);

    g_assert_null(h);
    assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "uuid must be 32 hex digits");
  }
}

#define IFACE_WITH_MAC(m) \
  "<interface type='hostdev'><source><address type='pci' bus='2'/></source>" \
  "<mac address='" m "'/></interface>"

static void
test_mac_forms(void)
{
  static const struct {
    const char *xml;
    const char *formatted;
  } good[] = {
    { IFACE_WITH_MAC("52:54:00:6d:90:02"), "52:54:00:6d:90:02" },
    { IFACE_WITH_MAC("52:54:0:6D:9:2"), "52:54:00:6d:09:02" },
    { IFACE_WITH_MAC("fe:ff:ff:ff:ff:ff\n"), "fe:ff:ff:ff:ff:ff" },
  };
  static const char *const bad[] = {
    IFACE_WITH_MAC(""),
    IFACE_WITH_MAC("52:54:00:6d:90"),
    IFACE_WITH_MAC("52:54:00:6d:90:02:01"),
    IFACE_WITH_MAC("52:54:00:6d:90:002"),
    IFACE_WITH_MAC("52-54-00-6d-90-02"),
    IFACE_WITH_MAC(" 52:54:00:6d:90:02"),
    IFACE_WITH_MAC("52:54:00:6d:90:02 trailing"),
    IFACE_WITH_MAC("52::00:6d:90:02"),
  };

  for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(Hostdev) h = parse(good[i].xml, &error);
    g_autofree char *mac = NULL;

    g_assert_no_error(error);
    g_assert_true(h->is_interface);
    mac = hostdev_format_mac(h);
    g_assert_cmpstr(mac, ==, good[i].formatted);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(Hostdev) h = parse(bad[i], &error);

    g_assert_null(h);
    assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, "address must be six hex octets");
  }
}

static void
test_parse_new_grammar(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) h =
    parse("<interface type='hostdev' managed='yes'><driver name='vfio'/>"
          "<source><address type='pci' domain='0x0001' bus='0x02' slot='0x07' "
          "function='0x1'/></source><mac address='52:54:00:6d:90:02'/>"
          "<vlan trunk='no'><tag id='42'/></vlan><boot order='3'/>"
          "<rom enabled='no'/><acpi index='12'/><alias name='ua-vf'/>"
          "<address type='pci' bus='4' multifunction='on'/></interface>", &error);
  g_autoptr(Hostdev) usb = NULL;
  g_autofree char *what = NULL;

  g_assert_no_error(error);
  g_assert_cmpint(h->type, ==, HOSTDEV_TYPE_PCI);
  g_assert_true(h->is_interface);
  g_assert_true(h->managed);
  g_assert_cmpuint(h->pci_source.domain, ==, 1);
  g_assert_cmpuint(h->pci_source.function, ==, 1);
  g_assert_true(h->net.has_vlan);
  g_assert_cmpuint(h->net.vlan_tag, ==, 42);
  g_assert_cmpuint(h->boot_order, ==, 3);
  g_assert_cmpint(h->rom.enabled, ==, HOSTDEV_TRISTATE_OFF);
  g_assert_cmpint(h->rom.bar, ==, HOSTDEV_TRISTATE_ABSENT);
  g_assert_null(h->rom.file);
  g_assert_cmpuint(h->acpi_index, ==, 12);
  g_assert_cmpstr(h->alias, ==, "ua-vf");
  g_assert_true(h->pci_guest.present);
  g_assert_true(h->pci_guest.multifunction);
  g_assert_true(h->pci_guest.multifunction_explicit);
  what = hostdev_describe_source(h);
  g_assert_cmpstr(what, ==, "PCI network device 0001:02:07.1");

  usb = parse(USB "<source guestReset='on'><address bus='1' device='2'/></source>"
              "<rom/><acpi/>" END, &error);
  g_assert_no_error(error);
  g_assert_cmpint(usb->usb.guest_reset, ==, HOSTDEV_GUEST_RESET_ON);
  g_assert_cmpuint(usb->acpi_index, ==, 0);
  g_assert_cmpstr(hostdev_type_name(usb->type), ==, "usb");
  g_assert_cmpstr(hostdev_type_name(HOSTDEV_TYPE_MDEV), ==, "mdev");
}

/* ------------------------------------------------------------------ */
/* Matching, describing, PCI address strings                           */

static Hostdev *
usb_hostdev(gboolean ids, guint vendor, guint product,
            gboolean address, guint bus, guint device)
{
  Hostdev *h = hostdev_new(HOSTDEV_TYPE_USB);

  h->usb.has_vendor_product = ids;
  h->usb.vendor = vendor;
  h->usb.product = product;
  h->usb.has_address = address;
  h->usb.bus = bus;
  h->usb.device = device;
  return h;
}

static Hostdev *
pci_hostdev(guint domain, guint bus, guint slot, guint function)
{
  Hostdev *h = hostdev_new(HOSTDEV_TYPE_PCI);

  h->pci_source = (PciAddress){ domain, bus, slot, function };
  return h;
}

static void
test_match_usb(void)
{
  /* what attach recorded: the ids, and the bus/device they resolved to */
  g_autoptr(Hostdev) held = usb_hostdev(TRUE, 0x0627, 0x0001, TRUE, 1, 2);
  g_autoptr(Hostdev) by_ids = usb_hostdev(TRUE, 0x0627, 0x0001, FALSE, 0, 0);
  g_autoptr(Hostdev) by_other_ids = usb_hostdev(TRUE, 0x0627, 0x0002, FALSE, 0, 0);
  g_autoptr(Hostdev) by_address = usb_hostdev(FALSE, 0, 0, TRUE, 1, 2);
  g_autoptr(Hostdev) by_other_address = usb_hostdev(FALSE, 0, 0, TRUE, 1, 3);
  /* with both given, libvirt compares the address only */
  g_autoptr(Hostdev) by_both = usb_hostdev(TRUE, 0x1111, 0x2222, TRUE, 1, 2);
  g_autoptr(Hostdev) held_ids_only = usb_hostdev(TRUE, 0x0627, 0x0001, FALSE, 0, 0);
  g_autoptr(Hostdev) pci = pci_hostdev(0, 1, 2, 3);

  g_assert_true(hostdev_source_matches(by_ids, held));
  g_assert_false(hostdev_source_matches(by_other_ids, held));
  g_assert_true(hostdev_source_matches(by_address, held));
  g_assert_false(hostdev_source_matches(by_other_address, held));
  g_assert_true(hostdev_source_matches(by_both, held));
  g_assert_false(hostdev_source_matches(by_address, held_ids_only));
  g_assert_true(hostdev_source_matches(by_ids, held_ids_only));
  g_assert_false(hostdev_source_matches(by_ids, by_address));
  g_assert_false(hostdev_source_matches(by_ids, pci));
  g_assert_false(hostdev_source_matches(pci, by_ids));
}

static void
test_match_pci(void)
{
  g_autoptr(Hostdev) a = pci_hostdev(0, 1, 0, 0);
  g_autoptr(Hostdev) same = pci_hostdev(0, 1, 0, 0);
  g_autoptr(Hostdev) other_function = pci_hostdev(0, 1, 0, 1);
  g_autoptr(Hostdev) other_domain = pci_hostdev(1, 1, 0, 0);

  /* the guest side does not take part */
  same->pci_guest.present = TRUE;
  same->pci_guest.addr.bus = 9;
  same->managed = TRUE;

  g_assert_true(hostdev_source_matches(a, same));
  g_assert_true(hostdev_source_matches(same, a));
  g_assert_false(hostdev_source_matches(a, other_function));
  g_assert_false(hostdev_source_matches(a, other_domain));
}

static void
test_match_mdev_interface(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(Hostdev) mdev = parse(MDEV_WITH_UUID("c2177883-f1bb-47f0-914d-32a22e3a8804"), &error);
  g_autoptr(Hostdev) same_mdev = parse(MDEV_WITH_UUID("C2177883F1BB47F0914D32A22E3A8804"), &error);
  g_autoptr(Hostdev) other_mdev = parse(MDEV_WITH_UUID("c2177883-f1bb-47f0-914d-32a22e3a8805"), &error);
  g_autoptr(Hostdev) held = parse(IFACE_WITH_MAC("52:54:00:6d:90:02"), &error);
  g_autoptr(Hostdev) by_mac = parse(IFACE_WITH_MAC("52:54:00:6D:90:2"), &error);
  g_autoptr(Hostdev) by_other_mac = parse(IFACE_WITH_MAC("52:54:00:6d:90:03"), &error);
  g_autoptr(Hostdev) by_address = parse("<interface type='hostdev'><source><address "
                                        "type='pci' bus='2'/></source></interface>", &error);
  g_autofree char *what = NULL;

  g_assert_no_error(error);
  g_assert_true(hostdev_source_matches(mdev, same_mdev));
  g_assert_false(hostdev_source_matches(mdev, other_mdev));
  g_assert_true(hostdev_source_matches(by_mac, held));
  g_assert_false(hostdev_source_matches(by_other_mac, held));
  g_assert_true(hostdev_source_matches(by_address, held));
  /* the address matches, but the MAC asked for is not the one held */
  g_assert_false(hostdev_source_matches(held, by_address));
  what = hostdev_describe_source(mdev);
  g_assert_cmpstr(what, ==, "mediated device c2177883-f1bb-47f0-914d-32a22e3a8804");
}

static void
test_describe(void)
{
  g_autoptr(Hostdev) ids = usb_hostdev(TRUE, 0x0627, 0x0001, FALSE, 0, 0);
  g_autoptr(Hostdev) address = usb_hostdev(FALSE, 0, 0, TRUE, 1, 2);
  g_autoptr(Hostdev) both = usb_hostdev(TRUE, 0x0627, 0x0001, TRUE, 1, 2);
  g_autoptr(Hostdev) pci = pci_hostdev(0, 1, 0, 0);
  g_autofree char *s1 = hostdev_describe_source(ids);
  g_autofree char *s2 = hostdev_describe_source(address);
  g_autofree char *s3 = hostdev_describe_source(both);
  g_autofree char *s4 = hostdev_describe_source(pci);

  g_assert_cmpstr(s1, ==, "USB device 0627:0001");
  g_assert_cmpstr(s2, ==, "USB device at bus 1 device 2");
  g_assert_cmpstr(s3, ==, "USB device 0627:0001 at bus 1 device 2");
  g_assert_cmpstr(s4, ==, "PCI device 0000:01:00.0");
}

static void
test_pci_address_strings(void)
{
  struct {
    const char *text;
    PciAddress addr;
    const char *formatted;
  } good[] = {
    { "0000:01:00.0", { 0, 1, 0, 0 }, "0000:01:00.0" },
    { "01:00.1", { 0, 1, 0, 1 }, "0000:01:00.1" },
    { "ffff:ff:1f.7", { 0xffff, 0xff, 0x1f, 7 }, "ffff:ff:1f.7" },
    { "0:1:2.3", { 0, 1, 2, 3 }, "0000:01:02.3" },
    { "ABCD:Ef:1F.0", { 0xabcd, 0xef, 0x1f, 0 }, "abcd:ef:1f.0" },
  };
  struct {
    const char *text;
    const char *message;
  } bad[] = {
    { "0000:01:20.0", "slot must be 0x00..0x1f" },
    { "0000:01:00.8", "function must be 0..7" },
    { "0000:01:00.f", "function must be 0..7" },
    { "", "is not a PCI address" },
    { "pci_0000_01_00_0", "is not a PCI address" },
    { "00000:01:00.0", "is not a PCI address" },
    { "0000:001:00.0", "is not a PCI address" },
    { "0000:01:00", "is not a PCI address" },
    { "0000:01:00.0x", "is not a PCI address" },
    { "0000:01:00.00", "is not a PCI address" },
    { "0000:01:00.-1", "is not a PCI address" },
    { "1:0000:01:00.0", "is not a PCI address" },
    { " 0000:01:00.0", "is not a PCI address" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
    g_autoptr(GError) error = NULL;
    PciAddress addr = { 9, 9, 9, 9 };
    g_autofree char *formatted = NULL;

    g_assert_true(pci_address_parse(good[i].text, &addr, &error));
    g_assert_no_error(error);
    g_assert_cmpmem(&addr, sizeof(addr), &good[i].addr, sizeof(addr));
    formatted = pci_address_format(&addr);
    g_assert_cmpstr(formatted, ==, good[i].formatted);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    PciAddress addr = { 9, 9, 9, 9 };
    PciAddress untouched = { 9, 9, 9, 9 };

    g_assert_false(pci_address_parse(bad[i].text, &addr, &error));
    assert_error(error, HOSTDEVD_ERROR_INVALID_ARGUMENT, bad[i].message);
    g_assert_cmpmem(&addr, sizeof(addr), &untouched, sizeof(untouched));
  }
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
    g_autofree char *path = g_strdup_printf("/hostdev/parse/bad/%s",
                                            bad_cases[i].name);
    g_test_add_data_func(path, &bad_cases[i], test_bad_case);
  }
  g_test_add_func("/hostdev/parse/bad/too-big", test_too_big);
  g_test_add_func("/hostdev/parse/bad/too-deep", test_too_deep);
  g_test_add_func("/hostdev/parse/bad/null", test_null_input);
  g_test_add_func("/hostdev/parse/quiet", test_quiet);
  g_test_add_func("/hostdev/parse/max-size", test_max_size_accepted);
  g_test_add_func("/hostdev/parse/max-depth", test_max_depth_accepted);
  g_test_add_func("/hostdev/parse/length-not-nul", test_not_nul_terminated);
  g_test_add_func("/hostdev/parse/usb-ids", test_usb_ids);
  g_test_add_func("/hostdev/parse/usb-full", test_usb_full);
  g_test_add_func("/hostdev/parse/usb-address-only", test_usb_address_only);
  g_test_add_func("/hostdev/parse/number-notations", test_number_notations);
  g_test_add_func("/hostdev/parse/pci-full", test_pci_full);
  g_test_add_func("/hostdev/parse/pci-defaults", test_pci_defaults);
  g_test_add_func("/hostdev/parse/unknown-and-repeated", test_unknown_and_repeated);
  g_test_add_func("/hostdev/parse/alias-client", test_alias_client);
  g_test_add_func("/hostdev/parse/alias-live", test_alias_live);
  g_test_add_func("/hostdev/parse/message-value", test_message_value_escaped);
  g_test_add_func("/hostdev/format/usb", test_format_usb);
  g_test_add_func("/hostdev/format/usb-minimal", test_format_usb_minimal);
  g_test_add_func("/hostdev/format/pci", test_format_pci);
  g_test_add_func("/hostdev/format/pci-minimal", test_format_pci_minimal);
  g_test_add_func("/hostdev/format/normalises", test_format_normalises);
  g_test_add_func("/hostdev/format/pci-everything", test_format_pci_everything);
  g_test_add_func("/hostdev/format/zpci-unplaced", test_format_zpci_unplaced);
  g_test_add_func("/hostdev/format/mdev", test_format_mdev);
  g_test_add_func("/hostdev/format/usb-guest-reset", test_format_usb_guest_reset);
  g_test_add_func("/hostdev/format/interface", test_format_interface);
  g_test_add_func("/hostdev/parse/uuid-forms", test_uuid_forms);
  g_test_add_func("/hostdev/parse/mac-forms", test_mac_forms);
  g_test_add_func("/hostdev/parse/new-grammar", test_parse_new_grammar);
  g_test_add_func("/hostdev/copy", test_copy);
  g_test_add_func("/hostdev/match/usb", test_match_usb);
  g_test_add_func("/hostdev/match/pci", test_match_pci);
  g_test_add_func("/hostdev/match/mdev-interface", test_match_mdev_interface);
  g_test_add_func("/hostdev/describe", test_describe);
  g_test_add_func("/hostdev/pci-address-strings", test_pci_address_strings);

  return g_test_run();
}
