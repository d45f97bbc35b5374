/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-qmp-client.c - the QMP client against a scripted peer
 *
 * The peer is the other end of a socketpair (or of a listening socket for
 * the connect tests), read by a source on the test's own main context and
 * written with plain write(): the test body plays QEMU line by line, which
 * lets it produce what a real QEMU rarely does on demand (replies out of
 * order, late or missing replies, garbage, oversized messages).
 */
#include "qmp-client.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Nothing in these tests should take this long; a hang fails instead. */
#define TEST_DEADLINE_S 10

#define GREETING \
  "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, " \
  "\"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7+deb12u7\"}, " \
  "\"capabilities\": [\"oob\"]}}\r\n"

typedef struct {
  guint64 chunk_start;   /* stream offsets of the recvmsg that carried it */
  guint64 chunk_end;
  int fd;
} PeerFd;

typedef struct {
  GMainContext *context;
  GSource *ticker;

  int peer_fd;
  GSource *peer_source;
  gboolean peer_eof;
  GString *peer_in;
  guint64 peer_in_offset;    /* stream offset of peer_in->str[0] */
  GPtrArray *peer_msgs;      /* JsonObject *, in arrival order */
  GArray *peer_msg_starts;   /* guint64 stream offset of each message */
  GArray *peer_fds;          /* PeerFd */
  guint peer_next;

  QmpClient *client;
  guint closed_count;
  GError *closed_reason;
  GPtrArray *log;            /* "event:NAME", "reply:LABEL", "waiter:LABEL", "closed" */
  GPtrArray *event_data;     /* JsonObject * */
  GArray *event_times;       /* gint64 */

  /* connect tests */
  char *tmpdir;
  char *socket_path;
  int listen_fd;
  GSource *listen_source;
} Fixture;

typedef struct {
  Fixture *f;
  const char *label;
  gboolean done;
  JsonNode *node;
  JsonObject *object;
  QmpClient *client;
  GError *error;
} Result;

static Result
result_init(Fixture *f, const char *label)
{
  Result r = { .f = f, .label = label };
  return r;
}

static void
result_clear(Result *r)
{
  g_clear_pointer(&r->node, json_node_unref);
  g_clear_pointer(&r->object, json_object_unref);
  g_clear_object(&r->client);
  g_clear_error(&r->error);
}

#define run_until(f, cond)                                                \
  G_STMT_START {                                                          \
    gint64 deadline_ = g_get_monotonic_time() + TEST_DEADLINE_S * G_USEC_PER_SEC; \
    while (!(cond)) {                                                     \
      g_assert_cmpint(g_get_monotonic_time(), <, deadline_);              \
      g_main_context_iteration((f)->context, TRUE);                      \
    }                                                                     \
  } G_STMT_END

/* run_for() - let the loop run @ms, so that what should not happen could. */
static void
run_for(Fixture *f, guint ms)
{
  gint64 until = g_get_monotonic_time() + (gint64) ms * 1000;

  while (g_get_monotonic_time() < until)
    g_main_context_iteration(f->context, TRUE);
}

static gboolean
on_tick(gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* ---- the scripted peer -------------------------------------------------- */

static void
peer_split_lines(Fixture *f)
{
  char *newline;

  while ((newline = memchr(f->peer_in->str, '\n', f->peer_in->len)) != NULL) {
    gsize len = (gsize) (newline - f->peer_in->str);
    g_autoptr(GError) error = NULL;
    g_autofree char *line = g_strndup(f->peer_in->str, len);
    g_autoptr(JsonNode) node = json_from_string(line, &error);

    g_assert_no_error(error);
    g_assert_nonnull(node);
    g_assert_true(JSON_NODE_HOLDS_OBJECT(node));
    g_ptr_array_add(f->peer_msgs, json_object_ref(json_node_get_object(node)));
    g_array_append_val(f->peer_msg_starts, f->peer_in_offset);
    g_string_erase(f->peer_in, 0, (gssize) len + 1);
    f->peer_in_offset += len + 1;
  }
}

static gboolean
on_peer_readable(int fd, GIOCondition condition, gpointer user_data)
{
  Fixture *f = user_data;
  char buf[65536];
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * 8)];
  } control;
  struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
  struct msghdr mh = {
    .msg_iov = &iov,
    .msg_iovlen = 1,
    .msg_control = control.buf,
    .msg_controllen = sizeof(control.buf),
  };
  guint64 chunk_start = f->peer_in_offset + f->peer_in->len;
  ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  if (n <= 0) {
    f->peer_eof = TRUE;
    g_clear_pointer(&f->peer_source, g_source_unref);
    return G_SOURCE_REMOVE;
  }
  g_assert_false(mh.msg_flags & MSG_CTRUNC);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
    gsize count;

    g_assert_cmpint(c->cmsg_level, ==, SOL_SOCKET);
    g_assert_cmpint(c->cmsg_type, ==, SCM_RIGHTS);
    count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (gsize i = 0; i < count; i++) {
      PeerFd pfd = { .chunk_start = chunk_start,
                     .chunk_end = chunk_start + (guint64) n };

      memcpy(&pfd.fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      g_array_append_val(f->peer_fds, pfd);
    }
  }
  g_string_append_len(f->peer_in, buf, n);
  peer_split_lines(f);
  return G_SOURCE_CONTINUE;
}

static void
peer_attach(Fixture *f, int fd)
{
  g_assert_true(g_unix_set_fd_nonblocking(fd, TRUE, NULL));
  f->peer_fd = fd;
  f->peer_source = g_unix_fd_source_new(fd, G_IO_IN);
  g_source_set_callback(f->peer_source, G_SOURCE_FUNC(on_peer_readable), f, NULL);
  g_source_attach(f->peer_source, f->context);
}

/* peer_pause() - stop reading, so the client's writes back up. */
static void
peer_pause(Fixture *f)
{
  g_source_destroy(f->peer_source);
  g_clear_pointer(&f->peer_source, g_source_unref);
}

static void
peer_close(Fixture *f)
{
  if (f->peer_source) {
    g_source_destroy(f->peer_source);
    g_clear_pointer(&f->peer_source, g_source_unref);
  }
  if (f->peer_fd >= 0) {
    g_assert_no_errno(close(f->peer_fd));
    f->peer_fd = -1;
  }
}

static void
peer_send(Fixture *f, const char *text)
{
  gsize len = strlen(text);
  gsize done = 0;

  while (done < len) {
    ssize_t n = write(f->peer_fd, text + done, len - done);

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      g_main_context_iteration(f->context, FALSE);
      continue;
    }
    g_assert_cmpint(n, >, 0);
    done += (gsize) n;
  }
}

static void G_GNUC_PRINTF(2, 3)
peer_sendf(Fixture *f, const char *format, ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start(args, format);
  text = g_strdup_vprintf(format, args);
  va_end(args);
  peer_send(f, text);
}

/* peer_expect() - the next message the client sent; Return: (transfer none). */
static JsonObject *
peer_expect(Fixture *f)
{
  run_until(f, f->peer_msgs->len > f->peer_next);
  return g_ptr_array_index(f->peer_msgs, f->peer_next++);
}

/* peer_expect_command() - the next message must execute @command; Return: its id. */
static gint64
peer_expect_command(Fixture *f, const char *command)
{
  JsonObject *msg = peer_expect(f);
  JsonNode *id = json_object_get_member(msg, "id");

  g_assert_cmpstr(json_object_get_string_member(msg, "execute"), ==, command);
  g_assert_nonnull(id);
  g_assert_cmpint(json_node_get_value_type(id), ==, G_TYPE_INT64);
  return json_node_get_int(id);
}

/* peer_expect_unstaged() - the next message must be a staged @command ended
 * unstaged: with a member QEMU refuses it for; Return: its id. */
static gint64
peer_expect_unstaged(Fixture *f, const char *command)
{
  JsonObject *msg = peer_expect(f);

  g_assert_cmpstr(json_object_get_string_member(msg, "execute"), ==, command);
  g_assert_true(json_object_has_member(msg, "x-hostdevd-unstaged"));
  return json_object_get_int_member(msg, "id");
}

/* ---- client callbacks --------------------------------------------------- */

