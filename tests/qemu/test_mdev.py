#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Mediated devices under the policy, max-devices and the host-wide claims.

hostdevd runs on the sysfs snapshot (--host-root) in which the e1000e at
0000:01:00.0 is given the sysfs of an mdev parent (as a vGPU driver would
register it) with three instances: one whose UUID `hostdevctl mdev-create
--vm testvm` derives, one it derives for another VM, one random.  The
refusals come before anything is claimed or sent to QEMU; a real QEMU
cannot open a fixture's mdev, so what passes the policy is shown with a
dry run.
"""
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

from harness import (HOSTDEVD, QEMU, ControlClient, HostdevdTestCase, extract_fixture, main,
                     wait_for)

# MDEV_UUID_NAMESPACE of broker/host/mdev.h
NAMESPACE = uuid.UUID("57cc83f9-3422-4737-97f9-30ad5193f722")
PARENT = "sys/devices/pci0000:00/0000:00:03.0/0000:01:00.0"
RANDOM_UUID = "4b20d080-1b54-4048-85b3-a6a62d165c01"


def vm_uuid(vm, index=0):
    """What `hostdevctl mdev-create PARENT TYPE --vm VM --index INDEX` names its instance."""
    return str(uuid.uuid3(NAMESPACE, f"{vm}/{index}"))


OWN_UUID = vm_uuid("testvm")
OTHER_UUID = vm_uuid("othervm")


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def add_mdev_parent(root):
    """0000:01:00.0 offers nvidia-63 and nvidia-64; one instance per UUID of this test."""
    for type_id, name in (("nvidia-63", "GRID P4-1Q"), ("nvidia-64", "GRID P4-2Q")):
        base = f"{PARENT}/mdev_supported_types/{type_id}"
        write(root, f"{base}/name", name + "\n")
        write(root, f"{base}/device_api", "vfio-pci\n")
        write(root, f"{base}/available_instances", "2\n")
        write(root, f"{base}/create", "")
    os.makedirs(os.path.join(root, "sys/class/mdev_bus"), exist_ok=True)
    os.symlink("../../devices/pci0000:00/0000:00:03.0/0000:01:00.0",
               os.path.join(root, "sys/class/mdev_bus/0000:01:00.0"))
    os.makedirs(os.path.join(root, "sys/bus/mdev/devices"), exist_ok=True)
    for instance, type_id in ((OWN_UUID, "nvidia-63"), (OTHER_UUID, "nvidia-63"),
                              (RANDOM_UUID, "nvidia-64")):
        device = os.path.join(root, PARENT, instance)
        os.makedirs(device)
        os.symlink(f"../mdev_supported_types/{type_id}", os.path.join(device, "mdev_type"))
        os.symlink(f"../../../devices/pci0000:00/0000:00:03.0/0000:01:00.0/{instance}",
                   os.path.join(root, "sys/bus/mdev/devices", instance))


def mdev_xml(instance):
    return (f"<hostdev mode='subsystem' type='mdev' model='vfio-pci'>"
            f"<source><address uuid='{instance}'/></source></hostdev>")


class MdevCase(HostdevdTestCase):
    """hostdevd on the fixture with an mdev parent, under POLICY (None: the built-in one)."""

    POLICY = None

    def setUp(self):
        root = tempfile.mkdtemp(prefix="hostdevd-root-")
        self.addCleanup(shutil.rmtree, root, True)
        self.host_root = extract_fixture(root)
        add_mdev_parent(root)
        super().setUp()
        self.devices_before = self.qmp.peripherals()

    def start_hostdevd(self, extra=(), wait=True, env=None):
        if self.POLICY is not None:
            path = os.path.join(self.tmp, "policy.conf")
            with open(path, "w") as f:
                f.write(self.POLICY)
            os.chmod(path, 0o644)
            extra = ("--policy", path, *extra)
        return super().start_hostdevd(extra=extra, wait=wait, env=env)

    def attach(self, instance, dry_run=False):
        arguments = {"xml": mdev_xml(instance)}
        if dry_run:
            arguments["dry-run"] = True
        return self.control().execute("attach-device", arguments)

    def assert_refused(self, instance, error_class, *needles, dry_run=False):
        reply = self.attach(instance, dry_run=dry_run)
        self.assertIn("error", reply, f"attaching mdev {instance} was not refused: {reply}")
        self.assertEqual(reply["error"]["class"], error_class, reply)
        for needle in needles:
            self.assertIn(needle, reply["error"]["desc"])
        return reply["error"]["desc"]

    def assert_plans(self, instance):
        reply = self.attach(instance, dry_run=True)
        self.assertIn("return", reply, f"a dry run of mdev {instance} failed: {reply}")

    def assert_nothing_done(self):
        self.assertEqual(self.claims(), [])
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.qmp.peripherals(), self.devices_before)


class DeniedParent(MdevCase):
    """A slice of a PCI device the policy denies is denied too."""

    POLICY = "[defaults]\ndeny-pci-ids=*:*\n"

    def test_parent_denied(self):
        for dry_run in (True, False):
            desc = self.assert_refused(OWN_UUID, "PolicyDenied", "deny-pci-ids entry '*:*'",
                                       dry_run=dry_run)
            self.assertIn(f"mediated device {OWN_UUID} of type nvidia-63 on PCI device "
                          "0000:01:00.0 [8086:10d3]", desc)
        self.assert_nothing_done()


class DeniedParentAddress(MdevCase):
    POLICY = "[vm testvm]\ndeny-pci=0000:01:00.*\n"

    def test_parent_address_denied(self):
        self.assert_refused(RANDOM_UUID, "PolicyDenied", "deny-pci entry '0000:01:00.*'")
        self.assert_nothing_done()


class DeniedType(MdevCase):
    """deny-mdev-types refuses by the type's name; other types still pass."""

    POLICY = "[defaults]\n[vm testvm]\ndeny-mdev-types=nvidia-63\n"

    def test_type_denied(self):
        self.assert_refused(OWN_UUID, "PolicyDenied", "deny-mdev-types entry 'nvidia-63'")
        self.assert_plans(RANDOM_UUID)      # nvidia-64
        self.assert_nothing_done()


