/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "benchlib.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READER_MAX (4u << 20)   /* no reply we expect comes near this */

extern const char *bench_program;

void
bench_die(const char *format, ...)
{
  va_list args;

  fprintf(stderr, "%s: ", bench_program);
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
  exit(1);
}

uint64_t
bench_now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
bench_connect_unix(const char *path, int wait_ms)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  uint64_t deadline = bench_now_ns() + (uint64_t)wait_ms * 1000000u;

  if (strlen(path) >= sizeof address.sun_path)
    bench_die("socket path too long: %s", path);
  memcpy(address.sun_path, path, strlen(path) + 1);

  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      bench_die("socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&address, sizeof address) == 0)
      return fd;
    int saved = errno;
    close(fd);
    /* QEMU or hostdevd may not have created the socket yet, or may be finishing a client. */
    if ((saved != ENOENT && saved != ECONNREFUSED) || bench_now_ns() >= deadline)
      bench_die("cannot connect to %s: %s", path, strerror(saved));
    struct timespec pause = { 0, 2000000 };
    nanosleep(&pause, NULL);
  }
}

void
bench_reader_init(BenchReader *reader, int fd)
{
  reader->fd = fd;
  reader->cap = 65536;
  reader->buf = malloc(reader->cap);
  if (reader->buf == NULL)
    bench_die("out of memory");
  reader->start = 0;
  reader->len = 0;
}

char *
bench_read_line(BenchReader *reader, int timeout_ms)
{
  for (;;) {
    char *begin = reader->buf + reader->start;
    char *newline = memchr(begin, '\n', reader->len - reader->start);
    if (newline) {
      *newline = '\0';
      reader->start = (size_t)(newline + 1 - reader->buf);
      return begin;
    }
    /* Keep the partial line at the front, then make room for more. */
    if (reader->start > 0) {
      memmove(reader->buf, begin, reader->len - reader->start);
      reader->len -= reader->start;
      reader->start = 0;
    }
    if (reader->len + 1 >= reader->cap) {
      if (reader->cap >= READER_MAX)
        bench_die("a line longer than %u bytes", READER_MAX);
      reader->cap *= 2;
      reader->buf = realloc(reader->buf, reader->cap);
      if (reader->buf == NULL)
        bench_die("out of memory");
    }
    struct pollfd pfd = { .fd = reader->fd, .events = POLLIN };
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready < 0 && errno == EINTR)
      continue;
    if (ready <= 0)
      return NULL;
    ssize_t n = read(reader->fd, reader->buf + reader->len, reader->cap - reader->len - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return NULL;
    reader->len += (size_t)n;
  }
}

void
bench_write_all(int fd, const char *data, size_t len)
{
  while (len > 0) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      bench_die("write: %s", strerror(errno));
    data += n;
    len -= (size_t)n;
  }
}

char *
bench_json_escape(const char *text)
{
  size_t cap = strlen(text) * 6 + 1;
  char *out = malloc(cap);
  char *p = out;

  if (out == NULL)
    bench_die("out of memory");
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
    switch (*c) {
    case '"':  *p++ = '\\'; *p++ = '"'; break;
    case '\\': *p++ = '\\'; *p++ = '\\'; break;
    case '\n': *p++ = '\\'; *p++ = 'n'; break;
    case '\t': *p++ = '\\'; *p++ = 't'; break;
    case '\r': *p++ = '\\'; *p++ = 'r'; break;
    default:
      if (*c < 0x20)
        p += sprintf(p, "\\u%04x", *c);
      else
        *p++ = (char)*c;
    }
  }
  *p = '\0';
  return out;
}

int
bench_json_has_top_key(const char *line, const char *key)
{
  size_t key_len = strlen(key);
  int depth = 0;

  for (const char *p = line; *p; p++) {
    if (*p == '{' || *p == '[') {
      depth++;
    } else if (*p == '}' || *p == ']') {
      depth--;
    } else if (*p == '"') {
      const char *begin = ++p;
      while (*p && *p != '"') {
        if (*p == '\\' && p[1])
          p++;
        p++;
      }
      if (*p == '\0')
        return 0;
      /* A string directly inside the outer object followed by ':' is a member name. */
      const char *after = p + 1;
      while (*after == ' ')
        after++;
      if (depth == 1 && *after == ':' && (size_t)(p - begin) == key_len &&
          memcmp(begin, key, key_len) == 0)
        return 1;
    }
  }
  return 0;
}

int
bench_json_has_string_member(const char *line, const char *key, const char *value)
{
  size_t key_len = strlen(key), value_len = strlen(value);

  for (const char *p = strchr(line, '"'); p; p = strchr(p + 1, '"')) {
    if (strncmp(p + 1, key, key_len) != 0 || p[1 + key_len] != '"')
      continue;
    const char *q = p + 2 + key_len;
    while (*q == ' ')
      q++;
    if (*q++ != ':')
      continue;
    while (*q == ' ')
      q++;
    if (*q == '"' && strncmp(q + 1, value, value_len) == 0 && q[1 + value_len] == '"')
      return 1;
  }
  return 0;
}

void
bench_notify_ready(void)
{
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un address = { .sun_family = AF_UNIX };

  if (path == NULL || path[0] != '/' || strlen(path) >= sizeof address.sun_path)
    return;
  memcpy(address.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  static const char ready[] = "READY=1";
  if (sendto(fd, ready, sizeof ready - 1, MSG_NOSIGNAL, (struct sockaddr *)&address,
             sizeof address) < 0)
    fprintf(stderr, "%s: notify: %s\n", bench_program, strerror(errno));
  close(fd);
}

int
bench_compare_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

uint64_t
bench_median(uint64_t *values, size_t n)
{
  if (n == 0)
    return 0;
  qsort(values, n, sizeof *values, bench_compare_u64);
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}
