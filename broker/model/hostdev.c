/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdev.c - the typed <hostdev> model: parse, format, match
 *
 * The grammar is libvirt's (9.0), as `virsh attach-device` takes it:
 *  - <hostdev mode='subsystem'> of type='usb' (vendor/product and/or
 *    bus/device, startupPolicy, guestReset), type='pci' (<driver
 *    name='vfio'/>, host address) and type='mdev' model='vfio-pci' (source
 *    <address uuid/>, display, ramfb);
 *  - <interface type='hostdev'> (a PCI network function: <source><address
 *    type='pci'/>, <mac/>, one <vlan><tag/></vlan>, <driver name='vfio'/>),
 *    modelled as a type='pci' hostdev with is_interface set;
 *  - on every device <alias>, <boot order/>, and on PCI and mdev devices
 *    <rom bar file enabled/>, <acpi index/>, the guest <address type='pci'
 *    ... multifunction/> with an optional <zpci uid fid/>; on USB devices
 *    the guest <address type='usb' bus port/>.
 * type='scsi', 'scsi_host', mode='capabilities', mdev models vfio-ccw and
 * vfio-ap and other interface types are refused as not supported by
 * hostdevd.  The parser is driven by tables (hostdev types, guest address
 * types, number rules), so a new type or attribute is a row.
 *
 * Number rules, as libvirt has them:
 *  - Every numeric attribute is read by virXMLPropUInt() (src/util/virxml.c),
 *    which calls virStrToLong_uip() (src/util/virstring.c): strtoull
 *    semantics with the given base (g_ascii_strtoull in current libvirt),
 *    leading white space and '+' accepted, at least one digit, the whole
 *    string consumed, no '-' anywhere (so "-1" is refused, not wrapped), and
 *    the value must fit an unsigned int.
 *  - Base 0, i.e. C rules ("0x1f" hex, "017" octal, "31" decimal), for the
 *    USB <vendor id/>, <product id/> and source <address bus device/>
 *    (virDomainHostdevSubsysUSBDefParseXML, src/conf/domain_conf.c), for
 *    every PCI <address domain bus slot function/>, host or guest side
 *    (virPCIDeviceAddressParseXML, src/conf/device_conf.c), and for
 *    <zpci uid fid/> (virZPCIDeviceAddressParseXML).  The PCI attributes
 *    are optional and default to 0; vendor id must be non-zero
 *    (VIR_XML_PROP_NONZERO); bus and device are required.
 *  - Base 10 for the guest <address type='usb' bus/> and each dot-separated
 *    number of its port, at most VIR_DOMAIN_DEVICE_USB_MAX_PORT_DEPTH = 4
 *    of them (virDomainDeviceUSBAddressParseXML/...ParsePort, device_conf.c),
 *    for <boot order/>, required and non-zero (virDomainDeviceBootParseXML,
 *    domain_conf.c), for <acpi index/>, optional and non-zero, and for the
 *    VLAN <tag id/>, required, at most 4095 (virNetDevVlanParse).
 *  - PCI ranges: bus <= 0xff, slot <= 0x1f, function <= 7
 *    (virPCIDeviceAddressIsValid, src/util/virpci.c), checked unless domain,
 *    bus and slot are all 0 (an "empty" address: libvirt picks one).
 *  - zPCI: uid 0x0001..0xffff, fid 0..0xffffffff (virZPCIDeviceAddressIsValid);
 *    either may be left out, the caller assigns it.
 *  - mdev uuid as virUUIDParse reads it: 32 hex digits, '-' or ' ' between
 *    byte pairs, white space around; kept in the canonical 8-4-4-4-12 form.
 *  - MAC as virMacAddrParse reads it: six groups of 1-2 hex digits joined by
 *    ':'; a multicast address (first octet odd) is refused.
 * Where hostdevd is stricter, and why:
 *  - PCI domain <= 0xffff (libvirt now allows 32 bits): DESIGN.md's range,
 *    and the sysfs names we build have four hex digits.
 *  - vendor and product <= 0xffff: USB ids are 16 bits; a larger value
 *    could never match a device.
 *  - USB bus and device 1..0xffff: Linux numbers both from 1, and libvirt
 *    treats 0 as "not given" both when it looks the device up and when it
 *    formats the source back, so a 0 would not survive a round trip.
 *  - port numbers 1..255: a 0 ends libvirt's port list when formatted;
 *    hubs have at most 255 ports.
 *  - boot order <= 0x7fffffff: QEMU's bootindex is an int32.
 *  - acpi index <= 16383: QEMU refuses more (ONBOARD_INDEX_MAX, the limit
 *    of systemd's interface naming); libvirt passes any unsigned int on.
 *  - guest USB bus (a controller index) <= 0xffff.
 *  - managed must be 'yes' or 'no': libvirt silently reads anything else
 *    as 'no', which hides typos like managed='true'.
 *  - ramfb='on' is refused: QEMU has such a device only as
 *    vfio-pci-nohotplug, so it cannot be hot-plugged at all.
 *  - <zpci> on an mdev is refused: libvirt 9.0 accepts and ignores it.
 *  - A VLAN trunk or native mode on an interface is refused at parse time:
 *    a VF takes one tag, and libvirt refuses the others only when it
 *    programs the VF.  <virtualport> profiles are refused.
 *  - Text after a MAC address is refused (libvirt ignores what follows a
 *    white space).
 *  - <rom file/> must be an absolute path, as libvirt's schema says (its
 *    parser takes anything, even ''; enabled='no' is the way to no ROM).
 * hostdevd's own extension: <hostdevd:device port serial/> (namespace
 * urn:hostdevd:hostdev:1) in the <source> of a USB hostdev selects the
 * device by port path and/or serial (usb-selector.h).  libvirt's own names
 * are matched only in no namespace, as libvirt's XPath look-ups do, and
 * anything in hostdevd's namespaces but that one element, once, in that
 * place, is refused: a selector that went unread would choose another
 * device.
 * Like libvirt: unknown elements and attributes are ignored, of repeated
 * elements (<source>, <alias>, <address>, ...) the first counts, mdev
 * display defaults to 'off' (and the live XML says so), <boot> on an mdev
 * is refused, <rom> and <acpi> on a USB device are refused, and a <rom> on
 * an mdev is kept in the XML but has no effect on the QEMU device.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "hostdev.h"
#include "hostdevd-error.h"
#include "usb-selector.h"

#include <errno.h>
#include <string.h>

#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)

/* libxml2 2.12 made the structured error const. */
#if LIBXML_VERSION >= 21200
#define HOSTDEV_XML_ERROR_CONST const
#else
#define HOSTDEV_XML_ERROR_CONST
#endif

/* ------------------------------------------------------------------ */
/* The model                                                           */

Hostdev *
hostdev_new(HostdevType type)
{
  Hostdev *hostdev = g_new0(Hostdev, 1);

  hostdev->type = type;
  return hostdev;
}

void
hostdev_free(Hostdev *hostdev)
{
  if (hostdev == NULL)
    return;
  g_free(hostdev->alias);
  g_free(hostdev->usb_guest.port);
  g_free(hostdev->usb.port_path);
  g_free(hostdev->usb.serial);
  g_free(hostdev->rom.file);
  g_free(hostdev);
}

Hostdev *
hostdev_copy(const Hostdev *hostdev)
{
  Hostdev *copy = g_memdup2(hostdev, sizeof(*hostdev));

  copy->alias = g_strdup(hostdev->alias);
  copy->usb_guest.port = g_strdup(hostdev->usb_guest.port);
  copy->usb.port_path = g_strdup(hostdev->usb.port_path);
  copy->usb.serial = g_strdup(hostdev->usb.serial);
  copy->rom.file = g_strdup(hostdev->rom.file);
  return copy;
}

/* ------------------------------------------------------------------ */
/* Reading the document: libxml2 with every door closed                */

typedef struct {
  gboolean saw_dtd;
  gboolean saw_entity;
  gboolean too_deep;
  guint depth;
  char *first_error;
} XmlGuard;

static XmlGuard *
xml_guard(void *user_data)
{
  xmlParserCtxtPtr ctxt = user_data;

  return ctxt->_private;
}

/* A DOCTYPE is where entities (billion laughs, XXE) come from: stop at
 * the declaration, before libxml2 reads the internal subset. */
static void
guard_dtd(void *user_data, const xmlChar *name, const xmlChar *external_id,
          const xmlChar *system_id)
{
  xml_guard(user_data)->saw_dtd = TRUE;
  xmlStopParser(user_data);
}

/* Called for every reference to a non-predefined entity (&amp; and
 * character references never get here). */
static xmlEntityPtr
guard_get_entity(void *user_data, const xmlChar *name)
{
  xml_guard(user_data)->saw_entity = TRUE;
  xmlStopParser(user_data);
  return NULL;
}

static void
guard_entity_decl(void *user_data, const xmlChar *name, int type,
                  const xmlChar *public_id, const xmlChar *system_id,
                  xmlChar *content)
{
  xml_guard(user_data)->saw_entity = TRUE;
  xmlStopParser(user_data);
}

static void
guard_reference(void *user_data, const xmlChar *name)
{
  xml_guard(user_data)->saw_entity = TRUE;
  xmlStopParser(user_data);
}

static void
guard_start_element(void *user_data, const xmlChar *localname,
                    const xmlChar *prefix, const xmlChar *uri,
                    int nb_namespaces, const xmlChar **namespaces,
                    int nb_attributes, int nb_defaulted,
                    const xmlChar **attributes)
{
  XmlGuard *guard = xml_guard(user_data);

  if (++guard->depth > HOSTDEV_XML_MAX_DEPTH) {
    guard->too_deep = TRUE;
    xmlStopParser(user_data);
    return;
  }
  xmlSAX2StartElementNs(user_data, localname, prefix, uri, nb_namespaces, namespaces,
                        nb_attributes, nb_defaulted, attributes);
}

static void
guard_end_element(void *user_data, const xmlChar *localname,
                  const xmlChar *prefix, const xmlChar *uri)
{
  XmlGuard *guard = xml_guard(user_data);

  if (guard->depth > 0)
    guard->depth--;
  xmlSAX2EndElementNs(user_data, localname, prefix, uri);
}

