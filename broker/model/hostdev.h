/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdev.h - the typed model of one libvirt <hostdev> (or <interface
 * type='hostdev'>), parsed from and formatted back to libvirt's domain XML.
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
  HOSTDEV_TYPE_MDEV,         /* mediated device, model='vfio-pci' */
} HostdevType;

typedef enum {
  HOSTDEV_STARTUP_DEFAULT,   /* attribute absent */
  HOSTDEV_STARTUP_MANDATORY,
  HOSTDEV_STARTUP_REQUISITE,
  HOSTDEV_STARTUP_OPTIONAL,
} HostdevStartupPolicy;

/* An optional on/off or yes/no attribute: absent is not the same as off,
 * libvirt sends QEMU nothing for absent. */
typedef enum {
  HOSTDEV_TRISTATE_ABSENT,
  HOSTDEV_TRISTATE_ON,       /* 'on' or 'yes' */
  HOSTDEV_TRISTATE_OFF,      /* 'off' or 'no' */
} HostdevTristate;

/* USB <source guestReset/> */
typedef enum {
  HOSTDEV_GUEST_RESET_DEFAULT,       /* attribute absent: QEMU's default */
  HOSTDEV_GUEST_RESET_OFF,
  HOSTDEV_GUEST_RESET_UNINITIALIZED,
  HOSTDEV_GUEST_RESET_ON,
} HostdevGuestReset;

typedef struct {
  guint domain;   /* 0..0xffff */
  guint bus;      /* 0..0xff */
  guint slot;     /* 0..0x1f */
  guint function; /* 0..7 */
} PciAddress;

/* "c2177883-f1bb-47f0-914d-32a22e3a8804" */
#define HOSTDEV_UUID_STRING_LEN 36

