/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp-client.c - asynchronous QMP client on the GLib main loop
 *
 * One connection, one main context (the thread-default context when the
 * client is created); every callback runs there.
 *
 * Input is read by our own line reader rather than GDataInputStream so that
 * the size bound holds before a newline ever arrives: QEMU (or whatever
 * sits on its socket once a guest has compromised it) cannot make us buffer
 * more than max_message bytes.  Lines are handled strictly in arrival
 * order, so a reply and the events around it reach their callers in the
 * order QEMU wrote them.
 *
 * Output goes through one queue, sent with g_socket_send_message() when the
 * socket is writable.  A command that carries a file descriptor is just a
 * queued message with SCM_RIGHTS attached to its first byte, so it can
 * never overtake or be overtaken by other commands.
 *
 * A command may be sent ahead of its time (qmp_client_stage()): all of it
 * but its closing brace.  QEMU's monitor reads its input one byte per
 * main-loop turn and acts on a command only once its object closes, so it
 * reads the staged bytes while the caller's host work runs (a VFIO
 * binding) and dispatches the command as soon as the caller sends the same
 * command for real, which sends the brace held back (and the newline after
 * it, which QEMU reads once the command is on its way).  Anything else
 * queued meanwhile, or qmp_client_unstage(), ends the object with a member
 * QMP has not got: QEMU refuses the whole command before looking at its
 * name ("QMP input member ... is unexpected"), nothing happens, and its
 * answer, for which no command waits, is dropped.
 *
 * Every command carries an "id", and it is the smallest one free: QEMU's
 * monitor reads one byte per main-loop turn, so a counter's "id":1234 costs
 * every command the time of three bytes more than "id":1 once a connection
 * has lived a while.  An id is free when no command waits on it and QEMU
 * owes no answer to a message that carried it (a command whose caller gave
 * up once part of it went out, an ended staged one): its answer, when it
 * comes, is dropped rather than taken by a command that reuses the id.
 * The handshake's qmp_capabilities alone carries a random id of its own,
 * and until its answer every answer is dropped (one even before QEMU's
 * greeting): QEMU may hand a new connection the answer of a command a
 * previous client left running, and that client used the same small ids.
 *
 * Input is read from one socket source, attached while the connection is
 * open: no allocation, no task and no main-loop wakeup per read.
 *
 * Lifetime: every pending command, event waiter and the handshake is a
 * GTask whose source object is the client, so the client lives as long as
 * someone waits on it.  The read source holds no reference: dropping the
 * last user reference closes the connection (and destroys the source)
 * instead of keeping it open forever.
 */
#define G_LOG_DOMAIN "hostdevd-qmp"

#include "qmp-client.h"
#include "json-flat.h"
#include "json-guard.h"
#include "json-text.h"

#include <gio/gunixfdlist.h>
#include <gio/gunixfdmessage.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>

/* How much one read asks for; unrelated to the message bound. */
#define QMP_READ_CHUNK 16384
/* Between two connection attempts while QEMU is still starting. */
#define QMP_CONNECT_RETRY_MS 50
/*
 * json-glib parses recursively, so deep nesting would exhaust the stack
 * long before the size bound stops it.  QEMU's own JSON parser refuses
 * more than 1024 levels, so it never sends more.
 */
#define QMP_MAX_NESTING 1024
/* How much of an offending line goes into an error message. */
#define QMP_SNIPPET_LEN 64

typedef enum {
  QMP_STATE_IDLE,         /* created, not reading yet */
  QMP_STATE_GREETING,     /* waiting for {"QMP": ...} */
  QMP_STATE_NEGOTIATING,  /* qmp_capabilities sent */
  QMP_STATE_READY,
} QmpState;

typedef struct {
  char *data;
  gsize len;
  gsize written;
  gsize held_from;       /* staged: nothing from this byte on goes out yet (0: none held) */
  GUnixFDList *fds;      /* sent with the first byte, then dropped */
  gint64 id;
} QmpOutMessage;

/* What ends a staged command that is not released: a member QEMU refuses the command for. */
#define QMP_UNSTAGED_TAIL ",\"x-hostdevd-unstaged\":0}\n"
/* What a staged command holds back: its closing brace and the newline. */
#define QMP_HELD_TAIL_LEN 2

typedef struct {
  QmpClient *client;     /* the task's source object keeps it alive */
  GTask *task;
  gint64 id;
  guint64 order;         /* in the order issued (ids are reused) */
  char *command;
  guint timeout_ms;
  GSource *timeout_source;
  GSource *cancel_source;
} QmpPendingCommand;

typedef struct {
  QmpClient *client;     /* the task's source object keeps it alive */
  GTask *task;
  char *name;
  char *key;
  char *value;
  guint timeout_ms;
  GSource *timeout_source;
  GSource *cancel_source;
} QmpEventWaiter;

struct _QmpClient {
  GObject parent_instance;

  GMainContext *context;
  GSocketConnection *connection;
  GSocket *socket;

  QmpState state;
  gboolean closed;
  char *qemu_version;
  pid_t peer_pid;
  uid_t peer_uid;

  GSource *read_source;      /* while open: the socket is readable */
  guint8 read_chunk[QMP_READ_CHUNK];
  GByteArray *inbuf;
  gsize scan_pos;            /* inbuf before this holds no '\n' */
  gsize max_message;

  GQueue out_queue;          /* QmpOutMessage */
  QmpOutMessage *staged;     /* (nullable) the one of out_queue held back */
  GSource *write_source;

  guint64 next_order;
  GHashTable *pending;       /* &id -> QmpPendingCommand */
  GHashTable *owed;          /* gint64 ids of answers QEMU owes no one waits on */
  GQueue waiters;            /* QmpEventWaiter, in the order armed */

  gboolean dropped_before_greeting;  /* a previous client's answer, once */
  GTask *handshake_task;
  GSource *handshake_timeout;
  GSource *handshake_cancel;
  gint64 capabilities_id;
};

enum {
  SIGNAL_EVENT,
  SIGNAL_CLOSED,
  N_SIGNALS,
};

static guint signals[N_SIGNALS];

G_DEFINE_QUARK(qmp-error-quark, qmp_error)

G_DEFINE_FINAL_TYPE(QmpClient, qmp_client, G_TYPE_OBJECT)

static void qmp_client_shutdown(QmpClient *self, const GError *reason,
                                gboolean emit);
static void qmp_client_schedule_write(QmpClient *self);
static void qmp_client_send_command(QmpClient *self, const char *command,
                                    JsonObject *arguments, int fd,
                                    guint timeout_ms, gboolean urgent,
                                    GCancellable *cancellable,
                                    GAsyncReadyCallback callback,
                                    gpointer user_data);

/* source_destroy() - detach and release a source we hold, if any. */
static void
source_destroy(GSource **source)
{
  if (*source == NULL)
    return;
  g_source_destroy(*source);
  g_clear_pointer(source, g_source_unref);
}

