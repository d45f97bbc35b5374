/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-uevent.c - parse one kernel uevent message about a USB device
 *
 * Theory: a message is "ACTION@DEVPATH" then KEY=VALUE fields, each
 * ending in a NUL (kobject_uevent_env() in lib/kobject_uevent.c builds
 * the header with "%s@%s" and appends its environment buffer).  USB
 * devices add BUSNUM and DEVNUM ("%03d", drivers/usb/core/usb.c) and
 * PRODUCT ("%x/%x/%x": idVendor, idProduct, bcdDevice, drivers/usb/core/
 * driver.c).  The parser walks the message once, splitting at NULs,
 * refuses anything the kernel would not send, and only then looks at
 * what the fields say.  Nothing is copied before the checks pass, and no
 * value is used as a path other than by the caller, who gets a DEVPATH
 * without "." or ".." components.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "usb-uevent.h"
#include "usb-selector.h"

#include <string.h>

G_DEFINE_QUARK(hostdevd-usb-uevent-error-quark, usb_uevent_error)

void
usb_uevent_free(UsbUevent *event)
{
  if (event == NULL)
    return;
  g_free(event->devpath);
  g_free(event->port_path);
  g_free(event);
}

static const struct {
  const char *name;
  UsbUeventAction action;
} action_names[] = {
  { "add", USB_UEVENT_ADD },
  { "remove", USB_UEVENT_REMOVE },
  { "bind", USB_UEVENT_BIND },
  { "unbind", USB_UEVENT_UNBIND },
  { "change", USB_UEVENT_CHANGE },
  { "lost", USB_UEVENT_LOST },
};

const char *
usb_uevent_action_name(UsbUeventAction action)
{
  for (gsize i = 0; i < G_N_ELEMENTS(action_names); i++)
    if (action_names[i].action == action)
      return action_names[i].name;
  return "unknown";
}

/* The kernel's other actions: well-formed, not followed. */
static const char *const other_actions[] = {
  "move", "online", "offline", NULL,
};

/* A field as received: not NUL-terminated in our view, @len bytes. */
typedef struct {
  const char *key;       /* points into the message */
  gsize key_len;
  const char *value;     /* NUL-terminated (the message's NUL) */
} Field;

typedef struct {
  const char *action;    /* the header's, NUL-terminated copies below */
  const char *devpath;
  Field fields[USB_UEVENT_MAX_FIELDS];
  guint n_fields;
} Message;

static gboolean G_GNUC_PRINTF(3, 4)
fail(GError **error, UsbUeventError code, const char *format, ...)
{
  va_list args;

  va_start(args, format);
  g_propagate_error(error, g_error_new_valist(USB_UEVENT_ERROR, code, format, args));
  va_end(args);
  return FALSE;
}

/* Return: (transfer full): up to 40 bytes of @text, escaped for a log line. */
static char *
shown(const char *text)
{
  g_autofree char *cut = g_strndup(text, 40);

  return g_strescape(cut, NULL);
}

/* Printable ASCII without spaces: what keys, actions and paths are made of. */
static gboolean
is_plain(const char *text, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if ((guchar)text[i] <= ' ' || (guchar)text[i] > '~')
      return FALSE;
  return TRUE;
}

static gboolean
key_is_valid(const char *key, gsize len)
{
  if (len == 0)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isupper(key[i]) && !g_ascii_isdigit(key[i]) && key[i] != '_')
      return FALSE;
  return TRUE;
}

/* Split @data (NUL-terminated at data[length - 1], checked by the caller)
 * into the header and its fields. */
static gboolean
split_message(const char *data, gsize length, char *header_copy, Message *msg,
              GError **error)
{
  const char *end = data + length;
  const char *header = data;
  gsize header_len = strlen(header);
  char *at;

  if (header_len == 0)
    return fail(error, USB_UEVENT_ERROR_INVALID, "empty header (expected ACTION@DEVPATH)");
  memcpy(header_copy, header, header_len + 1);
  at = strchr(header_copy, '@');
  if (at == NULL || at == header_copy || at[1] == '\0') {
    g_autofree char *what = shown(header);
    return fail(error, USB_UEVENT_ERROR_INVALID,
                "header '%s' is not ACTION@DEVPATH", what);
  }
  *at = '\0';
  msg->action = header_copy;
  msg->devpath = at + 1;

  for (const char *p = header + header_len + 1; p < end; p += strlen(p) + 1) {
    const char *eq = strchr(p, '=');
    Field *field;

    if (*p == '\0')
      return fail(error, USB_UEVENT_ERROR_INVALID,
                  "empty field at byte %" G_GSIZE_FORMAT " (fields are KEY=VALUE "
                  "separated by one NUL)", (gsize)(p - data));
    if (eq == NULL || !key_is_valid(p, (gsize)(eq - p))) {
      g_autofree char *what = shown(p);
      return fail(error, USB_UEVENT_ERROR_INVALID,
                  "field '%s' is not KEY=VALUE with KEY in [A-Z0-9_]", what);
    }
    if (msg->n_fields == USB_UEVENT_MAX_FIELDS)
      return fail(error, USB_UEVENT_ERROR_INVALID,
                  "more than %d fields", USB_UEVENT_MAX_FIELDS);
    for (guint i = 0; i < msg->n_fields; i++) {
      if (msg->fields[i].key_len == (gsize)(eq - p) &&
          memcmp(msg->fields[i].key, p, msg->fields[i].key_len) == 0) {
        g_autofree char *key = g_strndup(p, (gsize)(eq - p));
        return fail(error, USB_UEVENT_ERROR_INVALID, "field %s given twice", key);
      }
    }
    field = &msg->fields[msg->n_fields++];
    field->key = p;
    field->key_len = (gsize)(eq - p);
    field->value = eq + 1;
  }
  return TRUE;
}

