/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-selector.c - syntax of USB port paths and serials
 *
 * The kernel names a USB device "<busnum>-<port>[.<port>]..." (drivers/
 * usb/core/usb.c names it from the device's devpath, which hub.c builds
 * one port at a time), without leading zeros.  Parsing is strict and
 * canonical so that a path compares as a string afterwards.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "usb-selector.h"
#include "hostdevd-error.h"

#include <string.h>

/* Return: whether @text is 1..@max as decimal digits only; *@out gets it. */
static gboolean
parse_decimal(const char *text, gsize len, guint max, guint *out)
{
  guint64 value = 0;

  if (len == 0 || len > 10)
    return FALSE;
  for (gsize i = 0; i < len; i++) {
    if (!g_ascii_isdigit(text[i]))
      return FALSE;
    value = value * 10 + (guint)(text[i] - '0');
  }
  if (value < 1 || value > max)
    return FALSE;
  *out = (guint)value;
  return TRUE;
}

char *
usb_port_path_parse(const char *text, guint *bus, GError **error)
{
  g_autoptr(GString) canonical = g_string_new(NULL);
  const char *dash = strchr(text, '-');
  const char *p;
  guint bus_number = 0;
  guint depth = 0;

  if (dash == NULL || !parse_decimal(text, (gsize)(dash - text),
                                     USB_PORT_PATH_BUS_MAX, &bus_number))
    goto bad;
  g_string_append_printf(canonical, "%u-", bus_number);

  p = dash + 1;
  for (;;) {
    const char *end = p + strcspn(p, ".");
    guint port;

    if (++depth > USB_PORT_PATH_MAX_DEPTH ||
        !parse_decimal(p, (gsize)(end - p), USB_PORT_PATH_PORT_MAX, &port))
      goto bad;
    g_string_append_printf(canonical, "%s%u", depth > 1 ? "." : "", port);
    if (*end == '\0')
      break;
    p = end + 1;
  }
  if (bus != NULL)
    *bus = bus_number;
  return g_string_free(g_steal_pointer(&canonical), FALSE);

bad:
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "a port path is the bus number (1..%u), '-', then 1 to %d port "
              "numbers (1..%u) joined by '.', e.g. '1-2' or '3-1.4', as "
              "`hostdevctl nodedev-list --cap usb_device` shows it",
              USB_PORT_PATH_BUS_MAX, USB_PORT_PATH_MAX_DEPTH,
              USB_PORT_PATH_PORT_MAX);
  return NULL;
}

gboolean
usb_serial_check(const char *text, GError **error)
{
  const char *why = NULL;

  if (!g_utf8_validate(text, -1, NULL)) {
    why = "is not valid UTF-8";
  } else if (*text == '\0') {
    why = "is empty (a device without a serial cannot be chosen by one)";
  } else if (g_utf8_strlen(text, -1) > USB_SERIAL_MAX_CHARS) {
    why = "is longer than a USB string descriptor can be (126 characters)";
  } else if (g_unichar_isspace(g_utf8_get_char(text)) ||
             g_unichar_isspace(g_utf8_get_char(g_utf8_prev_char(text + strlen(text))))) {
    why = "begins or ends with white space, which sysfs never shows";
  } else {
    for (const char *p = text; *p != '\0'; p = g_utf8_next_char(p)) {
      gunichar c = g_utf8_get_char(p);

      /* U+FFFE and U+FFFF are not XML characters either */
      if (g_unichar_iscntrl(c) || c == 0xfffe || c == 0xffff) {
        why = "contains a control character";
        break;
      }
    }
  }
  if (why == NULL)
    return TRUE;
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "the serial %s; copy it from `hostdevctl nodedev-list --cap "
              "usb_device`", why);
  return FALSE;
}

char *
usb_serial_quote(const char *serial)
{
  GString *out = g_string_new("'");

  for (const guchar *p = (const guchar *)serial; *p != '\0'; p++) {
    if (*p < 0x20 || *p == 0x7f || *p == '\\' || *p == '\'')
      g_string_append_printf(out, "\\x%02x", *p);
    else
      g_string_append_c(out, (char)*p);
  }
  g_string_append_c(out, '\'');
  return g_string_free(out, FALSE);
}

void
usb_selector_format_xml(GString *out, guint indent, const char *port_path,
                        const char *serial, const char *follow)
{
  if (port_path == NULL && serial == NULL && follow == NULL)
    return;
  g_string_append_printf(out, "%*s<" USB_SELECTOR_XML_PREFIX ":" USB_SELECTOR_XML_ELEMENT
                         " xmlns:" USB_SELECTOR_XML_PREFIX "='" USB_SELECTOR_XML_NS "'",
                         (int)indent, "");
  if (port_path != NULL) {
    g_autofree char *escaped = g_markup_escape_text(port_path, -1);
    g_string_append_printf(out, " port='%s'", escaped);
  }
  if (serial != NULL) {
    g_autofree char *escaped = g_markup_escape_text(serial, -1);
    g_string_append_printf(out, " serial='%s'", escaped);
  }
  if (follow != NULL)
    g_string_append_printf(out, " follow='%s'", follow);
  g_string_append(out, "/>\n");
}