/* attach_source() - attach @source to the client's context; Return: @source. */
static GSource *
attach_source(QmpClient *self, GSource *source, GSourceFunc func,
              gpointer data)
{
  g_source_set_callback(source, func, data, NULL);
  g_source_attach(source, self->context);
  return source;
}

/*
 * text_snippet() - a printable, bounded excerpt of untrusted bytes
 * Return: (transfer full): escaped text for an error message.
 */
static char *
text_snippet(const char *text, gsize len)
{
  g_autofree char *head = g_strndup(text, MIN(len, QMP_SNIPPET_LEN));
  g_autofree char *escaped = g_strescape(head, NULL);

  return g_strdup_printf("\"%s\"%s", escaped,
                         len > QMP_SNIPPET_LEN ? "..." : "");
}

/* object_member_object() - @name of @object if it is an object; Return: borrowed or NULL. */
static JsonObject *
object_member_object(JsonObject *object, const char *name)
{
  JsonNode *node = object ? json_object_get_member(object, name) : NULL;

  return node && JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
}

/* object_member_string() - @name of @object if it is a string; Return: borrowed or NULL. */
static const char *
object_member_string(JsonObject *object, const char *name)
{
  JsonNode *node = object ? json_object_get_member(object, name) : NULL;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string(node);
}

/* object_member_int() - @name of @object if it is an integer; Return: whether it is. */
static gboolean
object_member_int(JsonObject *object, const char *name, gint64 *out)
{
  JsonNode *node = object ? json_object_get_member(object, name) : NULL;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int(node);
  return TRUE;
}

/* ---- outgoing messages -------------------------------------------------- */

static void
out_message_free(QmpOutMessage *msg)
{
  g_free(msg->data);
  g_clear_object(&msg->fds);
  g_free(msg);
}

/* Return: whether @id is in use: a command waits on it or QEMU owes its answer. */
static gboolean
id_taken(QmpClient *self, gint64 id)
{
  return g_hash_table_contains(self->pending, &id) || g_hash_table_contains(self->owed, &id) ||
         (self->staged != NULL && self->staged->id == id);
}

/* Return: the smallest id free (see the top of this file). */
static gint64
id_allocate(QmpClient *self)
{
  gint64 id = 0;

  while (id_taken(self, id))
    id++;
  return id;
}

/* QEMU has part of a message with @id, whose answer nobody will wait on. */
static void
id_owe_answer(QmpClient *self, gint64 id)
{
  g_hash_table_add(self->owed, g_memdup2(&id, sizeof id));
}

/*
 * qmp_client_give_up_message() - command @id's caller stopped waiting
 * A caller that gave up (timeout, cancellation) should not have QEMU act on
 * the command later: none of it sent yet, it is dropped; once bytes are on
 * the wire it has to go out whole, and its id stays taken until QEMU's
 * answer comes.
 */
static void
qmp_client_give_up_message(QmpClient *self, gint64 id)
{
  for (GList *l = self->out_queue.head; l != NULL; l = l->next) {
    QmpOutMessage *msg = l->data;

    if (msg->id != id)
      continue;
    if (msg->written == 0) {
      out_message_free(msg);
      g_queue_delete_link(&self->out_queue, l);
      return;
    }
    break;
  }
  id_owe_answer(self, id);
}

/*
 * qmp_client_flush() - send queued messages until the socket would block
 * Before negotiation only qmp_capabilities may go out: QEMU refuses every
 * other command until then.
 * Return: TRUE when the socket must become writable again to continue.
 */
static gboolean
qmp_client_flush_full(QmpClient *self, gboolean may_shut_down)
{
  while (!self->closed) {
    QmpOutMessage *msg = g_queue_peek_head(&self->out_queue);
    GOutputVector vector;
    g_autoptr(GSocketControlMessage) scm = NULL;
    g_autoptr(GError) error = NULL;
    GPollableReturn ret;
    gsize sent = 0;

    if (msg == NULL)
      return FALSE;
    if (self->state != QMP_STATE_READY && msg->id != self->capabilities_id)
      return FALSE;
    gsize limit = msg->held_from ? msg->held_from : msg->len;
    if (msg->written == limit)
      return FALSE;   /* staged: the rest goes when it is released */

    vector.buffer = msg->data + msg->written;
    vector.size = limit - msg->written;
    if (msg->fds)
      scm = g_unix_fd_message_new_with_fd_list(msg->fds);

    ret = g_socket_send_message_with_timeout(self->socket, NULL, &vector, 1,
                                             scm ? &scm : NULL, scm ? 1 : 0,
                                             G_SOCKET_MSG_NONE, 0, &sent,
                                             NULL, &error);
    switch (ret) {
    case G_POLLABLE_RETURN_OK:
      if (sent > 0)
        g_clear_object(&msg->fds);
      msg->written += sent;
      if (msg->written == msg->len)
        out_message_free(g_queue_pop_head(&self->out_queue));
      break;
    case G_POLLABLE_RETURN_WOULD_BLOCK:
      return TRUE;
    case G_POLLABLE_RETURN_FAILED:
    default: {
      if (!may_shut_down)
        return TRUE;   /* the write source meets the error again, from the main loop */
      g_autoptr(GError) reason =
        g_error_new(QMP_ERROR, QMP_ERROR_DISCONNECTED,
                    "Could not send to QEMU: %s",
                    error ? error->message : "unknown error");
      qmp_client_shutdown(self, reason, TRUE);
      return FALSE;
    }
    }
  }
  return FALSE;
}

static gboolean
qmp_client_flush(QmpClient *self)
{
  return qmp_client_flush_full(self, TRUE);
}

static gboolean
on_socket_writable(GSocket *socket, GIOCondition condition, gpointer user_data)
{
  QmpClient *self = user_data;
  g_autoptr(QmpClient) guard = g_object_ref(self);

  if (qmp_client_flush(self) && !self->closed)
    return G_SOURCE_CONTINUE;
  /* shutdown may already have dropped it */
  g_clear_pointer(&self->write_source, g_source_unref);
  return G_SOURCE_REMOVE;
}

/* qmp_client_schedule_write() - flush the queue once the socket is writable. */
static void
qmp_client_schedule_write(QmpClient *self)
{
  if (self->closed || self->write_source != NULL ||
      g_queue_is_empty(&self->out_queue))
    return;
  /* The socket usually takes a command at once: send it now rather than one main-loop
   * iteration later.  A failure is left to the write source, so that no caller's
   * callback runs from inside qmp_client_execute_async(). */
  if (!qmp_client_flush_full(self, FALSE))
    return;
  self->write_source = g_socket_create_source(self->socket, G_IO_OUT, NULL);
  attach_source(self, self->write_source, G_SOURCE_FUNC(on_socket_writable),
                self);
}

/* ---- pending commands --------------------------------------------------- */

static void
pending_command_free(QmpPendingCommand *pc)
{
  source_destroy(&pc->timeout_source);
  source_destroy(&pc->cancel_source);
  g_clear_object(&pc->task);
  g_free(pc->command);
  g_free(pc);
}

