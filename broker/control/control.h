/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * control.h - the per-VM control socket: accepts clients, authorises them
 * by SO_PEERCRED, reads requests and writes replies and events
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include "control-commands.h"
#include "policy.h"

G_BEGIN_DECLS

typedef struct _ControlServer ControlServer;

/**
 * ControlDispatchFunc - run one authorised request, its arguments already
 *   held against @command's table entry (control-commands.h)
 * @client_uid: who asked (SO_PEERCRED), for the audit trail
 * @task: complete it with g_task_return_pointer(task, JsonNode *, json_node_unref)
 *   (NULL for an empty object) or with a GError; the reply goes to the
 *   client that asked, if it is still connected
 */
typedef void (*ControlDispatchFunc)(const ControlCommand *command, JsonObject *arguments,
                                    uid_t client_uid, GTask *task, gpointer user_data);

/**
 * control_server_new() - listen on @socket_path with mode 0660
 * A stale socket file is replaced; a live one (another hostdevd answers
 * on it) is an error.
 * Return: the server, or NULL with @error set.
 */
ControlServer *control_server_new(const char *socket_path, const char *vm,
                                  const Policy *policy, ControlDispatchFunc dispatch,
                                  gpointer user_data, GError **error);

/* Return: FALSE with a Busy @error when a live hostdevd already answers on @socket_path. */
gboolean control_check_socket_free(const char *socket_path, GError **error);

/* control_server_free() - close every client, stop listening and remove the socket file. */
void control_server_free(ControlServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ControlServer, control_server_free)

/* control_server_emit_event() - send an event to every connected client. */
void control_server_emit_event(ControlServer *server, const char *name, JsonObject *data);

G_END_DECLS