/* Return: the value of @key, or NULL. */
static const char *
lookup(const Message *msg, const char *key)
{
  gsize len = strlen(key);

  for (guint i = 0; i < msg->n_fields; i++)
    if (msg->fields[i].key_len == len && memcmp(msg->fields[i].key, key, len) == 0)
      return msg->fields[i].value;
  return NULL;
}

static gboolean
require(const Message *msg, const char *key, const char **value, GError **error)
{
  *value = lookup(msg, key);
  if (*value == NULL)
    return fail(error, USB_UEVENT_ERROR_INVALID, "%s is missing", key);
  return TRUE;
}

/* A DEVPATH under /sys: "/devices/..." of plain components, no "." or
 * "..", no empty component, bounded. */
static gboolean
check_devpath(const char *devpath, GError **error)
{
  gsize len = strlen(devpath);
  g_auto(GStrv) parts = NULL;
  g_autofree char *what = shown(devpath);

  if (len > USB_UEVENT_MAX_DEVPATH)
    return fail(error, USB_UEVENT_ERROR_INVALID,
                "DEVPATH is %" G_GSIZE_FORMAT " bytes, more than %d",
                len, USB_UEVENT_MAX_DEVPATH);
  if (!g_str_has_prefix(devpath, "/devices/") || !is_plain(devpath, len))
    return fail(error, USB_UEVENT_ERROR_INVALID,
                "DEVPATH '%s' is not a plain path under /devices/", what);
  parts = g_strsplit(devpath + 1, "/", -1);
  for (guint i = 0; parts[i] != NULL; i++)
    if (parts[i][0] == '\0' || strcmp(parts[i], ".") == 0 || strcmp(parts[i], "..") == 0)
      return fail(error, USB_UEVENT_ERROR_INVALID,
                  "DEVPATH '%s' has an empty, '.' or '..' component", what);
  return TRUE;
}

/* Decimal digits only (the kernel pads with zeros), @min..@max. */
static gboolean
parse_decimal(const char *key, const char *text, guint min, guint max,
              guint *out, GError **error)
{
  guint64 value = 0;
  gsize len = strlen(text);
  g_autofree char *what = NULL;

  if (len == 0 || len > 10)
    goto bad;
  for (gsize i = 0; i < len; i++) {
    if (!g_ascii_isdigit(text[i]))
      goto bad;
    value = value * 10 + (guint)(text[i] - '0');
  }
  if (value < min || value > max)
    goto bad;
  *out = (guint)value;
  return TRUE;

bad:
  what = shown(text);
  return fail(error, USB_UEVENT_ERROR_INVALID,
              "%s='%s' is not a decimal number %u..%u", key, what, min, max);
}

/* 1 to 4 hex digits, as "%x" writes a 16-bit value; *@text moves past them. */
static gboolean
parse_hex16(const char **text, guint *out)
{
  guint value = 0;
  gsize n = 0;

  while (g_ascii_isxdigit((*text)[n]) && n < 5) {
    value = value * 16 + (guint)g_ascii_xdigit_value((*text)[n]);
    n++;
  }
  if (n == 0 || n > 4)
    return FALSE;
  *text += n;
  *out = value;
  return TRUE;
}

/* PRODUCT=vendor/product/bcdDevice */
static gboolean
parse_product(const char *text, UsbUevent *event, GError **error)
{
  const char *p = text;

  if (parse_hex16(&p, &event->vendor) && *p++ == '/' &&
      parse_hex16(&p, &event->product) && *p++ == '/' &&
      parse_hex16(&p, &event->bcd_device) && *p == '\0')
    return TRUE;
  {
    g_autofree char *what = shown(text);
    return fail(error, USB_UEVENT_ERROR_INVALID,
                "PRODUCT='%s' is not vendor/product/bcdDevice in hex", what);
  }
}

/* The last DEVPATH component names the device: a port path on bus
 * BUSNUM, or the root hub "usbBUSNUM". */
