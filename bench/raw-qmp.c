/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * raw-qmp - the baseline: the least a program must do to hot-plug a USB
 * host device into QEMU, i.e. device_add, and to take it out again, i.e.
 * device_del and waiting for DEVICE_DELETED (without the event the device
 * may still be in use by QEMU).  No checks, no bookkeeping, no GLib.
 *
 *   raw-qmp QMP_SOCKET serve              commands on stdin, one per line:
 *                                           attach ID VENDOR PRODUCT [BUS PORT]
 *                                           detach ID
 *                                           exec COMMAND [ARGUMENTS-JSON]
 *                                           quit
 *                                         answers "ok NANOSECONDS" or "err TEXT"
 *   raw-qmp QMP_SOCKET cycles N [VENDOR PRODUCT]
 *                                         N attach+detach cycles, prints medians
 *   raw-qmp QMP_SOCKET startup            connect + greeting + qmp_capabilities,
 *                                         then READY=1 to $NOTIFY_SOCKET
 */
#include "benchlib.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *bench_program = "raw-qmp";

#define REPLY_TIMEOUT_MS 30000

typedef struct {
  int fd;
  BenchReader reader;
  unsigned next_id;
  int deleted_seen;        /* DEVICE_DELETED for the device being removed */
  const char *deleting;    /* its id, or NULL */
  char error[512];
} Qmp;

/* note_event() - remember the one event a detach waits for. */
static void
note_event(Qmp *qmp, const char *line)
{
  if (qmp->deleting && bench_json_has_string_member(line, "event", "DEVICE_DELETED") &&
      bench_json_has_string_member(line, "device", qmp->deleting))
    qmp->deleted_seen = 1;
}

/* Return: 1 when the reply to the command just sent is a success, else 0 with qmp->error. */
static int
qmp_command(Qmp *qmp, const char *command, const char *arguments)
{
  char request[1024];
  int n = snprintf(request, sizeof request, "{\"execute\":\"%s\"%s%s,\"id\":%u}\n",
                   command, arguments ? ",\"arguments\":" : "", arguments ? arguments : "",
                   ++qmp->next_id);
  if (n < 0 || (size_t)n >= sizeof request)
    bench_die("request too long");
  bench_write_all(qmp->fd, request, (size_t)n);

  for (;;) {
    char *line = bench_read_line(&qmp->reader, REPLY_TIMEOUT_MS);
    if (line == NULL)
      bench_die("QEMU closed the connection or did not answer '%s'", command);
    if (bench_json_has_top_key(line, "event")) {
      note_event(qmp, line);
      continue;
    }
    if (bench_json_has_top_key(line, "return"))
      return 1;
    snprintf(qmp->error, sizeof qmp->error, "%s", line);
    return 0;
  }
}

static void
qmp_connect(Qmp *qmp, const char *path)
{
  memset(qmp, 0, sizeof *qmp);
  qmp->fd = bench_connect_unix(path, 30000);
  bench_reader_init(&qmp->reader, qmp->fd);
  char *greeting = bench_read_line(&qmp->reader, REPLY_TIMEOUT_MS);
  if (greeting == NULL || !bench_json_has_top_key(greeting, "QMP"))
    bench_die("no QMP greeting on %s", path);
  if (!qmp_command(qmp, "qmp_capabilities", NULL))
    bench_die("qmp_capabilities failed: %s", qmp->error);
}

/* @bus, @port: (nullable): the guest port, as hostdevd and libvirt name it; QEMU
 * picks one when not given.  Return: 1 when QEMU added the device. */
static int
raw_attach(Qmp *qmp, const char *id, unsigned vendor, unsigned product, const char *bus,
           const char *port)
{
  char arguments[384];
  char place[160] = "";
  if (bus && port)
    snprintf(place, sizeof place, ",\"bus\":\"%s\",\"port\":\"%s\"", bus, port);
  snprintf(arguments, sizeof arguments,
           "{\"driver\":\"usb-host\",\"vendorid\":%u,\"productid\":%u,\"id\":\"%s\"%s}",
           vendor, product, id, place);
  return qmp_command(qmp, "device_add", arguments);
}

