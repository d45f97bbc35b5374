/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qmp-relay - the floor of any broker: a process between a QMP client and
 * QEMU that forwards bytes both ways and does nothing else.  raw-qmp
 * through it pays what every process in the path pays (two more wake-ups
 * and four more system calls per message) and none of a broker's work, so
 * bench.py can tell hostdevd's own cost from the cost of being a process.
 *
 *   qmp-relay LISTEN_SOCKET QEMU_QMP_SOCKET
 *       accepts one client on LISTEN_SOCKET, connects to QEMU, relays until
 *       either side closes (a client connecting early is retried by
 *       bench_connect_unix())
 */
#include "benchlib.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

const char *bench_program = "qmp-relay";

static int
listen_unix(const char *path)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    bench_die("socket: %s", strerror(errno));
  if (strlen(path) >= sizeof address.sun_path)
    bench_die("%s: path too long for a Unix socket", path);
  memcpy(address.sun_path, path, strlen(path) + 1);
  if (bind(fd, (struct sockaddr *) &address, sizeof address) < 0 || listen(fd, 1) < 0)
    bench_die("%s: %s", path, strerror(errno));
  return fd;
}

/* forward() - what one read of @from gives, all of it to @to.
 * Return: 0 once @from closed. */
static int
forward(int from, int to)
{
  char buffer[65536];
  ssize_t n = read(from, buffer, sizeof buffer);

  if (n < 0 && errno == EINTR)
    return 1;
  if (n < 0)
    bench_die("read: %s", strerror(errno));
  if (n > 0)
    bench_write_all(to, buffer, (size_t) n);
  return n > 0;
}

int
main(int argc, char **argv)
{
  if (argc != 3)
    bench_die("usage: qmp-relay LISTEN_SOCKET QEMU_QMP_SOCKET");
  int server = listen_unix(argv[1]);
  int client = accept4(server, NULL, NULL, SOCK_CLOEXEC);
  if (client < 0)
    bench_die("accept: %s", strerror(errno));
  int qemu = bench_connect_unix(argv[2], 10000);
  struct pollfd fds[2] = { { .fd = client, .events = POLLIN }, { .fd = qemu, .events = POLLIN } };

  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      bench_die("poll: %s", strerror(errno));
    }
    if ((fds[0].revents & (POLLIN | POLLHUP)) && !forward(client, qemu))
      break;
    if ((fds[1].revents & (POLLIN | POLLHUP)) && !forward(qemu, client))
      break;
  }
  close(qemu);
  close(client);
  close(server);
  unlink(argv[1]);
  return 0;
}