static gboolean
parse_device_name(const char *devpath, UsbUevent *event, GError **error)
{
  const char *name = strrchr(devpath, '/') + 1;
  g_autofree char *what = shown(name);
  g_autofree char *root_hub = g_strdup_printf("usb%u", event->bus);
  g_autofree char *port_path = NULL;
  guint bus = 0;

  if (strcmp(name, root_hub) == 0)
    return TRUE;
  port_path = usb_port_path_parse(name, &bus, NULL);
  if (port_path == NULL || strcmp(port_path, name) != 0)
    return fail(error, USB_UEVENT_ERROR_INVALID,
                "DEVPATH ends in '%s', which is neither a USB port path nor "
                "a root hub", what);
  if (bus != event->bus)
    return fail(error, USB_UEVENT_ERROR_INVALID,
                "DEVPATH ends in '%s', on another bus than BUSNUM=%u",
                what, event->bus);
  event->port_path = g_steal_pointer(&port_path);
  return TRUE;
}

static gboolean
parse_action(const char *action, UsbUeventAction *out, GError **error)
{
  g_autofree char *what = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS(action_names); i++) {
    if (action_names[i].action != USB_UEVENT_LOST &&
        strcmp(action, action_names[i].name) == 0) {
      *out = action_names[i].action;
      return TRUE;
    }
  }
  what = shown(action);
  if (g_strv_contains(other_actions, action))
    return fail(error, USB_UEVENT_ERROR_IGNORED, "action '%s' is not followed", what);
  return fail(error, USB_UEVENT_ERROR_INVALID, "unknown action '%s'", what);
}

UsbUevent *
usb_uevent_parse(const guint8 *data, gsize length, GError **error)
{
  static const char libudev_magic[] = "libudev";
  g_autofree char *header_copy = NULL;
  g_autofree Message *msg = NULL;
  g_autoptr(UsbUevent) event = NULL;
  const char *text = (const char *)data;
  const char *value;
  guint64 seqnum;

  if (length == 0) {
    fail(error, USB_UEVENT_ERROR_INVALID, "empty message");
    return NULL;
  }
  if (length > USB_UEVENT_MAX_SIZE) {
    fail(error, USB_UEVENT_ERROR_INVALID,
         "message of %" G_GSIZE_FORMAT " bytes, more than %d",
         length, USB_UEVENT_MAX_SIZE);
    return NULL;
  }
  if (length >= sizeof(libudev_magic) &&
      memcmp(data, libudev_magic, sizeof(libudev_magic)) == 0) {
    fail(error, USB_UEVENT_ERROR_IGNORED,
         "a udev monitor message (\"libudev\" header), not the kernel's");
    return NULL;
  }
  if (data[length - 1] != '\0') {
    fail(error, USB_UEVENT_ERROR_INVALID,
         "message does not end in NUL (truncated, or not NUL-separated)");
    return NULL;
  }

  header_copy = g_malloc(length);
  msg = g_new0(Message, 1);
  if (!split_message(text, length, header_copy, msg, error))
    return NULL;

  /* the header and the fields must tell the same story */
  if (!require(msg, "ACTION", &value, error))
    return NULL;
  if (strcmp(value, msg->action) != 0) {
    fail(error, USB_UEVENT_ERROR_INVALID, "ACTION differs from the header's");
    return NULL;
  }
  if (!require(msg, "DEVPATH", &value, error))
    return NULL;
  if (strcmp(value, msg->devpath) != 0) {
    fail(error, USB_UEVENT_ERROR_INVALID, "DEVPATH differs from the header's");
    return NULL;
  }
  if (!require(msg, "SUBSYSTEM", &value, error))
    return NULL;
  if (strcmp(value, "usb") != 0) {
    g_autofree char *what = shown(value);
    fail(error, USB_UEVENT_ERROR_IGNORED, "subsystem '%s', not usb", what);
    return NULL;
  }
  if (!require(msg, "DEVTYPE", &value, error))
    return NULL;
  if (strcmp(value, "usb_device") != 0) {
    g_autofree char *what = shown(value);
    fail(error, USB_UEVENT_ERROR_IGNORED, "DEVTYPE '%s', not usb_device", what);
    return NULL;
  }

  event = g_new0(UsbUevent, 1);
  if (!parse_action(msg->action, &event->action, error) ||
      !check_devpath(msg->devpath, error) ||
      !require(msg, "BUSNUM", &value, error) ||
      !parse_decimal("BUSNUM", value, 1, USB_PORT_PATH_BUS_MAX, &event->bus, error) ||
      !require(msg, "DEVNUM", &value, error) ||
      !parse_decimal("DEVNUM", value, 1, 127, &event->device, error) ||
      !require(msg, "PRODUCT", &value, error) ||
      !parse_product(value, event, error) ||
      !parse_device_name(msg->devpath, event, error))
    return NULL;

  value = lookup(msg, "SEQNUM");
  if (value != NULL) {
    if (!g_ascii_string_to_unsigned(value, 10, 1, G_MAXUINT64, &seqnum, NULL)) {
      g_autofree char *what = shown(value);
      fail(error, USB_UEVENT_ERROR_INVALID, "SEQNUM='%s' is not a number", what);
      return NULL;
    }
    event->seqnum = seqnum;
  }
  event->devpath = g_strdup(msg->devpath);
  return g_steal_pointer(&event);
}
