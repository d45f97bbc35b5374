#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""USB hot-plug end to end: real QEMU, real hostdevd, hostdevctl as a user runs it."""
import json
import os
import signal
import subprocess

from harness import dry_run_qmp, dry_run_steps, HostdevdTestCase, extract_fixture, main, wait_for

# A device no host has: with startupPolicy='optional' QEMU waits for it to appear.
OPTIONAL_USB = """<hostdev mode='subsystem' type='usb' managed='yes'>
  <source startupPolicy='optional'>
    <vendor id='0x1d6b'/>
    <product id='0x0104'/>
  </source>
</hostdev>
"""


def unix_socket_connected(pid):
    """Whether process @pid holds a connected Unix stream socket (/proc/net/unix)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    except OSError:
        return False
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            # Num RefCount Protocol Flags Type St Inode [Path]; St 03: connected
            fields = line.split()
            if len(fields) >= 7 and fields[6] in inodes and fields[5] == "03":
                return True
    return False


class UsbHotplug(HostdevdTestCase):

    def test_attach_and_detach_checked_through_qemu(self):
        before = self.qmp.peripherals()
        path = self.write_xml("usb.xml", OPTIONAL_USB)

        attached = self.ctl("attach-device", self.vm, path, check=True)
        self.assertIn("Device attached successfully as hostdev0", attached.stdout)

        # QEMU itself, through the test's own monitor, has the device
        devices = self.qmp.peripherals()
        self.assertEqual(devices.get("hostdev0"), "child<usb-host>")
        self.assertEqual(set(devices) - set(before), {"hostdev0"})
        self.assertEqual(self.qmp.ok("qom-get", path="/machine/peripheral/hostdev0",
                                     property="vendorid"), 0x1d6b)
        self.assertEqual(self.qmp.ok("qom-get", path="/machine/peripheral/hostdev0",
                                     property="productid"), 0x0104)

        # the live XML carries the alias and the guest address QEMU chose
        dumpxml = self.ctl("dumpxml", self.vm, check=True).stdout
        self.assertIn("<alias name='hostdev0'/>", dumpxml)
        self.assertIn("<address type='usb' bus='0' port='1'/>", dumpxml)
        self.assertIn("<vendor id='0x1d6b'/>", dumpxml)

        detached = self.ctl("detach-device", self.vm, path, check=True)
        self.assertIn("Device detached successfully", detached.stdout)
        self.qmp.wait_event("DEVICE_DELETED", device="hostdev0")
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertNotIn("hostdev0", self.ctl("list", self.vm, check=True).stdout)

    def test_json_output_and_stdin(self):
        result = self.ctl("--json", "attach-device", self.vm, "-", input=OPTIONAL_USB, check=True)
        reply = json.loads(result.stdout)
        self.assertEqual(reply["id"], 1)
        self.assertEqual(reply["return"]["alias"], "hostdev0")
        self.assertIn("<alias name='hostdev0'/>", reply["return"]["xml"])

        listing = json.loads(self.ctl("--json", "list", self.vm, check=True).stdout)["return"]
        self.assertEqual([(d["alias"], d["type"], d["state"]) for d in listing],
                         [("hostdev0", "usb", "attached")])

        reply = json.loads(self.ctl("--json", "detach-device-alias", self.vm, "hostdev0",
                                    check=True).stdout)
        self.assertEqual(reply["return"], {"alias": "hostdev0", "source": "USB device 1d6b:0104",
                                           "status": "detached"})
        self.assertNotIn("hostdev0", self.qmp.peripherals())

    def test_user_alias_and_guest_port(self):
        xml = OPTIONAL_USB.replace("</source>", """</source>
  <alias name='ua-token'/>
  <address type='usb' bus='0' port='3'/>""")
        self.ctl("attach-device", self.vm, self.write_xml("ua.xml", xml), check=True)
        self.assertIn("ua-token", self.qmp.peripherals())
        self.assertEqual(self.qmp.ok("qom-get", path="/machine/peripheral/ua-token",
                                     property="port"), "3")
        usb = self.qmp.ok("x-query-usb")["human-readable-text"]
        self.assertRegex(usb, r"Port 3, .*ID: ua-token")
        self.assertIn("<address type='usb' bus='0' port='3'/>", self.ctl("dumpxml", self.vm).stdout)
        self.ctl("detach-device-alias", self.vm, "ua-token", check=True)
        self.assertNotIn("ua-token", self.qmp.peripherals())

    def test_port_is_chosen_as_libvirt_does(self):
        """Issue 14: the port is hostdevd's choice, libvirt's (the lowest free one of the
        lowest controller, hubs only when a controller is full), named in device_add; QEMU's
        own view shows the device there."""
        def attach(product):
            xml = OPTIONAL_USB.replace("0x0104", product)
            out = self.ctl("--json", "attach-device", self.vm, self.write_xml("u.xml", xml),
                           check=True).stdout
            return json.loads(out)["return"]["alias"]

        def qemu_port(alias):
            return self.qmp.ok("qom-get", path=f"/machine/peripheral/{alias}", property="port")

        # ports 1 and 3 taken behind hostdevd's back before it read the map: 2 is free
        self.qmp.ok("device_add", driver="usb-tablet", id="tablet", bus="usb.0", port="1")
        self.qmp.ok("device_add", driver="usb-hub", id="hub", bus="usb.0", port="3")
        self.assertEqual(qemu_port(attach("0x0001")), "2")
        self.assertEqual(qemu_port(attach("0x0002")), "4")
        # the controller's 4 ports are full: the hub's first port, then its next
        self.assertEqual(qemu_port(attach("0x0003")), "3.1")
        self.assertEqual(qemu_port(attach("0x0004")), "3.2")
        usb = self.qmp.ok("x-query-usb")["human-readable-text"]
        self.assertRegex(usb, r"Port 3\.2, .*ID: hostdev3\n")
        # a port that left is the first free one again
        self.ctl("detach-device-alias", self.vm, "hostdev0", check=True)
        self.assertEqual(qemu_port(attach("0x0005")), "2")
        self.assertIn("<address type='usb' bus='0' port='2'/>",
                      self.ctl("dumpxml", self.vm, check=True).stdout)

    def test_a_port_taken_behind_hostdevds_back_is_stepped_over(self):
        """hostdevd keeps the port map it read; a device another monitor put on the port
        it would choose makes device_add fail, and hostdevd reads the map and chooses again."""
        first = self.write_xml("a.xml", OPTIONAL_USB)
        self.ctl("attach-device", self.vm, first, check=True)           # port 1, map read
        self.qmp.ok("device_add", driver="usb-tablet", id="tablet", bus="usb.0", port="2")
        second = self.write_xml("b.xml", OPTIONAL_USB.replace("0x0104", "0x0105"))
        reply = json.loads(self.ctl("--json", "attach-device", self.vm, second,
                                    check=True).stdout)["return"]
        self.assertEqual(self.qmp.ok("qom-get", path="/machine/peripheral/hostdev1",
                                     property="port"), "3")
        self.assertIn("its USB port was taken meanwhile", self.log())
        # the answer and the record name the port of the second try, not of the first
        # (the record is made ready while QEMU works on the device_add, once per try)
        self.assertIn("port='3'", reply["xml"])
        self.assertEqual(self.record("hostdev1")["xml"], reply["xml"])

    def test_full_controller_is_refused_before_qemu(self):
        for product in range(1, 5):
            xml = OPTIONAL_USB.replace("0x0104", f"0x000{product}")
            self.ctl("attach-device", self.vm, self.write_xml("u.xml", xml), check=True)
        before = self.qmp.peripherals()
        xml = OPTIONAL_USB.replace("0x0104", "0x0009")
        result = self.ctl("attach-device", self.vm, self.write_xml("u.xml", xml))
        self.assertEqual(result.returncode, 1)
        self.assertIn("no free USB port in this VM: every port of its controllers "
                      "(usb.0 (qemu-xhci, 4 ports))", result.stderr)
        self.assertEqual(self.qmp.peripherals(), before)

    def test_aliases_follow_libvirt_and_skip_qemu_ids(self):
        path = self.write_xml("usb.xml", OPTIONAL_USB)
        # a device hostdevd did not add: libvirt would not know it either
        self.qmp.ok("device_add", driver="usb-host", vendorid=1, productid=1, id="hostdev3")
        self.assertIn("as hostdev0", self.ctl("attach-device", self.vm, path, check=True).stdout)
        # one that clashes with the next alias is stepped over, in a dry run as for real
        self.qmp.ok("device_add", driver="usb-host", vendorid=1, productid=2, id="hostdev1")
        other = self.write_xml("other.xml", OPTIONAL_USB.replace("0x0104", "0x0105"))
        [dry] = dry_run_qmp(self.ctl("attach-device", self.vm, other, "--dry-run", check=True).stdout)
        self.assertEqual(dry["arguments"]["id"], "hostdev4")
        self.assertIn("as hostdev4", self.ctl("attach-device", self.vm, other, check=True).stdout)
        # recorded under the alias of the second try, with its XML
        self.assertEqual(sorted(self.journal()), [("hostdev0", "attached"), ("hostdev4", "attached")])
        self.assertIn("<alias name='hostdev4'/>", self.record("hostdev4")["xml"])

    def test_same_device_twice_is_busy(self):
        path = self.write_xml("usb.xml", OPTIONAL_USB)
        self.ctl("attach-device", self.vm, path, check=True)
        before = self.qmp.peripherals()
        second = self.ctl("attach-device", self.vm, path, check=False)
        self.assertIn("already attached to this VM as hostdev0", second.stderr)
        self.assertEqual(self.qmp.peripherals(), before)

    def test_dry_run_prints_qmp_and_changes_nothing(self):
        before = self.qmp.peripherals()
        result = self.ctl("attach-device", self.vm, self.write_xml("u.xml", OPTIONAL_USB),
                          "--dry-run", check=True)
        [command] = dry_run_qmp(result.stdout)
        # an absent optional device takes nothing from the host: QEMU's steps only, and
        # the port hostdevd chose needs no confirmation beyond device_add's success
        self.assertEqual(dry_run_steps(result.stdout), ["device-add"])
        self.assertEqual(command, {"execute": "device_add", "arguments": {
            "driver": "usb-host", "vendorid": 0x1d6b, "productid": 0x0104, "id": "hostdev0",
            "bus": "usb.0", "port": "1"}})
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(json.loads(self.ctl("--json", "list", self.vm).stdout)["return"], [])

    def test_events(self):
        watcher = self.spawn(
            ["env", f"HOSTDEVD_RUNTIME_DIR={self.tmp}", os.environ.get("HOSTDEVCTL", "hostdevctl"),
             "events", self.vm, "--loop", "--timeout", "60"],
            stdout=subprocess.PIPE, text=True)
        # The watcher must be a client before the first event, or it misses it.  Once
        # its connect() returned, its connection is ahead of the attach's in the control
        # socket's accept queue: hostdevd accepts (and adds to the clients every event
        # goes to) in that order, so no delay is guessed here.
        wait_for(lambda: unix_socket_connected(watcher.pid) or watcher.poll() is not None, 60,
                 "the event watcher to connect")
        self.assertIsNone(watcher.poll(), "the event watcher exited")
        path = self.write_xml("usb.xml", OPTIONAL_USB)
        self.ctl("attach-device", self.vm, path, check=True)
        self.ctl("detach-device", self.vm, path, check=True)
        first = watcher.stdout.readline()
        second = watcher.stdout.readline()
        watcher.terminate()
        self.assertEqual(first.strip(),
                         "event 'DEVICE_ATTACHED' for VM 'testvm': hostdev0 (USB device 1d6b:0104)")
        self.assertTrue(second.startswith("event 'DEVICE_DETACHED' for VM 'testvm': hostdev0"),
                        second)

    def test_device_removed_behind_hostdevds_back(self):
        path = self.write_xml("usb.xml", OPTIONAL_USB)
        self.ctl("attach-device", self.vm, path, check=True)
        self.qmp.ok("device_del", id="hostdev0")
        self.qmp.wait_event("DEVICE_DELETED", device="hostdev0")
        wait_for(lambda: "hostdev0" not in self.ctl("list", self.vm).stdout, 60,
                 "hostdevd to notice the unplug")

    def test_qemu_exit_releases_and_exits_zero(self):
        self.ctl("attach-device", self.vm, self.write_xml("usb.xml", OPTIONAL_USB), check=True)
        self.qmp.command("quit")
        self.assertEqual(self.daemon.wait(timeout=60), 0, self.log())
        self.assertIn("hostdev0 (USB device 1d6b:0104) released: QEMU exited", self.log())
        self.assertFalse(os.path.exists(self.socket_path), "control socket left behind")

    def test_socket_mode_and_version(self):
        self.assertEqual(os.stat(self.socket_path).st_mode & 0o777, 0o660)
        version = self.ctl("version", self.vm, check=True).stdout
        self.assertIn("QEMU 7.", version)
        self.assertEqual(self.control().greeting,
                         {"hostdevd": {"version": version.split()[1], "vm": "testvm"}})

    def test_second_hostdevd_on_same_socket_refused(self):
        other = subprocess.run(
            [os.environ.get("HOSTDEVD", "hostdevd"), "--vm", self.vm, "--qmp", self.qmp_path,
             "--socket", self.socket_path, "--sandbox", "off", "--qmp-wait", "5"],
            capture_output=True, text=True, timeout=30)
        self.assertNotEqual(other.returncode, 0)
        self.assertIn("another hostdevd already serves", other.stderr)
        self.ctl("list", self.vm, check=True)


class UsbOnFixtureHost(HostdevdTestCase):
    """hostdevd reading a real sysfs snapshot (a usb-kbd 0627:0001 at bus 1 device 2)."""

    def setUp(self):
        self.host_root = extract_fixture(os.path.join(self._tmp_root(), "root"))
        super().setUp()

    def _tmp_root(self):
        import tempfile
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", root]))
        return root

    def test_vendor_product_resolves_to_bus_and_device(self):
        xml = """<hostdev mode='subsystem' type='usb'>
  <source><vendor id='0x0627'/><product id='0x0001'/></source>