typedef struct {
  HostdevType type;
  /* <interface type='hostdev'>: type is HOSTDEV_TYPE_PCI, the source a PCI
   * network function (SR-IOV VF); net.* holds what the host side programs */
  gboolean is_interface;
  gboolean managed;          /* managed='yes' */
  char *alias;               /* <alias name/>: user "ua-…" or assigned "hostdevN"; NULL if none */
  guint boot_order;          /* <boot order/>, 1..0x7fffffff; 0 when absent */
  guint acpi_index;          /* <acpi index/>, 1..16383; 0 when absent (PCI, mdev) */

  /* <rom bar file enabled/> (PCI; kept but not sent for mdev, as libvirt) */
  struct {
    HostdevTristate bar;     /* bar='on|off' */
    HostdevTristate enabled; /* enabled='yes|no'; 'no' excludes bar and file */
    char *file;              /* file='/…', an absolute path; NULL when absent */
  } rom;

  /* type='usb' source: vendor/product and/or bus/device, and/or hostdevd's
   * port path and/or serial */
  struct {
    gboolean has_vendor_product;
    guint vendor;            /* 0..0xffff */
    guint product;           /* 0..0xffff */
    gboolean has_address;
    guint bus;               /* <address bus/>, 1..0xffff (0 means unset to libvirt) */
    guint device;            /* <address device/>, 1..0xffff */
    /* hostdevd's extension, <hostdevd:device port serial/> (usb-selector.h) */
    char *port_path;         /* "1-2.3", canonical; NULL when not given */
    char *serial;            /* NULL when not given */
    /* <hostdevd:device follow='yes|no'/>: re-attach the device when it
     * re-enumerates; ABSENT: yes unless named by <address/> (usb-follow.h) */
    HostdevTristate follow;
    HostdevStartupPolicy startup_policy;
    HostdevGuestReset guest_reset;
  } usb;

  /* type='usb' guest address <address type='usb' bus port/> */
  struct {
    gboolean present;
    guint bus;               /* controller index, 0..0xffff */
    char *port;              /* "1" or "1.2.3" (hub path, at most 4 levels,
                              * each 1..255, canonical decimal); NULL if absent */
  } usb_guest;

  /* type='pci' source and guest address (the guest address also for mdev) */
  PciAddress pci_source;
  struct {
    gboolean present;
    PciAddress addr;
    gboolean multifunction;          /* multifunction='on' */
    gboolean multifunction_explicit; /* the attribute was given: 'off' is sent too */
  } pci_guest;

  /* <zpci uid fid/> inside the guest PCI address (type='pci' on s390x);
   * the caller fills what is missing when it assigns them */
  struct {
    gboolean has_uid;
    guint uid;               /* 0x0001..0xffff */
    gboolean has_fid;
    guint fid;               /* 0..0xffffffff */
  } zpci;

  /* type='mdev' model='vfio-pci' */
  struct {
    char uuid[HOSTDEV_UUID_STRING_LEN + 1]; /* canonical, lower case */
    gboolean display;        /* display='on'; absent means 'off', as in libvirt */
    HostdevTristate ramfb;   /* never ON: a ramfb device cannot be hot-plugged */
  } mdev;

  /* <interface type='hostdev'>: programmed on the host, not sent to QEMU */
  struct {
    gboolean has_mac;
    guint8 mac[6];           /* unicast */
    gboolean has_vlan;
    guint vlan_tag;          /* <vlan><tag id/></vlan>, 0..4095 */
  } net;
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
 * hostdev_parse_xml() - parse one <hostdev> (or <interface type='hostdev'>)
 *   element a client sent
 * @xml: the document; NUL termination not required
 * @length: its size in bytes
 * Safe against hostile input: no network, no DTD, no entity expansion,
 * bounded size and depth.  Parses the way `virsh attach-device` does
 * (libvirt's "inactive" parse): an <alias> is kept only when it is a user
 * alias ("ua-" followed by [A-Za-z0-9_-]); any other alias is ignored, as
 * libvirt ignores it.
 * Return: the model, or NULL with a HOSTDEVD_ERROR (InvalidXML: not
 * well-formed, DTD/entities, too big or deep, not a <hostdev>;
 * InvalidArgument: wrong values, or what hostdevd does not support, e.g.
 * type='scsi', mode='capabilities', ramfb='on', or hostdevd's XML extension
 * (usb-selector.h) misused) that names the element, attribute, bad value
 * and valid range.
 */
Hostdev *hostdev_parse_xml(const char *xml, gsize length, GError **error);

/* Most devices one <devices> request may hold. */
#define HOSTDEV_REQUEST_MAX_DEVICES 32

/**
 * hostdev_parse_request() - parse an attach or detach request: one device
 *   (as hostdev_parse_xml()), or several in a <devices> element
 * @several: (out): whether the request was a <devices> element
 * Return: (transfer full) (element-type Hostdev): the devices in the
 * request's order, or NULL with a HOSTDEVD_ERROR naming which device of
 * the request is wrong.
 */
GPtrArray *hostdev_parse_request(const char *xml, gsize length, gboolean *several,
                                 GError **error);

/**
 * hostdev_parse_live_xml() - parse live XML that hostdevd itself produced
 * Like hostdev_parse_xml(), but an assigned alias ("hostdev0") is kept, as
 * libvirt keeps it when parsing live XML (journal, detach-device).  An
 * alias must still consist of [A-Za-z0-9_-] and start with a letter
 * (it becomes a QEMU id), otherwise InvalidArgument.
 * Return: the model, or NULL with a HOSTDEVD_ERROR.
 */
Hostdev *hostdev_parse_live_xml(const char *xml, gsize length, GError **error);

/* The largest guest USB bus number <address type='usb' bus/> takes. */
#define HOSTDEV_USB_GUEST_BUS_MAX 0xffff

/**
 * hostdev_usb_guest_port_check() - could <address type='usb' bus port/> hold this?
 * For a guest USB address that did not come from XML (QEMU's answer): what
 * passes here formats into XML that the parsers read back.
 * @bus: at most HOSTDEV_USB_GUEST_BUS_MAX
 * @port: 1 to 4 numbers 1..255 separated by dots
 * Return: (transfer full): @port in canonical form, or NULL with an
 *   InvalidArgument naming the bad value and the valid range.
 */
char *hostdev_usb_guest_port_check(guint bus, const char *port, GError **error);

/* Return: (transfer full): @hostdev as libvirt's live XML shows it (a
 * <hostdev>, or an <interface type='hostdev'>), with <alias> and the guest
 * <address> (and <zpci>) when known; two-space indentation, ending in a
 * newline. */
char *hostdev_format_xml(const Hostdev *hostdev);

/**
 * hostdev_source_matches() - does @b have the host source @a asks for?
 * @a: what the user names (e.g. the XML given to detach-device)
 * @b: a device hostdevd holds
 * The way `virsh detach-device` matches a hostdev (libvirt's
 * virDomainHostdevMatch): the types must be equal; PCI compares the host
 * address; USB compares bus and device when @a gives an <address>, and
 * vendor and product otherwise; a port path or serial @a gives (hostdevd's
 * extension) must be @b's too, and alone they decide.  Asymmetric like
 * libvirt's: so that a
 * vendor/product entry can later be found by address, record the resolved
 * bus/device in @b once the device has been resolved.  mdev compares the
 * UUID; an <interface> that gives a MAC must also match the MAC.
 */
gboolean hostdev_source_matches(const Hostdev *a, const Hostdev *b);

/* Return: (transfer full): the source for messages, e.g.
 * "USB device 0627:0001", "USB device at bus 1 device 2",
 * "USB device 0627:0001 at bus 1 device 2",
 * "USB device 0627:0001 at port 1-2.3 with serial 'A1'",
 * "PCI device 0000:01:00.0",
 * "PCI network device 0000:02:07.1", "mediated device c2177883-…". */
char *hostdev_describe_source(const Hostdev *hostdev);

/* Return: the type='…' name of @type: "usb", "pci" or "mdev". */
const char *hostdev_type_name(HostdevType type);

/* Return: (transfer full): the interface's MAC as "52:54:00:6d:90:02", or
 * NULL when it has none. */
char *hostdev_format_mac(const Hostdev *hostdev);

/* Return: (transfer full): "0000:01:00.0". */
char *pci_address_format(const PciAddress *addr);

/* pci_address_parse() - parse "DDDD:BB:SS.F" (or "BB:SS.F", domain 0) with the ranges above.
 * Fields are hex (1-4, 1-2, 1-2 and 1 digits).  On failure @addr is
 * untouched and @error is HOSTDEVD_ERROR_INVALID_ARGUMENT. */
gboolean pci_address_parse(const char *text, PciAddress *addr, GError **error);

/* Longest alias hostdevd takes (a journal file name, with room for its suffixes). */
#define HOSTDEV_ALIAS_MAX 200

/* Return: whether @alias is an alias hostdevd accepts: 1-HOSTDEV_ALIAS_MAX of
 * letters, digits, '_' and '-', starting with a letter (libvirt's live aliases).
 * Every device id read from QEMU passes it before hostdevd uses it. */
gboolean hostdev_alias_is_valid(const char *alias);

G_END_DECLS
