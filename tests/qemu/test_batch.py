#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Several devices in one request: a <devices> element attaches all of them or none.

Real QEMU, real hostdevd; the host is the sysfs snapshot (--host-root), where
0000:05:00.1 is on vfio-pci and 0000:05:00.0, the other endpoint of IOMMU
group 12, is on e1000e.  This machine has no VFIO, so QEMU cannot open a PCI
device for real: a batch holding one shows its plan in --dry-run, and a real
attach shows that every device already added is taken back.  USB devices no
host has (startupPolicy='optional') are added for real.
"""
import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import dry_run_qmp, dry_run_steps, HostdevdTestCase, extract_fixture, main, wait_for

FAKE_KERNEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lifecycle",
                           "fake_kernel.py")


def usb(product, extra=""):
    return (f"<hostdev mode='subsystem' type='usb'><source startupPolicy='optional'>"
            f"<vendor id='0x1d6b'/><product id='{product}'/></source>{extra}</hostdev>")


def pci(function, managed, bus="0x05", guest=""):
    return (f"<hostdev mode='subsystem' type='pci' managed='{managed}'><source>"
            f"<address domain='0x0000' bus='{bus}' slot='0x00' function='{function}'/>"
            f"</source>{guest}</hostdev>")


def guest_address(function, multifunction=""):
    mf = f" multifunction='{multifunction}'" if multifunction else ""
    return (f"<address type='pci' domain='0x0000' bus='0x02' slot='0x00' "
            f"function='{function}'{mf}/>")


def devices(*elements):
    return "<devices>\n" + "\n".join(elements) + "\n</devices>\n"


class Batch(HostdevdTestCase):
    viable_group = True

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(shutil.rmtree, root, True)
        self.host_root = extract_fixture(root, viable_group_12=self.viable_group)
        super().setUp()

    def attach(self, xml, *args, check=None):
        return self.ctl("attach-device", self.vm, self.write_xml("batch.xml", xml), *args,
                        check=check)

    def error(self, xml, *args):
        result = self.ctl("--json", "attach-device", self.vm, self.write_xml("batch.xml", xml),
                          *args, check=False)
        return json.loads(result.stdout)["error"]

    def listing(self):
        return json.loads(self.ctl("--json", "list", self.vm).stdout)["return"]


class UsbBatch(Batch):

    def test_every_device_is_attached(self):
        before = set(self.qmp.peripherals())
        result = self.attach(devices(usb("0x0104"), usb("0x0105")), check=True)
        self.assertEqual(result.stdout.splitlines(), ["Device attached successfully as hostdev0",
                                                      "Device attached successfully as hostdev1"])
        # QEMU's own view: both, each with the product asked for
        self.assertEqual(set(self.qmp.peripherals()) - before, {"hostdev0", "hostdev1"})
        self.assertEqual(self.qmp.ok("qom-get", path="/machine/peripheral/hostdev1",
                                     property="productid"), 0x0105)
        self.assertEqual([d["alias"] for d in self.listing()], ["hostdev0", "hostdev1"])
        self.assertEqual(sorted(alias for alias, state in self.journal()),
                         ["hostdev0", "hostdev1"])
        # each on its own port, the ones libvirt gives: QEMU's view agrees
        for alias, port in (("hostdev0", "1"), ("hostdev1", "2")):
            self.assertEqual(self.qmp.ok("qom-get", path=f"/machine/peripheral/{alias}",
                                         property="port"), port)
            self.assertRegex(self.qmp.ok("x-query-usb")["human-readable-text"],
                             rf"Device 0\.\d+, Port {port}, .*ID: {alias}\n")
        live = self.ctl("dumpxml", self.vm, check=True).stdout.split("</hostdev>")
        self.assertIn("<address type='usb' bus='0' port='1'/>",
                      next(x for x in live if "hostdev0" in x))
        self.assertIn("<address type='usb' bus='0' port='2'/>",
                      next(x for x in live if "hostdev1" in x))

    def test_a_devices_request_detaches_each_and_says_which_failed(self):
        request = devices(usb("0x0104"), usb("0x0105"))
        self.attach(request, check=True)
        result = self.ctl("detach-device", self.vm, self.write_xml("batch.xml", request),
                          check=True)
        self.assertEqual(result.stdout.splitlines(), ["Device detached successfully (hostdev0)",
                                                      "Device detached successfully (hostdev1)"])
        self.assertEqual(set(self.qmp.peripherals()) & {"hostdev0", "hostdev1"}, set())
        self.assertEqual(self.listing(), [])
        # one device of the request is not attached: the other still leaves, the error says so
        self.attach(usb("0x0104"), check=True)
        result = self.ctl("--json", "detach-device", self.vm, self.write_xml("batch.xml", request),
                          check=False)
        error = json.loads(result.stdout)["error"]
        self.assertEqual(error["class"], "NotFound")
        self.assertIn("device 2 of <devices>: no device attached by hostdevd matches",
                      error["desc"])
        self.assertIn("the request's other devices: hostdev0 (detached)", error["desc"])
        self.assertEqual(self.listing(), [])

    def test_one_refused_device_changes_nothing(self):
        before = self.qmp.peripherals()
        error = self.error(devices(usb("0x0104"), usb("0x0105", "<boot order='x'/>")))
        self.assertEqual(error["class"], "InvalidArgument")
        self.assertIn("device 2 of <devices>", error["desc"])
        error = self.error(devices(usb("0x0104"), usb("0x0104")))
        self.assertIn("devices 1 and 2 of <devices> both name", error["desc"])
        error = self.error("<devices>\n  <!-- nothing -->\n</devices>")
        self.assertIn("<devices> holds no device", error["desc"])
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(self.listing(), [])
        self.assertEqual(self.journal(), [])


class MixedBatch(Batch):

    def test_a_failure_in_qemu_takes_back_what_was_added(self):
        """The USB device goes in first; QEMU cannot open the PCI device here: the USB
        device leaves again, the PCI device's host preparation is given back."""
        before = self.qmp.peripherals()
        error = self.error(devices(usb("0x0104"), pci("0x1", "no")))
        self.assertEqual(error["class"], "QemuError")
        self.assertIn("QEMU could not add vfio-pci for PCI device 0000:05:00.1", error["desc"])
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(self.listing(), [])
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.claims(), [])
        self.assertIn("undoing", self.log())

    def test_the_policy_sees_every_device_of_the_request(self):
        """A ROM file outside the allowed directories is refused in a <devices> request
        as it is alone: the policy is asked about each device, not about the request."""
        before = self.qmp.peripherals()
        error = self.error(devices(usb("0x0104"),
                                   pci("0x1", "no", guest="<rom bar='on' file='/etc/shadow'/>")))
        self.assertEqual(error["class"], "PolicyDenied")
        self.assertIn("device 2 of <devices> (PCI device 0000:05:00.1)", error["desc"])
        self.assertIn("<rom file='/etc/shadow'>", error["desc"])
        self.assertEqual(self.qmp.peripherals(), before)
        self.assertEqual(self.journal(), [])

    def test_two_devices_of_one_request_never_share_a_slot(self):
        result = self.attach(devices(pci("0x0", "yes", bus="0x01"), pci("0x1", "no")),
                             "--dry-run", check=True)
        places = [(c["arguments"]["host"], c["arguments"]["bus"], c["arguments"]["addr"])
                  for c in dry_run_qmp(result.stdout)]
        self.assertEqual(places, [("0000:01:00.0", "pci.1", "0x0"),
                                  ("0000:05:00.1", "pci.2", "0x0")])

    def test_dry_run_plans_every_device_in_its_own_place(self):
        result = self.attach(devices(pci("0x1", "no"), usb("0x0104")), "--dry-run", check=True)
        self.assertEqual(dry_run_steps(result.stdout),
                         ["claim", "vfio-bind", "guest-memory", "memlock",
                          "device-add", "device-add"])
        vfio, usb_host = [c["arguments"] for c in dry_run_qmp(result.stdout)]
        self.assertEqual((vfio["id"], vfio["bus"]), ("hostdev0", "pci.1"))
        self.assertEqual((usb_host["id"], usb_host["driver"]), ("hostdev1", "usb-host"))
        # the USB device's port is chosen too; device_add's success proves it there
        self.assertEqual((usb_host["bus"], usb_host["port"]), ("usb.0", "1"))
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.claims(), [])


