/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "config.h"
#include "control.h"
#include "control-proto.h"
#include "hostdevd-error.h"
#include "line-reader.h"

#include <errno.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>

/* A client that does not read its replies and events is dropped past this. */
#define CLIENT_MAX_QUEUED (256 * 1024)

/*
 * Bounds that keep one client from stalling the others or QEMU's events
 * (all share one main loop).  Requests are rate-limited by a token bucket
 * checked before anything is parsed; a client that keeps sending past it
 * is dropped.  Connections are bounded in total and per uid; read-only
 * peers share half of them, and root has a reserve on top.
 */
#define CLIENT_RATE_BURST 100          /* requests at once */
#define CLIENT_RATE_PER_SECOND 50      /* sustained requests per second */
#define CLIENT_MAX_REFUSED 1000        /* over-rate requests in a row before the drop */
#define CLIENT_MAX_IN_FLIGHT 16        /* attach/detach requests still running per client */
#define SERVER_MAX_CLIENTS 64
#define SERVER_MAX_CLIENTS_PER_UID 16  /* root is not limited by this */
#define SERVER_MAX_READ_ONLY_CLIENTS 32 /* read-only peers together: the rest is kept for
                                         * those who may change something */
#define SERVER_ROOT_RESERVE 8          /* root connects even when the others filled the server */

typedef struct _ControlClient ControlClient;

struct _ControlServer {
  char *socket_path;
  char *vm;
  const Policy *policy;
  ControlDispatchFunc dispatch;
  gpointer user_data;
  GSocketService *service;
  GList *clients;            /* ControlClient*, each holding one reference */
};

/*
 * A client outlives its connection while requests it sent are still
 * running: each running request holds a reference, and its reply is
 * dropped when the client has gone away meanwhile.
 */
struct _ControlClient {
  gint refcount;
  ControlServer *server;     /* NULL once disconnected */
  GSocketConnection *connection;
  LineReader *reader;
  PolicyAccess access;
  char *access_rule;
  uid_t uid;
  GQueue outgoing;           /* GBytes */
  gsize queued_bytes;
  gboolean writing;
  double tokens;             /* rate limit: requests it may send now */
  gint64 tokens_updated;     /* g_get_monotonic_time() of the last refill */
  guint refused_in_row;      /* requests refused by the rate limit since the last accepted */
  guint in_flight;           /* attach/detach requests dispatched and not answered yet */
};

typedef struct {
  ControlClient *client;
  JsonNode *id;
  gboolean counted;          /* in client->in_flight */
} PendingRequest;

static void client_disconnect(ControlClient *client);

static ControlClient *
client_ref(ControlClient *client)
{
  g_atomic_int_inc(&client->refcount);
  return client;
}

static void
client_unref(ControlClient *client)
{
  if (!g_atomic_int_dec_and_test(&client->refcount))
    return;
  g_queue_clear_full(&client->outgoing, (GDestroyNotify)g_bytes_unref);
  g_clear_object(&client->connection);
  g_free(client->access_rule);
  g_free(client);
}

static void write_next(ControlClient *client);

static void
on_written(GObject *source, GAsyncResult *result, gpointer user_data)
{
  ControlClient *client = user_data;
  g_autoptr(GError) error = NULL;

  client->writing = FALSE;
  if (!g_output_stream_write_all_finish(G_OUTPUT_STREAM(source), result, NULL, &error)) {
    g_debug("control client write failed: %s", error->message);
    client_disconnect(client);
  } else {
    GBytes *done = g_queue_pop_head(&client->outgoing);
    client->queued_bytes -= g_bytes_get_size(done);
    g_bytes_unref(done);
    write_next(client);
  }
  client_unref(client);
}

/*
 * send_now() - what the socket takes at once of the queue's head, without a
 * main-loop iteration; the rest (a full socket buffer) goes asynchronously.
 * Return: FALSE when the queue is empty now.
 */
