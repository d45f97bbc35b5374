#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Where PCI devices go in the guest: real QEMU topologies, read through QOM.

The host side is the real sysfs snapshot (--host-root): 0000:05:00.1 is on
vfio-pci there, so every host check passes and placement is what is tested.
This machine has no VFIO, so QEMU itself cannot open the device: placement
shows in --dry-run, and a real attach shows the rollback.  tests/vm attaches
for real.
"""
import json
import os
import shutil
import tempfile

from harness import dry_run_qmp, dry_run_steps, HostdevdTestCase, extract_fixture, main


def pci_xml(guest=""):
    return ("<hostdev mode='subsystem' type='pci' managed='no'><source>"
            "<address domain='0x0000' bus='0x05' slot='0x00' function='0x1'/></source>"
            f"{guest}</hostdev>")


class FixtureHost(HostdevdTestCase):

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(shutil.rmtree, root, True)
        self.host_root = extract_fixture(root, viable_group_12=True)
        super().setUp()

    def plan(self, guest=""):
        """The device_add commands of a dry run."""
        result = self.ctl("attach-device", self.vm, self.write_xml("pci.xml", pci_xml(guest)),
                          "--dry-run", check=True)
        return [command["arguments"] for command in dry_run_qmp(result.stdout)]

    def refused(self, guest):
        result = self.ctl("--json", "attach-device", self.vm,
                          self.write_xml("pci.xml", pci_xml(guest)), check=False)
        return json.loads(result.stdout)["error"]

    def occupy(self, bus, id):
        self.qmp.ok("device_add", driver="e1000e", bus=bus, id=id)


class Q35Placement(FixtureHost):

    def test_a_bridge_as_source_is_refused_as_such(self):
        """Issue 14: 0000:03:00.0 is a PCI bridge (and 0000:00:05.0 the root port above
        it); the refusal says so, before any IOMMU group is looked at, managed or not."""
        for source, managed in (("bus='0x03' slot='0x00'", "yes"), ("bus='0x00' slot='0x05'", "no")):
            xml = (f"<hostdev mode='subsystem' type='pci' managed='{managed}'><source>"
                   f"<address domain='0x0000' {source} function='0x0'/></source></hostdev>")
            result = self.ctl("--json", "attach-device", self.vm, self.write_xml("b.xml", xml),
                              "--dry-run", check=False)
            error = json.loads(result.stdout)["error"]
            self.assertEqual(error["class"], "InvalidArgument", error)
            self.assertRegex(error["desc"], r"^0000:0[03]:0[05]\.0 is a PCI bridge: bridges "
                                            r"cannot be assigned")
            self.assertNotIn("IOMMU", error["desc"])

    def test_lowest_free_root_port(self):
        self.assertEqual(self.plan(), [{"driver": "vfio-pci", "host": "0000:05:00.1",
                                        "id": "hostdev0", "bus": "pci.1", "addr": "0x0"}])
        self.occupy("pci.1", "nic1")
        self.occupy("pci.2", "nic2")
        self.assertEqual(self.plan()[0]["bus"], "pci.3")

    def test_dry_run_prints_the_plan_the_attach_runs(self):
        result = self.ctl("attach-device", self.vm, self.write_xml("pci.xml", pci_xml()),
                          "--dry-run", check=True)
        self.assertEqual(dry_run_steps(result.stdout), ["claim", "vfio-bind", "guest-memory",
                                                        "memlock", "device-add"])
        self.assertIn("# claim: claim PCI device 0000:05:00.1 and its IOMMU group", result.stdout)
        self.assertIn("# vfio-bind: use 0000:05:00.1 as it is, on vfio-pci (managed='no')",
                      result.stdout)
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.claims(), [])

    def test_explicit_address_is_honoured(self):
        guest = "<address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>"
        device = self.plan(guest)[0]
        self.assertEqual((device["bus"], device["addr"]), ("pci.4", "0x0"))

    def test_occupied_slot_is_refused(self):
        self.occupy("pci.2", "nic2")
        error = self.refused("<address type='pci' domain='0x0000' bus='0x02' slot='0x00' "
                             "function='0x0'/>")
        self.assertEqual(error["class"], "Busy")
        self.assertIn("taken by nic2", error["desc"])

    def test_root_bus_is_refused(self):
        error = self.refused("<address type='pci' domain='0x0000' bus='0x00' slot='0x05' "
                             "function='0x0'/>")
        self.assertEqual(error["class"], "InvalidArgument")
        self.assertIn("pcie.0", error["desc"])
        self.assertIn("does not take hot-plugged devices", error["desc"])

    def test_unknown_bus_lists_usable_ones(self):
        error = self.refused("<address type='pci' domain='0x0000' bus='0x09' slot='0x00' "
                             "function='0x0'/>")
        self.assertIn("no PCI controller with index 9", error["desc"])
        self.assertIn("pci.1 (pcie-root-port)", error["desc"])

    def test_root_port_has_one_slot(self):
        error = self.refused("<address type='pci' domain='0x0000' bus='0x01' slot='0x01' "
                             "function='0x0'/>")
        self.assertIn("has only slot 0x00", error["desc"])

    def test_other_functions_are_refused(self):
        error = self.refused("<address type='pci' domain='0x0000' bus='0x01' slot='0x00' "
                             "function='0x1' multifunction='on'/>")
        self.assertIn("only function 0 can be hot-plugged", error["desc"])

    def test_no_free_slot(self):
        for index in range(1, 5):
            self.occupy(f"pci.{index}", f"nic{index}")
        error = self.refused("")
        self.assertEqual(error["class"], "Busy")
        self.assertIn("-device pcie-root-port,id=pci.5,chassis=5", error["desc"])

    def test_a_slot_taken_since_the_last_look_is_stepped_over(self):
        """Issue 14: one device is placed from the device list QEMU last gave (no round
        trip); a device added since through another monitor makes QEMU refuse that slot,
        and hostdevd reads the list again and places it once more."""
        self.assertEqual(self.plan()[0]["bus"], "pci.1")      # a dry run reads the list
        self.occupy("pci.1", "nic1")                          # behind hostdevd's back
        before = self.qmp.peripherals()
        error = self.refused("")
        # QEMU refused pci.1; the second try, on pci.2, is refused for the device
        # itself (no VFIO on this machine), not for its slot
        self.assertEqual(error["class"], "QemuError", error)
        self.assertNotIn("not available", error["desc"])
        self.assertIn("hostdev0: its guest slot (pci.1 slot 0) was taken meanwhile; "
                      "pci.2 slot 0 instead", self.log())
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.claims(), [])

    def test_a_named_slot_taken_since_the_last_look_is_refused_as_taken(self):
        self.plan()
        self.occupy("pci.2", "nic2")
        before = self.qmp.peripherals()
        error = self.refused("<address type='pci' domain='0x0000' bus='0x02' slot='0x00' "
                             "function='0x0'/>")
        self.assertEqual(error["class"], "Busy", error)
        self.assertIn("taken by nic2", error["desc"])
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(self.journal(), [])

    def test_attach_failure_in_qemu_rolls_back(self):
        before = self.qmp.peripherals()
        error = self.refused("")
        self.assertEqual(error["class"], "QemuError")
        self.assertIn("QEMU could not add vfio-pci for PCI device 0000:05:00.1", error["desc"])
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(json.loads(self.ctl("--json", "list", self.vm).stdout)["return"], [])
        self.assertEqual(self.journal(), [])


    def test_rom_file_only_from_allowed_directory(self):
        """A ROM in the system ROM directory reaches QEMU; the same bytes elsewhere do not."""
        roms = os.path.join(self.host_root, "usr", "share", "qemu")
        os.makedirs(roms, exist_ok=True)
        with open(os.path.join(roms, "gpu.rom"), "wb") as f:
            f.write(b"\x55\xaaROM")
        with open(os.path.join(self.host_root, "secret.rom"), "wb") as f:
            f.write(b"\x55\xaaROM")
        before = self.qmp.peripherals()
        device = self.plan("<rom bar='on' file='/usr/share/qemu/gpu.rom'/>")[0]
        self.assertEqual((device["rombar"], device["romfile"]), (1, "/usr/share/qemu/gpu.rom"))
        error = self.refused("<rom bar='on' file='/secret.rom'/>")
        self.assertEqual(error["class"], "PolicyDenied")
        self.assertIn("not in a directory the policy allows (/usr/share/qemu, ", error["desc"])
        self.assertIn("allow-rom-dirs", error["desc"])
        self.assertEqual(self.qmp.peripherals(), before)


class Q35WithBridgeAndHotplugOff(FixtureHost):
    qemu_extra = ["-device", "pcie-root-port,id=pci.5,chassis=5,hotplug=off",
                  "-device", "pcie-pci-bridge,id=pci.6,bus=pci.4"]

    def test_hotplug_off_port_and_bridge_slots(self):
        for index in range(1, 4):
            self.occupy(f"pci.{index}", f"nic{index}")
        # pci.4 carries the bridge, pci.5 refuses hot-plug: the bridge's first slot is next
        device = self.plan()[0]
        self.assertEqual((device["bus"], device["addr"]), ("pci.6", "0x1"))
        error = self.refused("<address type='pci' domain='0x0000' bus='0x05' slot='0x00' "
                             "function='0x0'/>")
        self.assertIn("does not take hot-plugged devices", error["desc"])


class RememberedDeviceList(FixtureHost):
    """Issue 14: one device is placed from the device list QEMU last gave hostdevd,
    kept up to date since, without asking QEMU again; judged from QEMU's own trace of
    every QMP command it received."""
    qemu_extra = ["-trace", "handle_qmp_command"]

    def received(self):
        """The commands QEMU's trace shows, in order (both monitors)."""
        commands = []
        with open(os.path.join(self.tmp, "qemu.log"), errors="replace") as f:
            for line in f:
                _, sep, request = line.partition("handle_qmp_command")
                _, sep, request = request.partition("req: ") if sep else ("", "", "")
                if sep:
                    commands.append(json.loads(request)["execute"])
        return commands

    def attach_usb(self):
        xml = ("<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
               "<vendor id='0x1d6b'/><product id='0x0104'/></source></hostdev>")
        self.ctl("attach-device", self.vm, self.write_xml("usb.xml", xml), check=True)

    def sent_for_attach(self):
        """What QEMU received during one PCI attach (refused: no VFIO here), up to its device_add."""
        start = len(self.received())
        error = self.refused("")
        self.assertIn("QEMU could not add vfio-pci", error["desc"])
        sent = self.received()[start:]
        return sent[:sent.index("device_add") + 1]

    def test_the_list_serves_again_until_a_device_add_fails(self):
        self.plan()                          # a dry run asks QEMU (and never reuses)
        self.attach_usb()                    # hostdevd's own device joins the list
        self.assertEqual(self.sent_for_attach(), ["query-memory-size-summary", "device_add"])
        # the failed device_add may have left anything: asked again in full
        sent = self.sent_for_attach()
        self.assertIn("qom-list", sent)
        self.assertEqual(sent[-1], "device_add")


class I440fxPlacement(FixtureHost):
    machine = "pc"

    def test_root_bus_takes_hotplug_after_builtin_devices(self):
        device = self.plan()[0]
        # slot 0 host bridge, slot 1 PIIX3/IDE/ACPI: the first free slot is 2
        self.assertEqual((device["bus"], device["addr"]), ("pci.0", "0x2"))
        error = self.refused("<address type='pci' domain='0x0000' bus='0x00' slot='0x01' "
                             "function='0x0'/>")
        self.assertIn("taken by a built-in device", error["desc"])


if __name__ == "__main__":
    main()