static void
on_event(QmpClient *client, const char *name, JsonObject *data,
         gint64 timestamp_us, gpointer user_data)
{
  Fixture *f = user_data;

  g_assert_nonnull(data);
  g_ptr_array_add(f->log, g_strdup_printf("event:%s", name));
  g_ptr_array_add(f->event_data, json_object_ref(data));
  g_array_append_val(f->event_times, timestamp_us);
}

static void
on_closed(QmpClient *client, const GError *reason, gpointer user_data)
{
  Fixture *f = user_data;

  g_assert_nonnull(reason);
  g_assert_false(qmp_client_is_connected(client));
  f->closed_count++;
  if (f->closed_reason == NULL)
    f->closed_reason = g_error_copy(reason);
  g_ptr_array_add(f->log, g_strdup("closed"));
}

static void
fixture_watch_client(Fixture *f)
{
  g_signal_connect(f->client, "event", G_CALLBACK(on_event), f);
  g_signal_connect(f->client, "closed", G_CALLBACK(on_closed), f);
}

static void
on_handshake_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Result *r = user_data;

  qmp_client_handshake_finish(QMP_CLIENT(source), result, &r->error);
  r->done = TRUE;
}

static void
on_execute_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Result *r = user_data;

  r->node = qmp_client_execute_finish(QMP_CLIENT(source), result, &r->error);
  g_assert_true((r->node == NULL) != (r->error == NULL));
  r->done = TRUE;
  g_ptr_array_add(r->f->log, g_strdup_printf("reply:%s", r->label));
}

static void
on_wait_event_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Result *r = user_data;

  r->object = qmp_client_wait_event_finish(QMP_CLIENT(source), result, &r->error);
  g_assert_true((r->object == NULL) != (r->error == NULL));
  r->done = TRUE;
  g_ptr_array_add(r->f->log, g_strdup_printf("waiter:%s", r->label));
}

static void
on_connect_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Result *r = user_data;

  g_assert_null(source);
  r->client = qmp_client_connect_finish(result, &r->error);
  g_assert_true((r->client == NULL) != (r->error == NULL));
  r->done = TRUE;
}

static void
execute(Fixture *f, Result *r, const char *command, JsonObject *arguments,
        int fd, guint timeout_ms)
{
  qmp_client_execute_async(f->client, command, arguments, fd, timeout_ms,
                           NULL, on_execute_done, r);
}

static void
wait_event(Fixture *f, Result *r, const char *name, const char *key,
           const char *value, guint timeout_ms)
{
  qmp_client_wait_event_async(f->client, name, key, value, timeout_ms, NULL,
                              on_wait_event_done, r);
}

/* do_handshake() - the greeting and negotiation every test starts with. */
static void
do_handshake(Fixture *f)
{
  Result r = result_init(f, "handshake");
  gint64 id;

  qmp_client_handshake_async(f->client, NULL, on_handshake_done, &r);
  peer_send(f, GREETING);
  id = peer_expect_command(f, "qmp_capabilities");
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
  run_until(f, r.done);
  g_assert_no_error(r.error);
  result_clear(&r);
}

/* assert_log() - the fixture's log must read exactly @expected (NULL-terminated). */
static void
assert_log(Fixture *f, const char *const *expected)
{
  guint n = g_strv_length((char **) expected);

  for (guint i = 0; i < MIN(n, f->log->len); i++)
    g_assert_cmpstr(g_ptr_array_index(f->log, i), ==, expected[i]);
  g_assert_cmpuint(f->log->len, ==, n);
}

/* ---- fixtures ----------------------------------------------------------- */

static void
fixture_setup_bare(Fixture *f, gconstpointer data)
{
  f->context = g_main_context_new();
  g_main_context_push_thread_default(f->context);
  /* wakes blocking iterations so run_until() can check its deadline */
  f->ticker = g_timeout_source_new(20);
  g_source_set_callback(f->ticker, on_tick, NULL, NULL);
  g_source_attach(f->ticker, f->context);

  f->peer_fd = -1;
  f->listen_fd = -1;
  f->peer_in = g_string_new(NULL);
  f->peer_msgs = g_ptr_array_new_with_free_func((GDestroyNotify) json_object_unref);
  f->peer_msg_starts = g_array_new(FALSE, FALSE, sizeof(guint64));
  f->peer_fds = g_array_new(FALSE, FALSE, sizeof(PeerFd));
  f->log = g_ptr_array_new_with_free_func(g_free);
  f->event_data = g_ptr_array_new_with_free_func((GDestroyNotify) json_object_unref);
  f->event_times = g_array_new(FALSE, FALSE, sizeof(gint64));
}

static void
fixture_setup(Fixture *f, gconstpointer data)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  int sv[2];

  fixture_setup_bare(f, data);
  g_assert_no_errno(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  socket = g_socket_new_from_fd(sv[0], &error);
  g_assert_no_error(error);
  connection = g_socket_connection_factory_create_connection(socket);
  f->client = qmp_client_new_for_connection(connection);
  g_assert_nonnull(f->client);
  fixture_watch_client(f);
  peer_attach(f, sv[1]);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
  if (f->client) {
    qmp_client_close(f->client);
    g_clear_object(&f->client);
  }
  peer_close(f);
  if (f->listen_source) {
    g_source_destroy(f->listen_source);
    g_clear_pointer(&f->listen_source, g_source_unref);
  }
  if (f->listen_fd >= 0)
    g_assert_no_errno(close(f->listen_fd));
  if (f->socket_path)
    (void) g_unlink(f->socket_path);
  if (f->tmpdir)
    g_assert_no_errno(g_rmdir(f->tmpdir));
  g_free(f->socket_path);
  g_free(f->tmpdir);

  /* let cancelled reads and deferred completions finish before the end */
  g_source_destroy(f->ticker);
  g_source_unref(f->ticker);
  for (guint i = 0; i < 1000 && g_main_context_iteration(f->context, FALSE); i++)
    ;
  g_main_context_pop_thread_default(f->context);
  g_main_context_unref(f->context);

  for (guint i = 0; i < f->peer_fds->len; i++)
    close(g_array_index(f->peer_fds, PeerFd, i).fd);
  g_array_unref(f->peer_fds);
  g_string_free(f->peer_in, TRUE);
  g_ptr_array_unref(f->peer_msgs);
  g_array_unref(f->peer_msg_starts);
  g_ptr_array_unref(f->log);
  g_ptr_array_unref(f->event_data);
  g_array_unref(f->event_times);
  g_clear_error(&f->closed_reason);
}

/* ---- tests -------------------------------------------------------------- */

