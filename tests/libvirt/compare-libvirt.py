#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Hold hostdevd's QEMU translation and live XML against a real libvirt.

For every case of the XML corpus (tests/xml/NAME.xml + NAME.json):

  valid case  - the live XML hostdevd reports validates against libvirt's
                domain schema (/usr/share/libvirt/schemas/domain.rng,
                wrapped in a minimal domain) with `xmllint --relaxng`;
                hostdevd's own XML extension (namespace urn:hostdevd:...,
                the USB port path and serial selector) is taken out first,
                and must not appear in the live XML of input without it;
              - the device_add arguments hostdevd sends are identical (names,
                JSON types, order) to the -device JSON libvirt 9.0 puts on
                QEMU's command line for the same device in the same VM
                topology (`virsh domxml-to-native qemu-argv`), unless the
                case says why libvirt cannot translate it on a host without
                the device ("libvirt": {"skip": "..."}).
  error case  - libvirt refuses to define a VM with the device too (`virsh
                define`: parse and validation, no host devices needed), or
                libvirt accepts it and the case says why hostdevd is
                stricter ("libvirt": {"stricter": "..."}); a case that
                claims to be stricter where libvirt refuses too fails.

libvirt runs with the embedded QEMU driver (qemu:///embed?root=DIR): no
daemon, no system state.  As root, virsh runs as nobody: a privileged
embedded driver wants the 'libvirt-qemu' user, which only the
libvirt-daemon-system package creates.

The VM topology (the same for every case, so placement is comparable):
q35 with pcie-root, pcie-root-ports pci.1 to pci.8 and qemu-xhci USB
controllers usb (index 0) and usb1 (index 1); or s390x with its pci-root
(pci.0), for cases with "libvirt": {"machine": "s390x"}.  A case whose
context and XML give no guest place is placed by hostdevd's own allocators
in that VM (tests/unit/corpus-case.c), so the PCI slot, the USB bus and
port, and the s390x slot are compared with libvirt's choice too.

Where the comparison adjusts the input or the output, and why:
  - <driver name='vfio'/> is added to a PCI device that has none: libvirt
    picks the default backend from the host, and on a host without VFIO
    domxml-to-native refuses ("invalid PCI passthrough type 'default'");
    hostdevd always uses VFIO.
  - <interface type='hostdev'> is given to libvirt as the equivalent
    <hostdev type='pci'> (same source, boot, rom, acpi, alias, address):
    domxml-to-native replaces interfaces with tap devices, while a real
    libvirt builds the vfio-pci device of a hostdev interface with the same
    code as for a <hostdev>.  MAC and VLAN are programmed on the host and
    are not device properties.
  - When the case passes the USB device node as a descriptor
    ("usb_hostdevice": "/dev/fdset/N"), libvirt's /dev/bus/usb/BBB/DDD is
    replaced by it: hostdevd hands QEMU the opened node instead of widening
    QEMU's access to /dev/bus/usb, everything else must be the same.
"""

import argparse
import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SCHEMA = "/usr/share/libvirt/schemas/domain.rng"
EMULATORS = {"q35": "qemu-system-x86_64", "s390x": "qemu-system-s390x"}
HOSTDEV_DRIVERS = ("vfio-pci", "vfio-pci-nohotplug", "usb-host", "zpci")
NOBODY = 65534


class Tap:
    def __init__(self):
        self.count = 0
        self.failed = 0

    def ok(self, passed, text, directive=None):
        self.count += 1
        if not passed:
            self.failed += 1
        line = "%s %d - %s" % ("ok" if passed else "not ok", self.count, text)
        if directive:
            line += " # " + directive
        print(line, flush=True)

    @staticmethod
    def diag(text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)


def domain_xml(machine, devices):
    if machine == "s390x":
        return """<domain type='qemu'>
  <name>hostdevd-compare</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>
  <devices>
    <emulator>%s</emulator>
    <controller type='pci' index='0' model='pci-root'/>
    <memballoon model='none'/>
%s
  </devices>
</domain>
""" % (shutil.which(EMULATORS["s390x"]), devices)
    ports = "\n".join(
        "    <controller type='pci' index='%d' model='pcie-root-port'>"
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x%x'%s/>"
        "</controller>" % (i + 1, i, " multifunction='on'" if i == 0 else "")
        for i in range(8))
    return """<domain type='qemu'>
  <name>hostdevd-compare</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>%s</emulator>
    <controller type='pci' index='0' model='pcie-root'/>
%s
    <controller type='usb' index='0' model='qemu-xhci'><address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></controller>
    <controller type='usb' index='1' model='qemu-xhci'><address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></controller>
    <graphics type='vnc' autoport='yes'/>
    <video><model type='none'/></video>
    <memballoon model='none'/>
%s
  </devices>
</domain>
""" % (shutil.which(EMULATORS["q35"]), ports, devices)


def schema_domain(live):
    """The smallest domain libvirt's schema accepts, around one device."""
    return ("<domain type='kvm'>\n  <name>live</name>\n  <memory>131072</memory>\n"
            "  <os><type>hvm</type></os>\n  <devices>\n%s  </devices>\n</domain>\n" % live)


def for_libvirt(xml_text):
    """The case's XML as libvirt gets it (see the module comment)."""
    root = ET.fromstring(xml_text)
    if root.tag == "interface":
        hostdev = ET.Element("hostdev", {"mode": "subsystem", "type": "pci"})
        if root.get("managed") is not None:
            hostdev.set("managed", root.get("managed"))
        hostdev.append(ET.Element("driver", {"name": "vfio"}))
        source = ET.SubElement(hostdev, "source")
        address = copy.deepcopy(root.find("source/address"))
        address.attrib.pop("type", None)
        source.append(address)
        for tag in ("boot", "rom", "acpi", "alias", "address"):
            element = root.find(tag)
            if element is not None:
                hostdev.append(copy.deepcopy(element))
        return ET.tostring(hostdev, encoding="unicode"), "as the equivalent <hostdev>"
    if root.tag == "hostdev" and root.get("type") == "pci" and root.find("driver") is None:
        root.insert(0, ET.Element("driver", {"name": "vfio"}))
        return ET.tostring(root, encoding="unicode"), "with <driver name='vfio'/>"
    return xml_text, None


class Libvirt:
    def __init__(self, workdir):
        self.workdir = workdir
        self.root = os.path.join(workdir, "root")
        os.makedirs(self.root)
        self.drop = []
        if os.getuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise RuntimeError("running as root needs setpriv to run virsh as nobody")
            self.drop = [setpriv, "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
            for path in (workdir, self.root):
                os.chown(path, NOBODY, NOBODY)
        self.env = dict(os.environ, HOME=workdir, LC_ALL="C",
                        XDG_CACHE_HOME=os.path.join(workdir, "cache"),
                        XDG_CONFIG_HOME=os.path.join(workdir, "config"),
                        XDG_RUNTIME_DIR=os.path.join(workdir, "run"))
        self.env.pop("LIBVIRT_DEFAULT_URI", None)
        self.count = 0

    def virsh(self, machine, device_xml, *command):
        """Return: the finished virsh run of @command on a domain around @device_xml."""
        self.count += 1
        path = os.path.join(self.workdir, "domain-%d.xml" % self.count)
        with open(path, "w") as f:
            f.write(domain_xml(machine, device_xml))
        os.chmod(path, 0o644)
        return subprocess.run(self.drop + ["virsh", "--quiet", "-c", "qemu:///embed?root=" + self.root]
                              + list(command) + [path],
                              env=self.env, capture_output=True, text=True, timeout=120)

    @staticmethod
    def error_of(run):
        message = " ".join(line.strip() for line in run.stderr.splitlines()
                           if line.startswith("error:") and "failed to" not in line
                           and "Failed to define domain" not in line)
        return message or run.stderr.strip() or "virsh exited with %d" % run.returncode

    def to_native(self, machine, device_xml):
        """Return: (list of -device JSON objects for host devices, None) or (None, error)."""
        run = self.virsh(machine, device_xml, "domxml-to-native", "qemu-argv")
        if run.returncode != 0:
            return None, self.error_of(run)
        words = shlex.split(run.stdout)
        devices = []
        for option, value in zip(words, words[1:]):
            if option == "-device" and value.startswith("{"):
                device = json.loads(value)
                if device.get("driver") in HOSTDEV_DRIVERS:
                    devices.append(device)
        return devices, None

    def refuses(self, machine, device_xml):
        """Does libvirt refuse to define a VM with this device?  `virsh define`
        parses, post-processes and validates (against the QEMU binary's
        capabilities too) but needs none of the host's devices.
        Return: libvirt's error, or None when it accepts the XML."""
        run = self.virsh(machine, device_xml, "define")
        if run.returncode != 0:
            return self.error_of(run)
        subprocess.run(self.drop + ["virsh", "--quiet", "-c", "qemu:///embed?root=" + self.root,
                                    "undefine", "hostdevd-compare"],
                       env=self.env, capture_output=True, timeout=120, check=True)
        return None


def items(devices):
    """Compare with member order: libvirt's order is part of the contract."""
    return [list(device.items()) for device in devices]


def compare_valid(tap, libvirt, name, xml_text, spec, mine):
    wants = spec.get("libvirt", {})
    machine = wants.get("machine", "q35")
    if "skip" in wants:
        tap.ok(True, "%s: same device_add as libvirt" % name, "SKIP " + wants["skip"])
        return "skipped"
    if shutil.which(EMULATORS[machine]) is None:
        tap.ok(True, "%s: same device_add as libvirt" % name,
               "SKIP %s is not installed" % EMULATORS[machine])
        return "skipped"
    device_xml, adjusted = for_libvirt(xml_text)
    theirs, error = libvirt.to_native(machine, device_xml)
    if theirs is None:
        tap.ok(False, "%s: libvirt could not translate it: %s" % (name, error))
        return "failed"
    notes = []
    if adjusted:
        notes.append("given to libvirt " + adjusted)
    context = spec.get("context", {})
    for device in theirs:
        ours = next((d for d in mine if d.get("driver") == device.get("driver")), {})
        if device.get("driver") == "usb-host" and "usb_hostdevice" in context:
            notes.append("libvirt names %s where hostdevd passes the opened node as %s"
                         % (device.get("hostdevice"), context["usb_hostdevice"]))
            device["hostdevice"] = context["usb_hostdevice"]
    same = items(theirs) == items(mine)
    tap.ok(same, "%s: same device_add as libvirt%s" % (name, " (%s)" % "; ".join(notes) if notes else ""))
    if not same:
        tap.diag("libvirt:  " + json.dumps(theirs))
        tap.diag("hostdevd: " + json.dumps(mine))
        return "failed"
    return "identical"


HOSTDEVD_NS = "{urn:hostdevd:"


def without_extensions(live):
    """The live XML without hostdevd's extension elements, which libvirt's
    schema does not know; the rest must be libvirt's."""
    root = ET.fromstring(live)
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag.startswith(HOSTDEVD_NS):
                parent.remove(child)
    return ET.tostring(root, encoding="unicode") + "\n"


def validate_live(tap, workdir, name, xml_text, live):
    if "urn:hostdevd:" not in xml_text and "urn:hostdevd:" in live:
        tap.ok(False, "%s: live XML of plain libvirt input has hostdevd's extension" % name)
        tap.diag(live)
        return
    live = without_extensions(live)
    path = os.path.join(workdir, "live-%s.xml" % name)
    with open(path, "w") as f:
        f.write(schema_domain(live))
    run = subprocess.run(["xmllint", "--noout", "--relaxng", SCHEMA, path],
                         capture_output=True, text=True, timeout=60)
    tap.ok(run.returncode == 0, "%s: live XML valid against domain.rng" % name)
    if run.returncode != 0:
        tap.diag(live)
        tap.diag(run.stderr)


def compare_error(tap, libvirt, name, xml_text, spec, mine):
    wants = spec.get("libvirt", {})
    machine = wants.get("machine", "q35")
    if shutil.which(EMULATORS[machine]) is None:
        tap.ok(True, "%s: libvirt refuses it too" % name,
               "SKIP %s is not installed" % EMULATORS[machine])
        return "error-skipped"
    error = libvirt.refuses(machine, xml_text)
    if error is not None and "stricter" not in wants:
        tap.ok(True, "%s: libvirt refuses it too" % name)
        tap.diag("hostdevd: %s: %s" % (mine["class"], mine["message"]))
        tap.diag("libvirt:  " + error)
        return "both"
    if error is None and "stricter" in wants:
        tap.ok(True, "%s: only hostdevd refuses it (stricter: %s)" % (name, wants["stricter"]))
        return "stricter"
    if error is None:
        tap.ok(False, "%s: libvirt accepts what hostdevd refuses, and the case does not say why"
               % name)
    else:
        tap.ok(False, "%s: the case says hostdevd is stricter, but libvirt refuses it too" % name)
        tap.diag("libvirt:  " + error)
    tap.diag("hostdevd: %s: %s" % (mine["class"], mine["message"]))
    return "failed"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True, help="the hostdevd-plan helper")
    parser.add_argument("--corpus", required=True, help="tests/xml")
    args = parser.parse_args()

    missing = [what for what, there in (
        ("virsh (libvirt-clients)", shutil.which("virsh")),
        ("libvirt's QEMU driver (libvirt-daemon-driver-qemu)",
         any(os.path.exists(os.path.join(d, "libvirt/connection-driver/libvirt_driver_qemu.so"))
             for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
                       "/usr/lib/aarch64-linux-gnu", "/usr/lib/s390x-linux-gnu"))),
        ("the domain schema " + SCHEMA, os.path.exists(SCHEMA)),
        ("xmllint (libxml2-utils)", shutil.which("xmllint")),
        ("qemu-system-x86_64", shutil.which(EMULATORS["q35"]))) if not there]
    if missing:
        print("1..0 # SKIP libvirt is not available here, missing: %s "
              "(contrib/install-deps.sh installs it)" % ", ".join(missing))
        return 0

    mine = json.loads(subprocess.run([args.plan, args.corpus], check=True,
                                     capture_output=True, text=True).stdout)
    names = sorted(mine)
    valid = [n for n in names if "args" in mine[n]]
    print("1..%d" % (2 * len(valid) + len(names) - len(valid)), flush=True)

    tap = Tap()
    outcomes = {}
    with tempfile.TemporaryDirectory(prefix="hostdevd-libvirt-") as workdir:
        os.chmod(workdir, 0o755)
        libvirt = Libvirt(workdir)
        for name in names:
            with open(os.path.join(args.corpus, name + ".xml")) as f:
                xml_text = f.read()
            with open(os.path.join(args.corpus, name + ".json")) as f:
                spec = json.load(f)
            if name in valid:
                validate_live(tap, workdir, name, xml_text, mine[name]["live"])
                outcome = compare_valid(tap, libvirt, name, xml_text, spec, mine[name]["args"])
            else:
                outcome = compare_error(tap, libvirt, name, xml_text, spec, mine[name]["error"])
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    Tap.diag("%d valid cases: %d identical to libvirt, %d skipped; %d error cases: "
             "%d refused by libvirt too, %d refused by hostdevd only (stricter), "
             "%d skipped; %d failed"
             % (len(valid), outcomes.get("identical", 0), outcomes.get("skipped", 0),
                len(names) - len(valid), outcomes.get("both", 0), outcomes.get("stricter", 0),
                outcomes.get("error-skipped", 0), outcomes.get("failed", 0)))
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