class AllowedTypes(MdevCase):
    """With allow-mdev-types in force an mdev of another type is refused."""

    POLICY = "[defaults]\nallow-mdev-types=nvidia-64\n"

    def test_only_allowed_types(self):
        self.assert_refused(OWN_UUID, "PolicyDenied", "matches no entry of allow-mdev-types")
        self.assert_plans(RANDOM_UUID)


class UuidOwner(MdevCase):
    """Without a policy file: the UUID `mdev-create --vm othervm` derives is othervm's."""

    def test_other_vms_uuid_refused(self):
        for dry_run in (True, False):
            self.assert_refused(OTHER_UUID, "PolicyDenied", "another VM's instance",
                                "allow-mdev-uuids", dry_run=dry_run)
        self.assert_nothing_done()

    def test_own_and_random_uuids_pass(self):
        self.assert_plans(OWN_UUID)
        self.assert_plans(RANDOM_UUID)

    def test_missing_mdev(self):
        missing = vm_uuid("testvm", 7)
        self.assert_refused(missing, "NotFound", f"there is no mediated device {missing}",
                            "hostdevctl mdev-create")


class UuidAllowed(MdevCase):
    """allow-mdev-uuids lets a VM take another's instance, and limits it to those listed."""

    POLICY = f"[vm testvm]\nallow-mdev-uuids={OTHER_UUID}\n"

    def test_listed_uuid_passes(self):
        self.assert_plans(OTHER_UUID)
        self.assert_plans(OWN_UUID)
        self.assert_refused(RANDOM_UUID, "PolicyDenied", "matches no entry of allow-mdev-uuids")


class MaxDevicesZero(MdevCase):
    POLICY = "[defaults]\nmax-devices=0\n"

    def test_max_devices_counts_mdevs(self):
        for dry_run in (True, False):
            self.assert_refused(OWN_UUID, "PolicyDenied", "max-devices=0", dry_run=dry_run)
        self.assert_nothing_done()


@unittest.skipUnless(os.environ.get("HOSTDEVD_TEST_HOOKS") == "1",
                     "holding a claim mid-attach needs -Dtest_hooks=true")
class ClaimedByAnotherVm(MdevCase):
    """Two hostdevd (two VMs) and one mdev: the first holds it (its attach stopped,
    with the claim taken, by the crash hook; its QEMU keeps the claim live), the
    second is told who has it."""

    def start_other_vm(self):
        other = os.path.join(self.tmp, "other")
        os.mkdir(other)
        qmp_path = os.path.join(other, "qmp.sock")
        with open(os.path.join(other, "qemu.log"), "wb") as log:
            qemu = self.spawn([QEMU, "-machine", "q35,accel=tcg", "-m", "128", "-nodefaults",
                               "-display", "none", "-S", "-device",
                               "pcie-root-port,id=pci.1,chassis=1",
                               "-qmp", f"unix:{qmp_path},server=on,wait=off"],
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        socket_path = os.path.join(other, "othervm.sock")
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.tmp,
                   HOSTDEVD_TEST_CRASH_AT="attaching:device-add")
        with open(os.path.join(other, "hostdevd.log"), "ab") as log:
            daemon = self.spawn([HOSTDEVD, "--vm", "othervm", "--qmp", qmp_path, "--socket",
                                 socket_path, "--state-dir", os.path.join(other, "state"),
                                 "--host-root", self.host_root, "--qmp-wait", "20"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: self._answers(socket_path) or daemon.poll() is not None, 60,
                 "othervm's hostdevd")
        return qemu, daemon, socket_path

    def test_second_vm_is_told_who_holds_it(self):
        qemu, daemon, socket_path = self.start_other_vm()
        client = ControlClient(socket_path)
        try:
            client.execute("attach-device", {"xml": mdev_xml(RANDOM_UUID)})
        except (EOFError, OSError):
            pass    # killed by the hook, the claim held
        finally:
            client.close()
        daemon.wait(timeout=60)
        key = "mdev_" + RANDOM_UUID.replace("-", "_")
        self.assertIn(key, self.claims())
        self.assertIsNone(qemu.poll())

        self.assert_refused(RANDOM_UUID, "Busy", f"mediated device {RANDOM_UUID} is in use by "
                            "VM 'othervm'")
        # nor the parent whole: binding it to vfio-pci would take othervm's mdev away
        parent = ("<hostdev mode='subsystem' type='pci' managed='yes'><source><address "
                  "domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source></hostdev>")
        reply = self.control().execute("attach-device", {"xml": parent})
        self.assertEqual(reply.get("error", {}).get("class"), "Busy", reply)
        self.assertIn(f"PCI device 0000:01:00.0 is the parent of mediated device {RANDOM_UUID}, "
                      "which is in use by VM 'othervm'", reply["error"]["desc"])
        driver = os.path.join(self.host_root, "sys/bus/pci/devices/0000:01:00.0/driver")
        self.assertEqual(os.path.basename(os.readlink(driver)), "e1000e")
        self.assertEqual(self.claims(), [f"mdev_{RANDOM_UUID.replace('-', '_')}"])
        self.assertEqual(self.journal(), [])
        self.assertEqual(self.qmp.peripherals(), self.devices_before)


if __name__ == "__main__":
    main()
