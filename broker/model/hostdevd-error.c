/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hostdevd-error.h"

G_DEFINE_QUARK(hostdevd-error-quark, hostdevd_error)

static const char *const class_names[] = {
  [HOSTDEVD_ERROR_INVALID_XML] = "InvalidXML",
  [HOSTDEVD_ERROR_INVALID_ARGUMENT] = "InvalidArgument",
  [HOSTDEVD_ERROR_POLICY_DENIED] = "PolicyDenied",
  [HOSTDEVD_ERROR_NOT_FOUND] = "NotFound",
  [HOSTDEVD_ERROR_BUSY] = "Busy",
  [HOSTDEVD_ERROR_HOST_ERROR] = "HostError",
  [HOSTDEVD_ERROR_QEMU_ERROR] = "QemuError",
  [HOSTDEVD_ERROR_TIMEOUT] = "Timeout",
};

const char *
hostdevd_error_class(const GError *error)
{
  if (error->domain == HOSTDEVD_ERROR &&
      error->code >= 0 && (gsize)error->code < G_N_ELEMENTS(class_names))
    return class_names[error->code];
  return "HostError";
}

int
hostdevd_error_code_from_class(const char *class_name)
{
  for (gsize i = 0; i < G_N_ELEMENTS(class_names); i++)
    if (g_strcmp0(class_names[i], class_name) == 0)
      return (int)i;
  return -1;
}
