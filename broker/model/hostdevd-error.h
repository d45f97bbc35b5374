/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdevd-error.h - the error domain every user-visible failure travels in
 *
 * The codes are the stable error classes of the control protocol
 * (DESIGN.md "Protocols").  The message of such an error says what was
 * wrong and what to do; it is sent to the client as "desc" unchanged.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define HOSTDEVD_ERROR (hostdevd_error_quark())
GQuark hostdevd_error_quark(void);

typedef enum {
  HOSTDEVD_ERROR_INVALID_XML,      /* "InvalidXML": not well-formed, or not a hostdev */
  HOSTDEVD_ERROR_INVALID_ARGUMENT, /* "InvalidArgument": well-formed but wrong values */
  HOSTDEVD_ERROR_POLICY_DENIED,    /* "PolicyDenied" */
  HOSTDEVD_ERROR_NOT_FOUND,        /* "NotFound": no such host or guest device */
  HOSTDEVD_ERROR_BUSY,             /* "Busy": in use, by this VM or another */
  HOSTDEVD_ERROR_HOST_ERROR,       /* "HostError": the host is not ready (IOMMU, driver, ...) */
  HOSTDEVD_ERROR_QEMU_ERROR,       /* "QemuError": QEMU refused or went away */
  HOSTDEVD_ERROR_TIMEOUT,          /* "Timeout" */
} HostdevdError;

/* Return: the wire class name of a HOSTDEVD_ERROR; "HostError" for errors
 * of other domains (control-proto.c maps QMP errors before asking). */
const char *hostdevd_error_class(const GError *error);

/* Return: the HostdevdError code for a wire class name, or -1 if unknown. */
int hostdevd_error_code_from_class(const char *class_name);

G_END_DECLS
