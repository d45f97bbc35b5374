#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A real hostdevd beside a real QEMU, with --sandbox on: what /proc says about it."""
import os
import sys

sys.path.insert(0, os.environ.get("HOSTDEVD_QEMU_TESTS",
                                  os.path.join(os.path.dirname(__file__), "..", "qemu")))
from harness import HostdevdTestCase, main  # noqa: E402

# Capability numbers (linux/capability.h)
CAP_CHOWN, CAP_FOWNER, CAP_NET_ADMIN, CAP_SYS_RESOURCE, CAP_AUDIT_WRITE = 0, 3, 12, 24, 29
KEPT = ((1 << CAP_CHOWN) | (1 << CAP_FOWNER) | (1 << CAP_NET_ADMIN) | (1 << CAP_SYS_RESOURCE)
        | (1 << CAP_AUDIT_WRITE))


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def built_with_asan():
    with open(os.environ.get("HOSTDEVD", "hostdevd"), "rb") as f:
        return b"__asan_init" in f.read()


def expected_capabilities():
    """What hostdevd keeps of what it was started with (a container may lack some)."""
    return KEPT & int(proc_status("self")["CapPrm"], 16)


class SandboxOn(HostdevdTestCase):

    def start_hostdevd(self, extra=(), wait=True):
        process = super().start_hostdevd(extra=("--sandbox", "on", *extra), wait=wait)
        if wait:
            # the sandbox is in place before READY; the socket exists a moment earlier
            self.control().execute("query-version")
        return process

    def status(self):
        return proc_status(self.daemon.pid)

    def test_seccomp_filter_active(self):
        status = self.status()
        self.assertEqual(status["Seccomp"], "2", status)
        self.assertEqual(status["NoNewPrivs"], "1")

    def test_capabilities(self):
        status = self.status()
        if os.geteuid() != 0:
            self.assertEqual(int(status["CapEff"], 16), 0)
            return
        self.assertNotEqual(expected_capabilities(), 0, "the test runs without CAP_CHOWN")
        self.assertEqual(int(status["CapEff"], 16), expected_capabilities(), status["CapEff"])
        self.assertEqual(int(status["CapPrm"], 16), expected_capabilities())
        self.assertEqual(int(status["CapInh"], 16), 0)
        self.assertEqual(int(status["CapBnd"], 16), 0)
        self.assertEqual(int(status["CapAmb"], 16), 0)

    def test_every_thread_sandboxed(self):
        """Capabilities and filters are per thread: check each one."""
        self.control().execute("list-devices")
        for tid in os.listdir(f"/proc/{self.daemon.pid}/task"):
            status = proc_status(f"{self.daemon.pid}/task/{tid}")
            self.assertEqual(status["Seccomp"], "2", f"thread {tid}")
            if os.geteuid() == 0:
                self.assertEqual(int(status["CapEff"], 16), expected_capabilities(),
                                 f"thread {tid}")
                self.assertEqual(int(status["CapBnd"], 16), 0, f"thread {tid}")

    def test_not_dumpable(self):
        # a non-dumpable process's /proc/PID files belong to root, whoever runs it
        st = os.stat(f"/proc/{self.daemon.pid}/mem")
        self.assertEqual(st.st_uid, 0)
        self.assertIn("sandbox: seccomp allowlist loaded", self.log())

    def test_serves_and_exits_cleanly(self):
        """The steady state works under the filter: requests, events, QEMU's exit."""
        client = self.control()
        self.assertEqual(client.execute("list-devices"), {"return": [], "id": 1})
        self.assertIn("error", client.execute("attach-device", {"xml": "<hostdev/>"}))
        self.assertIn("xml", client.execute("dumpxml")["return"])
        self.qmp.command("quit")
        status = self.daemon.wait(timeout=60)
        if built_with_asan():
            # LeakSanitizer's exit-time check needs ptrace, which the filter
            # forbids: under ASan the sandboxed daemon ends with SIGSYS there
            self.assertIn(status, (0, -31), self.log())
            self.assertIn("giving every device back", self.log())
        else:
            self.assertEqual(status, 0, self.log())


class SandboxModes(HostdevdTestCase):
    """--sandbox log and off, and a bad mode."""

    def setUp(self):
        self.skip_daemon = True
        super().setUp()

    def start_hostdevd(self, extra=(), wait=True):
        if getattr(self, "skip_daemon", False):
            self.skip_daemon = False
            return None
        return super().start_hostdevd(extra=extra, wait=wait)

    def test_log_mode(self):
        daemon = self.start_hostdevd(extra=("--sandbox", "log"))
        self.control().execute("query-version")
        status = proc_status(daemon.pid)
        self.assertEqual(status["Seccomp"], "2")
        self.assertIn("are logged", self.log())

    def test_off_mode(self):
        daemon = self.start_hostdevd(extra=("--sandbox", "off"))
        self.control().execute("query-version")
        self.assertEqual(proc_status(daemon.pid)["Seccomp"], "0")

    def test_bad_mode(self):
        daemon = self.start_hostdevd(extra=("--sandbox", "maybe"), wait=False)
        self.assertEqual(daemon.wait(timeout=60), 2)
        self.assertIn("--sandbox must be on, log or off", self.log())


if __name__ == "__main__":
    main()
