/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sandbox.c - hostdevd's isolation
 *
 * hostdevd runs as root because preparing a host device is root's work:
 * writing sysfs attributes, handing /dev/vfio/N to QEMU's user, raising
 * QEMU's locked-memory limit.  It also parses what clients and QEMU send.
 * So it keeps root's uid (sysfs, /dev and its runtime directory belong to
 * root, and the owner may write them without any capability) but gives up
 * everything else, in stages:
 *
 *  1. sandbox_early(), first thing in main(): close every inherited file
 *     descriptor above 2, and make sure 0-2 are open (on /dev/null if not).
 *
 *  2. sandbox_drop_privileges(), as soon as QMP is connected (connecting
 *     may need CAP_DAC_OVERRIDE: the socket may belong to QEMU's user), before
 *     the journal is reconciled and before anything else starts a thread:
 *     keep only the capabilities listed in kept_capabilities[] below, each
 *     with the reason it is needed; empty the bounding, inheritable and
 *     ambient sets, so nothing can ever regain a capability; set
 *     no-new-privs; make the process not dumpable, so that no other process
 *     of the same uid can ptrace it or read its memory through /proc.
 *     Capabilities belong to threads, not to the process, and GLib starts
 *     one long-lived worker thread ("gmain") at the first GTask: so
 *     sandbox_prepare_threads(), right after the options are read, starts
 *     it from a helper thread that has already dropped to the kept set.
 *     The drop then checks /proc/self/task: no thread may hold more than
 *     the main thread.  Threads started later inherit the reduced sets.
 *
 *  3. sandbox_lock(), once the control socket listens, before the first
 *     request is read: a seccomp allowlist (libseccomp) of the
 *     syscalls the daemon makes in its steady state, most of them for GLib's
 *     main loop, GIO sockets and the thread pool, a few with arguments
 *     pinned (socket families, ioctl requests, clone flags, kill signal,
 *     prctl options, prlimit resources).  Everything else kills the process
 *     (SECCOMP_RET_KILL_PROCESS; SIGSYS on kernels without it); syscalls
 *     that libraries only probe (clone3) fail with ENOSYS so glibc falls
 *     back.  In --sandbox log mode the default action is "log" instead, for
 *     finding a missing syscall in the audit log without a crash.  The
 *     filter is then checked in /proc/self/status: hostdevd refuses to
 *     serve with --sandbox on unless "Seccomp: 2" is there.
 *
 * There is no namespace or chroot stage: the broker's job is to reach the
 * host's sysfs and /dev, so a mount namespace would have to show most of
 * them anyway.  Under systemd the unit (contrib/systemd) adds what the
 * service manager can do from outside: a read-only file system but for the
 * runtime directory and the PCI/USB sysfs trees, a device allowlist, no
 * address families but AF_UNIX and AF_NETLINK.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "sandbox.h"

#include <gio/gio.h>

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

gboolean
sandbox_mode_parse(const char *text, SandboxMode *mode, GError **error)
{
  if (g_strcmp0(text, "on") == 0)
    *mode = SANDBOX_ON;
  else if (g_strcmp0(text, "log") == 0)
    *mode = SANDBOX_LOG;
  else if (g_strcmp0(text, "off") == 0)
    *mode = SANDBOX_OFF;
  else {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--sandbox must be on, log or off, not '%s'", text);
    return FALSE;
  }
  return TRUE;
}

const char *
sandbox_mode_to_string(SandboxMode mode)
{
  switch (mode) {
  case SANDBOX_ON:
    return "on";
  case SANDBOX_LOG:
    return "log";
  case SANDBOX_OFF:
  default:
    return "off";
  }
}

/* ---- stage 1 ------------------------------------------------------------ */

/* close_from() - close every descriptor >= @lowest, by /proc when close_range is missing. */
static void
close_from(int lowest)
{
  if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0)
    return;

  GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);
  if (dir == NULL)
    return;
  /* GDir's own descriptor is among them: collect first, close after */
  GArray *fds = g_array_new(FALSE, FALSE, sizeof(int));
  const char *name;
  while ((name = g_dir_read_name(dir)) != NULL) {
    guint64 fd;
    if (g_ascii_string_to_unsigned(name, 10, (guint64)lowest, G_MAXINT, &fd, NULL)) {
      int value = (int)fd;
      g_array_append_val(fds, value);
    }
  }
  g_dir_close(dir);
  for (guint i = 0; i < fds->len; i++)
    close(g_array_index(fds, int, i));
  g_array_unref(fds);
}