/*
 * pending_command_complete() - hand the outcome to the caller
 * @result: (transfer full) (nullable): the "return" value
 * @error: (transfer full) (nullable): the failure
 * The task's callback may drop the last reference to the client.
 */
static void
pending_command_complete(QmpPendingCommand *pc, JsonNode *result,
                         GError *error)
{
  QmpClient *self = pc->client;
  g_autoptr(GTask) task = g_steal_pointer(&pc->task);

  g_hash_table_remove(self->pending, &pc->id);
  pending_command_free(pc);

  if (error)
    g_task_return_error(task, error);
  else
    g_task_return_pointer(task, result, (GDestroyNotify) json_node_unref);
}

/* @pc's caller stops waiting, with @error (transfer full). */
static void
pending_command_give_up(QmpPendingCommand *pc, GError *error)
{
  if (!pc->client->closed)
    qmp_client_give_up_message(pc->client, pc->id);
  pending_command_complete(pc, NULL, error);
}

static gboolean
on_command_timeout(gpointer user_data)
{
  QmpPendingCommand *pc = user_data;

  pending_command_give_up(pc, g_error_new(QMP_ERROR, QMP_ERROR_TIMEOUT,
                                          "QEMU did not answer %s within %u ms",
                                          pc->command, pc->timeout_ms));
  return G_SOURCE_REMOVE;
}

static gboolean
on_command_cancelled(GCancellable *cancellable, gpointer user_data)
{
  QmpPendingCommand *pc = user_data;
  GError *error = NULL;

  g_cancellable_set_error_if_cancelled(cancellable, &error);
  pending_command_give_up(pc, error);
  return G_SOURCE_REMOVE;
}

/* qmp_error_code_for_class() - our code for QEMU's error class. */
static QmpError
qmp_error_code_for_class(const char *klass)
{
  if (g_strcmp0(klass, "DeviceNotFound") == 0)
    return QMP_ERROR_DEVICE_NOT_FOUND;
  if (g_strcmp0(klass, "CommandNotFound") == 0)
    return QMP_ERROR_COMMAND_NOT_FOUND;
  return QMP_ERROR_COMMAND;
}

/* ---- event waiters ------------------------------------------------------ */

static void
event_waiter_free(QmpEventWaiter *waiter)
{
  source_destroy(&waiter->timeout_source);
  source_destroy(&waiter->cancel_source);
  g_clear_object(&waiter->task);
  g_free(waiter->name);
  g_free(waiter->key);
  g_free(waiter->value);
  g_free(waiter);
}

/*
 * event_waiter_complete() - hand the event (or the failure) to the caller
 * The waiter must already be out of the client's queue.
 * @data: (transfer full) (nullable)
 * @error: (transfer full) (nullable)
 */
static void
event_waiter_complete(QmpEventWaiter *waiter, JsonObject *data, GError *error)
{
  g_autoptr(GTask) task = g_steal_pointer(&waiter->task);

  event_waiter_free(waiter);
  if (error)
    g_task_return_error(task, error);
  else
    g_task_return_pointer(task, data, (GDestroyNotify) json_object_unref);
}

static gboolean
on_waiter_timeout(gpointer user_data)
{
  QmpEventWaiter *waiter = user_data;
  GError *error;

  if (waiter->key)
    error = g_error_new(QMP_ERROR, QMP_ERROR_TIMEOUT,
                        "QEMU did not send event %s with %s=%s within %u ms",
                        waiter->name, waiter->key, waiter->value,
                        waiter->timeout_ms);
  else
    error = g_error_new(QMP_ERROR, QMP_ERROR_TIMEOUT,
                        "QEMU did not send event %s within %u ms",
                        waiter->name, waiter->timeout_ms);
  g_queue_remove(&waiter->client->waiters, waiter);
  event_waiter_complete(waiter, NULL, error);
  return G_SOURCE_REMOVE;
}

static gboolean
on_waiter_cancelled(GCancellable *cancellable, gpointer user_data)
{
  QmpEventWaiter *waiter = user_data;
  GError *error = NULL;

  g_cancellable_set_error_if_cancelled(cancellable, &error);
  g_queue_remove(&waiter->client->waiters, waiter);
  event_waiter_complete(waiter, NULL, error);
  return G_SOURCE_REMOVE;
}

/* event_waiter_matches() - whether @waiter wants event @name with @data. */
static gboolean
event_waiter_matches(QmpEventWaiter *waiter, const char *name, JsonObject *data)
{
  const char *actual;

  if (strcmp(waiter->name, name) != 0)
    return FALSE;
  if (waiter->key == NULL)
    return TRUE;
  actual = object_member_string(data, waiter->key);
  return actual != NULL && strcmp(actual, waiter->value) == 0;
}

/* ---- closing ------------------------------------------------------------ */

static gint
compare_pending_by_order(gconstpointer a, gconstpointer b)
{
  const QmpPendingCommand *pa = a;
  const QmpPendingCommand *pb = b;

  return pa->order < pb->order ? -1 : pa->order > pb->order;
}

/* qmp_client_finish_handshake() - complete the handshake task, if any. */
static void
qmp_client_finish_handshake(QmpClient *self, const GError *error)
{
  g_autoptr(GTask) task = g_steal_pointer(&self->handshake_task);

  source_destroy(&self->handshake_timeout);
  source_destroy(&self->handshake_cancel);
  if (task == NULL)
    return;
  if (error)
    g_task_return_error(task, g_error_copy(error));
  else
    g_task_return_boolean(task, TRUE);
}

/*
 * qmp_client_shutdown() - end the connection once
 * @reason: why; the handshake fails with it, pending commands and waiters
 *   with QMP_ERROR_DISCONNECTED
 * @emit: whether to emit "closed" (not during disposal)
 */
static void
qmp_client_shutdown(QmpClient *self, const GError *reason, gboolean emit)
{
  g_autoptr(QmpClient) guard = NULL;
  g_autoptr(GError) disconnected = NULL;
  g_autoptr(GError) close_error = NULL;
  g_autoptr(GList) commands = NULL;
  QmpEventWaiter *waiter;

  if (self->closed)
    return;
  /* callbacks below may drop the caller's last reference */
  guard = g_object_ref(self);
  self->closed = TRUE;

  source_destroy(&self->read_source);
  source_destroy(&self->write_source);
  self->staged = NULL;
  g_queue_clear_full(&self->out_queue, (GDestroyNotify) out_message_free);
  if (self->connection &&
      !g_io_stream_close(G_IO_STREAM(self->connection), NULL, &close_error))
    g_debug("Closing the QMP socket failed: %s", close_error->message);

  if (g_error_matches(reason, QMP_ERROR, QMP_ERROR_DISCONNECTED))
    disconnected = g_error_copy(reason);
  else
    disconnected = g_error_new(QMP_ERROR, QMP_ERROR_DISCONNECTED,
                               "QMP connection closed: %s", reason->message);

  qmp_client_finish_handshake(self, reason);

  /* fail them in the order they were issued */
  commands = g_hash_table_get_values(self->pending);
  commands = g_list_sort(commands, compare_pending_by_order);
  g_hash_table_remove_all(self->pending);
  g_hash_table_remove_all(self->owed);
  for (GList *l = commands; l != NULL; l = l->next)
    pending_command_complete(l->data, NULL, g_error_copy(disconnected));

  while ((waiter = g_queue_pop_head(&self->waiters)) != NULL)
    event_waiter_complete(waiter, NULL, g_error_copy(disconnected));

  if (emit)
    g_signal_emit(self, signals[SIGNAL_CLOSED], 0, reason);
}

