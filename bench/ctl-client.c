/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-client - drives hostdevd's control socket exactly as cheaply as
 * raw-qmp drives QEMU's (same line reader, same clock, no GLib), so that
 * the difference between the two is hostdevd's own cost.
 *
 *   ctl-client SOCKET serve               commands on stdin, one per line:
 *                                           attach VENDOR PRODUCT
 *                                           attach-batch VENDOR PRODUCT COUNT  (one <devices>
 *                                             request: products PRODUCT, PRODUCT + 1, ...)
 *                                           detach VENDOR PRODUCT   (by XML, as virsh does)
 *                                           detach-alias ALIAS
 *                                           exec COMMAND            (no arguments)
 *                                           attach-file PATH        (the XML in PATH)
 *                                           detach-file PATH        (by XML, waiting up to
 *                                             60 s for the guest)
 *                                           quit
 *                                         answers "ok NANOSECONDS [ALIAS]" or "err TEXT";
 *                                         the *-file commands answer "ok NANOSECONDS REPLY",
 *                                         hostdevd's reply line as it came
 *   ctl-client SOCKET cycles N [VENDOR PRODUCT]
 *                                         N attach+detach cycles, prints medians
 *
 * The device is a USB hostdev with startupPolicy='optional': QEMU takes it
 * even when no such device is plugged into the host.
 */
#include "benchlib.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *bench_program = "ctl-client";

#define REPLY_TIMEOUT_MS 60000

typedef struct {
  int fd;
  BenchReader reader;
  unsigned next_id;
  char alias[128];
  char error[1024];
  char *reply;   /* (owned) the last "return" line, for the *-file commands */
} Control;

static void
control_connect(Control *control, const char *path)
{
  memset(control, 0, sizeof *control);
  control->fd = bench_connect_unix(path, 30000);
  bench_reader_init(&control->reader, control->fd);
  char *greeting = bench_read_line(&control->reader, REPLY_TIMEOUT_MS);
  if (greeting == NULL || !bench_json_has_top_key(greeting, "hostdevd"))
    bench_die("no hostdevd greeting on %s", path);
}

/* remember_alias() - copy the "alias" member of @line into control->alias. */
static void
remember_alias(Control *control, const char *line)
{
  const char *p = strstr(line, "\"alias\":\"");
  control->alias[0] = '\0';
  if (p == NULL)
    return;
  p += strlen("\"alias\":\"");
  size_t n = strcspn(p, "\"");
  if (n >= sizeof control->alias)
    n = sizeof control->alias - 1;
  memcpy(control->alias, p, n);
  control->alias[n] = '\0';
}

/* Return: 1 on a "return" reply (events in between are skipped), else 0 with control->error. */
static int
control_execute(Control *control, const char *command, const char *arguments)
{
  size_t size = strlen(command) + strlen(arguments) + 64;
  char *request = malloc(size);
  if (request == NULL)
    bench_die("out of memory");
  int n = snprintf(request, size, "{\"execute\":\"%s\",\"arguments\":%s,\"id\":%u}\n", command,
                   arguments, ++control->next_id);
  bench_write_all(control->fd, request, (size_t)n);
  free(request);

  for (;;) {
    char *line = bench_read_line(&control->reader, REPLY_TIMEOUT_MS);
    if (line == NULL)
      bench_die("hostdevd closed the connection or did not answer '%s'", command);
    if (bench_json_has_top_key(line, "event"))
      continue;
    if (bench_json_has_top_key(line, "return")) {
      remember_alias(control, line);
      free(control->reply);
      control->reply = strdup(line);
      /* A detach the guest has not finished is not a finished detach. */
      if (bench_json_has_string_member(line, "status", "pending")) {
        snprintf(control->error, sizeof control->error, "detach pending: %s", line);
        return 0;
      }
      return 1;
    }
    snprintf(control->error, sizeof control->error, "%s", line);
    return 0;
  }
}

