/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * try-syscalls.c - apply hostdevd's real sandbox and try what it forbids
 *
 * Each case runs in a fresh child that goes through the same stages as
 * hostdevd (sandbox_drop_privileges, sandbox_lock) and then makes one
 * syscall.  A forbidden one must kill the child with SIGSYS; an allowed one
 * must return.  Arguments are harmless (NULL pointers, bad descriptors), so
 * even a filter that let a call through could not do damage here.
 *
 * TAP output, one line per case.
 */
#include "sandbox.h"
#include "usb-uevent.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

typedef long (*TryFunc)(void);

typedef struct {
  const char *name;
  TryFunc try;
} Case;

static long try_execve(void) { return syscall(SYS_execve, "/bin/true", NULL, NULL); }
static long try_execveat(void) { return syscall(SYS_execveat, -1, "/bin/true", NULL, NULL, 0); }
static long try_ptrace(void) { return syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, NULL, NULL); }
static long try_mount(void) { return syscall(SYS_mount, NULL, NULL, NULL, 0, NULL); }
static long try_umount2(void) { return syscall(SYS_umount2, "/nonexistent", 0); }
static long try_socket_inet(void) { return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0); }
static long try_socket_inet6(void) { return syscall(SYS_socket, AF_INET6, SOCK_DGRAM, 0); }
static long try_socket_packet(void) { return syscall(SYS_socket, AF_PACKET, SOCK_RAW, 0); }
static long try_init_module(void) { return syscall(SYS_init_module, NULL, 0, ""); }
static long try_finit_module(void) { return syscall(SYS_finit_module, -1, "", 0); }
static long try_delete_module(void) { return syscall(SYS_delete_module, "nonexistent", 0); }
static long try_kexec_load(void) { return syscall(SYS_kexec_load, 0, 0, NULL, 0); }
static long try_kexec_file_load(void) { return syscall(SYS_kexec_file_load, -1, -1, 0, "", 0); }
static long try_reboot(void) { return syscall(SYS_reboot, 0, 0, 0, NULL); }
static long try_fork(void) { return syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0); }
static long try_vfork_clone(void) { return syscall(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, NULL, NULL, 0); }
static long try_unshare(void) { return syscall(SYS_unshare, CLONE_NEWNS); }
static long try_setns(void) { return syscall(SYS_setns, -1, 0); }
static long try_chroot(void) { return syscall(SYS_chroot, "/nonexistent"); }
static long try_pivot_root(void) { return syscall(SYS_pivot_root, "/a", "/b"); }
static long try_setuid(void) { return syscall(SYS_setuid, 0); }
static long try_setgid(void) { return syscall(SYS_setgid, 0); }
static long try_capset(void) { return syscall(SYS_capset, NULL, NULL); }
static long try_bpf(void) { return syscall(SYS_bpf, 0, NULL, 0); }
static long try_perf_event_open(void) { return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); }
static long try_keyctl(void) { return syscall(SYS_keyctl, 0, 0, 0, 0, 0); }
static long try_add_key(void) { return syscall(SYS_add_key, NULL, NULL, NULL, 0, 0); }
static long try_userfaultfd(void) { return syscall(SYS_userfaultfd, 0); }
static long try_io_uring_setup(void) { return syscall(SYS_io_uring_setup, 1, NULL); }
static long try_process_vm_readv(void) { return syscall(SYS_process_vm_readv, 1, NULL, 0, NULL, 0, 0); }
static long try_process_vm_writev(void) { return syscall(SYS_process_vm_writev, 1, NULL, 0, NULL, 0, 0); }
static long try_open_by_handle_at(void) { return syscall(SYS_open_by_handle_at, -1, NULL, 0); }
static long try_mknod(void) { return syscall(SYS_mknodat, AT_FDCWD, "/nonexistent/x", 0, 0); }
static long try_swapon(void) { return syscall(SYS_swapon, "/nonexistent", 0); }
static long try_acct(void) { return syscall(SYS_acct, NULL); }
static long try_personality(void) { return syscall(SYS_personality, 0xffffffff); }
static long try_iopl(void) { return syscall(SYS_iopl, 0); }
static long try_kill_other(void) { return syscall(SYS_kill, 1, SIGTERM); }
static long try_tgkill_other(void) { return syscall(SYS_tgkill, 1, 1, SIGTERM); }
static long try_prctl_dumpable(void) { return syscall(SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0); }
static long try_ioctl_tiocsti(void) { char c = 'x'; return syscall(SYS_ioctl, -1, TIOCSTI, &c); }
static long try_prlimit_nofile(void)
{
  struct rlimit limit = { 1, 1 };
  return syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &limit, NULL);
}
static long try_link(void) { return syscall(SYS_linkat, AT_FDCWD, "/nonexistent/a", AT_FDCWD, "/nonexistent/b", 0); }
static long try_symlink(void) { return syscall(SYS_symlinkat, "/etc/shadow", AT_FDCWD, "/nonexistent/b"); }
static long try_setsid(void) { return syscall(SYS_setsid); }
static long try_sched_setaffinity(void) { return syscall(SYS_sched_setaffinity, 1, 0, NULL); }
static long try_mlockall(void) { return syscall(SYS_mlockall, 0); }

