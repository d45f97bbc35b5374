/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "line-reader.h"

#include <string.h>

#define READ_CHUNK 16384

/*
 * The reader itself is refcounted separately from its owner's view of it:
 * an outstanding g_input_stream_read_async() holds a reference, so that
 * line_reader_free() from inside a callback (or while a read is pending)
 * only marks it stopped and cancels, and the memory goes when the read
 * completes.
 */
struct _LineReader {
  gint refcount;
  gboolean stopped;
  GInputStream *stream;
  GCancellable *cancellable;
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
  g_object_unref(reader->cancellable);
  g_byte_array_unref(reader->pending);
  g_free(reader);
}

LineReader *
line_reader_new(GInputStream *stream, gsize max_line,
                LineReaderLineFunc on_line, LineReaderEndFunc on_end,
                gpointer user_data)
{
  LineReader *reader = g_new0(LineReader, 1);

  reader->refcount = 1;
  reader->stream = g_object_ref(stream);
  reader->cancellable = g_cancellable_new();
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
  g_cancellable_cancel(reader->cancellable);
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

static void read_next(LineReader *reader);

static void
on_read(GObject *source, GAsyncResult *result, gpointer user_data)
{
  LineReader *reader = user_data;
  g_autoptr(GError) error = NULL;
  gssize n = g_input_stream_read_finish(G_INPUT_STREAM(source), result, &error);

  if (reader->stopped) {
    line_reader_unref(reader);
    return;
  }
  if (n > 0 && consume(reader, reader->chunk, (gsize)n)) {
    read_next(reader);
  } else if (n <= 0) {
    reader->stopped = TRUE;
    reader->on_end(error, reader->user_data);
  }
  line_reader_unref(reader);
}

static void
read_next(LineReader *reader)
{
  g_atomic_int_inc(&reader->refcount);
  g_input_stream_read_async(reader->stream, reader->chunk, sizeof reader->chunk,
                            G_PRIORITY_DEFAULT, reader->cancellable, on_read, reader);
}

void
line_reader_start(LineReader *reader)
{
  read_next(reader);
}
