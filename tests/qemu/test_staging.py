#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What a staged command relies on, shown on a real QEMU.

hostdevd sends a device_add ahead of its time (qmp_client_stage()): all of
it but its closing brace, while the host is prepared; the brace (and a
newline) once the step is journaled.  That is safe only if QEMU acts on a
command when its object closes and never before, forgets a half-sent
command when the connection closes (a hostdevd that dies with one staged
leaves nothing for the next connection to inherit), and refuses, whole,
the command hostdevd ends an abandoned one as: with a member QMP has not
got, after a name and arguments QEMU would act on.  Each is
checked here from QEMU's own view (its peripherals), through a third
monitor the test drives byte by byte; then hostdevd's own attach, which
stages its device_add, is checked from QEMU's view too (that it stages at
all is tests/unit/test-qmp-client.c's /qmp/execute/stage, on the wire).
"""
import json
import os
import socket
import time
import unittest

from harness import HostdevdTestCase, main

ARGS = {"driver": "usb-host", "vendorid": 0x1d6b, "productid": 0x0104, "id": "staged0",
        "bus": "usb.0", "port": "1"}
HEAD = (b'{"execute":"device_add","arguments":' + json.dumps(ARGS, separators=(",", ":")).encode()
        + b',"id":7')
USB = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
       "<vendor id='0x1d6b'/><product id='0x0104'/></source></hostdev>")


class RawMonitor:
    """A QMP monitor written to byte by byte, read line by line."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        assert "QMP" in self.read()
        self.send(b'{"execute":"qmp_capabilities"}\n')
        assert self.read() == {"return": {}}

    def send(self, data):
        self.sock.sendall(data)

    def read(self):
        """The next reply (events skipped)."""
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("QEMU closed the raw monitor")
            message = json.loads(line)
            if "event" not in message:
                return message

    def close(self):
        self.file.close()
        self.sock.close()


class Staging(HostdevdTestCase):
    def start_qemu(self):
        self.raw_path = os.path.join(self.tmp, "qmp-raw.sock")
        self.qemu_extra = ["-qmp", f"unix:{self.raw_path},server=on,wait=off"]
        return super().start_qemu()

    def raw(self):
        monitor = RawMonitor(self.raw_path)
        self.addCleanup(monitor.close)
        return monitor

    def settle(self):
        """Long enough for QEMU to read every byte sent (one per main-loop turn)."""
        time.sleep(0.5)

    def test_nothing_happens_before_the_object_closes(self):
        monitor = self.raw()
        monitor.send(HEAD)
        self.settle()
        self.assertNotIn("staged0", self.qmp.peripherals())
        # QEMU answers other monitors meanwhile: the staged one holds only its own
        self.assertEqual(self.qmp.ok("query-status")["status"], "prelaunch")
        monitor.send(b'}\n')
        self.assertEqual(monitor.read(), {"return": {}, "id": 7})
        self.assertEqual(self.qmp.peripherals().get("staged0"), "child<usb-host>")
        self.qmp.ok("device_del", id="staged0")
        self.qmp.wait_event("DEVICE_DELETED", device="staged0")

    def test_a_closed_connection_forgets_the_staged_command(self):
        monitor = self.raw()
        monitor.send(HEAD)
        self.settle()
        monitor.close()
        # the next connection starts clean: its first command is read as such
        again = self.raw()
        again.send(b'{"execute":"query-status","id":1}\n')
        self.assertEqual(again.read()["id"], 1)
        self.assertNotIn("staged0", self.qmp.peripherals())

    def test_the_abandoned_command_is_refused(self):
        monitor = self.raw()
        monitor.send(HEAD)
        self.settle()
        monitor.send(b',"x-hostdevd-unstaged":0}\n')
        reply = monitor.read()
        self.assertEqual(reply["id"], 7)
        self.assertEqual(reply["error"], {"class": "GenericError",
                                          "desc": "QMP input member 'x-hostdevd-unstaged' is "
                                                  "unexpected"})
        self.assertNotIn("staged0", self.qmp.peripherals())
        # the device is not added later either
        self.settle()
        self.assertNotIn("staged0", self.qmp.peripherals())
        # and the monitor goes on
        monitor.send(b'{"execute":"query-status","id":8}\n')
        self.assertEqual(monitor.read()["id"], 8)

    def test_hostdevd_attach_lands_whole(self):
        xml = self.write_xml("usb.xml", USB)
        for _ in range(3):
            attached = self.ctl("attach-device", self.vm, xml, check=True)
            self.assertIn("hostdev0", attached.stdout)
            self.assertEqual(self.qmp.peripherals().get("hostdev0"), "child<usb-host>")
            self.ctl("detach-device", self.vm, xml, check=True)
            self.assertNotIn("hostdev0", self.qmp.peripherals())


if __name__ == "__main__":
    main()