class WholeGroupInOneRequest(Batch):
    """Group 12 is not viable while 0000:05:00.0 is on e1000e."""
    viable_group = False

    def test_a_request_holding_the_whole_group_is_viable(self):
        """Both functions of host slot 05:00, no guest address: one multifunction slot,
        keeping the host's function numbers, function 1 first and function 0 last."""
        alone = self.error(pci("0x1", "no"), "--dry-run")
        self.assertIn("IOMMU group 12 of 0000:05:00.1 is not viable", alone["desc"])
        self.assertIn("a <devices> element holding a <hostdev> for each", alone["desc"])
        result = self.attach(devices(pci("0x0", "yes"), pci("0x1", "no")), "--dry-run",
                             check=True)
        first, last = [c["arguments"] for c in dry_run_qmp(result.stdout)]
        self.assertEqual(first, {"driver": "vfio-pci", "host": "0000:05:00.1", "id": "hostdev1",
                                 "bus": "pci.1", "addr": "0x0.0x1"})
        self.assertEqual(last, {"driver": "vfio-pci", "host": "0000:05:00.0", "id": "hostdev0",
                                "bus": "pci.1", "multifunction": True, "addr": "0x0"})
        self.assertIn("# vfio-bind: unbind 0000:05:00.0 from e1000e and bind it to vfio-pci",
                      result.stdout)
        self.assertEqual(self.claims(), [])

    def test_a_multifunction_slot_the_xml_places(self):
        zero = pci("0x0", "yes", guest=guest_address("0x0", "on"))
        one = pci("0x1", "no", guest=guest_address("0x1"))
        result = self.attach(devices(one, zero), "--dry-run", check=True)
        first, last = [c["arguments"] for c in dry_run_qmp(result.stdout)]
        self.assertEqual((first["id"], first["bus"], first["addr"]), ("hostdev0", "pci.2", "0x0.0x1"))
        self.assertEqual((last["id"], last["bus"], last["addr"], last["multifunction"]),
                         ("hostdev1", "pci.2", "0x0", True))
        # libvirt's rule: function 0 of a shared slot says multifunction='on'
        error = self.error(devices(one, pci("0x0", "yes", guest=guest_address("0x0"))),
                           "--dry-run")
        self.assertIn("needs multifunction='on'", error["desc"])
        error = self.error(devices(zero, pci("0x1", "no", guest=guest_address("0x0"))),
                           "--dry-run")
        self.assertIn("both are function 0 of one guest slot", error["desc"])

    def test_a_request_holding_part_of_the_group_names_what_is_missing(self):
        error = self.error(devices(usb("0x0104"), pci("0x1", "no")), "--dry-run")
        self.assertEqual(error["class"], "HostError")
        self.assertIn("device 2 of <devices> (PCI device 0000:05:00.1)", error["desc"])
        self.assertIn("0000:05:00.0 [8086:10d3] on driver e1000e", error["desc"])