/* Keeps the first error: later ones are mostly consequences of it.  Being
 * the structured handler also keeps libxml2 from writing to stderr. */
static void
guard_error(void *user_data, HOSTDEV_XML_ERROR_CONST xmlError *err)
{
  XmlGuard *guard = xml_guard(user_data);
  g_autofree char *message = NULL;

  if (guard->first_error != NULL || err == NULL ||
      err->level == XML_ERR_WARNING)
    return;

  message = g_strdup(err->message ? err->message : "unknown error");
  g_strstrip(message);
  if (err->line > 0 && err->int2 > 0)
    guard->first_error = g_strdup_printf("line %d, column %d: %s",
                                         err->line, err->int2, message);
  else if (err->line > 0)
    guard->first_error = g_strdup_printf("line %d: %s", err->line, message);
  else
    guard->first_error = g_steal_pointer(&message);
}

static gboolean
tree_has_entities(xmlNode *node)
{
  for (; node != NULL; node = node->next) {
    if (node->type == XML_ENTITY_REF_NODE || node->type == XML_ENTITY_NODE ||
        node->type == XML_ENTITY_DECL || node->type == XML_DTD_NODE)
      return TRUE;
    if (node->type != XML_ELEMENT_NODE)
      continue;
    for (xmlAttr *attr = node->properties; attr != NULL; attr = attr->next)
      if (tree_has_entities(attr->children))
        return TRUE;
    if (tree_has_entities(node->children))
      return TRUE;
  }
  return FALSE;
}

static gpointer
xml_init(gpointer data)
{
  xmlInitParser();
  return NULL;
}

/* A generic libxml2 error: the same error also reaches the structured handler. */
static void G_GNUC_PRINTF(2, 3)
ignore_generic_error(void *context, const char *format, ...)
{
}

#define DTD_REFUSED "DTDs and entities are not accepted"

/* What a kept parser's dictionary may hold (bytes of names) before it is made anew. */
#define PARSER_DICT_MAX_BYTES (64 * 1024)

static GPrivate kept_parser = G_PRIVATE_INIT((GDestroyNotify)xmlFreeParserCtxt);

/*
 * Return: (transfer none) (nullable): this thread's parser, its hooks in
 * place.  It is kept between documents: making one was about a quarter of
 * what reading a request's XML cost (bench/run.sh, callgrind).  Its
 * dictionary keeps every name it has read, so once that grows past
 * PARSER_DICT_MAX_BYTES (a client sending ever new names) a new parser
 * replaces it.
 */
static xmlParserCtxtPtr
thread_parser(void)
{
  xmlParserCtxtPtr ctxt = g_private_get(&kept_parser);

  if (ctxt != NULL && xmlDictGetUsage(ctxt->dict) <= PARSER_DICT_MAX_BYTES)
    return ctxt;
  ctxt = xmlNewParserCtxt();
  g_private_replace(&kept_parser, ctxt);
  if (ctxt == NULL)
    return NULL;
  ctxt->sax->internalSubset = guard_dtd;
  ctxt->sax->externalSubset = guard_dtd;
  ctxt->sax->getEntity = guard_get_entity;
  ctxt->sax->getParameterEntity = guard_get_entity;
  ctxt->sax->entityDecl = guard_entity_decl;
  ctxt->sax->reference = guard_reference;
  ctxt->sax->startElementNs = guard_start_element;
  ctxt->sax->endElementNs = guard_end_element;
  ctxt->sax->serror = guard_error;
  return ctxt;
}

static xmlDoc *
read_document(const char *xml, gsize length, GError **error)
{
  static GOnce init_once = G_ONCE_INIT;
  XmlGuard guard = { 0 };
  xmlParserCtxtPtr ctxt;
  g_autoptr(xmlDoc) doc = NULL;

  if (length > HOSTDEV_XML_MAX_SIZE) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
                "the XML document is %" G_GSIZE_FORMAT " bytes; "
                "hostdevd accepts at most %d bytes (HOSTDEV_XML_MAX_SIZE)",
                length, HOSTDEV_XML_MAX_SIZE);
    return NULL;
  }
  if (xml == NULL || length == 0) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
                        "the XML document is empty; expected <hostdev>");
    return NULL;
  }

  g_once(&init_once, xml_init, NULL);
  /* libxml2 reports some errors (encoding ones) through its per-thread generic
   * handler, which prints to stderr: the structured handler below has them */
  xmlSetGenericErrorFunc(NULL, ignore_generic_error);

  ctxt = thread_parser();
  if (ctxt == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                        "cannot create an XML parser (out of memory?)");
    return NULL;
  }
  ctxt->_private = &guard;
  /* No NOENT, DTDLOAD, DTDATTR or XINCLUDE: nothing is expanded or
   * fetched; the hooks refuse DTDs and entities outright.  NULL unless
   * well-formed. */
  doc = xmlCtxtReadMemory(ctxt, xml, (int)length, NULL, NULL,
                          XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  ctxt->_private = NULL;

  if (guard.saw_dtd || guard.saw_entity) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
                        DTD_REFUSED);
  } else if (guard.too_deep) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
                "the XML document nests elements deeper than %d levels",
                HOSTDEV_XML_MAX_DEPTH);
  } else if (doc == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
                "malformed XML: %s",
                guard.first_error ? guard.first_error : "unknown error");
  } else if (doc->intSubset != NULL || doc->extSubset != NULL ||
             tree_has_entities(doc->children)) {
    /* The hooks should have caught these; this is the second lock. */
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
                        DTD_REFUSED);
  } else {
    g_free(guard.first_error);
    return g_steal_pointer(&doc);
  }
  g_free(guard.first_error);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Attribute helpers                                                   */

/* Element children are looked up by name; the first one counts, as with
 * libvirt's virXPathNode("./name"), which like this sees only elements in
 * no namespace: <hostdevd:address> is not an <address>. */
static xmlNode *
child_element(xmlNode *parent, const char *name)
{
  for (xmlNode *node = parent->children; node != NULL; node = node->next)
    if (node->type == XML_ELEMENT_NODE && node->ns == NULL &&
        xmlStrEqual(node->name, BAD_CAST name))
      return node;
  return NULL;
}

/* The first child element @name in namespace @href, or NULL. */
static xmlNode *
child_element_ns(xmlNode *parent, const char *href, const char *name)
{
  for (xmlNode *node = parent->children; node != NULL; node = node->next)
    if (node->type == XML_ELEMENT_NODE && node->ns != NULL &&
        xmlStrEqual(node->ns->href, BAD_CAST href) &&
        xmlStrEqual(node->name, BAD_CAST name))
      return node;
  return NULL;
}

/* Return: (transfer full): the attribute without namespace (what libvirt's
 * virXMLPropString reads), or NULL. */
static char *
get_attr(xmlNode *node, const char *name)
{
  xmlChar *value = xmlGetNoNsProp(node, BAD_CAST name);
  char *copy;

  if (value == NULL)
    return NULL;
  copy = g_strdup((const char *)value);
  xmlFree(value);
  return copy;
}

/* Return: (transfer full): @value made safe and short for a message. */
static char *
message_value(const char *value)
{
  g_autofree char *cut = NULL;

  if (strlen(value) > 40)
    cut = g_strdup_printf("%.40s...", value);
  return g_strescape(cut ? cut : value, NULL);
}

typedef struct {
  const char *attr;
  int base;            /* 0: C rules (0x hex, 0 octal, decimal); 10: decimal */
  guint min;
  guint max;
  const char *range;   /* as messages show it */
} NumberRule;

static const NumberRule rule_pci_domain = { "domain", 0, 0, 0xffff, "0x0000..0xffff" };
static const NumberRule rule_pci_bus = { "bus", 0, 0, 0xff, "0x00..0xff" };
static const NumberRule rule_pci_slot = { "slot", 0, 0, 0x1f, "0x00..0x1f" };
static const NumberRule rule_pci_function = { "function", 0, 0, 7, "0..7" };
static const NumberRule rule_usb_vendor = { "id", 0, 1, 0xffff, "0x0001..0xffff" };
static const NumberRule rule_usb_product = { "id", 0, 0, 0xffff, "0x0000..0xffff" };
static const NumberRule rule_usb_bus = { "bus", 0, 1, 0xffff, "1..65535" };
static const NumberRule rule_usb_device = { "device", 0, 1, 0xffff, "1..65535" };
static const NumberRule rule_usb_guest_bus = { "bus", 10, 0, HOSTDEV_USB_GUEST_BUS_MAX,
                                               "0..65535" };
static const NumberRule rule_boot_order = { "order", 10, 1, G_MAXINT32, "1..2147483647" };
static const NumberRule rule_acpi_index = { "index", 10, 1, 16383, "1..16383" };
static const NumberRule rule_zpci_uid = { "uid", 0, 1, 0xffff, "0x0001..0xffff" };
static const NumberRule rule_zpci_fid = { "fid", 0, 0, G_MAXUINT32, "0x00000000..0xffffffff" };
static const NumberRule rule_vlan_tag = { "id", 10, 0, 4095, "0..4095" };

/**
 * parse_number() - read one numeric attribute by @rule
 * @node: the element
 * @where: the element as messages show it, without the closing '>',
 *   e.g. "<source><address"
 * @rule: attribute name, base and range
 * @required: whether a missing attribute is an error
 * @out: the value; untouched when the attribute is absent
 * @error: InvalidArgument naming element, attribute, value and range
 * Return: 1 when read, 0 when absent and not required, -1 on error.
 */
static int
parse_number(xmlNode *node, const char *where, const NumberRule *rule,
             gboolean required, guint *out, GError **error)
{
  g_autofree char *text = get_attr(node, rule->attr);
  g_autofree char *shown = NULL;
  char *end = NULL;
  guint64 value;

  if (text == NULL) {
    if (!required)
      return 0;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s>: missing %s='...' (%s)", where, rule->attr, rule->range);
    return -1;
  }

  shown = message_value(text);
  errno = 0;
  value = g_ascii_strtoull(text, &end, rule->base);
  if (end == text || *end != '\0' || memchr(text, '-', end - text) != NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s %s='%s'>: %s must be a number %s (%s)",
                where, rule->attr, shown, rule->attr, rule->range,
                rule->base == 10 ? "decimal" : "decimal or 0x-prefixed hex");
    return -1;
  }
  if (errno == ERANGE || value < rule->min || value > rule->max) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s %s='%s'>: %s must be %s",
                where, rule->attr, shown, rule->attr, rule->range);
    return -1;
  }
  *out = (guint)value;
  return 1;
}