static void
test_handshake(Fixture *f, gconstpointer data)
{
  Result hs = result_init(f, "handshake");
  Result early = result_init(f, "early");
  JsonObject *caps;
  gint64 caps_id, id;

  g_assert_null(qmp_client_get_qemu_version(f->client));
  qmp_client_handshake_async(f->client, NULL, on_handshake_done, &hs);
  /* issued before negotiation: must wait until qmp_capabilities succeeded */
  execute(f, &early, "query-status", NULL, -1, 0);
  run_for(f, 50);
  g_assert_cmpuint(f->peer_msgs->len, ==, 0);

  peer_send(f, GREETING);
  caps = peer_expect(f);
  g_assert_cmpstr(json_object_get_string_member(caps, "execute"), ==,
                  "qmp_capabilities");
  g_assert_false(json_object_has_member(caps, "arguments"));
  caps_id = json_object_get_int_member(caps, "id");
  /* an id of its own, out of the range of the commands' small ones */
  g_assert_cmpint(caps_id, >=, 1 << 24);
  g_assert_cmpstr(qmp_client_get_qemu_version(f->client), ==, "7.2.22");

  run_for(f, 50);
  g_assert_cmpuint(f->peer_msgs->len, ==, 1);
  g_assert_false(hs.done);

  /* the answer a previous client's command left: same small id as the
   * queued command's, and dropped, since it comes before the negotiation's */
  peer_send(f, "{\"return\": {\"status\": \"stale\"}, \"id\": 0}\r\n");
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", caps_id);
  run_until(f, hs.done);
  g_assert_no_error(hs.error);
  g_assert_true(qmp_client_is_connected(f->client));
  g_assert_false(early.done);

  id = peer_expect_command(f, "query-status");
  g_assert_cmpint(id, ==, 0);
  peer_sendf(f, "{\"return\": {\"status\": \"prelaunch\"}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
  run_until(f, early.done);
  g_assert_no_error(early.error);
  g_assert_cmpstr(json_object_get_string_member(json_node_get_object(early.node), "status"),
                  ==, "prelaunch");
  g_assert_cmpuint(f->closed_count, ==, 0);
  result_clear(&hs);
  result_clear(&early);
}

static void
test_bad_greeting(Fixture *f, gconstpointer data)
{
  Result hs = result_init(f, "handshake");
  Result after = result_init(f, "after");

  qmp_client_handshake_async(f->client, NULL, on_handshake_done, &hs);
  peer_send(f, "{\"return\": {}}\r\n");
  run_until(f, hs.done);
  g_assert_error(hs.error, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_nonnull(strstr(hs.error->message, "greeting"));
  g_assert_cmpuint(f->closed_count, ==, 1);
  g_assert_error(f->closed_reason, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_false(qmp_client_is_connected(f->client));
  g_assert_null(qmp_client_get_qemu_version(f->client));
  /* nothing was sent to a peer that is not QMP */
  run_until(f, f->peer_eof);
  g_assert_cmpuint(f->peer_msgs->len, ==, 0);

  execute(f, &after, "query-status", NULL, -1, 0);
  run_until(f, after.done);
  g_assert_error(after.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  result_clear(&hs);
  result_clear(&after);
}

/* A previous client's answer may come before the greeting: one is dropped,
 * and the handshake goes on; two are not what QEMU does. */
static void
test_stray_before_greeting(Fixture *f, gconstpointer data)
{
  Result hs = result_init(f, "handshake");
  gint64 id;

  qmp_client_handshake_async(f->client, NULL, on_handshake_done, &hs);
  peer_send(f, "{\"return\": {}, \"id\": 3}\r\n");
  peer_send(f, GREETING);
  id = peer_expect_command(f, "qmp_capabilities");
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
  run_until(f, hs.done);
  g_assert_no_error(hs.error);
  g_assert_true(qmp_client_is_connected(f->client));
  result_clear(&hs);
}

static void
test_two_strays_before_greeting(Fixture *f, gconstpointer data)
{
  Result hs = result_init(f, "handshake");

  qmp_client_handshake_async(f->client, NULL, on_handshake_done, &hs);
  peer_send(f, "{\"return\": {}, \"id\": 3}\r\n{\"error\": {\"class\": \"GenericError\", "
               "\"desc\": \"x\"}, \"id\": 4}\r\n");
  run_until(f, hs.done);
  g_assert_error(hs.error, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_nonnull(strstr(hs.error->message, "greeting"));
  g_assert_false(qmp_client_is_connected(f->client));
  result_clear(&hs);
}

static void
test_handshake_cancel(Fixture *f, gconstpointer data)
{
  Result hs = result_init(f, "handshake");
  Result again = result_init(f, "again");
  g_autoptr(GCancellable) cancellable = g_cancellable_new();

  qmp_client_handshake_async(f->client, cancellable, on_handshake_done, &hs);
  run_for(f, 30);
  g_assert_false(hs.done);
  g_cancellable_cancel(cancellable);
  run_until(f, hs.done);
  g_assert_error(hs.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpuint(f->closed_count, ==, 1);
  g_assert_false(qmp_client_is_connected(f->client));
  run_until(f, f->peer_eof);

  qmp_client_handshake_async(f->client, NULL, on_handshake_done, &again);
  run_until(f, again.done);
  g_assert_error(again.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  result_clear(&hs);
  result_clear(&again);
}

static void
test_execute_return(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "query");
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonObject) nested = json_object_new();
  JsonObject *msg, *sent_args, *ret;

  do_handshake(f);
  json_object_set_int_member(nested, "a", 1);
  json_object_set_string_member(args, "id", "hostdev0");
  json_object_set_string_member(args, "text", "line\nbreak \"quoted\"");
  json_object_set_object_member(args, "nested", json_object_ref(nested));
  execute(f, &r, "device_add", args, -1, 0);

  msg = peer_expect(f);
  g_assert_cmpstr(json_object_get_string_member(msg, "execute"), ==, "device_add");
  sent_args = json_object_get_object_member(msg, "arguments");
  g_assert_cmpstr(json_object_get_string_member(sent_args, "id"), ==, "hostdev0");
  g_assert_cmpstr(json_object_get_string_member(sent_args, "text"), ==,
                  "line\nbreak \"quoted\"");
  g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(sent_args, "nested"), "a"),
                  ==, 1);
  peer_sendf(f, "{\"return\": {\"status\": \"running\", \"running\": true}, "
             "\"id\": %" G_GINT64_FORMAT "}\r\n",
             json_object_get_int_member(msg, "id"));
  run_until(f, r.done);
  g_assert_no_error(r.error);
  g_assert_true(JSON_NODE_HOLDS_OBJECT(r.node));
  ret = json_node_get_object(r.node);
  g_assert_cmpstr(json_object_get_string_member(ret, "status"), ==, "running");
  g_assert_true(json_object_get_boolean_member(ret, "running"));
  result_clear(&r);
}

static void
test_error_classes(Fixture *f, gconstpointer data)
{
  static const struct {
    const char *klass;
    const char *desc;
    QmpError code;
  } cases[] = {
    { "DeviceNotFound", "Device 'nope' not found", QMP_ERROR_DEVICE_NOT_FOUND },
    { "GenericError", "Duplicate device ID 'hostdev0' for device", QMP_ERROR_COMMAND },
    { "CommandNotFound", "The command frobnicate has not been found", QMP_ERROR_COMMAND_NOT_FOUND },
    { "KVMMissingCap", "Using KVM without foo", QMP_ERROR_COMMAND },
  };

  do_handshake(f);
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    Result r = result_init(f, cases[i].klass);
    gint64 id;

    execute(f, &r, "device_del", NULL, -1, 0);
    id = peer_expect_command(f, "device_del");
    peer_sendf(f, "{\"id\": %" G_GINT64_FORMAT ", \"error\": {\"class\": \"%s\", "
               "\"desc\": \"%s\"}}\r\n", id, cases[i].klass, cases[i].desc);
    run_until(f, r.done);
    g_assert_error(r.error, QMP_ERROR, (gint) cases[i].code);
    g_assert_cmpstr(r.error->message, ==, cases[i].desc);
    result_clear(&r);
  }
  g_assert_true(qmp_client_is_connected(f->client));
}

static void
test_out_of_order(Fixture *f, gconstpointer data)
{
  Result a = result_init(f, "a");
  Result b = result_init(f, "b");
  Result c = result_init(f, "c");
  gint64 ida, idb, idc;
  static const char *const expected[] = { "reply:c", "reply:a", "reply:b", NULL };

  do_handshake(f);
  execute(f, &a, "query-a", NULL, -1, 0);
  execute(f, &b, "query-b", NULL, -1, 0);
  execute(f, &c, "query-c", NULL, -1, 0);
  ida = peer_expect_command(f, "query-a");
  idb = peer_expect_command(f, "query-b");
  idc = peer_expect_command(f, "query-c");
  g_assert_cmpint(ida, <, idb);
  g_assert_cmpint(idb, <, idc);

  peer_sendf(f, "{\"return\": \"C\", \"id\": %" G_GINT64_FORMAT "}\r\n"
             "{\"return\": \"A\", \"id\": %" G_GINT64_FORMAT "}\r\n",
             idc, ida);
  run_until(f, a.done && c.done);
  g_assert_false(b.done);
  peer_sendf(f, "{\"return\": \"B\", \"id\": %" G_GINT64_FORMAT "}\r\n", idb);
  run_until(f, b.done);

  g_assert_cmpstr(json_node_get_string(a.node), ==, "A");
  g_assert_cmpstr(json_node_get_string(b.node), ==, "B");
  g_assert_cmpstr(json_node_get_string(c.node), ==, "C");
  assert_log(f, expected);
  result_clear(&a);
  result_clear(&b);
  result_clear(&c);
}

static void
test_events_interleaved(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "query");
  gint64 id;
  static const char *const expected[] = {
    "event:RESET", "reply:query", "event:STOP", NULL
  };

  do_handshake(f);
  execute(f, &r, "query-status", NULL, -1, 0);
  id = peer_expect_command(f, "query-status");
  /* one write: the event QEMU emitted before answering comes first */
  peer_sendf(f,
             "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
             "\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}}\r\n"
             "{\"return\": {\"status\": \"running\"}, \"id\": %" G_GINT64_FORMAT "}\r\n"
             "{\"timestamp\": {\"seconds\": 1700000001, \"microseconds\": 7}, "
             "\"event\": \"STOP\"}\r\n", id);
  run_until(f, f->event_data->len == 2);
  g_assert_true(r.done);
  assert_log(f, expected);

  g_assert_cmpint(g_array_index(f->event_times, gint64, 0), ==, G_GINT64_CONSTANT(1700000000123456));
  g_assert_cmpint(g_array_index(f->event_times, gint64, 1), ==, G_GINT64_CONSTANT(1700000001000007));
  g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(f->event_data, 0), "reason"),
                  ==, "guest-reset");
  g_assert_cmpuint(json_object_get_size(g_ptr_array_index(f->event_data, 1)), ==, 0);
  result_clear(&r);
}

