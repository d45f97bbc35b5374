#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Detach timing a paused QEMU cannot show (scripted QMP peer), crash safety
and QEMU's death (real QEMU)."""
import json
import os
import signal
import time
import unittest

from fake_qemu import FakeQemu
from harness import HostdevdTestCase, Qmp, main, wait_for

USB = """<hostdev mode='subsystem' type='usb'>
  <source startupPolicy='optional'><vendor id='0x1d6b'/><product id='0x0104'/></source>
</hostdev>"""


class FakeQemuCase(HostdevdTestCase):
    """hostdevd against the scripted peer instead of QEMU."""

    def start_qemu(self):
        self.qmp_path = os.path.join(self.tmp, "fake.qmp")
        self.fake = FakeQemu(self.qmp_path)
        self.addCleanup(self.fake.close)
        return None

    def listing(self):
        return {d["alias"]: d["state"]
                for d in json.loads(self.ctl("--json", "list", self.vm, check=True).stdout)["return"]}


class WithFakeQemu(FakeQemuCase):
    """... with one optional USB device attached."""

    def setUp(self):
        super().setUp()
        self.ctl("attach-device", self.vm, self.write_xml("usb.xml", USB), check=True)

    def wait_forged_seen(self, count):
        """Wait until hostdevd has checked @count DEVICE_DELETED events against QEMU's
        own view and found the device still there (a fixed sleep would let a slow
        hostdevd be checked before it looked, and pass whatever it then does)."""
        wait_for(lambda: self.log().count("a forged or early event") >= count, 60,
                 f"hostdevd to see forged event number {count}")

    def test_late_device_deleted_finishes_the_release(self):
        self.fake.on_device_del = "silent"
        result = self.ctl("--json", "detach-device-alias", self.vm, "hostdev0", "--wait", "0.5",
                          check=True)
        self.assertEqual(json.loads(result.stdout)["return"],
                         {"alias": "hostdev0", "source": "USB device 1d6b:0104",
                          "status": "pending"})
        self.assertEqual(self.listing(), {"hostdev0": "detaching"})
        # a second attach of the same source is refused while QEMU may hold it
        again = self.ctl("attach-device", self.vm, os.path.join(self.tmp, "usb.xml"))
        self.assertIn("detach is still pending", again.stderr)

        self.fake.delete("hostdev0")
        wait_for(lambda: self.listing() == {}, 60, "the late DEVICE_DELETED to be handled")
        self.assertIn("the guest finished the pending unplug", self.log())
        self.assertEqual(self.journal(), [])

    def test_forged_device_deleted_releases_nothing(self):
        # QEMU says the device left while its own device list still has it: the
        # claim and the journal stay, the device stays the VM's, listed detaching
        self.fake.on_device_del = "forge"
        result = self.ctl("--json", "detach-device-alias", self.vm, "hostdev0", "--wait", "2",
                          check=True)
        self.assertEqual(json.loads(result.stdout)["return"]["status"], "pending")
        self.assertIn("hostdev0", self.fake.devices)
        self.assertEqual(self.listing(), {"hostdev0": "detaching"})
        self.assertEqual(self.journal(), [("hostdev0", "detaching")])
        self.assertIn("a forged or early event", self.log())
        # nor does a forged event for an attached device, seen by the VM-wide handler:
        # once hostdevd has looked (it says so a second time), nothing has changed
        self.fake.forge_deleted("hostdev0")
        self.wait_forged_seen(2)
        self.assertEqual(self.listing(), {"hostdev0": "detaching"})
        self.assertEqual(self.journal(), [("hostdev0", "detaching")])
        # once QEMU really lets go, the device is given back
        self.fake.delete("hostdev0")
        wait_for(lambda: self.listing() == {}, 60, "the real DEVICE_DELETED to be handled")
        self.assertEqual(self.journal(), [])

    def test_forged_guest_unplug_releases_nothing(self):
        self.fake.forge_deleted("hostdev0")
        self.wait_forged_seen(1)
        self.assertEqual(self.listing(), {"hostdev0": "attached"})
        self.assertEqual(self.journal(), [("hostdev0", "attached")])

    def test_guest_error_keeps_the_device(self):
        self.fake.on_device_del = "guest-error"
        result = self.ctl("detach-device-alias", self.vm, "hostdev0", check=False)
        self.assertEqual(result.returncode, 1)
        self.assertIn("the guest refused to release hostdev0", result.stderr)
        self.assertEqual(self.listing(), {"hostdev0": "attached"})
        self.assertIn("hostdev0", self.fake.devices)

    def test_late_guest_error_after_pending(self):
        self.fake.on_device_del = "silent"
        self.ctl("detach-device-alias", self.vm, "hostdev0", "--wait", "0.3", check=True)
        self.assertEqual(self.listing(), {"hostdev0": "detaching"})
        self.fake.event("DEVICE_UNPLUG_GUEST_ERROR", device="hostdev0",
                        path="/machine/peripheral/hostdev0")
        wait_for(lambda: self.listing() == {"hostdev0": "attached"}, 60,
                 "the device to be attached again")

    def test_guest_busy_is_retried(self):
        self.fake.busy_replies = 3
        result = self.ctl("--json", "detach-device-alias", self.vm, "hostdev0", check=True)
        self.assertEqual(json.loads(result.stdout)["return"]["status"], "detached")
        self.assertEqual(self.fake.count("device_del"), 4)
        self.assertEqual(self.listing(), {})

    def test_guest_busy_past_the_wait_is_an_error(self):
        self.fake.busy_replies = 100
        result = self.ctl("detach-device-alias", self.vm, "hostdev0", "--wait", "0.5")
        self.assertEqual(result.returncode, 1)
        self.assertIn("guest is busy", result.stderr)
        self.assertEqual(self.listing(), {"hostdev0": "attached"})

    def test_already_gone_counts_as_detached(self):
        self.fake.devices.pop("hostdev0")   # gone without an event hostdevd saw
        result = self.ctl("--json", "detach-device-alias", self.vm, "hostdev0", check=True)
        self.assertEqual(json.loads(result.stdout)["return"]["status"], "detached")
        self.assertEqual(self.listing(), {})

    def test_foreign_id_clash_is_resolved(self):
        self.fake.devices["hostdev1"] = {"driver": "usb-host"}   # added behind our back
        xml = USB.replace("0x0104", "0x0105")
        out = self.ctl("attach-device", self.vm, self.write_xml("b.xml", xml), check=True).stdout
        self.assertIn("as hostdev2", out)