</hostdev>"""
        result = self.ctl("attach-device", self.vm, self.write_xml("kbd.xml", xml), "--dry-run",
                          check=True)
        add_fd, device_add = dry_run_qmp(result.stdout)
        self.assertEqual(dry_run_steps(result.stdout), ["claim", "pass-fd", "device-add"])
        # the device node is opened by hostdevd and passed to QEMU: QEMU needs no /dev/bus/usb
        self.assertEqual(add_fd, {"execute": "add-fd", "arguments": {"opaque": "hostdevd:hostdev0"}})
        self.assertEqual(device_add["arguments"]["hostdevice"], "/dev/fdset/0")
        self.assertEqual(device_add["arguments"]["id"], "hostdev0")

    def test_unopenable_device_changes_nothing(self):
        # resolved in the fixture (bus 1 device 2), but its node is not there to open
        xml = """<hostdev mode='subsystem' type='usb'>
  <source><address bus='1' device='2'/></source>
</hostdev>"""
        before = self.qmp.peripherals()
        result = self.ctl("--json", "attach-device", self.vm, self.write_xml("k.xml", xml),
                          check=False)
        error = json.loads(result.stdout)["error"]
        self.assertIn("/dev/bus/usb/001/002", error["desc"])
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(self.qmp.ok("query-fdsets"), [])
        self.assertEqual(json.loads(self.ctl("--json", "list", self.vm).stdout)["return"], [])
        self.assertEqual(self.claims(), [])


SELECTOR_NS = "xmlns:hostdevd='urn:hostdevd:hostdev:1'"


class IdenticalUsbOnFixtureHost(HostdevdTestCase):
    """Two identical keyboards (0627:0001): the snapshot's at 1-1, and a twin
    added at 1-2 with its own serial; hostdevd tells them apart by port path
    or serial (<hostdevd:device/>, issue 12)."""

    def setUp(self):
        import tempfile
        tmp = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", tmp]))
        self.host_root = extract_fixture(os.path.join(tmp, "root"))
        twin = os.path.join(self.host_root, "sys", "bus", "usb", "devices", "1-2")
        os.makedirs(twin)
        for name, value in (("busnum", "1"), ("devnum", "3"), ("idVendor", "0627"),
                            ("idProduct", "0001"), ("serial", "TWIN-0002")):
            with open(os.path.join(twin, name), "w") as f:
                f.write(value + "\n")
        super().setUp()

    def attach_dry(self, source, check):
        xml = "<hostdev mode='subsystem' type='usb'><source>%s</source></hostdev>" % source
        return self.ctl("attach-device", self.vm, self.write_xml("k.xml", xml), "--dry-run",
                        check=check)

    def test_ids_alone_are_ambiguous_and_list_every_twin(self):
        result = self.ctl("--json", "attach-device", self.vm, self.write_xml("k.xml", """