typedef struct {
  const char *name;
  int value;
} EnumName;

/* Return: (transfer full): "'a', 'b' or 'c'". */
static char *
enum_choices(const EnumName *names, gsize n_names)
{
  GString *choices = g_string_new(NULL);

  for (gsize i = 0; i < n_names; i++) {
    if (i > 0)
      g_string_append(choices, i + 1 == n_names ? " or " : ", ");
    g_string_append_printf(choices, "'%s'", names[i].name);
  }
  return g_string_free(choices, FALSE);
}

/**
 * parse_enum() - read one attribute with a fixed set of values
 * Return: 1 when read, 0 when absent (@out untouched), -1 on error.
 */
static int
parse_enum(xmlNode *node, const char *where, const char *attr,
           const EnumName *names, gsize n_names, int *out, GError **error)
{
  g_autofree char *text = get_attr(node, attr);
  g_autofree char *shown = NULL;
  g_autofree char *choices = NULL;

  if (text == NULL)
    return 0;
  for (gsize i = 0; i < n_names; i++) {
    if (strcmp(text, names[i].name) == 0) {
      *out = names[i].value;
      return 1;
    }
  }
  shown = message_value(text);
  choices = enum_choices(names, n_names);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "%s %s='%s'>: %s must be %s", where, attr, shown, attr, choices);
  return -1;
}

static const EnumName yes_no_names[] = {
  { "yes", TRUE },
  { "no", FALSE },
};

static const EnumName on_off_tristate_names[] = {
  { "on", HOSTDEV_TRISTATE_ON },
  { "off", HOSTDEV_TRISTATE_OFF },
};

static const EnumName yes_no_tristate_names[] = {
  { "yes", HOSTDEV_TRISTATE_ON },
  { "no", HOSTDEV_TRISTATE_OFF },
};

static const EnumName guest_reset_names[] = {
  { "off", HOSTDEV_GUEST_RESET_OFF },
  { "uninitialized", HOSTDEV_GUEST_RESET_UNINITIALIZED },
  { "on", HOSTDEV_GUEST_RESET_ON },
};

static const char *
guest_reset_name(HostdevGuestReset reset)
{
  switch (reset) {
  case HOSTDEV_GUEST_RESET_OFF:
    return "off";
  case HOSTDEV_GUEST_RESET_UNINITIALIZED:
    return "uninitialized";
  case HOSTDEV_GUEST_RESET_ON:
    return "on";
  case HOSTDEV_GUEST_RESET_DEFAULT:
    break;
  }
  return NULL;
}

static const EnumName startup_policy_names[] = {
  { "mandatory", HOSTDEV_STARTUP_MANDATORY },
  { "requisite", HOSTDEV_STARTUP_REQUISITE },
  { "optional", HOSTDEV_STARTUP_OPTIONAL },
};

static const char *
startup_policy_name(HostdevStartupPolicy policy)
{
  switch (policy) {
  case HOSTDEV_STARTUP_MANDATORY:
    return "mandatory";
  case HOSTDEV_STARTUP_REQUISITE:
    return "requisite";
  case HOSTDEV_STARTUP_OPTIONAL:
    return "optional";
  case HOSTDEV_STARTUP_DEFAULT:
    break;
  }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Addresses and identifiers                                           */

static gboolean
pci_address_is_empty(const PciAddress *addr)
{
  /* libvirt's rule: the function alone does not make an address */
  return addr->domain == 0 && addr->bus == 0 && addr->slot == 0;
}

static gboolean
parse_pci_address_attrs(xmlNode *node, const char *where, PciAddress *addr,
                        GError **error)
{
  memset(addr, 0, sizeof(*addr));
  return parse_number(node, where, &rule_pci_domain, FALSE, &addr->domain, error) >= 0 &&
         parse_number(node, where, &rule_pci_bus, FALSE, &addr->bus, error) >= 0 &&
         parse_number(node, where, &rule_pci_slot, FALSE, &addr->slot, error) >= 0 &&
         parse_number(node, where, &rule_pci_function, FALSE, &addr->function, error) >= 0;
}

/* The guest USB port: "1" or "1.2.3", each 1..255, at most 4 levels.
 * Return: (transfer full): the canonical form ("01.2" → "1.2"), or NULL. */
static char *
parse_usb_port(const char *where, const char *text, GError **error)
{
  g_auto(GStrv) parts = g_strsplit(text, ".", 0);
  g_autoptr(GString) canonical = g_string_new(NULL);
  g_autofree char *shown = message_value(text);
  guint n = g_strv_length(parts);

  if (n == 0 || n > 4)
    goto bad;
  for (guint i = 0; i < n; i++) {
    const char *p = parts[i];
    guint64 value;
    char *end = NULL;

    /* digits only: libvirt's strtoul would also take " 1" or "+1" here,
     * but a port path has no use for them */
    if (*p == '\0' || !g_ascii_isdigit(*p))
      goto bad;
    errno = 0;
    value = g_ascii_strtoull(p, &end, 10);
    if (*end != '\0' || errno == ERANGE || value < 1 || value > 255)
      goto bad;
    g_string_append_printf(canonical, "%s%u", i ? "." : "", (guint)value);
  }
  return g_string_free(g_steal_pointer(&canonical), FALSE);

bad:
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "%s port='%s'>: port must be 1 to 4 numbers 1..255 "
              "separated by dots, e.g. '1' or '1.2'", where, shown);
  return NULL;
}

char *
hostdev_usb_guest_port_check(guint bus, const char *port, GError **error)
{
  if (bus > HOSTDEV_USB_GUEST_BUS_MAX) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<address type='usb' bus='%u'>: bus must be %s", bus,
                rule_usb_guest_bus.range);
    return NULL;
  }
  return parse_usb_port("<address type='usb'", port, error);
}

/* libvirt's virUUIDParse: 32 hex digits, '-' or ' ' allowed between the
 * byte pairs, white space around.  @out gets the canonical lower-case
 * 8-4-4-4-12 form, as libvirt formats it back. */
static gboolean
uuid_parse(const char *text, char out[HOSTDEV_UUID_STRING_LEN + 1])
{
  guint8 b[16];
  const char *p = text;
  gsize n = 0;

  while (g_ascii_isspace(*p))
    p++;
  while (n < sizeof(b)) {
    if (*p == '-' || *p == ' ') {
      p++;
      continue;
    }
    /* p[1] is readable: p[0] is a hex digit, not the terminator */
    if (!g_ascii_isxdigit(p[0]) || !g_ascii_isxdigit(p[1]))
      return FALSE;
    b[n++] = (guint8)(g_ascii_xdigit_value(p[0]) * 16 + g_ascii_xdigit_value(p[1]));
    p += 2;
  }
  while (g_ascii_isspace(*p))
    p++;
  if (*p != '\0')
    return FALSE;
  g_snprintf(out, HOSTDEV_UUID_STRING_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
             b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return TRUE;
}

/* libvirt's virMacAddrParse: six groups of one or two hex digits joined by
 * ':'.  libvirt ignores whatever follows a white space after the last
 * group; hostdevd allows only trailing white space. */
static gboolean
mac_parse(const char *text, guint8 mac[6])
{
  const char *p = text;

  for (guint i = 0; i < 6; i++) {
    guint value = 0;
    guint digits = 0;

    while (g_ascii_isxdigit(*p) && digits < 3) {
      value = value * 16 + (guint)g_ascii_xdigit_value(*p);
      p++;
      digits++;
    }
    if (digits == 0 || digits > 2)
      return FALSE;
    mac[i] = (guint8)value;
    if (i < 5 && *p++ != ':')
      return FALSE;
  }
  while (g_ascii_isspace(*p))
    p++;
  return *p == '\0';
}

/* ------------------------------------------------------------------ */
/* hostdevd's extension: <hostdevd:device port serial/> (usb-selector.h) */

#define SELECTOR_WHERE "<source><" USB_SELECTOR_XML_PREFIX ":" USB_SELECTOR_XML_ELEMENT
#define SELECTOR_SHAPE "<" USB_SELECTOR_XML_PREFIX ":" USB_SELECTOR_XML_ELEMENT \
  " xmlns:" USB_SELECTOR_XML_PREFIX "='" USB_SELECTOR_XML_NS "' port='...' serial='...'/>"

/* Return: the selector element of a USB hostdev's <source>, or NULL. */
static xmlNode *
usb_selector_node(xmlNode *source)
{
  return child_element_ns(source, USB_SELECTOR_XML_NS, USB_SELECTOR_XML_ELEMENT);
}

static gboolean
in_hostdevd_namespace(const xmlNs *ns)
{
  return ns != NULL && ns->href != NULL &&
         g_str_has_prefix((const char *)ns->href, USB_SELECTOR_XML_NS_FAMILY);
}

/**
 * check_extensions() - is every name in hostdevd's namespaces where it belongs?
 * @node: an element; it and everything below it are checked
 * @allowed: the one selector element the device may have, or NULL
 * libvirt ignores what it does not know, but a selector that went unread
 * would quietly choose another device, so hostdevd's own names are
 * refused anywhere else, in another version of the namespace, or twice.
 */
static gboolean
check_extensions(xmlNode *node, xmlNode *allowed, GError **error)
{
  for (xmlAttr *attr = node->properties; attr != NULL; attr = attr->next) {
    if (in_hostdevd_namespace(attr->ns)) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<%s %s:%s='...'>: hostdevd's XML extension is one element, "
                  "%s, inside the <source> of a USB hostdev; no attribute "
                  "of its namespace goes elsewhere", node->name,
                  attr->ns->prefix ? (const char *)attr->ns->prefix : "",
                  attr->name, SELECTOR_SHAPE);
      return FALSE;
    }
  }
  if (node != allowed && in_hostdevd_namespace(node->ns)) {
    const char *href = (const char *)node->ns->href;

    if (strcmp(href, USB_SELECTOR_XML_NS) != 0)
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<%s>: unknown hostdevd namespace '%s'; this hostdevd "
                  "knows '%s'", node->name, href, USB_SELECTOR_XML_NS);
    else
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<%s:%s>: hostdevd's XML extension is one element, %s, "
                  "once, inside the <source> of a USB hostdev",
                  node->ns->prefix ? (const char *)node->ns->prefix : "",
                  node->name, SELECTOR_SHAPE);
    return FALSE;
  }
  for (xmlNode *child = node->children; child != NULL; child = child->next)
    if (child->type == XML_ELEMENT_NODE &&
        !check_extensions(child, allowed, error))
      return FALSE;
  return TRUE;
}