/* The sandbox is locked with this as QEMU's user: chown may give to it or to root only. */
static const SandboxOwner qemu_user = { 4242, 4343, 4444, 4545 };
/* A path that does not exist: an allowed call fails with ENOENT and changes nothing. */
#define NOWHERE "/nonexistent/hostdevd-probe"
static long try_chown_to_other_user(void) { return syscall(SYS_chown, NOWHERE, 1000, 4343); }
static long try_chown_to_other_group(void) { return syscall(SYS_chown, NOWHERE, 4242, 6); /* disk */ }
static long try_fchownat_to_other_user(void) { return syscall(SYS_fchownat, AT_FDCWD, NOWHERE, 1000, -1, 0); }
static long try_fchown_to_other_user(void) { return syscall(SYS_fchown, -1, 1000, -1); }
static long try_lchown_to_other_user(void) { return syscall(SYS_lchown, NOWHERE, 1000, -1); }
static long try_chmod_setuid(void) { return syscall(SYS_chmod, NOWHERE, 04777); }
static long try_fchmodat_setgid(void) { return syscall(SYS_fchmodat, AT_FDCWD, NOWHERE, 02755); }
static long try_fchmod_sticky(void) { return syscall(SYS_fchmod, -1, 01777); }

/* Must pass the filter (the daemon's steady state depends on them). */
static long enoent(long rc) { return rc == -1 && errno == ENOENT ? 0 : -1; }
static long try_chown_to_qemu(void) { return enoent(syscall(SYS_chown, NOWHERE, 4242, 4343)); }
static long try_fchownat_to_qemu(void) { return enoent(syscall(SYS_fchownat, AT_FDCWD, NOWHERE, 4242, 4343, 0)); }
static long try_chown_back_to_root(void) { return enoent(syscall(SYS_chown, NOWHERE, 0, 0)); }
static long try_chown_back_to_vfio_group(void) { return enoent(syscall(SYS_chown, NOWHERE, 0, 4444)); }
static long try_chown_to_socket_group(void) { return enoent(syscall(SYS_chown, NOWHERE, -1, 4545)); }
static long try_chown_group_only(void) { return enoent(syscall(SYS_fchownat, AT_FDCWD, NOWHERE, -1, 4343, 0)); }
static long try_chmod_0600(void) { return enoent(syscall(SYS_chmod, NOWHERE, 0600)); }
static long try_fchmodat_0660(void) { return enoent(syscall(SYS_fchmodat, AT_FDCWD, NOWHERE, 0660)); }
static long try_getpid(void) { return syscall(SYS_getpid) > 0 ? 0 : -1; }
static long try_socket_unix(void) { long fd = syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); return fd >= 0 ? close((int)fd) : -1; }
static long try_socket_netlink(void) { long fd = syscall(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0 /* NETLINK_ROUTE */); return fd >= 0 ? close((int)fd) : -1; }
static long try_kill_probe(void) { return syscall(SYS_kill, getpid(), 0); }
static void on_uevent(const UsbUevent *event, gpointer data) { }
/* The USB uevent watcher (not wired into hostdevd yet) opened, polled and
 * closed after the lock: what its integration may need stays allowed. */
static long try_usb_uevent_watch(void)
{
  UsbUeventWatch *watch = usb_uevent_watch_new(on_uevent, NULL, NULL);
  if (watch == NULL)
    return -1;
  g_main_context_iteration(NULL, FALSE);
  usb_uevent_watch_free(watch);
  return 0;
}
static long try_ioctl_fionread(void) { int n; int fds[2]; if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) return -1; return ioctl(fds[0], FIONREAD, &n); }
static long try_prlimit_memlock(void)
{
  struct rlimit limit;
  if (syscall(SYS_prlimit64, 0, RLIMIT_MEMLOCK, NULL, &limit) != 0)
    return -1;
  return syscall(SYS_prlimit64, 0, RLIMIT_MEMLOCK, &limit, NULL);
}
static long try_open_read(void)
{
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  char buffer[64];
  if (fd < 0 || read(fd, buffer, sizeof buffer) <= 0)
    return -1;
  return close(fd);
}
/* clone3 must fail with ENOSYS so glibc falls back to clone */
static long try_clone3_enosys(void)
{
  long rc = syscall(SYS_clone3, NULL, 0);
  return rc == -1 && errno == ENOSYS ? 0 : -1;
}
static void *thread_main(void *data) { return data; }
static long try_thread(void)
{
  GThread *thread = g_thread_try_new("probe", thread_main, GINT_TO_POINTER(7), NULL);
  return thread && g_thread_join(thread) == GINT_TO_POINTER(7) ? 0 : -1;
}