/* qmp_client_fail_protocol() - close because QEMU sent something that is not QMP. */
static void G_GNUC_PRINTF(2, 3)
qmp_client_fail_protocol(QmpClient *self, const char *format, ...)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  va_list args;

  va_start(args, format);
  message = g_strdup_vprintf(format, args);
  va_end(args);

  error = g_error_new_literal(QMP_ERROR, QMP_ERROR_PROTOCOL, message);
  g_info("%s", message);
  qmp_client_shutdown(self, error, TRUE);
}

/* ---- incoming messages -------------------------------------------------- */

static void
on_capabilities_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  QmpClient *self = QMP_CLIENT(source);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qmp_client_execute_finish(self, result, &error);

  /* a failed handshake has already been reported by the shutdown */
  if (self->handshake_task == NULL)
    return;
  if (reply == NULL) {
    qmp_client_shutdown(self, error, TRUE);
    return;
  }
  self->state = QMP_STATE_READY;
  qmp_client_schedule_write(self);
  qmp_client_finish_handshake(self, NULL);
}

static void
qmp_client_handle_greeting(QmpClient *self, JsonObject *message)
{
  JsonObject *greeting = object_member_object(message, "QMP");
  JsonObject *version;
  gint64 major, minor, micro;

  /* QEMU may write the answer of a command a previous client left running
   * between accepting this connection and greeting it: one such answer is
   * dropped (QEMU runs one command of a monitor at a time) */
  if (greeting == NULL && !self->dropped_before_greeting && json_object_has_member(message, "id") &&
      (json_object_has_member(message, "return") || json_object_has_member(message, "error"))) {
    g_debug("Dropping a QMP reply that came before the greeting: a previous client's");
    self->dropped_before_greeting = TRUE;
    return;
  }
  if (greeting == NULL) {
    g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), message);
    g_autofree char *text = json_text_from_node(node, NULL);
    g_autofree char *snippet = text_snippet(text, strlen(text));

    qmp_client_fail_protocol(self,
                             "QEMU did not start with a QMP greeting "
                             "{\"QMP\": {...}}; it sent %s", snippet);
    return;
  }

  version = object_member_object(object_member_object(greeting, "version"),
                                 "qemu");
  if (object_member_int(version, "major", &major) &&
      object_member_int(version, "minor", &minor) &&
      object_member_int(version, "micro", &micro))
    self->qemu_version = g_strdup_printf("%" G_GINT64_FORMAT ".%" G_GINT64_FORMAT
                                         ".%" G_GINT64_FORMAT,
                                         major, minor, micro);
  else
    g_info("The QMP greeting carries no QEMU version");

  self->state = QMP_STATE_NEGOTIATING;
  qmp_client_send_command(self, "qmp_capabilities", NULL, -1,
                          QMP_DEFAULT_TIMEOUT_MS, TRUE, NULL,
                          on_capabilities_done, NULL);
}

static void
qmp_client_handle_reply(QmpClient *self, JsonObject *message)
{
  QmpPendingCommand *pc;
  JsonObject *error_obj;
  gint64 id;

  if (!object_member_int(message, "id", &id)) {
    g_info("Dropping a QMP reply without a numeric id");
    return;
  }
  if (self->state != QMP_STATE_READY && id != self->capabilities_id) {
    g_debug("Dropping the QMP reply to id %" G_GINT64_FORMAT
            " before the negotiation's: a previous client's", id);
    return;
  }
  pc = g_hash_table_lookup(self->pending, &id);
  if (pc == NULL) {
    if (g_hash_table_remove(self->owed, &id))
      g_debug("Dropping the QMP reply to id %" G_GINT64_FORMAT
              ": its command was given up or ended unstaged", id);
    else
      g_info("Dropping the QMP reply to id %" G_GINT64_FORMAT ": no command of ours has it", id);
    return;
  }

  if (!json_object_has_member(message, "error")) {
    pending_command_complete(pc, json_object_dup_member(message, "return"), NULL);
    return;
  }

  error_obj = object_member_object(message, "error");
  if (error_obj == NULL) {
    pending_command_complete(pc, NULL,
                             g_error_new(QMP_ERROR, QMP_ERROR_COMMAND,
                                         "QEMU answered %s with a malformed error",
                                         pc->command));
  } else {
    const char *desc = object_member_string(error_obj, "desc");
    const char *klass = object_member_string(error_obj, "class");

    pending_command_complete(pc, NULL,
                             g_error_new_literal(QMP_ERROR,
                                                 qmp_error_code_for_class(klass),
                                                 desc ? desc : "QEMU reported an error without a description"));
  }
}

static void
qmp_client_handle_event(QmpClient *self, JsonObject *message)
{
  const char *name = object_member_string(message, "event");
  JsonObject *timestamp = object_member_object(message, "timestamp");
  g_autoptr(JsonObject) data = NULL;
  g_autoptr(GList) matched = NULL;
  gint64 seconds = 0, microseconds = 0;
  gint64 timestamp_us = 0;

  if (name == NULL) {
    g_info("Dropping a QMP event without a name");
    return;
  }
  data = object_member_object(message, "data");
  data = data ? json_object_ref(data) : json_object_new();
  if (object_member_int(timestamp, "seconds", &seconds) &&
      object_member_int(timestamp, "microseconds", &microseconds))
    timestamp_us = seconds * G_USEC_PER_SEC + microseconds;

  /*
   * Take the matching waiters out before completing any: a callback may
   * arm new waiters, which must only see later events.
   */
  for (GList *l = self->waiters.head; l != NULL;) {
    GList *next = l->next;

    if (event_waiter_matches(l->data, name, data)) {
      matched = g_list_prepend(matched, l->data);
      g_queue_delete_link(&self->waiters, l);
    }
    l = next;
  }
  matched = g_list_reverse(matched);
  for (GList *l = matched; l != NULL; l = l->next)
    event_waiter_complete(l->data, json_object_ref(data), NULL);

  if (!self->closed)
    g_signal_emit(self, signals[SIGNAL_EVENT], 0, name, data, timestamp_us);
}

