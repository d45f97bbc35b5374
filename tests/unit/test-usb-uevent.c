/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-usb-uevent.c - the kernel uevent parser against real-looking and
 * hostile messages, and the watcher against forged senders and (when
 * this process may write /sys) a real kernel uevent
 */
#include "hostdevd-error.h"
#include "usb-uevent.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>

#define DEVPATH "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2.3"

/* A message as the kernel sends it: each string followed by a NUL. */
static GByteArray *
message(const char *first, ...)
{
  GByteArray *bytes = g_byte_array_new();
  va_list args;

  va_start(args, first);
  for (const char *s = first; s != NULL; s = va_arg(args, const char *))
    g_byte_array_append(bytes, (const guint8 *)s, (guint)strlen(s) + 1);
  va_end(args);
  return bytes;
}

/* What `udevadm monitor --kernel --property` shows for a key plugged
 * into port 3 of a hub in port 2 of bus 1. */
static GByteArray *
usb_message(const char *action)
{
  g_autofree char *header = g_strdup_printf("%s@" DEVPATH, action);
  g_autofree char *field = g_strdup_printf("ACTION=%s", action);

  return message(header, field, "DEVPATH=" DEVPATH, "SUBSYSTEM=usb",
                 "MAJOR=189", "MINOR=8", "DEVNAME=bus/usb/001/009",
                 "DEVTYPE=usb_device", "DRIVER=usb", "PRODUCT=1050/407/543",
                 "TYPE=0/0/0", "BUSNUM=001", "DEVNUM=009", "SEQNUM=4711", NULL);
}

static UsbUevent *
parse(GByteArray *bytes, GError **error)
{
  return usb_uevent_parse(bytes->data, bytes->len, error);
}

static void
assert_refused(GByteArray *bytes, UsbUeventError code, const char *substring)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(UsbUevent) event = parse(bytes, &error);

  g_assert_null(event);
  if (!g_error_matches(error, USB_UEVENT_ERROR, code) ||
      strstr(error->message, substring) == NULL)
    g_error("expected code %d containing \"%s\", got %s", code, substring,
            error ? error->message : "no error");
  g_test_message("%s", error->message);
  g_byte_array_unref(bytes);
}

/* ------------------------------------------------------------------ */

