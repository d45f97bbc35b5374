/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-selector.h - the two names a USB device keeps across replugs, and
 * hostdevd's XML extension that selects a device by them
 *
 * A physical port path is the kernel's sysfs name of a USB device: bus
 * number, '-', then the port on the root hub and on each hub below it,
 * joined by '.', e.g. "1-2.3" (bus 1, root port 2, hub port 3).  It stays
 * the same when the device is plugged into the same socket again, while
 * the device number changes on every enumeration.  A serial is the
 * device's iSerialNumber string as sysfs shows it.
 *
 * libvirt's grammar has neither, so hostdevd reads them from one element
 * of its own namespace inside a USB hostdev's <source>:
 *
 *   <source>
 *     <vendor id='0x1050'/>
 *     <product id='0x0407'/>
 *     <hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1'
 *                      port='1-2.3' serial='0001234567'/>
 *   </source>
 *
 * Both attributes are optional, at least one is required; the element may
 * stand alone or beside <vendor>/<product> and <address>, and every given
 * name must match.  The checks here are shared by the XML parser, the
 * sysfs look-up and the uevent parser, so all three agree on the syntax.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The namespace of hostdevd's XML extensions; the prefix is the writer's
 * choice, hostdevd formats it as "hostdevd". */
#define USB_SELECTOR_XML_NS "urn:hostdevd:hostdev:1"
#define USB_SELECTOR_XML_PREFIX "hostdevd"
/* Any namespace starting so is hostdevd's: an unknown one is refused, not
 * ignored, so that a selector is never dropped silently. */
#define USB_SELECTOR_XML_NS_FAMILY "urn:hostdevd:"
/* <hostdevd:device port serial/> */
#define USB_SELECTOR_XML_ELEMENT "device"

/* Port numbers in a path: a root port and one per hub below it; USB has
 * at most 7 tiers (root hub, 5 hubs, the device). */
#define USB_PORT_PATH_MAX_DEPTH 6
/* The largest bus number taken (as <source><address bus/>). */
#define USB_PORT_PATH_BUS_MAX 0xffff
/* The largest port number: a hub's bNbrPorts is one byte. */
#define USB_PORT_PATH_PORT_MAX 255
/* A string descriptor holds at most 126 UTF-16 code units. */
#define USB_SERIAL_MAX_CHARS 126

/**
 * usb_port_path_parse() - check a physical port path
 * @text: e.g. "1-2.3"
 * @bus: (out) (optional): the bus number
 * @error: HOSTDEVD_ERROR_INVALID_ARGUMENT saying what is wrong (the
 *   caller says where the text came from)
 * Bus 1..USB_PORT_PATH_BUS_MAX, then 1..USB_PORT_PATH_MAX_DEPTH port
 * numbers 1..USB_PORT_PATH_PORT_MAX, all decimal digits only.  A root
 * hub ("usb1") has no port path.
 * Return: (transfer full): the canonical form (no leading zeros), or NULL.
 */
char *usb_port_path_parse(const char *text, guint *bus, GError **error);

/**
 * usb_serial_check() - could a device report @text as its serial?
 * 1..USB_SERIAL_MAX_CHARS characters of valid UTF-8, no control
 * characters, no white space at either end (sysfs values are read
 * trimmed, so such a serial could never match).
 * Return: TRUE, or FALSE with HOSTDEVD_ERROR_INVALID_ARGUMENT saying what
 * is wrong.
 */
gboolean usb_serial_check(const char *text, GError **error);

/* Return: (transfer full): @serial for a message or a listing, in single
 * quotes, with control characters, quotes and backslashes escaped as
 * \xNN (a device's serial is untrusted); other UTF-8 is kept. */
char *usb_serial_quote(const char *serial);

/**
 * usb_selector_format_xml() - append the selector element, one line
 * @out: where
 * @indent: spaces before it
 * @port_path: (nullable): canonical port path
 * @serial: (nullable): the serial, escaped here for XML
 * @follow: (nullable): follow='yes' or 'no' (hostdevd-follow), or NULL
 * Appends nothing when all three are NULL.  The element declares its
 * namespace itself, so the line can be pasted into any <source>.
 */
void usb_selector_format_xml(GString *out, guint indent, const char *port_path,
                             const char *serial, const char *follow);

G_END_DECLS