void
sandbox_early(void)
{
  close_from(3);
  /* a closed 0-2 would be reused by the next socket; log lines would land in it */
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
      continue;
    int null_fd = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (null_fd >= 0 && null_fd != fd) {
      dup2(null_fd, fd);
      close(null_fd);
    }
  }
}

/* ---- stage 2 ------------------------------------------------------------ */

/*
 * The capabilities hostdevd keeps, and why.  Dropped on purpose, among
 * others:
 *  - CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: hostdevd stays uid 0, and sysfs
 *    attributes (driver_override, bind, unbind, drivers_probe, new_id are
 *    root-owned, mode 0200 or 0644), /dev/vfio/N, the USB device nodes and its
 *    runtime directory all belong to root, so the owner's permission bits
 *    are enough.  Only the QMP socket may belong to QEMU's user, and it is
 *    connected before this stage.
 *  - CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID, CAP_SETPCAP, CAP_SYS_PTRACE,
 *    CAP_SYS_MODULE, CAP_NET_RAW, CAP_KILL, CAP_MKNOD, CAP_SYS_RAWIO:
 *    nothing in the workflow needs them.
 */
static const struct {
  int capability;
  const char *name;
} kept_capabilities[] = {
  /* chown /dev/vfio/N to QEMU's user for the attach and back to its old
   * owner at detach (vfio.c); without it QEMU cannot open the group */
  { CAP_CHOWN, "CAP_CHOWN" },
  /* chmod /dev/vfio/N to 0600 after it was given to QEMU's user, and back:
   * by then root no longer owns the node (vfio_step_chown chowns first).
   * Could go if the mode were set before the owner. */
  { CAP_FOWNER, "CAP_FOWNER" },
  /* raise RLIMIT_MEMLOCK of QEMU, another process and maybe another user,
   * beyond its hard limit (memlock.c): VFIO pins all guest memory */
  { CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE" },
  /* set an SR-IOV VF's MAC address and VLAN through its PF with
   * RTM_SETLINK on a NETLINK_ROUTE socket (sriov.c), as libvirt does for
   * <interface type='hostdev'>; nothing else uses the network */
  { CAP_NET_ADMIN, "CAP_NET_ADMIN" },
  /* the Linux audit record of each device assignment (audit.c), sent on
   * the NETLINK_AUDIT socket opened at start-up, as libvirt writes it */
  { CAP_AUDIT_WRITE, "CAP_AUDIT_WRITE" },
};

/* Return: @field ("CapEff", "Seccomp", ...) of a /proc status file as a number, or -1. */
static gint64
status_field(const char *status, const char *field, guint base)
{
  g_autofree char *key = g_strdup_printf("\n%s:", field);
  const char *line = strstr(status, key);
  if (line == NULL)
    return -1;
  return (gint64)g_ascii_strtoull(line + strlen(key), NULL, base);
}

/*
 * drop_thread_capabilities() - reduce the calling thread to the kept capabilities
 * @summary: (out) (optional): what was kept, for the log
 * Return: FALSE with @error when libcap-ng could not apply the sets.
 */
static gboolean
drop_thread_capabilities(GString *summary, GError **error)
{
  /* libcap-ng's state is per thread, but it addresses the process id by
   * default: capset() on another thread's id is refused */
  capng_setpid((int)syscall(SYS_gettid));
  capng_get_caps_process();
  gboolean can_set_bounds = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
  gboolean keep[G_N_ELEMENTS(kept_capabilities)];
  for (gsize i = 0; i < G_N_ELEMENTS(kept_capabilities); i++)
    keep[i] = capng_have_capability(CAPNG_PERMITTED, kept_capabilities[i].capability);

  capng_clear(CAPNG_SELECT_ALL);
  for (gsize i = 0; i < G_N_ELEMENTS(kept_capabilities); i++) {
    if (!keep[i])
      continue;
    if (capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED,
                     (unsigned)kept_capabilities[i].capability) != 0) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot keep %s",
                  kept_capabilities[i].name);
      return FALSE;
    }
    if (summary)
      g_string_append_printf(summary, "%s%s", summary->len ? " " : "",
                             kept_capabilities[i].name);
  }
  /* The bounding set needs CAP_SETPCAP to shrink; without it (not started
   * as root) there is nothing to bound, and no-new-privs plus the seccomp
   * filter (no execve) keep it that way. */
  int applied = capng_apply(can_set_bounds ? CAPNG_SELECT_ALL : CAPNG_SELECT_CAPS);
  if (applied != 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "cannot drop capabilities (libcap-ng error %d)", applied);
    return FALSE;
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "cannot set no-new-privs: %s", g_strerror(saved));
    return FALSE;
  }
  return TRUE;
}