/* qmp_client_dispatch() - act on one message from QEMU. */
static void
qmp_client_dispatch(QmpClient *self, JsonObject *message)
{
  switch (self->state) {
  case QMP_STATE_IDLE:
  case QMP_STATE_GREETING:
    qmp_client_handle_greeting(self, message);
    return;
  case QMP_STATE_NEGOTIATING:
  case QMP_STATE_READY:
  default:
    break;
  }

  if (json_object_has_member(message, "event"))
    qmp_client_handle_event(self, message);
  else if (json_object_has_member(message, "return") ||
           json_object_has_member(message, "error"))
    qmp_client_handle_reply(self, message);
  else if (json_object_has_member(message, "QMP"))
    g_info("Ignoring a second QMP greeting");
  else
    g_info("Ignoring a QMP message that is neither reply nor event");
}

/* Return: the problem json_guard_check() found, as the end of a sentence. */
static const char *
json_guard_problem(JsonGuardResult result)
{
  switch (result) {
  case JSON_GUARD_NUL:
    return "contains a NUL byte";
  case JSON_GUARD_NOT_UTF8:
    return "is not valid UTF-8";
  case JSON_GUARD_NOT_JSON:
    return "is not JSON";
  case JSON_GUARD_TOO_DEEP:
    return "nests deeper than 1024 levels";
  case JSON_GUARD_TRAILING:
    return "has more after the JSON object";
  case JSON_GUARD_OK:
  default:
    return NULL;
  }
}

JsonNode *
qmp_message_read_empty_return(const char *line, gsize len)
{
  static const char head[] = "{\"return\": {}, \"id\": ";
  const gsize head_len = sizeof head - 1;
  gint64 id = 0;

  if (len < head_len + 2 || len > head_len + 1 + 18 || memcmp(line, head, head_len) != 0 ||
      line[len - 1] != '}' || (len > head_len + 2 && line[head_len] == '0'))
    return NULL;
  for (gsize i = head_len; i < len - 1; i++) {
    if (!g_ascii_isdigit(line[i]))
      return NULL;
    id = id * 10 + (line[i] - '0');
  }
  g_autoptr(JsonObject) message = json_object_new();
  json_object_set_object_member(message, "return", json_object_new());
  json_object_set_int_member(message, "id", id);
  return json_node_init_object(json_node_alloc(), message);
}

gboolean
qmp_message_check(const char *line, gsize len, JsonNode **out, GError **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GError) parse_error = NULL;
  /* the answers and events of every day, read in one pass (json-flat.h: the tree
   * json-glib would build, within every limit checked below); json-glib reads the rest */
  G_STATIC_ASSERT(JSON_FLAT_MAX_DEPTH <= QMP_MAX_NESTING);
  JsonNode *everyday = qmp_message_read_empty_return(line, len);

  if (everyday == NULL)
    everyday = json_flat_read(line, len);
  if (everyday) {
    if (out)
      *out = everyday;
    else
      json_node_unref(everyday);
    return TRUE;
  }

  const char *problem = json_guard_problem(json_guard_check(line, len, QMP_MAX_NESTING));

  if (problem) {
    g_autofree char *snippet = text_snippet(line, len);

    g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                "QEMU sent a QMP message that %s: %s", problem, snippet);
    return FALSE;
  }

  parser = json_parser_new();
  if (!json_parser_load_from_data(parser, line, (gssize) len, &parse_error)) {
    g_autofree char *snippet = text_snippet(line, len);

    /* json-glib quotes the offending bytes, which need not be UTF-8 */
    g_autofree char *reason = g_utf8_make_valid(parse_error->message, -1);

    g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                "QEMU sent a line that is not JSON (%s): %s", reason, snippet);
    return FALSE;
  }
  root = json_parser_steal_root(parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_autofree char *snippet = text_snippet(line, len);

    g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                "QEMU sent a QMP message that is not a JSON object: %s", snippet);
    return FALSE;
  }
  if (!json_guard_strings_are_utf8(root)) {
    g_autofree char *snippet = text_snippet(line, len);

    g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                "QEMU sent a QMP message with a string that is not valid UTF-8 "
                "(an unpaired surrogate escape): %s", snippet);
    return FALSE;
  }
  if (out)
    *out = g_steal_pointer(&root);
  return TRUE;
}

/* qmp_client_handle_line() - parse and dispatch one line (without newline). */
static void
qmp_client_handle_line(QmpClient *self, const char *line, gsize len)
{
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GError) error = NULL;

  if (!qmp_message_check(line, len, &root, &error)) {
    qmp_client_fail_protocol(self, "%s", error->message);
    return;
  }
  qmp_client_dispatch(self, json_node_get_object(root));
}

/*
 * qmp_client_process_input() - handle every complete line in the buffer
 * Lines are consumed from the buffer only after the loop, so the buffer is
 * moved once per read, not once per line.  Nothing appends to it while we
 * run: the next read starts only after we return.
 */
static void
qmp_client_process_input(QmpClient *self)
{
  gsize start = 0;
  gsize pending_len;

  while (!self->closed) {
    const char *data = (const char *) self->inbuf->data;
    const char *newline = memchr(data + self->scan_pos, '\n',
                                 self->inbuf->len - self->scan_pos);
    const char *line = data + start;
    gsize len;

    if (newline == NULL) {
      self->scan_pos = self->inbuf->len;
      break;
    }
    len = (gsize) (newline - line);
    start = self->scan_pos = (gsize) (newline - data) + 1;
    if (len > 0 && line[len - 1] == '\r')
      len--;
    if (len == 0)
      continue;
    if (len > self->max_message) {
      qmp_client_fail_protocol(self,
                               "QEMU sent a QMP message of %" G_GSIZE_FORMAT
                               " bytes, more than the limit of %" G_GSIZE_FORMAT,
                               len, self->max_message);
      return;
    }
    qmp_client_handle_line(self, line, len);
  }
  if (self->closed)
    return;

  g_byte_array_remove_range(self->inbuf, 0, (guint) start);
  self->scan_pos -= start;

  /* a '\r' at the end may still be followed by its '\n' */
  pending_len = self->inbuf->len;
  if (pending_len > 0 && self->inbuf->data[pending_len - 1] == '\r')
    pending_len--;
  if (pending_len > self->max_message)
    qmp_client_fail_protocol(self,
                             "QEMU sent more than %" G_GSIZE_FORMAT
                             " bytes without ending the QMP message",
                             self->max_message);
}

