#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Hostile requests against a sandboxed hostdevd beside a real QEMU.

Every request of the corpus below must get a clear error (a known class and
a message), hostdevd must keep serving, QEMU must be unchanged (checked
through the test's own QMP socket) and so must the host: hostdevd runs on a
fixture copy of sysfs and /dev (--host-root) whose every file is compared
before and after.
"""
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.environ.get("HOSTDEVD_QEMU_TESTS",
                                  os.path.join(os.path.dirname(__file__), "..", "qemu")))
from harness import ControlClient, HostdevdTestCase, extract_fixture, main  # noqa: E402

CLASSES = {"InvalidXML", "InvalidArgument", "PolicyDenied", "NotFound", "Busy",
           "HostError", "QemuError", "Timeout"}


def usb(source, extra=""):
    return f"<hostdev mode='subsystem' type='usb'><source>{source}</source>{extra}</hostdev>"


def pci(domain="0x0000", bus="0x01", slot="0x00", function="0x0", extra="", managed="no"):
    return (f"<hostdev mode='subsystem' type='pci' managed='{managed}'><source><address "
            f"domain='{domain}' bus='{bus}' slot='{slot}' function='{function}'/></source>"
            f"{extra}</hostdev>")


VENDOR = "<vendor id='0x1d6b'/><product id='0x0104'/>"
LAUGHS = ("<?xml version='1.0'?><!DOCTYPE hostdev [<!ENTITY a 'lol'>"
          + "".join(f"<!ENTITY {chr(98 + i)} '{('&' + chr(97 + i) + ';') * 10}'>"
                    for i in range(9))
          + "]><hostdev mode='subsystem' type='usb'><source><vendor id='&j;'/></source></hostdev>")
QUADRATIC = ("<!DOCTYPE hostdev [<!ENTITY x '" + "A" * 20000 + "'>]>"
             "<hostdev mode='subsystem' type='usb'>" + "&x;" * 1000 + "</hostdev>")


def attach(xml, **extra):
    return {"execute": "attach-device", "arguments": {"xml": xml, **extra}, "id": "hostile"}


def raw(data):
    return data if isinstance(data, bytes) else data.encode()


# (name, request: dict or raw bytes line, expected class or None for any, needle in desc)
CORPUS = [
    # -- XML external entities and entity bombs
    ("xxe-file", attach("<!DOCTYPE hostdev [<!ENTITY x SYSTEM 'file:///etc/shadow'>]>"
                        + usb("<vendor id='&x;'/>")), "InvalidXML", ""),
    ("xxe-parameter-entity", attach("<!DOCTYPE hostdev [<!ENTITY % p SYSTEM "
                                    "'file:///etc/passwd'> %p;]>" + usb(VENDOR)),
     "InvalidXML", ""),
    ("xxe-network-dtd", attach("<!DOCTYPE hostdev SYSTEM 'http://127.0.0.1:1/x.dtd'>"
                               + usb(VENDOR)), "InvalidXML", ""),
    ("billion-laughs", attach(LAUGHS), "InvalidXML", ""),
    ("quadratic-blowup", attach(QUADRATIC), "InvalidXML", ""),
    ("xinclude", attach("<hostdev xmlns:xi='http://www.w3.org/2001/XInclude' mode='subsystem' "
                        "type='usb'><source><xi:include href='file:///etc/passwd' parse='text'/>"
                        "</source></hostdev>"), None, ""),
    ("entity-in-attribute", attach("<!DOCTYPE hostdev [<!ENTITY t 'usb'>]>"
                                   "<hostdev mode='subsystem' type='&t;'><source/></hostdev>"),
     "InvalidXML", ""),
    ("processing-instruction", attach("<?xml-stylesheet href='file:///etc/passwd'?>"
                                      + usb("")), None, ""),
    ("two-root-elements", attach(usb(VENDOR) + usb(VENDOR)), "InvalidXML", ""),
    ("not-hostdev", attach("<disk type='file'><source file='/etc/shadow'/></disk>"),
     None, "hostdev"),
    ("xml-nul-char-ref", attach(usb("<vendor id='&#0;'/>")), "InvalidXML", ""),
    ("xml-invalid-encoding", attach("<?xml version='1.0' encoding='EBCDIC-US'?>"
                                    + usb(VENDOR)), None, ""),
    # -- deep nesting
    ("xml-deep-nesting", attach("<hostdev mode='subsystem' type='usb'>" + "<a>" * 5000
                                + "</a>" * 5000 + "</hostdev>"), "InvalidXML", ""),
    ("json-deep-arrays", raw(b'{"execute": "list-devices", "arguments": {"a": '
                             + b"[" * 60000 + b"]" * 60000 + b"}}\n"),
     "InvalidArgument", "nested deeper"),
    ("json-deep-objects", raw(b'{"execute": "list-devices", "arguments": '
                              + b'{"a":' * 20000 + b"1" + b"}" * 20000 + b"}\n"),
     "InvalidArgument", "nested deeper"),
    ("json-unbalanced-open", raw(b"[" * 120000 + b"\n"), "InvalidArgument", "nested deeper"),
    ("json-comment-hides-bracket", raw(b'{"execute": "x" /* [[[[ */}\n'),
     "InvalidArgument", "not valid JSON"),
    # -- huge messages
    ("line-1mib", raw(b'{"execute": "attach-device", "arguments": {"xml": "'
                      + b"x" * (1 << 20) + b'"}}\n'), "InvalidArgument", "exceeds the limit"),
    ("line-8mib-no-newline-then-newline", raw(b" " * (8 << 20) + b"\n"),
     "InvalidArgument", "exceeds the limit"),
    ("xml-over-64k", attach("<hostdev mode='subsystem' type='usb'><!--" + "x" * 70000
                            + "--><source/></hostdev>"), "InvalidXML", ""),
    ("long-command-name", {"execute": "x" * 100000, "id": "hostile"}, "InvalidArgument",
     "unknown command"),
    ("many-members", raw(b'{"execute": "list-devices", "arguments": {'
                         + b",".join(b'"k%d": %d' % (i, i) for i in range(5000)) + b"}}\n"),
     "InvalidArgument", "takes no argument"),
    # -- truncated and malformed JSON
    ("truncated-object", raw(b'{"execute": "list-devices"\n'), "InvalidArgument",
     "not valid JSON"),
    ("truncated-string", raw(b'{"execute": "list-dev\n'), "InvalidArgument", "not valid JSON"),
    ("truncated-escape", raw(b'{"execute": "\\u12\n'), "InvalidArgument", "not valid JSON"),
    ("lone-brace", raw(b"{\n"), "InvalidArgument", "not valid JSON"),
    ("empty-object", raw(b"{}\n"), "InvalidArgument", 'no "execute"'),
    ("single-quotes", raw(b"{'execute': 'list-devices'}\n"), "InvalidArgument",
     "not valid JSON"),
    ("invalid-utf8", raw(b'{"execute": "\xff\xfe"}\n'), "InvalidArgument", "UTF-8"),
    ("nul-byte", raw(b'{"execute": "list-devices\x00"}\n'), "InvalidArgument", "NUL"),
    ("lone-surrogate", raw(b'{"execute": "\\ud83d\\t", "id": 1}\n'), "InvalidArgument",
     "surrogate"),
    ("trailing-garbage", raw(b'{"execute": "list-devices"} {"execute": "dumpxml"}\n'),
     "InvalidArgument", "more after the JSON object"),
    ("array-request", raw(b'[{"execute": "list-devices"}]\n'), "InvalidArgument",
     "must be a JSON object"),
    ("id-object", raw(b'{"execute": "list-devices", "id": {"a": 1}}\n'), "InvalidArgument",
     '"id" must be'),
    ("duplicate-execute", raw(b'{"execute": "list-devices", "execute": "reboot"}\n'),
     "InvalidArgument", ""),
    # -- path traversal in every field that becomes a path or an id
    ("pci-domain-traversal", attach(pci(domain="../../../etc")), "InvalidArgument", "domain"),
    ("pci-bus-traversal", attach(pci(bus="0x01/../../..")), "InvalidArgument", "bus"),
    ("pci-slot-traversal", attach(pci(slot="../0")), "InvalidArgument", "slot"),
    ("pci-function-newline", attach(pci(function="0\n/x")), "InvalidArgument", "function"),
    ("pci-driver-name-traversal", attach(pci(extra="<driver name='../../../../tmp/x'/>",
                                             managed="yes")), None, ""),
    ("usb-bus-traversal", attach(usb("<address bus='../../etc' device='1'/>")),
     "InvalidArgument", "bus"),
    ("usb-device-traversal", attach(usb("<address bus='1' device='1/../../x'/>")),
     "InvalidArgument", "device"),
    ("usb-vendor-traversal", attach(usb("<vendor id='../../x'/><product id='0x1'/>")),
     "InvalidArgument", "vendor"),
    ("alias-traversal", attach(usb(VENDOR, "<alias name='ua-../../etc/passwd'/>"),
                               **{"dry-run": True}), None, ""),
    ("detach-alias-traversal", {"execute": "detach-device",
                                "arguments": {"alias": "../../../etc/passwd"}, "id": "hostile"},
     None, ""),
    ("detach-alias-slash", {"execute": "detach-device",
                            "arguments": {"alias": "hostdev0/../x"}, "id": "hostile"}, None, ""),
    ("mdev-uuid-traversal", attach("<hostdev mode='subsystem' type='mdev' model='vfio-pci'>"
                                   "<source><address uuid='../../../../etc/passwd'/></source>"
                                   "</hostdev>"), None, ""),
    ("guest-usb-port-traversal", attach(usb(VENDOR, "<address type='usb' bus='0' "
                                               "port='1/../2'/>")), "InvalidArgument", "port"),
    # -- out-of-range numbers
    ("pci-domain-too-big", attach(pci(domain="0x10000")), "InvalidArgument", "domain"),
    ("pci-bus-too-big", attach(pci(bus="0x100")), "InvalidArgument", "bus"),
    ("pci-slot-too-big", attach(pci(slot="0x20")), "InvalidArgument", "slot"),
    ("pci-function-too-big", attach(pci(function="8")), "InvalidArgument", "function"),
    ("pci-negative", attach(pci(bus="-1")), "InvalidArgument", "bus"),
    ("pci-huge", attach(pci(bus="18446744073709551617")), "InvalidArgument", "bus"),
    ("usb-vendor-too-big", attach(usb("<vendor id='0x10000'/><product id='0x1'/>")),
     "InvalidArgument", "vendor"),
    ("usb-bus-zero", attach(usb("<address bus='0' device='1'/>")), "InvalidArgument", "bus"),
    ("usb-port-256", attach(usb(VENDOR, "<address type='usb' bus='0' port='256'/>")),
     "InvalidArgument", "port"),
    ("boot-order-zero", attach(usb(VENDOR, "<boot order='0'/>")), "InvalidArgument", "order"),
    ("boot-order-huge", attach(usb(VENDOR, "<boot order='2147483648'/>")),
     "InvalidArgument", "order"),
    ("wait-huge", {"execute": "detach-device", "arguments": {"alias": "x", "wait": 1e308},
                   "id": "hostile"}, "InvalidArgument", "'wait'"),
    ("wait-negative", {"execute": "detach-device", "arguments": {"alias": "x", "wait": -1},
                       "id": "hostile"}, "InvalidArgument", "'wait'"),
    ("wait-string", {"execute": "detach-device", "arguments": {"alias": "x", "wait": "5"},
                     "id": "hostile"}, "InvalidArgument", "'wait'"),
    ("id-overflow", raw(b'{"execute": "nope", "id": 1e400}\n'), "InvalidArgument",
     "finite"),
    ("dry-run-not-bool", attach(usb(VENDOR), **{"dry-run": "yes"}), "InvalidArgument",
     "dry-run"),
    # -- unknown commands and arguments
    ("unknown-command", {"execute": "reboot-host", "id": "hostile"}, "InvalidArgument",
     "unknown command"),
    ("qmp-passthrough", {"execute": "human-monitor-command",
                         "arguments": {"command-line": "quit"}, "id": "hostile"},
     "InvalidArgument", "human-monitor-command"),
    ("device-add-passthrough", {"execute": "device_add",
                                "arguments": {"driver": "usb-host"}, "id": "hostile"},
     "InvalidArgument", "device_add"),
    ("empty-command", {"execute": "", "id": "hostile"}, "InvalidArgument", "unknown command"),
    ("case-command", {"execute": "ATTACH-DEVICE", "id": "hostile"}, "InvalidArgument",
     "unknown command"),
    ("unknown-argument", attach(usb(VENDOR), host="evil"), "InvalidArgument", "takes no argument"),
    ("xml-not-string", {"execute": "attach-device", "arguments": {"xml": ["<hostdev/>"]},
                        "id": "hostile"}, "InvalidArgument", "must be a string"),
    # -- <rom file>: QEMU would put any file it can read into a BAR the guest reads
    ("rom-file-shadow", attach(pci(extra="<rom bar='on' file='/etc/shadow'/>")),
     "PolicyDenied", "allow-rom-dirs"),
    ("rom-file-shadow-dry-run", attach(pci(extra="<rom file='/etc/shadow'/>"), **{"dry-run": True}),
     "PolicyDenied", "/etc/shadow"),
    ("rom-file-dot-dot", attach(pci(extra="<rom file='/usr/share/qemu/../../../etc/shadow'/>")),
     "PolicyDenied", "'..' component"),
    ("rom-file-link-in-allowed-dir", attach(pci(extra="<rom file='/usr/share/qemu/link.rom'/>")),
     "PolicyDenied", "symbolic link"),
    # -- hubs: every device behind one would follow it into the guest
    ("usb-root-hub-by-ids", attach(usb("<vendor id='0x1d6b'/><product id='0x0003'/>")),
     "PolicyDenied", "allow-usb-hubs=true"),
    ("usb-root-hub-by-address", attach(usb("<address bus='1' device='1'/>")),
     "PolicyDenied", "USB hub 1d6b:0002 (bus 1 device 1, usb1)"),
    ("usb-root-hub-dry-run", attach(usb("<address bus='2' device='1'/>"), **{"dry-run": True}),
     "PolicyDenied", "usb2"),
    ("rom-file-prefix-trick", attach(pci(extra="<rom file='/usr/share/qemu-evil/x.rom'/>")),
     "PolicyDenied", "not in a directory the policy allows"),
]


def snapshot(root):
    """Every file under @root: type, mode, owner, size, content hash, link target."""
    state = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            entry = (stat.S_IFMT(st.st_mode), st.st_mode & 0o7777, st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry += (hashlib.sha256(f.read()).hexdigest(),)
            state[os.path.relpath(path, root)] = entry
    return state


class HostileInput(HostdevdTestCase):

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(lambda: shutil.rmtree(root, ignore_errors=True))
        self.host_root = extract_fixture(root)
        # an allowed ROM directory holding a link to a secret: naming it must not leak it
        roms = os.path.join(self.host_root, "usr", "share", "qemu")
        os.makedirs(roms, exist_ok=True)
        os.symlink("/etc/shadow", os.path.join(roms, "link.rom"))
        self.host_before = snapshot(root)
        super().setUp()
        self.qemu_before = self.qmp.peripherals()

    def start_hostdevd(self, extra=(), wait=True):
        return super().start_hostdevd(extra=("--sandbox", "on", *extra), wait=wait)

    def send(self, request):
        client = ControlClient(self.socket_path)
        try:
            line = raw(request) if isinstance(request, bytes) else \
                json.dumps(request).encode() + b"\n"
            client.send_raw(line)
            return client.reply()
        finally:
            client.close()

    def assert_still_serving(self, what):
        self.assertIsNone(self.daemon.poll(), f"hostdevd died after {what}:\n{self.log()}")
        client = ControlClient(self.socket_path)
        try:
            reply = client.execute("list-devices", id="alive")
        finally:
            client.close()
        self.assertEqual(reply, {"return": [], "id": "alive"}, what)
        self.assertEqual(self.qmp.peripherals(), self.qemu_before, what)
        self.assertEqual(self.qmp.ok("query-fdsets"), [], what)

    def test_corpus(self):
        self.assertGreaterEqual(len(CORPUS), 50)
        names = [name for name, *_ in CORPUS]
        self.assertEqual(len(names), len(set(names)))
        for name, request, expected_class, needle in CORPUS:
            with self.subTest(name):
                started = time.monotonic()
                reply = self.send(request)
                self.assertIn("error", reply, f"{name}: {reply}")
                error = reply["error"]
                self.assertIn(error["class"], CLASSES, name)
                if expected_class:
                    self.assertEqual(error["class"], expected_class, f"{name}: {error}")
                self.assertGreater(len(error["desc"]), 10, name)
                self.assertIn(needle, error["desc"], f"{name}: {error}")
                if isinstance(request, dict) and "id" in request:
                    self.assertEqual(reply.get("id"), request["id"], name)
                self.assertLess(time.monotonic() - started, 10, f"{name} took too long")
                self.assert_still_serving(name)
        self.assertEqual(snapshot(self.host_root), self.host_before, "the host tree changed")

    def test_duplicate_alias(self):
        xml = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
               "<vendor id='0x1d6b'/><product id='0x0104'/></source>"
               "<alias name='ua-twice'/></hostdev>")
        first = self.send(attach(xml))
        self.assertEqual(first["return"]["alias"], "ua-twice", first)
        second = self.send(attach(xml))
        self.assertIn("error", second)
        self.assertIn(second["error"]["class"], {"InvalidArgument", "Busy"})
        self.assertIn("ua-twice", second["error"]["desc"])
        peripherals = self.qmp.peripherals()
        self.assertIn("ua-twice", peripherals)
        self.assertEqual(len(peripherals), len(self.qemu_before) + 1)
        detached = self.send({"execute": "detach-device", "arguments": {"alias": "ua-twice"},
                              "id": 1})
        self.assertEqual(detached["return"]["status"], "detached")
        self.assert_still_serving("duplicate alias")
        self.assertEqual(snapshot(self.host_root), self.host_before)

    def restart_with_policy(self, text):
        policy = os.path.join(self.tmp, "policy.conf")
        with open(policy, "w") as f:
            f.write(text)
        os.chmod(policy, 0o644)
        self.daemon.terminate()
        self.daemon.wait(timeout=60)
        self.daemon = self.start_hostdevd(extra=("--policy", policy))

    def test_vf_network_outside_the_policy(self):
        """Issue 11, item 14: a VF's MAC and VLAN are checked against the policy."""
        self.restart_with_policy("[defaults]\nallow-vf-macs=52:54:00:*\n"
                                 "allow-vlans=100-199\n")

        def vf(mac, vlan):
            return ("<interface type='hostdev' managed='yes'>"
                    f"<mac address='{mac}'/><source><address type='pci' domain='0x0000' "
                    "bus='0x05' slot='0x00' function='0x1'/></source>"
                    + (f"<vlan><tag id='{vlan}'/></vlan>" if vlan is not None else "")
                    + "</interface>")
        for name, xml, needle in [
                ("foreign MAC", vf("02:11:22:33:44:55", 100),
                 "MAC 02:11:22:33:44:55 matches no entry of allow-vf-macs=52:54:00:*"),
                ("other VLAN", vf("52:54:00:11:22:33", 42),
                 "VLAN 42 is not in allow-vlans=100-199"),
                ("untagged", vf("52:54:00:11:22:33", None), "no VLAN (untagged)")]:
            with self.subTest(name):
                reply = self.send(attach(xml))
                self.assertEqual(reply["error"]["class"], "PolicyDenied", reply)
                self.assertIn("VF 0000:05:00.1", reply["error"]["desc"])
                self.assertIn(needle, reply["error"]["desc"])
                self.assert_still_serving(name)
        self.assertEqual(snapshot(self.host_root), self.host_before, "the host tree changed")

    def test_usb_hub_allowed_by_policy(self):
        """allow-usb-hubs=true lets a root hub through the policy (the dry run plans it)."""
        self.restart_with_policy("[defaults]\nallow-usb-hubs=true\n")
        reply = self.send(attach(usb("<address bus='2' device='1'/>"), **{"dry-run": True}))
        self.assertIn("return", reply, reply)
        self.assertIn("usb-host", json.dumps(reply["return"]))
        self.assertEqual(self.qmp.peripherals(), self.qemu_before)

    def test_rate_limit(self):
        """A burst past the limit is answered Busy, unparsed; the client stays."""
        client = ControlClient(self.socket_path)
        self.addCleanup(client.close)
        client.send_raw(b'{"execute": "list-devices", "id": 1}\n' * 300)
        replies = [client.reply() for _ in range(300)]
        served = [r for r in replies if "return" in r]
        busy = [r for r in replies if r.get("error", {}).get("class") == "Busy"]
        self.assertEqual(len(served) + len(busy), 300)
        self.assertGreaterEqual(len(served), 100)
        self.assertGreater(len(busy), 0)
        self.assertIn("too many requests", busy[0]["error"]["desc"])
        time.sleep(1)   # the bucket refills
        self.assertEqual(client.execute("list-devices", id=2), {"return": [], "id": 2})

    def test_flood_does_not_starve_others(self):
        """One client pours requests without reading; another is still served."""
        flooder = ControlClient(self.socket_path)
        self.addCleanup(flooder.close)
        flooder.sock.setblocking(False)
        line = b'{"execute": "list-devices"}\n' * 2000
        sent = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                sent += flooder.sock.send(line)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break   # hostdevd dropped the flooder: fine
        started = time.monotonic()
        self.assert_still_serving("a flood")
        self.assertLess(time.monotonic() - started, 5)
        self.assertGreater(sent, 0)


if __name__ == "__main__":
    main()
