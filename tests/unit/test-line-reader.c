/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "line-reader.h"

#include <gio/gunixinputstream.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  GMainLoop *loop;
  GPtrArray *lines;      /* "<oversized>" for a NULL line */
  gboolean ended;
  char *end_error;
  guint stop_after;      /* return FALSE after this many lines (0 = never) */
  LineReader *reader;
  gboolean free_in_callback;
} Collect;

static gboolean
on_line(const char *line, gsize length, gpointer user_data)
{
  Collect *c = user_data;
  if (line)
    g_assert_cmpuint(strlen(line), ==, length);
  g_ptr_array_add(c->lines, g_strdup(line ? line : "<oversized>"));
  if (c->stop_after && c->lines->len == c->stop_after) {
    if (c->free_in_callback)
      g_clear_pointer(&c->reader, line_reader_free);
    g_main_loop_quit(c->loop);
    return FALSE;
  }
  return TRUE;
}

static void
on_end(const GError *error, gpointer user_data)
{
  Collect *c = user_data;
  c->ended = TRUE;
  c->end_error = error ? g_strdup(error->message) : NULL;
  g_main_loop_quit(c->loop);
}

/* Feed @chunks through a pipe, one write each, and collect what the reader makes of them. */
static Collect *
run(const char *const *chunks, gsize max_line, guint stop_after, gboolean free_in_callback)
{
  int fds[2];
  g_assert_no_errno(pipe(fds));
  for (const char *const *chunk = chunks; *chunk; chunk++)
    g_assert_cmpint(write(fds[1], *chunk, strlen(*chunk)), ==, (gssize)strlen(*chunk));
  close(fds[1]);

  Collect *c = g_new0(Collect, 1);
  c->loop = g_main_loop_new(NULL, FALSE);
  c->lines = g_ptr_array_new_with_free_func(g_free);
  c->stop_after = stop_after;
  c->free_in_callback = free_in_callback;
  g_autoptr(GInputStream) stream = g_unix_input_stream_new(fds[0], TRUE);
  c->reader = line_reader_new(stream, max_line, on_line, on_end, c);
  line_reader_start(c->reader);
  g_main_loop_run(c->loop);
  g_clear_pointer(&c->reader, line_reader_free);
  /* let a cancelled read finish so nothing is left pending */
  while (g_main_context_iteration(NULL, FALSE))
    ;
  return c;
}

static void
collect_free(Collect *c)
{
  g_main_loop_unref(c->loop);
  g_ptr_array_unref(c->lines);
  g_free(c->end_error);
  g_free(c);
}

static void
assert_lines(Collect *c, const char *const *expected)
{
  guint n = g_strv_length((char **)expected);
  g_assert_cmpuint(c->lines->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr(g_ptr_array_index(c->lines, i), ==, expected[i]);
}

static void
test_split(void)
{
  static const char *const chunks[] = { "one\ntw", "o\r\n\nthr", "ee\n", "tail-without-newline", NULL };
  static const char *const expected[] = { "one", "two", "", "three", NULL };
  Collect *c = run(chunks, 64, 0, FALSE);
  assert_lines(c, expected);
  g_assert_true(c->ended);
  g_assert_null(c->end_error);
  collect_free(c);
}

static void
test_oversized_skipped_to_next_line(void)
{
  static const char *const chunks[] = { "ok\n0123456789", "0123456789", "0123\nafter\n", NULL };
  static const char *const expected[] = { "ok", "<oversized>", "after", NULL };
  Collect *c = run(chunks, 16, 0, FALSE);
  assert_lines(c, expected);
  collect_free(c);
}

static void
test_exact_bound(void)
{
  static const char *const chunks[] = { "0123456789abcdef\n0123456789abcdefX\nz\n", NULL };
  static const char *const expected[] = { "0123456789abcdef", "<oversized>", "z", NULL };
  Collect *c = run(chunks, 16, 0, FALSE);
  assert_lines(c, expected);
  collect_free(c);
}

static void
test_stop_from_callback(void)
{
  static const char *const chunks[] = { "a\nb\nc\n", NULL };
  static const char *const expected[] = { "a", "b", NULL };
  Collect *c = run(chunks, 16, 2, FALSE);
  assert_lines(c, expected);
  g_assert_false(c->ended);
  collect_free(c);

  Collect *freed = run(chunks, 16, 1, TRUE);
  g_assert_cmpuint(freed->lines->len, ==, 1);
  g_assert_false(freed->ended);
  collect_free(freed);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/line-reader/split", test_split);
  g_test_add_func("/line-reader/oversized", test_oversized_skipped_to_next_line);
  g_test_add_func("/line-reader/exact-bound", test_exact_bound);
  g_test_add_func("/line-reader/stop-from-callback", test_stop_from_callback);
  return g_test_run();
}