typedef struct {
  GError *error;
} PrepareResult;

static void *
prepare_worker_thread(void *data)
{
  PrepareResult *result = data;
  if (drop_thread_capabilities(NULL, &result->error))
    /* GTask's type set-up starts GLib's worker thread ("gmain"), from this
     * thread, so it inherits this thread's reduced sets */
    g_type_ensure(G_TYPE_TASK);
  return NULL;
}

gboolean
sandbox_prepare_threads(SandboxMode mode, GError **error)
{
  if (mode == SANDBOX_OFF)
    return TRUE;
  PrepareResult result = { NULL };
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, prepare_worker_thread, &result);
  if (rc != 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(rc),
                "cannot start the sandbox helper thread: %s", g_strerror(rc));
    return FALSE;
  }
  pthread_join(thread, NULL);
  if (result.error) {
    g_propagate_error(error, result.error);
    return FALSE;
  }
  return TRUE;
}

/*
 * check_every_thread() - compare each thread's capability sets with ours
 * Return: FALSE with @error naming the first thread that holds more.
 */
static gboolean
check_every_thread(GError **error)
{
  g_autofree char *own = NULL;
  g_autofree char *own_path = g_strdup_printf("/proc/self/task/%d/status",
                                              (int)syscall(SYS_gettid));
  if (!g_file_get_contents(own_path, &own, NULL, error))
    return FALSE;
  static const char *const sets[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };

  g_autoptr(GDir) tasks = g_dir_open("/proc/self/task", 0, error);
  if (tasks == NULL)
    return FALSE;
  const char *tid;
  while ((tid = g_dir_read_name(tasks)) != NULL) {
    g_autofree char *path = g_strdup_printf("/proc/self/task/%s/status", tid);
    g_autofree char *status = NULL;
    if (!g_file_get_contents(path, &status, NULL, NULL))
      continue;   /* the thread ended meanwhile */
    for (gsize i = 0; i < G_N_ELEMENTS(sets); i++) {
      if (status_field(status, sets[i], 16) == status_field(own, sets[i], 16))
        continue;
      const char *name = strstr(status, "Name:");
      g_autofree char *thread_name = name ? g_strndup(name + 5, strcspn(name + 5, "\n")) : NULL;
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                  "thread %s (%s) holds other capabilities (%s) than the sandbox allows; "
                  "capabilities belong to each thread, so every thread must start after "
                  "sandbox_prepare_threads() or after the drop (this is a bug)",
                  tid, thread_name ? g_strstrip(thread_name) : "?", sets[i]);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
sandbox_drop_privileges(SandboxMode mode, GError **error)
{
  if (mode == SANDBOX_OFF)
    return TRUE;

  g_autoptr(GString) kept = g_string_new(NULL);
  if (!drop_thread_capabilities(kept, error))
    return FALSE;
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "cannot make hostdevd not dumpable: %s", g_strerror(saved));
    return FALSE;
  }
  if (!check_every_thread(error))
    return FALSE;
  g_message("sandbox: capabilities kept: %s", kept->len ? kept->str : "none");
  return TRUE;
}