/* Return: (malloc'd) the arguments object {"xml": "<hostdev>…"} for an optional USB device. */
static char *
usb_xml_arguments(unsigned vendor, unsigned product)
{
  char xml[512];
  snprintf(xml, sizeof xml,
           "<hostdev mode='subsystem' type='usb' managed='yes'>\n"
           "  <source startupPolicy='optional'>\n"
           "    <vendor id='0x%04x'/>\n"
           "    <product id='0x%04x'/>\n"
           "  </source>\n"
           "</hostdev>\n",
           vendor, product);
  char *escaped = bench_json_escape(xml);
  size_t size = strlen(escaped) + 32;
  char *arguments = malloc(size);
  if (arguments == NULL)
    bench_die("out of memory");
  snprintf(arguments, size, "{\"xml\":\"%s\"}", escaped);
  free(escaped);
  return arguments;
}

/* Return: (malloc'd) {"xml": "<devices>…"} holding @count optional USB devices,
 * products @product, @product + 1, … */
static char *
usb_batch_arguments(unsigned vendor, unsigned product, unsigned count)
{
  size_t size = 64 + (size_t)count * 256;
  char *xml = malloc(size);
  size_t used = 0;
  if (xml == NULL)
    bench_die("out of memory");
  used += (size_t)snprintf(xml + used, size - used, "<devices>\n");
  for (unsigned i = 0; i < count; i++)
    used += (size_t)snprintf(xml + used, size - used,
                             "<hostdev mode='subsystem' type='usb' managed='yes'>"
                             "<source startupPolicy='optional'><vendor id='0x%04x'/>"
                             "<product id='0x%04x'/></source></hostdev>\n",
                             vendor, product + i);
  snprintf(xml + used, size - used, "</devices>\n");
  char *escaped = bench_json_escape(xml);
  free(xml);
  size = strlen(escaped) + 32;
  char *arguments = malloc(size);
  if (arguments == NULL)
    bench_die("out of memory");
  snprintf(arguments, size, "{\"xml\":\"%s\"}", escaped);
  free(escaped);
  return arguments;
}

static int
control_attach(Control *control, unsigned vendor, unsigned product)
{
  char *arguments = usb_xml_arguments(vendor, product);
  int ok = control_execute(control, "attach-device", arguments);
  free(arguments);
  return ok;
}

static int
control_detach(Control *control, unsigned vendor, unsigned product)
{
  char *arguments = usb_xml_arguments(vendor, product);
  int ok = control_execute(control, "detach-device", arguments);
  free(arguments);
  return ok;
}

static int
control_detach_alias(Control *control, const char *alias)
{
  char arguments[256];
  snprintf(arguments, sizeof arguments, "{\"alias\":\"%s\"}", alias);
  return control_execute(control, "detach-device", arguments);
}

/* Return: (malloc'd) {"xml": "<the file's text>"[, "wait": 60]}, or NULL with control->error. */
static char *
file_xml_arguments(Control *control, const char *path, int wait)
{
  FILE *file = fopen(path, "r");
  char text[65536];
  size_t length = file ? fread(text, 1, sizeof text - 1, file) : 0;

  if (file == NULL || ferror(file) || !feof(file)) {
    snprintf(control->error, sizeof control->error, "cannot read %s: %s", path,
             file == NULL || ferror(file) ? strerror(errno) : "longer than 64 KiB");
    if (file)
      fclose(file);
    return NULL;
  }
  fclose(file);
  text[length] = '\0';
  char *escaped = bench_json_escape(text);
  size_t size = strlen(escaped) + 48;
  char *arguments = malloc(size);
  if (arguments == NULL)
    bench_die("out of memory");
  snprintf(arguments, size, "{\"xml\":\"%s\"%s}", escaped, wait ? ",\"wait\":60" : "");
  free(escaped);
  return arguments;
}

