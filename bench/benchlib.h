/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * benchlib.h - what the two benchmark clients share: a Unix socket, a line
 * reader, a clock, and just enough JSON to tell replies from events.
 *
 * Deliberately plain POSIX with no GLib: the clients are the baseline, so
 * they must cost as little as a hand-written QMP client would.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct {
  int fd;
  char *buf;
  size_t start;   /* first unread byte */
  size_t len;     /* bytes held, from 0 */
  size_t cap;
} BenchReader;

/* Print "PROG: message" on stderr and exit 1. */
void bench_die(const char *format, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Return: a connected stream socket, retrying for up to @wait_ms while the path is missing. */
int bench_connect_unix(const char *path, int wait_ms);

void bench_reader_init(BenchReader *reader, int fd);

/* Return: the next line without its newline, valid until the next call; NULL on EOF or timeout. */
char *bench_read_line(BenchReader *reader, int timeout_ms);

/* Write all of @data or die. */
void bench_write_all(int fd, const char *data, size_t len);

/* Return: CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Return: (malloc'd) @text as the inside of a JSON string. */
char *bench_json_escape(const char *text);

/* Return: whether the JSON object on @line has the member @key at its top level. */
int bench_json_has_top_key(const char *line, const char *key);

/* Return: whether @line holds "@key": "@value" (any spacing), at any depth. */
int bench_json_has_string_member(const char *line, const char *key, const char *value);

/* Send "READY=1" to $NOTIFY_SOCKET when it is set, as sd_notify(3) would. */
void bench_notify_ready(void);

/* qsort()-compatible comparison of uint64_t. */
int bench_compare_u64(const void *a, const void *b);

/* Return: the median of @n values (sorts them). */
uint64_t bench_median(uint64_t *values, size_t n);
