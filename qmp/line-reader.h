/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * line-reader.h - newline-delimited messages from a GInputStream, bounded
 *
 * Both sockets hostdevd speaks on (QMP and the control socket) carry one
 * JSON object per line.  This reader splits the byte stream into lines on
 * the main loop and never buffers more than the bound, however the peer
 * behaves.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _LineReader LineReader;

/**
 * LineReaderLineFunc - one complete line
 * @line: the line without "\n" or "\r\n", NUL-terminated; NULL when the
 *   line was longer than the bound (its bytes were discarded up to the
 *   next newline)
 * @length: its length, or the bound when @line is NULL
 * Return: TRUE to keep reading, FALSE to stop (the end callback is not
 *   called then).
 */
typedef gboolean (*LineReaderLineFunc)(const char *line, gsize length,
                                       gpointer user_data);

/**
 * LineReaderEndFunc - the stream ended
 * @error: NULL on a clean EOF, else the read error
 */
typedef void (*LineReaderEndFunc)(const GError *error, gpointer user_data);

/* line_reader_new() - read @stream (pollable, on a file descriptor: a socket's, a pipe's)
 * in lines of at most @max_line bytes; call line_reader_start(). */
LineReader *line_reader_new(GInputStream *stream, gsize max_line,
                            LineReaderLineFunc on_line, LineReaderEndFunc on_end,
                            gpointer user_data);

/* line_reader_start() - begin reading on the thread-default main context. */
void line_reader_start(LineReader *reader);

/* line_reader_free() - stop reading; no callback runs afterwards.  Safe to call from a callback. */
void line_reader_free(LineReader *reader);

G_END_DECLS
