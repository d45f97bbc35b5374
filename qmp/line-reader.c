/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "line-reader.h"

#include <gio/gfiledescriptorbased.h>
#include <glib-unix.h>
#include <string.h>

#define READ_CHUNK 16384

/*
 * The stream's descriptor is watched by one source for as long as the
 * reader reads: no allocation, no task and no main-loop wakeup per read.
 * Not the stream's pollable source: GLib dispatches its child socket source
 * too, and blocking that one for the dispatch takes its descriptor out of
 * the poll set and puts it back, each a wakeup of the loop.  The
 * reader is refcounted apart from its owner's view of it: a dispatch holds
 * a reference, so that line_reader_free() from inside a callback only
 * marks it stopped and destroys the source, and the memory goes when the
 * dispatch returns.
 */
struct _LineReader {
  gint refcount;
  gboolean stopped;
  GInputStream *stream;
  GSource *source;         /* while reading: the stream is readable */
  gsize max_line;
  GByteArray *pending;     /* bytes of the current, incomplete line */
  gboolean discarding;     /* inside an oversized line, skipping to '\n' */
  guint8 chunk[READ_CHUNK];
  LineReaderLineFunc on_line;
  LineReaderEndFunc on_end;
  gpointer user_data;
};

static void
line_reader_unref(LineReader *reader)
{
  if (!g_atomic_int_dec_and_test(&reader->refcount))
    return;
  g_object_unref(reader->stream);
  g_byte_array_unref(reader->pending);
  g_free(reader);
}

LineReader *
line_reader_new(GInputStream *stream, gsize max_line,
                LineReaderLineFunc on_line, LineReaderEndFunc on_end,
                gpointer user_data)
{
  g_return_val_if_fail(G_IS_POLLABLE_INPUT_STREAM(stream) && G_IS_FILE_DESCRIPTOR_BASED(stream) &&
                       g_pollable_input_stream_can_poll(G_POLLABLE_INPUT_STREAM(stream)), NULL);
  LineReader *reader = g_new0(LineReader, 1);

  reader->refcount = 1;
  reader->stream = g_object_ref(stream);
  reader->max_line = max_line;
  reader->pending = g_byte_array_new();
  reader->on_line = on_line;
  reader->on_end = on_end;
  reader->user_data = user_data;
  return reader;
}

void
line_reader_free(LineReader *reader)
{
  if (reader == NULL)
    return;
  reader->stopped = TRUE;
  if (reader->source) {
    g_source_destroy(reader->source);
    g_clear_pointer(&reader->source, g_source_unref);
  }
  line_reader_unref(reader);
}

/* Hand the line collected in pending over. Return: FALSE when the owner stopped the reader. */
static gboolean
deliver_pending(LineReader *reader)
{
  gsize length = reader->pending->len;

  if (length > 0 && reader->pending->data[length - 1] == '\r')
    length--;
  g_byte_array_set_size(reader->pending, (guint)length + 1);
  reader->pending->data[length] = '\0';
  gboolean more = reader->on_line((const char *)reader->pending->data, length,
                                  reader->user_data);
  g_byte_array_set_size(reader->pending, 0);
  return more && !reader->stopped;
}

/* Split @data into lines. Return: FALSE when reading must stop. */
static gboolean
consume(LineReader *reader, const guint8 *data, gsize length)
{
  while (length > 0) {
    const guint8 *newline = memchr(data, '\n', length);
    gsize take = newline ? (gsize)(newline - data) : length;

    if (reader->discarding) {
      /* the rest of an oversized line: drop it */
    } else if (reader->pending->len + take > reader->max_line) {
      g_byte_array_set_size(reader->pending, 0);
      reader->discarding = TRUE;
      if (!reader->on_line(NULL, reader->max_line, reader->user_data) || reader->stopped)
        return FALSE;
    } else {
      g_byte_array_append(reader->pending, data, (guint)take);
      if (newline && !deliver_pending(reader))
        return FALSE;
    }

    if (!newline)
      return TRUE;
    reader->discarding = FALSE;
    data += take + 1;
    length -= take + 1;
  }
  return TRUE;
}

/* The stream is readable (or at its end): one read, split into lines at once. */
static gboolean
on_readable(gint fd, GIOCondition condition, gpointer user_data)
{
  LineReader *reader = user_data;
  g_autoptr(GError) error = NULL;
  gssize n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(reader->stream),
                                                      reader->chunk, sizeof reader->chunk,
                                                      NULL, &error);
  gboolean more = TRUE;

  if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;
  g_atomic_int_inc(&reader->refcount);    /* the callbacks may free the reader */
  if (n > 0) {
    more = consume(reader, reader->chunk, (gsize)n);
  } else {
    reader->stopped = TRUE;
    reader->on_end(error, reader->user_data);
  }
  more = more && !reader->stopped;
  if (!more && reader->source)
    g_clear_pointer(&reader->source, g_source_unref);   /* returning REMOVE destroys it */
  line_reader_unref(reader);
  return more ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

void
line_reader_start(LineReader *reader)
{
  if (reader->stopped || reader->source)
    return;
  int fd = g_file_descriptor_based_get_fd(G_FILE_DESCRIPTOR_BASED(reader->stream));
  reader->source = g_unix_fd_source_new(fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback(reader->source, G_SOURCE_FUNC(on_readable), reader, NULL);
  /* no main-loop wakeup per read: see qmp-client.c (nested loops are not supported) */
  g_source_set_can_recurse(reader->source, TRUE);
  g_source_attach(reader->source, g_main_context_get_thread_default());
}