/* Return: 1 when QEMU accepted device_del and then reported DEVICE_DELETED. */
static int
raw_detach(Qmp *qmp, const char *id)
{
  char arguments[256];
  snprintf(arguments, sizeof arguments, "{\"id\":\"%s\"}", id);
  qmp->deleting = id;
  qmp->deleted_seen = 0;
  int ok = qmp_command(qmp, "device_del", arguments);
  while (ok && !qmp->deleted_seen) {
    char *line = bench_read_line(&qmp->reader, REPLY_TIMEOUT_MS);
    if (line == NULL) {
      snprintf(qmp->error, sizeof qmp->error, "no DEVICE_DELETED for %s", id);
      ok = 0;
      break;
    }
    note_event(qmp, line);
  }
  qmp->deleting = NULL;
  return ok;
}

static void
answer(int ok, uint64_t ns, const char *error)
{
  if (ok)
    printf("ok %" PRIu64 "\n", ns);
  else
    printf("err %s\n", error);
  fflush(stdout);
}

static int
serve(Qmp *qmp)
{
  char line[1024];

  while (fgets(line, sizeof line, stdin)) {
    char id[128], bus[64], port[64];
    int vendor, product, fields;
    uint64_t start;

    if ((fields = sscanf(line, "attach %127s %i %i %63s %63s", id, &vendor, &product, bus,
                         port)) >= 3) {
      start = bench_now_ns();
      int ok = raw_attach(qmp, id, (unsigned)vendor, (unsigned)product,
                          fields == 5 ? bus : NULL, fields == 5 ? port : NULL);
      answer(ok, bench_now_ns() - start, qmp->error);
    } else if (sscanf(line, "detach %127s", id) == 1) {
      start = bench_now_ns();
      int ok = raw_detach(qmp, id);
      answer(ok, bench_now_ns() - start, qmp->error);
    } else if (sscanf(line, "exec %127s", id) == 1) {
      /* Any one command, to show what each QMP round trip costs on its own. */
      char *arguments = line + strlen("exec ") + strlen(id);
      arguments += strspn(arguments, " ");
      arguments[strcspn(arguments, "\n")] = '\0';
      start = bench_now_ns();
      int ok = qmp_command(qmp, id, *arguments ? arguments : NULL);
      answer(ok, bench_now_ns() - start, qmp->error);
    } else if (strncmp(line, "quit", 4) == 0) {
      return 0;
    } else {
      answer(0, 0, "unknown command");
    }
  }
  return 0;
}

static int
cycles(Qmp *qmp, unsigned n, unsigned vendor, unsigned product)
{
  uint64_t *attach = calloc(n ? n : 1, sizeof *attach);
  uint64_t *detach = calloc(n ? n : 1, sizeof *detach);

  for (unsigned i = 0; i < n; i++) {
    uint64_t start = bench_now_ns();
    if (!raw_attach(qmp, "hostdev0", vendor, product, NULL, NULL))
      bench_die("device_add failed: %s", qmp->error);
    uint64_t middle = bench_now_ns();
    if (!raw_detach(qmp, "hostdev0"))
      bench_die("device_del failed: %s", qmp->error);
    attach[i] = middle - start;
    detach[i] = bench_now_ns() - middle;
  }
  printf("cycles %u attach_median_ns %" PRIu64 " detach_median_ns %" PRIu64 "\n", n,
         bench_median(attach, n), bench_median(detach, n));
  free(attach);
  free(detach);
  return 0;
}

int
main(int argc, char **argv)
{
  Qmp qmp;

  if (argc < 3) {
    fprintf(stderr, "usage: raw-qmp QMP_SOCKET serve | cycles N [VENDOR PRODUCT] | startup\n");
    return 2;
  }
  if (strcmp(argv[2], "startup") == 0) {
    uint64_t start = bench_now_ns();
    qmp_connect(&qmp, argv[1]);
    uint64_t ns = bench_now_ns() - start;
    bench_notify_ready();
    printf("startup_ns %" PRIu64 "\n", ns);
    return 0;
  }
  qmp_connect(&qmp, argv[1]);
  if (strcmp(argv[2], "serve") == 0)
    return serve(&qmp);
  if (strcmp(argv[2], "cycles") == 0 && argc >= 4) {
    unsigned vendor = argc >= 6 ? (unsigned)strtoul(argv[4], NULL, 0) : 0x1d6b;
    unsigned product = argc >= 6 ? (unsigned)strtoul(argv[5], NULL, 0) : 0x0104;
    return cycles(&qmp, (unsigned)strtoul(argv[3], NULL, 0), vendor, product);
  }
  fprintf(stderr, "raw-qmp: unknown mode '%s'\n", argv[2]);
  return 2;
}
