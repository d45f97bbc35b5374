/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-uevent-watch.c - deliver the kernel's USB device events from the
 * main loop
 *
 * One NETLINK_KOBJECT_UEVENT socket bound to group 1 (the kernel's; udev
 * re-broadcasts on group 2, which is not joined).  Each readable wake-up
 * reads a bounded number of messages, each with one recvmsg() into a
 * fixed buffer: a message that does not fit comes back with MSG_TRUNC and
 * is dropped.  A message is read only when the kernel sent it: the
 * sender's netlink port id is 0 (user space cannot send from port 0), and
 * the credentials the kernel attaches (SO_PASSCRED) say uid 0.  ENOBUFS
 * means the kernel dropped events for this socket; the callback hears of
 * it (USB_UEVENT_LOST) so that its owner can re-read sysfs.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "usb-uevent.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>

#include <glib-unix.h>

/* The kernel's uevent multicast group. */
#define UEVENT_GROUP_KERNEL 1
/* Messages read per wake-up, so a flood cannot starve the main loop. */
#define MESSAGES_PER_DISPATCH 64
/* Asked for (the kernel caps it at net.core.rmem_max): room for a burst
 * such as a hub with many devices re-enumerating. */
#define RECEIVE_BUFFER_SIZE (1024 * 1024)

struct _UsbUeventWatch {
  int fd;
  guint32 port_id;
  GSource *source;
  UsbUeventFunc func;
  gpointer user_data;
  UsbUeventWatchStats stats;
  guint8 buffer[USB_UEVENT_MAX_SIZE];
};

/* Return: whether the message came from the kernel, by its address and
 * its credentials. */
static gboolean
sent_by_kernel(const struct msghdr *msg, const struct sockaddr_nl *from)
{
  if (msg->msg_namelen != sizeof(*from) || from->nl_family != AF_NETLINK ||
      from->nl_pid != 0)
    return FALSE;
  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR((struct msghdr *)msg); cmsg != NULL;
       cmsg = CMSG_NXTHDR((struct msghdr *)msg, cmsg)) {
    struct ucred cred;

    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_CREDENTIALS ||
        cmsg->cmsg_len < CMSG_LEN(sizeof(cred)))
      continue;
    memcpy(&cred, CMSG_DATA(cmsg), sizeof(cred));
    return cred.uid == 0;
  }
  return TRUE;   /* no credentials attached: the port id has spoken */
}

static void
handle_message(UsbUeventWatch *watch, gsize length)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(UsbUevent) event = usb_uevent_parse(watch->buffer, length, &error);

  if (event == NULL) {
    if (g_error_matches(error, USB_UEVENT_ERROR, USB_UEVENT_ERROR_IGNORED)) {
      watch->stats.ignored++;
    } else {
      watch->stats.invalid++;
      g_debug("uevent dropped: %s", error->message);
    }
    return;
  }
  watch->stats.delivered++;
  watch->func(event, watch->user_data);
}

static void
report_lost(UsbUeventWatch *watch)
{
  UsbUevent lost = { .action = USB_UEVENT_LOST };

  watch->stats.lost++;
  g_info("the kernel dropped uevents (socket buffer full); USB devices must be re-read");
  watch->func(&lost, watch->user_data);
}

/* Return: FALSE when there is nothing more to read now. */
static gboolean
read_one(UsbUeventWatch *watch)
{
  struct sockaddr_nl from = { 0 };
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(struct ucred))];
  } control;
  struct iovec iov = { watch->buffer, sizeof(watch->buffer) };
  struct msghdr msg = {
    .msg_name = &from,
    .msg_namelen = sizeof(from),
    .msg_iov = &iov,
    .msg_iovlen = 1,
    .msg_control = control.bytes,
    .msg_controllen = sizeof(control.bytes),
  };
  ssize_t n = recvmsg(watch->fd, &msg, MSG_DONTWAIT);

  if (n < 0) {
    switch (errno) {
    case EINTR:
      return TRUE;
    case ENOBUFS:
      report_lost(watch);
      return TRUE;
    case EAGAIN:
      return FALSE;
    default:
      g_warning("reading kernel uevents: %s", g_strerror(errno));
      return FALSE;
    }
  }
  watch->stats.received++;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    watch->stats.truncated++;
    g_debug("uevent dropped: bigger than %d bytes", USB_UEVENT_MAX_SIZE);
    return TRUE;
  }
  if (!sent_by_kernel(&msg, &from)) {
    watch->stats.foreign++;
    g_debug("uevent dropped: sent by netlink port %u, not by the kernel", from.nl_pid);
    return TRUE;
  }
  handle_message(watch, (gsize)n);
  return TRUE;
}