/* ---- stage 3 ------------------------------------------------------------ */

/*
 * Syscalls allowed without looking at their arguments, with who makes
 * them.  Names this libseccomp or architecture does not know are skipped
 * (e.g. "open" does not exist on aarch64).
 */
static const char *const allowed_syscalls[] = {
  /* memory: malloc, GSlice, thread stacks */
  "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
  /* GMainContext: wakeup eventfd, poll; GMutex/GCond: futex */
  "poll", "ppoll", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
  "epoll_pwait2", "select", "pselect6", "eventfd2", "pipe2", "futex",
  /* reading sysfs, /proc and the journal; writing sysfs attributes */
  "read", "readv", "pread64", "write", "writev", "pwrite64", "close", "close_range",
  "open", "openat", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
  "lseek", "access", "faccessat", "faccessat2", "getdents64", "readlink", "readlinkat",
  "fcntl", "dup", "dup2", "dup3",
  /* journal and claims (state.c, claims.c): g_file_set_contents, flock */
  "flock", "fsync", "fdatasync", "ftruncate", "fallocate", "rename", "renameat",
  "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir", "umask", "getcwd",
  /* waiting for /dev/vfio/N to appear (GFileMonitor) */
  "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
  /* control socket and QMP: GSocket, SO_PEERCRED, SCM_RIGHTS for USB fds */
  "connect", "bind", "listen", "accept", "accept4", "getsockname", "getpeername",
  "getsockopt", "setsockopt", "sendto", "sendmsg", "recvfrom", "recvmsg", "shutdown",
  /* journald logging of large messages passes a sealed memfd */
  "memfd_create",
  /* identity and time; liveness of other brokers' claims (/proc/PID/stat) */
  "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
  "getresgid", "getgroups", "uname", "sysinfo", "getrusage", "clock_gettime", "clock_getres",
  "gettimeofday", "time", "nanosleep", "clock_nanosleep", "getrandom", "capget",
  /* GLib threads (GTask pool, GLib worker): glibc thread start and exit */
  "set_robust_list", "rseq", "sched_getaffinity", "sched_yield", "sched_getattr",
  "sched_setattr", "getcpu", "exit", "exit_group",
  /* signals: g_unix_signal_add, abort() */
  "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
};

/* Return: the syscall number of @name here, or -1 when this architecture has none. */
static int
syscall_number(const char *name)
{
  int nr = seccomp_syscall_resolve_name(name);
  return nr == __NR_SCMP_ERROR || nr < 0 ? -1 : nr;
}

/* add_rule() - allow (or answer with @action) @name when the comparisons hold. */
static gboolean
add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n_args,
         const struct scmp_arg_cmp *args, GError **error)
{
  int nr = syscall_number(name);
  if (nr < 0)
    return TRUE;
  int rc = seccomp_rule_add_array(ctx, action, nr, n_args, args);
  if (rc < 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "cannot add seccomp rule for %s: %s", name, g_strerror(-rc));
    return FALSE;
  }
  return TRUE;
}

static gboolean
allow_with_arg(scmp_filter_ctx ctx, const char *name, struct scmp_arg_cmp arg, GError **error)
{
  return add_rule(ctx, SCMP_ACT_ALLOW, name, 1, &arg, error);
}

/*
 * chown and chmod hand /dev/vfio/N to QEMU's user and back (vfio.c); that
 * is all they may do.  The new owner must be root, QEMU's user or "leave
 * it" ((uid_t)-1), for user and group alike (and the group VFIO nodes had
 * before, to give them back, and the control socket's); a mode may not carry setuid,
 * setgid or sticky bits.  Where the owner and the mode sit differs by
 * syscall: the table says.  uid_t, gid_t and mode_t are 32 bits: only
 * those are compared.
 */
