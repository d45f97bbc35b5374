/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * usb-uevent.h - the kernel's USB device events, read from its uevent
 * netlink socket: a parser for one message, and a watcher that delivers
 * them to a callback from the main loop
 *
 * The kernel multicasts a message on NETLINK_KOBJECT_UEVENT group 1 for
 * every device event (lib/kobject_uevent.c):
 *
 *   "add@/devices/pci0000:00/0000:00:14.0/usb1/1-2\0"   ACTION@DEVPATH
 *   "ACTION=add\0DEVPATH=/devices/...\0SUBSYSTEM=usb\0"  KEY=VALUE, each
 *   "DEVTYPE=usb_device\0PRODUCT=46d/c52b/1211\0"        ending in NUL
 *   "BUSNUM=001\0DEVNUM=002\0SEQNUM=4321\0" ...
 *
 * Only USB devices (SUBSYSTEM=usb, DEVTYPE=usb_device) become events;
 * interfaces, other subsystems and udev's own re-broadcasts (group 2,
 * "libudev" header) do not.  Everything in a message is untrusted until
 * the parser has checked it: size, NUL separation, keys, numbers, paths.
 *
 * hostdevd feeds these to hotplug-follow.c: a USB device that
 * re-enumerates is attached again, one that was absent when it appears.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The largest message taken, in bytes.  The kernel's environment buffer
 * is 2048 bytes (UEVENT_BUFFER_SIZE), the "ACTION@DEVPATH" header comes on
 * top; anything bigger is not the kernel's. */
#define USB_UEVENT_MAX_SIZE 8192
/* The most KEY=VALUE fields taken: the kernel's UEVENT_NUM_ENVP. */
#define USB_UEVENT_MAX_FIELDS 64
/* The longest DEVPATH taken. */
#define USB_UEVENT_MAX_DEVPATH 1024

typedef enum {
  USB_UEVENT_ADD,      /* a device appeared (enumerated) */
  USB_UEVENT_REMOVE,   /* it is gone */
  USB_UEVENT_BIND,     /* a driver took it */
  USB_UEVENT_UNBIND,   /* its driver let it go */
  USB_UEVENT_CHANGE,   /* something about it changed (or a synthetic event) */
  /* Never parsed, only delivered by the watcher: the kernel dropped
   * events because the socket's buffer was full.  Nothing else in the
   * event is set; re-read sysfs to learn what happened meanwhile. */
  USB_UEVENT_LOST,
} UsbUeventAction;

typedef struct {
  UsbUeventAction action;
  char *devpath;       /* "/devices/pci0000:00/0000:00:14.0/usb1/1-2", under /sys */
  char *port_path;     /* "1-2", the last DEVPATH component (usb-selector.h);
                        * NULL for a root hub ("usb1") */
  guint bus;           /* BUSNUM, 1..65535 */
  guint device;        /* DEVNUM, 1..127 (a USB address has 7 bits) */
  guint vendor;        /* PRODUCT=vendor/product/bcdDevice, each 0..0xffff */
  guint product;
  guint bcd_device;
  guint64 seqnum;      /* SEQNUM, the kernel's event counter; 0 if absent */
} UsbUevent;

void usb_uevent_free(UsbUevent *event);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(UsbUevent, usb_uevent_free)

/* Return: "add", "remove", "bind", "unbind", "change" or "lost". */
const char *usb_uevent_action_name(UsbUeventAction action);

#define USB_UEVENT_ERROR (usb_uevent_error_quark())
GQuark usb_uevent_error_quark(void);

typedef enum {
  /* Well-formed, but not about a USB device: another subsystem, a USB
   * interface, an action not followed (move, online, offline), or a udev
   * monitor message.  Expected all the time; not worth a log line. */
  USB_UEVENT_ERROR_IGNORED,
  /* Malformed or hostile: truncated, not NUL-separated, oversized, bad
   * keys or numbers, a path with "..", a field missing or repeated. */
  USB_UEVENT_ERROR_INVALID,
} UsbUeventError;

/**
 * usb_uevent_parse() - read one kernel uevent message
 * @data: the message as received; not NUL-terminated by the caller
 * @length: its size, at most USB_UEVENT_MAX_SIZE
 * @error: USB_UEVENT_ERROR_IGNORED or _INVALID, naming what was wrong
 * Checks every field it uses: ACTION and DEVPATH as in the header,
 * SUBSYSTEM=usb, DEVTYPE=usb_device, BUSNUM, DEVNUM, PRODUCT, and that the
 * DEVPATH ends in the port path of bus BUSNUM (or root hub usbBUSNUM).
 * Return: (transfer full): the event, or NULL with @error set.
 */
UsbUevent *usb_uevent_parse(const guint8 *data, gsize length, GError **error);

/**
 * UsbUeventFunc - what a watcher calls for each USB device event
 * @event: (transfer none): valid during the call only
 * The callback must not free the watcher that calls it.
 */
typedef void (*UsbUeventFunc)(const UsbUevent *event, gpointer user_data);

typedef struct _UsbUeventWatch UsbUeventWatch;

/* What a watcher has seen; counts since it was created. */
typedef struct {
  guint64 received;    /* messages read from the socket */
  guint64 delivered;   /* USB device events given to the callback */
  guint64 ignored;     /* well-formed, not about a USB device */
  guint64 invalid;     /* malformed (the parser said why, logged at debug level) */
  guint64 foreign;     /* not sent by the kernel: dropped unread */
  guint64 truncated;   /* bigger than USB_UEVENT_MAX_SIZE: dropped */
  guint64 lost;        /* times the kernel reported dropped events (ENOBUFS) */
} UsbUeventWatchStats;

/**
 * usb_uevent_watch_new() - listen to the kernel's device events
 * @func: called from the thread-default main context for every USB
 *   device event, and with USB_UEVENT_LOST when events were dropped
 * @user_data: for @func
 * Opens a NETLINK_KOBJECT_UEVENT socket (close-on-exec, non-blocking)
 * bound to the kernel's group 1, with SO_PASSCRED; messages whose sender
 * is not the kernel (netlink port id 0, and uid 0 in the credentials the
 * kernel attaches) are dropped unread.  Each message is read with one
 * recvmsg() into a USB_UEVENT_MAX_SIZE buffer; a bigger one is dropped.
 * Syscalls: socket(AF_NETLINK), setsockopt(SO_PASSCRED, SO_RCVBUF),
 * bind, getsockname here; recvmsg, and close at free, afterwards.
 * Return: (transfer full): the watcher, attached to the thread-default
 * main context; or NULL with a HOSTDEVD_ERROR_HOST_ERROR.
 */
UsbUeventWatch *usb_uevent_watch_new(UsbUeventFunc func, gpointer user_data,
                                     GError **error);

/* usb_uevent_watch_free() - stop listening and close the socket. */
void usb_uevent_watch_free(UsbUeventWatch *watch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(UsbUeventWatch, usb_uevent_watch_free)

/* usb_uevent_watch_get_stats() - copy the counts so far into @stats. */
void usb_uevent_watch_get_stats(const UsbUeventWatch *watch,
                                UsbUeventWatchStats *stats);

/* Return: the watcher's netlink port id (for diagnostics and tests: a
 * message sent to it from user space must be dropped as foreign). */
guint32 usb_uevent_watch_get_port_id(const UsbUeventWatch *watch);

G_END_DECLS
