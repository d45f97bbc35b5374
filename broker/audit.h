/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * audit.h - the audit trail: one structured record per device assignment
 *
 * Every attach, detach, host return and failure becomes one journald
 * record with a stable MESSAGE_ID per kind and HOSTDEVD_* fields (the VM,
 * the alias, the host source, the client's uid, the result), sent to
 * journald's native socket whether or not stderr goes to the journal, and
 * also logged as a line on stderr; attaches and detaches also go to the
 * Linux audit log where there is one (audit_open_kernel()).  The IDs and fields are documented in
 * README.md ("Audit trail") and hostdevd(8).
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

typedef enum {
  AUDIT_ATTACH,          /* a device was attached */
  AUDIT_ATTACH_FAILED,   /* an attach request failed: nothing of it is attached */
  AUDIT_DETACH,          /* a detach request removed a device (or asked the guest to) */
  AUDIT_DETACH_FAILED,   /* a detach request failed */
  AUDIT_RELEASED,        /* a device left the VM and is the host's again */
  AUDIT_RELEASE_FAILED,  /* it left QEMU, but giving it back to the host failed */
  AUDIT_UNPLUG_REFUSED,  /* the guest refused a pending unplug: the device stays */
  AUDIT_N_KINDS
} AuditKind;

#define AUDIT_NO_UID ((gint64)-1)

typedef struct {
  AuditKind kind;
  const char *vm;
  const char *alias;     /* (nullable) not known when an attach failed early */
  const char *source;    /* (nullable) the host device, as list-devices shows it */
  gint64 uid;            /* the client that asked, or AUDIT_NO_UID (QEMU or the guest did) */
  const char *result;    /* "ok", "pending", or an error class */
  const char *detail;    /* (nullable) the error's text, or why */
} AuditRecord;

/* audit_open_kernel() - at start-up, before the sandbox: where the kernel has
 * an audit subsystem (and hostdevd was built with libaudit), attaches and
 * detaches also become AUDIT_VIRT_RESOURCE records, as libvirt writes them. */
void audit_open_kernel(void);

/* Return: the MESSAGE_ID of @kind (32 hex digits). */
const char *audit_message_id(AuditKind kind);

/* audit_record() - write @record to the journal and the log. */
void audit_record(const AuditRecord *record);

G_END_DECLS
