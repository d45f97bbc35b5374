/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "process-identity.h"
#include "json-text.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

/*
 * read_stat() - @pid's start time and whether it is a zombie (exited, not
 * yet reaped: its files are closed)
 * Return: FALSE when /proc cannot tell (no such process, or hidden).
 */
static gboolean
read_stat(pid_t pid, guint64 *start_time, gboolean *zombie)
{
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_auto(GStrv) fields = NULL;
  const char *after_comm;

  if (pid <= 0)
    return FALSE;
  path = g_strdup_printf("/proc/%d/stat", (int)pid);
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return FALSE;
  /* the command name may hold spaces and parentheses: skip to the last ')' */
  after_comm = strrchr(text, ')');
  if (after_comm == NULL || after_comm[1] == '\0')
    return FALSE;
  fields = g_strsplit(after_comm + 2, " ", 0);
  /* field 3 (state) is fields[0]; field 22 (starttime) is fields[19] */
  if (g_strv_length(fields) < 20 ||
      !g_ascii_string_to_unsigned(fields[19], 10, 0, G_MAXUINT64, start_time, NULL))
    return FALSE;
  *zombie = strcmp(fields[0], "Z") == 0 || strcmp(fields[0], "X") == 0;
  return TRUE;
}

guint64
process_start_time(pid_t pid)
{
  guint64 start_time = 0;
  gboolean zombie = FALSE;

  if (!read_stat(pid, &start_time, &zombie) || zombie)
    return 0;
  return start_time;
}

ProcessIdentity
process_identity_of(pid_t pid)
{
  ProcessIdentity identity = { .pid = pid > 0 ? pid : 0 };
  identity.start_time = process_start_time(identity.pid);
  return identity;
}

gboolean
process_identity_alive(const ProcessIdentity *identity)
{
  guint64 now_start = 0;
  gboolean zombie = FALSE;

  if (identity == NULL || identity->pid <= 0)
    return FALSE;
  if (read_stat(identity->pid, &now_start, &zombie))
    return !zombie && (identity->start_time == 0 || now_start == identity->start_time);
  /* /proc cannot tell (gone, or hidden by hidepid=): trust kill(), so that a
   * live process is never taken for a dead one */
  return kill(identity->pid, 0) == 0 || errno == EPERM;
}

gboolean
process_identity_equal(const ProcessIdentity *a, const ProcessIdentity *b)
{
  return a->pid > 0 && a->pid == b->pid && a->start_time == b->start_time;
}

JsonObject *
process_identity_to_json(const ProcessIdentity *identity)
{
  JsonObject *object = json_object_new();
  json_object_set_int_member(object, "pid", identity->pid);
  json_object_set_int_member(object, "start-time", (gint64)identity->start_time);
  return object;
}

void
process_identity_append_json(GString *out, const ProcessIdentity *identity)
{
  json_text_object_begin(out);
  json_text_member_int(out, "pid", identity->pid);
  json_text_member_int(out, "start-time", (gint64)identity->start_time);
  json_text_object_end(out);
}

ProcessIdentity
process_identity_from_json(JsonObject *object)
{
  ProcessIdentity identity = { 0 };
  if (object == NULL)
    return identity;
  gint64 pid = json_object_get_int_member_with_default(object, "pid", 0);
  gint64 start = json_object_get_int_member_with_default(object, "start-time", 0);
  /* a pid from a file is only believed within pid_t's range; no start time, no identity */
  if (pid > 0 && pid <= G_MAXINT32 && start > 0) {
    identity.pid = (pid_t)pid;
    identity.start_time = (guint64)start;
  }
  return identity;
}
