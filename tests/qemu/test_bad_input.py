#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad input gets a clear error and changes nothing; hostdevd keeps serving."""
import json
import os
import tempfile

from harness import HostdevdTestCase, extract_fixture, main

USB_NOWHERE = """<hostdev mode='subsystem' type='usb'>
  <source><vendor id='0x1d6b'/><product id='0x0104'/></source>
</hostdev>"""


class BadInput(HostdevdTestCase):

    def setUp(self):
        super().setUp()
        self.before = self.qmp.peripherals()

    def assert_unchanged(self, client=None):
        """QEMU has what it had, and hostdevd still answers."""
        self.assertEqual(self.qmp.peripherals(), self.before)
        client = client or self.control()
        self.assertEqual(client.execute("list-devices", id="alive"), {"return": [], "id": "alive"})

    def attach_error(self, xml):
        client = self.control()
        reply = client.execute("attach-device", {"xml": xml}, id=7)
        self.assertEqual(reply.get("id"), 7)
        self.assertIn("error", reply, reply)
        self.assert_unchanged(client)
        return reply["error"]

    def test_malformed_xml(self):
        error = self.attach_error("<hostdev mode='subsystem' type='usb'><source>")
        self.assertEqual(error["class"], "InvalidXML")
        self.assertIn("line", error["desc"])

    def test_unknown_hostdev_type(self):
        error = self.attach_error("<hostdev mode='subsystem' type='firewire'><source/></hostdev>")
        self.assertEqual(error["class"], "InvalidArgument")
        self.assertIn("firewire", error["desc"])
        self.assertIn("usb", error["desc"])

    def test_scsi_is_not_supported(self):
        error = self.attach_error("<hostdev mode='subsystem' type='scsi'><source/></hostdev>")
        self.assertEqual(error["class"], "InvalidArgument")
        self.assertIn("not supported by hostdevd", error["desc"])

    def test_vendor_product_matching_nothing(self):
        error = self.attach_error(USB_NOWHERE)
        self.assertEqual(error["class"], "NotFound")
        self.assertIn("1d6b:0104", error["desc"])
        self.assertIn("optional", error["desc"])

    def test_out_of_range_bus(self):
        error = self.attach_error("<hostdev mode='subsystem' type='usb'><source>"
                                  "<address bus='70000' device='1'/></source></hostdev>")
        self.assertEqual(error["class"], "InvalidArgument")
        self.assertIn("70000", error["desc"])

    def test_entity_expansion_refused(self):
        error = self.attach_error("""<!DOCTYPE hostdev [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<hostdev mode='subsystem' type='usb'><source><vendor id='&x;'/></source></hostdev>""")
        self.assertEqual(error["class"], "InvalidXML")

    def test_not_json(self):
        client = self.control()
        client.send_raw(b"attach-device please\n")
        reply = client.reply()
        self.assertEqual(reply["error"]["class"], "InvalidArgument")
        self.assertIn("not valid JSON", reply["error"]["desc"])
        self.assert_unchanged(client)

    def test_json_that_is_not_a_request(self):
        client = self.control()
        for payload, needle in [(b"[1, 2]\n", "must be a JSON object"),
                                (b'{"arguments": {}}\n', 'no "execute"'),
                                (b'{"execute": 5}\n', "must be a string"),
                                (b'{"execute": "list-devices", "arguments": []}\n', "JSON object"),
                                (b'{"execute": "list-devices", "extra": 1}\n', "unknown member"),
                                (b'{"execute": "reboot-host"}\n', "unknown command 'reboot-host'"),
                                (b'{"execute": "attach-device"}\n', "needs the argument 'xml'"),
                                (b'{"execute": "attach-device", "arguments": {"xml": 5}}\n',
                                 "must be a string"),
                                (b'{"execute": "detach-device", "arguments": {"wait": -1, '
                                 b'"alias": "x"}}\n', "'wait'"),
                                (b'{"execute": "list-devices", "arguments": {"a": {"b": {"c": '
                                 b'{"d": {"e": {"f": {"g": {"h": {}}}}}}}}}}\n', "nested")]:
            client.send_raw(payload)
            reply = client.reply()
            self.assertIn("error", reply, payload)
            self.assertEqual(reply["error"]["class"], "InvalidArgument", payload)
            self.assertIn(needle, reply["error"]["desc"], payload)
        self.assert_unchanged(client)

    def test_oversized_request(self):
        client = self.control()
        big = json.dumps({"execute": "attach-device", "id": 1,
                          "arguments": {"xml": "<hostdev>" + "x" * (1024 * 1024) + "</hostdev>"}})
        client.send_raw(big.encode() + b"\n")
        reply = client.reply()
        self.assertEqual(reply["error"]["class"], "InvalidArgument")
        self.assertIn("exceeds the limit", reply["error"]["desc"])
        self.assert_unchanged(client)

    def test_detach_of_unknown_device(self):
        result = self.ctl("detach-device-alias", self.vm, "hostdev9", check=False)
        self.assertEqual(result.returncode, 1)
        self.assertIn("no device attached by hostdevd matches alias 'hostdev9'", result.stderr)
        self.assert_unchanged()

    def test_hostdevctl_usage_errors(self):
        self.assertEqual(self.ctl("attach-device", self.vm).returncode, 2)
        self.assertEqual(self.ctl("frobnicate", self.vm).returncode, 2)
        missing = self.ctl("attach-device", self.vm, "/nonexistent.xml")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("/nonexistent.xml", missing.stderr)
        nowhere = self.ctl("list", "no-such-vm")
        self.assertEqual(nowhere.returncode, 1)
        self.assertIn("Is hostdevd running for this VM", nowhere.stderr)
        self.assert_unchanged()


