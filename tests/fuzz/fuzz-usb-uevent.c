/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-usb-uevent.c - libFuzzer target for usb_uevent_parse(), which reads
 * what arrives on the kernel's uevent socket
 */
#include "usb-uevent.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Return: whether @devpath has an empty, "." or ".." component (a name such
 * as "..000:00" is a plain component: it climbs nowhere). */
static gboolean
has_dot_component(const char *devpath)
{
  g_auto(GStrv) parts = g_strsplit(devpath + (devpath[0] == '/'), "/", -1);
  for (guint i = 0; parts[i]; i++)
    if (parts[i][0] == '\0' || strcmp(parts[i], ".") == 0 || strcmp(parts[i], "..") == 0)
      return TRUE;
  return FALSE;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(UsbUevent) event = NULL;
  /* exactly @size bytes, so an over-read shows up in ASan */
  g_autofree guint8 *copy = g_malloc(size ? size : 1);

  if (size)
    memcpy(copy, data, size);
  event = usb_uevent_parse(copy, size, &error);
  if (event == NULL) {
    if (error == NULL || error->domain != USB_UEVENT_ERROR ||
        !g_utf8_validate(error->message, -1, NULL))
      abort();
    return 0;
  }
  /* what got through is a checked USB device event */
  if (error != NULL || event->devpath == NULL || has_dot_component(event->devpath) ||
      event->bus < 1 || event->bus > 0xffff || event->device < 1 || event->device > 127 ||
      event->vendor > 0xffff || event->product > 0xffff || event->bcd_device > 0xffff ||
      event->action == USB_UEVENT_LOST)
    abort();
  return 0;
}
