/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * process-identity.h - a process named so that a recycled pid is not
 * mistaken for it: its pid and its start time (field 22 of
 * /proc/PID/stat, clock ticks since boot)
 *
 * These are real processes (hostdevd, QEMU), so /proc is the real one,
 * never under the host root.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

typedef struct {
  pid_t pid;           /* 0: unknown */
  guint64 start_time;  /* 0: unknown (e.g. /proc unreadable) */
} ProcessIdentity;

/* Return: the start time of @pid, or 0 when it does not run or /proc cannot tell. */
guint64 process_start_time(pid_t pid);

/* process_identity_of() - name the running process @pid (pid 0 or a dead pid: unknown start). */
ProcessIdentity process_identity_of(pid_t pid);

/* Return: whether the process @identity names still runs: not a zombie and, when its
 * start time is known, not a recycled pid; when /proc cannot tell, kill(pid, 0) decides. */
gboolean process_identity_alive(const ProcessIdentity *identity);

/* Return: whether both name the same process (both known and equal). */
gboolean process_identity_equal(const ProcessIdentity *a, const ProcessIdentity *b);

/* Return: (transfer full): {"pid", "start-time"}. */
JsonObject *process_identity_to_json(const ProcessIdentity *identity);
/* process_identity_append_json() - the same object as text, appended to @out (json-text.h) */
void process_identity_append_json(GString *out, const ProcessIdentity *identity);

/* process_identity_from_json() - read {"pid", "start-time"}; anything else gives an unknown identity. */
ProcessIdentity process_identity_from_json(JsonObject *object);

G_END_DECLS
