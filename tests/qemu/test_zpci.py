#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""zPCI on a real qemu-system-s390x: zpci before its target, uid/fid
assignment and conflicts, and what happens when the target cannot be added.

The VM starts with zpci uid 1 / fid 0 for a virtio-net device and one
virtio-rng device whose zPCI ids QEMU picks itself.
"""
import json
import os
import shutil
import tempfile

from harness import dry_run_qmp, QEMU_S390X, HostdevdTestCase, extract_fixture, main


def pci_xml(zpci=""):
    guest = f"<address type='pci'>{zpci}</address>" if zpci else ""
    return ("<hostdev mode='subsystem' type='pci' managed='no'><source>"
            "<address domain='0x0000' bus='0x05' slot='0x00' function='0x1'/></source>"
            f"{guest}</hostdev>")


class Zpci(HostdevdTestCase):
    qemu_binary = QEMU_S390X
    machine = "s390-ccw-virtio"
    qemu_extra = ["-device", "zpci,uid=1,fid=0,target=net0,id=zpci1",
                  "-device", "virtio-net-pci,id=net0", "-device", "virtio-rng-pci"]

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(shutil.rmtree, root, True)
        self.host_root = extract_fixture(root, viable_group_12=True)
        super().setUp()

    def zpci_in_qemu(self):
        """(uid, fid, target) of every zPCI function, read through the test's own monitor."""
        bus = "/machine/s390-pcihost/s390-pcibus.0"
        found = []
        for entry in self.qmp.ok("qom-list", path=bus):
            if entry["type"] == "link<zpci>":
                path = self.qmp.ok("qom-get", path=bus, property=entry["name"])
                found.append(tuple(self.qmp.ok("qom-get", path=path, property=p)
                                   for p in ("uid", "fid", "target")))
        return sorted(found)

    def plan(self, zpci=""):
        result = self.ctl("attach-device", self.vm, self.write_xml("z.xml", pci_xml(zpci)),
                          "--dry-run", check=True)
        return [command["arguments"] for command in dry_run_qmp(result.stdout)]

    def test_zpci_goes_first_with_the_lowest_free_ids(self):
        used = self.zpci_in_qemu()
        uid = min(set(range(1, 100)) - {u for u, _, _ in used})
        fid = min(set(range(0, 100)) - {f for _, f, _ in used})
        # issue 14: a slot on the zPCI host bus as libvirt gives it: net0 sits in slot 0,
        # the virtio-rng QEMU placed itself in slot 1, so the first free one is 2
        self.assertEqual(self.qmp.ok("qom-get", path="/machine/peripheral/net0",
                                     property="addr"), 0)
        self.assertEqual(self.plan(), [
            {"driver": "zpci", "uid": uid, "fid": fid, "target": "hostdev0", "id": f"zpci{uid}"},
            {"driver": "vfio-pci", "host": "0000:05:00.1", "id": "hostdev0",
             "bus": "pci.0", "addr": "0x2"}])

    def test_a_slot_the_xml_names_is_used_or_refused(self):
        plan = self.plan("<zpci uid='0x0010'/>").pop()
        self.assertEqual((plan["bus"], plan["addr"]), ("pci.0", "0x2"))
        xml = pci_xml().replace("</hostdev>", "<address type='pci' domain='0x0000' bus='0x00' "
                                "slot='0x05' function='0x0'/></hostdev>")
        result = self.ctl("attach-device", self.vm, self.write_xml("z.xml", xml), "--dry-run",
                          check=True)
        vfio = dry_run_qmp(result.stdout)[-1]["arguments"]
        self.assertEqual((vfio["bus"], vfio["addr"]), ("pci.0", "0x5"))
        taken = xml.replace("slot='0x05'", "slot='0x01'")
        result = self.ctl("--json", "attach-device", self.vm, self.write_xml("z.xml", taken))
        self.assertIn("slot='0x01'>: the slot is taken by /machine/peripheral-anon/device[0]",
                      json.loads(result.stdout)["error"]["desc"])

    def test_explicit_ids_are_used(self):
        commands = self.plan("<zpci uid='0x0010' fid='0x00000020'/>")
        self.assertEqual(commands[0], {"driver": "zpci", "uid": 16, "fid": 32,
                                       "target": "hostdev0", "id": "zpci16"})

    def test_uid_in_use_is_refused(self):
        result = self.ctl("--json", "attach-device", self.vm,
                          self.write_xml("z.xml", pci_xml("<zpci uid='0x0001'/>")))
        error = json.loads(result.stdout)["error"]
        self.assertEqual(error["class"], "Busy")
        self.assertIn("uid 0x0001 is already used by zpci1 of net0", error["desc"])

    def test_fid_in_use_is_refused(self):
        result = self.ctl("--json", "attach-device", self.vm,
                          self.write_xml("z.xml", pci_xml("<zpci uid='0x0030' fid='0x00000000'/>")))
        error = json.loads(result.stdout)["error"]
        self.assertIn("fid 0x0000 is already used by zpci1", error["desc"])

    def test_failed_target_leaves_qemu_alive_and_nothing_leaks(self):
        before = self.zpci_in_qemu()
        for attempt in range(2):
            result = self.ctl("--json", "attach-device", self.vm, self.write_xml("z.xml", pci_xml()))
            error = json.loads(result.stdout)["error"]
            self.assertEqual(error["class"], "QemuError")
            self.assertIn("QEMU could not add vfio-pci", error["desc"])
        # QEMU 7.2 crashes when a zpci whose target never existed is removed, so the
        # first attempt's zpci stays, and the second attempt reuses it instead of adding one
        after = self.zpci_in_qemu()
        self.assertEqual(len(after), len(before) + 1, after)
        self.assertIn("hostdev0", [target for _, _, target in after])
        self.assertIn("reusing zpci", self.log())
        # issue 11, finding 3: the architecture is the executable's, and the zpci
        # left in QEMU is reused because hostdevd's journal records leaving it
        self.assertIn("emulates s390x, as its executable", self.log())
        journal = os.path.join(self.tmp, "state", f"{self.vm}.journal")
        left = [name for name in os.listdir(journal) if name.endswith(".zpci")]
        self.assertEqual(len(left), 1, left)
        record = json.load(open(os.path.join(journal, left[0])))
        self.assertEqual(record["target"], "hostdev0")
        self.assertIn((record["uid"], record["fid"], "hostdev0"), after)
        self.assertEqual(self.qmp.ok("query-status")["status"], "prelaunch")
        self.assertEqual(json.loads(self.ctl("--json", "list", self.vm).stdout)["return"], [])


if __name__ == "__main__":
    main()