static gboolean
send_now(ControlClient *client)
{
  GSocket *socket = g_socket_connection_get_socket(client->connection);

  while (!g_queue_is_empty(&client->outgoing)) {
    GBytes *bytes = g_queue_peek_head(&client->outgoing);
    gsize size;
    const char *data = g_bytes_get_data(bytes, &size);
    gssize sent = g_socket_send_with_blocking(socket, data, size, FALSE, NULL, NULL);
    if (sent <= 0)
      return TRUE;   /* would block, or an error the asynchronous write reports */
    client->queued_bytes -= (gsize)sent;
    GBytes *rest = (gsize)sent < size
        ? g_bytes_new_from_bytes(bytes, (gsize)sent, size - (gsize)sent) : NULL;
    g_bytes_unref(g_queue_pop_head(&client->outgoing));
    if (rest) {
      g_queue_push_head(&client->outgoing, rest);
      return TRUE;
    }
  }
  return FALSE;
}

static void
write_next(ControlClient *client)
{
  if (client->writing || client->server == NULL || g_queue_is_empty(&client->outgoing))
    return;
  if (!send_now(client))
    return;
  GBytes *bytes = g_queue_peek_head(&client->outgoing);
  gsize size;
  const void *data = g_bytes_get_data(bytes, &size);
  client->writing = TRUE;
  g_output_stream_write_all_async(
      g_io_stream_get_output_stream(G_IO_STREAM(client->connection)), data, size,
      G_PRIORITY_DEFAULT, NULL, on_written, client_ref(client));
}

/* client_send() - queue one line; the client is dropped if it stopped reading. */
static void
client_send(ControlClient *client, char *line /* transfer full */)
{
  if (client->server == NULL) {
    g_free(line);
    return;
  }
  gsize length = strlen(line);
  g_autofree char *with_newline = g_strconcat(line, "\n", NULL);
  g_free(line);
  /* one reply of any size may wait; a backlog beyond the bound may not */
  if (client->queued_bytes > 0 && client->queued_bytes + length + 1 > CLIENT_MAX_QUEUED) {
    g_message("dropping control client uid %u: it does not read its replies", client->uid);
    client_disconnect(client);
    return;
  }
  client->queued_bytes += length + 1;
  g_queue_push_tail(&client->outgoing, g_bytes_new_take(g_steal_pointer(&with_newline), length + 1));
  write_next(client);
}

static void
client_disconnect(ControlClient *client)
{
  ControlServer *server = client->server;

  if (server == NULL)
    return;
  client->server = NULL;
  g_clear_pointer(&client->reader, line_reader_free);
  g_io_stream_close(G_IO_STREAM(client->connection), NULL, NULL);
  server->clients = g_list_remove(server->clients, client);
  client_unref(client);
}

static void
on_request_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  PendingRequest *pending = user_data;
  g_autoptr(GError) error = NULL;
  JsonNode *value = g_task_propagate_pointer(G_TASK(result), &error);

  if (pending->counted)
    pending->client->in_flight--;
  if (error)
    client_send(pending->client, control_format_error(error, pending->id));
  else
    client_send(pending->client, control_format_return(value, pending->id));
  if (value)
    json_node_unref(value);
  client_unref(pending->client);
  if (pending->id)
    json_node_unref(pending->id);
  g_free(pending);
}

static void
reply_error(ControlClient *client, JsonNode *id, int code, const char *format, ...)
    G_GNUC_PRINTF(4, 5);

static void
reply_error(ControlClient *client, JsonNode *id, int code, const char *format, ...)
{
  va_list args;
  va_start(args, format);
  g_autofree char *message = g_strdup_vprintf(format, args);
  va_end(args);
  g_autoptr(GError) error = g_error_new_literal(HOSTDEVD_ERROR, code, message);
  client_send(client, control_format_error(error, id));
}

