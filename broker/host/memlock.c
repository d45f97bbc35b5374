/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * memlock.c - QEMU's locked-memory limit for VFIO
 */
#define G_LOG_DOMAIN "hostdevd"

#include "memlock.h"
#include "host-root.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

static guint64
limit_to_bytes(rlim_t value)
{
  return value == RLIM_INFINITY ? G_MAXUINT64 : (guint64)value;
}

static rlim_t
bytes_to_limit(guint64 bytes)
{
  return bytes == G_MAXUINT64 || bytes >= (guint64)RLIM_INFINITY ? RLIM_INFINITY : (rlim_t)bytes;
}

guint64
memlock_needed_for_guest(guint64 guest_ram_bytes, guint n_vfio_devices,
                         gboolean guest_viommu)
{
  guint64 copies = guest_viommu ? n_vfio_devices : 1;
  guint64 pinned;

  if (n_vfio_devices == 0)
    return 0;
  if (guest_ram_bytes != 0 && copies > G_MAXUINT64 / guest_ram_bytes)
    return G_MAXUINT64;
  pinned = guest_ram_bytes * copies;
  if (pinned > G_MAXUINT64 - MEMLOCK_MARGIN_BYTES)
    return G_MAXUINT64;
  return pinned + MEMLOCK_MARGIN_BYTES;
}

guint64
memlock_host_ram_bytes(GError **error)
{
  g_autofree char *path = host_path("proc/meminfo");
  g_autofree char *display = host_path_display(path);
  g_autofree char *text = NULL;
  g_autoptr(GError) local = NULL;

  if (!g_file_get_contents(path, &text, NULL, &local)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read the host's memory size from %s: %s", display, local->message);
    return 0;
  }
  /* "MemTotal:       16318428 kB", the first line */
  const char *line = g_str_has_prefix(text, "MemTotal:") ? text : strstr(text, "\nMemTotal:");
  if (line != NULL) {
    const char *number = line + strspn(line, "\n") + strlen("MemTotal:");
    number += strspn(number, " \t");
    gsize digits = strspn(number, "0123456789");
    g_autofree char *value = g_strndup(number, digits);
    const char *unit = number + digits + strspn(number + digits, " \t");
    guint64 kib;
    if (g_str_has_prefix(unit, "kB") && (unit[2] == '\n' || unit[2] == '\0') &&
        g_ascii_string_to_unsigned(value, 10, 1, G_MAXUINT64 / 1024, &kib, NULL))
      return kib * 1024;
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot read the host's memory size: %s has no valid 'MemTotal: N kB' line",
              display);
  return 0;
}

gboolean
memlock_needed_for_reported_guest(guint64 reported_ram_bytes, guint64 host_ram_bytes,
                                  guint n_vfio_devices, gboolean guest_viommu,
                                  guint64 *needed, GError **error)
{
  *needed = 0;
  if (n_vfio_devices == 0)
    return TRUE;

  g_autofree char *ram = memlock_format_bytes(reported_ram_bytes);
  if (reported_ram_bytes > host_ram_bytes) {
    g_autofree char *have = memlock_format_bytes(host_ram_bytes);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                "QEMU reports %s of guest RAM (%" G_GUINT64_FORMAT " bytes, "
                "query-memory-size-summary), more than the host's %s (MemTotal): VFIO pins "
                "guest RAM in host memory, so this cannot be true; QEMU's locked-memory "
                "limit was left as it is", ram, reported_ram_bytes, have);
    return FALSE;
  }
  guint64 copies = guest_viommu ? n_vfio_devices : 1;
  if ((reported_ram_bytes != 0 && copies > G_MAXUINT64 / reported_ram_bytes) ||
      reported_ram_bytes * copies > G_MAXUINT64 - 1 - MEMLOCK_MARGIN_BYTES) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_QEMU_ERROR,
                "the locked-memory limit for %u VFIO devices behind a vIOMMU, each able to "
                "pin all %s of guest RAM QEMU reports, does not fit in 64 bits; QEMU's "
                "locked-memory limit was left as it is", n_vfio_devices, ram);
    return FALSE;
  }
  *needed = memlock_needed_for_guest(reported_ram_bytes, n_vfio_devices, guest_viommu);
  return TRUE;
}