/* The socket is readable: one read, handled at once; the source stays for the next. */
static gboolean
on_readable(GSocket *socket, GIOCondition condition, gpointer user_data)
{
  /* handling the input may drop the caller's last reference */
  g_autoptr(QmpClient) self = g_object_ref(user_data);
  g_autoptr(GError) error = NULL;
  gssize n = g_socket_receive_with_blocking(socket, (gchar *)self->read_chunk,
                                            sizeof self->read_chunk, FALSE, NULL, &error);

  if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;
  if (n < 0) {
    g_autoptr(GError) reason = g_error_new(QMP_ERROR, QMP_ERROR_DISCONNECTED,
                                           "Could not read from QEMU: %s",
                                           error->message);
    qmp_client_shutdown(self, reason, TRUE);
  } else if (n == 0) {
    g_autoptr(GError) reason = g_error_new_literal(QMP_ERROR,
                                                   QMP_ERROR_DISCONNECTED,
                                                   "QEMU closed the QMP connection");
    qmp_client_shutdown(self, reason, TRUE);
  } else {
    g_byte_array_append(self->inbuf, self->read_chunk, (guint) n);
    qmp_client_process_input(self);
  }
  return self->closed ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

/* qmp_client_start_reading() - watch the socket while open. */
static void
qmp_client_start_reading(QmpClient *self)
{
  if (self->closed || self->read_source)
    return;
  self->read_source = g_socket_create_source(self->socket, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                             NULL);
  /* hostdevd runs no nested main loop: without blocking the source while it
   * dispatches, GLib need not take its fd out of the poll set and put it back
   * (each a main-loop wakeup) on every read */
  g_source_set_can_recurse(self->read_source, TRUE);
  attach_source(self, self->read_source, G_SOURCE_FUNC(on_readable), self);
}

/* ---- GObject ------------------------------------------------------------ */

static void
qmp_client_dispose(GObject *object)
{
  QmpClient *self = QMP_CLIENT(object);

  /* nothing can be pending here: every pending task holds a reference */
  if (!self->closed) {
    g_autoptr(GError) reason = g_error_new_literal(QMP_ERROR,
                                                   QMP_ERROR_DISCONNECTED,
                                                   "The QMP client was released");
    qmp_client_shutdown(self, reason, FALSE);
  }
  g_clear_object(&self->socket);
  g_clear_object(&self->connection);

  G_OBJECT_CLASS(qmp_client_parent_class)->dispose(object);
}

static void
qmp_client_finalize(GObject *object)
{
  QmpClient *self = QMP_CLIENT(object);

  g_clear_pointer(&self->pending, g_hash_table_unref);
  g_clear_pointer(&self->owed, g_hash_table_unref);
  g_clear_pointer(&self->inbuf, g_byte_array_unref);
  g_clear_pointer(&self->context, g_main_context_unref);
  g_free(self->qemu_version);

  G_OBJECT_CLASS(qmp_client_parent_class)->finalize(object);
}

static void
qmp_client_class_init(QmpClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS(klass);

  object_class->dispose = qmp_client_dispose;
  object_class->finalize = qmp_client_finalize;

  signals[SIGNAL_EVENT] =
    g_signal_new("event", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST,
                 0, NULL, NULL, NULL, G_TYPE_NONE, 3,
                 G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                 JSON_TYPE_OBJECT | G_SIGNAL_TYPE_STATIC_SCOPE,
                 G_TYPE_INT64);
  signals[SIGNAL_CLOSED] =
    g_signal_new("closed", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST,
                 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
}

static void
qmp_client_init(QmpClient *self)
{
  self->context = g_main_context_ref_thread_default();
  self->state = QMP_STATE_IDLE;
  self->peer_uid = (uid_t) -1;
  self->max_message = QMP_DEFAULT_MAX_MESSAGE;
  self->capabilities_id = -1;
  self->inbuf = g_byte_array_new();
  self->pending = g_hash_table_new(g_int64_hash, g_int64_equal);
  self->owed = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
  g_queue_init(&self->out_queue);
  g_queue_init(&self->waiters);
}

/* ---- public API --------------------------------------------------------- */

QmpClient *
qmp_client_new_for_connection(GSocketConnection *connection)
{
  QmpClient *self;
  g_autoptr(GCredentials) credentials = NULL;
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail(G_IS_SOCKET_CONNECTION(connection), NULL);

  self = g_object_new(QMP_TYPE_CLIENT, NULL);
  self->connection = g_object_ref(connection);
  self->socket = g_object_ref(g_socket_connection_get_socket(connection));

  credentials = g_socket_get_credentials(self->socket, &error);
  if (credentials) {
    pid_t pid = g_credentials_get_unix_pid(credentials, NULL);
    uid_t uid = g_credentials_get_unix_user(credentials, NULL);

    self->peer_pid = pid > 0 ? pid : 0;
    self->peer_uid = uid;
  } else {
    g_info("Could not read the QMP peer's credentials: %s", error->message);
  }
  return self;
}

static gboolean
on_handshake_timeout(gpointer user_data)
{
  QmpClient *self = user_data;
  g_autoptr(GError) error = NULL;

  if (self->state == QMP_STATE_GREETING)
    error = g_error_new(QMP_ERROR, QMP_ERROR_TIMEOUT,
                        "QEMU did not send the QMP greeting within %u ms; QEMU serves one "
                        "client per -qmp socket, is another one (another hostdevd?) connected?",
                        QMP_DEFAULT_TIMEOUT_MS);
  else
    error = g_error_new(QMP_ERROR, QMP_ERROR_TIMEOUT,
                        "QEMU did not answer qmp_capabilities within %u ms",
                        QMP_DEFAULT_TIMEOUT_MS);
  qmp_client_shutdown(self, error, TRUE);
  return G_SOURCE_REMOVE;
}

static gboolean
on_handshake_cancelled(GCancellable *cancellable, gpointer user_data)
{
  QmpClient *self = user_data;
  g_autoptr(GError) error = NULL;

  g_cancellable_set_error_if_cancelled(cancellable, &error);
  qmp_client_shutdown(self, error, TRUE);
  return G_SOURCE_REMOVE;
}

void
qmp_client_handshake_async(QmpClient *self, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail(QMP_IS_CLIENT(self));

  task = g_task_new(self, cancellable, callback, user_data);
  g_task_set_source_tag(task, qmp_client_handshake_async);
  if (self->closed) {
    g_task_return_new_error(task, QMP_ERROR, QMP_ERROR_DISCONNECTED,
                            "The QMP connection is closed");
    return;
  }
  if (self->state != QMP_STATE_IDLE) {
    g_task_return_new_error(task, G_IO_ERROR, G_IO_ERROR_PENDING,
                            "The QMP handshake was already started");
    return;
  }

  self->handshake_task = g_steal_pointer(&task);
  /* the timer and the cancellable source die with the task: no refs */
  self->handshake_timeout = attach_source(self,
                                          g_timeout_source_new(QMP_DEFAULT_TIMEOUT_MS),
                                          on_handshake_timeout, self);
  if (cancellable)
    self->handshake_cancel = attach_source(self, g_cancellable_source_new(cancellable),
                                           G_SOURCE_FUNC(on_handshake_cancelled),
                                           self);
  self->state = QMP_STATE_GREETING;
  qmp_client_start_reading(self);
}

gboolean
qmp_client_handshake_finish(QmpClient *self, GAsyncResult *result,
                            GError **error)
{
  g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
  return g_task_propagate_boolean(G_TASK(result), error);
}

/* Return: (transfer full): @command with @arguments as a message with @id. */
static GString *
command_text(const char *command, JsonObject *arguments, gint64 id)
{
  /* written member by member, around the caller's arguments, and ended by the newline */
  GString *text = g_string_sized_new(256);
  json_text_object_begin(text);
  json_text_member_string(text, "execute", command);
  if (arguments)
    json_text_member_object(text, "arguments", arguments);
  json_text_member_int(text, "id", id);
  json_text_object_end(text);
  g_string_append_c(text, '\n');
  return text;
}

/* Return: (transfer none) (nullable): the staged message, released, when it is
 * @command with @arguments; NULL when none is staged or it is another. */
static QmpOutMessage *
release_staged(QmpClient *self, const char *command, JsonObject *arguments)
{
  QmpOutMessage *msg = self->staged;

  if (msg == NULL)
    return NULL;
  g_autoptr(GString) text = command_text(command, arguments, msg->id);
  if (text->len != msg->len || memcmp(text->str, msg->data, text->len) != 0)
    return NULL;
  msg->held_from = 0;
  self->staged = NULL;
  return msg;
}

void
qmp_client_stage(QmpClient *self, const char *command, JsonObject *arguments)
{
  g_return_if_fail(QMP_IS_CLIENT(self));
  g_return_if_fail(command != NULL);

  if (self->closed || self->state != QMP_STATE_READY || self->staged != NULL)
    return;
  QmpOutMessage *msg = g_new0(QmpOutMessage, 1);
  msg->id = id_allocate(self);
  GString *text = command_text(command, arguments, msg->id);
  msg->held_from = text->len - QMP_HELD_TAIL_LEN;
  msg->len = text->len;
  msg->data = g_string_free(text, FALSE);
  g_queue_push_tail(&self->out_queue, msg);
  self->staged = msg;
  qmp_client_schedule_write(self);
}

void
qmp_client_unstage(QmpClient *self)
{
  g_return_if_fail(QMP_IS_CLIENT(self));
  QmpOutMessage *msg = self->staged;

  if (msg == NULL)
    return;
  self->staged = NULL;
  if (msg->written == 0) {
    g_queue_remove(&self->out_queue, msg);
    out_message_free(msg);
    return;
  }
  /* QEMU has part of it: end it as a command it refuses, which it answers */
  id_owe_answer(self, msg->id);
  gsize tail = strlen(QMP_UNSTAGED_TAIL);
  msg->data = g_realloc(msg->data, msg->held_from + tail);
  memcpy(msg->data + msg->held_from, QMP_UNSTAGED_TAIL, tail);
  msg->len = msg->held_from + tail;
  msg->held_from = 0;
  qmp_client_schedule_write(self);
}

/*
 * qmp_client_send_command() - queue one command and track its reply
 * @urgent: queue in front (qmp_capabilities, which must precede commands
 *   issued while the handshake runs)
 */
static void
qmp_client_send_command(QmpClient *self, const char *command,
                        JsonObject *arguments, int fd, guint timeout_ms,
                        gboolean urgent, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new(self, cancellable, callback, user_data);
  g_autoptr(GUnixFDList) fds = NULL;
  g_autoptr(GError) error = NULL;
  QmpPendingCommand *pc;
  QmpOutMessage *msg;

  g_task_set_source_tag(task, qmp_client_execute_async);
  /* do not even queue what the caller already gave up on */
  if (g_task_return_error_if_cancelled(task))
    return;
  if (self->closed) {
    g_task_return_new_error(task, QMP_ERROR, QMP_ERROR_DISCONNECTED,
                            "Cannot send %s: the QMP connection is closed",
                            command);
    return;
  }
  if (fd >= 0) {
    /* the list holds its own duplicate, so the caller may close @fd now */
    fds = g_unix_fd_list_new();
    if (g_unix_fd_list_append(fds, fd, &error) < 0) {
      g_prefix_error(&error, "Cannot pass file descriptor %d with %s: ",
                     fd, command);
      g_task_return_error(task, g_steal_pointer(&error));
      return;
    }
  }
  if (timeout_ms == 0)
    timeout_ms = QMP_DEFAULT_TIMEOUT_MS;

  pc = g_new0(QmpPendingCommand, 1);
  pc->client = self;
  pc->command = g_strdup(command);
  pc->timeout_ms = timeout_ms;

  msg = fds == NULL && !urgent ? release_staged(self, command, arguments) : NULL;
  if (msg == NULL) {
    /* whatever was staged must not take this command's bytes in */
    qmp_client_unstage(self);
    msg = g_new0(QmpOutMessage, 1);
    if (urgent) {
      /* the handshake's id is none a previous client of this QEMU can have used */
      msg->id = g_random_int_range(1 << 24, G_MAXINT32);
      self->capabilities_id = msg->id;
      g_queue_push_head(&self->out_queue, msg);
    } else {
      msg->id = id_allocate(self);
      g_queue_push_tail(&self->out_queue, msg);
    }
    GString *text = command_text(command, arguments, msg->id);
    msg->len = text->len;
    msg->data = g_string_free(text, FALSE);
    msg->fds = g_steal_pointer(&fds);
  }
  pc->id = msg->id;
  pc->order = self->next_order++;

  pc->task = g_steal_pointer(&task);
  pc->timeout_source = attach_source(self, g_timeout_source_new(timeout_ms),
                                     on_command_timeout, pc);
  if (cancellable)
    pc->cancel_source = attach_source(self, g_cancellable_source_new(cancellable),
                                      G_SOURCE_FUNC(on_command_cancelled), pc);
  g_hash_table_insert(self->pending, &pc->id, pc);

  qmp_client_schedule_write(self);
}

void
qmp_client_execute_async(QmpClient *self, const char *command,
                         JsonObject *arguments, int fd, guint timeout_ms,
                         GCancellable *cancellable,
                         GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail(QMP_IS_CLIENT(self));
  g_return_if_fail(command != NULL);

  qmp_client_send_command(self, command, arguments, fd, timeout_ms, FALSE,
                          cancellable, callback, user_data);
}

JsonNode *
qmp_client_execute_finish(QmpClient *self, GAsyncResult *result,
                          GError **error)
{
  g_return_val_if_fail(g_task_is_valid(result, self), NULL);
  return g_task_propagate_pointer(G_TASK(result), error);
}

void
qmp_client_wait_event_async(QmpClient *self, const char *name,
                            const char *key, const char *value,
                            guint timeout_ms, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GTask) task = NULL;
  QmpEventWaiter *waiter;

  g_return_if_fail(QMP_IS_CLIENT(self));
  g_return_if_fail(name != NULL);
  g_return_if_fail(key == NULL || value != NULL);

  task = g_task_new(self, cancellable, callback, user_data);
  g_task_set_source_tag(task, qmp_client_wait_event_async);
  if (self->closed) {
    g_task_return_new_error(task, QMP_ERROR, QMP_ERROR_DISCONNECTED,
                            "Cannot wait for %s: the QMP connection is closed",
                            name);
    return;
  }

  waiter = g_new0(QmpEventWaiter, 1);
  waiter->client = self;
  waiter->task = g_steal_pointer(&task);
  waiter->name = g_strdup(name);
  waiter->key = g_strdup(key);
  waiter->value = key ? g_strdup(value) : NULL;
  waiter->timeout_ms = timeout_ms;
  if (timeout_ms > 0)
    waiter->timeout_source = attach_source(self, g_timeout_source_new(timeout_ms),
                                           on_waiter_timeout, waiter);
  if (cancellable)
    waiter->cancel_source = attach_source(self, g_cancellable_source_new(cancellable),
                                          G_SOURCE_FUNC(on_waiter_cancelled),
                                          waiter);
  g_queue_push_tail(&self->waiters, waiter);
}

JsonObject *
qmp_client_wait_event_finish(QmpClient *self, GAsyncResult *result,
                             GError **error)
{
  g_return_val_if_fail(g_task_is_valid(result, self), NULL);
  return g_task_propagate_pointer(G_TASK(result), error);
}

void
qmp_client_close(QmpClient *self)
{
  g_autoptr(GError) reason = NULL;

  g_return_if_fail(QMP_IS_CLIENT(self));

  if (self->closed)
    return;
  reason = g_error_new_literal(QMP_ERROR, QMP_ERROR_DISCONNECTED,
                               "The QMP connection was closed by hostdevd");
  qmp_client_shutdown(self, reason, TRUE);
}

gboolean
qmp_client_is_connected(QmpClient *self)
{
  g_return_val_if_fail(QMP_IS_CLIENT(self), FALSE);
  return !self->closed;
}

const char *
qmp_client_get_qemu_version(QmpClient *self)
{
  g_return_val_if_fail(QMP_IS_CLIENT(self), NULL);
  return self->qemu_version;
}

pid_t
qmp_client_get_peer_pid(QmpClient *self)
{
  g_return_val_if_fail(QMP_IS_CLIENT(self), 0);
  return self->peer_pid;
}

uid_t
qmp_client_get_peer_uid(QmpClient *self)
{
  g_return_val_if_fail(QMP_IS_CLIENT(self), (uid_t) -1);
  return self->peer_uid;
}

void
qmp_client_set_max_message(QmpClient *self, gsize max_bytes)
{
  g_return_if_fail(QMP_IS_CLIENT(self));
  /* the input buffer is a GByteArray, indexed by guint */
  self->max_message = max_bytes > 0 ? MIN(max_bytes, (gsize) G_MAXINT32)
                                    : QMP_DEFAULT_MAX_MESSAGE;
}

/* ---- connecting --------------------------------------------------------- */

typedef struct {
  char *path;
  guint wait_ms;
  gint64 deadline_us;
  GSocketClient *socket_client;
  GSocketAddress *address;
  QmpPeerCheck check;
  gpointer check_data;
} QmpConnectData;

static void
connect_data_free(QmpConnectData *data)
{
  g_free(data->path);
  g_clear_object(&data->socket_client);
  g_clear_object(&data->address);
  g_free(data);
}

static void connect_attempt(GTask *task);

static void
on_connect_handshake_done(GObject *source, GAsyncResult *result,
                          gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  /* adopts the reference on_connected() got from the constructor */
  g_autoptr(QmpClient) client = QMP_CLIENT(source);
  GError *error = NULL;

  if (!qmp_client_handshake_finish(client, result, &error)) {
    g_task_return_error(task, error);
    return;
  }
  g_task_return_pointer(task, g_steal_pointer(&client), g_object_unref);
}

static gboolean
on_connect_retry(gpointer user_data)
{
  GTask *task = user_data;

  if (!g_task_return_error_if_cancelled(task))
    connect_attempt(g_object_ref(task));
  return G_SOURCE_REMOVE;
}

static void
on_connected(GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(GTask) task = user_data;
  QmpConnectData *data = g_task_get_task_data(task);
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  GCancellable *cancellable;
  QmpClient *client;

  connection = g_socket_client_connect_finish(G_SOCKET_CLIENT(source), result,
                                              &error);
  if (connection == NULL) {
    gint64 now = g_get_monotonic_time();

    if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
      g_task_return_error(task, g_steal_pointer(&error));
      return;
    }
    /* QEMU has not created or not yet listens on the socket */
    if ((g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
         g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)) &&
        now < data->deadline_us) {
      guint remaining_ms = (guint) ((data->deadline_us - now + 999) / 1000);
      GSource *retry = g_timeout_source_new(MIN(remaining_ms, QMP_CONNECT_RETRY_MS));

      g_source_attach(retry, g_task_get_context(task));
      g_source_set_callback(retry, on_connect_retry, g_steal_pointer(&task),
                            g_object_unref);
      g_source_unref(retry);
      return;
    }
    g_task_return_new_error(task, QMP_ERROR, QMP_ERROR_CONNECT,
                            "Could not connect to the QMP socket %s within %u ms: %s. "
                            "QEMU must be started with -qmp unix:%s,server=on,wait=off",
                            data->path, data->wait_ms, error->message, data->path);
    return;
  }

  client = qmp_client_new_for_connection(connection);
  if (data->check &&
      !data->check(client->peer_pid, client->peer_uid, data->check_data, &error)) {
    /* nothing of the peer has been read: drop it before it is heard */
    g_io_stream_close(G_IO_STREAM(connection), NULL, NULL);
    g_object_unref(client);
    g_task_return_error(task, g_steal_pointer(&error));
    return;
  }
  cancellable = g_task_get_cancellable(task);
  qmp_client_handshake_async(client, cancellable, on_connect_handshake_done,
                             g_steal_pointer(&task));
}