static const struct {
  const char *name;
  unsigned owner_arg;   /* the uid; the gid follows; 0: not a chown */
  unsigned mode_arg;    /* 0: not a chmod */
} ownership_syscalls[] = {
  { "chown", 1, 0 }, { "lchown", 1, 0 }, { "fchown", 1, 0 }, { "fchownat", 2, 0 },
  { "chmod", 0, 1 }, { "fchmod", 0, 1 }, { "fchmodat", 0, 2 },
};

#define ID_MASK 0xffffffffu
#define SPECIAL_MODE_BITS 07000u

static gboolean
add_ownership_rules(scmp_filter_ctx ctx, const SandboxOwner *qemu, GError **error)
{
  const guint32 uids[] = { 0, (guint32)-1, qemu ? (guint32)qemu->uid : 0 };
  const guint32 gids[] = { 0, (guint32)-1, qemu ? (guint32)qemu->gid : 0,
                           qemu ? (guint32)qemu->vfio_gid : 0,
                           qemu ? (guint32)qemu->socket_gid : 0 };

  for (gsize s = 0; s < G_N_ELEMENTS(ownership_syscalls); s++) {
    unsigned owner = ownership_syscalls[s].owner_arg, mode = ownership_syscalls[s].mode_arg;
    if (mode) {
      struct scmp_arg_cmp plain = { mode, SCMP_CMP_MASKED_EQ, SPECIAL_MODE_BITS, 0 };
      if (!add_rule(ctx, SCMP_ACT_ALLOW, ownership_syscalls[s].name, 1, &plain, error))
        return FALSE;
      continue;
    }
    for (gsize u = 0; u < G_N_ELEMENTS(uids); u++)
      for (gsize g = 0; g < G_N_ELEMENTS(gids); g++) {
        struct scmp_arg_cmp to[] = {
          { owner, SCMP_CMP_MASKED_EQ, ID_MASK, uids[u] },
          { owner + 1, SCMP_CMP_MASKED_EQ, ID_MASK, gids[g] },
        };
        /* libseccomp merges the repeated (0, 0) pairs when QEMU's user is root */
        if (!add_rule(ctx, SCMP_ACT_ALLOW, ownership_syscalls[s].name, 2, to, error))
          return FALSE;
      }
  }
  return TRUE;
}

/* Return: FALSE with @error when a rule could not be added. */
static gboolean
add_argument_rules(scmp_filter_ctx ctx, GError **error)
{
  /* Sockets: Unix (control socket, QMP, journald, sd_notify) and netlink
   * (uevents, link state); never IP, packet or anything else. */
  static const int families[] = { AF_UNIX, AF_NETLINK };
  for (gsize i = 0; i < G_N_ELEMENTS(families); i++) {
    if (!allow_with_arg(ctx, "socket", SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]), error))
      return FALSE;
  }
  if (!allow_with_arg(ctx, "socketpair", SCMP_A0(SCMP_CMP_EQ, AF_UNIX), error))
    return FALSE;

  /* ioctl: GSocket's FIONREAD, isatty() in GLib's log writer, O_NONBLOCK
   * and close-on-exec toggles; no terminal injection (TIOCSTI), no device
   * ioctls.  The request is an unsigned int: compare only 32 bits. */
  static const unsigned long requests[] = {
    FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, TCGETS, TIOCGWINSZ,
  };
  for (gsize i = 0; i < G_N_ELEMENTS(requests); i++) {
    if (!allow_with_arg(ctx, "ioctl",
                        SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)requests[i]),
                        error))
      return FALSE;
  }

  /* Threads only (GLib's pools), never a new process: clone must carry
   * CLONE_THREAD.  glibc tries clone3 first, whose flags sit in memory a
   * filter cannot read: ENOSYS makes glibc fall back to clone. */
  if (!allow_with_arg(ctx, "clone", SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD),
                      error) ||
      !add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, error))
    return FALSE;

  /* pidfd_open(pid, 0): wait (with poll) until an exiting QEMU is gone
   * before probing host drivers for its devices (vfio.c, wait_process_gone);
   * a pidfd only lets hostdevd watch the process, not signal it (no
   * pidfd_send_signal) */
  if (!allow_with_arg(ctx, "pidfd_open", SCMP_A1(SCMP_CMP_EQ, 0), error))
    return FALSE;
  /* kill(pid, 0) only: whether the broker owning a claim still lives (claims.c) */
  if (!allow_with_arg(ctx, "kill", SCMP_A1(SCMP_CMP_EQ, 0), error))
    return FALSE;
  /* raise()/abort() signal the own process only */
  if (!allow_with_arg(ctx, "tgkill", SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()), error))
    return FALSE;

  /* prctl: thread names (GLib names its threads) and nothing else, so no
   * way back to dumpable */
  if (!allow_with_arg(ctx, "prctl", SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME), error) ||
      !allow_with_arg(ctx, "prctl", SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME), error))
    return FALSE;

  /* prlimit64: read any limit (getrlimit), set only RLIMIT_MEMLOCK
   * (QEMU's, memlock.c) */
  if (!allow_with_arg(ctx, "prlimit64", SCMP_A2(SCMP_CMP_EQ, 0), error) ||
      !allow_with_arg(ctx, "prlimit64", SCMP_A1(SCMP_CMP_EQ, RLIMIT_MEMLOCK), error) ||
      !add_rule(ctx, SCMP_ACT_ALLOW, "getrlimit", 0, NULL, error))
    return FALSE;
  return TRUE;
}