class HostileUsbAnswers(FakeQemuCase):
    """Issue 11, item 12, and issue 14: what QEMU says about the USB ports that
    are taken (x-query-usb, read before hostdevd chooses a port) is checked; an
    answer that cannot be trusted refuses the attach before anything is done."""

    def attach_refused(self, needle):
        result = self.ctl("--json", "attach-device", self.vm, self.write_xml("usb.xml", USB))
        self.assertEqual(result.returncode, 1, result.stdout)
        error = json.loads(result.stdout)["error"]
        self.assertEqual(error["class"], "QemuError", error)
        self.assertIn(needle, error["desc"])
        self.assertEqual(self.listing(), {})
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.fake.devices, {})

    def test_bus_without_controller(self):
        self.fake.usb_extra_lines = ["  Device 7.1, Port 1, Speed 12 Mb/s, Product x"]
        self.attach_refused("shows a device on USB bus 7")

    def test_port_too_deep(self):
        self.fake.usb_extra_lines = ["  Device 0.1, Port 1.2.3.4.5, Speed 12 Mb/s, Product x"]
        self.attach_refused("port must be 1 to 4 numbers")

    def test_port_the_controller_lacks(self):
        self.fake.usb_extra_lines = ["  Device 0.1, Port 9, Speed 12 Mb/s, Product x"]
        self.attach_refused("has only 4 ports")

    def test_product_string_with_a_line_break(self):
        self.fake.usb_extra_lines = [
            "  Device 0.9, Port 9, Speed 12 Mb/s, Product evil", " Device 0.8, Port 8"]
        self.attach_refused("not a USB device")

    def test_product_string_posing_as_a_device_only_takes_a_port(self):
        """A product string cannot hold a whole line; one that imitates an id makes
        its own port look taken, nothing more: the device goes to the next one."""
        self.fake.usb_extra_lines = [
            "  Device 0.1, Port 1, Speed 12 Mb/s, Product evil, ID: hostdev0"]
        self.ctl("attach-device", self.vm, self.write_xml("usb.xml", USB), check=True)
        self.assertEqual(self.fake.devices["hostdev0"].get("port"), "2")

    def test_chosen_port_is_journaled(self):
        self.fake.usb_extra_lines = [
            "  Device 0.1, Port 1, Speed 12 Mb/s, Product QEMU USB Tablet",
            "  Device 0.2, Port 2, Speed 12 Mb/s, Product QEMU USB Hub",
            "  Device 0.3, Port 2.1, Speed 12 Mb/s, Product QEMU USB Mouse",
            "  Device 0.4, Port 3, Speed 12 Mb/s, Product QEMU USB Kbd",
            "  Device 0.5, Port 4, Speed 12 Mb/s, Product QEMU USB Kbd"]
        self.ctl("attach-device", self.vm, self.write_xml("usb.xml", USB), check=True)
        self.assertEqual(self.listing(), {"hostdev0": "attached"})
        self.assertEqual((self.fake.devices["hostdev0"].get("bus"),
                          self.fake.devices["hostdev0"].get("port")), ("usb.0", "2.2"))
        self.assertIn("port='2.2'", self.ctl("dumpxml", self.vm, check=True).stdout)
        self.assertIn("hostdev0", [e[0] for e in self.journal()])