/* Send @command with the XML of the file @path; the file is read before the clock starts. */
static void
execute_file(Control *control, const char *command, const char *path, int wait)
{
  char *arguments = file_xml_arguments(control, path, wait);
  if (arguments == NULL) {
    printf("err %s\n", control->error);
    fflush(stdout);
    return;
  }
  uint64_t start = bench_now_ns();
  int ok = control_execute(control, command, arguments);
  uint64_t ns = bench_now_ns() - start;
  free(arguments);
  if (ok)
    printf("ok %" PRIu64 " %s\n", ns, control->reply);
  else
    printf("err %s\n", control->error);
  fflush(stdout);
}

static void
answer(Control *control, int ok, uint64_t ns, int with_alias)
{
  if (ok)
    printf("ok %" PRIu64 "%s%s\n", ns, with_alias ? " " : "", with_alias ? control->alias : "");
  else
    printf("err %s\n", control->error);
  fflush(stdout);
}

static int
serve(Control *control)
{
  char line[512];

  while (fgets(line, sizeof line, stdin)) {
    char alias[128];
    char path[400];
    int vendor, product;
    unsigned count;
    uint64_t start = bench_now_ns();

    if (sscanf(line, "attach %i %i", &vendor, &product) == 2) {
      int ok = control_attach(control, (unsigned)vendor, (unsigned)product);
      answer(control, ok, bench_now_ns() - start, 1);
    } else if (sscanf(line, "attach-batch %i %i %u", &vendor, &product, &count) == 3) {
      char *arguments = usb_batch_arguments((unsigned)vendor, (unsigned)product, count);
      int ok = control_execute(control, "attach-device", arguments);
      free(arguments);
      answer(control, ok, bench_now_ns() - start, 0);
    } else if (sscanf(line, "detach %i %i", &vendor, &product) == 2) {
      int ok = control_detach(control, (unsigned)vendor, (unsigned)product);
      answer(control, ok, bench_now_ns() - start, 0);
    } else if (sscanf(line, "detach-alias %127s", alias) == 1) {
      int ok = control_detach_alias(control, alias);
      answer(control, ok, bench_now_ns() - start, 0);
    } else if (sscanf(line, "exec %127s", alias) == 1) {
      /* A request that never reaches QEMU: the floor of any request through hostdevd. */
      int ok = control_execute(control, alias, "{}");
      answer(control, ok, bench_now_ns() - start, 0);
    } else if (sscanf(line, "attach-file %399s", path) == 1) {
      execute_file(control, "attach-device", path, 0);
    } else if (sscanf(line, "detach-file %399s", path) == 1) {
      execute_file(control, "detach-device", path, 1);
    } else if (strncmp(line, "quit", 4) == 0) {
      return 0;
    } else {
      snprintf(control->error, sizeof control->error, "unknown command");
      answer(control, 0, 0, 0);
    }
  }
  return 0;
}

static int
cycles(Control *control, unsigned n, unsigned vendor, unsigned product)
{
  uint64_t *attach = calloc(n ? n : 1, sizeof *attach);
  uint64_t *detach = calloc(n ? n : 1, sizeof *detach);

  for (unsigned i = 0; i < n; i++) {
    uint64_t start = bench_now_ns();
    if (!control_attach(control, vendor, product))
      bench_die("attach-device failed: %s", control->error);
    uint64_t middle = bench_now_ns();
    if (!control_detach(control, vendor, product))
      bench_die("detach-device failed: %s", control->error);
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
  Control control;

  if (argc < 3) {
    fprintf(stderr, "usage: ctl-client SOCKET serve | cycles N [VENDOR PRODUCT]\n");
    return 2;
  }
  control_connect(&control, argv[1]);
  if (strcmp(argv[2], "serve") == 0)
    return serve(&control);
  if (strcmp(argv[2], "cycles") == 0 && argc >= 4) {
    unsigned vendor = argc >= 6 ? (unsigned)strtoul(argv[4], NULL, 0) : 0x1d6b;
    unsigned product = argc >= 6 ? (unsigned)strtoul(argv[5], NULL, 0) : 0x0104;
    return cycles(&control, (unsigned)strtoul(argv[3], NULL, 0), vendor, product);
  }
  fprintf(stderr, "ctl-client: unknown mode '%s'\n", argv[2]);
  return 2;
}