class PciAttachChecks:
    """PCI attaches that must fail before QEMU is asked, leaving QEMU unchanged."""

    def pci_xml(self, bdf, managed="no"):
        domain, bus, rest = bdf.split(":")
        slot, function = rest.split(".")
        return (f"<hostdev mode='subsystem' type='pci' managed='{managed}'><source>"
                f"<address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' "
                f"function='0x{function}'/></source></hostdev>")

    def attach_error(self, xml):
        before = self.qmp.peripherals()
        result = self.ctl("--json", "attach-device", self.vm, self.write_xml("pci.xml", xml),
                          check=False)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(self.qmp.peripherals(), before)
        return json.loads(result.stdout)["error"]


class PciWithoutVfio(PciAttachChecks, HostdevdTestCase):
    """This host: PCI devices, but no IOMMU."""

    def test_no_such_device(self):
        error = self.attach_error(self.pci_xml("0000:3f:1f.7"))
        self.assertEqual(error["class"], "NotFound")
        self.assertIn("0000:3f:1f.7", error["desc"])
        self.assertIn("nodedev-list", error["desc"])

    def test_host_without_iommu(self):
        devices = sorted(os.listdir("/sys/bus/pci/devices")) if os.path.isdir(
            "/sys/bus/pci/devices") else []
        if not devices or os.listdir("/sys/kernel/iommu_groups"):
            self.skipTest("needs a host with PCI devices and no IOMMU, like the CI machine")
        error = self.attach_error(self.pci_xml(devices[0]))
        self.assertEqual(error["class"], "HostError")
        self.assertIn("IOMMU", error["desc"])


class PciOnFixtureHost(PciAttachChecks, HostdevdTestCase):
    """The sysfs snapshot: an IOMMU, but 0000:01:00.0 is on e1000e, not vfio-pci."""

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(lambda: __import__("shutil").rmtree(root, ignore_errors=True))
        self.host_root = extract_fixture(root, viable_group_12=True)
        super().setUp()

    def test_not_bound_to_vfio(self):
        error = self.attach_error(self.pci_xml("0000:01:00.0"))
        self.assertEqual(error["class"], "HostError")
        self.assertIn("e1000e", error["desc"])
        self.assertIn("vfio-pci", error["desc"])

    def test_bound_to_vfio_reaches_qemu(self):
        # 0000:05:00.1 is on vfio-pci in the snapshot: every host check passes, and
        # the failure comes from QEMU, which has no such host device here
        error = self.attach_error(self.pci_xml("0000:05:00.1"))
        self.assertEqual(error["class"], "QemuError")
        self.assertIn("vfio-pci", error["desc"])
        # claimed for the attempt, given back with the failure
        self.assertEqual(self.claims(), [])


class NonViableGroupOnFixtureHost(PciAttachChecks, HostdevdTestCase):
    """0000:05:00.1 is on vfio-pci, but 0000:05:00.0 of its group is on e1000e."""

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(lambda: __import__("shutil").rmtree(root, ignore_errors=True))
        self.host_root = extract_fixture(root)
        super().setUp()

    def test_refused_before_qemu_is_asked(self):
        error = self.attach_error(self.pci_xml("0000:05:00.1"))
        self.assertEqual(error["class"], "HostError")
        self.assertIn("IOMMU group 12 of 0000:05:00.1 is not viable", error["desc"])
        self.assertIn("0000:05:00.0 [8086:10d3] on driver e1000e", error["desc"])



class TakeoverCompanionDenied(PciAttachChecks, HostdevdTestCase):
    """The VM may take IOMMU group 12 whole, but the policy denies 0000:05:00.0, the
    endpoint the takeover would unbind from e1000e for 0000:05:00.1."""

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(lambda: __import__("shutil").rmtree(root, ignore_errors=True))
        self.host_root = extract_fixture(root)
        super().setUp()

    def start_hostdevd(self, extra=(), wait=True, env=None):
        policy = os.path.join(self.tmp, "policy.conf")
        with open(policy, "w") as f:
            f.write("[defaults]\nallow-iommu-group-takeover=true\ndeny-pci=0000:05:00.0\n")
        os.chmod(policy, 0o644)
        return super().start_hostdevd(extra=("--policy", policy, *extra), wait=wait, env=env)

    def test_the_companion_passes_the_policy_too(self):
        companion = os.path.join(self.host_root, "sys/bus/pci/devices/0000:05:00.0")
        override = open(os.path.join(companion, "driver_override")).read()
        error = self.attach_error(self.pci_xml("0000:05:00.1", managed="yes"))
        self.assertEqual(error["class"], "PolicyDenied", error)
        self.assertIn("taking IOMMU group 12 whole for 0000:05:00.1 would bind", error["desc"])
        self.assertIn("deny-pci", error["desc"])
        # nothing of the group was touched
        self.assertEqual(os.path.basename(os.readlink(os.path.join(companion, "driver"))),
                         "e1000e")
        self.assertEqual(open(os.path.join(companion, "driver_override")).read(), override)
        self.assertEqual(self.claims(), [])
        self.assertEqual(self.journal(), [])

if __name__ == "__main__":
    main()