/* client_take_token() - the rate limit. Return: FALSE when @client is over it. */
static gboolean
client_take_token(ControlClient *client)
{
  gint64 now = g_get_monotonic_time();
  double elapsed = (double)(now - client->tokens_updated) / G_USEC_PER_SEC;
  client->tokens = MIN((double)CLIENT_RATE_BURST,
                       client->tokens + elapsed * CLIENT_RATE_PER_SECOND);
  client->tokens_updated = now;
  if (client->tokens < 1)
    return FALSE;
  client->tokens -= 1;
  return TRUE;
}

/* refuse_connection() - answer a peer with one error line, then close. */
static void
refuse_connection(GSocketConnection *connection, const GError *refusal)
{
  g_autofree char *line = control_format_error(refusal, NULL);
  g_autofree char *with_newline = g_strconcat(line, "\n", NULL);
  /* A fresh socket's buffer takes one short line without blocking. */
  g_socket_send(g_socket_connection_get_socket(connection), with_newline,
                strlen(with_newline), NULL, NULL);
  g_io_stream_close(G_IO_STREAM(connection), NULL, NULL);
}

/* Return: how many clients of @uid are connected. */
static guint
count_clients_of(ControlServer *server, uid_t uid)
{
  guint n = 0;
  for (GList *l = server->clients; l; l = l->next)
    n += ((ControlClient *)l->data)->uid == uid;
  return n;
}

static guint
count_read_only_clients(ControlServer *server)
{
  guint n = 0;
  for (GList *l = server->clients; l; l = l->next)
    n += ((ControlClient *)l->data)->access == POLICY_ACCESS_READ;
  return n;
}

/*
 * capacity_refusal() - why a new connection of @uid with @access does not
 * fit, or NULL.  Read-only peers share half the connections, so they can
 * never lock out those who may change something; root has a reserve of
 * its own on top of everyone's.
 */
static const char *
capacity_refusal(ControlServer *server, uid_t uid, PolicyAccess access)
{
  guint n_clients = g_list_length(server->clients);
  if (uid == 0)
    return n_clients >= SERVER_MAX_CLIENTS + SERVER_ROOT_RESERVE
               ? "every connection root may have is in use" : NULL;
  if (n_clients >= SERVER_MAX_CLIENTS)
    return "every connection is in use";
  if (count_clients_of(server, uid) >= SERVER_MAX_CLIENTS_PER_UID)
    return "this user has as many connections as one user may have";
  if (access == POLICY_ACCESS_READ &&
      count_read_only_clients(server) >= SERVER_MAX_READ_ONLY_CLIENTS)
    return "read-only users together have as many connections as they may have (the rest "
           "is kept for users who may attach and detach)";
  return NULL;
}