<hostdev mode='subsystem' type='usb'>
  <source><vendor id='0x0627'/><product id='0x0001'/></source>
</hostdev>"""), check=False)
        error = json.loads(result.stdout)["error"]
        self.assertEqual(error["class"], "InvalidArgument")
        self.assertIn("2 USB devices match 0627:0001: bus 1 device 2 (port 1-1, serial "
                      "'68284-0000:00:07.0-1'), bus 1 device 3 (port 1-2, serial 'TWIN-0002')",
                      error["desc"])
        self.assertEqual(self.claims(), [])

    def test_port_path_and_serial_choose_one(self):
        for source, devnum in (
                ("<hostdevd:device %s port='1-2'/>" % SELECTOR_NS, 3),
                ("<vendor id='0x0627'/><product id='0x0001'/>"
                 "<h:device xmlns:h='urn:hostdevd:hostdev:1' port='1-1'/>", 2),
                ("<hostdevd:device %s serial='TWIN-0002'/>" % SELECTOR_NS, 3)):
            with self.subTest(source=source):
                result = self.attach_dry(source, check=True)
                self.assertEqual(dry_run_steps(result.stdout), ["claim", "pass-fd", "device-add"])
                # the claim step names the device it found
                self.assertIn("at bus 1 device %d " % devnum, result.stdout)
                _, device_add = dry_run_qmp(result.stdout)
                self.assertEqual(device_add["arguments"]["hostdevice"], "/dev/fdset/0")

    def test_unknown_port_is_not_found(self):
        result = self.ctl("--json", "attach-device", self.vm, self.write_xml("k.xml", """
