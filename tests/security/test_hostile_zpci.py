#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Issue 11, finding 3: identifiers from QEMU never become file paths.

A QEMU that pretends to be s390x (the scripted QMP peer: a real QEMU does
not lie) reports zpci devices whose "target" is a path ("../../etc/x"), a
long string, or an alias hostdevd never left there.  None of them is
reused or turns into an alias or a journal file: the attach gets fresh
zPCI ids and nothing outside the state directory is touched.  Only a zpci
that hostdevd's own journal records leaving (a target QEMU could not add)
is taken over.  The architecture comes from QEMU's executable (here the
test's Python, so x86_64) or --qemu-arch, never from query-target alone:
a peer that says s390x without either is refused.
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.environ.get("HOSTDEVD_QEMU_TESTS",
                                  os.path.join(os.path.dirname(__file__), "..", "qemu")))
from fake_qemu import FakeQemu  # noqa: E402
from harness import HostdevdTestCase, extract_fixture, main  # noqa: E402

PCI = ("<hostdev mode='subsystem' type='pci' managed='no'><source>"
       "<address domain='0x0000' bus='0x05' slot='0x00' function='0x1'/></source></hostdev>")
LONG = "a" * 5000


class FakeS390x(HostdevdTestCase):
    optional_usb = None
    qemu_arch = ["--qemu-arch", "s390x"]

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(shutil.rmtree, root, True)
        self.host_root = extract_fixture(root, viable_group_12=True)
        super().setUp()

    def start_qemu(self):
        self.qmp_path = os.path.join(self.tmp, "fake.qmp")
        self.fake = FakeQemu(self.qmp_path)
        self.fake.arch = "s390x"
        self.addCleanup(self.fake.close)
        return None

    def start_hostdevd(self, extra=(), wait=True, env=None):
        return super().start_hostdevd(list(self.qemu_arch) + list(extra), wait, env)

    def attach(self):
        return json.loads(self.ctl("--json", "attach-device", self.vm,
                                   self.write_xml("pci.xml", PCI)).stdout)

    def zpci_added(self):
        return [a for c, a in self.fake.commands if c == "device_add" and a.get("driver") == "zpci"]

    def journal_files(self):
        self.settled()
        return sorted(os.listdir(os.path.join(self.tmp, "state", f"{self.vm}.journal")))

    def all_files(self):
        found = set()
        for top, _, names in os.walk(self.tmp):
            found.update(os.path.relpath(os.path.join(top, n), self.tmp) for n in names)
        return found


class HostileTargets(FakeS390x):

    def test_hostile_targets_are_neither_reused_nor_paths(self):
        self.fake.zpci = {
            "zpci3": {"uid": 3, "fid": 3, "target": "../../etc/x"},
            "zpci4": {"uid": 4, "fid": 4, "target": LONG},
            "zpci5": {"uid": 5, "fid": 5, "target": "hostdev0"},   # not in our journal
        }
        before = self.all_files()
        reply = self.attach()
        self.assertIn("return", reply, f"{reply}\n{self.log()}")
        self.assertEqual(reply["return"]["alias"], "hostdev0")
        added = self.zpci_added()
        self.assertEqual(len(added), 1, added)
        self.assertEqual((added[0]["uid"], added[0]["fid"], added[0]["target"]), (1, 0, "hostdev0"))
        log = self.log()
        self.assertNotIn("reusing zpci", log)
        self.assertIn('QEMU reports "../../etc/x" as the target of zpci zpci3, which is not a '
                      'device id hostdevd gives', log)
        self.assertIn('QEMU reports "' + "a" * 64 + '..." as the target of zpci zpci4', log)
        self.assertIn("zpci 'zpci5' (uid 5 fid 5) has no target in QEMU, but hostdevd's journal "
                      "does not record leaving it there: not reused", log)
        # nothing outside the state directory: only the journal entry and the claims are new
        new = {f for f in self.all_files() - before
               if not f.startswith(("state/", "claims/")) and f not in ("hostdevd.log", "pci.xml")}
        self.assertEqual(new, set())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "etc")))
        self.assertEqual(self.journal_files(), ["hostdev0.json"])

        # detach: the device and its own zpci go; the hostile ones stay QEMU's business
        self.fake.on_device_del = "delete"
        result = json.loads(self.ctl("--json", "detach-device-alias", self.vm, "hostdev0",
                                     "--wait", "5").stdout)
        self.assertEqual(result["return"]["status"], "detached", result)
        self.assertEqual(sorted(self.fake.zpci), ["zpci3", "zpci4", "zpci5"])
        self.assertEqual(self.journal_files(), [])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "etc")))


class JournaledReuse(FakeS390x):

    def test_only_a_journaled_zpci_is_reused(self):
        self.fake.refuse_driver = "vfio-pci"
        reply = self.attach()
        self.assertEqual(reply["error"]["class"], "QemuError", reply)
        self.assertEqual(list(self.fake.zpci), ["zpci1"])
        self.assertEqual(self.journal_files(), ["zpci1.zpci"])
        record = json.load(open(os.path.join(self.tmp, "state", f"{self.vm}.journal", "zpci1.zpci")))
        self.assertEqual((record["id"], record["uid"], record["fid"], record["target"]),
                         ("zpci1", 1, 0, "hostdev0"))

        self.fake.refuse_driver = None
        reply = self.attach()
        self.assertIn("return", reply, f"{reply}\n{self.log()}")
        self.assertEqual(reply["return"]["alias"], "hostdev0")
        self.assertIn("reusing zpci uid 1 fid 0", self.log())
        self.assertEqual(len(self.zpci_added()), 1)       # the first attempt's, taken over
        self.assertEqual(self.journal_files(), ["hostdev0.json"])


class MisreportedArch(FakeS390x):
    qemu_arch = []     # the peer's executable (Python: x86_64) decides

    def test_s390x_answer_of_an_x86_64_executable_is_refused(self):
        self.fake.zpci = {"zpci3": {"uid": 3, "fid": 3, "target": "../../etc/x"}}
        reply = self.attach()
        self.assertEqual(reply["error"]["class"], "QemuError", reply)
        self.assertIn('QEMU answers query-target with "s390x", but QEMU\'s executable ',
                      reply["error"]["desc"])
        self.assertIn("emulates x86_64: refusing to act on a QEMU that misreports itself",
                      reply["error"]["desc"])
        self.assertEqual(self.fake.count("device_add"), 0)
        self.assertEqual(self.journal_files(), [])
        self.assertIn("emulates x86_64, as its executable", self.log())


if __name__ == "__main__":
    main()