static gboolean
on_line(const char *line, gsize length, gpointer user_data)
{
  ControlClient *client = user_data;
  ControlServer *server = client->server;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) id = NULL;

  if (line == NULL) {
    reply_error(client, NULL, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "request exceeds the limit of %d bytes and was discarded",
                CONTROL_MAX_REQUEST);
    return client->server != NULL;
  }
  if (length == 0)
    return TRUE;
  if (!client_take_token(client)) {
    if (++client->refused_in_row >= CLIENT_MAX_REFUSED) {
      g_message("dropping control client uid %u: %u requests over the rate limit",
                client->uid, client->refused_in_row);
      client_disconnect(client);
      return FALSE;
    }
    /* answered unparsed, so without its id; a client that does not read
     * these is dropped by the output bound */
    reply_error(client, NULL, HOSTDEVD_ERROR_BUSY,
                "too many requests: at most %d at once and %d per second; "
                "this one was not run, retry later", CLIENT_RATE_BURST,
                CLIENT_RATE_PER_SECOND);
    return client->server != NULL;
  }
  client->refused_in_row = 0;

  g_autoptr(ControlRequest) request = control_request_parse(line, length, &id, &error);
  if (request == NULL) {
    client_send(client, control_format_error(error, id));
    return client->server != NULL;
  }
  const ControlCommand *command = control_command_lookup(request->command);
  if (command == NULL) {
    g_autofree char *names = control_command_names();
    reply_error(client, request->id, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "unknown command '%s'; commands are %s", request->command, names);
    return client->server != NULL;
  }
  if (client->access < command->access) {
    reply_error(client, request->id, HOSTDEVD_ERROR_POLICY_DENIED,
                "'%s' needs full access, but uid %u may only read (%s)",
                request->command, client->uid, client->access_rule);
    return client->server != NULL;
  }
  GError *invalid = NULL;
  if (!control_command_check_arguments(command, request->arguments, &invalid)) {
    client_send(client, control_format_error(invalid, request->id));
    g_error_free(invalid);
    return client->server != NULL;
  }

  /* reads answer at once; attach and detach queue work that takes seconds */
  gboolean counted = command->long_running;
  if (counted && client->in_flight >= CLIENT_MAX_IN_FLIGHT) {
    reply_error(client, request->id, HOSTDEVD_ERROR_BUSY,
                "%d requests of this client are still running; wait for their replies",
                CLIENT_MAX_IN_FLIGHT);
    return client->server != NULL;
  }

  client->in_flight += counted;
  PendingRequest *pending = g_new0(PendingRequest, 1);
  pending->client = client_ref(client);
  pending->counted = counted;
  pending->id = request->id ? json_node_ref(request->id) : NULL;
  g_autoptr(GTask) task = g_task_new(NULL, NULL, on_request_done, pending);
  g_task_set_source_tag(task, on_line);
  server->dispatch(command, request->arguments, client->uid, task, server->user_data);
  return client->server != NULL;
}

static void
on_end(const GError *error, gpointer user_data)
{
  ControlClient *client = user_data;
  if (error)
    g_debug("control client read failed: %s", error->message);
  client_disconnect(client);
}

static gboolean
on_incoming(GSocketService *service, GSocketConnection *connection,
            GObject *source_object, gpointer user_data)
{
  ControlServer *server = user_data;
  g_autoptr(GError) error = NULL;
  GSocket *socket = g_socket_connection_get_socket(connection);
  g_autoptr(GCredentials) credentials = g_socket_get_credentials(socket, &error);

  if (credentials == NULL) {
    g_warning("control client without credentials refused: %s", error->message);
    return TRUE;
  }
  uid_t uid = g_credentials_get_unix_user(credentials, NULL);
  gid_t gid = (gid_t)-1;
  const struct ucred *ucred = g_credentials_get_native(credentials, G_CREDENTIALS_TYPE_LINUX_UCRED);
  if (ucred)
    gid = ucred->gid;

  const char *rule = NULL;
  PolicyAccess access = policy_client_access(server->policy, server->vm, uid, gid, &rule);
  if (access == POLICY_ACCESS_NONE) {
    g_message("control client uid %u refused: %s", uid, rule);
    g_autoptr(GError) refusal = g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_POLICY_DENIED,
                                            "uid %u may not use the control socket of VM "
                                            "'%s' (%s)", uid, server->vm, rule);
    refuse_connection(connection, refusal);
    return TRUE;
  }

  const char *full = capacity_refusal(server, uid, access);
  if (full) {
    g_message("control client uid %u refused: %s", uid, full);
    g_autoptr(GError) busy = g_error_new(HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                                         "too many connections to VM '%s': %s (at most %d, %d "
                                         "per user, %d read-only); close some and retry",
                                         server->vm, full, SERVER_MAX_CLIENTS,
                                         SERVER_MAX_CLIENTS_PER_UID,
                                         SERVER_MAX_READ_ONLY_CLIENTS);
    refuse_connection(connection, busy);
    return TRUE;
  }

  ControlClient *client = g_new0(ControlClient, 1);
  client->refcount = 1;
  client->tokens = CLIENT_RATE_BURST;
  client->tokens_updated = g_get_monotonic_time();
  client->server = server;
  client->connection = g_object_ref(connection);
  client->uid = uid;
  client->access = access;
  client->access_rule = g_strdup(rule);
  g_queue_init(&client->outgoing);
  server->clients = g_list_prepend(server->clients, client);

  client_send(client, control_format_greeting(HOSTDEVD_VERSION, server->vm));
  client->reader = line_reader_new(g_io_stream_get_input_stream(G_IO_STREAM(connection)),
                                   CONTROL_MAX_REQUEST, on_line, on_end, client);
  line_reader_start(client->reader);
  return TRUE;
}