static void
test_wait_event_same_write(Fixture *f, gconstpointer data)
{
  Result del = result_init(f, "device_del");
  Result deleted = result_init(f, "DEVICE_DELETED");
  g_autoptr(JsonObject) args = json_object_new();
  gint64 id;
  static const char *const expected[] = {
    "reply:device_del", "waiter:DEVICE_DELETED", "event:DEVICE_DELETED", NULL
  };

  do_handshake(f);
  wait_event(f, &deleted, "DEVICE_DELETED", "device", "hostdev0", 5000);
  json_object_set_string_member(args, "id", "hostdev0");
  execute(f, &del, "device_del", args, -1, 0);
  id = peer_expect_command(f, "device_del");
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n"
             "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
             "\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": "
             "\"/machine/peripheral/hostdev0\", \"device\": \"hostdev0\"}}\r\n", id);
  run_until(f, del.done && deleted.done && f->event_data->len == 1);
  g_assert_no_error(del.error);
  g_assert_no_error(deleted.error);
  g_assert_cmpstr(json_object_get_string_member(deleted.object, "device"), ==, "hostdev0");
  g_assert_cmpstr(json_object_get_string_member(deleted.object, "path"), ==,
                  "/machine/peripheral/hostdev0");
  assert_log(f, expected);
  result_clear(&del);
  result_clear(&deleted);
}

static void
test_wait_event_mismatch(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "hostdev0");
  Result any = result_init(f, "any");

  do_handshake(f);
  wait_event(f, &r, "DEVICE_DELETED", "device", "hostdev0", 0);
  peer_send(f,
            "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"hostdev1\"}}\r\n"
            "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": 0}}\r\n"
            "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": [\"hostdev0\"]}}\r\n"
            "{\"event\": \"DEVICE_DELETED\"}\r\n"
            "{\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": \"hostdev0\"}}\r\n"
            "{\"event\": \"SHUTDOWN\", \"data\": {\"device\": \"hostdev0\"}}\r\n");
  run_until(f, f->event_data->len == 6);
  run_for(f, 30);
  g_assert_false(r.done);

  /* a waiter without key takes the next event of its name, whatever its data */
  wait_event(f, &any, "DEVICE_DELETED", NULL, NULL, 0);
  peer_send(f, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"hostdev2\"}}\r\n");
  run_until(f, any.done);
  g_assert_no_error(any.error);
  g_assert_cmpstr(json_object_get_string_member(any.object, "device"), ==, "hostdev2");
  g_assert_false(r.done);

  peer_send(f, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"hostdev0\"}}\r\n");
  run_until(f, r.done);
  g_assert_no_error(r.error);
  g_assert_cmpstr(json_object_get_string_member(r.object, "device"), ==, "hostdev0");
  g_assert_cmpuint(f->event_data->len, ==, 8);
  result_clear(&r);
  result_clear(&any);
}

static void
test_command_timeout(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "slow");
  Result next = result_init(f, "next");
  gint64 start, id, id2;

  do_handshake(f);
  start = g_get_monotonic_time();
  execute(f, &r, "query-status", NULL, -1, 50);
  id = peer_expect_command(f, "query-status");
  run_until(f, r.done);
  g_assert_cmpint(g_get_monotonic_time() - start, >=, 50 * 1000);
  g_assert_error(r.error, QMP_ERROR, QMP_ERROR_TIMEOUT);
  g_assert_cmpstr(r.error->message, ==, "QEMU did not answer query-status within 50 ms");
  g_assert_true(qmp_client_is_connected(f->client));

  /* the late reply, one with no id and one with an unknown id are dropped */
  execute(f, &next, "query-name", NULL, -1, 0);
  id2 = peer_expect_command(f, "query-name");
  peer_sendf(f, "{\"return\": {\"status\": \"late\"}, \"id\": %" G_GINT64_FORMAT "}\r\n"
             "{\"return\": {}}\r\n"
             "{\"return\": {}, \"id\": \"text\"}\r\n"
             "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}, \"id\": 9999}\r\n"
             "{\"return\": {\"name\": \"vm1\"}, \"id\": %" G_GINT64_FORMAT "}\r\n",
             id, id2);
  run_until(f, next.done);
  g_assert_no_error(next.error);
  g_assert_cmpstr(json_object_get_string_member(json_node_get_object(next.node), "name"),
                  ==, "vm1");
  g_assert_true(qmp_client_is_connected(f->client));
  g_assert_cmpuint(f->closed_count, ==, 0);
  result_clear(&r);
  result_clear(&next);
}

static void
test_wait_event_timeout(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "DEVICE_DELETED");
  gint64 start;

  do_handshake(f);
  start = g_get_monotonic_time();
  wait_event(f, &r, "DEVICE_DELETED", "device", "hostdev0", 50);
  run_until(f, r.done);
  g_assert_cmpint(g_get_monotonic_time() - start, >=, 50 * 1000);
  g_assert_error(r.error, QMP_ERROR, QMP_ERROR_TIMEOUT);
  g_assert_nonnull(strstr(r.error->message, "DEVICE_DELETED"));
  g_assert_nonnull(strstr(r.error->message, "50 ms"));
  g_assert_true(qmp_client_is_connected(f->client));

  /* the expired waiter no longer catches the event */
  peer_send(f, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"hostdev0\"}}\r\n");
  run_until(f, f->event_data->len == 1);
  result_clear(&r);
}

