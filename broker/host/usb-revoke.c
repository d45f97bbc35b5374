/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-revoke.c - revoke a USB device's usbfs descriptors by cycling its
 * hub port (why this way: usb-revoke.h)
 */
#define G_LOG_DOMAIN "hostdevd"

#include "usb-revoke.h"
#include "host-root.h"
#include "hostdevd-error.h"
#include "usb-selector.h"

#include <string.h>

/* Return: whether sysfs attribute @name of USB device @port_path reads as @expected. */
static gboolean
attr_is(const char *port_path, const char *name, guint expected)
{
  g_autofree char *path = host_path("sys/bus/usb/devices/%s/%s", port_path, name);
  g_autofree char *text = host_read_attr(path, NULL);
  guint64 value;

  return text && g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT, &value, NULL) &&
         value == expected;
}

char *
usb_revoke_find_port(const char *port_path, guint bus, guint device, GError **error)
{
  g_autoptr(GError) local = NULL;

  g_autofree char *canonical = port_path ? usb_port_path_parse(port_path, NULL, NULL) : NULL;
  if (canonical == NULL || strcmp(canonical, port_path) != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "'%s' is not a USB port path", port_path ? port_path : "(none)");
    return NULL;
  }
  g_autofree char *device_link = g_strdup_printf("sys/bus/usb/devices/%s", port_path);
  g_autofree char *device_dir = host_resolve_link(device_link, NULL);
  if (device_dir == NULL || !attr_is(port_path, "busnum", bus) ||
      !attr_is(port_path, "devnum", device)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "USB bus %u device %u is no longer at port %s (unplugged or enumerated anew)",
                bus, device, port_path);
    return NULL;
  }
  g_autofree char *port_link = g_strdup_printf("%s/port", device_dir);
  char *port = host_resolve_link(port_link, &local);
  if (port == NULL || !usb_revoke_port_is_valid(port)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot find the hub port of USB device %s: %s", port_path,
                local ? local->message : "its \"port\" link is not a usbN-portM device");
    g_free(port);
    return NULL;
  }
  return port;
}

gboolean
usb_revoke_port_is_valid(const char *port)
{
  if (port == NULL || !g_str_has_prefix(port, "sys/devices/") || strstr(port, "/../") ||
      strstr(port, "//") || g_str_has_suffix(port, "/.."))
    return FALSE;
  /* the kernel names port M of hub H "H-portM": "usb1-port1", "1-1.2-port3" */
  const char *name = strrchr(port, '/') + 1;
  const char *suffix = g_strrstr(name, "-port");
  if (suffix == NULL || suffix == name || suffix[5] == '\0' || strlen(name) > 64)
    return FALSE;
  for (const char *c = name; *c; c++)
    if (!g_ascii_isalnum(*c) && *c != '-' && *c != '.')
      return FALSE;
  for (const char *c = suffix + 5; *c; c++)
    if (!g_ascii_isdigit(*c))
      return FALSE;
  return TRUE;
}

static gboolean
write_disable(const char *port, const char *value, GError **error)
{
  g_autofree char *path = host_path("%s/disable", port);
  g_autoptr(GError) local = NULL;

  if (host_write_attr(path, value, &local) == 0)
    return TRUE;
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot %s USB port /%s: %s%s", value[0] == '1' ? "disable" : "enable again",
              port, local->message,
              value[0] == '1' ? "; without it a descriptor QEMU kept would still reach the "
                                "device, so it is not given back (the kernel needs the port's "
                                "\"disable\" attribute, Linux 6.0 or later)"
                              : "; the device stays away from the host until you write 0 "
                                "there");
  return FALSE;
}

gboolean
usb_revoke_port_disable(const char *port, GError **error)
{
  return write_disable(port, "1", error);
}

gboolean
usb_revoke_port_enable(const char *port, GError **error)
{
  return write_disable(port, "0", error);
}

gboolean
usb_revoke_device_is_back(const char *port_path, guint old_device)
{
  g_autofree char *path = host_path("sys/bus/usb/devices/%s/devnum", port_path);
  g_autofree char *text = host_read_attr(path, NULL);
  guint64 devnum;

  return text && g_ascii_string_to_unsigned(text, 10, 1, G_MAXUINT, &devnum, NULL) &&
         devnum != old_device;
}

gboolean
usb_revoke_device_is_still_there(const char *port_path, guint device)
{
  return attr_is(port_path, "devnum", device);
}