/* Return: TRUE when something answers on @path (a live hostdevd). */
static gboolean
control_socket_is_live(const char *path)
{
  g_autoptr(GSocket) probe = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                          G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(path);
  return probe && g_socket_connect(probe, address, NULL, NULL);
}

static void
set_socket_busy_error(GError **error, const char *socket_path)
{
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
              "another hostdevd already serves %s; stop it first or choose another --socket",
              socket_path);
}

gboolean
control_check_socket_free(const char *socket_path, GError **error)
{
  if (!control_socket_is_live(socket_path))
    return TRUE;
  set_socket_busy_error(error, socket_path);
  return FALSE;
}

ControlServer *
control_server_new(const char *socket_path, const char *vm, const Policy *policy,
                   ControlDispatchFunc dispatch, gpointer user_data, GError **error)
{
  if (g_file_test(socket_path, G_FILE_TEST_EXISTS)) {
    if (control_socket_is_live(socket_path)) {
      set_socket_busy_error(error, socket_path);
      return NULL;
    }
    if (g_unlink(socket_path) != 0 && errno != ENOENT) {
      int saved = errno;
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "cannot remove stale socket %s: %s", socket_path, g_strerror(saved));
      return NULL;
    }
  }

  g_autoptr(GSocket) socket = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_DEFAULT, error);
  if (socket == NULL)
    return NULL;
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(socket_path);
  if (!g_socket_bind(socket, address, FALSE, error)) {
    g_prefix_error(error, "cannot create control socket %s: ", socket_path);
    return NULL;
  }
  /* Nobody can connect before listen(), so the mode is right before the first peer. */
  if (g_chmod(socket_path, 0660) != 0) {
    int saved = errno;
    g_unlink(socket_path);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot set mode 0660 on %s: %s", socket_path, g_strerror(saved));
    return NULL;
  }
  g_socket_set_listen_backlog(socket, 16);
  if (!g_socket_listen(socket, error)) {
    g_unlink(socket_path);
    return NULL;
  }

  ControlServer *server = g_new0(ControlServer, 1);
  server->socket_path = g_strdup(socket_path);
  server->vm = g_strdup(vm);
  server->policy = policy;
  server->dispatch = dispatch;
  server->user_data = user_data;
  server->service = g_socket_service_new();
  if (!g_socket_listener_add_socket(G_SOCKET_LISTENER(server->service), socket, NULL, error)) {
    control_server_free(server);
    return NULL;
  }
  g_signal_connect(server->service, "incoming", G_CALLBACK(on_incoming), server);
  g_socket_service_start(server->service);
  return server;
}

void
control_server_free(ControlServer *server)
{
  if (server == NULL)
    return;
  while (server->clients)
    client_disconnect(server->clients->data);
  if (server->service) {
    g_socket_service_stop(server->service);
    g_socket_listener_close(G_SOCKET_LISTENER(server->service));
    g_object_unref(server->service);
  }
  g_unlink(server->socket_path);
  g_free(server->socket_path);
  g_free(server->vm);
  g_free(server);
}

void
control_server_emit_event(ControlServer *server, const char *name, JsonObject *data)
{
  if (server->clients == NULL)
    return;
  g_autofree char *line = control_format_event(name, data);
  /* client_send may drop a client, so walk a copy */
  g_autoptr(GList) clients = g_list_copy(server->clients);
  for (GList *l = clients; l; l = l->next) {
    client_send(l->data, g_strdup(line));
  }
}