TEST_HOOKS = os.environ.get("HOSTDEVD_TEST_HOOKS") == "1"


@unittest.skipUnless(TEST_HOOKS, "hostdevd built without -Dtest_hooks=true has no "
                     "HOSTDEVD_TEST_CRASH_AT (tests/run.sh builds with it)")
class Crashing:
    """hostdevd restarted so that it kills itself right after journaling a step."""

    def restart_with_crash(self, step):
        self.daemon.terminate()
        self.daemon.wait(timeout=60)
        return self.start_hostdevd(env={"HOSTDEVD_TEST_CRASH_AT": step})


class CrashSafety(Crashing, HostdevdTestCase):
    """hostdevd SIGKILLed at every step boundary, restarted: QEMU, journal and list agree.
    An absent optional USB device takes nothing from the host, so its attach has the
    steps device-add and done, its detach device-del and forgotten; the host steps
    (claim, vfio-bind, host-release) are exercised by PciCrashSafety and tests/vm."""

    def check_consistent(self, expect_attached):
        """After a restart: QEMU, hostdevd's list and the journal say the same."""
        self.daemon = self.start_hostdevd()
        def settled():
            listing = json.loads(self.ctl("--json", "list", self.vm, check=True).stdout)["return"]
            return all(d["state"] == "attached" for d in listing) and listing
        if expect_attached:
            wait_for(settled, 60, "the device to be listed as attached")
        else:
            wait_for(lambda: "hostdev0" not in self.qmp.peripherals(), 60, "QEMU to drop it")
            wait_for(lambda: "hostdev0" not in self.ctl("list", self.vm, check=True).stdout, 60,
                     "hostdevd to release it")
        listing = json.loads(self.ctl("--json", "list", self.vm, check=True).stdout)["return"]
        in_qemu = "hostdev0" in self.qmp.peripherals()
        self.assertEqual(in_qemu, expect_attached, self.log())
        self.assertEqual([d["alias"] for d in listing], ["hostdev0"] if expect_attached else [])
        self.assertEqual(self.journal(), [("hostdev0", "attached")] if expect_attached else [])

    def crash_attach(self, step, expect_attached, answered=False):
        """@answered: the client has its answer before hostdevd dies (the "attached" record
        is written right after it)."""
        daemon = self.restart_with_crash(step)
        result = self.ctl("attach-device", self.vm, self.write_xml("usb.xml", USB))
        self.assertEqual(result.returncode == 0, answered, result.stderr)
        self.assertEqual(daemon.wait(timeout=60), -signal.SIGKILL)
        self.check_consistent(expect_attached)

    def crash_detach(self, step):
        self.ctl("attach-device", self.vm, self.write_xml("usb.xml", USB), check=True)
        daemon = self.restart_with_crash(step)
        self.ctl("detach-device-alias", self.vm, "hostdev0")
        self.assertEqual(daemon.wait(timeout=60), -signal.SIGKILL)
        self.check_consistent(False)

    def test_crash_before_device_add(self):
        self.crash_attach("attaching:device-add", False)

    def test_crash_after_answer_before_record(self):
        # told "attached", recorded only as "device-add": the restart finishes the attach
        self.crash_attach("answered", True, answered=True)

    def test_crash_after_attach_recorded(self):
        self.crash_attach("attached:done", True, answered=True)

    def test_crash_before_device_del(self):
        self.crash_detach("detaching:device-del")

    def test_crash_after_forgetting(self):
        self.crash_detach("forgotten")


