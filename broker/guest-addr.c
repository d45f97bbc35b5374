/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "guest-addr.h"

#include <stdio.h>
#include <string.h>

/* A port path is dotted decimal: "1", "1.4", "2.1.3". */
static gboolean
is_port_path(const char *text)
{
  gboolean digit_seen = FALSE;
  for (const char *p = text; *p; p++) {
    if (g_ascii_isdigit(*p))
      digit_seen = TRUE;
    else if (*p == '.' && digit_seen)
      digit_seen = FALSE;
    else
      return FALSE;
  }
  return digit_seen;
}

gboolean
guest_usb_address_from_query(const char *text, const char *id, guint *bus, char **port)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

  for (char **line = lines; *line; line++) {
    const char *id_field = strstr(*line, ", ID: ");
    if (id_field == NULL)
      continue;
    g_autofree char *found_id = g_strstrip(g_strdup(id_field + strlen(", ID: ")));
    if (g_strcmp0(found_id, id) != 0)
      continue;
    guint bus_number, device_address;
    char port_buf[64] = "";
    if (sscanf(*line, " Device %u.%u, Port %63[0-9.],", &bus_number, &device_address,
               port_buf) != 3 || !is_port_path(port_buf))
      return FALSE;
    *bus = bus_number;
    *port = g_strdup(port_buf);
    return TRUE;
  }
  return FALSE;
}