static const Case forbidden[] = {
#define C(name) { #name, try_##name }
  C(execve), C(execveat), C(ptrace), C(mount), C(umount2), C(socket_inet), C(socket_inet6),
  C(socket_packet), C(init_module), C(finit_module), C(delete_module), C(kexec_load),
  C(kexec_file_load), C(reboot), C(fork), C(vfork_clone), C(unshare), C(setns), C(chroot),
  C(pivot_root), C(setuid), C(setgid), C(capset), C(bpf), C(perf_event_open), C(keyctl),
  C(add_key), C(userfaultfd), C(io_uring_setup), C(process_vm_readv), C(process_vm_writev),
  C(open_by_handle_at), C(mknod), C(swapon), C(acct), C(personality), C(iopl),
  C(kill_other), C(tgkill_other), C(prctl_dumpable), C(ioctl_tiocsti), C(prlimit_nofile),
  C(link), C(symlink), C(setsid), C(sched_setaffinity), C(mlockall),
  C(chown_to_other_user), C(chown_to_other_group), C(fchownat_to_other_user),
  C(fchown_to_other_user), C(lchown_to_other_user), C(chmod_setuid), C(fchmodat_setgid),
  C(fchmod_sticky),
};

static const Case allowed[] = {
  C(getpid), C(socket_unix), C(socket_netlink), C(kill_probe), C(ioctl_fionread),
  C(prlimit_memlock), C(open_read), C(clone3_enosys), C(thread), C(usb_uevent_watch),
  C(chown_to_qemu), C(fchownat_to_qemu), C(chown_back_to_root), C(chown_back_to_vfio_group),
  C(chown_to_socket_group), C(chown_group_only), C(chmod_0600), C(fchmodat_0660),
#undef C
};

/* Return: the child's wait status after it applied @mode and ran @try. */
static int
run_sandboxed(SandboxMode mode, TryFunc try)
{
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    g_autoptr(GError) error = NULL;
    if (!sandbox_drop_privileges(mode, &error) || !sandbox_lock(mode, &qemu_user, &error)) {
      fprintf(stderr, "sandbox: %s\n", error->message);
      _exit(100);
    }
    /* _exit: no atexit handlers (LeakSanitizer's would need ptrace) */
    _exit(try() == 0 ? 0 : 101);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return status;
}

/* Only warnings and worse: every child logs its sandbox stages. */
static GLogWriterOutput
quiet_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  if (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG))
    return G_LOG_WRITER_HANDLED;
  return g_log_writer_standard_streams(level, fields, n_fields, data);
}

static const char *
describe(int status)
{
  static char text[64];
  if (WIFSIGNALED(status))
    g_snprintf(text, sizeof text, "killed by signal %d", WTERMSIG(status));
  else
    g_snprintf(text, sizeof text, "exited %d", WEXITSTATUS(status));
  return text;
}

int
main(void)
{
  guint n = 0;
  gboolean ok = TRUE;
  g_log_set_writer_func(quiet_writer, NULL, NULL);
  printf("1..%zu\n", G_N_ELEMENTS(forbidden) + G_N_ELEMENTS(allowed) + 3);

  for (gsize i = 0; i < G_N_ELEMENTS(forbidden); i++) {
    int status = run_sandboxed(SANDBOX_ON, forbidden[i].try);
    gboolean killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
    ok &= killed;
    printf("%s %u - %s is stopped (%s)\n", killed ? "ok" : "not ok", ++n, forbidden[i].name,
           describe(status));
  }
  for (gsize i = 0; i < G_N_ELEMENTS(allowed); i++) {
    int status = run_sandboxed(SANDBOX_ON, allowed[i].try);
    gboolean passed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    ok &= passed;
    printf("%s %u - %s is allowed (%s)\n", passed ? "ok" : "not ok", ++n, allowed[i].name,
           describe(status));
  }

  /* --sandbox log: a forbidden syscall is logged, not fatal */
  int status = run_sandboxed(SANDBOX_LOG, try_setsid);
  gboolean logged = WIFEXITED(status);
  ok &= logged;
  printf("%s %u - log mode lets setsid through (%s)\n", logged ? "ok" : "not ok", ++n,
         describe(status));

  /* --sandbox off: nothing applied */
  status = run_sandboxed(SANDBOX_OFF, try_setsid);
  ok &= WIFEXITED(status);
  printf("%s %u - off mode applies nothing (%s)\n", WIFEXITED(status) ? "ok" : "not ok", ++n,
         describe(status));

  /* without a filter, the start-up check must refuse */
  g_autoptr(GError) error = NULL;
  gboolean refused = !sandbox_filter_is_active(&error) && error != NULL;
  ok &= refused;
  printf("%s %u - the start-up check notices a missing filter (%s)\n",
         refused ? "ok" : "not ok", ++n, error ? error->message : "no error");
  return ok ? 0 : 1;
}