static void
test_actions(void)
{
  static const struct {
    const char *name;
    UsbUeventAction action;
  } actions[] = {
    { "add", USB_UEVENT_ADD }, { "remove", USB_UEVENT_REMOVE },
    { "bind", USB_UEVENT_BIND }, { "unbind", USB_UEVENT_UNBIND },
    { "change", USB_UEVENT_CHANGE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(actions); i++) {
    g_autoptr(GByteArray) bytes = usb_message(actions[i].name);
    g_autoptr(GError) error = NULL;
    g_autoptr(UsbUevent) event = parse(bytes, &error);

    g_assert_no_error(error);
    g_assert_cmpint(event->action, ==, actions[i].action);
    g_assert_cmpstr(usb_uevent_action_name(event->action), ==, actions[i].name);
    g_assert_cmpstr(event->devpath, ==, DEVPATH);
    g_assert_cmpstr(event->port_path, ==, "1-2.3");
    g_assert_cmpuint(event->bus, ==, 1);
    g_assert_cmpuint(event->device, ==, 9);
    g_assert_cmpuint(event->vendor, ==, 0x1050);
    g_assert_cmpuint(event->product, ==, 0x0407);
    g_assert_cmpuint(event->bcd_device, ==, 0x0543);
    g_assert_cmpuint(event->seqnum, ==, 4711);
  }
  g_assert_cmpstr(usb_uevent_action_name(USB_UEVENT_LOST), ==, "lost");
}

/* A root hub is a USB device without a port path. */
static void
test_root_hub(void)
{
  g_autoptr(GByteArray) bytes =
    message("add@/devices/pci0000:00/0000:00:14.0/usb3", "ACTION=add",
            "DEVPATH=/devices/pci0000:00/0000:00:14.0/usb3", "SUBSYSTEM=usb",
            "DEVTYPE=usb_device", "PRODUCT=1d6b/3/601", "BUSNUM=003",
            "DEVNUM=001", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(UsbUevent) event = parse(bytes, &error);

  g_assert_no_error(error);
  g_assert_null(event->port_path);
  g_assert_cmpuint(event->bus, ==, 3);
  g_assert_cmpuint(event->vendor, ==, 0x1d6b);
  g_assert_cmpuint(event->product, ==, 3);
  g_assert_cmpuint(event->seqnum, ==, 0);
}

static void
test_deepest(void)
{
  const char *path = "/devices/platform/x/usb65535/65535-255/65535-255.255/"
                     "65535-255.255.1/65535-255.255.1.2/65535-255.255.1.2.3/"
                     "65535-255.255.1.2.3.4";
  g_autofree char *header = g_strdup_printf("add@%s", path);
  g_autofree char *devpath = g_strdup_printf("DEVPATH=%s", path);
  g_autoptr(GByteArray) bytes =
    message(header, "ACTION=add", devpath, "SUBSYSTEM=usb", "DEVTYPE=usb_device",
            "PRODUCT=ffff/ffff/ffff", "BUSNUM=65535", "DEVNUM=127", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(UsbUevent) event = parse(bytes, &error);

  g_assert_no_error(error);
  g_assert_cmpstr(event->port_path, ==, "65535-255.255.1.2.3.4");
  g_assert_cmpuint(event->device, ==, 127);
  g_assert_cmpuint(event->bcd_device, ==, 0xffff);
}

/* Well-formed, but not a USB device's: ignored, not invalid. */
static void
test_ignored(void)
{
  assert_refused(message("change@/devices/virtual/mem/null", "ACTION=change",
                         "DEVPATH=/devices/virtual/mem/null", "SUBSYSTEM=mem",
                         "MAJOR=1", "MINOR=3", "DEVNAME=null", "SEQNUM=3638", NULL),
                 USB_UEVENT_ERROR_IGNORED, "subsystem 'mem', not usb");
  assert_refused(message("add@" DEVPATH "/1-2.3:1.0", "ACTION=add",
                         "DEVPATH=" DEVPATH "/1-2.3:1.0", "SUBSYSTEM=usb",
                         "DEVTYPE=usb_interface", "PRODUCT=1050/407/543",
                         "INTERFACE=3/1/1", NULL),
                 USB_UEVENT_ERROR_IGNORED, "DEVTYPE 'usb_interface', not usb_device");
  assert_refused(message("move@" DEVPATH, "ACTION=move", "DEVPATH=" DEVPATH,
                         "SUBSYSTEM=usb", "DEVTYPE=usb_device", NULL),
                 USB_UEVENT_ERROR_IGNORED, "action 'move' is not followed");
  {
    /* udev's monitor format: "libudev", NUL, magic, header lengths... */
    static const guint8 udev[] = "libudev\0\xfe\xed\xca\xfe\x28\0\0\0ACTION=add";
    g_autoptr(GError) error = NULL;
    g_assert_null(usb_uevent_parse(udev, sizeof(udev), &error));
    g_assert_error(error, USB_UEVENT_ERROR, USB_UEVENT_ERROR_IGNORED);
    g_test_message("%s", error->message);
  }
}

/* Replace field @key (or the header, key NULL) of a good message. */
static GByteArray *
with_field(const char *key, const char *replacement)
{
  g_autoptr(GByteArray) good = usb_message("add");
  GByteArray *bytes = g_byte_array_new();
  gsize key_len = key ? strlen(key) : 0;

  for (const char *p = (const char *)good->data;
       p < (const char *)good->data + good->len; p += strlen(p) + 1) {
    gboolean is_header = p == (const char *)good->data;
    gboolean match = key ? strncmp(p, key, key_len) == 0 && p[key_len] == '='
                         : is_header;

    if (!match)
      g_byte_array_append(bytes, (const guint8 *)p, (guint)strlen(p) + 1);
    else if (replacement != NULL)
      g_byte_array_append(bytes, (const guint8 *)replacement,
                          (guint)strlen(replacement) + 1);
  }
  return bytes;
}

static void
test_invalid_fields(void)
{
  static const struct {
    const char *key;           /* NULL: the header */
    const char *replacement;   /* NULL: the field left out */
    const char *message;
  } cases[] = {
    { NULL, "add" DEVPATH, "is not ACTION@DEVPATH" },
    { NULL, "@" DEVPATH, "is not ACTION@DEVPATH" },
    { NULL, "add@", "is not ACTION@DEVPATH" },
    { NULL, "explode@" DEVPATH, "ACTION differs" },
    { "ACTION", NULL, "ACTION is missing" },
    { "ACTION", "ACTION=explode", "ACTION differs" },
    { "DEVPATH", NULL, "DEVPATH is missing" },
    { "DEVPATH", "DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2.4", "DEVPATH differs" },
    { "SUBSYSTEM", NULL, "SUBSYSTEM is missing" },
    { "DEVTYPE", NULL, "DEVTYPE is missing" },
    { "BUSNUM", NULL, "BUSNUM is missing" },
    { "BUSNUM", "BUSNUM=000", "BUSNUM='000' is not a decimal number 1..65535" },
    { "BUSNUM", "BUSNUM=65536", "BUSNUM='65536' is not" },
    { "BUSNUM", "BUSNUM=1a", "BUSNUM='1a' is not" },
    { "BUSNUM", "BUSNUM=", "BUSNUM='' is not" },
    { "BUSNUM", "BUSNUM= 1", "BUSNUM=' 1' is not" },
    { "BUSNUM", "BUSNUM=-1", "BUSNUM='-1' is not" },
    { "BUSNUM", "BUSNUM=99999999999999999999", "is not a decimal number" },
    { "BUSNUM", "BUSNUM=002", "on another bus than BUSNUM=2" },
    { "DEVNUM", NULL, "DEVNUM is missing" },
    { "DEVNUM", "DEVNUM=128", "DEVNUM='128' is not a decimal number 1..127" },
    { "DEVNUM", "DEVNUM=0", "DEVNUM='0' is not" },
    { "PRODUCT", NULL, "PRODUCT is missing" },
    { "PRODUCT", "PRODUCT=1050/407", "PRODUCT='1050/407' is not vendor/product/bcdDevice" },
    { "PRODUCT", "PRODUCT=1050/407/543/", "is not vendor/product" },
    { "PRODUCT", "PRODUCT=10500/407/543", "is not vendor/product" },
    { "PRODUCT", "PRODUCT=1050//543", "is not vendor/product" },
    { "PRODUCT", "PRODUCT=x/407/543", "is not vendor/product" },
    { "SEQNUM", "SEQNUM=many", "SEQNUM='many' is not a number" },
    { "TYPE", "type=0/0/0", "field 'type=0/0/0' is not KEY=VALUE" },
    { "TYPE", "=0/0/0", "is not KEY=VALUE" },
    { "TYPE", "TYPE", "field 'TYPE' is not KEY=VALUE" },
    { "TYPE", "SUBSYSTEM=usb", "field SUBSYSTEM given twice" },
    { "TYPE", "DEVPATH=/devices/elsewhere", "field DEVPATH given twice" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
    assert_refused(with_field(cases[i].key, cases[i].replacement),
                   USB_UEVENT_ERROR_INVALID, cases[i].message);
}

/* Paths: traversal, odd characters, names that are not a device's. */
static void
test_invalid_devpath(void)
{
  static const struct {
    const char *devpath;
    const char *message;
  } cases[] = {
    { "/devices/pci0000:00/../../etc/1-2.3", "'..' component" },
    { "/devices/pci0000:00/./usb1/1-2.3", "'.' or '..' component" },
    { "/devices/pci0000:00//usb1/1-2.3", "empty" },
    { "/devices/usb1/1-2.3/", "empty" },
    { "/devices/usb7", "neither a USB port path nor a root hub" },
    { "/sys/devices/usb1/1-2.3", "not a plain path under /devices/" },
    { "devices/usb1/1-2.3", "not a plain path under /devices/" },
    { "/devices/usb 1/1-2.3", "not a plain path" },
    { "/devices/usb\xc3\xa9/1-2.3", "not a plain path" },
    { "/devices/usb1/1-2.3:1.0", "neither a USB port path nor a root hub" },
    { "/devices/usb1/1-02.3", "neither a USB port path" },
    { "/devices/usb1/usb2", "neither a USB port path nor a root hub" },
    { "/devices/usb1/1-2.3.4.5.6.7.8", "neither a USB port path" },
    { "/devices/usb1/2-1", "on another bus than BUSNUM=1" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *header = g_strdup_printf("add@%s", cases[i].devpath);
    g_autofree char *field = g_strdup_printf("DEVPATH=%s", cases[i].devpath);

    assert_refused(message(header, "ACTION=add", field, "SUBSYSTEM=usb",
                           "DEVTYPE=usb_device", "PRODUCT=1050/407/543",
                           "BUSNUM=001", "DEVNUM=009", NULL),
                   USB_UEVENT_ERROR_INVALID, cases[i].message);
  }
  {
    g_autofree char *long_path = g_strnfill(USB_UEVENT_MAX_DEVPATH, 'a');
    g_autofree char *header = g_strdup_printf("add@/devices/%s/1-2", long_path);
    g_autofree char *field = g_strdup_printf("DEVPATH=/devices/%s/1-2", long_path);

    assert_refused(message(header, "ACTION=add", field, "SUBSYSTEM=usb",
                           "DEVTYPE=usb_device", "PRODUCT=1050/407/543",
                           "BUSNUM=001", "DEVNUM=009", NULL),
                   USB_UEVENT_ERROR_INVALID, "more than 1024");
  }
}

/* Framing: sizes, NULs, field counts. */
static void
test_invalid_framing(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) good = usb_message("add");
  g_autofree guint8 *huge = g_malloc0(USB_UEVENT_MAX_SIZE + 1);
  g_autofree guint8 *no_nul = g_malloc(600);
  GByteArray *many;

  g_assert_null(usb_uevent_parse(good->data, 0, &error));
  g_assert_error(error, USB_UEVENT_ERROR, USB_UEVENT_ERROR_INVALID);
  g_clear_error(&error);

  /* oversized: refused by its size, before any byte is read */
  g_assert_null(usb_uevent_parse(huge, USB_UEVENT_MAX_SIZE + 1, &error));
  g_assert_error(error, USB_UEVENT_ERROR, USB_UEVENT_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "more than 8192"));
  g_clear_error(&error);

  /* not NUL-separated at all */
  memset(no_nul, 'A', 600);
  g_assert_null(usb_uevent_parse(no_nul, 600, &error));
  g_assert_error(error, USB_UEVENT_ERROR, USB_UEVENT_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "does not end in NUL"));
  g_clear_error(&error);

  /* the last NUL cut off */
  g_assert_null(usb_uevent_parse(good->data, good->len - 1, &error));
  g_assert_nonnull(strstr(error->message, "does not end in NUL"));
  g_clear_error(&error);

  /* two NULs in a row */
  assert_refused(message("add@" DEVPATH, "ACTION=add", "", "DEVPATH=" DEVPATH, NULL),
                 USB_UEVENT_ERROR_INVALID, "empty field at byte");
  assert_refused(message("", "ACTION=add", NULL), USB_UEVENT_ERROR_INVALID,
                 "empty header");

  /* more fields than the kernel ever sends */
  many = usb_message("add");
  for (guint i = 0; i < USB_UEVENT_MAX_FIELDS; i++) {
    g_autofree char *field = g_strdup_printf("X%u=1", i);
    g_byte_array_append(many, (const guint8 *)field, (guint)strlen(field) + 1);
  }
  assert_refused(many, USB_UEVENT_ERROR_INVALID, "more than 64 fields");
}

/* Every prefix of a good message: an error or the same event, never
 * anything else (and never a read past the end: run under ASan). */
static void
test_truncated(void)
{
  g_autoptr(GByteArray) good = usb_message("remove");

  for (guint len = 1; len < good->len; len++) {
    g_autoptr(GError) error = NULL;
    g_autofree guint8 *copy = g_memdup2(good->data, len);
    g_autoptr(UsbUevent) event = usb_uevent_parse(copy, len, &error);

    if (event == NULL) {
      g_assert_error(error, USB_UEVENT_ERROR, USB_UEVENT_ERROR_INVALID);
      continue;
    }
    /* only SEQNUM, the last field, may go */
    g_assert_cmpuint(len, ==, good->len - strlen("SEQNUM=4711") - 1);
    g_assert_cmpuint(event->device, ==, 9);
    g_assert_cmpuint(event->seqnum, ==, 0);
  }
}

/* Garbage of every length, and good messages with random bytes flipped. */
static void
test_garbled(void)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(12);
  g_autoptr(GByteArray) good = usb_message("add");
  guint events = 0;

  for (guint round = 0; round < 20000; round++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(UsbUevent) event = NULL;
    g_autofree guint8 *bytes = NULL;
    gsize len;

    if (round % 2 == 0) {
      len = (gsize)g_rand_int_range(rand, 1, 400);
      bytes = g_malloc(len);
      for (gsize i = 0; i < len; i++)
        bytes[i] = (guint8)g_rand_int_range(rand, 0, 256);
      if (round % 4 == 0)
        bytes[len - 1] = '\0';
    } else {
      len = good->len;
      bytes = g_memdup2(good->data, len);
      for (guint flips = g_rand_int_range(rand, 1, 4); flips > 0; flips--)
        bytes[g_rand_int_range(rand, 0, (gint32)len)] = (guint8)g_rand_int_range(rand, 0, 256);
    }
    event = usb_uevent_parse(bytes, len, &error);
    g_assert_true((event == NULL) != (error == NULL));
    if (event != NULL) {
      /* whatever got through is a well-formed USB device event */
      events++;
      g_assert_cmpuint(event->bus, >=, 1);
      g_assert_cmpuint(event->device, >=, 1);
      g_assert_cmpuint(event->device, <=, 127);
      g_assert_nonnull(event->devpath);
      g_assert_null(strstr(event->devpath, ".."));
    }
  }
  g_test_message("%u of 20000 garbled messages still parsed (harmless flips)", events);
}

/* ------------------------------------------------------------------ */
/* The watcher                                                         */

typedef struct {
  guint calls;
  UsbUeventAction last;
} Seen;

static void
on_event(const UsbUevent *event, gpointer data)
{
  Seen *seen = data;

  seen->calls++;
  seen->last = event->action;
}

/* Spin the main context until @done says so, at most 5 s. */
static gboolean
wait_for(UsbUeventWatch *watch, gboolean (*done)(const UsbUeventWatchStats *))
{
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  UsbUeventWatchStats stats;

  for (;;) {
    usb_uevent_watch_get_stats(watch, &stats);
    if (done(&stats))
      return TRUE;
    if (g_get_monotonic_time() > deadline)
      return FALSE;
    g_main_context_iteration(NULL, FALSE);
    g_usleep(1000);
  }
}

/* Send @bytes from a user-space netlink socket straight to the watcher. */
static void
send_forged(UsbUeventWatch *watch, const guint8 *bytes, gsize len)
{
  struct sockaddr_nl to = {
    .nl_family = AF_NETLINK,
    .nl_pid = usb_uevent_watch_get_port_id(watch),
  };
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);

  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(sendto(fd, bytes, len, 0, (struct sockaddr *)&to, sizeof(to)),
                  ==, (gssize)len);
  close(fd);
}

static gboolean
saw_foreign(const UsbUeventWatchStats *s)
{
  return s->foreign >= 1;
}

static gboolean
saw_truncated(const UsbUeventWatchStats *s)
{
  return s->truncated >= 1;
}

static gboolean
saw_ignored(const UsbUeventWatchStats *s)
{
  return s->ignored >= 1;
}

static UsbUeventWatch *
watch_or_skip(Seen *seen)
{
  g_autoptr(GError) error = NULL;
  UsbUeventWatch *watch = usb_uevent_watch_new(on_event, seen, &error);

  if (watch == NULL) {
    g_test_skip(error->message);
    return NULL;
  }
  g_assert_cmpuint(usb_uevent_watch_get_port_id(watch), !=, 0);
  return watch;
}

/* A well-formed USB event from user space is not the kernel's. */
static void
test_watch_forged(void)
{
  Seen seen = { 0 };
  g_autoptr(UsbUeventWatch) watch = watch_or_skip(&seen);
  g_autoptr(GByteArray) bytes = usb_message("add");
  UsbUeventWatchStats stats;

  if (watch == NULL)
    return;
  send_forged(watch, bytes->data, bytes->len);
  g_assert_true(wait_for(watch, saw_foreign));
  usb_uevent_watch_get_stats(watch, &stats);
  g_assert_cmpuint(stats.delivered, ==, 0);
  g_assert_cmpuint(seen.calls, ==, 0);
}

/* One recvmsg into a bounded buffer: a bigger message is dropped whole. */
static void
test_watch_oversized(void)
{
  Seen seen = { 0 };
  g_autoptr(UsbUeventWatch) watch = watch_or_skip(&seen);
  g_autofree guint8 *big = g_malloc0(USB_UEVENT_MAX_SIZE + 100);
  UsbUeventWatchStats stats;

  if (watch == NULL)
    return;
  memset(big, 'A', USB_UEVENT_MAX_SIZE + 99);
  send_forged(watch, big, USB_UEVENT_MAX_SIZE + 100);
  g_assert_true(wait_for(watch, saw_truncated));
  usb_uevent_watch_get_stats(watch, &stats);
  g_assert_cmpuint(stats.foreign, ==, 0);
  g_assert_cmpuint(seen.calls, ==, 0);
}

/* A real kernel uevent: writing "change" to a device's uevent file makes
 * the kernel send one.  This host has no USB, so the device is /dev/null's
 * (subsystem mem): it must arrive from the kernel and be ignored. */
static void
test_watch_kernel(void)
{
  const char *trigger = "/sys/devices/virtual/mem/null/uevent";
  Seen seen = { 0 };
  g_autoptr(UsbUeventWatch) watch = NULL;
  UsbUeventWatchStats stats;
  int fd = open(trigger, O_WRONLY | O_CLOEXEC);

  if (fd < 0) {
    g_autofree char *why = g_strdup_printf("cannot write %s (%s): needs root "
                                           "and a writable /sys", trigger,
                                           g_strerror(errno));
    g_test_skip(why);
    return;
  }
  watch = watch_or_skip(&seen);
  if (watch == NULL) {
    close(fd);
    return;
  }
  g_assert_cmpint(write(fd, "change", 6), ==, 6);
  close(fd);
  if (!wait_for(watch, saw_ignored)) {
    /* a kernel that sends uevents elsewhere (another network namespace) */
    g_test_skip("no uevent arrived within 5 s: uevents do not reach this "
                "network namespace");
    return;
  }
  usb_uevent_watch_get_stats(watch, &stats);
  g_assert_cmpuint(stats.foreign, ==, 0);
  g_assert_cmpuint(stats.truncated, ==, 0);
  g_assert_cmpuint(stats.invalid, ==, 0);
  g_assert_cmpuint(stats.received, >=, 1);
  g_test_message("received %" G_GUINT64_FORMAT " kernel uevents, %" G_GUINT64_FORMAT
                 " ignored, %" G_GUINT64_FORMAT " delivered", stats.received,
                 stats.ignored, stats.delivered);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);

  g_test_add_func("/usb-uevent/parse/actions", test_actions);
  g_test_add_func("/usb-uevent/parse/root-hub", test_root_hub);
  g_test_add_func("/usb-uevent/parse/deepest", test_deepest);
  g_test_add_func("/usb-uevent/parse/ignored", test_ignored);
  g_test_add_func("/usb-uevent/parse/invalid-fields", test_invalid_fields);
  g_test_add_func("/usb-uevent/parse/invalid-devpath", test_invalid_devpath);
  g_test_add_func("/usb-uevent/parse/invalid-framing", test_invalid_framing);
  g_test_add_func("/usb-uevent/parse/truncated", test_truncated);
  g_test_add_func("/usb-uevent/parse/garbled", test_garbled);
  g_test_add_func("/usb-uevent/watch/forged", test_watch_forged);
  g_test_add_func("/usb-uevent/watch/oversized", test_watch_oversized);
  g_test_add_func("/usb-uevent/watch/kernel", test_watch_kernel);
  return g_test_run();
}
