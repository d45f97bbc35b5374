/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-hostdev-xml.c - libFuzzer target for hostdev_parse_xml(), the parser
 * of every <hostdev> a client sends
 *
 * Besides "no crash, no leak, no undefined behaviour", it checks a
 * property: what the parser accepted, hostdevd must be able to format and
 * read back (the journal and detach-device rely on it).
 */
#include "hostdev.h"
#include "hostdevd-error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Return: exactly @size bytes, never NULL and not NUL-terminated, so an
 * over-read shows up in ASan. */
static char *
copy_input(const uint8_t *data, size_t size)
{
  char *copy = g_malloc(size ? size : 1);
  if (size)
    memcpy(copy, data, size);
  return copy;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = copy_input(data, size);
  g_autoptr(Hostdev) hostdev = hostdev_parse_xml(xml, size, &error);

  if (hostdev == NULL) {
    if (error == NULL || error->domain != HOSTDEVD_ERROR || error->message[0] == '\0')
      abort();   /* every refusal must say why */
    return 0;
  }
  g_autofree char *formatted = hostdev_format_xml(hostdev);
  g_autofree char *description = hostdev_describe_source(hostdev);
  g_autoptr(GError) again_error = NULL;
  g_autoptr(Hostdev) again = hostdev_parse_live_xml(formatted, strlen(formatted), &again_error);
  if (again == NULL) {
    g_printerr("accepted input does not survive format + parse: %s\n%s\n",
               again_error->message, formatted);
    abort();
  }
  g_autofree char *reformatted = hostdev_format_xml(again);
  if (strcmp(formatted, reformatted) != 0) {
    g_printerr("format is not stable:\n%s\n---\n%s\n", formatted, reformatted);
    abort();
  }
  if (!hostdev_source_matches(hostdev, again))
    abort();
  return 0;
}