/* port='1-2.3' and/or serial='...' of the selector element */
static gboolean
parse_usb_selector(xmlNode *selector, Hostdev *hostdev, GError **error)
{
  g_autofree char *port = get_attr(selector, "port");
  g_autofree char *serial = get_attr(selector, "serial");
  int follow = HOSTDEV_TRISTATE_ABSENT;

  for (xmlAttr *attr = selector->properties; attr != NULL; attr = attr->next) {
    if (attr->ns == NULL && (xmlStrEqual(attr->name, BAD_CAST "port") ||
                             xmlStrEqual(attr->name, BAD_CAST "serial") ||
                             xmlStrEqual(attr->name, BAD_CAST "follow")))
      continue;
    /* ours, so strict: a misspelt serial= must not go unnoticed */
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                SELECTOR_WHERE " %s='...'>: unknown attribute; it takes "
                "port='...', serial='...' and follow='yes|no'", attr->name);
    return FALSE;
  }
  if (parse_enum(selector, SELECTOR_WHERE, "follow", yes_no_tristate_names,
                 G_N_ELEMENTS(yes_no_tristate_names), &follow, error) < 0)
    return FALSE;
  hostdev->usb.follow = follow;
  if (port == NULL && serial == NULL && follow == HOSTDEV_TRISTATE_ABSENT) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        SELECTOR_WHERE ">: give port='...' (e.g. '1-2.3'), "
                        "serial='...', follow='yes|no', or several");
    return FALSE;
  }
  if (port != NULL) {
    hostdev->usb.port_path = usb_port_path_parse(port, NULL, error);
    if (hostdev->usb.port_path == NULL) {
      g_autofree char *shown = message_value(port);
      g_prefix_error(error, SELECTOR_WHERE " port='%s'>: ", shown);
      return FALSE;
    }
  }
  if (serial != NULL) {
    if (!usb_serial_check(serial, error)) {
      g_autofree char *shown = message_value(serial);
      g_prefix_error(error, SELECTOR_WHERE " serial='%s'>: ", shown);
      return FALSE;
    }
    hostdev->usb.serial = g_steal_pointer(&serial);
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Host sources, one parser and formatter per hostdev type             */

static gboolean
parse_usb_source(xmlNode *hostdev_node, xmlNode *source, Hostdev *hostdev,
                 GError **error)
{
  xmlNode *vendor = child_element(source, "vendor");
  xmlNode *product = child_element(source, "product");
  xmlNode *address = child_element(source, "address");
  xmlNode *selector = usb_selector_node(source);
  int guest_reset = HOSTDEV_GUEST_RESET_DEFAULT;

  if (vendor != NULL && product == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<source><vendor/> needs a <product id='...'/> beside it "
                        "(libvirt names a USB device by both ids)");
    return FALSE;
  }
  if (product != NULL && vendor == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<source><product/> needs a <vendor id='...'/> beside it "
                        "(libvirt names a USB device by both ids)");
    return FALSE;
  }
  if (vendor == NULL && address == NULL && selector == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<source> of a USB hostdev must name the device: "
                        "<vendor id='...'/> and <product id='...'/>, "
                        "and/or <address bus='...' device='...'/>, "
                        "and/or hostdevd's " SELECTOR_SHAPE);
    return FALSE;
  }

  if (parse_enum(source, "<source", "guestReset", guest_reset_names,
                 G_N_ELEMENTS(guest_reset_names), &guest_reset, error) < 0)
    return FALSE;
  hostdev->usb.guest_reset = guest_reset;

  if (vendor != NULL) {
    if (parse_number(vendor, "<source><vendor", &rule_usb_vendor, TRUE,
                     &hostdev->usb.vendor, error) < 0 ||
        parse_number(product, "<source><product", &rule_usb_product, TRUE,
                     &hostdev->usb.product, error) < 0)
      return FALSE;
    hostdev->usb.has_vendor_product = TRUE;
  }
  if (address != NULL) {
    if (parse_number(address, "<source><address", &rule_usb_bus, TRUE,
                     &hostdev->usb.bus, error) < 0 ||
        parse_number(address, "<source><address", &rule_usb_device, TRUE,
                     &hostdev->usb.device, error) < 0)
      return FALSE;
    hostdev->usb.has_address = TRUE;
  }
  return selector == NULL || parse_usb_selector(selector, hostdev, error);
}

/* <driver name='vfio'/> of a PCI hostdev or a hostdev interface */
static gboolean
parse_pci_driver(xmlNode *parent, GError **error)
{
  xmlNode *driver = child_element(parent, "driver");
  g_autofree char *name = driver ? get_attr(driver, "name") : NULL;
  g_autofree char *shown = NULL;

  /* no name: libvirt's default backend, which for QEMU is vfio */
  if (name == NULL || strcmp(name, "vfio") == 0)
    return TRUE;
  shown = message_value(name);
  if (strcmp(name, "kvm") == 0 || strcmp(name, "xen") == 0)
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<driver name='%s'>: hostdevd assigns PCI devices with "
                "VFIO only; use <driver name='vfio'/> or leave <driver> out",
                shown);
  else
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<driver name='%s'>: name must be 'vfio'", shown);
  return FALSE;
}

static gboolean
parse_pci_source(xmlNode *hostdev_node, xmlNode *source, Hostdev *hostdev,
                 GError **error)
{
  xmlNode *address = child_element(source, "address");

  if (address == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<source> of a PCI hostdev needs <address domain='0x0000' "
                        "bus='0x..' slot='0x..' function='0x.'/>");
    return FALSE;
  }
  return parse_pci_address_attrs(address, "<source><address",
                                 &hostdev->pci_source, error) &&
         parse_pci_driver(hostdev_node, error);
}

/* model, display and ramfb: attributes of <hostdev> itself */
static gboolean
parse_mdev_attrs(xmlNode *hostdev_node, Hostdev *hostdev, GError **error)
{
  static const EnumName model_names[] = {
    { "vfio-pci", TRUE },
    { "vfio-ccw", FALSE },
    { "vfio-ap", FALSE },
  };
  const char *where = "<hostdev type='mdev'";
  int supported = FALSE;
  int display = HOSTDEV_TRISTATE_ABSENT;
  int ramfb = HOSTDEV_TRISTATE_ABSENT;
  int found;

  found = parse_enum(hostdev_node, where, "model", model_names,
                     G_N_ELEMENTS(model_names), &supported, error);
  if (found < 0)
    return FALSE;
  if (found == 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s>: missing model='...' (hostdevd supports model='vfio-pci')",
                where);
    return FALSE;
  }
  if (!supported) {
    g_autofree char *model = get_attr(hostdev_node, "model");
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s model='%s'>: model '%s' is not supported by hostdevd "
                "(supported: vfio-pci)", where, model, model);
    return FALSE;
  }

  if (parse_enum(hostdev_node, where, "display", on_off_tristate_names,
                 G_N_ELEMENTS(on_off_tristate_names), &display, error) < 0 ||
      parse_enum(hostdev_node, where, "ramfb", on_off_tristate_names,
                 G_N_ELEMENTS(on_off_tristate_names), &ramfb, error) < 0)
    return FALSE;
  if (ramfb == HOSTDEV_TRISTATE_ON) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s ramfb='on'>: a mediated device with a ramfb display cannot "
                "be hot-plugged (QEMU has it only as vfio-pci-nohotplug); "
                "give it to QEMU at start-up, or use ramfb='off'", where);
    return FALSE;
  }
  hostdev->mdev.display = display == HOSTDEV_TRISTATE_ON;
  hostdev->mdev.ramfb = ramfb;
  return TRUE;
}

static gboolean
parse_mdev_source(xmlNode *hostdev_node, xmlNode *source, Hostdev *hostdev,
                  GError **error)
{
  const char *where = "<hostdev type='mdev'";
  xmlNode *address = child_element(source, "address");
  g_autofree char *uuid = NULL;

  if (address == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s>: <source> needs <address uuid='...'/> naming the "
                "mediated device", where);
    return FALSE;
  }
  uuid = get_attr(address, "uuid");
  if (uuid == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<source><address>: missing uuid='...' (the mediated "
                        "device's UUID, e.g. c2177883-f1bb-47f0-914d-32a22e3a8804)");
    return FALSE;
  }
  if (!uuid_parse(uuid, hostdev->mdev.uuid)) {
    g_autofree char *shown = message_value(uuid);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<source><address uuid='%s'>: uuid must be 32 hex digits, "
                "e.g. c2177883-f1bb-47f0-914d-32a22e3a8804", shown);
    return FALSE;
  }
  return TRUE;
}