# IOMMU groups 9 (the e1000e), 13 (a VF without driver) and 11 (two e1000
# behind a PCIe-to-PCI bridge, which needs no driver), all managed: four
# bindings, those of group 11 one after the other.
SOLO, VF, PAIR_A, PAIR_B = "0000:01:00.0", "0000:02:00.1", "0000:04:01.0", "0000:04:02.0"
UNRELATED = (SOLO, VF, PAIR_A, PAIR_B)


def pci_at(bdf):
    domain, bus, rest = bdf.split(":")
    slot, function = rest.split(".")
    return (f"<hostdev mode='subsystem' type='pci' managed='yes'><source>"
            f"<address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>"
            f"</source></hostdev>")


def fuse_usable():
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        return False
    probe = subprocess.run(["/usr/bin/python3", "-c", "import sys; sys.path.append("
                            "'/usr/lib/python3/dist-packages'); import fuse"], capture_output=True)
    return probe.returncode == 0


class KernelControl:
    """The fake kernel's control socket: JSON lines, one request at a time."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")

    def call(self, **request):
        self.file.write((json.dumps(request) + "\n").encode())
        self.file.flush()
        return json.loads(self.file.readline())

    def close(self):
        self.file.close()
        self.sock.close()


@unittest.skipUnless(fuse_usable(), "needs root, /dev/fuse and python3-fuse (the fake kernel)")
class ParallelBinds(Batch):
    """Managed PCI devices of unrelated IOMMU groups in one request, on the
    fake kernel of the lifecycle runs (tests/lifecycle/fake_kernel.py): a
    FUSE sysfs where driver_override, unbind and drivers_probe act as the
    kernel's do, every write logged in order, faults (slow or failing
    writes) on demand.  QEMU is real; it cannot open the devices here, so
    an attach that gets as far as device_add is undone, which is as much a
    rollback to check as a failed binding is."""

    def setUp(self):
        tree = tempfile.mkdtemp(prefix="hostdevd-tree-")
        self.addCleanup(shutil.rmtree, tree, True)
        extract_fixture(tree)
        mount = tempfile.mkdtemp(prefix="hostdevd-fuse-")
        control = os.path.join(tree, "kernel.sock")
        kernel = subprocess.Popen(["/usr/bin/python3", FAKE_KERNEL, "--tree", tree,
                                   "--mount", mount, "--control", control],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self._stop_kernel, kernel, mount)
        wait_for(lambda: (os.path.exists(control) and os.path.isdir(os.path.join(mount, "sys")))
                 or kernel.poll() is not None, 30, "the fake kernel's mount")
        self.assertIsNone(kernel.poll(), "the fake kernel exited")
        self.kernel = KernelControl(control)
        self.addCleanup(self.kernel.close)
        self.host_root = mount
        HostdevdTestCase.setUp(self)

    @staticmethod
    def _stop_kernel(kernel, mount):
        HostdevdTestCase.stop(kernel)
        with open("/proc/self/mountinfo") as f:
            if any(line.split()[4] == mount for line in f):
                subprocess.run(["umount", "-l", mount], capture_output=True)
        os.rmdir(mount)

    def host(self):
        return {bdf: (d["driver"], d["override"])
                for bdf, d in self.kernel.call(op="state")["pci"].items() if bdf in UNRELATED}

    def kernel_log(self):
        return self.kernel.call(op="log")["log"]

    @staticmethod
    def first(log, text):
        """The index of the first entry of the fake kernel's @log holding @text."""
        return next((i for i, entry in enumerate(log) if text in entry), None)

    def assert_given_back(self, before):
        self.assertEqual(self.host(), before)
        state = self.kernel.call(op="state")
        self.assertEqual(sorted(state["nodes"]), ["12", "vfio"],
                         "only the fixture's own group 12 is on vfio-pci")
        self.assertEqual(state["violations"], [])
        self.assertEqual(self.claims(), [])
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.listing(), [])

    def test_the_plan_binds_unrelated_groups_together(self):
        result = self.attach(devices(*map(pci_at, UNRELATED)), "--dry-run", check=True)
        self.assertEqual(dry_run_steps(result.stdout),
                         ["claim"] * 4 + ["vfio-bind"] * 4 + ["guest-memory", "memlock"] * 4 +
                         ["device-add"] * 4)
        binds = [line for line in result.stdout.splitlines() if line.startswith("# vfio-bind")]
        self.assertTrue(binds[0].startswith(f"# vfio-bind: unbind {SOLO} from e1000e"), binds[0])
        self.assertTrue(binds[0].endswith("[runs together with steps 6, 7, 8]"), binds[0])
        self.assertTrue(binds[1].endswith("[runs together with steps 5, 7, 8]"), binds[1])
        self.assertTrue(binds[2].endswith("[runs together with steps 5, 6]"), binds[2])
        # one IOMMU group's members one after the other
        self.assertTrue(binds[3].endswith("[runs together with steps 5, 6] [after step 7]"),
                        binds[3])
        plan = json.loads(self.ctl("--json", "attach-device", self.vm,
                                   self.write_xml("batch.xml", devices(*map(pci_at, UNRELATED))),
                                   "--dry-run").stdout)["return"]["plan"]
        self.assertEqual([(s.get("together"), s.get("after")) for s in plan[4:8]],
                         [([6, 7, 8], None), ([5, 7, 8], None), ([5, 6], None), ([5, 6], [7])])
        self.assertEqual(self.kernel_log(), [], "a dry run writes nothing")

    def hold(self, bdf, name):
        """@bdf's driver_override write waits until release(@name); a test
        that fails on the way lets it go at cleanup."""
        self.kernel.call(op="fault", fault={"match": f"{bdf}/driver_override", "hold": name,
                                            "count": 1})
        self.addCleanup(self.release, name)

    def release(self, name):
        self.kernel.call(op="release", name=name)

    def error_later(self, xml):
        """The attach of @xml runs while the test goes on; result() is its error."""
        pool = concurrent.futures.ThreadPoolExecutor(1)
        self.addCleanup(pool.shutdown)
        return pool.submit(self.error, xml)

    def wait_kernel(self, text):
        return wait_for(lambda: self.first(self.kernel_log(), text) is not None, 60,
                        f"'{text}' in the fake kernel's log")

    def test_bindings_of_other_groups_run_while_one_is_slow(self):
        """The e1000e's first write is held until the last of the others is
        bound: they do not wait for it; group 11's second member starts only
        once its first is bound.  QEMU then cannot open the devices: all are
        given back."""
        before = self.host()
        self.hold(SOLO, "solo")
        attach = self.error_later(devices(*map(pci_at, UNRELATED)))
        # the VF's binding runs on a thread of its own: group 11's two being done says
        # nothing of it, so each of the others is waited for before the e1000e goes on
        for other in (VF, PAIR_B):
            self.wait_kernel(f"bind {other} vfio-pci")
        self.release("solo")
        error = attach.result(timeout=120)
        self.assertEqual(error["class"], "QemuError", error)
        log = self.kernel_log()
        bound = {bdf: self.first(log, f"bind {bdf} vfio-pci") for bdf in UNRELATED}
        self.assertNotIn(None, bound.values(), log)
        for other in (VF, PAIR_A, PAIR_B):
            self.assertLess(bound[other], bound[SOLO],
                            f"{other} was bound only after the held {SOLO}: {log}")
        self.assertLess(bound[PAIR_A], self.first(log, f"{PAIR_B}/driver_override"),
                        f"{PAIR_B} of the same group started before {PAIR_A} was bound: {log}")
        self.assertIn("undoing", self.log())
        self.assert_given_back(before)

    def test_a_failed_binding_waits_for_the_others_then_all_are_undone(self):
        """The VF's driver_override cannot be written (EIO) while the e1000e's
        and group 11's first member's writes are held: no more bindings start
        (group 11's second member never does), and once both are let go the
        undo still waits until the e1000e's thread is done, then every device
        that was bound goes back."""
        before = self.host()
        self.hold(SOLO, "solo")
        self.hold(PAIR_A, "pair")
        self.kernel.call(op="fault", fault={"match": f"{VF}/driver_override", "errno": 5,
                                            "count": 1})
        attach = self.error_later(devices(*map(pci_at, UNRELATED)))
        wait_for(lambda: "attach failed at step 'vfio-bind'" in self.log(), 60,
                 "hostdevd to see the VF's binding fail")
        self.release("pair")
        self.wait_kernel(f"bind {PAIR_A} vfio-pci")
        # the undo must not start on group 11's binding alone: give it the
        # time to show that it wrongly would, then let the e1000e go
        time.sleep(0.5)
        self.release("solo")
        error = attach.result(timeout=120)
        self.assertEqual(error["class"], "HostError", error)
        self.assertIn(f"cannot set driver_override=vfio-pci on PCI device {VF}", error["desc"])
        log = self.kernel_log()
        self.assertIsNone(self.first(log, PAIR_B), f"{PAIR_B} was touched: {log}")
        solo_bound = self.first(log, f"bind {SOLO} vfio-pci")
        self.assertIsNotNone(solo_bound, log)
        # nothing was undone while the e1000e's binding was still writing
        undo = [i for i, entry in enumerate(log) if entry.startswith("unbind ") and "vfio-pci" in entry]
        self.assertTrue(undo, f"nothing was unbound from vfio-pci: {log}")
        self.assertGreater(min(undo), solo_bound, log)
        self.assertIsNotNone(self.first(log, f"unbind {PAIR_A} vfio-pci"), log)
        self.assertGreater(self.first(log, f"unbind {SOLO} vfio-pci"), solo_bound, log)
        self.assert_given_back(before)


if __name__ == "__main__":
    main()
