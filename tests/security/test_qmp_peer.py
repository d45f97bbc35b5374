#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Who listens on --qmp is checked before hostdevd hands it anything.

Whoever serves the QMP socket would get /dev/vfio/N chowned to its uid, USB
descriptors and a memlock raise.  A process of another user listening there
(here the scripted QMP peer, run as uid 65534) is refused, with a log line
naming its uid and pid, before a byte of it is read; the same process is
accepted once hostdevd is told QEMU runs as that user (--qemu-user).
"""
import json
import os
import pwd
import socket
import subprocess
import sys

sys.path.insert(0, os.environ.get("HOSTDEVD_QEMU_TESTS",
                                  os.path.join(os.path.dirname(__file__), "..", "qemu")))
import struct  # noqa: E402
import threading  # noqa: E402
import unittest  # noqa: E402

from harness import SANDBOX, HostdevdTestCase, main, wait_for  # noqa: E402

FAKE_QEMU = os.path.join(os.environ.get("HOSTDEVD_QEMU_TESTS",
                                        os.path.join(os.path.dirname(__file__), "..", "qemu")),
                         "fake_qemu.py")
NOBODY = pwd.getpwnam("nobody")
# the peer runs as nobody, who may not reach an interpreter under root's home
PEER_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def qmp(socket_path, command, **arguments):
    """One command on a fresh connection to the scripted peer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(socket_path)
        reader = s.makefile("r")
        reader.readline()   # greeting
        for message in ({"execute": "qmp_capabilities"},
                        {"execute": command, "arguments": arguments}):
            s.sendall(json.dumps(message).encode() + b"\n")
            reply = json.loads(reader.readline())
        return reply["return"]


class QmpPeer(HostdevdTestCase):

    def setUp(self):
        if os.getuid() != 0:
            self.skipTest("needs root: the peer runs as another user")
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="hostdevd-test-")
        self.processes = []
        self.addCleanup(self._cleanup)
        os.chmod(self.tmp, 0o711)
        qmp_dir = os.path.join(self.tmp, "qmp")
        os.mkdir(qmp_dir)
        os.chown(qmp_dir, NOBODY.pw_uid, NOBODY.pw_gid)
        self.qmp_path = os.path.join(qmp_dir, "qmp.sock")
        self.peer = self.spawn([PEER_PYTHON, FAKE_QEMU, self.qmp_path],
                               user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[],
                               stdin=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.qmp_path), 60, "the peer's QMP socket")

    def test_unexpected_uid_is_refused(self):
        daemon = self.start_hostdevd(wait=False)
        daemon.wait(timeout=60)
        self.assertNotEqual(daemon.returncode, 0, self.log())
        self.assertIn(f"refusing the QMP peer at {self.qmp_path}: the process listening "
                      f"there (pid {self.peer.pid}) is uid {NOBODY.pw_uid}, but QEMU is "
                      f"expected to run as root", self.log())
        self.assertIn("--qemu-user USER", self.log())
        self.assertNotIn("connected to QEMU", self.log())
        # nothing was handed over: no descriptor, no device (the peer's own USB controller
        # "usb" is all it has)
        self.assertEqual(qmp(self.qmp_path, "query-fdsets"), [])
        self.assertEqual([e["name"] for e in qmp(self.qmp_path, "qom-list",
                                                 path="/machine/peripheral")
                          if e["type"].startswith("child<")], ["usb"])

    def test_other_qemu_user_is_refused(self):
        daemon = self.start_hostdevd(extra=("--qemu-user", "root"), wait=False)
        daemon.wait(timeout=60)
        self.assertNotEqual(daemon.returncode, 0, self.log())
        self.assertIn(f"is uid {NOBODY.pw_uid}, but QEMU is expected to run as uid 0 "
                      "(--qemu-user root) or root", self.log())

    def test_expected_qemu_user_is_accepted(self):
        self.daemon = self.start_hostdevd(extra=("--qemu-user", "nobody"))
        self.assertIn("connected to QEMU", self.log())
        self.assertIsNone(self.daemon.poll())



def status_fields(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)


@unittest.skipUnless(SANDBOX == "on", "the sandbox is off in this build (HOSTDEVD_TEST_SANDBOX)")
class SandboxedBeforeQemuSpeaks(HostdevdTestCase):
    """QEMU's first byte is read only once hostdevd has dropped its privileges and
    loaded its seccomp filter: the peer looks at hostdevd before it says anything."""

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="hostdevd-test-")
        self.processes = []
        self.addCleanup(self._cleanup)
        self.qmp_path = os.path.join(self.tmp, "qmp.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.qmp_path)
        self.server.listen(1)
        self.addCleanup(self.server.close)
        self.seen = {}
        self.thread = threading.Thread(target=self.peer, daemon=True)
        self.thread.start()

    def peer(self):
        conn, _ = self.server.accept()
        with conn:
            pid, _, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize("3i")))
            try:
                wait_for(lambda: status_fields(pid).get("Seccomp", "").strip() == "2", 60,
                         "hostdevd's seccomp filter")
            except (TimeoutError, OSError):
                pass    # hostdevd never got there, or is gone: the test says what it saw
            try:
                self.seen = status_fields(pid)
            except OSError:
                pass
            # say nothing: hostdevd gives up on this QEMU

    def test_qemu_is_read_only_under_the_sandbox(self):
        daemon = self.start_hostdevd(wait=False)
        self.thread.join(timeout=120)   # beyond the peer's own bounded wait
        daemon.wait(timeout=60)
        self.assertEqual(self.seen.get("Seccomp", "").strip(), "2", f"{self.seen}\n{self.log()}")
        effective = int(self.seen["CapEff"], 16)
        for name, bit in (("CAP_DAC_OVERRIDE", 1), ("CAP_SYS_ADMIN", 21)):
            self.assertFalse(effective >> bit & 1, f"{name} still effective: {self.seen['CapEff']}")

if __name__ == "__main__":
    main()
