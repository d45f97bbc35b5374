/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp-client.h - asynchronous QMP client on the GLib main loop
 *
 * Knows the QEMU Machine Protocol and nothing about devices: it connects to
 * a QMP Unix socket, reads the greeting, negotiates capabilities, sends
 * commands correlated by "id", and delivers events in the order QEMU sent
 * them, interleaved with replies.  Every command has a timeout and every
 * incoming message a size bound.
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

#define QMP_ERROR (qmp_error_quark())
GQuark qmp_error_quark(void);

/**
 * QmpError:
 * @QMP_ERROR_COMMAND: QEMU answered with {"error": ...} of a class not
 *   listed below; the message is QEMU's "desc".
 * @QMP_ERROR_DEVICE_NOT_FOUND: QEMU's class DeviceNotFound.
 * @QMP_ERROR_COMMAND_NOT_FOUND: QEMU's class CommandNotFound.
 * @QMP_ERROR_TIMEOUT: no reply (or event) within the timeout.
 * @QMP_ERROR_DISCONNECTED: the connection is closed (EOF, or closed by us).
 * @QMP_ERROR_PROTOCOL: QEMU sent something that is not QMP (garbage,
 *   oversized message, wrong greeting).
 * @QMP_ERROR_CONNECT: the socket could not be reached in time.
 * @QMP_ERROR_PEER: the process listening on the socket is not the one
 *   expected (qmp_client_connect_checked_async()).
 */
typedef enum {
  QMP_ERROR_COMMAND,
  QMP_ERROR_DEVICE_NOT_FOUND,
  QMP_ERROR_COMMAND_NOT_FOUND,
  QMP_ERROR_TIMEOUT,
  QMP_ERROR_DISCONNECTED,
  QMP_ERROR_PROTOCOL,
  QMP_ERROR_CONNECT,
  QMP_ERROR_PEER,
} QmpError;

/* Default bound on one incoming message (bytes, without the newline). */
#define QMP_DEFAULT_MAX_MESSAGE (1024 * 1024)
/* Default timeout of one command, in milliseconds. */
#define QMP_DEFAULT_TIMEOUT_MS 10000

#define QMP_TYPE_CLIENT (qmp_client_get_type())
G_DECLARE_FINAL_TYPE(QmpClient, qmp_client, QMP, CLIENT, GObject)

/*
 * The client lives in the thread-default main context of the thread that
 * creates it; all callbacks and signals run there.
 *
 * Signals:
 *  "event"  (QmpClient *, const char *name, JsonObject *data,
 *            gint64 timestamp_us, gpointer user_data)
 *     one per QMP event, in arrival order, after the wait_event waiters it
 *     satisfies; @data is never NULL (an empty object when QEMU sent none);
 *     @timestamp_us is QEMU's timestamp (0 when QEMU sent none).
 *  "closed" (QmpClient *, const GError *reason, gpointer user_data)
 *     emitted once, when the connection ends for any reason (EOF, protocol
 *     error, qmp_client_close()); every pending command and waiter has been
 *     failed with QMP_ERROR_DISCONNECTED before it (their callbacks may run
 *     later in the main loop).  Not emitted when the last reference is
 *     dropped while open: that closes the connection silently.
 */

/**
 * qmp_client_connect_async() - connect to a QMP socket and negotiate
 * @path: the QMP Unix socket
 * @wait_ms: how long to keep retrying while the socket does not exist or
 *   refuses connections (QEMU still starting); 0 tries once
 * Reads the greeting and sends qmp_capabilities before completing.
 */