gboolean
sandbox_filter_is_active(GError **error)
{
  g_autofree char *status = NULL;
  if (!g_file_get_contents("/proc/self/status", &status, NULL, error))
    return FALSE;
  const char *seccomp = strstr(status, "\nSeccomp:");
  const char *nnp = strstr(status, "\nNoNewPrivs:");
  guint64 mode = seccomp ? g_ascii_strtoull(seccomp + strlen("\nSeccomp:"), NULL, 10) : 0;
  guint64 no_new_privs = nnp ? g_ascii_strtoull(nnp + strlen("\nNoNewPrivs:"), NULL, 10) : 0;
  if (mode != 2 || no_new_privs != 1) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "the seccomp filter is not in force (/proc/self/status: Seccomp %u, "
                "NoNewPrivs %u; expected 2 and 1)", (guint)mode, (guint)no_new_privs);
    return FALSE;
  }
  return TRUE;
}

gboolean
sandbox_lock(SandboxMode mode, const SandboxOwner *qemu, GError **error)
{
  if (mode == SANDBOX_OFF)
    return TRUE;

  /* API level 3: the kernel has SECCOMP_RET_KILL_PROCESS and SECCOMP_RET_LOG */
  gboolean modern = seccomp_api_get() >= 3;
  uint32_t default_action;
  if (mode == SANDBOX_LOG) {
    if (!modern) {
      g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                          "--sandbox log needs a kernel with SECCOMP_RET_LOG (Linux 4.14)");
      return FALSE;
    }
    default_action = SCMP_ACT_LOG;
  } else {
    default_action = modern ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_TRAP;
  }

  scmp_filter_ctx ctx = seccomp_init(default_action);
  if (ctx == NULL) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot create a seccomp filter");
    return FALSE;
  }
  /* every thread, also one a library started before us, gets the filter */
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  for (gsize i = 0; rc == 0 && i < G_N_ELEMENTS(allowed_syscalls); i++) {
    if (!add_rule(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0, NULL, error)) {
      seccomp_release(ctx);
      return FALSE;
    }
  }
  if (rc == 0 && (!add_argument_rules(ctx, error) || !add_ownership_rules(ctx, qemu, error))) {
    seccomp_release(ctx);
    return FALSE;
  }
  if (rc == 0)
    rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc != 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                "cannot load the seccomp filter: %s", g_strerror(-rc));
    return FALSE;
  }
  if (!sandbox_filter_is_active(error))
    return FALSE;
  g_message("sandbox: seccomp allowlist loaded; other syscalls %s",
            mode == SANDBOX_LOG ? "are logged (--sandbox log)" : "kill hostdevd");
  return TRUE;
}