static void
format_usb_source(GString *out, const Hostdev *hostdev)
{
  const char *policy = startup_policy_name(hostdev->usb.startup_policy);
  const char *reset = guest_reset_name(hostdev->usb.guest_reset);

  g_string_append(out, "  <source");
  if (policy != NULL)
    g_string_append_printf(out, " startupPolicy='%s'", policy);
  if (reset != NULL)
    g_string_append_printf(out, " guestReset='%s'", reset);
  g_string_append(out, ">\n");
  if (hostdev->usb.has_vendor_product)
    g_string_append_printf(out,
                           "    <vendor id='0x%04x'/>\n"
                           "    <product id='0x%04x'/>\n",
                           hostdev->usb.vendor, hostdev->usb.product);
  if (hostdev->usb.has_address)
    g_string_append_printf(out, "    <address bus='%u' device='%u'/>\n",
                           hostdev->usb.bus, hostdev->usb.device);
  /* only when given: the live XML of plain libvirt input stays libvirt's */
  usb_selector_format_xml(out, 4, hostdev->usb.port_path, hostdev->usb.serial,
                          hostdev->usb.follow == HOSTDEV_TRISTATE_ABSENT ? NULL
                          : hostdev->usb.follow == HOSTDEV_TRISTATE_ON ? "yes" : "no");
  g_string_append(out, "  </source>\n");
}

static void
format_pci_source_address(GString *out, const char *type_attr,
                          const PciAddress *a)
{
  g_string_append_printf(out,
                         "  <source>\n"
                         "    <address%s domain='0x%04x' bus='0x%02x' "
                         "slot='0x%02x' function='0x%x'/>\n"
                         "  </source>\n",
                         type_attr, a->domain, a->bus, a->slot, a->function);
}

static void
format_pci_source(GString *out, const Hostdev *hostdev)
{
  /* libvirt's live XML shows the backend it picked, which for QEMU is vfio */
  g_string_append(out, "  <driver name='vfio'/>\n");
  format_pci_source_address(out, "", &hostdev->pci_source);
}

static void
format_mdev_source(GString *out, const Hostdev *hostdev)
{
  g_string_append_printf(out,
                         "  <source>\n"
                         "    <address uuid='%s'/>\n"
                         "  </source>\n", hostdev->mdev.uuid);
}

/* ------------------------------------------------------------------ */
/* Guest addresses                                                     */

static gboolean
parse_zpci(xmlNode *zpci, Hostdev *hostdev, GError **error)
{
  const char *where = "<address type='pci'><zpci";
  int found;

  if (hostdev->type != HOSTDEV_TYPE_PCI) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<address type='pci'><zpci>: a zPCI address is only "
                        "used with type='pci' devices (libvirt 9.0 ignores it "
                        "for mdev); leave <zpci> out");
    return FALSE;
  }
  found = parse_number(zpci, where, &rule_zpci_uid, FALSE, &hostdev->zpci.uid, error);
  if (found < 0)
    return FALSE;
  hostdev->zpci.has_uid = found > 0;
  found = parse_number(zpci, where, &rule_zpci_fid, FALSE, &hostdev->zpci.fid, error);
  if (found < 0)
    return FALSE;
  hostdev->zpci.has_fid = found > 0;
  return TRUE;
}

static gboolean
parse_guest_pci_address(xmlNode *address, Hostdev *hostdev, GError **error)
{
  const char *where = "<address type='pci'";
  xmlNode *zpci = child_element(address, "zpci");
  PciAddress addr;
  int multifunction = HOSTDEV_TRISTATE_ABSENT;

  if (!parse_pci_address_attrs(address, where, &addr, error) ||
      parse_enum(address, where, "multifunction", on_off_tristate_names,
                 G_N_ELEMENTS(on_off_tristate_names), &multifunction, error) < 0)
    return FALSE;
  if (zpci != NULL && !parse_zpci(zpci, hostdev, error))
    return FALSE;

  /* domain, bus and slot all 0 is libvirt's "empty" address: the type
   * (and perhaps the zPCI ids) is given, the place is left to us. */
  if (pci_address_is_empty(&addr))
    return TRUE;

  hostdev->pci_guest.present = TRUE;
  hostdev->pci_guest.addr = addr;
  hostdev->pci_guest.multifunction = multifunction == HOSTDEV_TRISTATE_ON;
  hostdev->pci_guest.multifunction_explicit = multifunction != HOSTDEV_TRISTATE_ABSENT;
  return TRUE;
}

static gboolean
parse_guest_usb_address(xmlNode *address, Hostdev *hostdev, GError **error)
{
  const char *where = "<address type='usb'";
  g_autofree char *port = get_attr(address, "port");
  guint bus = 0;

  if (parse_number(address, where, &rule_usb_guest_bus, FALSE, &bus, error) < 0)
    return FALSE;
  g_clear_pointer(&hostdev->usb_guest.port, g_free);
  /* an empty port is an error in libvirt too */
  if (port != NULL) {
    hostdev->usb_guest.port = parse_usb_port(where, port, error);
    if (hostdev->usb_guest.port == NULL)
      return FALSE;
  }
  hostdev->usb_guest.present = TRUE;
  hostdev->usb_guest.bus = bus;
  return TRUE;
}

static void
format_zpci(GString *out, const Hostdev *hostdev)
{
  g_string_append(out, "    <zpci");
  if (hostdev->zpci.has_uid)
    g_string_append_printf(out, " uid='0x%04x'", hostdev->zpci.uid);
  if (hostdev->zpci.has_fid)
    g_string_append_printf(out, " fid='0x%08x'", hostdev->zpci.fid);
  g_string_append(out, "/>\n");
}

static void
format_guest_pci_address(GString *out, const Hostdev *hostdev)
{
  const PciAddress *a = &hostdev->pci_guest.addr;
  gboolean has_zpci = hostdev->zpci.has_uid || hostdev->zpci.has_fid;

  if (!hostdev->pci_guest.present && !has_zpci)
    return;
  g_string_append(out, "  <address type='pci'");
  if (hostdev->pci_guest.present) {
    g_string_append_printf(out, " domain='0x%04x' bus='0x%02x' slot='0x%02x' "
                           "function='0x%x'",
                           a->domain, a->bus, a->slot, a->function);
    if (hostdev->pci_guest.multifunction || hostdev->pci_guest.multifunction_explicit)
      g_string_append_printf(out, " multifunction='%s'",
                             hostdev->pci_guest.multifunction ? "on" : "off");
  }
  if (!has_zpci) {
    g_string_append(out, "/>\n");
    return;
  }
  g_string_append(out, ">\n");
  format_zpci(out, hostdev);
  g_string_append(out, "  </address>\n");
}

static void
format_guest_usb_address(GString *out, const Hostdev *hostdev)
{
  if (!hostdev->usb_guest.present)
    return;
  g_string_append_printf(out, "  <address type='usb' bus='%u'",
                         hostdev->usb_guest.bus);
  if (hostdev->usb_guest.port != NULL)
    g_string_append_printf(out, " port='%s'", hostdev->usb_guest.port);
  g_string_append(out, "/>\n");
}

/* ------------------------------------------------------------------ */
/* The table of hostdev types                                          */

typedef gboolean (*SourceParseFunc)(xmlNode *hostdev_node, xmlNode *source,
                                    Hostdev *hostdev, GError **error);
typedef gboolean (*AddressParseFunc)(xmlNode *address, Hostdev *hostdev,
                                     GError **error);
typedef gboolean (*AttrsParseFunc)(xmlNode *hostdev_node, Hostdev *hostdev,
                                   GError **error);
typedef void (*FormatFunc)(GString *out, const Hostdev *hostdev);

typedef struct {
  const char *name;               /* type='...' */
  gboolean supported;             /* FALSE: libvirt knows it, hostdevd not */
  HostdevType type;
  gboolean has_startup_policy;
  gboolean bootable;              /* <boot order/> allowed */
  gboolean is_pci_device;         /* <rom> and <acpi> allowed */
  AttrsParseFunc parse_attrs;     /* type-specific attributes of <hostdev> */
  SourceParseFunc parse_source;
  FormatFunc format_source;
  const char *guest_address_type; /* <address type='...'> it accepts */
  AddressParseFunc parse_guest_address;
  FormatFunc format_guest_address;
} HostdevTypeInfo;

static const HostdevTypeInfo hostdev_types[] = {
  { "usb", TRUE, HOSTDEV_TYPE_USB, TRUE, TRUE, FALSE, NULL,
    parse_usb_source, format_usb_source,
    "usb", parse_guest_usb_address, format_guest_usb_address },
  { "pci", TRUE, HOSTDEV_TYPE_PCI, FALSE, TRUE, TRUE, NULL,
    parse_pci_source, format_pci_source,
    "pci", parse_guest_pci_address, format_guest_pci_address },
  /* libvirt refuses <boot> for mdev model vfio-pci */
  { "mdev", TRUE, HOSTDEV_TYPE_MDEV, FALSE, FALSE, TRUE, parse_mdev_attrs,
    parse_mdev_source, format_mdev_source,
    "pci", parse_guest_pci_address, format_guest_pci_address },
  { "scsi", FALSE, 0, FALSE, FALSE, FALSE, NULL, NULL, NULL, NULL, NULL, NULL },
  { "scsi_host", FALSE, 0, FALSE, FALSE, FALSE, NULL, NULL, NULL, NULL, NULL, NULL },
};

static const HostdevTypeInfo *
hostdev_type_info(HostdevType type)
{
  for (gsize i = 0; i < G_N_ELEMENTS(hostdev_types); i++)
    if (hostdev_types[i].supported && hostdev_types[i].type == type)
      return &hostdev_types[i];
  return NULL;
}

/* Return: (transfer full): "usb, pci, mdev" or, with @all, every known type. */
static char *
hostdev_type_list(gboolean all)
{
  GString *list = g_string_new(NULL);

  for (gsize i = 0; i < G_N_ELEMENTS(hostdev_types); i++) {
    if (!all && !hostdev_types[i].supported)
      continue;
    if (list->len > 0)
      g_string_append(list, ", ");
    g_string_append(list, hostdev_types[i].name);
  }
  return g_string_free(list, FALSE);
}

/* Known to libvirt, so the message can say which one is wrong. */
static const char *const guest_address_types[] = {
  "pci", "drive", "virtio-serial", "ccid", "usb", "spapr-vio", "virtio-s390",
  "ccw", "virtio-mmio", "isa", "dimm", "unassigned", NULL,
};

/* ------------------------------------------------------------------ */
/* What every device has: alias, boot, rom, acpi, guest address        */

typedef enum {
  PARSE_FROM_CLIENT,  /* attach-device: libvirt's "inactive" parse */
  PARSE_LIVE,         /* our own live XML: assigned aliases are kept */
} ParseMode;