gboolean
memlock_qom_type_is_viommu(const char *qom_type)
{
  /* the devices that put assigned devices behind a guest-visible IOMMU;
   * AMDVI-PCI is the PCI half amd-iommu adds */
  static const char *const viommus[] = {
    "intel-iommu", "amd-iommu", "AMDVI-PCI", "virtio-iommu-pci", "virtio-iommu-device",
    "arm-smmuv3", NULL,
  };
  g_autofree char *type = NULL;
  gsize len;

  if (qom_type == NULL)
    return FALSE;
  len = strlen(qom_type);
  if (g_str_has_prefix(qom_type, "child<") && len > 7 && qom_type[len - 1] == '>')
    type = g_strndup(qom_type + 6, len - 7);
  else
    type = g_strdup(qom_type);
  return g_strv_contains(viommus, type);
}

gboolean
memlock_guest_has_viommu(const char *const *qom_types)
{
  for (gsize i = 0; qom_types != NULL && qom_types[i] != NULL; i++)
    if (memlock_qom_type_is_viommu(qom_types[i]))
      return TRUE;
  return FALSE;
}

char *
memlock_format_bytes(guint64 bytes)
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double value = (double)bytes;
  int unit = -1;

  if (bytes == G_MAXUINT64)
    return g_strdup("unlimited");
  if (bytes < 1024)
    return g_strdup_printf("%" G_GUINT64_FORMAT " bytes", bytes);
  /* plain ASCII: GLib's g_format_size() puts a no-break space in */
  while (value >= 1024 && unit + 1 < (int)G_N_ELEMENTS(units)) {
    value /= 1024;
    unit++;
  }
  return g_strdup_printf("%.1f %s", value, units[unit]);
}

gboolean
memlock_get(pid_t pid, guint64 *soft, guint64 *hard, GError **error)
{
  struct rlimit old;

  if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &old) < 0) {
    int saved = errno;
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                saved == ESRCH ? "cannot read the locked-memory limit of QEMU "
                                 "(pid %d): the process is gone: %s"
                               : "cannot read the locked-memory limit of QEMU "
                                 "(pid %d): %s",
                (int)pid, g_strerror(saved));
    return FALSE;
  }
  *soft = limit_to_bytes(old.rlim_cur);
  *hard = limit_to_bytes(old.rlim_max);
  return TRUE;
}

gboolean
memlock_restore(pid_t pid, guint64 soft, guint64 hard, GError **error)
{
  struct rlimit before = { .rlim_cur = bytes_to_limit(soft), .rlim_max = bytes_to_limit(hard) };

  if (pid > 0 && prlimit(pid, RLIMIT_MEMLOCK, &before, NULL) == 0)
    return TRUE;
  if (errno == ESRCH)
    return TRUE;   /* QEMU is gone, and its limit with it */
  int saved = errno;
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot set the locked-memory limit of QEMU (pid %d) back: %s", (int)pid,
              g_strerror(saved));
  return FALSE;
}

gboolean
memlock_raise(pid_t pid, guint64 bytes, GError **error)
{
  guint64 soft, hard;
  struct rlimit wanted;
  g_autofree char *want = NULL;
  g_autofree char *have = NULL;

  if (pid <= 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "no QEMU process to raise the locked-memory limit of (pid %d)",
                (int)pid);
    return FALSE;
  }
  if (!memlock_get(pid, &soft, &hard, error))
    return FALSE;
  if (soft >= bytes)
    return TRUE;

  wanted.rlim_cur = bytes_to_limit(bytes);
  wanted.rlim_max = hard >= bytes ? bytes_to_limit(hard) : bytes_to_limit(bytes);
  if (prlimit(pid, RLIMIT_MEMLOCK, &wanted, NULL) == 0) {
    g_debug("RLIMIT_MEMLOCK of QEMU (pid %d) raised to %" G_GUINT64_FORMAT " bytes",
            (int)pid, bytes);
    return TRUE;
  }

  want = memlock_format_bytes(bytes);
  have = memlock_format_bytes(hard);
  switch (errno) {
  case ESRCH:
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot raise the locked-memory limit of QEMU (pid %d): the "
                "process is gone", (int)pid);
    break;
  case EPERM:
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "QEMU (pid %d) may lock only %s of memory (hard "
                "RLIMIT_MEMLOCK), but VFIO needs %s to pin guest RAM, and "
                "hostdevd may not raise it: give hostdevd CAP_SYS_RESOURCE "
                "(and run it as QEMU's user or as root), or start QEMU with a "
                "higher limit (systemd: LimitMEMLOCK=%" G_GUINT64_FORMAT " or "
                "infinity; shell: ulimit -l unlimited; "
                "/etc/security/limits.conf: memlock)",
                (int)pid, have, want, bytes);
    break;
  default:
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot raise the locked-memory limit of QEMU (pid %d) to %s: %s",
                (int)pid, want, g_strerror(errno));
    break;
  }
  return FALSE;
}
