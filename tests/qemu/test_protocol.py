#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The control protocol describes itself, README.md agrees, and metrics count real work.

Real QEMU, real hostdevd.  query-commands is held against README.md's
protocol and event tables, and against what hostdevd does (a read command
takes no argument, the unknown-command error lists every command).  The
metrics are read after a real attach/detach cycle of a USB device
(startupPolicy='optional', so no host device is needed), and checked
against QEMU's own view of the same cycle.

The audit trail is read back from a journald socket: hostdevd runs in a
mount namespace where the test's directory is /run, so its records reach
/run/systemd/journal/socket (journald's native protocol), which the test
holds.
"""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import unittest

from harness import HostdevdTestCase, main

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")

USB = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
       "<vendor id='0x1d6b'/><product id='0x0104'/></source></hostdev>")


def readme_table(heading_cells):
    """The rows of the README table whose header row is @heading_cells, as lists of cells."""
    with open(README) as f:
        lines = f.read().splitlines()
    header = "| " + " | ".join(heading_cells) + " |"
    start = lines.index(header)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(cells)
    return rows


def ticked(cell):
    return re.findall(r"`([^`]+)`", cell)


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\S+)', line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


class Protocol(HostdevdTestCase):

    def describe(self):
        reply = self.control().execute("query-commands")
        self.assertIn("return", reply, reply)
        return reply["return"]

    def test_readme_protocol_table_is_query_commands(self):
        described = {c["name"]: c for c in self.describe()["commands"]}
        rows = readme_table(["command", "access", "arguments", "returns"])
        documented = {ticked(row[0])[0]: row for row in rows}
        self.assertEqual(sorted(documented), sorted(described),
                         "README.md's protocol table and query-commands list different commands")
        for name, row in documented.items():
            command = described[name]
            self.assertEqual(row[1], command["access"], f"{name}: access")
            arguments = {a["name"]: a["presence"] for a in command["arguments"]}
            self.assertEqual(sorted(ticked(row[2])), sorted(arguments), f"{name}: arguments")
            for argument, presence in arguments.items():
                said = {"optional": f"optional `{argument}`",
                        "one-of": "one of", "required": f"`{argument}`"}[presence]
                self.assertIn(said, row[2], f"{name}: '{argument}' is {presence}")

    def test_readme_event_table_is_query_commands(self):
        described = self.describe()
        events = {e["name"]: e for e in described["events"]}
        rows = readme_table(["event", "data", "when"])
        self.assertEqual(sorted(ticked(row[0])[0] for row in rows), sorted(events))
        for row in rows:
            name = ticked(row[0])[0]
            self.assertEqual(sorted(ticked(row[1])),
                             sorted(m.strip(" ?") for m in events[name]["data"].split(",")), name)
        caused = {e for c in described["commands"] for e in c["events"]}
        self.assertEqual(caused, set(events), "every event is caused by some command")

    def test_table_drives_the_dispatcher(self):
        client = self.control()
        commands = self.describe()["commands"]
        reply = client.execute("no-such-command")
        self.assertEqual(reply["error"]["class"], "InvalidArgument")
        for command in commands:
            self.assertIn(command["name"], reply["error"]["desc"])
            if not command["arguments"]:
                self.assertIn("return", client.execute(command["name"]), command["name"])
                refused = client.execute(command["name"], {"bogus": 1})
                self.assertIn("takes no argument 'bogus'", refused["error"]["desc"])
            for argument in command["arguments"]:
                wrong = {"string": 5, "boolean": "yes", "seconds": -1}[argument["type"]]
                refused = client.execute(command["name"], {argument["name"]: wrong})
                self.assertEqual(refused["error"]["class"], "InvalidArgument",
                                 f"{command['name']} {argument['name']}={wrong!r}")
                self.assertIn(f"'{argument['name']}'", refused["error"]["desc"])

    def test_hostdevctl_commands_lists_them(self):
        output = self.ctl("commands", self.vm, check=True).stdout
        for command in self.describe()["commands"]:
            self.assertRegex(output, rf"(?m)^{re.escape(command['name'])} +{command['access']} ")

    def metrics(self):
        return parse_metrics(self.ctl("metrics", self.vm, check=True).stdout)

    def sample(self, samples, name, **labels):
        labels["vm"] = self.vm
        return samples.get((name, frozenset(labels.items())))

    def test_metrics_follow_a_real_cycle(self):
        before = self.metrics()
        self.assertEqual(self.sample(before, "hostdevd_devices", type="usb", state="attached"), 0)
        self.assertIsNone(self.sample(before, "hostdevd_requests_total",
                                      command="attach-device", result="ok"))
        self.assertGreaterEqual(self.sample(before, "hostdevd_uptime_seconds"), 0)

        xml = self.write_xml("usb.xml", USB)
        self.ctl("attach-device", self.vm, xml, check=True)
        self.assertIn("hostdev0", self.qmp.peripherals())
        self.ctl("attach-device", self.vm,
                 self.write_xml("other.xml", USB.replace("0x0104", "0x0105")), "--dry-run",
                 check=True)
        self.ctl("attach-device", self.vm, self.write_xml("bad.xml", "<hostdev"), check=False)
        attached = self.metrics()
        self.assertEqual(self.sample(attached, "hostdevd_devices", type="usb", state="attached"), 1)
        self.assertEqual(self.sample(attached, "hostdevd_devices", type="pci", state="attached"), 0)
        self.assertEqual(self.sample(attached, "hostdevd_requests_total",
                                     command="attach-device", result="ok"), 1)
        self.assertEqual(self.sample(attached, "hostdevd_requests_total",
                                     command="attach-device", result="dry-run"), 1)
        self.assertEqual(self.sample(attached, "hostdevd_requests_total",
                                     command="attach-device", result="InvalidXML"), 1)
        self.assertEqual(self.sample(attached, "hostdevd_events_total",
                                     event="DEVICE_ATTACHED"), 1)
        # the dry run is not timed; the real attach and the refused one are
        self.assertEqual(self.sample(attached, "hostdevd_request_duration_seconds_count",
                                     command="attach-device"), 2)
        self.assertEqual(self.sample(attached, "hostdevd_request_duration_seconds_bucket",
                                     command="attach-device", le="+Inf"), 2)
        self.assertGreater(self.sample(attached, "hostdevd_request_duration_seconds_sum",
                                       command="attach-device"), 0)

        self.ctl("detach-device-alias", self.vm, "hostdev0", check=True)
        self.assertNotIn("hostdev0", self.qmp.peripherals())
        detached = self.metrics()
        self.assertEqual(self.sample(detached, "hostdevd_devices", type="usb", state="attached"), 0)
        self.assertEqual(self.sample(detached, "hostdevd_pending_unplugs"), 0)
        self.assertEqual(self.sample(detached, "hostdevd_requests_total",
                                     command="detach-device", result="ok"), 1)
        self.assertEqual(self.sample(detached, "hostdevd_events_total",
                                     event="DEVICE_DETACHED"), 1)
        self.assertEqual(self.sample(detached, "hostdevd_request_duration_seconds_count",
                                     command="detach-device"), 1)
        # buckets are cumulative
        buckets = sorted((float(dict(labels)["le"]), value)
                         for (name, labels), value in detached.items()
                         if name == "hostdevd_request_duration_seconds_bucket"
                         and dict(labels)["command"] == "attach-device")
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))

    def test_metrics_text_is_well_formed(self):
        text = self.ctl("metrics", self.vm, check=True).stdout
        names = set()
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                names.add(line.split()[2])
        for (name, _), _ in parse_metrics(text).items():
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertTrue(name in names or base in names, f"{name} has no TYPE line")
        as_json = json.loads(self.ctl("--json", "metrics", self.vm, check=True).stdout)
        self.assertEqual(as_json["return"]["text"], text)


MESSAGE_IDS = {
    "attach": "76f658326c2047a184866df5d5e49b16",
    "attach-failed": "c7a325f83cf3452caa8875adf18eb976",
    "detach": "dd6a62e2b6364981b08f81aecdf3f9af",
    "detach-failed": "de6f5a5b5bb34c9199d2623d0a83740b",
    "released": "41a5631fe05d47dd9266673b117d467b",
    "release-failed": "fcec13eeddb4468caf57d9d60db663a4",
    "unplug-refused": "011fc752c4224da9ac2f243965fdfe7a",
}


def parse_journal_entry(data):
    """One datagram of journald's native protocol: KEY=value lines, or KEY, a
    64-bit little-endian length and that many bytes, for values with newlines."""
    fields = {}
    while data:
        newline = data.index(b"\n")
        line = data[:newline]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            data = data[newline + 1:]
        else:
            key = line
            size, = struct.unpack("<Q", data[newline + 1:newline + 9])
            value = data[newline + 9:newline + 9 + size]
            data = data[newline + 9 + size + 1:]
        fields[key.decode()] = value.decode()
    return fields


@unittest.skipUnless(shutil.which("unshare") and os.geteuid() == 0,
                     "needs root and unshare(1) for a mount namespace")
class AuditTrail(HostdevdTestCase):

    def start_hostdevd(self, extra=(), wait=True, env=None):
        run = os.path.join(self.tmp, "run")
        os.makedirs(os.path.join(run, "systemd", "journal"), exist_ok=True)
        self.journal_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.journal_socket.close)
        self.journal_socket.bind(os.path.join(run, "systemd", "journal", "socket"))
        self.journal_socket.setblocking(False)
        self.hostdevd_prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                'mount --bind "$0" /run && exec "$@"', run]
        return super().start_hostdevd(extra, wait, env)

    def records(self):
        entries = []
        while True:
            try:
                data = self.journal_socket.recv(1 << 20)
            except BlockingIOError:
                return entries
            entry = parse_journal_entry(data)
            if entry.get("HOSTDEVD_EVENT"):
                entries.append(entry)

    def test_readme_lists_the_stable_message_ids(self):
        rows = readme_table(["`HOSTDEVD_EVENT`", "`MESSAGE_ID`", "priority", "when"])
        self.assertEqual({ticked(row[0])[0]: ticked(row[1])[0] for row in rows}, MESSAGE_IDS)

    def test_a_cycle_leaves_one_record_per_event(self):
        xml = self.write_xml("usb.xml", USB)
        self.ctl("attach-device", self.vm, xml, check=True)
        self.ctl("attach-device", self.vm, xml, check=False)     # already attached: Busy
        self.ctl("attach-device", self.vm, xml, "--dry-run", check=False)
        self.ctl("detach-device-alias", self.vm, "hostdev0", check=True)
        self.ctl("detach-device-alias", self.vm, "hostdev0", check=False)   # gone: NotFound
        self.assertNotIn("hostdev0", self.qmp.peripherals())
        records = self.records()
        summary = [(r["HOSTDEVD_EVENT"], r["HOSTDEVD_ALIAS"], r["HOSTDEVD_RESULT"]) for r in records]
        # a detach is answered first, then recorded: its request's record comes before
        # that of the release the answer already reported
        self.assertEqual(summary, [
            ("attach", "hostdev0", "ok"),
            ("attach-failed", "", "Busy"),
            ("detach", "hostdev0", "detached"),
            ("released", "hostdev0", "ok"),
            ("detach-failed", "hostdev0", "NotFound"),
        ])
        for record in records:
            self.assertEqual(record["MESSAGE_ID"], MESSAGE_IDS[record["HOSTDEVD_EVENT"]])
            self.assertEqual(record["HOSTDEVD_VM"], self.vm)
            self.assertEqual(record["SYSLOG_IDENTIFIER"], "hostdevd")
            self.assertIn(f"VM '{self.vm}'", record["MESSAGE"])
        attach, busy, detach, released, missing = records
        for record in (attach, busy, released, detach):
            self.assertEqual(record["HOSTDEVD_SOURCE"], "USB device 1d6b:0104", record)
        for record in (attach, busy, detach, missing):
            self.assertEqual(record["HOSTDEVD_CLIENT_UID"], str(os.geteuid()))
        self.assertEqual(released["HOSTDEVD_CLIENT_UID"], "")   # no client: the host's return
        self.assertIn("already attached", busy["HOSTDEVD_DETAIL"])
        self.assertEqual(attach["PRIORITY"], "5")
        self.assertEqual(busy["PRIORITY"], "4")


AUDIT_GET, AUDIT_SET, AUDIT_VIRT_RESOURCE = 1000, 1001, 2501
NETLINK_AUDIT, AUDIT_NLGRP_READLOG = 9, 1


class KernelAudit:
    """The kernel's audit switch, turned on for a test and back to what it was."""

    def __init__(self):
        self.control = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        self.control.settimeout(5)
        self.enabled_before = self._status()[1]
        self.reader = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        self.reader.bind((0, AUDIT_NLGRP_READLOG))
        self.reader.setblocking(False)
        self._set_enabled(1)

    def _request(self, kind, payload=b"", flags=0x5):
        self.control.send(struct.pack("=IHHII", 16 + len(payload), kind, flags, 1, 0) + payload)
        return self.control.recv(65536)

    def _status(self):
        reply = self._request(AUDIT_GET, flags=0x1)
        return struct.unpack("=IIII", reply[16:32])

    def _set_enabled(self, enabled):
        reply = self._request(AUDIT_SET, struct.pack("=10I", 1, enabled, *([0] * 8)))
        error, = struct.unpack("=i", reply[16:20])
        if error:
            raise OSError(-error, "AUDIT_SET")

    def records(self, kind):
        found = []
        while True:
            try:
                data = self.reader.recv(65536)
            except BlockingIOError:
                return found
            if struct.unpack("=H", data[4:6])[0] == kind:
                found.append(data[16:].decode(errors="replace"))

    def close(self):
        self._set_enabled(self.enabled_before)
        self.reader.close()
        self.control.close()


def built_with_libaudit():
    libraries = subprocess.run(["ldd", os.environ["HOSTDEVD"]], capture_output=True, text=True)
    return "libaudit.so" in libraries.stdout


class LinuxAudit(HostdevdTestCase):
    """Attaches and detaches reach the Linux audit log as libvirt's records do."""

    def setUp(self):
        if os.geteuid() != 0 or not built_with_libaudit():
            self.skipTest("needs root and a hostdevd built with libaudit")
        try:
            self.audit = KernelAudit()
        except OSError as error:
            self.skipTest(f"the kernel's audit subsystem cannot be used here: {error}")
        self.addCleanup(self.audit.close)
        super().setUp()

    def test_attach_and_detach_are_audited(self):
        xml = self.write_xml("usb.xml", USB)
        self.ctl("attach-device", self.vm, xml, check=True)
        self.ctl("attach-device", self.vm, xml, check=False)
        self.ctl("detach-device-alias", self.vm, "hostdev0", check=True)
        self.assertNotIn("hostdev0", self.qmp.peripherals())
        ours = []
        # the kernel's audit thread (kauditd) passes the records on later: up to 60 s
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # the audit log is the host's: other hostdevd (other tests) write there too
            ours += [r for r in self.audit.records(AUDIT_VIRT_RESOURCE)
                     if f'vm="{self.vm}"' in r and f" pid={self.daemon.pid} " in r]
            if len(ours) >= 3:
                break
            time.sleep(0.1)
        summary = [(re.search(r"reason=(\w+)", r).group(1), re.search(r"res=(\w+)", r).group(1))
                   for r in ours]
        self.assertEqual(summary, [("attach", "success"), ("attach", "failed"),
                                   ("detach", "success")], ours)
        for record in ours:
            self.assertIn("virt=kvm resrc=dev", record)
            # hostdevd has no terminal here: found once at start, recorded as libaudit does
            self.assertIn(" terminal=? ", record)
        self.assertIn('alias="hostdev0"', ours[0])
        # the source has spaces: hex-encoded as audit's name=value rules say
        self.assertIn("device=" + "USB device 1d6b:0104".encode().hex().upper(), ours[0])


if __name__ == "__main__":
    main()