#define ALIAS_CHARS \
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

gboolean
hostdev_alias_is_valid(const char *alias)
{
  gsize length = alias ? strlen(alias) : 0;
  return length > 0 && length <= HOSTDEV_ALIAS_MAX && g_ascii_isalpha(alias[0]) &&
         strspn(alias, ALIAS_CHARS) == length;
}

static gboolean
parse_alias(xmlNode *hostdev_node, ParseMode mode, Hostdev *hostdev,
            GError **error)
{
  xmlNode *node = child_element(hostdev_node, "alias");
  g_autofree char *name = node ? get_attr(node, "name") : NULL;
  gboolean chars_ok;

  /* libvirt reads an empty name as no alias */
  if (name == NULL || *name == '\0')
    return TRUE;

  chars_ok = strspn(name, ALIAS_CHARS) == strlen(name);
  switch (mode) {
  case PARSE_FROM_CLIENT:
    /* libvirt keeps only user aliases here and drops others silently */
    if (!g_str_has_prefix(name, "ua-") || !chars_ok) {
      g_autofree char *shown = message_value(name);
      g_info("ignoring <alias name='%s'>: only user aliases ('ua-' followed "
             "by letters, digits, '_' or '-') can be chosen, as in libvirt",
             shown);
      return TRUE;
    }
    break;
  case PARSE_LIVE:
    if (!hostdev_alias_is_valid(name)) {
      g_autofree char *shown = message_value(name);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<alias name='%s'>: an alias must start with a letter and "
                  "contain only letters, digits, '_' and '-' (at most %d)", shown,
                  HOSTDEV_ALIAS_MAX);
      return FALSE;
    }
    break;
  }
  hostdev->alias = g_steal_pointer(&name);
  return TRUE;
}

/* @what: the device as messages name it, e.g. "a usb hostdev" */
static gboolean
parse_guest_address(xmlNode *hostdev_node, const HostdevTypeInfo *info,
                    const char *what, Hostdev *hostdev, GError **error)
{
  xmlNode *address = child_element(hostdev_node, "address");
  g_autofree char *type = NULL;
  g_autofree char *shown = NULL;

  if (address == NULL)
    return TRUE;

  type = get_attr(address, "type");
  if (type == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<address>: missing type='...'; %s takes "
                "<address type='%s' .../>", what, info->guest_address_type);
    return FALSE;
  }
  if (strcmp(type, info->guest_address_type) == 0)
    return info->parse_guest_address(address, hostdev, error);

  shown = message_value(type);
  if (g_strv_contains(guest_address_types, type))
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<address type='%s'>: %s takes only "
                "<address type='%s' .../> in the guest",
                shown, what, info->guest_address_type);
  else
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<address type='%s'>: unknown address type; %s "
                "takes <address type='%s' .../>",
                shown, what, info->guest_address_type);
  return FALSE;
}

static gboolean
parse_rom(xmlNode *rom, const HostdevTypeInfo *info, const char *what,
          Hostdev *hostdev, GError **error)
{
  int bar = HOSTDEV_TRISTATE_ABSENT;
  int enabled = HOSTDEV_TRISTATE_ABSENT;
  g_autofree char *file = NULL;

  if (parse_enum(rom, "<rom", "bar", on_off_tristate_names,
                 G_N_ELEMENTS(on_off_tristate_names), &bar, error) < 0 ||
      parse_enum(rom, "<rom", "enabled", yes_no_tristate_names,
                 G_N_ELEMENTS(yes_no_tristate_names), &enabled, error) < 0)
    return FALSE;
  file = get_attr(rom, "file");

  if (bar == HOSTDEV_TRISTATE_ABSENT && enabled == HOSTDEV_TRISTATE_ABSENT &&
      file == NULL)
    return TRUE;   /* a bare <rom/> tunes nothing, libvirt accepts it anywhere */
  if (!info->is_pci_device) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<rom>: ROM tuning is only supported for PCI devices, "
                "not for %s", what);
    return FALSE;
  }
  /* libvirt's schema (absFilePath): '/', then at least one character, no
   * line breaks; libvirt's parser does not check, its live XML would not
   * validate */
  if (file != NULL &&
      (file[0] != '/' || file[1] == '\0' || strpbrk(file, "\r\n") != NULL)) {
    g_autofree char *shown = message_value(file);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<rom file='%s'>: file must be an absolute path to the ROM "
                "image, e.g. /usr/share/qemu/nic.rom (to give the device no "
                "ROM, use enabled='no')", shown);
    return FALSE;
  }
  if (enabled == HOSTDEV_TRISTATE_OFF &&
      (bar != HOSTDEV_TRISTATE_ABSENT || file != NULL)) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<rom enabled='no'>: a disabled ROM takes neither bar "
                        "nor file (as in libvirt); drop them or enabled='no'");
    return FALSE;
  }
  hostdev->rom.bar = bar;
  hostdev->rom.enabled = enabled;
  hostdev->rom.file = g_steal_pointer(&file);
  return TRUE;
}

static gboolean
parse_device_info(xmlNode *node, const HostdevTypeInfo *info, const char *what,
                  ParseMode mode, Hostdev *hostdev, GError **error)
{
  xmlNode *boot = child_element(node, "boot");
  xmlNode *rom = child_element(node, "rom");
  xmlNode *acpi = child_element(node, "acpi");

  if (!parse_alias(node, mode, hostdev, error))
    return FALSE;

  if (boot != NULL &&
      parse_number(boot, "<boot", &rule_boot_order, TRUE,
                   &hostdev->boot_order, error) < 0)
    return FALSE;
  if (hostdev->boot_order > 0 && !info->bootable) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<boot order='%u'>: booting from %s is not supported "
                "(libvirt refuses it too); leave <boot> out",
                hostdev->boot_order, what);
    return FALSE;
  }

  if (rom != NULL && !parse_rom(rom, info, what, hostdev, error))
    return FALSE;

  if (acpi != NULL) {
    if (parse_number(acpi, "<acpi", &rule_acpi_index, FALSE,
                     &hostdev->acpi_index, error) < 0)
      return FALSE;
    if (hostdev->acpi_index > 0 && !info->is_pci_device) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<acpi index='%u'>: an ACPI index is only supported for PCI "
                  "devices, not for %s", hostdev->acpi_index, what);
      return FALSE;
    }
  }

  return parse_guest_address(node, info, what, hostdev, error);
}

/* Order and layout of libvirt's virDomainDeviceInfoFormat. */
static void
format_device_info(GString *out, const HostdevTypeInfo *info,
                   const Hostdev *hostdev)
{
  if (hostdev->boot_order > 0)
    g_string_append_printf(out, "  <boot order='%u'/>\n", hostdev->boot_order);
  if (hostdev->alias != NULL) {
    g_autofree char *alias = g_markup_escape_text(hostdev->alias, -1);
    g_string_append_printf(out, "  <alias name='%s'/>\n", alias);
  }
  if (hostdev->rom.enabled != HOSTDEV_TRISTATE_ABSENT ||
      hostdev->rom.bar != HOSTDEV_TRISTATE_ABSENT || hostdev->rom.file != NULL) {
    g_string_append(out, "  <rom");
    if (hostdev->rom.enabled != HOSTDEV_TRISTATE_ABSENT)
      g_string_append_printf(out, " enabled='%s'",
                             hostdev->rom.enabled == HOSTDEV_TRISTATE_ON ? "yes" : "no");
    if (hostdev->rom.bar != HOSTDEV_TRISTATE_ABSENT)
      g_string_append_printf(out, " bar='%s'",
                             hostdev->rom.bar == HOSTDEV_TRISTATE_ON ? "on" : "off");
    if (hostdev->rom.file != NULL) {
      g_autofree char *file = g_markup_escape_text(hostdev->rom.file, -1);
      g_string_append_printf(out, " file='%s'", file);
    }
    g_string_append(out, "/>\n");
  }
  if (hostdev->acpi_index > 0)
    g_string_append_printf(out, "  <acpi index='%u'/>\n", hostdev->acpi_index);
  info->format_guest_address(out, hostdev);
}

/* ------------------------------------------------------------------ */
/* <hostdev>                                                           */

static const HostdevTypeInfo *
parse_hostdev_type(xmlNode *root, GError **error)
{
  g_autofree char *type = get_attr(root, "type");
  g_autofree char *supported = hostdev_type_list(FALSE);
  g_autofree char *known = NULL;
  g_autofree char *shown = NULL;

  if (type == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<hostdev>: missing type='...' (supported: %s)", supported);
    return NULL;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(hostdev_types); i++) {
    if (strcmp(type, hostdev_types[i].name) != 0)
      continue;
    if (hostdev_types[i].supported)
      return &hostdev_types[i];
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<hostdev type='%s'>: type '%s' is not supported by hostdevd "
                "(supported: %s)", type, type, supported);
    return NULL;
  }
  known = hostdev_type_list(TRUE);
  shown = message_value(type);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "<hostdev type='%s'>: unknown hostdev type (libvirt knows %s; "
              "hostdevd supports %s)", shown, known, supported);
  return NULL;
}

