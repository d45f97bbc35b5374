/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config.h"
#include "audit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#if HAVE_LIBAUDIT
#include <libaudit.h>
#endif

typedef struct {
  const char *name;          /* HOSTDEVD_EVENT */
  const char *kernel_reason; /* (nullable) reason= of the kernel audit record, as libvirt's */
  gboolean succeeded;        /* res= of the kernel audit record */
  const char *message_id;
  GLogLevelFlags level;      /* MESSAGE (journald's notice) or WARNING */
  const char *verb;          /* for the human-readable MESSAGE */
} AuditKindInfo;

static const AuditKindInfo kinds[AUDIT_N_KINDS] = {
  [AUDIT_ATTACH] = { "attach", "attach", TRUE, "76f658326c2047a184866df5d5e49b16", G_LOG_LEVEL_MESSAGE,
                     "attached" },
  [AUDIT_ATTACH_FAILED] = { "attach-failed", "attach", FALSE,
                            "c7a325f83cf3452caa8875adf18eb976",
                            G_LOG_LEVEL_WARNING, "could not attach" },
  [AUDIT_DETACH] = { "detach", "detach", TRUE, "dd6a62e2b6364981b08f81aecdf3f9af", G_LOG_LEVEL_MESSAGE,
                     "detached" },
  [AUDIT_DETACH_FAILED] = { "detach-failed", "detach", FALSE,
                            "de6f5a5b5bb34c9199d2623d0a83740b",
                            G_LOG_LEVEL_WARNING, "could not detach" },
  [AUDIT_RELEASED] = { "released", NULL, TRUE, "41a5631fe05d47dd9266673b117d467b", G_LOG_LEVEL_MESSAGE,
                       "gave back to the host" },
  [AUDIT_RELEASE_FAILED] = { "release-failed", NULL, FALSE,
                             "fcec13eeddb4468caf57d9d60db663a4",
                             G_LOG_LEVEL_WARNING, "could not give back to the host" },
  [AUDIT_UNPLUG_REFUSED] = { "unplug-refused", NULL, FALSE,
                             "011fc752c4224da9ac2f243965fdfe7a",
                             G_LOG_LEVEL_WARNING, "was refused the unplug of" },
};

const char *
audit_message_id(AuditKind kind)
{
  g_return_val_if_fail(kind < AUDIT_N_KINDS, NULL);
  return kinds[kind].message_id;
}

#if HAVE_LIBAUDIT
static int kernel_audit_fd = -1;
/* terminal= of the records: what libaudit would find on every record by
 * probing fds 0-2, found once (a daemon's terminal does not change); "" none */
static char kernel_audit_tty[64];

void
audit_open_kernel(void)
{
  kernel_audit_fd = audit_open();
  if (kernel_audit_fd < 0)
    g_debug("no Linux audit records: %s", g_strerror(errno));
  for (int fd = 0; fd <= 2 && kernel_audit_tty[0] == '\0'; fd++) {
    char path[sizeof kernel_audit_tty + 5];
    if (isatty(fd) && ttyname_r(fd, path, sizeof path) == 0)
      g_strlcpy(kernel_audit_tty, g_str_has_prefix(path, "/dev/") ? path + 5 : path,
                sizeof kernel_audit_tty);
  }
}

/* The record libvirt writes for a host device assignment (AUDIT_VIRT_RESOURCE). */
static void
audit_kernel(const AuditKindInfo *info, const AuditRecord *record)
{
  if (kernel_audit_fd < 0 || info->kernel_reason == NULL)
    return;
  g_autofree char *vm = audit_encode_nv_string("vm", record->vm, 0);
  g_autofree char *device = audit_encode_nv_string("device", record->source ? record->source : "?", 0);
  g_autofree char *alias = audit_encode_nv_string("alias", record->alias ? record->alias : "?", 0);
  g_autofree char *message = g_strdup_printf("virt=kvm resrc=dev reason=%s %s %s %s",
                                             info->kernel_reason, vm ? vm : "vm=?",
                                             device ? device : "device=?",
                                             alias ? alias : "alias=?");
  if (audit_log_user_message(kernel_audit_fd, AUDIT_VIRT_RESOURCE, message, NULL, NULL,
                             kernel_audit_tty, info->succeeded) <= 0)
    g_debug("the Linux audit record was not written: %s", g_strerror(errno));
}
#else
void
audit_open_kernel(void)
{
}

static void
audit_kernel(const AuditKindInfo *info, const AuditRecord *record)
{
}
#endif

/* Return: whether stderr is the journal (hostdevd started by systemd); asked once. */
static gboolean
stderr_is_journal(void)
{
  static gsize answer;   /* 0: not asked yet, 1: no, 2: yes */
  if (g_once_init_enter(&answer))
    g_once_init_leave(&answer, g_log_writer_is_journald(fileno(stderr)) ? 2 : 1);
  return answer == 2;
}

void
audit_record(const AuditRecord *record)
{
  g_return_if_fail(record->kind < AUDIT_N_KINDS);
  const AuditKindInfo *info = &kinds[record->kind];
  g_autofree char *uid = record->uid == AUDIT_NO_UID
      ? g_strdup("") : g_strdup_printf("%" G_GINT64_FORMAT, record->uid);
  g_autofree char *full = g_strdup_printf(
      "audit: VM '%s' %s %s%s%s%s%s%s%s%s", record->vm, info->verb,
      record->alias ? record->alias : "a device",
      record->source ? " (" : "", record->source ? record->source : "",
      record->source ? ")" : "", *uid ? " for uid " : "", uid,
      record->detail ? ": " : "", record->detail ? record->detail : "");
  const GLogField fields[] = {
    { "MESSAGE", full, -1 },
    { "MESSAGE_ID", info->message_id, -1 },
    /* g_log_structured_array() adds none: journald's "notice" and "warning" */
    { "PRIORITY", info->level == G_LOG_LEVEL_WARNING ? "4" : "5", -1 },
    { "SYSLOG_IDENTIFIER", "hostdevd", -1 },
    { "HOSTDEVD_EVENT", info->name, -1 },
    { "HOSTDEVD_VM", record->vm, -1 },
    { "HOSTDEVD_ALIAS", record->alias ? record->alias : "", -1 },
    { "HOSTDEVD_SOURCE", record->source ? record->source : "", -1 },
    { "HOSTDEVD_CLIENT_UID", uid, -1 },
    { "HOSTDEVD_RESULT", record->result, -1 },
    { "HOSTDEVD_DETAIL", record->detail ? record->detail : "", -1 },
  };

  audit_kernel(info, record);
  /* under systemd, stderr is the journal: one record with every field */
  if (stderr_is_journal()) {
    g_log_structured_array(info->level, fields, G_N_ELEMENTS(fields));
    return;
  }
  /* otherwise the journal still gets the record (when there is a journald),
   * and stderr its text */
  g_log_writer_journald(info->level, fields, G_N_ELEMENTS(fields), NULL);
  g_log_structured_array(info->level, fields, 1);
}