<hostdev mode='subsystem' type='usb'>
  <source startupPolicy='optional'>
    <vendor id='0x0627'/><product id='0x0001'/>
    <hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' port='1-9'/>
  </source>
</hostdev>"""), check=False)
        error = json.loads(result.stdout)["error"]
        self.assertEqual(error["class"], "NotFound")
        self.assertIn("no USB device 0627:0001 at port 1-9 on this host", error["desc"])
        self.assertEqual(self.qmp.ok("query-fdsets"), [])

    def test_misspelt_selector_is_refused(self):
        result = self.attach_dry("<vendor id='0x0627'/><product id='0x0001'/>"
                                 "<hostdevd:device %s prot='1-2'/>" % SELECTOR_NS,
                                 check=False)
        self.assertEqual(result.returncode, 1)
        self.assertIn("<source><hostdevd:device prot='...'>: unknown attribute", result.stderr)


class OptionalUsbWaitsInHostdevd(HostdevdTestCase):
    """hostdevd's default for an absent startupPolicy='optional' USB device
    (issue 12): the VM's, listed and journaled as waiting, nothing in QEMU
    (which never needs /dev/bus/usb); kept across a restart; detached like
    any device."""

    optional_usb = None

    def test_absent_optional_device_waits_in_hostdevd(self):
        before = self.qmp.peripherals()
        client = self.control()
        client.send_raw(json.dumps({"execute": "attach-device", "id": 1,
                                    "arguments": {"xml": OPTIONAL_USB}}).encode() + b"\n")
        events = []
        reply = client.read()
        while "event" in reply:
            events.append(reply)
            reply = client.read()
        self.assertEqual(reply["return"]["alias"], "hostdev0", reply)
        self.assertEqual(reply["return"]["state"], "waiting-for-device")
        self.assertEqual([e["event"] for e in events], ["DEVICE_WAITING"])
        event = events[0]
        self.assertEqual(event["data"]["alias"], "hostdev0")
        self.assertIn("startupPolicy='optional'", event["data"]["reason"])
        # QEMU got nothing: no usb-host waiting by vendorid/productid, no fdset
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(self.qmp.ok("query-fdsets"), [])
        self.assertEqual(self.claims(), [])

        def listed():
            return [(d["alias"], d["state"], "phase" in d) for d in
                    json.loads(self.ctl("--json", "list", self.vm, check=True).stdout)["return"]]
        self.assertEqual(listed(), [("hostdev0", "waiting-for-device", True)])
        text = self.ctl("attach-device", self.vm, self.write_xml("again.xml", OPTIONAL_USB),
                        check=False)
        self.assertIn("already attached to this VM as hostdev0", text.stderr)
        metrics = json.loads(self.ctl("--json", "metrics", self.vm, check=True).stdout)
        self.assertIn('hostdevd_devices{vm="testvm",type="usb",state="waiting-for-device"} 1',
                      metrics["return"]["text"])

        # the journal keeps it: a restarted hostdevd still has it waiting
        self.assertEqual(self.journal(), [("hostdev0", "attached")])
        self.daemon.terminate()
        self.daemon.wait(timeout=60)
        self.daemon = self.start_hostdevd()
        self.assertEqual(listed(), [("hostdev0", "waiting-for-device", True)])
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertIn("still waiting for its USB device", self.log())

        # detached like any device: nothing of it stays
        detached = self.ctl("detach-device-alias", self.vm, "hostdev0", check=True)
        self.assertIn("detached", detached.stdout)
        self.assertEqual(listed(), [])
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.qmp.peripherals(), before)

    def test_a_device_chosen_by_port_path_may_wait_too(self):
        # hostdevd checks every name when it appears; QEMU could only have
        # waited by vendor/product and taken a twin, so this used to be refused
        xml = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
               "<vendor id='0x1d6b'/><product id='0x0104'/>"
               "<hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' port='9-9.9'/>"
               "</source></hostdev>")
        reply = json.loads(self.ctl("--json", "attach-device", self.vm,
                                    self.write_xml("p.xml", xml), check=True).stdout)
        self.assertEqual(reply["return"]["state"], "waiting-for-device")
        self.assertIn("port='9-9.9'", reply["return"]["xml"])
        self.assertNotIn("child<usb-host>", self.qmp.peripherals().values())

    def test_hostdevctl_says_it_waits(self):
        result = self.ctl("attach-device", self.vm, self.write_xml("o.xml", OPTIONAL_USB),
                          check=True)
        self.assertIn("hostdev0 is not on the host", result.stdout)


class WaitingDeviceKeepsItsPort(HostdevdTestCase):
    """A waiting USB device's guest port stays its own, also in the port map
    a restarted hostdevd reads from QEMU (where the port looks free): another
    USB device attached meanwhile goes elsewhere (issue 12)."""

    optional_usb = None

    def test_restart_keeps_the_waiting_devices_port(self):
        waiting = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
                   "<vendor id='0x1d6b'/><product id='0x0104'/>"
                   "<hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' port='9-9.9'/>"
                   "</source><address type='usb' bus='0' port='1'/></hostdev>")
        reply = json.loads(self.ctl("--json", "attach-device", self.vm,
                                    self.write_xml("w.xml", waiting), check=True).stdout)
        self.assertEqual(reply["return"]["state"], "waiting-for-device")
        self.assertIn("<address type='usb' bus='0' port='1'/>", reply["return"]["xml"])

        # restarted: the waiting device comes back from the journal; this hostdevd
        # gives absent optional devices to QEMU, so the next one is a real usb-host
        self.daemon.terminate()
        self.daemon.wait(timeout=60)
        self.optional_usb = "qemu"
        self.daemon = self.start_hostdevd()
        self.assertIn("still waiting for its USB device", self.log())
        other = OPTIONAL_USB.replace("0x0104", "0x0105")
        reply = json.loads(self.ctl("--json", "attach-device", self.vm,
                                    self.write_xml("o.xml", other), check=True).stdout)
        alias = reply["return"]["alias"]
        self.assertNotEqual(alias, "hostdev0")
        # QEMU's own view: the new usb-host sits on another port than the waiting one's
        self.assertEqual(self.qmp.peripherals().get(alias), "child<usb-host>")
        port = self.qmp.ok("qom-get", path=f"/machine/peripheral/{alias}", property="port")
        self.assertEqual(port, "2", reply)
        self.assertIn("<address type='usb' bus='0' port='2'/>", reply["return"]["xml"])
        listed = {d["alias"]: d for d in
                  json.loads(self.ctl("--json", "list", self.vm, check=True).stdout)["return"]}
        self.assertEqual(listed["hostdev0"]["state"], "waiting-for-device")
        self.assertIn("<address type='usb' bus='0' port='1'/>", listed["hostdev0"]["xml"])

        # a port named in the XML is refused while the waiting device holds it
        named = other.replace("0x0105", "0x0106").replace(
            "</source>", "</source><address type='usb' bus='0' port='1'/>")
        result = self.ctl("--json", "attach-device", self.vm, self.write_xml("n.xml", named),
                          check=False)
        error = json.loads(result.stdout)["error"]
        self.assertEqual(error["class"], "Busy")
        self.assertIn("taken by hostdev0", error["desc"])

        # detached, it gives the port back
        self.ctl("detach-device-alias", self.vm, "hostdev0", check=True)
        reply = json.loads(self.ctl("--json", "attach-device", self.vm,
                                    self.write_xml("n.xml", named), check=True).stdout)
        self.assertIn("<address type='usb' bus='0' port='1'/>", reply["return"]["xml"])


class WaitingUsbOnFixtureHost(HostdevdTestCase):
    """A waiting USB device whose device appears is attached only if it still
    passes the policy: the fixture's keyboard (0627:0001, serial
    '68284-0000:00:07.0-1') is chosen by serial, absent at attach (its sysfs
    entry moved away), back before a restart of hostdevd (which looks for
    waiting devices at start-up), and denied by the policy then."""

    optional_usb = None
    SERIAL = "68284-0000:00:07.0-1"

    def setUp(self):
        import tempfile
        tmp = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", tmp]))
        self.host_root = extract_fixture(os.path.join(tmp, "root"))
        self.keyboard = os.path.join(self.host_root, "sys", "bus", "usb", "devices", "1-1")
        self.hidden = os.path.join(tmp, "1-1.away")
        os.rename(self.keyboard, self.hidden)
        super().setUp()

    def restart(self, policy_text=None):
        extra = ()
        if policy_text is not None:
            policy = os.path.join(self.tmp, "policy.conf")
            with open(policy, "w") as f:
                f.write(policy_text)
            os.chmod(policy, 0o644)
            extra = ("--policy", policy)
        self.daemon.terminate()
        self.daemon.wait(timeout=60)
        self.daemon = self.start_hostdevd(extra=extra)

    def listed(self):
        return [(d["alias"], d["state"]) for d in
                json.loads(self.ctl("--json", "list", self.vm, check=True).stdout)["return"]]

    def test_policy_refuses_the_device_that_appears(self):
        xml = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
               "<hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' serial='%s'/>"
               "</source></hostdev>" % self.SERIAL)
        reply = json.loads(self.ctl("--json", "attach-device", self.vm,
                                    self.write_xml("k.xml", xml), check=True).stdout)
        self.assertEqual(reply["return"]["state"], "waiting-for-device")
        before = self.qmp.peripherals()

        # the keyboard is back, but the policy no longer lets it into this VM
        os.rename(self.hidden, self.keyboard)
        self.restart("[defaults]\ndeny-usb=0627:0001\n")
        wait_for(lambda: "was not attached" in self.log(), 60,
                 "hostdevd to look at the keyboard and refuse it")
        self.assertIn("deny-usb", self.log())
        self.assertEqual(self.listed(), [("hostdev0", "waiting-for-device")])
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(self.qmp.ok("query-fdsets"), [])
        self.assertEqual(self.claims(), [])
        self.assertEqual(self.journal(), [("hostdev0", "attached")])

    def test_a_device_that_cannot_be_opened_leaves_it_waiting(self):
        xml = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
               "<vendor id='0x0627'/><product id='0x0001'/></source></hostdev>")
        self.ctl("attach-device", self.vm, self.write_xml("k.xml", xml), check=True)
        os.rename(self.hidden, self.keyboard)
        # found in the fixture's sysfs, but it has no device node to open
        self.restart()
        wait_for(lambda: "was not attached" in self.log(), 60,
                 "hostdevd to try the keyboard")
        self.assertIn("/dev/bus/usb/001/002", self.log())
        self.assertEqual(self.listed(), [("hostdev0", "waiting-for-device")])
        self.assertEqual(self.claims(), [])
        self.assertNotIn("child<usb-host>", self.qmp.peripherals().values())



if __name__ == "__main__":
    main()