static Hostdev *
parse_hostdev(xmlNode *root, ParseMode mode, GError **error)
{
  static const EnumName mode_names[] = {
    { "subsystem", TRUE },
    { "capabilities", FALSE },
  };
  const HostdevTypeInfo *info;
  g_autoptr(Hostdev) hostdev = NULL;
  xmlNode *source;
  g_autofree char *policy = NULL;
  int subsystem = TRUE;
  int managed = FALSE;
  g_autofree char *where = NULL;
  g_autofree char *what = NULL;

  if (parse_enum(root, "<hostdev", "mode", mode_names,
                 G_N_ELEMENTS(mode_names), &subsystem, error) < 0)
    return NULL;
  if (!subsystem) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<hostdev mode='capabilities'>: mode 'capabilities' "
                        "(container devices) is not supported by hostdevd; "
                        "use mode='subsystem'");
    return NULL;
  }

  info = parse_hostdev_type(root, error);
  if (info == NULL)
    return NULL;
  hostdev = hostdev_new(info->type);
  where = g_strdup_printf("<hostdev type='%s'", info->name);
  what = g_strdup_printf("%s %s hostdev",
                         info->type == HOSTDEV_TYPE_MDEV ? "an" : "a", info->name);

  if (parse_enum(root, where, "managed", yes_no_names,
                 G_N_ELEMENTS(yes_no_names), &managed, error) < 0)
    return NULL;
  hostdev->managed = managed;
  if (info->parse_attrs != NULL && !info->parse_attrs(root, hostdev, error))
    return NULL;

  source = child_element(root, "source");
  if (source == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s>: missing <source> naming the host device", where);
    return NULL;
  }

  policy = get_attr(source, "startupPolicy");
  if (policy != NULL) {
    int value = HOSTDEV_STARTUP_DEFAULT;

    if (!info->has_startup_policy) {
      g_autofree char *shown = message_value(policy);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<source startupPolicy='%s'>: startupPolicy is only allowed "
                  "for USB hostdevs, not type '%s'", shown, info->name);
      return NULL;
    }
    if (parse_enum(source, "<source", "startupPolicy", startup_policy_names,
                   G_N_ELEMENTS(startup_policy_names), &value, error) < 0)
      return NULL;
    hostdev->usb.startup_policy = value;
  }

  if (!info->parse_source(root, source, hostdev, error) ||
      !parse_device_info(root, info, what, mode, hostdev, error))
    return NULL;

  return g_steal_pointer(&hostdev);
}

/* ------------------------------------------------------------------ */
/* <interface type='hostdev'>                                          */

static gboolean
parse_interface_source(xmlNode *source, Hostdev *hostdev, GError **error)
{
  const char *where = "<interface type='hostdev'><source><address";
  xmlNode *address = child_element(source, "address");
  g_autofree char *type = address ? get_attr(address, "type") : NULL;

  if (address == NULL || type == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<interface type='hostdev'>: <source> needs "
                        "<address type='pci' domain='0x0000' bus='0x..' "
                        "slot='0x..' function='0x.'/> naming the host network "
                        "function");
    return FALSE;
  }
  if (strcmp(type, "pci") != 0) {
    g_autofree char *shown = message_value(type);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s type='%s'>: hostdevd hot-plugs only PCI network "
                "functions (type='pci')%s", where, shown,
                strcmp(type, "usb") == 0 ? "; USB network devices are not "
                "supported by hostdevd" : "");
    return FALSE;
  }
  return parse_pci_address_attrs(address, "<source><address type='pci'",
                                 &hostdev->pci_source, error);
}

static gboolean
parse_interface_mac(xmlNode *mac, Hostdev *hostdev, GError **error)
{
  g_autofree char *text = get_attr(mac, "address");
  g_autofree char *shown = NULL;

  if (text == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<mac>: missing address='...' (e.g. 52:54:00:6d:90:02)");
    return FALSE;
  }
  shown = message_value(text);
  if (!mac_parse(text, hostdev->net.mac)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<mac address='%s'>: address must be six hex octets "
                "separated by ':', e.g. 52:54:00:6d:90:02", shown);
    return FALSE;
  }
  if (hostdev->net.mac[0] & 1) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<mac address='%s'>: address must be unicast (the first "
                "octet even), not multicast", shown);
    return FALSE;
  }
  hostdev->net.has_mac = TRUE;
  return TRUE;
}

/* A VF takes one VLAN tag: no trunk, no native mode (libvirt refuses them
 * for SR-IOV too, when it programs the VF). */
static gboolean
parse_interface_vlan(xmlNode *vlan, Hostdev *hostdev, GError **error)
{
  g_autofree char *trunk = get_attr(vlan, "trunk");
  xmlNode *tag = NULL;
  g_autofree char *native = NULL;
  guint tags = 0;

  for (xmlNode *node = vlan->children; node != NULL; node = node->next) {
    if (node->type != XML_ELEMENT_NODE || !xmlStrEqual(node->name, BAD_CAST "tag"))
      continue;
    if (tag == NULL)
      tag = node;
    tags++;
  }
  if (tag == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<vlan>: needs one <tag id='0..4095'/>");
    return FALSE;
  }
  if (tags > 1 || (trunk != NULL && strcmp(trunk, "no") != 0)) {
    g_autofree char *shown = trunk ? message_value(trunk) : NULL;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<vlan%s%s%s>: VLAN trunking (%u tags) is not supported by "
                "SR-IOV network functions; give one <tag id='0..4095'/>",
                shown ? " trunk='" : "", shown ? shown : "", shown ? "'" : "",
                tags);
    return FALSE;
  }
  native = get_attr(tag, "nativeMode");
  if (native != NULL) {
    g_autofree char *shown = message_value(native);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<vlan><tag nativeMode='%s'>: a native VLAN is not supported "
                "by SR-IOV network functions; leave nativeMode out", shown);
    return FALSE;
  }
  if (parse_number(tag, "<vlan><tag", &rule_vlan_tag, TRUE,
                   &hostdev->net.vlan_tag, error) < 0)
    return FALSE;
  hostdev->net.has_vlan = TRUE;
  return TRUE;
}

static Hostdev *
parse_interface(xmlNode *root, ParseMode mode, GError **error)
{
  const char *what = "an <interface type='hostdev'>";
  g_autofree char *type = get_attr(root, "type");
  g_autoptr(Hostdev) hostdev = NULL;
  xmlNode *source;
  xmlNode *mac;
  xmlNode *vlan;
  int managed = FALSE;

  if (type == NULL || strcmp(type, "hostdev") != 0) {
    g_autofree char *shown = type ? message_value(type) : NULL;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "<interface%s%s%s>: hostdevd hot-plugs only <interface "
                "type='hostdev'> (a host PCI network function); other "
                "interface types are not supported by hostdevd",
                shown ? " type='" : "", shown ? shown : "", shown ? "'" : "");
    return NULL;
  }
  hostdev = hostdev_new(HOSTDEV_TYPE_PCI);
  hostdev->is_interface = TRUE;

  if (parse_enum(root, "<interface type='hostdev'", "managed", yes_no_names,
                 G_N_ELEMENTS(yes_no_names), &managed, error) < 0)
    return NULL;
  hostdev->managed = managed;

  source = child_element(root, "source");
  if (source == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<interface type='hostdev'>: missing <source> naming "
                        "the host network function");
    return NULL;
  }
  if (!parse_interface_source(source, hostdev, error) ||
      !parse_pci_driver(root, error))
    return NULL;

  mac = child_element(root, "mac");
  if (mac != NULL && !parse_interface_mac(mac, hostdev, error))
    return NULL;
  vlan = child_element(root, "vlan");
  if (vlan != NULL && !parse_interface_vlan(vlan, hostdev, error))
    return NULL;
  if (child_element(root, "virtualport") != NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "<virtualport>: 802.1Qbh/802.1Qbg port profiles are "
                        "not supported by hostdevd; leave <virtualport> out");
    return NULL;
  }

  if (!parse_device_info(root, hostdev_type_info(HOSTDEV_TYPE_PCI), what,
                         mode, hostdev, error))
    return NULL;
  return g_steal_pointer(&hostdev);
}

/* virDomainNetDefFormat's layout for type='hostdev' */
static void
format_interface(GString *out, const Hostdev *hostdev)
{
  g_string_append_printf(out, "<interface type='hostdev'%s>\n",
                         hostdev->managed ? " managed='yes'" : "");
  if (hostdev->net.has_mac) {
    g_autofree char *mac = hostdev_format_mac(hostdev);
    g_string_append_printf(out, "  <mac address='%s'/>\n", mac);
  }
  g_string_append(out, "  <driver name='vfio'/>\n");
  format_pci_source_address(out, " type='pci'", &hostdev->pci_source);
  if (hostdev->net.has_vlan)
    g_string_append_printf(out,
                           "  <vlan>\n"
                           "    <tag id='%u'/>\n"
                           "  </vlan>\n", hostdev->net.vlan_tag);
  format_device_info(out, hostdev_type_info(HOSTDEV_TYPE_PCI), hostdev);
  g_string_append(out, "</interface>\n");
}

/* ------------------------------------------------------------------ */
/* Documents                                                           */

static Hostdev *
parse_device(xmlNode *element, ParseMode mode, GError **error)
{
  gboolean is_hostdev = xmlStrEqual(element->name, BAD_CAST "hostdev");
  g_autofree char *type = is_hostdev ? get_attr(element, "type") : NULL;
  xmlNode *source = is_hostdev ? child_element(element, "source") : NULL;
  xmlNode *selector = NULL;

  if (source != NULL && g_strcmp0(type, "usb") == 0)
    selector = usb_selector_node(source);
  if (!check_extensions(element, selector, error))
    return NULL;

  if (is_hostdev)
    return parse_hostdev(element, mode, error);
  if (xmlStrEqual(element->name, BAD_CAST "interface"))
    return parse_interface(element, mode, error);

  g_autofree char *shown = message_value((const char *)element->name);
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
              "expected <hostdev> or <interface type='hostdev'>, got <%s>",
              shown);
  return NULL;
}

/* Return: (transfer full): the document's root element's document, or NULL with @error. */
static xmlDoc *
read_rooted_document(const char *xml, gsize length, xmlNode **root, GError **error)
{
  g_autoptr(xmlDoc) doc = read_document(xml, length, error);

  if (doc == NULL)
    return NULL;
  *root = xmlDocGetRootElement(doc);
  if (*root == NULL) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
                        "the XML document has no element; expected <hostdev>");
    return NULL;
  }
  return g_steal_pointer(&doc);
}

static Hostdev *
parse_document(const char *xml, gsize length, ParseMode mode, GError **error)
{
  xmlNode *root = NULL;
  g_autoptr(xmlDoc) doc = read_rooted_document(xml, length, &root, error);

  return doc ? parse_device(root, mode, error) : NULL;
}

