/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdev.h - the typed model of one libvirt <hostdev>, parsed from and
 * formatted back to libvirt's domain XML.
 *
 * Parsing validates everything a later step builds a path or a QEMU
 * property from, so no other code re-checks ranges.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  HOSTDEV_TYPE_USB,
  HOSTDEV_TYPE_PCI,
} HostdevType;

typedef enum {
  HOSTDEV_STARTUP_DEFAULT,   /* attribute absent */
  HOSTDEV_STARTUP_MANDATORY,
  HOSTDEV_STARTUP_REQUISITE,
  HOSTDEV_STARTUP_OPTIONAL,
} HostdevStartupPolicy;

typedef struct {
  guint domain;   /* 0..0xffff */
  guint bus;      /* 0..0xff */
  guint slot;     /* 0..0x1f */
  guint function; /* 0..7 */
} PciAddress;

typedef struct {
  HostdevType type;
  gboolean managed;          /* managed='yes' */
  char *alias;               /* <alias name/>: user "ua-…" or assigned "hostdevN"; NULL if none */
  guint boot_order;          /* <boot order/>, 1..0x7fffffff; 0 when absent */

  /* type='usb' source: vendor/product and/or bus/device */
  struct {
    gboolean has_vendor_product;
    guint vendor;            /* 0..0xffff */
    guint product;           /* 0..0xffff */
    gboolean has_address;
    guint bus;               /* <address bus/>, 1..0xffff (0 means unset to libvirt) */
    guint device;            /* <address device/>, 1..0xffff */
    HostdevStartupPolicy startup_policy;
  } usb;

  /* type='usb' guest address <address type='usb' bus port/> */
  struct {
    gboolean present;
    guint bus;               /* controller index, 0..0xffff */
    char *port;              /* "1" or "1.2.3" (hub path, at most 4 levels,
                              * each 1..255, canonical decimal); NULL if absent */
  } usb_guest;

  /* type='pci' source and guest address */
  PciAddress pci_source;
  struct {
    gboolean present;
    PciAddress addr;
    gboolean multifunction;
  } pci_guest;
} Hostdev;

/* hostdev_new() - an empty model of @type. */
Hostdev *hostdev_new(HostdevType type);
void hostdev_free(Hostdev *hostdev);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Hostdev, hostdev_free)

/* Return: a deep copy of @hostdev. */
Hostdev *hostdev_copy(const Hostdev *hostdev);

/* Maximum accepted size of one XML document, in bytes. */
#define HOSTDEV_XML_MAX_SIZE (64 * 1024)

/* Maximum element nesting of one XML document (<hostdev> is level 1). */
#define HOSTDEV_XML_MAX_DEPTH 32

/**
 * hostdev_parse_xml() - parse one <hostdev> element a client sent
 * @xml: the document; NUL termination not required
 * @length: its size in bytes
 * Safe against hostile input: no network, no DTD, no entity expansion,
 * bounded size and depth.  Parses the way `virsh attach-device` does
 * (libvirt's "inactive" parse): an <alias> is kept only when it is a user
 * alias ("ua-" followed by [A-Za-z0-9_-]); any other alias is ignored, as
 * libvirt ignores it.
 * Return: the model, or NULL with a HOSTDEVD_ERROR (InvalidXML: not
 * well-formed, DTD/entities, too big or deep, not a <hostdev>;
 * InvalidArgument: wrong values) that names the element, attribute, bad
 * value and valid range.
 */
Hostdev *hostdev_parse_xml(const char *xml, gsize length, GError **error);

/**
 * hostdev_parse_live_xml() - parse live XML that hostdevd itself produced
 * Like hostdev_parse_xml(), but an assigned alias ("hostdev0") is kept, as
 * libvirt keeps it when parsing live XML (journal, detach-device).  An
 * alias must still consist of [A-Za-z0-9_-] and start with a letter
 * (it becomes a QEMU id), otherwise InvalidArgument.
 * Return: the model, or NULL with a HOSTDEVD_ERROR.
 */
Hostdev *hostdev_parse_live_xml(const char *xml, gsize length, GError **error);

/* Return: (transfer full): @hostdev as libvirt's live XML shows it, with
 * <alias> and the guest <address> when known; two-space indentation,
 * ending in a newline. */
char *hostdev_format_xml(const Hostdev *hostdev);

/**
 * hostdev_source_matches() - does @b have the host source @a asks for?
 * @a: what the user names (e.g. the XML given to detach-device)
 * @b: a device hostdevd holds
 * The way `virsh detach-device` matches a hostdev (libvirt's
 * virDomainHostdevMatch): the types must be equal; PCI compares the host
 * address; USB compares bus and device when @a gives an <address>, and
 * vendor and product otherwise.  Asymmetric like libvirt's: so that a
 * vendor/product entry can later be found by address, record the resolved
 * bus/device in @b once the device has been resolved.
 */
gboolean hostdev_source_matches(const Hostdev *a, const Hostdev *b);

/* Return: (transfer full): the source for messages, e.g.
 * "USB device 0627:0001", "USB device at bus 1 device 2",
 * "USB device 0627:0001 at bus 1 device 2", "PCI device 0000:01:00.0". */
char *hostdev_describe_source(const Hostdev *hostdev);

/* Return: (transfer full): "0000:01:00.0". */
char *pci_address_format(const PciAddress *addr);

/* pci_address_parse() - parse "DDDD:BB:SS.F" (or "BB:SS.F", domain 0) with the ranges above.
 * Fields are hex (1-4, 1-2, 1-2 and 1 digits).  On failure @addr is
 * untouched and @error is HOSTDEVD_ERROR_INVALID_ARGUMENT. */
gboolean pci_address_parse(const char *text, PciAddress *addr, GError **error);

G_END_DECLS