class PciCrashSafety(Crashing, HostdevdTestCase):
    """The same for a PCI device of the sysfs snapshot (on vfio-pci, group viable):
    claims and the host record are journaled and given back after a restart."""

    def setUp(self):
        import shutil
        import tempfile
        from harness import extract_fixture
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(shutil.rmtree, root, True)
        self.host_root = extract_fixture(root, viable_group_12=True)
        super().setUp()

    def crash_pci_attach(self, step):
        xml = ("<hostdev mode='subsystem' type='pci' managed='no'><source><address "
               "domain='0x0000' bus='0x05' slot='0x00' function='0x1'/></source></hostdev>")
        daemon = self.restart_with_crash(step)
        self.assertNotEqual(self.ctl("attach-device", self.vm, self.write_xml("p.xml", xml))
                            .returncode, 0)
        self.assertEqual(daemon.wait(timeout=60), -signal.SIGKILL)
        if step != "attaching:claim":
            self.assertEqual(self.claims(), ["iommu_group_12", "pci_0000_05_00_1"])
        self.daemon = self.start_hostdevd()
        wait_for(lambda: self.journal() == [], 60, "the interrupted attach to be undone")
        self.assertEqual(self.claims(), [])
        self.assertNotIn("hostdev0", self.qmp.peripherals())
        self.assertIn("undoing an attach interrupted at step", self.log())

    def test_pci_crash_before_claim(self):
        self.crash_pci_attach("attaching:claim")

    def test_pci_crash_before_binding(self):
        self.crash_pci_attach("attaching:vfio-bind")

    def test_pci_crash_before_device_add(self):
        self.crash_pci_attach("attaching:device-add")


class QemuDeath(HostdevdTestCase):

    def test_qemu_killed_releases_everything(self):
        for product in ("0x0104", "0x0105", "0x0106"):
            self.ctl("attach-device", self.vm,
                     self.write_xml(f"{product}.xml", USB.replace("0x0104", product)), check=True)
        self.qemu.kill()
        self.assertEqual(self.daemon.wait(timeout=60), 0, self.log())
        for alias in ("hostdev0", "hostdev1", "hostdev2"):
            self.assertIn(f"{alias} (USB device", self.log())
        self.assertEqual(self.journal(), [])


if __name__ == "__main__":
    main()