GPtrArray *
hostdev_parse_request(const char *xml, gsize length, gboolean *several, GError **error)
{
  xmlNode *root = NULL;
  g_autoptr(xmlDoc) doc = read_rooted_document(xml, length, &root, error);
  g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func((GDestroyNotify)hostdev_free);

  if (doc == NULL)
    return NULL;
  *several = xmlStrEqual(root->name, BAD_CAST "devices");
  if (!*several) {
    Hostdev *hostdev = parse_device(root, PARSE_FROM_CLIENT, error);
    if (hostdev == NULL)
      return NULL;
    g_ptr_array_add(devices, hostdev);
    return g_steal_pointer(&devices);
  }
  for (xmlNode *node = root->children; node != NULL; node = node->next) {
    g_autoptr(GError) local = NULL;
    if (node->type != XML_ELEMENT_NODE)
      continue;
    if (devices->len == HOSTDEV_REQUEST_MAX_DEVICES) {
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                  "<devices> holds more than %d devices (HOSTDEV_REQUEST_MAX_DEVICES); "
                  "split the request", HOSTDEV_REQUEST_MAX_DEVICES);
      return NULL;
    }
    Hostdev *hostdev = parse_device(node, PARSE_FROM_CLIENT, &local);
    if (hostdev == NULL) {
      g_set_error(error, HOSTDEVD_ERROR, local->code, "device %u of <devices>: %s",
                  devices->len + 1, local->message);
      return NULL;
    }
    g_ptr_array_add(devices, hostdev);
  }
  if (devices->len == 0) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_XML,
                        "<devices> holds no device; put one or more <hostdev> or "
                        "<interface type='hostdev'> elements in it");
    return NULL;
  }
  return g_steal_pointer(&devices);
}

Hostdev *
hostdev_parse_xml(const char *xml, gsize length, GError **error)
{
  return parse_document(xml, length, PARSE_FROM_CLIENT, error);
}

Hostdev *
hostdev_parse_live_xml(const char *xml, gsize length, GError **error)
{
  return parse_document(xml, length, PARSE_LIVE, error);
}

/* Order and layout follow libvirt's virDomainHostdevDefFormat: source
 * (PCI: <driver> first), then <boot>, <alias>, <rom>, <acpi>, guest
 * <address>. */
char *
hostdev_format_xml(const Hostdev *hostdev)
{
  const HostdevTypeInfo *info = hostdev_type_info(hostdev->type);
  GString *out;

  g_return_val_if_fail(info != NULL, NULL);

  out = g_string_new(NULL);
  if (hostdev->is_interface) {
    format_interface(out, hostdev);
    return g_string_free(out, FALSE);
  }
  g_string_append_printf(out, "<hostdev mode='subsystem' type='%s' managed='%s'",
                         info->name, hostdev->managed ? "yes" : "no");
  if (hostdev->type == HOSTDEV_TYPE_MDEV) {
    /* libvirt shows the display it defaulted to */
    g_string_append_printf(out, " model='vfio-pci' display='%s'",
                           hostdev->mdev.display ? "on" : "off");
    if (hostdev->mdev.ramfb == HOSTDEV_TRISTATE_OFF)
      g_string_append(out, " ramfb='off'");
  }
  g_string_append(out, ">\n");
  info->format_source(out, hostdev);
  format_device_info(out, info, hostdev);
  g_string_append(out, "</hostdev>\n");
  return g_string_free(out, FALSE);
}

/* ------------------------------------------------------------------ */
/* Matching and describing                                             */

static gboolean
pci_address_equal(const PciAddress *a, const PciAddress *b)
{
  return a->domain == b->domain && a->bus == b->bus &&
         a->slot == b->slot && a->function == b->function;
}

/* A port path or serial @a asks for must be @b's; absent asks nothing. */
static gboolean
selector_matches(const char *a, const char *b)
{
  return a == NULL || g_strcmp0(a, b) == 0;
}

gboolean
hostdev_source_matches(const Hostdev *a, const Hostdev *b)
{
  if (a->type != b->type)
    return FALSE;

  switch (a->type) {
  case HOSTDEV_TYPE_PCI:
    /* like virsh detach-interface: a MAC, when given, must match too */
    if (a->is_interface && a->net.has_mac &&
        (!b->net.has_mac || memcmp(a->net.mac, b->net.mac, sizeof(a->net.mac)) != 0))
      return FALSE;
    return pci_address_equal(&a->pci_source, &b->pci_source);
  case HOSTDEV_TYPE_USB:
    if (!selector_matches(a->usb.port_path, b->usb.port_path) ||
        !selector_matches(a->usb.serial, b->usb.serial))
      return FALSE;
    if (a->usb.has_address)
      return b->usb.has_address &&
             a->usb.bus == b->usb.bus && a->usb.device == b->usb.device;
    if (a->usb.has_vendor_product)
      return b->usb.has_vendor_product &&
             a->usb.vendor == b->usb.vendor && a->usb.product == b->usb.product;
    return a->usb.port_path != NULL || a->usb.serial != NULL;
  case HOSTDEV_TYPE_MDEV:
    return strcmp(a->mdev.uuid, b->mdev.uuid) == 0;
  }
  return FALSE;
}

static char *
describe_usb_source(const Hostdev *hostdev)
{
  GString *text = g_string_new("USB device");

  if (hostdev->usb.has_vendor_product)
    g_string_append_printf(text, " %04x:%04x",
                           hostdev->usb.vendor, hostdev->usb.product);
  if (hostdev->usb.has_address)
    g_string_append_printf(text, " at bus %u device %u",
                           hostdev->usb.bus, hostdev->usb.device);
  if (hostdev->usb.port_path != NULL)
    g_string_append_printf(text, " at port %s", hostdev->usb.port_path);
  if (hostdev->usb.serial != NULL) {
    g_autofree char *serial = usb_serial_quote(hostdev->usb.serial);
    g_string_append_printf(text, " with serial %s", serial);
  }
  if (!hostdev->usb.has_vendor_product && !hostdev->usb.has_address &&
      hostdev->usb.port_path == NULL && hostdev->usb.serial == NULL)
    g_string_append(text, " (no source)");
  return g_string_free(text, FALSE);
}

char *
hostdev_describe_source(const Hostdev *hostdev)
{
  switch (hostdev->type) {
  case HOSTDEV_TYPE_PCI: {
    g_autofree char *bdf = pci_address_format(&hostdev->pci_source);
    return g_strdup_printf("PCI %sdevice %s",
                           hostdev->is_interface ? "network " : "", bdf);
  }
  case HOSTDEV_TYPE_USB:
    return describe_usb_source(hostdev);
  case HOSTDEV_TYPE_MDEV:
    return g_strdup_printf("mediated device %s", hostdev->mdev.uuid);
  }
  return g_strdup("host device");
}

const char *
hostdev_type_name(HostdevType type)
{
  const HostdevTypeInfo *info = hostdev_type_info(type);

  return info ? info->name : "unknown";
}

char *
hostdev_format_mac(const Hostdev *hostdev)
{
  const guint8 *m = hostdev->net.mac;

  if (!hostdev->net.has_mac)
    return NULL;
  return g_strdup_printf("%02x:%02x:%02x:%02x:%02x:%02x",
                         m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Write the low @digits hex digits of @value at @out.  Return: the end of them. */
static char *
put_hex(char *out, guint value, guint digits)
{
  static const char hex[] = "0123456789abcdef";
  for (guint i = digits; i-- > 0;)
    *out++ = hex[(value >> (4 * i)) & 0xf];
  return out;
}

char *
pci_address_format(const PciAddress *addr)
{
  /* "%04x:%02x:%02x.%x" without printf: an attach formats addresses dozens of times */
  if (addr->domain > 0xffff || addr->bus > 0xff || addr->slot > 0xff || addr->function > 0xf)
    return g_strdup_printf("%04x:%02x:%02x.%x",
                           addr->domain, addr->bus, addr->slot, addr->function);
  char *text = g_malloc(sizeof "dddd:bb:ss.f");
  char *out = put_hex(text, addr->domain, 4);
  *out++ = ':';
  out = put_hex(out, addr->bus, 2);
  *out++ = ':';
  out = put_hex(out, addr->slot, 2);
  *out++ = '.';
  out = put_hex(out, addr->function, 1);
  *out = '\0';
  return text;
}

/* Return: whether @text is 1..@max_digits hex digits; the value in @out. */
static gboolean
parse_hex_field(const char *text, gsize max_digits, guint *out)
{
  gsize len = strlen(text);
  guint value = 0;

  if (len == 0 || len > max_digits)
    return FALSE;
  for (gsize i = 0; i < len; i++) {
    if (!g_ascii_isxdigit(text[i]))
      return FALSE;
    value = value * 16 + (guint)g_ascii_xdigit_value(text[i]);
  }
  *out = value;
  return TRUE;
}

gboolean
pci_address_parse(const char *text, PciAddress *addr, GError **error)
{
  g_autofree char *shown = message_value(text ? text : "");
  g_auto(GStrv) fields = NULL;
  g_auto(GStrv) slot_function = NULL;
  PciAddress parsed = { 0 };
  const char *bus_text;
  const char *slot_text;
  guint n;

  if (text == NULL)
    goto bad;
  fields = g_strsplit(text, ":", 0);
  n = g_strv_length(fields);
  if (n == 3) {
    if (!parse_hex_field(fields[0], 4, &parsed.domain))
      goto bad;
    bus_text = fields[1];
    slot_text = fields[2];
  } else if (n == 2) {
    bus_text = fields[0];
    slot_text = fields[1];
  } else {
    goto bad;
  }

  slot_function = g_strsplit(slot_text, ".", 0);
  if (g_strv_length(slot_function) != 2 ||
      !parse_hex_field(bus_text, 2, &parsed.bus) ||
      !parse_hex_field(slot_function[0], 2, &parsed.slot) ||
      !parse_hex_field(slot_function[1], 1, &parsed.function))
    goto bad;

  if (parsed.slot > 0x1f) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "PCI address '%s': slot must be 0x00..0x1f", shown);
    return FALSE;
  }
  if (parsed.function > 7) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "PCI address '%s': function must be 0..7", shown);
    return FALSE;
  }
  *addr = parsed;
  return TRUE;

bad:
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "'%s' is not a PCI address; expected DDDD:BB:SS.F in hex, "
              "e.g. 0000:01:00.0", shown);
  return FALSE;
}
