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
import json
import os
import shutil
import tempfile

from harness import dry_run_qmp, dry_run_steps, HostdevdTestCase, extract_fixture, main


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


if __name__ == "__main__":
    main()
