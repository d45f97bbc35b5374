#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Client authorisation on the control socket, with real peers of other uids.

Each peer is a forked child that drops to another uid/gid before it
connects, so hostdevd sees that uid through SO_PEERCRED.  The policy gives
the control socket to the group 'nogroup' so such peers can reach it at all.
"""
import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.environ.get("HOSTDEVD_QEMU_TESTS",
                                  os.path.join(os.path.dirname(__file__), "..", "qemu")))
from harness import HostdevdTestCase, main  # noqa: E402

SOCKET_GID = 65534          # nogroup
READER_UID = 65534          # nobody: read-only-users
ADMIN_UID = 65532           # full-access-users
STRANGER_UID = 65533        # in the socket's group, but in no rule
GROUP_READER_GID = 65531    # read-only-groups

USB_OPTIONAL = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
                "<vendor id='0x1d6b'/><product id='0x0104'/></source>"
                "<alias name='ua-authtest'/></hostdev>")

POLICY = f"""# test policy
[defaults]
full-access-users={ADMIN_UID}
read-only-users={READER_UID}
read-only-groups={GROUP_READER_GID}
socket-group={SOCKET_GID}
"""


def as_peer(path, uid, gid, requests, groups=()):
    """Connect as uid/gid from a forked child; return (greeting or error, replies)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            result = {"uid": os.getuid()}
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(20)
                sock.connect(path)
                f = sock.makefile("rwb")
                result["first"] = json.loads(f.readline() or "null")
                result["replies"] = []
                for request in requests:
                    f.write(json.dumps(request).encode() + b"\n")
                    f.flush()
                    while True:
                        line = f.readline()
                        reply = json.loads(line) if line else None
                        if reply is None or "event" not in reply:
                            break
                    result["replies"].append(reply)
                result["eof"] = f.readline() == b""
            except OSError as e:
                result["oserror"] = e.errno
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(data)


def hold_connections(path, uid, gid, count, groups=()):
    """Open @count connections as uid/gid from a forked child that keeps them open.
    Return: (pid, release pipe, [first line of each]): write to the pipe to let go."""
    ready_read, ready_write = os.pipe()
    release_read, release_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_read)
            os.close(release_write)
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            firsts, socks = [], []
            for _ in range(count):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(20)
                sock.connect(path)
                socks.append(sock)
                firsts.append(json.loads(sock.makefile("rb").readline() or "null"))
            os.write(ready_write, json.dumps(firsts).encode())
            os.close(ready_write)
            os.read(release_read, 1)
        finally:
            os._exit(0)
    os.close(ready_write)
    os.close(release_read)
    data = b""
    while chunk := os.read(ready_read, 65536):
        data += chunk
    os.close(ready_read)
    return pid, release_write, json.loads(data)