void qmp_client_connect_async(const char *path, guint wait_ms,
                              GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
/**
 * QmpPeerCheck - may the process listening on the QMP socket be talked to?
 * @pid: its process id from SO_PEERCRED, 0 when unknown
 * @uid: its user id from SO_PEERCRED, (uid_t)-1 when unknown
 * (For a listening socket the kernel reports the credentials the listener
 * had when it called listen().)
 * Return: TRUE, or FALSE with @error saying why not.
 */
typedef gboolean (*QmpPeerCheck)(pid_t pid, uid_t uid, gpointer user_data, GError **error);

/**
 * qmp_client_connect_checked_async() - qmp_client_connect_async() that
 * asks @check about the peer as soon as the socket is connected, before a
 * byte of it is read; a refused peer is disconnected at once, without
 * retrying, and the connect fails with @check's error (QMP_ERROR_PEER is
 * the code to use).
 */
void qmp_client_connect_checked_async(const char *path, guint wait_ms, QmpPeerCheck check,
                                      gpointer check_data, GCancellable *cancellable,
                                      GAsyncReadyCallback callback, gpointer user_data);

/* Return: the negotiated client, or NULL with @error set. */
QmpClient *qmp_client_connect_finish(GAsyncResult *result, GError **error);

/**
 * qmp_client_new_for_connection() - wrap an already connected socket
 * @connection: a connected socket connection (tests use a socketpair)
 * The client does not read until qmp_client_handshake_async() is called.
 */
QmpClient *qmp_client_new_for_connection(GSocketConnection *connection);

/*
 * qmp_client_handshake_async() - read the greeting and send qmp_capabilities
 * Bounded by QMP_DEFAULT_TIMEOUT_MS.  On failure the client is closed.
 */
void qmp_client_handshake_async(QmpClient *self, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data);
/* Return: TRUE once negotiated. */
gboolean qmp_client_handshake_finish(QmpClient *self, GAsyncResult *result,
                                     GError **error);

/**
 * qmp_client_execute_async() - send one command
 * @command: e.g. "device_add"
 * @arguments: (nullable) (transfer none): the "arguments" object
 * @fd: a file descriptor to pass with the command over SCM_RIGHTS (as
 *   QEMU's add-fd/getfd expect), or -1; the client dup()s it
 * @timeout_ms: 0 for QMP_DEFAULT_TIMEOUT_MS
 * Commands may be issued while others are outstanding; replies are
 * matched by "id".  Commands issued during the handshake are held back
 * until it succeeds.  A command that times out or is cancelled before any
 * of it was written is not sent at all; a late reply is dropped.
 */
void qmp_client_execute_async(QmpClient *self, const char *command,
                              JsonObject *arguments, int fd, guint timeout_ms,
                              GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
/**
 * qmp_client_stage() - send @command ahead, all but its last bytes
 * @arguments: (nullable) (transfer none)
 * QEMU reads the staged bytes meanwhile and acts on nothing until
 * qmp_client_execute_async() is called with the same @command and
 * @arguments (and no fd), which sends the three bytes held: QEMU then
 * dispatches it at once instead of first reading it byte by byte.  Any
 * other command queued in between, or qmp_client_unstage(), ends the
 * staged one as a command QEMU refuses, without effect.  Nothing happens
 * when a command is staged already or the connection is not ready.
 */
void qmp_client_stage(QmpClient *self, const char *command, JsonObject *arguments);
/* qmp_client_unstage() - end a staged command without effect (none staged: nothing). */
void qmp_client_unstage(QmpClient *self);

/* Return: (transfer full): the "return" value, or NULL with @error set. */
JsonNode *qmp_client_execute_finish(QmpClient *self, GAsyncResult *result,
                                    GError **error);

/**
 * qmp_client_wait_event_async() - wait for one event
 * @name: event name, e.g. "DEVICE_DELETED"
 * @key: (nullable): a member of the event's data that must be the string
 *   @value (e.g. "device" and "hostdev0"); NULL matches any event of that
 *   name
 * @timeout_ms: 0 waits until the connection closes
 * The waiter is armed before this function returns, so an event caused by
 * a command sent afterwards is never missed.
 */
void qmp_client_wait_event_async(QmpClient *self, const char *name,
                                 const char *key, const char *value,
                                 guint timeout_ms, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data);
/* Return: (transfer full): the event's data, or NULL with @error set. */
JsonObject *qmp_client_wait_event_finish(QmpClient *self, GAsyncResult *result,
                                         GError **error);

/* qmp_client_close() - end the connection; pending commands fail, "closed" is emitted. */
void qmp_client_close(QmpClient *self);

/* Return: whether the connection is still open. */
gboolean qmp_client_is_connected(QmpClient *self);

/* Return: QEMU's version string from the greeting ("7.2.22"), or NULL before it. */
const char *qmp_client_get_qemu_version(QmpClient *self);

/* Return: the peer's process id from SO_PEERCRED, or 0 if unknown. */
pid_t qmp_client_get_peer_pid(QmpClient *self);
/* Return: the peer's user id from SO_PEERCRED, or (uid_t)-1 if unknown. */
uid_t qmp_client_get_peer_uid(QmpClient *self);

/* qmp_client_set_max_message() - bound on one incoming message in bytes (0: the default). */
void qmp_client_set_max_message(QmpClient *self, gsize max_bytes);

/**
 * qmp_message_check() - parse one line QEMU sent, as the client does
 * @line: the line without its newline; NUL termination not required
 * @out: (out) (optional): the message, a JSON object
 * Safe on any bytes: NUL, invalid UTF-8, characters outside the JSON
 * grammar and nesting beyond 1024 levels are refused before parsing.
 * Return: TRUE, or FALSE with a QMP_ERROR_PROTOCOL @error quoting the line.
 */
gboolean qmp_message_check(const char *line, gsize len, JsonNode **out, GError **error);

/**
 * qmp_message_read_empty_return() - the answer QEMU gives most commands
 * (device_add, device_del, qmp_capabilities), exactly as QEMU writes it:
 * {"return": {}, "id": N}, N a decimal integer of at most 18 digits
 * @line: the line without its newline; NUL termination not required
 * qmp_message_check() reads such a line without a JSON parser; the tree is
 * the one json-glib builds from it.
 * Return: (transfer full) (nullable): the message, or NULL for any other line.
 */
JsonNode *qmp_message_read_empty_return(const char *line, gsize len);

G_END_DECLS