static void
connect_attempt(GTask *task)
{
  QmpConnectData *data = g_task_get_task_data(task);

  g_socket_client_connect_async(data->socket_client,
                                G_SOCKET_CONNECTABLE(data->address),
                                g_task_get_cancellable(task), on_connected, task);
}

void
qmp_client_connect_async(const char *path, guint wait_ms,
                         GCancellable *cancellable,
                         GAsyncReadyCallback callback, gpointer user_data)
{
  qmp_client_connect_checked_async(path, wait_ms, NULL, NULL, cancellable, callback,
                                   user_data);
}

void
qmp_client_connect_checked_async(const char *path, guint wait_ms, QmpPeerCheck check,
                                 gpointer check_data, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task;
  QmpConnectData *data;

  g_return_if_fail(path != NULL);

  task = g_task_new(NULL, cancellable, callback, user_data);
  g_task_set_source_tag(task, qmp_client_connect_async);

  data = g_new0(QmpConnectData, 1);
  data->path = g_strdup(path);
  data->wait_ms = wait_ms;
  data->deadline_us = g_get_monotonic_time() + (gint64) wait_ms * 1000;
  data->address = g_unix_socket_address_new(path);
  data->socket_client = g_socket_client_new();
  data->check = check;
  data->check_data = check_data;
  g_socket_client_set_enable_proxy(data->socket_client, FALSE);
  g_task_set_task_data(task, data, (GDestroyNotify) connect_data_free);

  connect_attempt(task);
}

QmpClient *
qmp_client_connect_finish(GAsyncResult *result, GError **error)
{
  g_return_val_if_fail(g_task_is_valid(result, NULL), NULL);
  return g_task_propagate_pointer(G_TASK(result), error);
}