@unittest.skipUnless(os.geteuid() == 0, "switching uid needs root")
class ClientAuthorisation(HostdevdTestCase):

    def start_hostdevd(self, extra=(), wait=True):
        self.policy_path = os.path.join(self.tmp, "policy.conf")
        with open(self.policy_path, "w") as f:
            f.write(POLICY)
        os.chmod(self.policy_path, 0o644)
        # other uids must be able to reach the socket inside the test directory
        os.chmod(self.tmp, 0o711)
        process = super().start_hostdevd(extra=("--policy", self.policy_path, *extra), wait=wait)
        if wait:
            self.control().execute("query-version")   # sandbox and group set: serving
        return process

    def test_socket_mode_and_group(self):
        st = os.stat(self.socket_path)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        self.assertEqual(st.st_gid, SOCKET_GID)
        self.assertEqual(st.st_uid, 0)

    def test_other_uid_refused(self):
        before = self.qmp.peripherals()
        result = as_peer(self.socket_path, STRANGER_UID, SOCKET_GID, [])
        self.assertEqual(result["uid"], STRANGER_UID)
        error = result["first"]["error"]
        self.assertEqual(error["class"], "PolicyDenied")
        self.assertIn(f"uid {STRANGER_UID} may not use the control socket", error["desc"])
        self.assertIn(self.policy_path, error["desc"])
        # nothing more is read from a refused peer: the connection is closed
        self.assertTrue(result["eof"], result)
        self.assertIn(f"control client uid {STRANGER_UID} refused", self.log())
        self.assertEqual(self.qmp.peripherals(), before)

    def test_outside_socket_group_cannot_connect(self):
        result = as_peer(self.socket_path, STRANGER_UID, STRANGER_UID, [])
        self.assertEqual(result.get("oserror"), 13, result)   # EACCES: mode 0660

    def test_read_only_client(self):
        before = self.qmp.peripherals()
        result = as_peer(self.socket_path, READER_UID, SOCKET_GID, [
            {"execute": "list-devices", "id": 1},
            {"execute": "query-version", "id": 2},
            {"execute": "dumpxml", "id": 3},
            {"execute": "attach-device", "arguments": {"xml": USB_OPTIONAL}, "id": 4},
            {"execute": "attach-device", "arguments": {"xml": USB_OPTIONAL, "dry-run": True},
             "id": 5},
            {"execute": "detach-device", "arguments": {"alias": "ua-authtest"}, "id": 6},
        ])
        self.assertIn("hostdevd", result["first"])
        replies = result["replies"]
        self.assertEqual(replies[0], {"return": [], "id": 1})
        self.assertIn("return", replies[1])
        self.assertIn("return", replies[2])
        for reply, command in zip(replies[3:], ["attach-device", "attach-device",
                                                "detach-device"]):
            self.assertEqual(reply["error"]["class"], "PolicyDenied", reply)
            self.assertIn(f"'{command}' needs full access, but uid {READER_UID} may only read",
                          reply["error"]["desc"])
            self.assertIn("read-only-users", reply["error"]["desc"])
        self.assertEqual(self.qmp.peripherals(), before)

    def test_read_only_by_group(self):
        result = as_peer(self.socket_path, STRANGER_UID, GROUP_READER_GID,
                         [{"execute": "list-devices", "id": 1},
                          {"execute": "attach-device", "arguments": {"xml": USB_OPTIONAL},
                           "id": 2}],
                         groups=[SOCKET_GID])
        self.assertEqual(result["replies"][0], {"return": [], "id": 1})
        self.assertEqual(result["replies"][1]["error"]["class"], "PolicyDenied")
        self.assertIn("read-only-groups", result["replies"][1]["error"]["desc"])

    def test_full_access_client(self):
        before = self.qmp.peripherals()
        result = as_peer(self.socket_path, ADMIN_UID, SOCKET_GID, [
            {"execute": "attach-device", "arguments": {"xml": USB_OPTIONAL}, "id": 1},
            {"execute": "detach-device", "arguments": {"alias": "ua-authtest"}, "id": 2},
        ])
        self.assertIn("return", result["replies"][0], result)
        self.assertEqual(result["replies"][0]["return"]["alias"], "ua-authtest", result)
        self.assertEqual(result["replies"][1]["return"]["status"], "detached", result)
        self.assertEqual(self.qmp.peripherals(), before)

    def test_read_only_users_cannot_lock_out_the_others(self):
        """Two read-only users with 16 idle connections each fill the read-only share:
        a third read-only connection is refused, a full-access user and root still get in."""
        holders = []
        try:
            for uid, gid, groups in ((READER_UID, SOCKET_GID, ()),
                                     (STRANGER_UID, GROUP_READER_GID, (SOCKET_GID,))):
                pid, release, firsts = hold_connections(self.socket_path, uid, gid, 16, groups)
                holders.append((pid, release))
                self.assertTrue(all("hostdevd" in first for first in firsts), firsts)
            # a third read-only user (by group), well under its own per-user limit
            refused = as_peer(self.socket_path, 65530, GROUP_READER_GID, [],
                              groups=[SOCKET_GID])
            self.assertEqual(refused["first"]["error"]["class"], "Busy", refused)
            self.assertIn("read-only users together", refused["first"]["error"]["desc"])
            admin = as_peer(self.socket_path, ADMIN_UID, SOCKET_GID,
                            [{"execute": "list-devices", "id": 1}])
            self.assertEqual(admin["replies"][0], {"return": [], "id": 1}, admin)
            self.assertIn("return", self.control().execute("list-devices"))
        finally:
            for pid, release in holders:
                os.write(release, b"x")
                os.close(release)
                os.waitpid(pid, 0)

    def test_root_always_full(self):
        reply = self.control().execute("attach-device",
                                       {"xml": USB_OPTIONAL, "dry-run": True})
        self.assertIn("commands", reply["return"])


@unittest.skipUnless(os.geteuid() == 0, "a policy file owned by another user needs root")
class PolicyFileChecks(HostdevdTestCase):
    """A bad policy file stops hostdevd before it serves anyone."""

    def setUp(self):
        self.started = False
        super().setUp()

    def start_hostdevd(self, extra=(), wait=True):
        if not self.started:
            self.started = True
            return None
        return super().start_hostdevd(extra=extra, wait=wait)

    def run_with_policy(self, text, mode=0o644, owner=0):
        path = os.path.join(self.tmp, "policy.conf")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        os.chown(path, owner, -1)
        daemon = self.start_hostdevd(extra=("--policy", path), wait=False)
        self.assertEqual(daemon.wait(timeout=60), 1)
        self.assertFalse(os.path.exists(self.socket_path))
        return self.log()

    def test_unknown_key(self):
        log = self.run_with_policy("[defaults]\nallow-pci-id=10de:*\n")
        self.assertIn("key 'allow-pci-id': unknown key", log)

    def test_world_writable(self):
        log = self.run_with_policy("[defaults]\n", mode=0o666)
        self.assertIn("must belong to root and not be writable by group or others", log)

    def test_owned_by_another_user(self):
        log = self.run_with_policy("[defaults]\n", owner=65534)
        self.assertIn("uid 65534", log)

    def test_unknown_user(self):
        log = self.run_with_policy("[vm testvm]\nread-only-users=no-such-user-xyz\n")
        self.assertIn("[vm testvm]", log)
        self.assertIn("'no-such-user-xyz' is not a user of this host", log)

    def test_missing_file(self):
        daemon = self.start_hostdevd(extra=("--policy", "/nonexistent/policy.conf"), wait=False)
        self.assertEqual(daemon.wait(timeout=60), 1)
        self.assertIn("cannot open policy file /nonexistent/policy.conf", self.log())


if __name__ == "__main__":
    main()