static gboolean
on_readable(gint fd, GIOCondition condition, gpointer data)
{
  UsbUeventWatch *watch = data;

  for (guint i = 0; i < MESSAGES_PER_DISPATCH; i++)
    if (!read_one(watch))
      break;
  return G_SOURCE_CONTINUE;
}

static gboolean
set_int_option(int fd, int option, int value)
{
  return setsockopt(fd, SOL_SOCKET, option, &value, sizeof(value)) == 0;
}

UsbUeventWatch *
usb_uevent_watch_new(UsbUeventFunc func, gpointer user_data, GError **error)
{
  g_autoptr(UsbUeventWatch) watch = NULL;
  struct sockaddr_nl address = {
    .nl_family = AF_NETLINK,
    .nl_groups = UEVENT_GROUP_KERNEL,
  };
  socklen_t length = sizeof(address);
  const char *step;

  g_return_val_if_fail(func != NULL, NULL);
  watch = g_new0(UsbUeventWatch, 1);
  watch->fd = -1;
  watch->func = func;
  watch->user_data = user_data;
  watch->fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                     NETLINK_KOBJECT_UEVENT);
  if (watch->fd < 0) {
    step = "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)";
    goto fail;
  }
  if (!set_int_option(watch->fd, SO_PASSCRED, 1)) {
    step = "setsockopt(SO_PASSCRED)";
    goto fail;
  }
  if (!set_int_option(watch->fd, SO_RCVBUF, RECEIVE_BUFFER_SIZE))
    g_debug("uevent socket: setsockopt(SO_RCVBUF): %s", g_strerror(errno));
  if (bind(watch->fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
    step = "bind to the kernel's group";
    goto fail;
  }
  if (getsockname(watch->fd, (struct sockaddr *)&address, &length) < 0) {
    step = "getsockname";
    goto fail;
  }
  watch->port_id = address.nl_pid;

  watch->source = g_unix_fd_source_new(watch->fd, G_IO_IN);
  g_source_set_callback(watch->source, G_SOURCE_FUNC(on_readable), watch, NULL);
  g_source_set_static_name(watch->source, "hostdevd usb uevents");
  /* GLib takes a source's descriptor out of the poll set around each dispatch
   * unless it may recurse, waking the loop twice each time: every PCI bind
   * and unbind sends uevents too (nested loops are not supported, as in
   * qmp-client.c) */
  g_source_set_can_recurse(watch->source, TRUE);
  g_source_attach(watch->source, g_main_context_get_thread_default());
  return g_steal_pointer(&watch);

fail:
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot listen to the kernel's device events: %s: %s",
              step, g_strerror(errno));
  return NULL;
}

void
usb_uevent_watch_free(UsbUeventWatch *watch)
{
  if (watch == NULL)
    return;
  if (watch->source != NULL) {
    g_source_destroy(watch->source);
    g_source_unref(watch->source);
  }
  if (watch->fd >= 0)
    close(watch->fd);
  g_free(watch);
}

void
usb_uevent_watch_get_stats(const UsbUeventWatch *watch, UsbUeventWatchStats *stats)
{
  *stats = watch->stats;
}

guint32
usb_uevent_watch_get_port_id(const UsbUeventWatch *watch)
{
  return watch->port_id;
}
