#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A crash in the middle of a <devices> request: after the restart nothing of it remains.

Real QEMU (paused, TCG), real hostdevd built with -Dtest_hooks=true, killed by
HOSTDEVD_TEST_CRASH_AT=ALIAS:STEP right after it journaled STEP of one device
of the request, then started again.  The request never got its answer, so it
must have changed nothing, whatever its devices' own records say: judged from
QEMU's own view (qom-list /machine/peripheral, x-query-usb, query-fdsets), from
the host (the claim files, the sysfs snapshot's driver and driver_override of
the PCI function, the USB hub port's "disable") and from the journal directory
(empty).  The same request then works (or fails only as it does without any
crash).

The devices: absent optional USB devices (given to QEMU by vendor/product, the
only kind QEMU can take for real here), the snapshot's USB keyboard 0627:0001
(claimed host-wide, handed to QEMU as a descriptor of a stand-in node), and
its PCI function 0000:05:00.1 (on vfio-pci, IOMMU group 12 viable).  This
machine has no VFIO and no real USB device: QEMU refuses the keyboard's
descriptor and the PCI device, so those crash before their device_add.
"""
import json
import os
import shutil
import signal
import tempfile
import unittest

from harness import HostdevdTestCase, extract_fixture, main, wait_for

TEST_HOOKS = os.environ.get("HOSTDEVD_TEST_HOOKS") == "1"


def absent_usb(product):
    return (f"<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
            f"<vendor id='0x1d6b'/><product id='{product}'/></source></hostdev>")


KEYBOARD = ("<hostdev mode='subsystem' type='usb'><source><vendor id='0x0627'/>"
            "<product id='0x0001'/></source></hostdev>")
PCI_05_00_1 = ("<hostdev mode='subsystem' type='pci' managed='no'><source><address "
               "domain='0x0000' bus='0x05' slot='0x00' function='0x1'/></source></hostdev>")


def devices(*elements):
    return "<devices>\n" + "\n".join(elements) + "\n</devices>\n"


THREE_USB = devices(absent_usb("0x0104"), absent_usb("0x0105"), absent_usb("0x0106"))
MIXED = devices(absent_usb("0x0104"), KEYBOARD, PCI_05_00_1)


@unittest.skipUnless(TEST_HOOKS, "hostdevd built without -Dtest_hooks=true has no "
                     "HOSTDEVD_TEST_CRASH_AT (tests/run.sh builds with it)")
class BatchCrash(HostdevdTestCase):

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(shutil.rmtree, root, True)
        self.host_root = extract_fixture(root, viable_group_12=True)
        # a stand-in for the keyboard's node: hostdevd opens it and passes it to QEMU
        usb = os.path.join(self.host_root, "dev", "bus", "usb", "001")
        os.makedirs(usb, exist_ok=True)
        open(os.path.join(usb, "002"), "w").close()
        super().setUp()
        self.pci = os.path.join(self.host_root, "sys", "bus", "pci", "devices", "0000:05:00.1")
        self.host_before = self.host_view()
        self.qemu_before = self.qemu_view()

    # -- views ----------------------------------------------------------------

    def journal_dir(self):
        return os.path.join(self.tmp, "state", f"{self.vm}.journal")

    def journal_files(self):
        """Every file of the journal directory, also request records and set-aside ones."""
        self.settled()
        directory = self.journal_dir()
        return sorted(os.listdir(directory)) if os.path.isdir(directory) else []

    def host_view(self):
        """What the host says of the request's devices, independent of hostdevd."""
        driver = os.path.basename(os.readlink(os.path.join(self.pci, "driver")))
        with open(os.path.join(self.pci, "driver_override")) as f:
            override = f.read().strip()
        ports = {}
        for top, _, files in os.walk(os.path.join(self.host_root, "sys", "devices")):
            if "disable" in files and "-port" in os.path.basename(top):
                with open(os.path.join(top, "disable")) as f:
                    ports[os.path.basename(top)] = f.read().strip()
        return {"driver": driver, "driver_override": override, "usb-ports": ports}

    def qemu_view(self):
        """QEMU's own view: its devices, its USB bus, its PCI devices.  (Not its fd sets:
        a paused QEMU closes a removed descriptor, and stops listing it, only once it
        runs; that the keyboard's fd set is on record is checked in the journal.)"""
        usb_text = self.qmp.ok("x-query-usb")["human-readable-text"]
        pci = sorted((d["bus"], d["slot"], d["function"], d.get("qdev_id", ""))
                     for bus in self.qmp.ok("query-pci") for d in bus["devices"])
        return {"peripherals": sorted(self.qmp.peripherals()),
                "usb": [line for line in usb_text.splitlines() if "ID: hostdev" in line],
                "pci": pci}

    def listing(self):
        return json.loads(self.ctl("--json", "list", self.vm, check=True).stdout)["return"]

    # -- the crash and the restart ---------------------------------------------

    def crash_during(self, xml, step, extra_env=None, answered=False):
        """Attach @xml with hostdevd set to die right after journaling @step; @answered:
        the client has its answer by then."""
        self.daemon.terminate()
        self.daemon.wait(timeout=60)
        daemon = self.start_hostdevd(env={"HOSTDEVD_TEST_CRASH_AT": step, **(extra_env or {})})
        result = self.ctl("attach-device", self.vm, self.write_xml("batch.xml", xml))
        self.assertEqual(result.returncode == 0, answered, result.stdout + result.stderr)
        self.assertEqual(daemon.wait(timeout=60), -signal.SIGKILL, self.log())
        self.assertIn(f"HOSTDEVD_TEST_CRASH_AT={step}: killing myself", self.log())

    def restart(self):
        self.daemon = self.start_hostdevd()

    def assert_nothing_remains(self):
        """QEMU, the host and the journal are as before the request, and hostdevd lists
        nothing (no device waits for the guest either: USB leaves QEMU at once)."""
        wait_for(lambda: self.journal_files() == [] and self.listing() == [], 60,
                 "every device of the request to be undone")
        self.assertEqual(self.qemu_view(), self.qemu_before, self.log())
        self.assertEqual(self.claims(), [], self.log())
        self.assertEqual(self.host_view(), self.host_before, self.log())

    def assert_all_attached(self, aliases):
        self.assertEqual(sorted(d["alias"] for d in self.listing()), aliases)
        self.assertEqual(sorted(set(self.qmp.peripherals()) - set(self.qemu_before["peripherals"])),
                         aliases)
        self.assertEqual(sorted(self.journal_files()), [f"{a}.json" for a in aliases])

    def attach_again_works(self):
        result = self.ctl("attach-device", self.vm, self.write_xml("again.xml", THREE_USB),
                          check=True)
        self.assertEqual(len(result.stdout.splitlines()), 3)
        self.assert_all_attached(["hostdev0", "hostdev1", "hostdev2"])

    # -- three USB devices QEMU takes -------------------------------------------

    def crash_three_usb(self, step):
        self.crash_during(THREE_USB, step)
        self.restart()
        self.assert_nothing_remains()
        self.assertIn("was interrupted before its answer: undoing every device of it",
                      self.log())
        self.attach_again_works()

    def test_crash_before_the_second_device_add(self):
        """The first device is in QEMU (its record says attaching, QEMU accepted it):
        alone, a restart would finish it."""
        self.crash_three_usb("hostdev1:attaching:device-add")

    def test_crash_before_the_third_device_add(self):
        self.crash_three_usb("hostdev2:attaching:device-add")

    def crash_kept(self, step, answered=True):
        """Past the request's record: a restart keeps all three, each recorded attached or
        still "device-add" (QEMU holds it: the attach is finished)."""
        self.crash_during(THREE_USB, step, answered=answered)
        self.restart()
        wait_for(lambda: len(self.listing()) == 3, 60, "the devices to be listed")
        self.assert_all_attached(["hostdev0", "hostdev1", "hostdev2"])
        self.assertTrue(all(d["state"] == "attached" for d in self.listing()))
        self.assertEqual(sorted(self.journal()), [("hostdev0", "attached"),
                                                  ("hostdev1", "attached"),
                                                  ("hostdev2", "attached")])

    def test_crash_once_the_request_record_is_gone_keeps_everything(self):
        """The request's record goes just before the answer: past that point a crash
        keeps every device, as one device's attach is kept once QEMU accepted it."""
        self.crash_kept("request:forgotten", answered=False)

    def test_crash_after_the_answer_keeps_everything(self):
        """Answered; no device recorded attached yet (those records follow the answer)."""
        self.crash_kept("answered")

    def test_crash_after_the_second_device_is_recorded_attached(self):
        """Answered; two records say attached, the third still "device-add"."""
        self.crash_kept("hostdev1:attached:done")

    def test_crash_right_after_the_request_record(self):
        self.crash_during(THREE_USB, "request:noted")
        self.assertEqual(len([f for f in self.journal_files() if f.endswith(".request")]), 1)
        self.restart()
        self.assert_nothing_remains()
        self.attach_again_works()

    def test_a_damaged_request_record_falls_back_to_each_device(self):
        """A request record hostdevd cannot read is set aside, said so, and each device's
        record is handled on its own: the first device, in QEMU, is finished."""
        self.crash_during(THREE_USB, "hostdev1:attaching:device-add")
        (request,) = [f for f in self.journal_files() if f.endswith(".request")]
        with open(os.path.join(self.journal_dir(), request), "w") as f:
            f.write("{\"version\": 2, \"min-reader-version\": 1, \"aliases\": [")
        self.restart()
        wait_for(lambda: [d["alias"] for d in self.listing()] == ["hostdev0"], 60,
                 "the first device to be finished on its own")
        self.assertIn(f"{request} of a <devices> request without an answer is damaged",
                      self.log())
        self.assertIn("finished or undone each on its own", self.log())
        self.assertEqual(self.journal_files(), ["hostdev0.json", f"{request}.corrupt"])
        self.assertIn("hostdev0", self.qmp.peripherals())

    def test_an_unreadable_device_record_does_not_keep_the_request(self):
        """A device record hostdevd cannot read is left for a person and never acted on;
        the rest of the request is undone all the same, and the request record goes (it
        would otherwise outlive aliases a new device may take)."""
        self.crash_during(THREE_USB, "hostdev2:attaching:device-add")
        path = os.path.join(self.journal_dir(), "hostdev2.json")
        with open(path) as f:
            record = json.load(f)
        record["xml"] = "<hostdev"
        with open(path, "w") as f:
            json.dump(record, f)
        self.restart()
        wait_for(lambda: self.journal_files() == ["hostdev2.json"] and self.listing() == [], 60,
                 "the readable devices of the request to be undone")
        self.assertIn("journal entry hostdev2 is unreadable", self.log())
        self.assertEqual(self.qemu_view(), self.qemu_before, self.log())

    # -- the keyboard and the PCI function: host state --------------------------

    def crash_mixed(self, step, claims_at_crash, fdsets_at_crash):
        self.crash_during(MIXED, step)
        self.assertEqual(self.claims(), claims_at_crash)
        # once the keyboard's descriptor went to QEMU, its record says which fd set to drop
        self.assertEqual([s["fdset-id"] for s in self.qmp.ok("query-fdsets")], fdsets_at_crash)
        with open(os.path.join(self.journal_dir(), "hostdev1.json")) as f:
            self.assertEqual(json.load(f)["host"].get("fdset-id", -1),
                             fdsets_at_crash[0] if fdsets_at_crash else -1)
        self.restart()
        self.assert_nothing_remains()
        self.assertIn("undoing every device of it", self.log())
        # the same request again goes as far as it does without a crash: QEMU refuses the
        # keyboard's stand-in descriptor, and everything is taken back
        again = self.ctl("--json", "attach-device", self.vm,
                         self.write_xml("again.xml", MIXED), check=False)
        self.assertIn("QEMU could not add usb-host", json.loads(again.stdout)["error"]["desc"])
        self.assert_nothing_remains()

    def test_mixed_crash_before_the_keyboard_is_added(self):
        """The absent USB device is in QEMU, the keyboard and the PCI function are
        claimed and the keyboard's descriptor is in QEMU (an fd set)."""
        self.crash_mixed("hostdev1:attaching:device-add",
                         ["iommu_group_12", "pci_0000_05_00_1", "usb_1_2"], [0])

    def test_mixed_crash_before_the_pci_claim(self):
        """Every claim comes first in a request: the keyboard is claimed, its descriptor
        not yet in QEMU."""
        self.crash_mixed("hostdev2:attaching:claim", ["usb_1_2"], [])

    def test_a_device_another_vm_claimed_meanwhile_is_left_to_it(self):
        """Between the crash and the restart another VM's hostdevd took the keyboard's
        claim (written here as that hostdevd would, by a live process: the test): the
        restart drops the keyboard's record without touching the device or the claim,
        and undoes the rest of the request."""
        self.crash_during(MIXED, "hostdev1:attaching:device-add")
        path = os.path.join(self.tmp, "claims", "usb_1_2")
        with open(path) as f:
            claim = json.load(f)
        with open("/proc/self/stat") as f:
            start_time = int(f.read().rsplit(")", 1)[1].split()[19])
        claim.update(vm="othervm", pid=os.getpid(), **{"start-time": start_time})
        claim.pop("qemu-pid", None)
        claim.pop("qemu-start-time", None)
        with open(path, "w") as f:
            json.dump(claim, f)
        self.restart()
        wait_for(lambda: self.journal_files() == [] and self.listing() == [], 60,
                 "the request to be undone")
        self.assertIn("hostdev1: dropping its journal record without touching the device: "
                      "usb_1_2 (VM 'othervm') holds it now", self.log())
        self.assertEqual(self.claims(), ["usb_1_2"])
        with open(path) as f:
            self.assertEqual(json.load(f), claim)
        # the keyboard's hub port was not disabled under the other VM
        self.assertEqual(self.host_view(), self.host_before)
        self.assertEqual(self.qemu_view()["peripherals"], self.qemu_before["peripherals"])
        self.assertEqual(self.qemu_view()["usb"], [])


if __name__ == "__main__":
    main()