static void
test_eof(Fixture *f, gconstpointer data)
{
  Result cmd = result_init(f, "device_del");
  Result ev = result_init(f, "DEVICE_DELETED");
  Result after = result_init(f, "after");
  Result after_ev = result_init(f, "after_ev");
  static const char *const expected[] = {
    "reply:device_del", "waiter:DEVICE_DELETED", "closed", NULL
  };

  do_handshake(f);
  wait_event(f, &ev, "DEVICE_DELETED", NULL, NULL, 0);
  execute(f, &cmd, "device_del", NULL, -1, 0);
  peer_expect_command(f, "device_del");
  peer_close(f);
  run_until(f, f->closed_count > 0);

  g_assert_true(cmd.done);
  g_assert_true(ev.done);
  g_assert_error(cmd.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_error(ev.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_error(f->closed_reason, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpstr(f->closed_reason->message, ==, "QEMU closed the QMP connection");
  g_assert_false(qmp_client_is_connected(f->client));
  assert_log(f, expected);

  qmp_client_close(f->client);
  execute(f, &after, "query-status", NULL, -1, 0);
  wait_event(f, &after_ev, "STOP", NULL, NULL, 0);
  run_until(f, after.done && after_ev.done);
  g_assert_error(after.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_error(after_ev.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpuint(f->closed_count, ==, 1);
  result_clear(&cmd);
  result_clear(&ev);
  result_clear(&after);
  result_clear(&after_ev);
}

static void
test_close(Fixture *f, gconstpointer data)
{
  Result a = result_init(f, "a");
  Result b = result_init(f, "b");
  Result ev = result_init(f, "ev");

  do_handshake(f);
  execute(f, &a, "query-a", NULL, -1, 0);
  execute(f, &b, "query-b", NULL, -1, 0);
  wait_event(f, &ev, "STOP", NULL, NULL, 1000);
  peer_expect_command(f, "query-a");
  peer_expect_command(f, "query-b");

  qmp_client_close(f->client);
  g_assert_cmpuint(f->closed_count, ==, 1);
  g_assert_false(qmp_client_is_connected(f->client));
  qmp_client_close(f->client);
  run_until(f, a.done && b.done && ev.done && f->peer_eof);
  g_assert_error(a.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_error(b.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_error(ev.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_error(f->closed_reason, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  /* failed in the order issued */
  g_assert_cmpstr(g_ptr_array_index(f->log, 1), ==, "reply:a");
  g_assert_cmpstr(g_ptr_array_index(f->log, 2), ==, "reply:b");
  g_assert_cmpuint(f->closed_count, ==, 1);
  result_clear(&a);
  result_clear(&b);
  result_clear(&ev);
}

static void
test_cancel(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "cancelled");
  Result w = result_init(f, "waiter");
  Result next = result_init(f, "next");
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  g_autoptr(GCancellable) early = g_cancellable_new();
  gint64 id, id2;

  do_handshake(f);
  qmp_client_execute_async(f->client, "query-status", NULL, -1, 0, cancellable,
                           on_execute_done, &r);
  qmp_client_wait_event_async(f->client, "STOP", NULL, NULL, 0, cancellable,
                              on_wait_event_done, &w);
  id = peer_expect_command(f, "query-status");
  g_cancellable_cancel(cancellable);
  run_until(f, r.done && w.done);
  g_assert_error(r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_error(w.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  result_clear(&r);

  /* cancelled before it could be written: never reaches QEMU */
  g_cancellable_cancel(early);
  r = result_init(f, "early");
  qmp_client_execute_async(f->client, "system_reset", NULL, -1, 0, early,
                           on_execute_done, &r);
  execute(f, &next, "query-name", NULL, -1, 0);
  peer_sendf(f, "{\"return\": {\"status\": \"late\"}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
  id2 = peer_expect_command(f, "query-name");
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", id2);
  run_until(f, next.done && r.done);
  g_assert_error(r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_no_error(next.error);
  g_assert_true(qmp_client_is_connected(f->client));
  result_clear(&r);
  result_clear(&w);
  result_clear(&next);
}

/*
 * Every command has the smallest id free: free once answered, and not
 * before QEMU's answer to a command its caller gave up on once part of it
 * went out, or to a staged command ended unstaged, has come (or a command
 * reusing the id would take that answer for its own).
 */
static void
test_id_reuse(Fixture *f, gconstpointer data)
{
  g_autoptr(JsonObject) args = json_object_new();
  Result a = result_init(f, "a");
  Result b = result_init(f, "b");
  Result c = result_init(f, "c");
  Result slow = result_init(f, "slow");
  Result next = result_init(f, "next");
  Result again = result_init(f, "again");
  Result after = result_init(f, "after");

  do_handshake(f);
  execute(f, &a, "query-a", NULL, -1, 0);
  execute(f, &b, "query-b", NULL, -1, 0);
  g_assert_cmpint(peer_expect_command(f, "query-a"), ==, 0);
  g_assert_cmpint(peer_expect_command(f, "query-b"), ==, 1);
  peer_send(f, "{\"return\": \"A\", \"id\": 0}\r\n");
  run_until(f, a.done);
  execute(f, &c, "query-c", NULL, -1, 0);
  g_assert_cmpint(peer_expect_command(f, "query-c"), ==, 0);
  peer_send(f, "{\"return\": \"B\", \"id\": 1}\r\n{\"return\": \"C\", \"id\": 0}\r\n");
  run_until(f, b.done && c.done);
  g_assert_cmpstr(json_node_get_string(b.node), ==, "B");
  g_assert_cmpstr(json_node_get_string(c.node), ==, "C");

  /* given up once sent: its id waits for QEMU's late answer */
  execute(f, &slow, "query-slow", NULL, -1, 50);
  g_assert_cmpint(peer_expect_command(f, "query-slow"), ==, 0);
  run_until(f, slow.done);
  g_assert_error(slow.error, QMP_ERROR, QMP_ERROR_TIMEOUT);
  execute(f, &next, "query-next", NULL, -1, 0);
  g_assert_cmpint(peer_expect_command(f, "query-next"), ==, 1);
  peer_send(f, "{\"return\": \"late\", \"id\": 0}\r\n{\"return\": \"N\", \"id\": 1}\r\n");
  run_until(f, next.done);
  g_assert_cmpstr(json_node_get_string(next.node), ==, "N");

  /* a staged command ended unstaged: QEMU answers it too */
  json_object_set_string_member(args, "id", "hostdev0");
  qmp_client_stage(f->client, "device_add", args);
  run_for(f, 20);
  qmp_client_unstage(f->client);
  g_assert_cmpint(peer_expect_unstaged(f, "device_add"), ==, 0);
  execute(f, &again, "query-again", NULL, -1, 0);
  g_assert_cmpint(peer_expect_command(f, "query-again"), ==, 1);
  peer_send(f, "{\"id\": 0, \"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\r\n"
               "{\"return\": \"G\", \"id\": 1}\r\n");
  run_until(f, again.done);
  g_assert_no_error(again.error);
  g_assert_cmpstr(json_node_get_string(again.node), ==, "G");

  /* every answer in: the ids are free again */
  execute(f, &after, "query-after", NULL, -1, 0);
  g_assert_cmpint(peer_expect_command(f, "query-after"), ==, 0);
  peer_send(f, "{\"return\": {}, \"id\": 0}\r\n");
  run_until(f, after.done);
  g_assert_no_error(after.error);
  g_assert_true(qmp_client_is_connected(f->client));
  result_clear(&a);
  result_clear(&b);
  result_clear(&c);
  result_clear(&slow);
  result_clear(&next);
  result_clear(&again);
  result_clear(&after);
}

/* A staged command goes out but for its closing brace (and newline), and
 * only the same command, executed, sends the rest; anything else sent
 * meanwhile (or qmp_client_unstage()) ends it with a member QEMU refuses
 * the command for. */
static void
test_stage(Fixture *f, gconstpointer data)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonObject) other = json_object_new();
  Result r = result_init(f, "staged");
  Result q = result_init(f, "between");
  Result d = result_init(f, "different");
  gint64 id;

  do_handshake(f);
  json_object_set_string_member(args, "driver", "usb-host");
  json_object_set_string_member(args, "id", "hostdev0");
  json_object_set_string_member(other, "driver", "usb-host");
  json_object_set_string_member(other, "id", "hostdev1");

  /* staged, then released by the same command: one message, id kept */
  qmp_client_stage(f->client, "device_add", args);
  run_for(f, 20);
  /* nothing whole yet: what QEMU has is all of it but the closing brace */
  const char *head = "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"usb-host\","
                     "\"id\":\"hostdev0\"},\"id\":";
  g_assert_cmpuint(f->peer_msgs->len, ==, f->peer_next);
  g_assert_true(g_str_has_prefix(f->peer_in->str, head));
  char *end = NULL;
  id = g_ascii_strtoll(f->peer_in->str + strlen(head), &end, 10);
  g_assert_cmpstr(end, ==, "");
  qmp_client_stage(f->client, "device_add", other);   /* one at a time: ignored */
  execute(f, &r, "device_add", args, -1, 0);
  g_assert_cmpint(peer_expect_command(f, "device_add"), ==, id);
  g_assert_cmpstr(f->peer_in->str, ==, "");
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
  run_until(f, r.done);
  g_assert_no_error(r.error);

  /* another command meanwhile: the staged one ends without effect, first */
  qmp_client_stage(f->client, "device_add", args);
  execute(f, &q, "query-status", NULL, -1, 0);
  gint64 unstaged = peer_expect_unstaged(f, "device_add");
  gint64 between = peer_expect_command(f, "query-status");
  peer_sendf(f, "{\"id\": %" G_GINT64_FORMAT ", \"error\": {\"class\": \"GenericError\", "
             "\"desc\": \"QMP input member 'x-hostdevd-unstaged' is unexpected\"}}\r\n",
             unstaged);
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", between);
  run_until(f, q.done);
  g_assert_no_error(q.error);

  /* staged, then executed with other arguments: ended, and sent whole */
  qmp_client_stage(f->client, "device_add", args);
  execute(f, &d, "device_add", other, -1, 0);
  peer_expect_unstaged(f, "device_add");
  JsonObject *msg = peer_expect(f);
  g_assert_cmpstr(json_object_get_string_member(msg, "execute"), ==, "device_add");
  g_assert_cmpstr(json_object_get_string_member(json_object_get_object_member(msg, "arguments"),
                                                "id"), ==, "hostdev1");
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n",
             json_object_get_int_member(msg, "id"));
  run_until(f, d.done);
  g_assert_no_error(d.error);

  /* unstaged: ended as soon as it is */
  qmp_client_stage(f->client, "device_add", args);
  run_for(f, 20);
  qmp_client_unstage(f->client);
  peer_expect_unstaged(f, "device_add");
  g_assert_true(qmp_client_is_connected(f->client));
  result_clear(&r);
  result_clear(&q);
  result_clear(&d);
}

typedef struct {
  const char *name;
  const char *line;
  gsize len;
} Garbage;

#define GARBAGE(name, text) { name, text, sizeof(text) - 1 }

static const Garbage garbage[] = {
  GARBAGE("text", "this is not json\r\n"),
  GARBAGE("array", "[1, 2, 3]\r\n"),
  GARBAGE("number", "42\n"),
  GARBAGE("string", "\"QMP\"\r\n"),
  GARBAGE("truncated", "{\"event\": \"X\"\r\n"),
  GARBAGE("comment", "{\"event\": \"X\" /* ] */}\r\n"),
  GARBAGE("single-quotes", "{'event': 'X'}\r\n"),
  GARBAGE("nul", "{\"event\": \"X\"}\0\r\n"),
  GARBAGE("invalid-utf8", "{\"event\": \"\xff\xfe\"}\r\n"),
};

static void
test_garbage(Fixture *f, gconstpointer data)
{
  const Garbage *garbage_line = data;
  Result r = result_init(f, "pending");
  gsize done = 0;

  do_handshake(f);
  execute(f, &r, "query-status", NULL, -1, 0);
  peer_expect_command(f, "query-status");
  while (done < garbage_line->len) {
    ssize_t n = write(f->peer_fd, garbage_line->line + done, garbage_line->len - done);

    g_assert_cmpint(n, >, 0);
    done += (gsize) n;
  }
  run_until(f, r.done);
  g_assert_error(r.error, QMP_ERROR, QMP_ERROR_DISCONNECTED);
  g_assert_cmpuint(f->closed_count, ==, 1);
  g_assert_error(f->closed_reason, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_false(qmp_client_is_connected(f->client));
  run_until(f, f->peer_eof);
  result_clear(&r);
}

static void
test_deep_nesting(Fixture *f, gconstpointer data)
{
  const gsize depth = 200000;
  g_autoptr(GString) deep = g_string_new("{\"event\": \"X\", \"data\": {\"a\": ");
  g_autoptr(GString) ok = g_string_new("{\"event\": \"OK\", \"data\": {\"a\": ");

  do_handshake(f);
  /* nesting QEMU could send, with brackets in strings that must not count */
  for (guint i = 0; i < 100; i++)
    g_string_append(ok, "[\"]]]]\", ");
  g_string_append(ok, "1");
  for (guint i = 0; i < 100; i++)
    g_string_append(ok, "]");
  g_string_append(ok, "}}\r\n");
  peer_send(f, ok->str);
  run_until(f, f->event_data->len == 1);

  for (gsize i = 0; i < depth; i++)
    g_string_append_c(deep, '[');
  for (gsize i = 0; i < depth; i++)
    g_string_append_c(deep, ']');
  g_string_append(deep, "}}\r\n");
  peer_send(f, deep->str);
  run_until(f, f->closed_count == 1);
  g_assert_error(f->closed_reason, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_nonnull(strstr(f->closed_reason->message, "deeper"));
}

static void
test_oversized_partial(Fixture *f, gconstpointer data)
{
  do_handshake(f);
  qmp_client_set_max_message(f->client, 64);
  /* 100 bytes and no newline: must fail without waiting for the end */
  peer_send(f, "{\"event\": \"X\", \"data\": {\"pad\": \"");
  peer_send(f, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  run_until(f, f->closed_count == 1);
  g_assert_error(f->closed_reason, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_nonnull(strstr(f->closed_reason->message, "64"));
  g_assert_cmpuint(f->event_data->len, ==, 0);
}

/* event_of_length() - an event line of exactly @len bytes before "\r\n". */
static char *
event_of_length(gsize len)
{
  const char *head = "{\"event\": \"PAD\", \"data\": {\"p\": \"";
  const char *tail = "\"}}";
  gsize pad = len - strlen(head) - strlen(tail);
  g_autofree char *padding = g_strnfill(pad, 'x');

  return g_strdup_printf("%s%s%s\r\n", head, padding, tail);
}

static void
test_oversized_line(Fixture *f, gconstpointer data)
{
  g_autofree char *fits = event_of_length(64);
  g_autofree char *too_long = event_of_length(65);

  do_handshake(f);
  qmp_client_set_max_message(f->client, 64);
  g_assert_cmpuint(strlen(fits), ==, 66);
  /* sent whole, the complete line is checked too */
  peer_send(f, fits);
  run_until(f, f->event_data->len == 1);
  peer_send(f, too_long);
  run_until(f, f->closed_count == 1);
  g_assert_error(f->closed_reason, QMP_ERROR, QMP_ERROR_PROTOCOL);
  g_assert_cmpuint(f->event_data->len, ==, 1);
}

static void
test_line_endings(Fixture *f, gconstpointer data)
{
  const char *script =
    "{\"event\": \"A\"}\r\n"
    "\r\n"
    "\n"
    "{\"event\": \"B\", \"data\": {\"s\": \"a\\r\\nb\"}}\n"
    "{\"event\": \"C\"}\r\n";
  static const char *const expected[] = { "event:A", "event:B", "event:C", NULL };

  do_handshake(f);
  /* one byte at a time, so that "\r" and "\n" arrive in separate reads */
  for (const char *p = script; *p; p++) {
    char one[2] = { *p, '\0' };

    peer_send(f, one);
    for (guint i = 0; i < 3; i++)
      g_main_context_iteration(f->context, FALSE);
  }
  run_until(f, f->event_data->len == 3);
  assert_log(f, expected);
  g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(f->event_data, 1), "s"),
                  ==, "a\r\nb");
  g_assert_true(qmp_client_is_connected(f->client));
}

/* assert_fd_works() - @fd is the write end of the pipe read by @read_end. */
static void
assert_fd_works(int fd, int read_end, const char *text)
{
  char buf[32] = { 0 };

  g_assert_cmpint(write(fd, text, strlen(text)), ==, (gssize) strlen(text));
  g_assert_cmpint(read(read_end, buf, sizeof(buf) - 1), ==, (gssize) strlen(text));
  g_assert_cmpstr(buf, ==, text);
}

static void
test_fd_passing(Fixture *f, gconstpointer data)
{
  Result a = result_init(f, "a");
  Result b = result_init(f, "getfd");
  Result c = result_init(f, "c");
  g_autoptr(JsonObject) args = json_object_new();
  int pipe_fds[2];
  PeerFd received;
  guint64 start_b;
  gint64 ida, idb, idc;

  do_handshake(f);
  g_assert_no_errno(pipe2(pipe_fds, O_CLOEXEC));
  json_object_set_string_member(args, "fdname", "hostdev0-usb");

  execute(f, &a, "query-a", NULL, -1, 0);
  execute(f, &b, "getfd", args, pipe_fds[1], 0);
  execute(f, &c, "query-c", NULL, -1, 0);
  /* the client keeps its own duplicate */
  g_assert_no_errno(close(pipe_fds[1]));

  ida = peer_expect_command(f, "query-a");
  idb = peer_expect_command(f, "getfd");
  idc = peer_expect_command(f, "query-c");
  g_assert_cmpuint(f->peer_fds->len, ==, 1);
  received = g_array_index(f->peer_fds, PeerFd, 0);
  start_b = g_array_index(f->peer_msg_starts, guint64, f->peer_next - 2);
  /* it arrived with the getfd bytes, not after them */
  g_assert_cmpuint(received.chunk_start, <=, start_b);
  g_assert_cmpuint(received.chunk_end, >, start_b);
  assert_fd_works(received.fd, pipe_fds[0], "hello");

  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n"
             "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n"
             "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", ida, idb, idc);
  run_until(f, a.done && b.done && c.done);
  g_assert_no_error(b.error);

  /* a descriptor that is not open is refused up front */
  result_clear(&b);
  b = result_init(f, "badfd");
  execute(f, &b, "getfd", args, pipe_fds[1], 0);
  run_until(f, b.done);
  g_assert_nonnull(b.error);
  g_assert_true(qmp_client_is_connected(f->client));

  g_assert_no_errno(close(pipe_fds[0]));
  result_clear(&a);
  result_clear(&b);
  result_clear(&c);
}

static void
test_write_backpressure(Fixture *f, gconstpointer data)
{
  enum { N_COMMANDS = 40, FD_AT = 20, ARG_SIZE = 64 * 1024 };
  Result results[N_COMMANDS];
  g_autofree char *padding = g_strnfill(ARG_SIZE, 'p');
  int pipe_fds[2];
  gint64 ids[N_COMMANDS];
  PeerFd received;

  do_handshake(f);
  g_assert_no_errno(pipe2(pipe_fds, O_CLOEXEC));
  peer_pause(f);
  for (guint i = 0; i < N_COMMANDS; i++) {
    g_autoptr(JsonObject) args = json_object_new();
    g_autofree char *label = g_strdup_printf("cmd%u", i);

    results[i] = result_init(f, "cmd");
    json_object_set_string_member(args, "label", label);
    json_object_set_string_member(args, "padding", padding);
    execute(f, &results[i], "echo", args, i == FD_AT ? pipe_fds[1] : -1, 0);
  }
  /* 2.5 MiB cannot fit in the socket buffer: the writer must wait */
  run_for(f, 100);
  g_assert_cmpuint(f->peer_msgs->len, ==, f->peer_next);
  peer_attach(f, f->peer_fd);

  for (guint i = 0; i < N_COMMANDS; i++) {
    g_autofree char *label = g_strdup_printf("cmd%u", i);
    JsonObject *msg = peer_expect(f);
    JsonObject *args = json_object_get_object_member(msg, "arguments");

    ids[i] = json_object_get_int_member(msg, "id");
    if (i > 0)
      g_assert_cmpint(ids[i], ==, ids[i - 1] + 1);
    g_assert_cmpstr(json_object_get_string_member(args, "label"), ==, label);
    g_assert_cmpstr(json_object_get_string_member(args, "padding"), ==, padding);
  }
  g_assert_cmpuint(f->peer_fds->len, ==, 1);
  received = g_array_index(f->peer_fds, PeerFd, 0);
  g_assert_cmpuint(received.chunk_start, <=,
                   g_array_index(f->peer_msg_starts, guint64, f->peer_next - N_COMMANDS + FD_AT));
  g_assert_cmpuint(received.chunk_end, >,
                   g_array_index(f->peer_msg_starts, guint64, f->peer_next - N_COMMANDS + FD_AT));
  assert_fd_works(received.fd, pipe_fds[0], "late");

  for (guint i = 0; i < N_COMMANDS; i++)
    peer_sendf(f, "{\"return\": %u, \"id\": %" G_GINT64_FORMAT "}\r\n", i, ids[i]);
  for (guint i = 0; i < N_COMMANDS; i++) {
    run_until(f, results[i].done);
    g_assert_no_error(results[i].error);
    g_assert_cmpint(json_node_get_int(results[i].node), ==, i);
    result_clear(&results[i]);
  }
  g_assert_no_errno(close(pipe_fds[0]));
  g_assert_no_errno(close(pipe_fds[1]));
}

static void
test_peer_credentials(Fixture *f, gconstpointer data)
{
  g_assert_cmpint(qmp_client_get_peer_pid(f->client), ==, getpid());
  g_assert_cmpuint(qmp_client_get_peer_uid(f->client), ==, getuid());
}

static void
test_dispose_open(Fixture *f, gconstpointer data)
{
  do_handshake(f);
  g_clear_object(&f->client);
  /* releasing the client ends the connection; no signal on a dying object */
  run_until(f, f->peer_eof);
  g_assert_cmpuint(f->closed_count, ==, 0);
}

static void
make_tmp_socket_path(Fixture *f)
{
  g_autoptr(GError) error = NULL;

  f->tmpdir = g_dir_make_tmp("test-qmp-XXXXXX", &error);
  g_assert_no_error(error);
  f->socket_path = g_build_filename(f->tmpdir, "qmp.sock", NULL);
}

static void
test_connect_missing(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "connect");
  g_autofree char *hint = NULL;
  gint64 start;

  make_tmp_socket_path(f);
  hint = g_strdup_printf("-qmp unix:%s,server=on,wait=off", f->socket_path);

  start = g_get_monotonic_time();
  qmp_client_connect_async(f->socket_path, 150, NULL, on_connect_done, &r);
  run_until(f, r.done);
  g_assert_cmpint(g_get_monotonic_time() - start, >=, 150 * 1000);
  g_assert_error(r.error, QMP_ERROR, QMP_ERROR_CONNECT);
  g_assert_nonnull(strstr(r.error->message, hint));
  result_clear(&r);

  /* 0 tries once */
  r = result_init(f, "connect");
  qmp_client_connect_async(f->socket_path, 0, NULL, on_connect_done, &r);
  run_until(f, r.done);
  g_assert_error(r.error, QMP_ERROR, QMP_ERROR_CONNECT);
  result_clear(&r);
}

static gboolean
on_listen_accept(int fd, GIOCondition condition, gpointer user_data)
{
  Fixture *f = user_data;
  int peer = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

  g_assert_cmpint(peer, >=, 0);
  g_assert_cmpint(f->peer_fd, ==, -1);
  peer_attach(f, peer);
  peer_send(f, GREETING);
  g_clear_pointer(&f->listen_source, g_source_unref);
  return G_SOURCE_REMOVE;
}

/* Like QEMU starting: first the socket is bound, only later does it listen. */
static gboolean
on_bind_socket(gpointer user_data)
{
  Fixture *f = user_data;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  g_strlcpy(addr.sun_path, f->socket_path, sizeof(addr.sun_path));
  f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(f->listen_fd, >=, 0);
  g_assert_no_errno(bind(f->listen_fd, (struct sockaddr *) &addr, sizeof(addr)));
  return G_SOURCE_REMOVE;
}

static gboolean
on_start_listening(gpointer user_data)
{
  Fixture *f = user_data;

  g_assert_cmpint(f->listen_fd, >=, 0);
  g_assert_no_errno(listen(f->listen_fd, 1));
  f->listen_source = g_unix_fd_source_new(f->listen_fd, G_IO_IN);
  g_source_set_callback(f->listen_source, G_SOURCE_FUNC(on_listen_accept), f, NULL);
  g_source_attach(f->listen_source, f->context);
  return G_SOURCE_REMOVE;
}

static void
add_timeout(Fixture *f, guint ms, GSourceFunc func)
{
  GSource *source = g_timeout_source_new(ms);

  g_source_set_callback(source, func, f, NULL);
  g_source_attach(source, f->context);
  g_source_unref(source);
}

static void
test_connect_delayed(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "connect");
  gint64 start, id;

  make_tmp_socket_path(f);
  add_timeout(f, 100, on_bind_socket);
  add_timeout(f, 250, on_start_listening);

  start = g_get_monotonic_time();
  qmp_client_connect_async(f->socket_path, 5000, NULL, on_connect_done, &r);
  id = peer_expect_command(f, "qmp_capabilities");
  g_assert_false(r.done);
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
  run_until(f, r.done);
  g_assert_cmpint(g_get_monotonic_time() - start, >=, 250 * 1000);
  g_assert_no_error(r.error);
  g_assert_true(qmp_client_is_connected(r.client));
  g_assert_cmpstr(qmp_client_get_qemu_version(r.client), ==, "7.2.22");
  g_assert_cmpint(qmp_client_get_peer_pid(r.client), ==, getpid());
  g_assert_cmpuint(qmp_client_get_peer_uid(r.client), ==, getuid());

  /* the connected client works */
  f->client = g_steal_pointer(&r.client);
  fixture_watch_client(f);
  {
    Result q = result_init(f, "query");

    execute(f, &q, "query-status", NULL, -1, 0);
    id = peer_expect_command(f, "query-status");
    peer_sendf(f, "{\"return\": {\"status\": \"paused\"}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
    run_until(f, q.done);
    g_assert_no_error(q.error);
    result_clear(&q);
  }
  result_clear(&r);
}

static void
test_connect_bad_greeting(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "connect");
  gint64 id;

  make_tmp_socket_path(f);
  on_bind_socket(f);
  on_start_listening(f);
  qmp_client_connect_async(f->socket_path, 1000, NULL, on_connect_done, &r);
  /* the peer greets, then refuses the capabilities negotiation */
  id = peer_expect_command(f, "qmp_capabilities");
  peer_sendf(f, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, "
             "\"id\": %" G_GINT64_FORMAT "}\r\n", id);
  run_until(f, r.done);
  g_assert_error(r.error, QMP_ERROR, QMP_ERROR_COMMAND);
  g_assert_cmpstr(r.error->message, ==, "no");
  run_until(f, f->peer_eof);
  result_clear(&r);
}

typedef struct {
  gboolean called;
  pid_t pid;
  uid_t uid;
  gboolean allow;
} PeerCheck;

static gboolean
check_peer(pid_t pid, uid_t uid, gpointer user_data, GError **error)
{
  PeerCheck *check = user_data;

  check->called = TRUE;
  check->pid = pid;
  check->uid = uid;
  if (check->allow)
    return TRUE;
  g_set_error(error, QMP_ERROR, QMP_ERROR_PEER, "peer uid %u refused", (unsigned)uid);
  return FALSE;
}

/* Issue 11, item 4: whoever listens on the QMP socket is checked before it is heard. */
static void
test_connect_peer_refused(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "connect");
  PeerCheck check = { .allow = FALSE };
  g_autofree char *expected = g_strdup_printf("peer uid %u refused", (unsigned)getuid());

  make_tmp_socket_path(f);
  on_bind_socket(f);
  on_start_listening(f);
  qmp_client_connect_checked_async(f->socket_path, 1000, check_peer, &check, NULL,
                                   on_connect_done, &r);
  run_until(f, r.done);
  g_assert_true(check.called);
  g_assert_cmpint(check.pid, ==, getpid());
  g_assert_cmpuint(check.uid, ==, getuid());
  g_assert_error(r.error, QMP_ERROR, QMP_ERROR_PEER);
  g_assert_cmpstr(r.error->message, ==, expected);
  g_assert_null(r.client);
  /* the peer's greeting went unanswered: the connection is simply gone */
  run_until(f, f->peer_eof);
  result_clear(&r);
}

static void
test_connect_peer_allowed(Fixture *f, gconstpointer data)
{
  Result r = result_init(f, "connect");
  PeerCheck check = { .allow = TRUE };
  gint64 id;

  make_tmp_socket_path(f);
  on_bind_socket(f);
  on_start_listening(f);
  qmp_client_connect_checked_async(f->socket_path, 1000, check_peer, &check, NULL,
                                   on_connect_done, &r);
  id = peer_expect_command(f, "qmp_capabilities");
  peer_sendf(f, "{\"return\": {}, \"id\": %" G_GINT64_FORMAT "}\r\n", id);
  run_until(f, r.done);
  g_assert_true(check.called);
  g_assert_no_error(r.error);
  g_assert_true(qmp_client_is_connected(r.client));
  result_clear(&r);
}

/* The answer QEMU gives most commands is read without a parser, into the
 * tree json-glib builds; any other line is left to the parser. */
static void
test_empty_return(void)
{
  static const char *const read[] = {
    "{\"return\": {}, \"id\": 0}", "{\"return\": {}, \"id\": 7}",
    "{\"return\": {}, \"id\": 123456789012345678}",
  };
  static const char *const parsed[] = {
    "{\"return\": {}, \"id\": }", "{\"return\": {}, \"id\": 07}",
    "{\"return\": {}, \"id\": 1234567890123456789}", "{\"return\": {}, \"id\": -1}",
    "{\"return\": {}, \"id\": 1.5}", "{\"return\": {}, \"id\": 1 }",
    "{\"return\": {}, \"id\": 1}}", "{\"return\": {},\"id\": 1}",
    "{\"return\": {\"a\": 1}, \"id\": 1}", "{\"return\": {}, \"id\": \"1\"}",
    "{\"return\": {}}", "{\"return\": {}, \"id\": 1",
  };

  for (gsize i = 0; i < G_N_ELEMENTS(read); i++) {
    g_autoptr(JsonNode) fast = qmp_message_read_empty_return(read[i], strlen(read[i]));
    g_autoptr(JsonParser) parser = json_parser_new();
    g_assert_nonnull(fast);
    g_assert_true(json_parser_load_from_data(parser, read[i], -1, NULL));
    g_assert_true(json_node_equal(fast, json_parser_get_root(parser)));
    g_assert_cmpint(json_node_get_value_type(json_object_get_member(json_node_get_object(fast),
                                                                    "id")), ==, G_TYPE_INT64);
    /* and what qmp_message_check() gives for it */
    g_autoptr(JsonNode) checked = NULL;
    g_assert_true(qmp_message_check(read[i], strlen(read[i]), &checked, NULL));
    g_assert_true(json_node_equal(checked, fast));
  }
  for (gsize i = 0; i < G_N_ELEMENTS(parsed); i++) {
    g_autoptr(JsonNode) fast = qmp_message_read_empty_return(parsed[i], strlen(parsed[i]));
    g_assert_null(fast);
  }
  /* only the bytes given count: a valid answer cut short is no answer */
  const char *cut = "{\"return\": {}, \"id\": 12}";
  g_assert_null(qmp_message_read_empty_return(cut, strlen(cut) - 2));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add(path, Fixture, NULL, fixture_setup, func, fixture_teardown)
#define ADD_BARE(path, func) \
  g_test_add(path, Fixture, NULL, fixture_setup_bare, func, fixture_teardown)

  ADD("/qmp/handshake", test_handshake);
  ADD("/qmp/handshake/bad-greeting", test_bad_greeting);
  ADD("/qmp/handshake/stray-answer", test_stray_before_greeting);
  ADD("/qmp/handshake/two-stray-answers", test_two_strays_before_greeting);
  ADD("/qmp/handshake/cancel", test_handshake_cancel);
  ADD("/qmp/execute/return", test_execute_return);
  ADD("/qmp/execute/error-classes", test_error_classes);
  ADD("/qmp/execute/out-of-order", test_out_of_order);
  ADD("/qmp/execute/timeout", test_command_timeout);
  ADD("/qmp/execute/id-reuse", test_id_reuse);
  ADD("/qmp/execute/cancel", test_cancel);
  ADD("/qmp/execute/stage", test_stage);
  ADD("/qmp/execute/fd-passing", test_fd_passing);
  ADD("/qmp/execute/backpressure", test_write_backpressure);
  ADD("/qmp/events/interleaved", test_events_interleaved);
  ADD("/qmp/wait-event/same-write", test_wait_event_same_write);
  ADD("/qmp/wait-event/mismatch", test_wait_event_mismatch);
  ADD("/qmp/wait-event/timeout", test_wait_event_timeout);
  ADD("/qmp/close/eof", test_eof);
  ADD("/qmp/close/explicit", test_close);
  ADD("/qmp/close/dispose", test_dispose_open);
  for (guint i = 0; i < G_N_ELEMENTS(garbage); i++) {
    g_autofree char *path = g_strdup_printf("/qmp/protocol/garbage/%s", garbage[i].name);

    g_test_add(path, Fixture, &garbage[i], fixture_setup, test_garbage,
               fixture_teardown);
  }
  ADD("/qmp/protocol/deep-nesting", test_deep_nesting);
  ADD("/qmp/protocol/oversized-partial", test_oversized_partial);
  ADD("/qmp/protocol/oversized-line", test_oversized_line);
  ADD("/qmp/protocol/line-endings", test_line_endings);
  g_test_add_func("/qmp/protocol/empty-return", test_empty_return);
  ADD("/qmp/peer-credentials", test_peer_credentials);
  ADD_BARE("/qmp/connect/missing", test_connect_missing);
  ADD_BARE("/qmp/connect/delayed", test_connect_delayed);
  ADD_BARE("/qmp/connect/bad-capabilities", test_connect_bad_greeting);
  ADD_BARE("/qmp/connect/peer-refused", test_connect_peer_refused);
  ADD_BARE("/qmp/connect/peer-allowed", test_connect_peer_allowed);

  return g_test_run();
}
