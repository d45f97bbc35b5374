# SPDX-License-Identifier: GPL-2.0-or-later
"""The nested-VM scenarios: hostdevd on a real kernel with an emulated IOMMU.

Each scenario drives hostdevd only through hostdevctl (hostdevd itself is
started as a user would start it) and checks every outcome independently:
in L1's sysfs (drivers, driver_override, /dev/vfio, SR-IOV, USB drivers) and
through the test's own QMP connection to each L2 QEMU.

L1's emulated host devices (see vmtest.py's L1 command line):
  0000:01:00.0              e1000e, alone in its IOMMU group
  0000:02:00.0              nvme PF with SR-IOV (2 VFs; VF 0000:02:00.1)
  0000:03:00.0 + 04:01.0 + 04:02.0
                            pcie-pci-bridge with two e1000: ONE group
  0000:05:00.0 + 05:00.1    multifunction e1000e without ACS: ONE group
  USB 1-1.1 and 1-1.2       two identical usb-kbd 0627:0001 (usbhid) on a usb-hub
                            (per-port power) at 1-1 of qemu-xhci: vendor/product
                            alone is ambiguous, the port path tells them apart

A scenario whose hostdevd feature does not exist yet fails and says which
step and what was expected; it never skips.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import l1lib
from l1lib import Failure, check, wait_for

E1000E = "0000:01:00.0"
NVME_PF = "0000:02:00.0"
NVME_VF = "0000:02:00.1"
BRIDGE = "0000:03:00.0"
E1000_A = "0000:04:01.0"
E1000_B = "0000:04:02.0"
MF0 = "0000:05:00.0"
MF1 = "0000:05:00.1"
KBD = ("0627", "0001")
KBD_PORTS = ("1-1.1", "1-1.2")

# The policy file of scenario 4 (hostdevd --policy FILE, see the README's
# "Policy"): VM vm4 may take a whole multi-device IOMMU group, bound and
# given back together.
POLICY_WHOLE_GROUP = """\
# hostdevd policy used by tests/vm scenario 4
[vm vm4]
allow-iommu-group-takeover=true
"""


class Scenario:
    def __init__(self, number, title, function, default):
        self.number = number
        self.title = title
        self.function = function
        self.default = default


SCENARIOS = {}


def scenario(number, title, default=True):
    """Register scenario @number.  Not @default: it proves a hostdevd fix
    that has not landed yet, so the default run (meson test --suite vm)
    leaves it out and only `run-vm-tests.sh N` runs it."""
    def register(function):
        SCENARIOS[number] = Scenario(number, title, function, default)
        return function
    return register


# -- shared steps -----------------------------------------------------------

def nodedev_name(bdf):
    return "pci_" + bdf.replace(":", "_").replace(".", "_")


def require_host_driver(bdf, driver):
    got = l1lib.pci_driver(bdf)
    check(got == driver, f"precondition: {bdf} should be on {driver} in L1, it is on {got}")


def wait_host_driver(bdf, driver, timeout, why):
    try:
        wait_for(lambda: l1lib.pci_driver(bdf) == driver, timeout, f"{bdf} on {driver}")
    except Failure:
        l1lib.dump_blocked_tasks()
        raise Failure(f"{why}: {bdf} is on {l1lib.pci_driver(bdf)} "
                      f"(driver_override '{l1lib.pci_override(bdf)}'), expected {driver}")


def check_given_back(ctx, bdf, driver, why, netdev=True):
    """@bdf back on its host @driver with driver_override cleared (and, for a
    NIC, its network interface re-created)."""
    wait_host_driver(bdf, driver, 30, why)
    ctx.expect(l1lib.pci_override(bdf) == "",
               f"{why}: driver_override of {bdf} left as '{l1lib.pci_override(bdf)}'")
    if netdev:
        try:
            wait_for(lambda: l1lib.pci_netdevs(bdf), 20, f"a network interface of {bdf}")
        except Failure:
            ctx.expect(False, f"{why}: {bdf} is on {driver} but has no network interface")


def attach_ok(ctx, vm, xml_path, what):
    ctx.ctl("attach-device", vm, xml_path, check_ok=True, what=what)


def vfio_alias(ctx, l2, bdf, why):
    """The id of the one vfio-pci device with host=@bdf in L2 (test QMP)."""
    aliases = [a for a, host in l2.qmp.vfio_devices().items() if host == bdf]
    check(len(aliases) == 1, f"{why}: L2 {l2.name} should have one vfio-pci device for "
                             f"{bdf}, QEMU has {l2.qmp.peripherals()}")
    return aliases[0]


def detach(ctx, vm, xml_path, wait, expect_status, what):
    result, reply = ctx.ctl_json("detach-device", vm, xml_path, "--wait", str(wait),
                                 check_ok=True, what=what,
                                 timeout=wait + 60)
    status = (reply or {}).get("return", {}).get("status")
    check(status == expect_status,
          f"{what}: expected status '{expect_status}', hostdevd replied {reply}")
    return reply["return"]


def runtime_mentions(ctx, bdf):
    """Files of the runtime directory (where host-wide claims live) that
    name @bdf, by file name or content; sockets are skipped."""
    found = []
    for root, _, files in os.walk(ctx.runtime):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            text = l1lib.read(path, "") or ""
            variants = (bdf, bdf.replace(":", "_").replace(".", "_"), nodedev_name(bdf))
            if any(v in name or v in text for v in variants):
                found.append(os.path.relpath(path, ctx.runtime))
    return found


def error_of(reply):
    return (reply or {}).get("error") or {}


# -- 1 ----------------------------------------------------------------------

def expect_guest_sees(ctx, l2, before, added, what):
    """The L2 guest's own PCI list (its serial console) settles at @before and
    @added new functions (0: exactly @before again); one that does not is an
    expectation failed, naming what the guest reports, not the scenario's end."""
    def settled():
        now = set(l2.guest_pci() or [])
        return len(now - set(before)) == added if added else now == set(before)

    try:
        wait_for(settled, 60 if added else 30, what, interval=0.5)
    except Failure as e:
        ctx.expect(False, f"{e} (guest reports {l2.guest_pci()})")


@scenario(1, "managed e1000e: host driver -> vfio-pci -> booted L2, detach on DEVICE_DELETED, e1000e back")
def managed_attach_booted_guest(ctx):
    bdf = E1000E
    require_host_driver(bdf, "e1000e")
    netdevs = l1lib.pci_netdevs(bdf)
    check(netdevs, f"precondition: {bdf} has no network interface in L1")
    group = l1lib.pci_group(bdf)
    check(l1lib.group_members(group) == [bdf],
          f"precondition: {bdf} should be alone in IOMMU group {group}: {l1lib.group_members(group)}")

    l2 = ctx.booted_l2()
    guest_before = wait_for(l2.guest_pci, 30, "the L2 guest's PCI list")
    ctx.log(f"guest PCI before: {guest_before}")
    daemon = ctx.start_hostdevd(l2, vm="vm1")
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))

    ctx.step("attach-device, managed='yes'")
    _, reply = ctx.ctl_json("attach-device", "vm1", xml, check_ok=True,
                            what="managed attach of the e1000e")
    check(l1lib.pci_driver(bdf) == "vfio-pci",
          f"after attach-device {bdf} is on {l1lib.pci_driver(bdf)}; managed='yes' must bind it to vfio-pci")
    check(os.path.exists(f"/dev/vfio/{group}"), f"/dev/vfio/{group} missing after the attach")
    alias = vfio_alias(ctx, l2, bdf, "after attach-device")
    # the time of each phase on a real kernel, for bench/run.sh (issue #8, item 6)
    timings = ((reply or {}).get("return") or {}).get("timings")
    check(timings and {"checks", "claim", "bind", "device_add"} <= set(timings),
          f"the attach reply has no per-phase timings: {reply}")
    with open(os.path.join(l1lib.LOGS, "vfio-phases.json"), "w") as f:
        json.dump({"phases": timings, "device": f"e1000e {bdf} (managed, booted L2 guest)",
                   "kernel": os.uname().release}, f)
    ctx.log(f"attach phases (ms): {timings}")

    ctx.step("live XML shows the guest address")
    live = ctx.dumpxml("vm1")
    hostdev = l1lib.find_hostdev(live, bdf)
    check(hostdev is not None, f"hostdevctl dumpxml vm1 has no <hostdev> for {bdf}")
    alias_element = hostdev.find("alias")
    ctx.expect(alias_element is not None and alias_element.get("name") == alias,
               f"live XML alias {None if alias_element is None else alias_element.get('name')} "
               f"is not QEMU's id {alias}")
    address = hostdev.find("address")
    check(address is not None and address.get("type") == "pci",
          "the live XML has no guest <address type='pci'/> for the device")
    bus, slot, function = (int(address.get(k, "-1"), 0) for k in ("bus", "slot", "function"))
    parent_bus = l2.qmp.prop(alias, "parent_bus")
    ctx.log(f"guest address bus={bus} slot={slot} function={function}; QEMU parent_bus {parent_bus}")
    ctx.expect(parent_bus.rstrip("/").split("/")[-1] == f"pci.{bus}" and slot == 0 and function == 0,
               f"live XML address bus={bus:#x} slot={slot:#x} function={function} does not match "
               f"where QEMU put {alias} ({parent_bus}); bus N must be controller pci.N, slot 0")

    ctx.step("the guest OS sees the device")
    expect_guest_sees(ctx, l2, guest_before, 1, "the L2 guest to report the new PCI function")

    ctx.step("detach-device with a booted guest")
    detach(ctx, "vm1", xml, 60, "detached", "detach of the e1000e from the booted guest")
    l2.qmp.wait_event("DEVICE_DELETED", 10, device=alias)
    check(alias not in l2.qmp.peripherals(), f"{alias} still in QEMU after DEVICE_DELETED")
    expect_guest_sees(ctx, l2, guest_before, 0, "the guest to report the device gone")

    ctx.step("e1000e rebound, its interface back")
    check_given_back(ctx, bdf, "e1000e", "after the detach")
    ctx.expect(ctx.listed("vm1") == [], f"hostdevctl list vm1 still lists devices: {ctx.listed('vm1')}")

    # Issue 14: hostdevd places one device from the device list QEMU last gave
    # it, kept up to date by DEVICE_DELETED; a device added through another
    # monitor is in no event, and QEMU's refusal of its slot sends hostdevd
    # back to QEMU's list once.
    ctx.step("the root port hostdevd used is taken behind its back; the next attach steps over it")
    port = parent_bus.rstrip("/").split("/")[-1]
    l2.qmp.ok("device_add", driver="pci-testdev", bus=port, id="foreign0")
    expect_guest_sees(ctx, l2, guest_before, 1, "the L2 guest to report the foreign device")
    ctx.ctl_json("attach-device", "vm1", xml, check_ok=True,
                 what="managed attach of the e1000e with its last root port taken")
    alias = vfio_alias(ctx, l2, bdf, "after the second attach-device")
    second_port = l2.qmp.prop(alias, "parent_bus").rstrip("/").split("/")[-1]
    check(second_port != port, f"{alias} went to {second_port}, the port the foreign device holds")
    check(l2.qmp.prop("foreign0", "parent_bus").rstrip("/").split("/")[-1] == port,
          f"the foreign device left {port}")
    ctx.expect(f"was taken meanwhile; {second_port} slot 0 instead" in daemon.log_of_this_run(),
               "hostdevd did not log stepping over the taken root port")
    expect_guest_sees(ctx, l2, guest_before, 2, "the L2 guest to report both devices")
    detach(ctx, "vm1", xml, 60, "detached", "detach of the e1000e from its second root port")
    l2.qmp.wait_event("DEVICE_DELETED", 10, device=alias)
    check_given_back(ctx, bdf, "e1000e", "after the second detach")
    l2.qmp.ok("device_del", id="foreign0")
    l2.qmp.wait_event("DEVICE_DELETED", 30, device="foreign0")


# -- 2 ----------------------------------------------------------------------

@scenario(2, "detach from a paused L2 is pending, device stays on vfio-pci; L2 quits: e1000e back, hostdevd exits 0")
def detach_from_paused_guest(ctx):
    bdf = E1000E
    require_host_driver(bdf, "e1000e")
    l2 = ctx.paused_l2("vm2")
    daemon = ctx.start_hostdevd(l2)
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))

    ctx.step("managed attach into a paused L2 (no guest OS)")
    attach_ok(ctx, "vm2", xml, "managed attach of the e1000e")
    check(l1lib.pci_driver(bdf) == "vfio-pci",
          f"after attach-device {bdf} is on {l1lib.pci_driver(bdf)}; managed='yes' must bind it to vfio-pci")
    alias = vfio_alias(ctx, l2, bdf, "after attach-device")

    ctx.step("detach: no guest answers, so it stays pending")
    detach(ctx, "vm2", xml, 3, "pending", "detach from the paused L2")
    states = {e.get("alias"): e.get("state") for e in ctx.listed("vm2")}
    ctx.expect(states.get(alias) == "detaching",
               f"hostdevctl list vm2 should show {alias} as 'detaching', shows {states}")
    time.sleep(2)
    check(l1lib.pci_driver(bdf) == "vfio-pci",
          f"the unplug is pending but {bdf} went to {l1lib.pci_driver(bdf)}: "
          "never give a device back while QEMU may hold it")
    check(alias in l2.qmp.peripherals(), f"{alias} left QEMU although no guest released it")
    check(daemon.process.poll() is None, "hostdevd exited while the unplug was pending")

    ctx.step("L2 quits: hostdevd gives the device back and exits 0")
    l2.quit()
    status = daemon.wait_exit(60)
    ctx.expect(status == 0, f"hostdevd exited with status {status} after QEMU quit, expected 0")
    check_given_back(ctx, bdf, "e1000e", "after QEMU quit")


# -- 3 ----------------------------------------------------------------------

@scenario(3, "QEMU as uid 65534: attach works only through hostdevd's chown of /dev/vfio/N and memlock raise; both restored")
def unprivileged_qemu(ctx):
    bdf = E1000E
    require_host_driver(bdf, "e1000e")
    group = l1lib.pci_group(bdf)
    l2 = ctx.booted_l2()
    status = l1lib.read(f"/proc/{l2.pid}/status", "")
    uid_line = next((l for l in status.splitlines() if l.startswith("Uid:")), "")
    check(uid_line.split()[1:2] == ["65534"], f"precondition: L2 QEMU should run as uid 65534: {uid_line}")
    check(l1lib.memlock_limits(l2.pid) == (65536, 65536),
          f"precondition: L2 QEMU's memlock should be 64 KiB: {l1lib.memlock_limits(l2.pid)}")

    ctx.step("control: the device on vfio-pci by hand is of no use to this QEMU")
    l1lib.pci_bind_by_hand(bdf, "vfio-pci")
    try:
        wait_for(lambda: os.path.exists(f"/dev/vfio/{group}"), 10, f"/dev/vfio/{group}")
        node = l1lib.vfio_node_stat(group)
        ctx.log(f"/dev/vfio/{group} after binding by hand: {node}")
        reply = l2.qmp.command("device_add", driver="vfio-pci", host=bdf, id="control0", bus="pci.4")
        ctx.log(f"control device_add: {reply}")
        check("error" in reply, "control: QEMU as uid 65534 could use the root-owned /dev/vfio node "
                                "without hostdevd, so this scenario would prove nothing")
    finally:
        l1lib.pci_bind_by_hand(bdf, None)
    wait_host_driver(bdf, "e1000e", 20, "control: rebinding by hand")

    ctx.step("attach through hostdevd")
    # the QMP peer is uid 65534: hostdevd serves it only when told that is QEMU's user
    ctx.start_hostdevd(l2, vm="vm3", extra=("--qemu-user", "nobody"))
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))
    attach_ok(ctx, "vm3", xml, "managed attach into the uid-65534 QEMU")
    node = l1lib.vfio_node_stat(group)
    ctx.log(f"/dev/vfio/{group} during the attach: {node}")
    ctx.expect(node is not None and node["uid"] == 65534,
               f"/dev/vfio/{group} should belong to QEMU's uid 65534 while attached: {node}")
    soft, hard = l1lib.memlock_limits(l2.pid)
    ctx.log(f"QEMU memlock during the attach: soft {soft} hard {hard}")
    ctx.expect(soft is None or soft >= l2.ram << 20,
               f"QEMU's RLIMIT_MEMLOCK ({soft}) does not cover its {l2.ram} MiB of RAM")
    alias = vfio_alias(ctx, l2, bdf, "after attach-device")

    ctx.step("detach, then both are restored")
    detach(ctx, "vm3", xml, 60, "detached", "detach from the booted uid-65534 guest")
    l2.qmp.wait_event("DEVICE_DELETED", 10, device=alias)
    limits = l1lib.memlock_limits(l2.pid)
    ctx.expect(limits == (65536, 65536),
               f"QEMU's memlock limit was not restored after its last VFIO device left: {limits}")
    check_given_back(ctx, bdf, "e1000e", "after the detach")
    node = l1lib.vfio_node_stat(group)
    ctx.expect(node is None or node["uid"] == 0,
               f"/dev/vfio/{group} still belongs to uid {node and node['uid']} after the detach")


# -- 4 ----------------------------------------------------------------------

@scenario(4, "multi-device IOMMU group: refused before QEMU is asked, offender named; whole-group policy: accepted, all given back")
def multi_device_group(ctx):
    group = l1lib.pci_group(E1000_A)
    members = l1lib.group_members(group)
    check({BRIDGE, E1000_A, E1000_B} <= set(members),
          f"precondition: {E1000_A} should share group {group} with {E1000_B} and the bridge: {members}")
    check(l1lib.pci_group(MF0) == l1lib.pci_group(MF1),
          f"precondition: {MF0} and {MF1} should share a group")
    bridge_driver = l1lib.pci_driver(BRIDGE)
    l2 = ctx.paused_l2("vm4")
    daemon = ctx.start_hostdevd(l2)
    before = l2.qmp.peripherals()

    for device, other, driver in ((E1000_A, E1000_B, "e1000"), (MF1, MF0, "e1000e")):
        ctx.step(f"attach {device}: its group holds {other} on {driver}")
        require_host_driver(device, driver)
        xml = ctx.file(f"{device}.xml", l1lib.pci_xml(device, managed=True))
        result, reply = ctx.ctl_json("attach-device", "vm4", xml, check_ok=False,
                                     what=f"attach of {device} from a non-viable group")
        error = error_of(reply)
        text = result.stderr + " " + json.dumps(error)
        ctx.expect(other in text,
                   f"the refusal of {device} does not name {other}, the device in its IOMMU group "
                   f"still on {driver}: {result.stderr.strip()[:400]}")
        ctx.expect(error.get("class") not in ("QemuError", None),
                   f"the refusal of {device} should come from hostdevd before QEMU is asked, "
                   f"got class {error.get('class')}: {result.stderr.strip()[:300]}")
        for dev in (device, other):
            ctx.expect((l1lib.pci_driver(dev), l1lib.pci_override(dev)) == (driver, ""),
                       f"after the refusal {dev} is on {l1lib.pci_driver(dev)} with driver_override "
                       f"'{l1lib.pci_override(dev)}': nothing may be touched")
        ctx.expect(l2.qmp.peripherals() == before,
                   f"QEMU's devices changed: {l2.qmp.peripherals()}")

    ctx.step("restart hostdevd with a policy allowing whole-group takeover")
    daemon.kill(signal.SIGTERM)
    policy = ctx.private_file("policy.conf", POLICY_WHOLE_GROUP)
    daemon = ctx.start_hostdevd(l2, extra=["--policy", policy])
    xml = ctx.file("e1000-a.xml", l1lib.pci_xml(E1000_A, managed=True))
    attach_ok(ctx, "vm4", xml, f"attach of {E1000_A} with the whole-group policy")
    for dev in (E1000_A, E1000_B):
        ctx.expect(l1lib.pci_driver(dev) == "vfio-pci",
                   f"with the whole-group policy {dev} should be on vfio-pci, is on {l1lib.pci_driver(dev)}")
    ctx.expect(l1lib.pci_driver(BRIDGE) == bridge_driver,
               f"the bridge {BRIDGE} went from {bridge_driver} to {l1lib.pci_driver(BRIDGE)}")
    vfio_alias(ctx, l2, E1000_A, "with the whole-group policy")
    ctx.expect(E1000_B not in l2.qmp.vfio_devices().values(),
               f"{E1000_B} was only to be taken from the host, not given to QEMU")

    ctx.step("L2 quits: the whole group is given back")
    l2.quit()
    status = daemon.wait_exit(60)
    ctx.expect(status == 0, f"hostdevd exited with {status} after QEMU quit, expected 0")
    for dev in (E1000_A, E1000_B):
        check_given_back(ctx, dev, "e1000", "after QEMU quit", netdev=True)


# -- 5 ----------------------------------------------------------------------

@scenario(5, "SR-IOV: nodedev-set-numvfs 1, attach the VF, detach from a booted L2, numvfs back to 0")
def sriov_vf(ctx):
    pf_sys = f"{l1lib.SYS_PCI}/{NVME_PF}"
    require_host_driver(NVME_PF, "nvme")
    check(l1lib.read(f"{pf_sys}/sriov_totalvfs") == "2" and l1lib.read(f"{pf_sys}/sriov_numvfs") == "0",
          f"precondition: {NVME_PF} should offer 2 VFs with none enabled")
    l2 = ctx.booted_l2()

    ctx.step("nodedev-set-numvfs 1")
    ctx.ctl("nodedev-set-numvfs", nodedev_name(NVME_PF), "1", check_ok=True)
    check(l1lib.read(f"{pf_sys}/sriov_numvfs") == "1",
          f"sriov_numvfs is {l1lib.read(f'{pf_sys}/sriov_numvfs')} after nodedev-set-numvfs 1")
    wait_for(lambda: l1lib.pci_exists(NVME_VF), 10, f"VF {NVME_VF}")
    check(l1lib.link_name(f"{l1lib.SYS_PCI}/{NVME_VF}/physfn") == NVME_PF, f"{NVME_VF} is not a VF of {NVME_PF}")
    vf_group = l1lib.pci_group(NVME_VF)
    check(l1lib.group_members(vf_group) == [NVME_VF],
          f"the VF should be alone in group {vf_group}: {l1lib.group_members(vf_group)}")
    vf_driver = l1lib.pci_driver(NVME_VF)
    ctx.log(f"VF {NVME_VF} in group {vf_group}, driver {vf_driver}")

    ctx.step("attach the VF")
    ctx.start_hostdevd(l2, vm="vm5")
    xml = ctx.file("vf.xml", l1lib.pci_xml(NVME_VF, managed=True))
    attach_ok(ctx, "vm5", xml, "managed attach of the VF")
    check(l1lib.pci_driver(NVME_VF) == "vfio-pci", f"the VF is on {l1lib.pci_driver(NVME_VF)}, expected vfio-pci")
    alias = vfio_alias(ctx, l2, NVME_VF, "after attaching the VF")

    ctx.step("detach the VF from the booted guest")
    detach(ctx, "vm5", xml, 60, "detached", "detach of the VF")
    l2.qmp.wait_event("DEVICE_DELETED", 10, device=alias)
    wait_for(lambda: l1lib.pci_driver(NVME_VF) == vf_driver, 20, f"the VF back on {vf_driver}")
    ctx.expect(l1lib.pci_override(NVME_VF) == "", f"the VF's driver_override is '{l1lib.pci_override(NVME_VF)}'")

    ctx.step("nodedev-set-numvfs 0")
    ctx.ctl("nodedev-set-numvfs", nodedev_name(NVME_PF), "0", check_ok=True)
    check(l1lib.read(f"{pf_sys}/sriov_numvfs") == "0", "sriov_numvfs is not 0 again")
    wait_for(lambda: not l1lib.pci_exists(NVME_VF), 10, "the VF to disappear")
    require_host_driver(NVME_PF, "nvme")


# -- 6 ----------------------------------------------------------------------

@scenario(6, "USB keyboard: vendor/product alone refused as ambiguous (both ports named); by port path, "
             "handed over as an fd; in L2, detached at once, usbhid has it back")
def usb_keyboard_fd(ctx):
    names = l1lib.usb_find(*KBD)
    check(names == list(KBD_PORTS), f"precondition: USB devices {KBD[0]}:{KBD[1]} at {KBD_PORTS} "
                                    f"expected in L1, found {names}")
    name = KBD_PORTS[0]
    interfaces = l1lib.usb_interface_drivers(name)
    check(interfaces and all(d == "usbhid" for d in interfaces.values()),
          f"precondition: {name}'s interfaces should be on usbhid: {interfaces}")
    bus, device, node = l1lib.usb_node(name)
    node_before = os.stat(node)
    l2 = ctx.paused_l2("vm6")
    ctx.start_hostdevd(l2)

    ctx.step("vendor/product alone matches two keyboards: refused, both candidates named")
    ambiguous = ctx.file("kbd-any.xml", l1lib.usb_xml(*KBD))
    result, reply = ctx.ctl_json("attach-device", "vm6", ambiguous, check_ok=False)
    desc = error_of(reply).get("desc", "")
    ctx.expect(result.returncode != 0 and all(port in desc for port in KBD_PORTS),
               f"an ambiguous vendor/product should be refused naming {KBD_PORTS}: "
               f"exit {result.returncode}, {reply}")
    ctx.expect(l2.qmp.usb_host_devices() == {}, f"QEMU got a usb-host anyway: {l2.qmp.peripherals()}")
    xml = ctx.file("kbd.xml", l1lib.usb_xml(*KBD, port=name))

    ctx.step(f"attach by vendor/product and port {name}")
    attach_ok(ctx, "vm6", xml, "attach of the USB keyboard")
    usb = l2.qmp.usb_host_devices()
    check(len(usb) == 1, f"L2 should have one usb-host device, has {l2.qmp.peripherals()}")
    alias = next(iter(usb))
    text = l2.qmp.ok("x-query-usb")["human-readable-text"]
    ctx.log("x-query-usb:\n" + text)
    ctx.expect("QEMU USB Keyboard" in text and f"ID: {alias}" in text,
               f"x-query-usb on L2 does not show the keyboard as {alias}: {text.strip()}")
    try:
        wait_for(lambda: all(d is None for d in l1lib.usb_interface_drivers(name).values()), 10,
                 "usbhid to let go of the keyboard")
    except Failure:
        ctx.expect(False, f"L1's driver still holds the keyboard: {l1lib.usb_interface_drivers(name)}")

    ctx.step("handed over as a file descriptor")
    hostdevice = l2.qmp.prop(alias, "hostdevice")
    fdsets = l2.qmp.ok("query-fdsets")
    ctx.log(f"usb-host hostdevice={hostdevice!r} hostbus={l2.qmp.prop(alias, 'hostbus')} "
            f"hostaddr={l2.qmp.prop(alias, 'hostaddr')}; fdsets {fdsets}")
    ctx.expect(str(hostdevice).startswith("/dev/fdset/") and fdsets,
               f"hostdevd did not hand the device to QEMU as a file descriptor (add-fd + "
               f"hostdevice=/dev/fdset/N): usb-host has hostdevice={hostdevice!r}, fd sets {fdsets}")
    node_now = os.stat(node)
    ctx.expect((node_now.st_uid, node_now.st_gid, node_now.st_mode) ==
               (node_before.st_uid, node_before.st_gid, node_before.st_mode),
               f"{node} was changed (fd passing needs no widening of QEMU's access)")

    ctx.step("detach: immediate DEVICE_DELETED")
    # QEMU 7.2 closes the descriptors remove-fd drops only while the VM runs
    # (monitor_fdset_cleanup checks runstate_is_running()); a guest-less L2 may run
    l2.qmp.ok("cont")
    t0 = time.monotonic()
    detach(ctx, "vm6", xml, 5, "detached", "detach of the USB keyboard")
    ctx.log(f"detach took {time.monotonic() - t0:.2f} s")
    l2.qmp.wait_event("DEVICE_DELETED", 5, device=alias)
    text = l2.qmp.ok("x-query-usb")["human-readable-text"]
    ctx.expect("QEMU USB Keyboard" not in text, f"x-query-usb still shows the keyboard: {text.strip()}")
    try:
        wait_for(lambda: all(d == "usbhid" for d in l1lib.usb_interface_drivers(name).values()), 15,
                 "usbhid to take the keyboard back")
    except Failure:
        ctx.expect(False, f"L1's usbhid did not get the keyboard back: {l1lib.usb_interface_drivers(name)}")
    # no descriptor of the keyboard may stay open in QEMU (an emptied fd set
    # itself can linger in QEMU 7.2's bookkeeping while libusb's dup is untracked)
    fdsets = l2.qmp.ok("query-fdsets")
    ctx.expect(all(not fdset["fds"] for fdset in fdsets),
               f"descriptors left in QEMU after the detach: {fdsets}")


# -- 7 ----------------------------------------------------------------------

CRASH_POINTS = (
    ("as soon as the device is on vfio-pci", 0.0),
    ("while QEMU is in device_add (the e1000e's reset takes about 2 s)", 1.0),
)


@scenario(7, "crash safety: hostdevd SIGKILLed in the middle of a managed attach, restarted: consistent, nothing "
             "leaked; killed right after the answer: the attach is kept")
def crash_during_attach(ctx):
    bdf = E1000E
    for index, (point, delay) in enumerate(CRASH_POINTS):
        vm = f"vm7{'ab'[index]}"
        ctx.step(f"{vm}: SIGKILL {point}")
        require_host_driver(bdf, "e1000e")
        l2 = ctx.paused_l2(vm)
        daemon = ctx.start_hostdevd(l2)
        xml = ctx.file(f"{vm}.xml", l1lib.pci_xml(bdf, managed=True))
        attach = ctx.spawn([ctx.config["hostdevctl"], "attach-device", vm, xml], env=ctx.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(lambda: l1lib.pci_driver(bdf) == "vfio-pci" or attach.poll() is not None, 60,
                 f"{bdf} to reach vfio-pci during the attach", interval=0.005)
        if l1lib.pci_driver(bdf) != "vfio-pci":
            output = attach.communicate(timeout=10)[0].decode(errors="replace")
            raise Failure(f"the managed attach ended (exit {attach.returncode}) without ever binding "
                          f"{bdf} to vfio-pci, so there was no middle to crash in: {output.strip()[:400]}")
        time.sleep(delay)
        finished_first = attach.poll() is not None
        daemon.kill(signal.SIGKILL)
        output = attach.communicate(timeout=30)[0].decode(errors="replace")
        ctx.log(f"hostdevctl exit {attach.returncode}: {output.strip()}"
                + (" (the attach had already finished: crash after it)" if finished_first else ""))

        ctx.step(f"{vm}: restart hostdevd on the same state")
        daemon = ctx.start_hostdevd(l2)
        listed = ctx.listed(vm)
        in_qemu = [a for a, host in l2.qmp.vfio_devices().items() if host == bdf]
        driver = l1lib.pci_driver(bdf)
        ctx.log(f"after restart: QEMU has {in_qemu}, hostdevd lists "
                f"{[(e.get('alias'), e.get('state')) for e in listed]}, {bdf} on {driver}")
        if in_qemu:
            ctx.log("outcome: the attach was finished")
            check(len(in_qemu) == 1, f"QEMU holds {bdf} twice: {in_qemu}")
            check([e.get("alias") for e in listed] == in_qemu,
                  f"QEMU has {in_qemu[0]} but the restarted hostdevd lists {listed}")
            check(driver == "vfio-pci", f"QEMU holds {bdf} but L1 has it on {driver}")
        else:
            ctx.log("outcome: the attach was undone")
            check(not listed, f"hostdevd lists {listed} but QEMU has no such device")
            check_given_back(ctx, bdf, "e1000e", "the half-done attach was not undone on restart")
            leftover = runtime_mentions(ctx, bdf)
            ctx.expect(not leftover, f"claims on {bdf} left in the runtime directory: {leftover}")

        quit_and_check_given_back(ctx, vm, l2, daemon, bdf)

    if os.environ.get("HOSTDEVD_TEST_HOOKS") != "1":
        ctx.log("NOT RUN: the crash between the answer and the \"attached\" record needs hostdevd "
                "built with -Dtest_hooks=true (HOSTDEVD_TEST_CRASH_AT=answered)")
        return
    vm = "vm7c"
    ctx.step(f"{vm}: SIGKILL right after the answer, before the \"attached\" record "
             "(HOSTDEVD_TEST_CRASH_AT=answered)")
    require_host_driver(bdf, "e1000e")
    l2 = ctx.paused_l2(vm)
    daemon = ctx.start_hostdevd(l2, env={"HOSTDEVD_TEST_CRASH_AT": "answered"})
    xml = ctx.file(f"{vm}.xml", l1lib.pci_xml(bdf, managed=True))
    result = subprocess.run([ctx.config["hostdevctl"], "attach-device", vm, xml], env=ctx.env(),
                            capture_output=True, text=True, timeout=120)
    check(result.returncode == 0, f"the client must have its answer before the crash: "
                                  f"exit {result.returncode}: {result.stdout}{result.stderr}")
    status = daemon.wait_exit(30)
    check(status == -signal.SIGKILL, f"hostdevd exited with {status}, not by the crash point")
    record = journal_records(ctx, vm)
    ctx.log(f"journal after the crash: {[(e.get('alias'), e.get('state'), e.get('step')) for e in record]}")
    check([(e.get("state"), e.get("step")) for e in record] == [("attaching", "device-add")],
          f"the crash point comes before the \"attached\" record, but the journal holds {record}")
    check(runtime_mentions(ctx, bdf), f"no claim on {bdf} after the answer")

    ctx.step(f"{vm}: restart: the answered attach is finished, not undone")
    daemon = ctx.start_hostdevd(l2)
    listed = ctx.listed(vm)
    in_qemu = [a for a, host in l2.qmp.vfio_devices().items() if host == bdf]
    check(len(in_qemu) == 1 and [(e.get("alias"), e.get("state")) for e in listed]
          == [(in_qemu[0], "attached")],
          f"after the restart QEMU has {in_qemu} and hostdevd lists {listed}: "
          f"the device the client was told is attached must stay")
    check(l1lib.pci_driver(bdf) == "vfio-pci", f"QEMU holds {bdf} but L1 has it on "
                                               f"{l1lib.pci_driver(bdf)}")
    done = [(e.get("state"), e.get("step")) for e in journal_records(ctx, vm)]
    check(done == [("attached", "done")], f"the restart did not record the attach as done: {done}")
    quit_and_check_given_back(ctx, vm, l2, daemon, bdf)


def quit_and_check_given_back(ctx, vm, l2, daemon, bdf):
    ctx.step(f"{vm}: QEMU quits, everything goes back")
    l2.quit()
    status = daemon.wait_exit(60)
    ctx.expect(status == 0, f"the restarted hostdevd exited with {status} after QEMU quit")
    check_given_back(ctx, bdf, "e1000e", f"{vm}: after QEMU quit")
    leftover = runtime_mentions(ctx, bdf)
    ctx.expect(not leftover, f"{vm}: claims on {bdf} left in the runtime directory: {leftover}")


# -- 8 ----------------------------------------------------------------------

def _int(text):
    try:
        return int(str(text).strip(), 0)
    except (TypeError, ValueError):
        return None


HOSTDEVD_NS = "{urn:hostdevd:hostdev:1}"


def without_hostdevd_elements(xml):
    """nodedev XML as libvirt's schema knows it: hostdevd's own elements (the
    USB selector a device's XML ends with, README "USB selectors") taken out."""
    root = ET.fromstring(xml)
    for parent in root.iter():
        for child in list(parent):
            if child.tag.startswith(HOSTDEVD_NS):
                parent.remove(child)
    return ET.tostring(root, encoding="unicode")


@scenario(8, "inventory: nodedev-list --tree, nodedev-dumpxml of every device, valid against libvirt's nodedev.rng")
def inventory(ctx):
    schema = ctx.config.get("nodedev_schema") or ""
    check(os.path.exists(schema), f"libvirt's nodedev schema is not available at '{schema}' "
                                  "(vmtest.py extracts it from the libvirt0 package)")
    pci = l1lib.all_pci()
    usb = [n for n in os.listdir(l1lib.SYS_USB) if ":" not in n and not n.startswith("usb")]

    ctx.step("nodedev-list --tree")
    tree = ctx.ctl("nodedev-list", "--tree", check_ok=True).stdout
    missing = [bdf for bdf in pci if bdf not in tree and nodedev_name(bdf) not in tree]
    ctx.expect(not missing, f"nodedev-list --tree does not show {missing}")
    shared = {l1lib.pci_group(E1000_A): [BRIDGE, E1000_A, E1000_B]}
    for group, members in shared.items():
        lines = [l for l in tree.splitlines() if "group" in l.lower() and f" {group}" in l]
        ctx.expect(lines, f"nodedev-list --tree shows no line for IOMMU group {group}")

    ctx.step("nodedev-list")
    names = ctx.ctl("nodedev-list", check_ok=True).stdout.split()
    expected = [nodedev_name(b) for b in pci] + ["usb_" + n.replace("-", "_").replace(".", "_") for n in usb]
    ctx.expect(not set(expected) - set(names),
               f"nodedev-list lacks {sorted(set(expected) - set(names))}")

    ctx.step(f"nodedev-dumpxml of all {len(names)} devices")
    directory = os.path.join(ctx.dir, "nodedev")
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name in names:
        result = ctx.ctl("nodedev-dumpxml", name, what=f"nodedev-dumpxml {name}")
        if not ctx.expect(result.returncode == 0, f"nodedev-dumpxml {name} failed: {result.stderr.strip()}"):
            continue
        path = os.path.join(directory, name + ".xml")
        with open(path, "w") as f:
            f.write(without_hostdevd_elements(result.stdout))
        paths.append(path)
    os.makedirs(os.path.join(l1lib.LOGS, "s8-nodedev"), exist_ok=True)
    for path in paths:
        with open(path) as src, open(os.path.join(l1lib.LOGS, "s8-nodedev", os.path.basename(path)), "w") as dst:
            dst.write(src.read())

    ctx.step("validate against nodedev.rng")
    if paths:
        result = subprocess.run(["xmllint", "--noout", "--relaxng", schema, *paths],
                                capture_output=True, text=True, timeout=120)
        ctx.log("xmllint: " + result.stderr.strip())
        bad = [l for l in result.stderr.splitlines() if "fails to validate" in l or "error" in l.lower()]
        ctx.expect(result.returncode == 0, "nodedev XML does not validate against libvirt's nodedev.rng:\n"
                   + "\n".join(bad[:20]))

    ctx.step("facts against sysfs")
    for bdf in pci:
        path = os.path.join(directory, nodedev_name(bdf) + ".xml")
        if not os.path.exists(path):
            continue
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            ctx.expect(False, f"nodedev-dumpxml {nodedev_name(bdf)} is not XML: {e}")
            continue
        cap = root.find("capability[@type='pci']")
        if not ctx.expect(cap is not None, f"{nodedev_name(bdf)} has no <capability type='pci'>"):
            continue
        domain, bus, rest = bdf.split(":")
        slot, function = rest.split(".")
        got = tuple(_int(cap.findtext(k)) for k in ("domain", "bus", "slot", "function"))
        ctx.expect(got == (int(domain, 16), int(bus, 16), int(slot, 16), int(function, 16)),
                   f"{nodedev_name(bdf)}: address {got} is not {bdf}")
        vendor, device = l1lib.pci_ids(bdf)
        ctx.expect(_int((cap.find("vendor") if cap.find("vendor") is not None else {}).get("id")) == _int(vendor)
                   and _int((cap.find("product") if cap.find("product") is not None else {}).get("id")) == _int(device),
                   f"{nodedev_name(bdf)}: vendor/product ids are not {vendor}/{device}")
        group = l1lib.pci_group(bdf)
        iommu = cap.find("iommuGroup")
        if ctx.expect(iommu is not None and _int(iommu.get("number")) == group,
                      f"{nodedev_name(bdf)}: <iommuGroup number> is not {group}"):
            listed = sorted("%04x:%02x:%02x.%x" % tuple(_int(a.get(k)) for k in ("domain", "bus", "slot", "function"))
                            for a in iommu.findall("address"))
            ctx.expect(listed == l1lib.group_members(group),
                       f"{nodedev_name(bdf)}: group members {listed}, sysfs says {l1lib.group_members(group)}")
        driver = l1lib.pci_driver(bdf)
        ctx.expect(root.findtext("driver/name") == driver,
                   f"{nodedev_name(bdf)}: driver {root.findtext('driver/name')}, sysfs says {driver}")
    pf = os.path.join(directory, nodedev_name(NVME_PF) + ".xml")
    if os.path.exists(pf):
        try:
            vfs = ET.parse(pf).getroot().find("capability[@type='pci']/capability[@type='virt_functions']")
        except ET.ParseError:
            vfs = None
        ctx.expect(vfs is not None and vfs.get("maxCount") == "2",
                   f"{nodedev_name(NVME_PF)} lacks <capability type='virt_functions' maxCount='2'>")
    kbd = l1lib.usb_find(*KBD)
    if kbd:
        name = "usb_" + kbd[0].replace("-", "_").replace(".", "_")
        path = os.path.join(directory, name + ".xml")
        if ctx.expect(os.path.exists(path), f"no nodedev XML for the keyboard {name}"):
            try:
                cap = ET.parse(path).getroot().find("capability[@type='usb_device']")
            except ET.ParseError:
                cap = None
            bus, dev, _ = l1lib.usb_node(kbd[0])
            ctx.expect(cap is not None and _int(cap.findtext("bus")) == bus and _int(cap.findtext("device")) == dev
                       and _int(cap.find("vendor").get("id")) == 0x0627 and _int(cap.find("product").get("id")) == 0x0001,
                       f"{name}: the usb_device capability does not say bus {bus} device {dev} 0627:0001")


# -- 9 ----------------------------------------------------------------------

@scenario(9, "two hostdevd (two L2 VMs) ask for the same device: exactly one gets it, the other is told which VM holds it")
def two_vms_one_device(ctx):
    bdf = E1000E
    require_host_driver(bdf, "e1000e")
    l2s = {vm: ctx.paused_l2(vm) for vm in ("vm9a", "vm9b")}
    daemons = {vm: ctx.start_hostdevd(l2) for vm, l2 in l2s.items()}
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))

    ctx.step("both ask at the same time")
    attaches = {vm: ctx.spawn([ctx.config["hostdevctl"], "--json", "attach-device", vm, xml], env=ctx.env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
                for vm in l2s}
    outcome = {}
    for vm, process in attaches.items():
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            raise Failure(f"hostdevctl attach-device {vm} did not finish in 180 s")
        reply = None
        for line in out.decode().splitlines():
            if line.startswith("{"):
                reply = json.loads(line)
        outcome[vm] = (process.returncode, reply, err.decode().strip())
        ctx.log(f"{vm}: exit {process.returncode} {reply} {err.decode().strip()}")
    winners = [vm for vm, (status, _, _) in outcome.items() if status == 0]
    check(len(winners) == 1, f"exactly one VM must get {bdf}; {len(winners)} did: "
          + "; ".join(f"{vm}: exit {s} {e[:200]}" for vm, (s, _, e) in outcome.items()))
    winner = winners[0]
    loser = next(vm for vm in l2s if vm != winner)

    def check_refusal(status, reply, stderr, when):
        error = error_of(reply)
        ctx.expect(error.get("class") == "Busy",
                   f"{when}: {loser} should get a Busy error, got {error.get('class')}: {stderr[:300]}")
        ctx.expect(winner in stderr or winner in error.get("desc", ""),
                   f"{when}: the refusal does not name {winner}, the VM holding {bdf}: {stderr[:300]}")

    check_refusal(*outcome[loser], "racing")
    vfio_alias(ctx, l2s[winner], bdf, f"{winner} won")
    ctx.expect(not l2s[loser].qmp.vfio_devices(), f"{loser}'s QEMU got a vfio device: {l2s[loser].qmp.vfio_devices()}")
    ctx.expect(l1lib.pci_driver(bdf) == "vfio-pci", f"{bdf} is on {l1lib.pci_driver(bdf)} while {winner} has it")

    ctx.step(f"{loser} asks again")
    result, reply = ctx.ctl_json("attach-device", loser, xml, check_ok=False)
    check_refusal(result.returncode, reply, result.stderr.strip(), "asking again")

    ctx.step(f"{winner}'s QEMU quits: the device is free for {loser}")
    l2s[winner].quit()
    status = daemons[winner].wait_exit(60)
    ctx.expect(status == 0, f"hostdevd of {winner} exited with {status}")
    check_given_back(ctx, bdf, "e1000e", f"after {winner}'s QEMU quit")
    attach_ok(ctx, loser, xml, f"attach to {loser} once {winner} is gone")
    vfio_alias(ctx, l2s[loser], bdf, f"{loser} after {winner} left")

    ctx.step(f"{loser}'s QEMU quits")
    l2s[loser].quit()
    status = daemons[loser].wait_exit(60)
    ctx.expect(status == 0, f"hostdevd of {loser} exited with {status}")
    check_given_back(ctx, bdf, "e1000e", f"after {loser}'s QEMU quit")
    ctx.expect(not runtime_mentions(ctx, bdf), f"claims on {bdf} left: {runtime_mentions(ctx, bdf)}")


# -- 10 ---------------------------------------------------------------------

@scenario(10, "managed='no': refused while on e1000e; bound to vfio-pci by the administrator, attached, left on vfio-pci when QEMU quits")
def unmanaged_attach(ctx):
    bdf = E1000E
    require_host_driver(bdf, "e1000e")
    group = l1lib.pci_group(bdf)
    l2 = ctx.paused_l2("vm10")
    daemon = ctx.start_hostdevd(l2)
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=False))

    ctx.step("managed='no' with the device still on its host driver")
    result = ctx.ctl("attach-device", "vm10", xml, check_ok=False, what="managed='no' attach of a device on e1000e")
    ctx.expect("vfio-pci" in result.stderr,
               f"the refusal should say the device must be on vfio-pci: {result.stderr.strip()[:300]}")
    ctx.expect((l1lib.pci_driver(bdf), l1lib.pci_override(bdf)) == ("e1000e", ""),
               f"managed='no' must not touch the device, it is now on {l1lib.pci_driver(bdf)}")
    ctx.expect(not l2.qmp.vfio_devices(), f"QEMU got a device: {l2.qmp.vfio_devices()}")

    ctx.step("the administrator binds it to vfio-pci; attach")
    l1lib.pci_bind_by_hand(bdf, "vfio-pci")
    try:
        wait_for(lambda: os.path.exists(f"/dev/vfio/{group}"), 10, f"/dev/vfio/{group}")
        attach_ok(ctx, "vm10", xml, "managed='no' attach of a device on vfio-pci")
        alias = vfio_alias(ctx, l2, bdf, "after attach-device")
        check(l2.qmp.prop(alias, "realized") is True, f"{alias} is not realized in QEMU")
        live = ctx.dumpxml("vm10")
        hostdev = l1lib.find_hostdev(live, bdf)
        check(hostdev is not None, f"hostdevctl dumpxml vm10 has no <hostdev> for {bdf}")
        address = hostdev.find("address")
        check(address is not None and address.get("type") == "pci",
              "the live XML has no guest <address type='pci'/> for the device")
        bus = int(address.get("bus", "-1"), 0)
        parent_bus = l2.qmp.prop(alias, "parent_bus")
        ctx.expect(parent_bus.rstrip("/").split("/")[-1] == f"pci.{bus}",
                   f"live XML bus {bus:#x} is not where QEMU put {alias} ({parent_bus})")

        ctx.step("QEMU quits: hostdevd exits 0 and leaves the device on vfio-pci")
        l2.quit()
        status = daemon.wait_exit(60)
        ctx.expect(status == 0, f"hostdevd exited with {status} after QEMU quit, expected 0")
        ctx.expect(l1lib.pci_driver(bdf) == "vfio-pci",
                   f"managed='no': {bdf} must stay on vfio-pci, it is on {l1lib.pci_driver(bdf)}")
        node = l1lib.vfio_node_stat(group)
        ctx.expect(node is not None and (node["uid"], node["gid"]) == (0, 0),
                   f"/dev/vfio/{group} should be root's again: {node}")
    finally:
        l1lib.pci_bind_by_hand(bdf, None)
    wait_host_driver(bdf, "e1000e", 20, "the administrator's rebinding")


# -- issue 16: stopping, replay and restarts on the real kernel ---------------
#
# The lifecycle as operators run it: systemd stopping a VM (QEMU first, then
# hostdevd: contrib/systemd/hostdevd@.service orders hostdevd Before= QEMU),
# hostdevd stopped first, a hostdevd started after its QEMU died, two VMs
# after one device, a two-function IOMMU group detached one function at a
# time.  Checked in L1's sysfs, the claims, the journal and the L2 QEMUs' own
# QMP view, never in hostdevd's replies alone.

def journal_entries(ctx, vm):
    """The journal files of @vm (STATE_DIR/VM.journal/ALIAS.json)."""
    directory = os.path.join(ctx.dir, f"state-{vm}", f"{vm}.journal")
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError:
        return []


def journal_records(ctx, vm):
    """The journal records of @vm, parsed, in file name order."""
    directory = os.path.join(ctx.dir, f"state-{vm}", f"{vm}.journal")
    records = []
    for name in journal_entries(ctx, vm):
        with open(os.path.join(directory, name)) as f:
            records.append(json.load(f))
    return records


def claims(ctx):
    """{key: content} of every claim in the runtime directory (not the lock, temporary
    files or the administrator's notes, KEY.administered: their names are no keys)."""
    directory = os.path.join(ctx.runtime, "claims")
    try:
        names = sorted(n for n in os.listdir(directory) if re.fullmatch(r"[a-z0-9_]{1,64}", n))
    except OSError:
        return {}
    return {n: (l1lib.read(os.path.join(directory, n), "") or "") for n in names}


def claims_on(ctx, *bdfs):
    """The claims on @bdfs or their IOMMU groups: {key: content}."""
    keys = set()
    for bdf in bdfs:
        keys.add(nodedev_name(bdf))
        group = l1lib.pci_group(bdf)
        if group is not None:
            keys.add(f"iommu_group_{group}")
    return {k: v for k, v in claims(ctx).items() if k in keys}


def set_override(bdf, value):
    l1lib.sysfs_write(f"{l1lib.SYS_PCI}/{bdf}/driver_override", value)


def host_state(bdf):
    return (l1lib.pci_driver(bdf), l1lib.pci_override(bdf))


def expect_back(ctx, bdf, driver, override, why, timeout=30):
    """@bdf back on @driver with driver_override @override (a failed
    expectation, not a stop).  Return: whether it is."""
    try:
        wait_for(lambda: l1lib.pci_driver(bdf) == driver, timeout, f"{bdf} on {driver}")
    except Failure:
        l1lib.dump_blocked_tasks()
        ctx.expect(False, f"{why}: {bdf} is on {l1lib.pci_driver(bdf)} with driver_override "
                          f"'{l1lib.pci_override(bdf)}' after {timeout} s, expected {driver} "
                          f"with '{override}'")
        return False
    return ctx.expect(l1lib.pci_override(bdf) == override,
                      f"{why}: {bdf} is on {driver} but its driver_override is "
                      f"'{l1lib.pci_override(bdf)}', it was '{override}' before hostdevd took it")


def expect_nothing_left(ctx, vm, bdfs, group, why):
    """No claim on @bdfs or their group, no journal record of @vm, and
    /dev/vfio/@group gone or root's again."""
    left = claims_on(ctx, *bdfs)
    ctx.expect(not left, f"{why}: claims left: {left}")
    ctx.expect(not journal_entries(ctx, vm), f"{why}: {vm}'s journal still holds "
                                             f"{journal_entries(ctx, vm)}")
    node = l1lib.vfio_node_stat(group)
    ctx.expect(node is None or node["uid"] == 0,
               f"{why}: /dev/vfio/{group} still belongs to uid {node and node['uid']}")


def put_back_by_hand(ctx, bdf, driver, override):
    """After a failed expectation: the device back as it was, so that the
    scenario's later steps still run on a clean host."""
    if host_state(bdf) == (driver, override):
        return
    ctx.log(f"putting {bdf} back by hand: it is on {host_state(bdf)}")
    try:
        l1lib.pci_bind_by_hand(bdf, None)
        wait_for(lambda: l1lib.pci_driver(bdf) == driver, 20, f"{bdf} on {driver}")
        if override:
            set_override(bdf, override)
    except Failure as e:
        raise Failure(f"cannot put {bdf} back by hand to go on: {e}")


def unplug_directly(ctx, l2, aliases):
    """Clean-up after a failure: unplug @aliases through the test's own QMP
    connection (the guest cooperates), so the host can take the devices back."""
    for alias in aliases:
        try:
            if alias in l2.connect().vfio_devices():
                ctx.log(f"clean-up: device_del {alias} through the test's QMP")
                l2.qmp.command("device_del", id=alias)
                l2.qmp.wait_event("DEVICE_DELETED", 60, device=alias)
        except (Failure, OSError) as e:
            ctx.log(f"clean-up: cannot unplug {alias}: {e}")


def hold_steady(ctx, seconds, what, probe):
    """Watch @probe (None while all is well, else a problem) for @seconds.
    Return: the first problem seen, or None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        problem = probe()
        if problem:
            ctx.log(f"{what}: {problem}")
            return problem
        time.sleep(0.2)
    return None


# -- 11 ---------------------------------------------------------------------

@scenario(11, "VM stop in the unit's order (QEMU reaped, then SIGTERM during the release) gives the device back; "
              "hostdevd stopped first: the next start gives it back from the journal with no QEMU, "
              "but not a device the administrator set since (nodedev-detach)")
def stop_orders(ctx):
    bdf = E1000E
    vm = "vm11"
    require_host_driver(bdf, "e1000e")
    group = l1lib.pci_group(bdf)
    # An original driver_override of its own, so that "restored" can be told
    # from "cleared".
    original = "e1000e"
    set_override(bdf, original)
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))
    try:
        ctx.step("A: managed attach into a running L2")
        l2 = ctx.paused_l2(vm, running=True)
        daemon = ctx.start_hostdevd(l2)
        attach_ok(ctx, vm, xml, "A: managed attach of the e1000e")
        check(l1lib.pci_driver(bdf) == "vfio-pci", f"A: after the attach {bdf} is on {l1lib.pci_driver(bdf)}")
        vfio_alias(ctx, l2, bdf, "A: after attach-device")
        check(journal_entries(ctx, vm), f"A: {vm}'s journal is empty while the device is attached")
        check(claims_on(ctx, bdf), f"A: no claim on {bdf} while it is attached")

        ctx.step("A: systemctl stop qemu@vm11: SIGTERM to QEMU, wait until it is reaped")
        l2.qmp.close()
        l2.qmp = None
        l2.process.send_signal(signal.SIGTERM)
        try:
            l2.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            l1lib.dump_blocked_tasks()
            raise Failure("A: QEMU did not exit within 60 s of SIGTERM")
        ctx.step("A: then hostdevd@vm11 is stopped: SIGTERM at once, while it gives the device back")
        daemon.signal(signal.SIGTERM)
        ctx.log(f"A: at SIGTERM {bdf} was on {host_state(bdf)}")
        status = daemon.wait_exit(90)
        ctx.log(f"A: hostdevd exited with {status}; {bdf} on {host_state(bdf)}")
        ctx.expect(status == 0, f"A: hostdevd SIGTERMed during the release exited with {status}, expected 0")
        if expect_back(ctx, bdf, "e1000e", original, "A: SIGTERM during the release (the unit's stop order)", 20):
            try:
                wait_for(lambda: l1lib.pci_netdevs(bdf), 20, f"a network interface of {bdf}")
            except Failure:
                ctx.expect(False, f"A: {bdf} is on e1000e but has no network interface")
        expect_nothing_left(ctx, vm, [bdf], group, "A: after the stop in the unit's order")
        put_back_by_hand(ctx, bdf, "e1000e", original)

        ctx.step("B: managed attach again, into a new QEMU on the same sockets")
        l2 = ctx.paused_l2(vm, running=True)
        daemon = ctx.start_hostdevd(l2)
        attach_ok(ctx, vm, xml, "B: managed attach of the e1000e")
        alias = vfio_alias(ctx, l2, bdf, "B: after attach-device")

        ctx.step("B: systemctl stop hostdevd@vm11 while QEMU runs: the device stays in the VM")
        daemon.signal(signal.SIGTERM)
        status = daemon.wait_exit(60)
        ctx.expect(status == 0, f"B: hostdevd SIGTERMed while QEMU runs exited with {status}, expected 0")
        check(alias in l2.qmp.vfio_devices(),
              f"B: SIGTERM while QEMU runs took {alias} out of QEMU: {l2.qmp.peripherals()}")
        check(l1lib.pci_driver(bdf) == "vfio-pci",
              f"B: SIGTERM while QEMU runs gave {bdf} back ({host_state(bdf)}) although QEMU holds it")
        check(journal_entries(ctx, vm), f"B: {vm}'s journal was emptied although the device stays in the VM")

        ctx.step("B: QEMU quits while no hostdevd runs")
        l2.quit()
        time.sleep(1)
        ctx.log(f"B: with no hostdevd {bdf} stays on {host_state(bdf)}")

        ctx.step("B: hostdevd starts with no QEMU: gives the device back from the journal, then waits for QMP")
        daemon = ctx.start_hostdevd(l2, wait_socket=False, qmp_wait=600)
        back = expect_back(ctx, bdf, "e1000e", original,
                           "B: hostdevd started after its QEMU died did not give the device back "
                           "from its journal before waiting for a new QEMU", 60)
        ctx.expect(daemon.alive(), f"B: hostdevd exited ({daemon.process.returncode}) instead of "
                                   "waiting for a new QEMU: " + daemon.log_of_this_run()[-600:])
        if back:
            # the host driver is probed first; the claim and the journal record
            # go once the release has finished
            try:
                wait_for(lambda: not claims_on(ctx, bdf) and not journal_entries(ctx, vm), 10,
                         f"the replay's release of {bdf} to finish")
            except Failure as e:
                ctx.log(f"B: {e}")
            expect_nothing_left(ctx, vm, [bdf], group, "B: after the replay with no QEMU")
        ctx.expect(not os.path.exists(daemon.socket),
                   "B: hostdevd opened its control socket although no QEMU runs")
        put_back_by_hand(ctx, bdf, "e1000e", original)

        ctx.step("B: a new QEMU appears: hostdevd connects and holds nothing")
        l2 = ctx.paused_l2(vm, running=True)
        if daemon.alive():
            wait_for(lambda: os.path.exists(daemon.socket) or not daemon.alive(), 60,
                     "hostdevd's control socket once QEMU is up")
        check(daemon.alive(), f"B: hostdevd exited ({daemon.process.returncode}) before the new QEMU came: "
                              + daemon.log_of_this_run()[-600:])
        ctx.expect(ctx.listed(vm) == [], f"B: hostdevd lists {ctx.listed(vm)} for a QEMU it never gave anything")
        ctx.expect(not l2.qmp.vfio_devices(), f"B: the new QEMU got a device: {l2.qmp.vfio_devices()}")
        l2.quit()
        status = daemon.wait_exit(60)
        ctx.expect(status == 0, f"B: hostdevd exited with {status} after the new QEMU quit")
        ctx.expect(host_state(bdf) == ("e1000e", original), f"B: at the end {bdf} is on {host_state(bdf)}")

        ctx.step("C: attach, then the VM stops the unit's way round (hostdevd, then QEMU)")
        l2 = ctx.paused_l2(vm, running=True)
        daemon = ctx.start_hostdevd(l2)
        attach_ok(ctx, vm, xml, "C: managed attach of the e1000e")
        daemon.signal(signal.SIGTERM)
        status = daemon.wait_exit(60)
        ctx.expect(status == 0, f"C: hostdevd SIGTERMed while QEMU runs exited with {status}, expected 0")
        l2.quit()
        ctx.step("C: the administrator keeps the device for VFIO: hostdevctl nodedev-detach")
        ctx.ctl("nodedev-detach", nodedev_name(bdf), check_ok=True)
        check(host_state(bdf) == ("vfio-pci", "vfio-pci"),
              f"C: after nodedev-detach {bdf} is on {host_state(bdf)}")
        note = os.path.join(ctx.runtime, "claims", nodedev_name(bdf) + ".administered")
        ctx.expect(vm in (l1lib.read(note, "") or ""),
                   f"C: nodedev-detach left no note naming {vm} beside its stale claims")
        ctx.step("C: hostdevd starts with no QEMU: its replay leaves the device as the "
                 "administrator set it and gives back the rest")
        daemon = ctx.start_hostdevd(l2, wait_socket=False, qmp_wait=600)
        try:
            wait_for(lambda: not claims_on(ctx, bdf) and not journal_entries(ctx, vm), 60,
                     f"the replay's release of {bdf} to finish")
        except Failure as e:
            ctx.expect(False, f"C: {e}")
        ctx.expect(host_state(bdf) == ("vfio-pci", "vfio-pci"),
                   f"C: the replay set {bdf} back to {host_state(bdf)} after the administrator's "
                   "nodedev-detach")
        ctx.expect("the administrator set its driver" in daemon.log_of_this_run(),
                   "C: hostdevd's log does not say it left the device to the administrator")
        expect_nothing_left(ctx, vm, [bdf], group, "C: after the replay")
        daemon.signal(signal.SIGTERM)
        ctx.expect(daemon.wait_exit(60) == 0, "C: hostdevd waiting for QMP did not stop on SIGTERM")
        ctx.ctl("nodedev-reattach", nodedev_name(bdf), check_ok=True)
        set_override(bdf, original)
        put_back_by_hand(ctx, bdf, "e1000e", original)
    finally:
        if l1lib.pci_driver(bdf) == "e1000e":
            set_override(bdf, "")


# -- 12 ---------------------------------------------------------------------

@scenario(12, "replay after a VM died unreleased: another VM took the device; the first VM's next hostdevd "
              "drops its record and leaves the device in the other VM")
def replay_against_other_vm(ctx):
    bdf = E1000E
    vm1, vm2 = "vm12a", "vm12b"
    require_host_driver(bdf, "e1000e")
    group = l1lib.pci_group(bdf)
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))
    qemu2 = ctx.booted_l2()             # VM2: a guest that answers unplug requests

    ctx.step(f"{vm1} attaches {bdf}")
    qemu1 = ctx.paused_l2(vm1, running=True)
    daemon1 = ctx.start_hostdevd(qemu1)
    attach_ok(ctx, vm1, xml, f"{vm1}: managed attach")
    vfio_alias(ctx, qemu1, bdf, f"{vm1} after attach-device")

    ctx.step(f"{vm1}'s hostdevd SIGTERMed, then its QEMU killed: nobody gives the device back")
    daemon1.signal(signal.SIGTERM)
    daemon1.wait_exit(60)
    qemu1.qmp.close()
    qemu1.qmp = None
    qemu1.process.kill()
    qemu1.process.wait(timeout=30)
    check(journal_entries(ctx, vm1), f"{vm1}'s journal is empty: the setup did not leave a record to replay")
    ctx.log(f"{bdf} left on {host_state(bdf)}; claims {claims_on(ctx, bdf)}")

    ctx.step(f"{vm2} (booted guest) takes the device over the stale claim")
    daemon2 = ctx.start_hostdevd(qemu2, vm=vm2)
    attach_ok(ctx, vm2, xml, f"{vm2}: managed attach of {bdf}, claimed by {vm1} whose hostdevd and QEMU are gone")
    alias2 = vfio_alias(ctx, qemu2, bdf, f"{vm2} after attach-device")
    held = claims_on(ctx, bdf)
    ctx.log(f"claims after {vm2}'s attach: {held}")
    check(held and all(vm2 in text for text in held.values()),
          f"after {vm2}'s attach the claims on {bdf} do not name {vm2}: {held}")
    state_before = host_state(bdf)
    check(state_before[0] == "vfio-pci", f"{vm2} holds {bdf} but it is on {state_before}")

    try:
        ctx.step(f"{vm1}'s hostdevd starts again, with a new QEMU: it must not touch {bdf}")
        qemu1 = ctx.paused_l2(vm1, running=True)
        daemon1 = ctx.start_hostdevd(qemu1)

        def disturbed():
            if host_state(bdf) != state_before:
                return f"{bdf} went from {state_before} to {host_state(bdf)}"
            try:
                if alias2 not in qemu2.qmp.vfio_devices():
                    return f"{alias2} is gone from {vm2}'s QEMU: {qemu2.qmp.peripherals()}"
            except Failure as e:
                return f"cannot ask {vm2}'s QEMU: {e}"
            if any(e["event"] == "DEVICE_DELETED" for e in qemu2.qmp.events):
                return f"{vm2}'s QEMU reported DEVICE_DELETED: {qemu2.qmp.events}"
            held_now = claims_on(ctx, bdf)
            if not held_now or not all(vm2 in text for text in held_now.values()):
                return f"the claims on {bdf} no longer name {vm2}: {held_now}"
            return None
        problem = hold_steady(ctx, 15, f"after {vm1}'s restart", disturbed)
        if problem:
            l1lib.dump_blocked_tasks()
        ctx.expect(problem is None, f"{vm1}'s restarted hostdevd acted on {vm2}'s device: {problem}")
        ctx.expect(ctx.listed(vm1) == [], f"{vm1}'s hostdevd lists {ctx.listed(vm1)}: the device is {vm2}'s")
        ctx.expect(not journal_entries(ctx, vm1),
                   f"{vm1}'s journal still holds {journal_entries(ctx, vm1)}: the record must be dropped")
        log = daemon1.log_of_this_run()
        said = [line for line in log.splitlines() if vm2 in line]
        ctx.log(f"{vm1}'s hostdevd about {vm2}: {said}")
        ctx.expect(said, f"{vm1}'s hostdevd did not log that it dropped its record of {bdf} because "
                         f"{vm2} holds it; its log:\n" + "\n".join(log.splitlines()[-10:]))
        ctx.expect(alias2 in qemu2.qmp.vfio_devices() and l1lib.pci_driver(bdf) == "vfio-pci",
                   f"at the end {vm2}'s QEMU has {qemu2.qmp.vfio_devices()} and {bdf} is on {host_state(bdf)}")
    finally:
        ctx.step(f"clean up: {vm2} detaches (its guest cooperates)")
        if daemon2.alive() and alias2 in qemu2.qmp.vfio_devices():
            result, reply = ctx.ctl_json("detach-device-alias", vm2, alias2, "--wait", "60", timeout=120)
            ctx.log(f"{vm2} detach: exit {result.returncode} {reply}")
        ctx.log(f"after {vm2}'s detach {bdf} is on {host_state(bdf)} (its first owner's record of the "
                f"original driver went with {vm1}'s journal)")
        for daemon in (daemon2, daemon1):
            daemon.signal(signal.SIGTERM)
            daemon.wait_exit(60)
        unplug_directly(ctx, qemu2, [alias2])
        put_back_by_hand(ctx, bdf, "e1000e", "")
        for key in claims_on(ctx, bdf):
            os.unlink(os.path.join(ctx.runtime, "claims", key))


# -- 13 ---------------------------------------------------------------------

@scenario(13, "QEMU with a 1.5 GiB guest holding the device is killed: the device is back on its host driver")
def large_guest_exit(ctx):
    bdf = E1000E
    vm = "vm13"
    ram = 1536
    require_host_driver(bdf, "e1000e")
    group = l1lib.pci_group(bdf)
    l2 = ctx.paused_l2(vm, ram=ram, running=True)
    daemon = ctx.start_hostdevd(l2)
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))

    ctx.step(f"managed attach into an L2 with {ram} MiB (VFIO pins all of it)")
    t0 = time.monotonic()
    attach_ok(ctx, vm, xml, f"managed attach into the {ram} MiB guest")
    ctx.log(f"attach took {time.monotonic() - t0:.1f} s")
    vfio_alias(ctx, l2, bdf, "after attach-device")
    locked = l1lib.read(f"/proc/{l2.pid}/status", "")
    ctx.log("QEMU " + " ".join(l for l in locked.splitlines() if l.startswith(("VmLck", "VmPin", "VmRSS"))))

    ctx.step("SIGKILL QEMU: hostdevd gives the device back once the kernel has let go of it")
    l2.qmp.close()
    l2.qmp = None
    t0 = time.monotonic()
    l2.process.kill()
    l2.process.wait(timeout=120)
    ctx.log(f"QEMU reaped {time.monotonic() - t0:.2f} s after SIGKILL")
    status = daemon.wait_exit(120)
    ctx.log(f"hostdevd exited with {status} {time.monotonic() - t0:.2f} s after SIGKILL; {bdf} on {host_state(bdf)}")
    ctx.expect(status == 0, f"hostdevd exited with {status} after QEMU was killed, expected 0")
    if expect_back(ctx, bdf, "e1000e", "", "after QEMU with a large guest was killed", 10):
        try:
            wait_for(lambda: l1lib.pci_netdevs(bdf), 20, f"a network interface of {bdf}")
        except Failure:
            ctx.expect(False, f"{bdf} is on e1000e but has no network interface")
    expect_nothing_left(ctx, vm, [bdf], group, "after QEMU was killed")
    failed_probe = [l for l in daemon.log_of_this_run().splitlines()
                    if "Invalid argument" in l or "EINVAL" in l]
    ctx.expect(not failed_probe, "hostdevd's probe of the host driver failed: " + "\n".join(failed_probe[:5]))


# -- 14 ---------------------------------------------------------------------

POLICY_GROUP_14 = """\
# hostdevd policy used by tests/vm scenario 14
[vm vm14]
allow-iommu-group-takeover=true
"""


@scenario(14, "two-function IOMMU group in a booted L2, detached one function at a time with hostdevd restarts "
              "in between: the other function stays in QEMU, both go back together")
def group_one_function_at_a_time(ctx):
    vm = "vm14"
    first, second = MF0, MF1
    group = l1lib.pci_group(first)
    check(l1lib.pci_group(second) == group, f"precondition: {first} and {second} should share a group")
    for bdf in (first, second):
        require_host_driver(bdf, "e1000e")
    # The second function has an original driver_override of its own.
    overrides = {first: "", second: "e1000e"}
    set_override(second, overrides[second])
    l2 = ctx.booted_l2()
    policy = ctx.private_file("policy.conf", POLICY_GROUP_14)
    extra = ["--policy", policy]
    xmls = {bdf: ctx.file(f"{bdf}.xml", l1lib.pci_xml(bdf, managed=True)) for bdf in (first, second)}
    daemon = ctx.start_hostdevd(l2, vm=vm, extra=extra)
    aliases = {}
    try:
        ctx.step("attach both functions (whole-group takeover)")
        for bdf in (first, second):
            attach_ok(ctx, vm, xmls[bdf], f"attach of {bdf}")
            aliases[bdf] = vfio_alias(ctx, l2, bdf, f"after attaching {bdf}")
        for bdf in (first, second):
            check(l1lib.pci_driver(bdf) == "vfio-pci", f"{bdf} is on {l1lib.pci_driver(bdf)} with both attached")

        ctx.step(f"detach {first}; {second} stays")
        detach(ctx, vm, xmls[first], 60, "detached", f"detach of {first}")
        l2.qmp.wait_event("DEVICE_DELETED", 10, device=aliases[first])
        held = host_state(second)
        ctx.log(f"after the first detach: {first} on {host_state(first)}, {second} on {held}")
        check(held[0] == "vfio-pci", f"{second} is still in QEMU but went to {held}")

        def second_untouched():
            if host_state(second) != held:
                return f"{second} went from {held} to {host_state(second)}"
            if aliases[second] not in l2.qmp.vfio_devices():
                return f"{aliases[second]} left QEMU: {l2.qmp.peripherals()}"
            if any(e["event"] == "DEVICE_DELETED" for e in l2.qmp.events):
                return f"QEMU reported {[e for e in l2.qmp.events if e['event'] == 'DEVICE_DELETED']}"
            if l1lib.pci_driver(first) not in ("vfio-pci", None):
                # back on e1000e while its group sibling is in a VM: the
                # kernel's DMA ownership forbids it, the probe would race
                return f"{first} went to {host_state(first)} while {second} is in the VM"
            return None

        ctx.step("restart hostdevd: QEMU keeps the second function, the host does not touch it")
        daemon.signal(signal.SIGTERM)
        ctx.expect(daemon.wait_exit(60) == 0, "hostdevd SIGTERMed while QEMU runs did not exit 0")
        daemon = ctx.start_hostdevd(l2, vm=vm, extra=extra)
        problem = hold_steady(ctx, 15, "after the first restart", second_untouched)
        if problem:
            l1lib.dump_blocked_tasks()
        check(problem is None, f"after the restart with {first} detached: {problem}")
        # the first function left QEMU but waits for its group: listed as detaching
        listed = {e.get("alias"): e.get("state") for e in ctx.listed(vm)}
        expected = {aliases[second]: "attached", aliases[first]: "detaching"}
        ctx.expect(listed == expected,
                   f"the restarted hostdevd lists {listed}, expected {expected}: QEMU holds "
                   f"{aliases[second]}, {aliases[first]} waits for its IOMMU group")
        ctx.expect(claims_on(ctx, second), f"no claim on {second} while it is in the VM")

        ctx.step(f"detach {second}: both functions go back")
        detach(ctx, vm, xmls[second], 60, "detached", f"detach of {second} after the restart")
        l2.qmp.wait_event("DEVICE_DELETED", 10, device=aliases[second])
        for bdf in (first, second):
            expect_back(ctx, bdf, "e1000e", overrides[bdf], f"after detaching {second}")

        ctx.step("restart hostdevd again: nothing changes, nothing is left")
        daemon.signal(signal.SIGTERM)
        ctx.expect(daemon.wait_exit(60) == 0, "hostdevd SIGTERMed with nothing attached did not exit 0")
        daemon = ctx.start_hostdevd(l2, vm=vm, extra=extra)
        time.sleep(3)
        for bdf in (first, second):
            ctx.expect(host_state(bdf) == ("e1000e", overrides[bdf]),
                       f"after the last restart {bdf} is on {host_state(bdf)}")
        ctx.expect(ctx.listed(vm) == [], f"the last restart lists {ctx.listed(vm)}")
        expect_nothing_left(ctx, vm, [first, second], group, "after both functions went back")
        ctx.expect(not l2.qmp.vfio_devices(), f"QEMU still holds {l2.qmp.vfio_devices()}")
        daemon.signal(signal.SIGTERM)
        daemon.wait_exit(60)
    finally:
        daemon.signal(signal.SIGTERM)
        daemon.wait_exit(60)
        unplug_directly(ctx, l2, aliases.values())
        for bdf in (first, second):
            if l1lib.pci_driver(bdf) != "e1000e":
                put_back_by_hand(ctx, bdf, "e1000e", "")
        if l1lib.pci_driver(second) == "e1000e":
            set_override(second, "")
        for key in claims_on(ctx, first, second):
            os.unlink(os.path.join(ctx.runtime, "claims", key))


# -- 15 ---------------------------------------------------------------------
#
# The shipped unit under the real systemd (the host's, 252) in L1: systemd
# runs as PID 1 of its own PID and mount namespace inside L1's chroot, with
# a cgroup2 hierarchy and a fresh /var, and shares L1's /run (so the test
# reaches the sockets).  Units live in /run/systemd/system: the shipped
# hostdevd@.service (only DefaultDependencies=no and its output added by a
# drop-in: L1 is not a booted host whose sysinit.target could start), a
# qemu@.service starting an L2 without an OS, and hostdevd@vm15 enabled for
# it as `systemctl enable` would.

SYSTEMD = "/lib/systemd/systemd"
UNITS = "/run/systemd/system"

QEMU_UNIT = """\
[Unit]
Description=L2 test VM %i (tests/vm scenario 15)
DefaultDependencies=no

[Service]
ExecStart={argv}
RuntimeDirectory=qemu
RuntimeDirectoryPreserve=yes
StandardOutput=append:{log}
StandardError=inherit
"""

HOSTDEVD_DROPIN = """\
# tests/vm scenario 15: L1 is not a booted host (sysinit.target would pull in
# its early-boot units), and hostdevd's output goes to the scenario's logs.
[Unit]
DefaultDependencies=no

[Service]
StandardOutput=append:{log}
StandardError=inherit
Environment=G_MESSAGES_DEBUG=
"""

# After= only to reference the VM's units: an active unit's references keep
# them loaded once inactive, with the timestamps the scenario reads.
TARGET_UNIT = """\
[Unit]
Description=tests/vm scenario 15
DefaultDependencies=no
After=qemu@{vm}.service hostdevd@{vm}.service
"""


class Systemd:
    """systemd as PID 1 of a PID+mount namespace in L1, driven with systemctl."""

    def __init__(self, ctx):
        self.ctx = ctx
        script = ("mount -t cgroup2 cgroup2 /sys/fs/cgroup && mount -t tmpfs -o mode=0755 tmpfs /var && "
                  "mkdir -p /var/tmp /var/lib/systemd && chmod 1777 /var/tmp && ln -s ../run /var/run && "
                  f"exec {SYSTEMD} --system --unit=hostdevd-test.target --log-target=kmsg "
                  "--log-level=info --show-status=no")
        env = dict(os.environ, container="hostdevd-test")
        self.unshare = ctx.spawn(["unshare", "--pid", "--fork", "--mount", "--propagation", "private",
                                  "--mount-proc", "--kill-child", "sh", "-c", script],
                                 env=env, stdin=subprocess.DEVNULL,
                                 stdout=open(os.path.join(l1lib.LOGS, "s15-systemd.out"), "ab"),
                                 stderr=subprocess.STDOUT)
        self.pid = wait_for(self._init_pid, 30, "systemd to start in its namespace")
        wait_for(lambda: os.path.exists("/run/systemd/private") or self.unshare.poll() is not None, 120,
                 "systemd's private socket", interval=0.5)
        check(self.unshare.poll() is None, f"systemd exited ({self.unshare.returncode}); see s15-systemd.out "
                                           "and the kernel log")
        seen = []

        def started():
            result = self.run("is-system-running")
            seen[:] = [result.stdout.strip(), result.stderr.strip()]
            return result.stdout.strip() in ("running", "degraded") and result.stdout.strip()
        try:
            state = wait_for(started, 120, "systemd to finish starting", interval=1)
        except Failure as e:
            raise Failure(f"{e}; systemctl is-system-running says {seen}")
        ctx.log(f"systemd {self.pid} (L1's PID) is {state}")

    def _init_pid(self):
        children = l1lib.read(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children", "")
        if children and l1lib.read(f"/proc/{children.split()[0]}/comm", "") == "systemd":
            return int(children.split()[0])
        return None

    def enter(self):
        """The prefix that runs a command in systemd's namespaces: hostdevd
        refuses control clients of another PID namespace (GLib reports no
        credentials when the peer's pid does not map)."""
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "-r", "-w"]

    def run(self, *args, timeout=120):
        # -r -w: the target's root and cwd (L1's chroot), not the namespace's (L1's initramfs)
        argv = ["nsenter", "-t", str(self.pid), "-m", "-p", "-r", "-w", "systemctl", "--no-pager", *args]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"systemctl {' '.join(args)} did not finish within {timeout} s")
        return result

    def ctl(self, *args, timeout=180):
        """systemctl @args, which must succeed."""
        self.ctx.log("$ systemctl " + " ".join(args))
        t0 = time.monotonic()
        result = self.run(*args, timeout=timeout)
        self.ctx.log(f"  exit {result.returncode} after {time.monotonic() - t0:.2f} s "
                     f"{result.stdout.strip()} {result.stderr.strip()}")
        check(result.returncode == 0, f"systemctl {' '.join(args)} failed ({result.returncode}): "
                                      f"{result.stderr.strip()[:400]}")
        return result

    def show(self, unit, *properties):
        result = self.run("show", unit, "-p", ",".join(properties))
        values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        return values

    def mono(self, unit, prop):
        return int(self.show(unit, prop).get(prop) or 0)

    def wait_state(self, unit, states, timeout):
        return wait_for(lambda: self.show(unit, "ActiveState").get("ActiveState") in states, timeout,
                        f"{unit} to be {'/'.join(states)}", interval=0.5)

    def stop(self):
        if self.unshare.poll() is None:
            self.unshare.kill()         # --kill-child: systemd and all it runs go with it
            self.unshare.wait(timeout=30)
        for leftover in ("/run/systemd", "/run/qemu", "/run/hostdevd"):
            subprocess.run(["rm", "-rf", leftover], timeout=30)


@scenario(15, "the shipped unit under real systemd in L1: hostdevd@ ready before qemu@ starts; "
              "systemctl stop/restart qemu@ and restart hostdevd@ with a device attached")
def real_systemd(ctx):
    bdf = E1000E
    vm = "vm15"
    require_host_driver(bdf, "e1000e")
    check(os.path.exists(SYSTEMD), f"no {SYSTEMD} on this machine")
    hostdevd = ctx.config["hostdevd"]
    if hostdevd.startswith("/tmp/"):
        # the unit's PrivateTmp=yes hides /tmp from it: install the binary as a package would
        installed = "/run/hostdevd-s15/sbin/hostdevd"
        os.makedirs(os.path.dirname(installed), exist_ok=True)
        shutil.copy2(hostdevd, installed)
        hostdevd = installed
    check(not os.path.exists("/run/systemd/private"), "a systemd already runs in L1")
    group = l1lib.pci_group(bdf)
    original = "e1000e"
    set_override(bdf, original)
    runtime = "/run/hostdevd"
    ctx.runtime = runtime               # claims, control sockets, journals: the unit's RuntimeDirectory
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))

    ctx.step("units in /run/systemd/system; hostdevd@vm15 enabled for qemu@vm15")
    os.makedirs(os.path.join(UNITS, "hostdevd@.service.d"), exist_ok=True)
    os.makedirs(os.path.join(UNITS, f"qemu@{vm}.service.wants"), exist_ok=True)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostdevd@.service.in")) as f:
        unit = f.read().replace("@sbindir@", os.path.dirname(hostdevd))
    with open(os.path.join(UNITS, "hostdevd@.service"), "w") as f:
        f.write(unit)
    with open(os.path.join(UNITS, "hostdevd@.service.d", "l1.conf"), "w") as f:
        f.write(HOSTDEVD_DROPIN.format(log=os.path.join(l1lib.LOGS, "s15-hostdevd.log")))
    # QMP where the shipped unit's --qmp looks (/run/qemu/%i.qmp), and the test's own
    qemu_argv = [a.replace("%i.hd.qmp", "%i.qmp")
                 for a in l1lib.L2.argv(ctx.config, "%i", "/run/qemu", False, 64, running=True)]
    with open(os.path.join(UNITS, "qemu@.service"), "w") as f:
        f.write(QEMU_UNIT.format(argv=" ".join(qemu_argv), log=os.path.join(l1lib.LOGS, "s15-qemu.log")))
    with open(os.path.join(UNITS, "hostdevd-test.target"), "w") as f:
        f.write(TARGET_UNIT.format(vm=vm))
    os.symlink("../hostdevd@.service", os.path.join(UNITS, f"qemu@{vm}.service.wants", f"hostdevd@{vm}.service"))
    ctx.log("hostdevd@.service as installed:\n" + unit)

    l2 = l1lib.L2(vm, "/run/qemu", 0, None, None, 64)
    ctx.l2s.append(l2)
    hd, qemu = f"hostdevd@{vm}.service", f"qemu@{vm}.service"
    systemd = None
    try:
        systemd = Systemd(ctx)
        ctx.ctl_prefix = systemd.enter()
        def start_vm(what):
            ctx.step(f"{what}: systemctl start qemu@{vm}")
            systemd.ctl("start", qemu)
            systemd.wait_state(hd, ("active",), 60)
            ready = systemd.mono(hd, "ActiveEnterTimestampMonotonic")
            started = systemd.mono(qemu, "ExecMainStartTimestampMonotonic")
            ctx.log(f"{hd} ready at {ready}, QEMU started at {started} (µs)")
            check(ready and started and ready <= started,
                  f"{what}: QEMU started before hostdevd was ready: {hd} active at {ready}, QEMU at {started}")
            wait_for(lambda: os.path.exists(os.path.join(runtime, f"{vm}.sock")), 60, "hostdevd's control socket")
            l2.qmp = None
            l2.connect()

        def stopped_in_order(what, since):
            times = {f"{unit} {prop}": systemd.mono(unit, prop) for unit in (qemu, hd)
                     for prop in ("ActiveExitTimestampMonotonic", "InactiveEnterTimestampMonotonic")}
            info = systemd.show(hd, "Result", "ExecMainStatus", "ExecMainCode")
            ctx.log(f"{what}: {times}; hostdevd {info}")
            qemu_stop = times[f"{qemu} ActiveExitTimestampMonotonic"]
            hd_stop = times[f"{hd} ActiveExitTimestampMonotonic"]
            ctx.expect(since < qemu_stop <= hd_stop,
                       f"{what}: systemd did not stop QEMU first: {times}")
            ctx.expect(info.get("Result") == "success" and info.get("ExecMainStatus") == "0",
                       f"{what}: hostdevd did not stop cleanly: {info}")

        def given_back(what):
            if expect_back(ctx, bdf, "e1000e", original, what, 30):
                left = claims_on(ctx, bdf)
                ctx.expect(not left, f"{what}: claims left: {left}")
                journal = [n for n in os.listdir(os.path.join(runtime, f"{vm}.journal"))
                           if n.endswith(".json")] if os.path.isdir(os.path.join(runtime, f"{vm}.journal")) else []
                ctx.expect(not journal, f"{what}: {vm}'s journal still holds {journal}")
                node = l1lib.vfio_node_stat(group)
                ctx.expect(node is None or node["uid"] == 0, f"{what}: /dev/vfio/{group} is {node}")
            put_back_by_hand(ctx, bdf, "e1000e", original)

        def attach(what):
            attach_ok(ctx, vm, xml, f"{what}: managed attach")
            check(l1lib.pci_driver(bdf) == "vfio-pci", f"{what}: {bdf} is on {l1lib.pci_driver(bdf)}")
            return vfio_alias(ctx, l2, bdf, f"{what}: after attach-device")

        start_vm("first start")
        alias = attach("first start")

        ctx.step(f"systemctl restart hostdevd@{vm}: the device stays in the running VM")
        systemd.ctl("restart", hd)
        wait_for(lambda: os.path.exists(os.path.join(runtime, f"{vm}.sock")), 60, "hostdevd's control socket")
        check(alias in l2.qmp.vfio_devices(), f"restarting hostdevd took {alias} out of QEMU: {l2.qmp.peripherals()}")
        check(l1lib.pci_driver(bdf) == "vfio-pci", f"restarting hostdevd gave {bdf} back while QEMU holds it")
        listed = [e.get("alias") for e in ctx.listed(vm)]
        ctx.expect(listed == [alias], f"the restarted hostdevd lists {listed}, QEMU holds {alias}")

        ctx.step(f"systemctl restart qemu@{vm}: QEMU stops, hostdevd gives the device back, both start again")
        since = systemd.mono(qemu, "ActiveEnterTimestampMonotonic")
        l2.qmp.close()
        systemd.ctl("restart", qemu)
        systemd.wait_state(hd, ("active",), 60)
        restarted = systemd.mono(hd, "ActiveEnterTimestampMonotonic")
        ctx.expect(restarted > since, f"hostdevd@{vm} was not restarted with qemu@{vm}")
        given_back(f"systemctl restart qemu@{vm}")
        wait_for(lambda: os.path.exists(os.path.join(runtime, f"{vm}.sock")), 60, "hostdevd's control socket")
        l2.qmp = None
        l2.connect()
        ctx.expect(not l2.qmp.vfio_devices(), f"the restarted QEMU has {l2.qmp.vfio_devices()}")
        ctx.expect(ctx.listed(vm) == [], f"the restarted hostdevd lists {ctx.listed(vm)}")
        alias = attach("after the restart")

        ctx.step(f"systemctl stop qemu@{vm}: QEMU first, then hostdevd; the device is back")
        since = systemd.mono(qemu, "ActiveEnterTimestampMonotonic")
        l2.qmp.close()
        systemd.ctl("stop", qemu)
        systemd.wait_state(hd, ("inactive", "failed"), 120)
        stopped_in_order(f"systemctl stop qemu@{vm}", since)
        given_back(f"systemctl stop qemu@{vm}")
    finally:
        if systemd is not None:
            systemd.stop()
        else:
            for leftover in ("/run/systemd", "/run/qemu", "/run/hostdevd"):
                subprocess.run(["rm", "-rf", leftover], timeout=30)
        ctx.runtime = os.path.join(ctx.dir, "run")
        if l1lib.pci_driver(bdf) == "e1000e":
            set_override(bdf, "")


# -- 16 ---------------------------------------------------------------------

@scenario(16, "a two-function slot in one request (as a GPU with its audio function): one guest slot, "
              "function 0 last, the guest sees both; detaching function 1 takes the slot out; both back")
def multifunction_slot(ctx):
    vm = "vm16"
    group = l1lib.pci_group(MF0)
    check(l1lib.pci_group(MF1) == group, f"precondition: {MF0} and {MF1} should share a group")
    for bdf in (MF0, MF1):
        require_host_driver(bdf, "e1000e")
    l2 = ctx.booted_l2()
    guest_before = wait_for(l2.guest_pci, 30, "the L2 guest's PCI list")
    # no whole-group policy: the request holds every endpoint of the group
    ctx.start_hostdevd(l2, vm=vm)
    both = ctx.file("slot.xml", "<devices>\n" + l1lib.pci_xml(MF0) + l1lib.pci_xml(MF1) +
                    "</devices>\n")
    one = ctx.file("function1.xml", l1lib.pci_xml(MF1))

    ctx.step("attach-device with a <devices> element holding both functions")
    _, reply = ctx.ctl_json("attach-device", vm, both, check_ok=True,
                            what="attach of the two-function slot")
    attached = [d.get("alias") for d in ((reply or {}).get("return") or {}).get("devices", [])]
    check(len(attached) == 2, f"the reply should name both devices: {reply}")
    for bdf in (MF0, MF1):
        check(l1lib.pci_driver(bdf) == "vfio-pci", f"{bdf} is on {l1lib.pci_driver(bdf)} after the attach")
    zero = vfio_alias(ctx, l2, MF0, "after the attach")
    other = vfio_alias(ctx, l2, MF1, "after the attach")

    ctx.step("QEMU's own view: one slot, function 0 multifunction")
    buses = {alias: l2.qmp.prop(alias, "parent_bus") for alias in (zero, other)}
    check(buses[zero] == buses[other], f"the functions are on different buses: {buses}")
    devfn = {alias: l2.qmp.prop(alias, "addr") for alias in (zero, other)}
    ctx.log(f"parent buses {buses}, addr {devfn}")
    check(devfn[zero] == 0 and devfn[other] == 1,
          f"expected function 0 and 1 of slot 0 (addr 0 and 1), QEMU has {devfn}")
    check(l2.qmp.prop(zero, "multifunction") is True, f"{zero} is not multifunction in QEMU")

    ctx.step("the guest OS sees both functions")
    expect_guest_sees(ctx, l2, guest_before, 2, "the L2 guest to report the two new PCI functions")

    ctx.step("detach function 1: the whole slot leaves, the host gets both back")
    answer = detach(ctx, vm, one, 60, "detached", "detach of function 1")
    ctx.expect(sorted(answer.get("slot") or []) == sorted([zero, other]),
               f"the reply should name the whole slot: {answer}")
    for alias in (zero, other):
        l2.qmp.wait_event("DEVICE_DELETED", 20, device=alias)
    for bdf in (MF0, MF1):
        expect_back(ctx, bdf, "e1000e", "", "after detaching the slot")
    wait_for(lambda: ctx.listed(vm) == [], 20, "hostdevd to list nothing")
    ctx.expect(claims_on(ctx, MF0, MF1) == {}, f"claims left: {claims_on(ctx, MF0, MF1)}")
    expect_guest_sees(ctx, l2, guest_before, 0, "the guest to report both functions gone")


# -- 17 ---------------------------------------------------------------------

def usb_port_dir(name):
    """The sysfs directory of the hub port USB device @name is plugged in.  The
    device's `port` link appears a moment after the device itself (a device
    just re-enumerated, e.g. by hostdevd's revoke on release, may lack it):
    a path through the device would vanish with the device."""
    link = f"{l1lib.SYS_USB}/{name}/port"
    wait_for(lambda: os.path.islink(link), 10, f"{name}'s port link in sysfs")
    return os.path.realpath(link)


class UsbAway:
    """USB device @name made to leave L1's host and come back as a new
    enumeration: its hub port powered off and on (the port's `disable`
    attribute), or, where the emulated hub ignores port power, its xHCI
    controller unbound and bound again (every device of the bus re-enumerates)."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name
        self.port = usb_port_dir(name)
        bus = l1lib.read(f"{l1lib.SYS_USB}/{name}/busnum")
        self.controller = os.path.basename(os.path.dirname(os.path.realpath(f"{l1lib.SYS_USB}/usb{bus}")))
        self.method = None

    def gone(self):
        return not os.path.exists(f"{l1lib.SYS_USB}/{self.name}")

    def take(self):
        self.ctx.log(f"taking {self.name} away (port {self.port}, controller {self.controller})")
        if os.path.exists(f"{self.port}/disable"):
            l1lib.sysfs_write(f"{self.port}/disable", "1")
            try:
                wait_for(self.gone, 5, f"{self.name} to leave when its port is disabled")
                self.method = "port disable"
                return
            except Failure:
                self.ctx.log("the port's disable attribute did not remove the device")
                l1lib.sysfs_write(f"{self.port}/disable", "0")
        l1lib.sysfs_write("/sys/bus/pci/drivers/xhci_hcd/unbind", self.controller)
        wait_for(self.gone, 10, f"{self.name} to leave when its controller is unbound")
        self.method = "xHCI unbind/bind"

    def bring_back(self):
        """Return: the monotonic time the device was back in sysfs."""
        if self.method == "port disable":
            l1lib.sysfs_write(f"{self.port}/disable", "0")
        else:
            l1lib.sysfs_write("/sys/bus/pci/drivers/xhci_hcd/bind", self.controller)
        wait_for(lambda: self.name in l1lib.usb_find(*KBD), 20,
                 f"{self.name} to come back ({self.method})", interval=0.05)
        return time.monotonic()


def follow_phases(daemon):
    """Each re-attach hostdevd logged: {"ms": uevent to device_add returned,
    "lookup_ms", "attach_ms"} (the two parts, when logged)."""
    found = []
    for line in daemon.log_of_this_run().splitlines():
        if "back in the VM, " in line and "uevent to device_add returned: " in line:
            text = line.split("uevent to device_add returned: ")[1]
            entry = {"ms": float(text.split(" ms")[0])}
            for key, label in (("lookup_ms", "look-up "), ("attach_ms", "attach ")):
                if label in text:
                    entry[key] = float(text.split(label)[1].split(" ms")[0])
            found.append(entry)
    return found


def follow_latencies(daemon):
    """The re-attach latencies hostdevd logged, uevent to device_add returned, in ms."""
    return [entry["ms"] for entry in follow_phases(daemon)]


def qemu_usb_port(l2, alias):
    """The guest USB port QEMU has @alias at (x-query-usb), or None."""
    text = l2.qmp.ok("x-query-usb")["human-readable-text"]
    for line in text.splitlines():
        if line.rstrip().endswith(f"ID: {alias}") and ", Port " in line:
            return line.split(", Port ")[1].split(",")[0]
    return None


def wait_latencies(daemon, count):
    """hostdevd logs the latency once the re-attach is verified, a moment after
    QEMU has the device: wait for the @count-th line."""
    try:
        wait_for(lambda: len(follow_latencies(daemon)) >= count, 10,
                 f"hostdevd to log re-attach number {count}")
    except Failure:
        pass
    return follow_latencies(daemon)


def usb_port_of(ctx, vm, alias):
    for device in ctx.listed(vm):
        if device["alias"] == alias:
            guest = ET.fromstring(device["xml"]).find("address[@type='usb']")
            return device["state"], None if guest is None else (guest.get("bus"), guest.get("port"))
    return None, None


@scenario(17, "USB keyboard followed through re-enumeration: back in L2 with a new descriptor at the same "
              "port and alias; an optional keyboard absent at attach is attached when it appears")
def usb_follow(ctx):
    names = l1lib.usb_find(*KBD)
    check(names == list(KBD_PORTS), f"precondition: USB devices {KBD[0]}:{KBD[1]} at {KBD_PORTS} "
                                    f"expected in L1, found {names}")
    name = KBD_PORTS[0]
    vm = "vm17"
    l2 = ctx.paused_l2(vm)
    # QEMU 7.2 closes the descriptors remove-fd drops only while the VM runs
    l2.qmp.ok("cont")
    daemon = ctx.start_hostdevd(l2)
    xml = ctx.file("kbd.xml", l1lib.usb_xml(*KBD, port=name))
    results = {}

    ctx.step(f"attach by vendor/product and port {name}")
    attach_ok(ctx, vm, xml, "attach of the USB keyboard")
    usb = l2.qmp.usb_host_devices()
    check(len(usb) == 1, f"L2 should have one usb-host device, has {l2.qmp.peripherals()}")
    alias = next(iter(usb))
    fdset_before = l2.qmp.prop(alias, "hostdevice")
    port_before = qemu_usb_port(l2, alias)
    state, guest_before = usb_port_of(ctx, vm, alias)
    bus_dev_before = l1lib.usb_node(name)
    ctx.log(f"{alias}: hostdevice={fdset_before} port={port_before} live address {guest_before}, "
            f"L1 bus/device {bus_dev_before[:2]}")
    check(state == "attached" and guest_before and guest_before[1],
          f"the live XML should place {alias} at a guest port: {state} {guest_before}")

    ctx.step("the keyboard re-enumerates in L1: hostdevd keeps it waiting, QEMU's stale device goes")
    away = UsbAway(ctx, name)
    away.take()
    ctx.log(f"re-enumerated by {away.method}")
    results["method"] = away.method
    try:
        l2.qmp.wait_event("DEVICE_DELETED", 10, device=alias)
    except Failure as e:
        ctx.expect(False, f"hostdevd did not remove the stale usb-host: {e}")
    try:
        wait_for(lambda: usb_port_of(ctx, vm, alias)[0] == "waiting-for-device", 10,
                 f"{alias} to be listed as waiting-for-device")
    except Failure as e:
        ctx.expect(False, str(e))
    fdsets = l2.qmp.ok("query-fdsets")
    ctx.expect(all(not f["fds"] for f in fdsets), f"the old descriptor is still in QEMU: {fdsets}")

    ctx.step("the keyboard is back: attached again with a new descriptor, same port and alias")
    t_back = away.bring_back()
    ctx.log(f"L1 bus/device now {l1lib.usb_node(name)[:2]}")
    try:
        wait_for(lambda: alias in l2.qmp.usb_host_devices(), 10,
                 f"{alias} to be back in L2", interval=0.05)
        results["reattach_seen_by_test_s"] = round(time.monotonic() - t_back, 3)
        ctx.log(f"{alias} back in L2 {time.monotonic() - t_back:.2f} s after the keyboard was back in sysfs")
    except Failure as e:
        raise Failure(f"{e}; hostdevd's log ends:\n" + "\n".join(daemon.log_of_this_run().splitlines()[-15:]))
    fdset_after = l2.qmp.prop(alias, "hostdevice")
    ctx.expect(str(fdset_after).startswith("/dev/fdset/") and fdset_after != fdset_before,
               f"expected a new descriptor: hostdevice was {fdset_before}, is {fdset_after}")
    ctx.expect(port_before is not None and qemu_usb_port(l2, alias) == port_before,
               f"guest port changed: {port_before} -> {qemu_usb_port(l2, alias)}")
    state, guest_after = usb_port_of(ctx, vm, alias)
    ctx.expect(state == "attached" and guest_after == guest_before,
               f"listed {state} at {guest_after}, expected attached at {guest_before}")
    text = l2.qmp.ok("x-query-usb")["human-readable-text"]
    ctx.expect("QEMU USB Keyboard" in text and f"ID: {alias}" in text,
               f"x-query-usb on L2 does not show the keyboard as {alias}: {text.strip()}")
    latencies = wait_latencies(daemon, 1)
    ctx.log(f"hostdevd's re-attach latencies (uevent to device_add returned): {latencies} ms")
    ctx.expect(len(latencies) == 1, f"hostdevd should have logged one re-attach: {latencies}")
    results["reattach_ms"] = latencies[:1]

    ctx.step("detach; the keyboard goes back to usbhid")
    detach(ctx, vm, xml, 5, "detached", "detach of the followed keyboard")
    try:
        wait_for(lambda: all(d == "usbhid" for d in l1lib.usb_interface_drivers(name).values()), 15,
                 "usbhid to take the keyboard back")
    except Failure:
        ctx.expect(False, f"L1's usbhid did not get the keyboard back: {l1lib.usb_interface_drivers(name)}")

    ctx.step("an optional keyboard that is not there: accepted as waiting, attached when it appears")
    away = UsbAway(ctx, name)
    away.take()
    optional = ctx.file("optional.xml", l1lib.usb_xml(*KBD, port=name).replace("<source>", "<source startupPolicy='optional'>"))
    _, reply = ctx.ctl_json("attach-device", vm, optional, check_ok=True, what="attach of the absent keyboard")
    waiting = (reply or {}).get("return") or {}
    ctx.expect(waiting.get("state") == "waiting-for-device", f"the reply should say waiting: {reply}")
    alias = waiting.get("alias")
    ctx.expect(l2.qmp.usb_host_devices() == {}, f"QEMU has a usb-host already: {l2.qmp.peripherals()}")
    t_back = away.bring_back()
    try:
        wait_for(lambda: alias in l2.qmp.usb_host_devices(), 10, f"{alias} to be attached", interval=0.05)
        results["arrival_seen_by_test_s"] = round(time.monotonic() - t_back, 3)
    except Failure as e:
        raise Failure(f"{e}; hostdevd's log ends:\n" + "\n".join(daemon.log_of_this_run().splitlines()[-15:]))
    hostdevice = l2.qmp.prop(alias, "hostdevice")
    ctx.expect(str(hostdevice).startswith("/dev/fdset/"),
               f"the arrived keyboard should be passed as a descriptor, hostdevice={hostdevice!r}")
    latencies = wait_latencies(daemon, 2)
    ctx.log(f"hostdevd's latencies so far: {latencies} ms")
    ctx.expect(len(latencies) == 2, f"hostdevd should have logged the arrival: {latencies}")
    results["arrival_ms"] = latencies[1:2]
    detach(ctx, vm, optional, 5, "detached", "detach of the arrived keyboard")
    try:
        wait_for(lambda: all(d == "usbhid" for d in l1lib.usb_interface_drivers(name).values()), 15,
                 "usbhid to take the keyboard back")
    except Failure:
        ctx.expect(False, f"L1's usbhid did not get the keyboard back: {l1lib.usb_interface_drivers(name)}")
    # for bench/bench.py's generated README table (usb_follow_latency)
    phases = follow_phases(daemon)
    results.update(device=f"usb-kbd {KBD[0]}:{KBD[1]} at port {name} of a usb-hub in L1, "
                          f"running L2 without a guest",
                   kernel=os.uname().release, reattach=phases[0:1], arrival=phases[1:2])
    with open(os.path.join(l1lib.LOGS, "usb-follow.json"), "w") as f:
        json.dump(results, f)
    ctx.log(f"results: {results}")


# -- 18 ---------------------------------------------------------------------

# usbfs ioctls (linux/usbdevice_fs.h, x86_64 encodings)
USBDEVFS_CONTROL = 0xC0185500      # _IOWR('U', 0, struct usbdevfs_ctrltransfer)
USBDEVFS_CONNECTINFO = 0x40085511  # _IOW('U', 17, struct usbdevfs_connectinfo)
USBDEVFS_RESET = 0x5514            # _IO('U', 20)


def usbfs_probe(fd):
    """What a holder of usbfs descriptor @fd can still do: {"connectinfo":
    "ok" or the errno name, "get_descriptor": the same} (a GET_DESCRIPTOR
    control transfer for the device descriptor, the cheapest real I/O)."""
    import ctypes
    import errno
    import fcntl
    import struct
    result = {}
    try:
        fcntl.ioctl(fd, USBDEVFS_CONNECTINFO, bytearray(8))
        result["connectinfo"] = "ok"
    except OSError as e:
        result["connectinfo"] = errno.errorcode.get(e.errno, str(e.errno))
    data = ctypes.create_string_buffer(18)
    # bRequestType IN|standard|device, GET_DESCRIPTOR, wValue DEVICE<<8, 18 bytes, 1000 ms
    transfer = bytearray(struct.pack("=BBHHHIxxxxQ", 0x80, 6, 0x0100, 0, 18, 1000, ctypes.addressof(data)))
    try:
        fcntl.ioctl(fd, USBDEVFS_CONTROL, transfer)
        result["get_descriptor"] = "ok" if data.raw[1] == 1 else f"odd reply {data.raw.hex()}"
    except OSError as e:
        result["get_descriptor"] = errno.errorcode.get(e.errno, str(e.errno))
    return result


def usb_sysfs_name_of(bus, dev):
    for name in sorted(os.listdir(l1lib.SYS_USB)):
        if ":" in name or name.startswith("usb"):
            continue
        if l1lib.read(f"{l1lib.SYS_USB}/{name}/busnum") == str(bus) and \
           l1lib.read(f"{l1lib.SYS_USB}/{name}/devnum") == str(dev):
            return name
    return None


def usb_back_on_usbhid(name, timeout=20):
    wait_for(lambda: os.path.exists(f"{l1lib.SYS_USB}/{name}") and l1lib.usb_interface_drivers(name)
             and all(d == "usbhid" for d in l1lib.usb_interface_drivers(name).values()), timeout,
             f"{name} to be back on usbhid")


def measure_usbfs_revocation(ctx, name):
    """Which host-side action makes an open usbfs descriptor of USB device
    @name useless on this kernel: de-authorising it, USBDEVFS_RESET, or
    disabling and re-enabling its hub port.  Return: {method: probe result}."""
    results = {}
    port = usb_port_dir(name)

    def deauthorize():
        l1lib.sysfs_write(f"{l1lib.SYS_USB}/{name}/authorized", "0")
        l1lib.sysfs_write(f"{l1lib.SYS_USB}/{name}/authorized", "1")

    def reset():
        import fcntl
        other = os.open(l1lib.usb_node(name)[2], os.O_RDWR)
        try:
            fcntl.ioctl(other, USBDEVFS_RESET, 0)
        finally:
            os.close(other)

    def port_cycle():
        l1lib.sysfs_write(f"{port}/disable", "1")
        wait_for(lambda: not os.path.exists(f"{l1lib.SYS_USB}/{name}"), 5, f"{name} to leave")
        l1lib.sysfs_write(f"{port}/disable", "0")

    for method, action in (("authorized 0 then 1", deauthorize), ("USBDEVFS_RESET", reset),
                           ("hub port disable then enable", port_cycle)):
        usb_back_on_usbhid(name)
        bus, dev, node = l1lib.usb_node(name)
        fd = os.open(node, os.O_RDWR)
        held = os.dup(fd)
        os.close(fd)
        try:
            before = usbfs_probe(held)
            try:
                action()
                error = None
            except Exception as e:  # noqa: BLE001 - a measurement: record what failed
                error = str(e)
            time.sleep(1)
            after = usbfs_probe(held)
        finally:
            os.close(held)
        try:
            usb_back_on_usbhid(name)
            back = "usbhid"
        except Failure as e:
            back = str(e)
        results[method] = {"before": before, "after": after, "error": error,
                           "bus/dev before": [bus, dev],
                           "bus/dev after": list(l1lib.usb_node(name)[:2]) if os.path.exists(
                               f"{l1lib.SYS_USB}/{name}") else None, "host driver after": back}
        ctx.log(f"{method}: a held dup before {before}, after {after}"
                f"{'; ' + error if error else ''}; back: {back}")
    return results


@scenario(18, "a released USB device's descriptor is revoked: a process holding a dup of QEMU's usbfs fd "
              "can no longer talk to it; the keyboard is back on usbhid and the claim free")
def usb_revoke(ctx):
    names = l1lib.usb_find(*KBD)
    check(names, f"precondition: a USB device {KBD[0]}:{KBD[1]} expected in L1, found none")
    name = names[0]
    ctx.step("measure: which host action makes an open usbfs descriptor useless on this kernel")
    measured = measure_usbfs_revocation(ctx, name)
    with open(os.path.join(l1lib.LOGS, "usb-revoke-measure.json"), "w") as f:
        json.dump(measured, f, indent=1)

    ctx.step("attach the keyboard: QEMU gets a usbfs descriptor; a process of L1 takes a dup of it")
    check(measured["hub port disable then enable"]["after"]["connectinfo"] == "ENODEV",
          f"disabling the hub port no longer revokes descriptors on this kernel: {measured}")
    usb_back_on_usbhid(name)
    bus, dev, node = l1lib.usb_node(name)
    vm = "vm18"
    l2 = ctx.paused_l2(vm)
    # QEMU 7.2 closes the descriptors remove-fd drops only while the VM runs
    l2.qmp.ok("cont")
    daemon = ctx.start_hostdevd(l2)
    xml = ctx.file("kbd.xml", l1lib.usb_xml(*KBD).replace(
        "  </source>", f"    <hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' port='{name}'/>\n"
                       "  </source>"))
    attach_ok(ctx, vm, xml, "attach of the USB keyboard")
    usb = l2.qmp.usb_host_devices()
    check(len(usb) == 1, f"L2 should have one usb-host device, has {l2.qmp.peripherals()}")
    alias = next(iter(usb))
    held = dup_of_qemu_descriptor(l2.pid, node)
    try:
        before = usbfs_probe(held)
        ctx.log(f"the dup of QEMU's descriptor of {node} before the release: {before}")
        check(before == {"connectinfo": "ok", "get_descriptor": "ok"},
              f"the dup of QEMU's descriptor should work while attached: {before}")

        ctx.step("detach: after the release the dup can no longer talk to the keyboard")
        detach(ctx, vm, xml, 5, "detached", "detach of the USB keyboard")
        after = usbfs_probe(held)
        ctx.log(f"the dup after the release: {after}")
        ctx.expect(after == {"connectinfo": "ENODEV", "get_descriptor": "ENODEV"},
                   f"a descriptor QEMU kept still reaches the device after its release: {after}")
    finally:
        os.close(held)
    ctx.expect("revoking QEMU's descriptors" in daemon.log_of_this_run(),
               "hostdevd's log does not say it revoked the descriptors")

    ctx.step("the keyboard is back on usbhid (enumerated anew), the claim is free, nothing follows it back")
    try:
        usb_back_on_usbhid(name)
    except Failure:
        ctx.expect(False, f"L1's usbhid did not get the keyboard back: {l1lib.usb_interface_drivers(name)}")
    ctx.log(f"L1 bus/device now {l1lib.usb_node(name)[:2]} (was {bus}, {dev})")
    ctx.expect(not any(k.startswith("usb") for k in claims(ctx)), f"a USB claim is left: {claims(ctx)}")
    ctx.expect(journal_entries(ctx, vm) == [], f"journal entries left: {journal_entries(ctx, vm)}")
    time.sleep(2)
    ctx.expect(l2.qmp.usb_host_devices() == {},
               f"the released keyboard came back into L2: {l2.qmp.peripherals()}")
    ctx.expect(ctx.listed(vm) == [], f"hostdevd still lists devices: {ctx.listed(vm)}")

    ctx.step("the claim is free: the keyboard attaches again, and detaches")
    attach_ok(ctx, vm, xml, "attach after the release")
    detach(ctx, vm, xml, 5, "detached", "second detach")
    try:
        usb_back_on_usbhid(name)
    except Failure:
        ctx.expect(False, f"L1's usbhid did not get the keyboard back: {l1lib.usb_interface_drivers(name)}")


def dup_of_qemu_descriptor(pid, node):
    """A descriptor of this process that is a dup of the one QEMU @pid holds
    on @node (pidfd_getfd(2): the same open file, as a kept dup would be)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    SYS_pidfd_getfd = 438
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == node:
            pidfd = os.pidfd_open(pid)
            try:
                got = libc.syscall(SYS_pidfd_getfd, pidfd, int(fd), 0)
            finally:
                os.close(pidfd)
            if got < 0:
                raise Failure(f"pidfd_getfd of QEMU's fd {fd} ({node}): {os.strerror(ctypes.get_errno())}")
            return got
    raise Failure(f"QEMU (PID {pid}) holds no descriptor of {node}")


# -- 19 ---------------------------------------------------------------------

def usb_nodes_held(pid):
    """The (bus, device) of every USB device node process @pid has open, from
    /proc/PID/fd: the host's view of what a QEMU holds, whatever hostdevd says."""
    held = set()
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            st = os.stat(f"{fds}/{fd}")
        except OSError:
            continue            # closed meanwhile
        if (st.st_mode & 0o170000) == 0o020000 and os.major(st.st_rdev) == 189:
            # usbdev minor: (bus - 1) * 128 + (device - 1)
            minor = os.minor(st.st_rdev)
            held.add((minor // 128 + 1, minor % 128 + 1))
    return held


@scenario(19, "two identical USB keyboards, one per L2 by port path: each followed through re-enumeration "
              "back to its own L2 (QEMU's open node = its port's bus/device), never swapped")
def usb_identical_follow(ctx):
    names = l1lib.usb_find(*KBD)
    check(names == list(KBD_PORTS), f"precondition: USB devices {KBD[0]}:{KBD[1]} at {KBD_PORTS} "
                                    f"expected in L1, found {names}")
    vms = {"vm19a": KBD_PORTS[0], "vm19b": KBD_PORTS[1]}
    l2s, daemons, xmls, aliases = {}, {}, {}, {}
    for vm, port in vms.items():
        l2s[vm] = ctx.paused_l2(vm)
        # QEMU 7.2 closes the descriptors remove-fd drops only while the VM runs
        l2s[vm].qmp.ok("cont")
        daemons[vm] = ctx.start_hostdevd(l2s[vm])
        xmls[vm] = ctx.file(f"kbd-{vm}.xml", l1lib.usb_xml(*KBD, port=port))

    def check_own(when):
        """Each L2 has one usb-host, shown as the keyboard by x-query-usb, and
        its QEMU holds exactly the node of its own port's current bus/device."""
        for vm, port in vms.items():
            l2 = l2s[vm]
            usb = l2.qmp.usb_host_devices()
            check(list(usb) == [aliases[vm]], f"{when}: {vm} should have only {aliases[vm]}, "
                                              f"QEMU has {l2.qmp.peripherals()}")
            text = l2.qmp.ok("x-query-usb")["human-readable-text"]
            ctx.expect("QEMU USB Keyboard" in text and f"ID: {aliases[vm]}" in text,
                       f"{when}: x-query-usb of {vm} does not show the keyboard as {aliases[vm]}: {text.strip()}")
            bus, dev, _ = l1lib.usb_node(port)
            try:
                wait_for(lambda: usb_nodes_held(l2.pid) == {(bus, dev)}, 5,
                         f"{vm}'s QEMU to hold only {port}'s node")
            except Failure:
                pass
            held = usb_nodes_held(l2.pid)
            ctx.log(f"{when}: {vm} {aliases[vm]} port {port} = L1 bus {bus} device {dev}; "
                    f"QEMU holds {sorted(held)}, hostdevice={l2.qmp.prop(aliases[vm], 'hostdevice')}")
            check(held == {(bus, dev)},
                  f"{when}: {vm}'s QEMU should hold the node of {port} (bus {bus} device {dev}) "
                  f"and no other USB device, it holds {sorted(held)}"
                  + (" (swapped)" if held and held != {(bus, dev)} else ""))

    def wait_back(vm, since):
        try:
            wait_for(lambda: aliases[vm] in l2s[vm].qmp.usb_host_devices(), 10,
                     f"{aliases[vm]} to be back in {vm}", interval=0.05)
        except Failure as e:
            raise Failure(f"{e}; hostdevd's log ends:\n"
                          + "\n".join(daemons[vm].log_of_this_run().splitlines()[-15:]))
        ctx.log(f"{vm}: back {time.monotonic() - since:.2f} s after its keyboard was back in sysfs")

    ctx.step("each VM gets one keyboard by port path")
    for vm, port in vms.items():
        attach_ok(ctx, vm, xmls[vm], f"attach of the keyboard at {port} to {vm}")
        usb = l2s[vm].qmp.usb_host_devices()
        check(len(usb) == 1, f"{vm} should have one usb-host device, has {l2s[vm].qmp.peripherals()}")
        aliases[vm] = next(iter(usb))
    check_own("attached")

    ctx.step(f"{KBD_PORTS[0]} re-enumerates: back in vm19a; vm19b's keyboard is not touched")
    untouched = l2s["vm19b"].qmp.prop(aliases["vm19b"], "hostdevice")
    node_b = l1lib.usb_node(KBD_PORTS[1])[:2]
    away = UsbAway(ctx, KBD_PORTS[0])
    away.take()
    ctx.log(f"re-enumerated by {away.method}")
    try:
        l2s["vm19a"].qmp.wait_event("DEVICE_DELETED", 10, device=aliases["vm19a"])
    except Failure as e:
        ctx.expect(False, f"hostdevd of vm19a did not remove the stale usb-host: {e}")
    wait_back("vm19a", away.bring_back())
    check_own(f"after {KBD_PORTS[0]} re-enumerated")
    if away.method == "port disable":
        ctx.expect(l2s["vm19b"].qmp.prop(aliases["vm19b"], "hostdevice") == untouched
                   and l1lib.usb_node(KBD_PORTS[1])[:2] == node_b,
                   f"vm19b's keyboard should not have been touched by {KBD_PORTS[0]}'s re-enumeration")

    ctx.step("both re-enumerate at once and come back in reverse order: each to its own VM")
    away = {vm: UsbAway(ctx, port) for vm, port in vms.items()}
    before = {vm: l1lib.usb_node(port)[:2] for vm, port in vms.items()}
    for vm in vms:
        if not away[vm].gone():
            away[vm].take()
    for vm in vms:
        try:
            l2s[vm].qmp.wait_event("DEVICE_DELETED", 10, device=aliases[vm])
        except Failure as e:
            ctx.expect(False, f"hostdevd of {vm} did not remove the stale usb-host: {e}")
        try:
            wait_for(lambda: usb_port_of(ctx, vm, aliases[vm])[0] == "waiting-for-device", 10,
                     f"{aliases[vm]} of {vm} to be listed as waiting-for-device")
        except Failure as e:
            ctx.expect(False, str(e))
    back = {}
    for vm in reversed(list(vms)):
        if away[vm].method is not None:
            back[vm] = away[vm].bring_back()
    for vm in vms:
        wait_back(vm, back.get(vm, time.monotonic()))
    check_own("after both re-enumerated")
    for vm, port in vms.items():
        ctx.expect(l1lib.usb_node(port)[:2] != before[vm],
                   f"{port} kept bus/device {before[vm]}: it did not re-enumerate")
        latencies = wait_latencies(daemons[vm], 2 if vm == "vm19a" else 1)
        ctx.log(f"{vm}: re-attach latencies (uevent to device_add returned) {latencies} ms")

    ctx.step(f"{KBD_PORTS[0]} leaves while its attach to vm19a is still in flight: followed all the same")
    detach(ctx, "vm19a", xmls["vm19a"], 5, "detached", f"detach of {KBD_PORTS[0]} from vm19a")
    hold_ms = 2000
    if os.environ.get("HOSTDEVD_TEST_HOOKS") != "1":
        ctx.log("NOT RUN: this step needs hostdevd built with -Dtest_hooks=true "
                "(HOSTDEVD_TEST_HOLD_AFTER_DEVICE_ADD_MS)")
        restart_hostdevd(ctx, daemons, l2s, "vm19a")
        attach_ok(ctx, "vm19a", xmls["vm19a"], f"attach of {KBD_PORTS[0]} to vm19a")
    else:
        restart_hostdevd(ctx, daemons, l2s, "vm19a", {"HOSTDEVD_TEST_HOLD_AFTER_DEVICE_ADD_MS": str(hold_ms)})
        attach = ctx.spawn([ctx.config["hostdevctl"], "--json", "attach-device", "vm19a", xmls["vm19a"]],
                           env=ctx.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL)
        wait_for(lambda: "holding the attach" in daemons["vm19a"].log_of_this_run(), 30,
                 "hostdevd to hold the attach after device_add")
        check(aliases["vm19a"] in l2s["vm19a"].qmp.usb_host_devices(),
              f"device_add returned, so QEMU should have {aliases['vm19a']}: {l2s['vm19a'].qmp.peripherals()}")
        away = UsbAway(ctx, KBD_PORTS[0])
        away.take()
        ctx.log(f"{KBD_PORTS[0]} taken away ({away.method}) while the attach is held")
        out, err = attach.communicate(timeout=60)
        ctx.log(f"attach: exit {attach.returncode} {out.decode().strip()} {err.decode().strip()}")
        check(attach.returncode == 0, f"the held attach should finish: {err.decode().strip()}")
        try:
            l2s["vm19a"].qmp.wait_event("DEVICE_DELETED", 15, device=aliases["vm19a"])
            wait_for(lambda: usb_port_of(ctx, "vm19a", aliases["vm19a"])[0] == "waiting-for-device", 10,
                     f"{aliases['vm19a']} to be listed as waiting-for-device")
        except Failure as e:
            raise Failure(f"the removal during the attach was not followed: {e}; listed "
                          f"{usb_port_of(ctx, 'vm19a', aliases['vm19a'])}; hostdevd's log ends:\n"
                          + "\n".join(daemons["vm19a"].log_of_this_run().splitlines()[-12:]))
        ctx.expect(not usb_nodes_held(l2s["vm19a"].pid),
                   f"vm19a's QEMU still holds {sorted(usb_nodes_held(l2s['vm19a'].pid))}")
        wait_back("vm19a", away.bring_back())
        check_own(f"after {KBD_PORTS[0]} left during its attach and came back")
        restart_hostdevd(ctx, daemons, l2s, "vm19a")

    ctx.step(f"hostdevd restarted while vm19a waits for {KBD_PORTS[0]}: {KBD_PORTS[1]} attached to vm19a "
             f"meanwhile takes another guest port; {KBD_PORTS[0]} comes back to its own")
    detach(ctx, "vm19b", xmls["vm19b"], 5, "detached", f"detach of {KBD_PORTS[1]} from vm19b")
    port_a = qemu_usb_port(l2s["vm19a"], aliases["vm19a"])
    away = UsbAway(ctx, KBD_PORTS[0])
    away.take()
    wait_for(lambda: usb_port_of(ctx, "vm19a", aliases["vm19a"])[0] == "waiting-for-device", 10,
             f"{aliases['vm19a']} to be listed as waiting-for-device")
    restart_hostdevd(ctx, daemons, l2s, "vm19a")
    ctx.expect(usb_port_of(ctx, "vm19a", aliases["vm19a"])[0] == "waiting-for-device",
               f"after the restart {aliases['vm19a']} should still wait: {usb_port_of(ctx, 'vm19a', aliases['vm19a'])}")
    second = ctx.file("kbd-vm19a-second.xml", l1lib.usb_xml(*KBD, port=KBD_PORTS[1]))
    _, reply = ctx.ctl_json("attach-device", "vm19a", second, check_ok=True,
                            what=f"attach of {KBD_PORTS[1]} to vm19a while {KBD_PORTS[0]} waits")
    alias_b = reply["return"]["alias"]
    port_b = qemu_usb_port(l2s["vm19a"], alias_b)
    ctx.log(f"vm19a: {aliases['vm19a']} waits for guest port {port_a}; {alias_b} got port {port_b}")
    check(port_b is not None and port_b != port_a,
          f"{alias_b} took guest port {port_b}, the port {aliases['vm19a']} waits for ({port_a})")
    wait_back("vm19a", away.bring_back())
    ctx.expect(qemu_usb_port(l2s["vm19a"], aliases["vm19a"]) == port_a,
               f"{aliases['vm19a']} came back at guest port {qemu_usb_port(l2s['vm19a'], aliases['vm19a'])}, "
               f"not its own {port_a}")
    want = {l1lib.usb_node(port)[:2] for port in KBD_PORTS}
    ctx.expect(usb_nodes_held(l2s["vm19a"].pid) == want,
               f"vm19a's QEMU should hold both keyboards {sorted(want)}, "
               f"it holds {sorted(usb_nodes_held(l2s['vm19a'].pid))}")

    ctx.step("detach both from vm19a; usbhid has both keyboards back")
    detach(ctx, "vm19a", xmls["vm19a"], 5, "detached", f"detach of {KBD_PORTS[0]} from vm19a")
    detach(ctx, "vm19a", second, 5, "detached", f"detach of {KBD_PORTS[1]} from vm19a")
    for port in KBD_PORTS:
        try:
            wait_for(lambda: all(d == "usbhid" for d in l1lib.usb_interface_drivers(port).values()), 15,
                     f"usbhid to take {port} back")
        except Failure:
            ctx.expect(False, f"L1's usbhid did not get {port} back: {l1lib.usb_interface_drivers(port)}")
    for vm in vms:
        ctx.expect(not usb_nodes_held(l2s[vm].pid), f"{vm}'s QEMU still holds {sorted(usb_nodes_held(l2s[vm].pid))}")


def restart_hostdevd(ctx, daemons, l2s, vm, env=None):
    """Stop @vm's hostdevd (SIGTERM: devices stay with the VM) and start it again."""
    daemons[vm].signal(signal.SIGTERM)
    status = daemons[vm].wait_exit(30)
    ctx.expect(status == 0, f"hostdevd of {vm} exited with {status} on SIGTERM")
    daemons[vm] = ctx.start_hostdevd(l2s[vm], env=env)
# -- 20 ---------------------------------------------------------------------

# Scenario 20 compares a managed PCI attach/detach through hostdevd with
# libvirt 9.0 doing the same, on L1's real kernel.  Both tools work on ONE
# L2: a domain libvirt's QEMU driver starts (embedded in one `virsh` shell,
# qemu:///embed with its root in L1's tmpfs) whose QEMU has two more QMP
# monitors, one for hostdevd and one for the test.  The parts that are
# neither tool's own work are measured by the same instruments for both:
#   kernel: ftrace function_graph on the sysfs store functions the bind and
#           unbind writes end in (driver_override, unbind, bind, drivers_probe),
#           one entry per write with its duration in the kernel;
#   QEMU:   QEMU's own trace events (-trace, timestamps from -msg timestamp=on,
#           which libvirt passes): device_add from the command's dispatch
#           (monitor_qmp_cmd_in_band, with vfio_realize before its answer) to
#           its answer (monitor_qmp_respond); device_del from its dispatch to
#           the DEVICE_DELETED event as QEMU sends it.
# A tool's own share is its total (request to reply, each through a client
# kept connected: virsh's `-t` time in its shell, a control-socket client
# here) minus those two.

LV_VM = "vm20"
LV_WARMUP = 1                   # cycles per tool not counted (first-use costs)
LV_ROUNDS = 9                   # counted cycles per tool, interleaved (medians)
LV_FLOOR_REQUESTS = 3           # requests that do no work after each cycle (their median)
LV_TRACE_EVENTS = ("handle_qmp_command", "monitor_qmp_cmd_in_band", "monitor_qmp_respond",
                   "qmp_enter_device_del", "vfio_realize")
LV_KERNEL_FUNCTIONS = ("driver_override_store", "unbind_store", "bind_store", "drivers_probe_store")
LV_QEMU_CONF = ('user = "root"\ngroup = "root"\nnamespaces = [ ]\ncgroup_controllers = [ ]\n'
                'remember_owner = 0\nsecurity_driver = "none"\nstdio_handler = "file"\n')


class KernelBindTrace:
    """ftrace's function_graph on the sysfs store functions only (nothing else
    is hooked, so the rest of the kernel runs untraced): each bind/unbind/
    probe/override write gives one line with its time in the kernel."""

    TRACING = "/sys/kernel/tracing"

    def __init__(self, ctx):
        self.ctx = ctx
        if not os.path.exists(f"{self.TRACING}/trace"):
            result = subprocess.run(["mount", "-t", "tracefs", "tracefs", self.TRACING],
                                    capture_output=True, text=True, timeout=30)
            check(result.returncode == 0, f"cannot mount tracefs: {result.stderr.strip()}")
        with open(f"{self.TRACING}/available_filter_functions") as f:
            available = {line.split()[0] for line in f if line.strip()}
        self.functions = [name for name in LV_KERNEL_FUNCTIONS if name in available]
        check({"unbind_store", "drivers_probe_store", "driver_override_store"} <= set(self.functions),
              f"L1's kernel cannot trace the sysfs bind functions: only {self.functions}")
        self._write("tracing_on", "0")
        self._write("current_tracer", "nop")
        self._write("set_ftrace_filter", " ".join(self.functions))
        self._write("set_graph_function", " ".join(self.functions))
        self._write("options/funcgraph-proc", "1")
        self._write("current_tracer", "function_graph")
        self._write("tracing_on", "1")
        self.clear()

    def _write(self, name, value):
        with open(f"{self.TRACING}/{name}", "w") as f:
            f.write(value + "\n")

    def clear(self):
        open(f"{self.TRACING}/trace", "w").close()      # O_TRUNC empties the buffer

    def take(self):
        """The writes since clear(): [(process, function, ms)]."""
        with open(f"{self.TRACING}/trace") as f:
            text = f.read()
        self.clear()
        writes = []
        for line in text.splitlines():
            if line.startswith("#") or " us " not in line:
                continue
            parts = [p.strip() for p in line.split("|")]
            if len(parts) < 3:
                continue
            function = parts[-1]
            if function.endswith("();"):
                function = function[:-3]
            elif function.startswith("} /* ") and function.endswith(" */"):
                function = function[5:-3]
            else:
                continue
            duration = parts[-2].split()
            try:
                value = float(duration[-2])
            except (ValueError, IndexError):
                continue
            process = parts[0].split(")", 1)[-1].strip()
            writes.append((process, function, value / 1000.0))
        return writes

    def stop(self):
        for name, value in (("tracing_on", "0"), ("current_tracer", "nop"),
                            ("set_graph_function", ""), ("set_ftrace_filter", ""),
                            ("options/funcgraph-proc", "0")):
            try:
                self._write(name, value)
            except OSError:
                pass
        try:
            self.clear()
        except OSError:
            pass


class QemuTraceLog:
    """QEMU's trace lines (PID@seconds.micros:event args) in its log file."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def mark(self):
        self.offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def since_mark(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        events = []
        for line in text.splitlines():
            head, sep, rest = line.partition(":")
            if not sep or "@" not in head:
                continue
            try:
                seconds = float(head.split("@", 1)[1])
            except ValueError:
                continue
            name, _, args = rest.partition(" ")
            events.append((seconds, name, args))
        return events

    @staticmethod
    def _response(args):
        """The JSON of a monitor_qmp_respond line ('mon 0x… resp: {…}'), or None."""
        _, sep, text = args.partition("resp: ")
        if not sep:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None

    @staticmethod
    def _request_read(events, index, request_id, command=None):
        """(seconds, monitor 'mon 0x…') of QEMU's monitor thread reading the request
        dispatched at @index: the last handle_qmp_command before it with the same
        id (and @command, when given); (None, None) if not traced."""
        for seconds, name, args in reversed(events[:index]):
            head, sep, text = args.partition(" req: ")
            if name != "handle_qmp_command" or not sep:
                continue
            try:
                request = json.loads(text)
            except ValueError:
                continue
            if isinstance(request, dict) and request.get("id") == request_id \
                    and command in (None, request.get("execute")):
                return seconds, head
        return None, None

    def _answer_time(self, events, start, request_id, command=None):
        # hostdevd reuses small ids, and another monitor's client may use the same
        # ones: the answer is the first with the id on the request's own monitor
        _, monitor = self._request_read(events, start, request_id, command)
        for seconds, name, args in events[start + 1:]:
            if name == "monitor_qmp_respond" and (monitor is None or args.startswith(monitor + " ")):
                reply = self._response(args)
                if reply and reply.get("id") == request_id and ("return" in reply or "error" in reply):
                    return seconds
        return None

    @staticmethod
    def _dispatched(events):
        """(index, seconds, request id) of each QMP command dispatched in @events."""
        for index, (seconds, name, args) in enumerate(events):
            if name != "monitor_qmp_cmd_in_band" or not args.strip():
                continue
            try:
                yield index, seconds, json.loads(args)
            except ValueError:
                continue

    def commands(self):
        """[(request id, dispatched, answered)] of the QMP commands since the mark."""
        events = self.since_mark()
        return [(request_id, seconds, self._answer_time(events, index, request_id))
                for index, seconds, request_id in self._dispatched(events)]

    @classmethod
    def _queued_ms(cls, events, index, request_id, command):
        """ms the command dispatched at @index waited in QEMU: from its monitor
        thread reading the request to its dispatch; None if not traced."""
        read, _ = cls._request_read(events, index, request_id, command)
        return None if read is None else (events[index][0] - read) * 1000.0

    def device_add_ms(self, bdf):
        """(ms from dispatching the device_add of vfio-pci @bdf to its answer,
        ms it waited in QEMU between being read and dispatched)."""
        events = self.since_mark()
        for index, seconds, request_id in self._dispatched(events):
            answered = self._answer_time(events, index, request_id, "device_add")
            realized = [a for s, n, a in events[index + 1:]
                        if n == "vfio_realize" and bdf in a and (answered is None or s <= answered)]
            if realized and answered is not None:
                return ((answered - seconds) * 1000.0,
                        self._queued_ms(events, index, request_id, "device_add"))
        return None, None

    def device_del_ms(self, alias):
        """(ms from dispatching device_del of @alias to QEMU sending
        DEVICE_DELETED, ms it waited in QEMU between being read and dispatched)."""
        events = self.since_mark()
        for index, seconds, request_id in self._dispatched(events):
            following = next((n for s, n, a in events[index + 1:]
                              if n != "monitor_qmp_respond"), None)
            if following != "qmp_enter_device_del":
                continue
            for later, n, a in events[index + 1:]:
                if n != "monitor_qmp_respond":
                    continue
                event = self._response(a)
                if event and event.get("event") == "DEVICE_DELETED" \
                        and event.get("data", {}).get("device") == alias:
                    stamp = event.get("timestamp", {})
                    sent = stamp.get("seconds", 0) + stamp.get("microseconds", 0) / 1e6
                    return (((sent or later) - seconds) * 1000.0,
                            self._queued_ms(events, index, request_id, "device_del"))
        return None, None


class ControlClient:
    """hostdevd's control socket, one connection kept open (as virsh's shell
    keeps its driver): the time of a request is write to reply."""

    def __init__(self, path):
        self.sock = wait_for(lambda: l1lib.Qmp._connect(path, 180), 30,
                             f"hostdevd's control socket {path}")
        self.file = self.sock.makefile("rwb")
        greeting = json.loads(self.file.readline() or b"{}")
        check("hostdevd" in greeting, f"no hostdevd greeting on {path}: {greeting}")
        self.id = 0

    def execute(self, command, **arguments):
        """Return: (ms, the reply)."""
        self.id += 1
        line = json.dumps({"execute": command, "arguments": arguments, "id": self.id}).encode() + b"\n"
        t0 = time.monotonic()
        self.file.write(line)
        self.file.flush()
        while True:
            text = self.file.readline()
            check(text, f"hostdevd closed its control connection during {command}")
            reply = json.loads(text)
            if "event" not in reply:
                return (time.monotonic() - t0) * 1000.0, reply

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


class CtlClient:
    """bench/ctl-client (plain C, no GLib: the least a client can do) on
    hostdevd's control socket, one connection kept open; the time of a
    request is its own clock's, write to reply, the XML file read before."""

    def __init__(self, ctx, program, path):
        self.process = ctx.spawn([program, path, "serve"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, bufsize=1)

    def request(self, line, what):
        """Send @line (@what names it in an error).  Return: (the answer after
        its "ok ", None), or (None, why not)."""
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        check(answer, f"ctl-client exited during {what}")
        if not answer.startswith("ok "):
            return None, answer.strip()
        return answer[3:].rstrip("\n"), None

    def execute_file(self, op, xml_path):
        """@op ("attach" or "detach", waiting for the guest) the XML in @xml_path.
        Return: (ms, hostdevd's reply), or (None, why not)."""
        answer, why = self.request(f"{op}-file {xml_path}", op)
        if answer is None:
            return None, why
        ns, reply = answer.split(" ", 1)
        return int(ns) / 1e6, json.loads(reply)

    def execute(self, command):
        """@command with no arguments (one that never reaches QEMU: the floor of
        any request through hostdevd).  Return: (ms, None), or (None, why not)."""
        answer, why = self.request(f"exec {command}", command)
        if answer is None:
            return None, why
        return int(answer.split()[0]) / 1e6, None

    def close(self):
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


class VirshShell:
    """`virsh -t -c qemu:///embed?root=…` as one long-lived shell, in a private
    mount namespace that supplies the 'libvirt-qemu' user the QEMU driver
    looks up (L1's /etc is the host's, read-only)."""

    def __init__(self, ctx, root):
        self.ctx = ctx
        self.root = root
        self.uri = f"qemu:///embed?root={root}"
        os.makedirs(os.path.join(root, "etc"), exist_ok=True)
        with open(os.path.join(root, "etc", "qemu.conf"), "w") as f:
            f.write(LV_QEMU_CONF)
        script = ["set -e"]
        for name, line in (("passwd", "libvirt-qemu:x:64055:64055::/nonexistent:/bin/false"),
                           ("group", "libvirt-qemu:x:64055:")):
            if subprocess.run(["getent", name, "libvirt-qemu"], capture_output=True).returncode == 0:
                continue
            copy = os.path.join(ctx.dir, name)
            shutil.copy(f"/etc/{name}", copy)
            with open(copy, "a") as f:
                f.write(line + "\n")
            script.append(f"mount --bind {copy} /etc/{name}")
        script.append(f'exec stdbuf -oL virsh -t -q -c "{self.uri}"')
        self.log = open(os.path.join(l1lib.LOGS, f"s{ctx.n}-virsh.log"), "a")
        self.process = ctx.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                  "\n".join(script)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.version = subprocess.run(["virsh", "--version"], capture_output=True,
                                      text=True).stdout.strip()

    def command(self, line, timeout=300):
        """Run one virsh command; Return: (virsh's own time of it in ms, its output lines)."""
        self.ctx.log(f"virsh> {line}")
        self.log.write(f"virsh> {line}\n")
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        output = []
        deadline = time.monotonic() + timeout
        while True:
            check(time.monotonic() < deadline, f"virsh '{line}' did not finish within {timeout} s")
            text = self.process.stdout.readline()
            check(text, f"virsh exited during '{line}': {' '.join(output)}")
            self.log.write(text)
            self.log.flush()
            if text.startswith("(Time: "):
                ms = float(text.split()[1])
                break
            if text.strip():
                output.append(text.strip())
        errors = [o for o in output if o.startswith("error")]
        check(not errors, f"virsh {line}: {' '.join(output)}")
        self.ctx.log(f"  {ms:.1f} ms: {' '.join(output)}")
        return ms, output

    def quit(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.log.close()


def lv_domain_xml(ctx, directory):
    cfg = ctx.config
    # each root port in a slot of its own, as QEMU places L2.argv's (libvirt would
    # make them functions of one multifunction slot)
    ports = "".join(f"    <controller type='pci' index='{i}' model='pcie-root-port'>\n"
                    f"      <address type='pci' domain='0x0000' bus='0x00' slot='{i + 1:#04x}' "
                    f"function='0x0'/>\n    </controller>\n" for i in range(1, 5))
    qemu_args = [f"-qmp", f"unix:{directory}/{LV_VM}.hd.qmp,server=on,wait=off",
                 "-qmp", f"unix:{directory}/{LV_VM}.test.qmp,server=on,wait=off"]
    for event in LV_TRACE_EVENTS:
        qemu_args += ["-trace", event]
    args = "".join(f"    <qemu:arg value='{a}'/>\n" for a in qemu_args)
    # what l1lib.L2.argv gives a booted L2: q35, 128 MiB, one vCPU, the tiny
    # guest's kernel and initramfs, an xHCI on pcie.0, four root ports, serial to a file
    return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{LV_VM}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{cfg['l2_kernel']}</kernel>
    <initrd>{cfg['l2_initrd']}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>{cfg['qemu']}</emulator>
    <controller type='pci' index='0' model='pcie-root'/>
{ports}    <controller type='usb' index='0' model='qemu-xhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>
    </controller>
    <serial type='file'>
      <source path='{directory}/{LV_VM}.serial'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
{args}  </qemu:commandline>
</domain>
"""


def qemu_pci_functions(qmp, vendor, device):
    """(bus, slot, function) of every function with these ids QEMU's query-pci shows."""
    found = []

    def walk(devices, bus):
        for d in devices:
            ids = d.get("id", {})
            if ids.get("vendor") == vendor and ids.get("device") == device:
                found.append((bus, d.get("slot"), d.get("function")))
            bridge = d.get("pci_bridge")
            if bridge:
                walk(bridge.get("devices", []), bridge.get("bus", {}).get("secondary"))
    for root in qmp.ok("query-pci"):
        walk(root.get("devices", []), root.get("bus"))
    return found


def quiet_pool(ctx, timeout):
    """Wait (bounded) until the booted guests the runner started have booted:
    a guest booting under TCG takes most of L1's CPU, which would land on
    whichever tool is measured at that moment."""
    def booting():
        names = [n[:-5] for n in os.listdir(l1lib.POOL) if n.endswith(".json")] \
            if os.path.isdir(l1lib.POOL) else []
        infos = [l1lib.pool_info(n) for n in names]
        return [i["serial"] for i in infos if i and not l1lib.guest_ready(i["serial"])]
    t0 = time.monotonic()
    try:
        wait_for(lambda: not booting(), timeout, "the runner's guests to boot", interval=1)
    except Failure:
        ctx.log(f"still booting after {timeout} s: {booting()}; measuring anyway")
    ctx.log(f"waited {time.monotonic() - t0:.1f} s for the runner's guests to boot")


def cpu_ms(pids):
    """The CPU time (ms) the threads of @pids have run so far, from the
    scheduler's own count (/proc/PID/task/TID/schedstat); threads that
    ended are not in it."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue   # gone: the checks after the operation say so
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e6


def lv_median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


@scenario(20, "managed e1000e into a booted L2: hostdevd and libvirt 9.0 (embedded QEMU driver) "
              "interleaved, each cycle checked in sysfs and QEMU; totals, kernel, QEMU and own shares "
              "to vfio-libvirt.json")
def libvirt_pci_compare(ctx):
    bdf = E1000E
    require_host_driver(bdf, "e1000e")
    check(shutil.which("virsh") and os.path.exists(
        "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"),
        "libvirt 9.0's virsh and QEMU driver must be installed on the host "
        "(apt-get install libvirt-clients libvirt-daemon-driver-qemu)")
    directory = os.path.join(ctx.dir, "l2")
    os.makedirs(directory, exist_ok=True)
    root = os.path.join(ctx.dir, "lv")
    domain = ctx.file("vm20.xml", lv_domain_xml(ctx, directory))
    xml = ctx.file("e1000e.xml", l1lib.pci_xml(bdf, managed=True))
    kernel = None
    virsh = None
    control = None
    qemu_pid = None
    try:
        ctx.step("libvirt: define and start the domain (its QEMU boots the L2 guest)")
        virsh = VirshShell(ctx, root)
        virsh.command(f"define {domain}", timeout=400)
        virsh.command(f"start {LV_VM}", timeout=400)
        pidfile = os.path.join(root, "run", "qemu", f"{LV_VM}.pid")
        qemu_pid = int(wait_for(lambda: l1lib.read(pidfile), 30, "libvirt's QEMU pid file"))
        l2 = l1lib.L2(LV_VM, directory, qemu_pid, None, os.path.join(directory, f"{LV_VM}.serial"), 128)
        ctx.l2s.append(l2)
        qemu_log = os.path.join(root, "log", "qemu", f"{LV_VM}.log")
        l2.wait_booted(600, qemu_log)
        l2.connect()
        # the runner's shared guests boot meanwhile; measure once they idle
        quiet_pool(ctx, 300)
        trace = QemuTraceLog(qemu_log)
        check(l2.qmp.peripherals() is not None, "no test QMP connection to libvirt's QEMU")
        kernel = KernelBindTrace(ctx)

        ctx.step("hostdevd on the same QEMU (its own QMP monitor)")
        daemon = ctx.start_hostdevd(l2, vm=LV_VM)
        # the C client where the build has it: Python's own time in L1 would
        # be counted as hostdevd's (virsh times itself inside its process)
        if ctx.config.get("ctl_client"):
            control = CtlClient(ctx, ctx.config["ctl_client"], daemon.socket)
            client = "bench/ctl-client"
        else:
            control = ControlClient(daemon.socket)
            client = "a Python client"

        def hostdevd_request(op):
            """Return: (ms, reply) of @op through the control client, checked."""
            if isinstance(control, CtlClient):
                total, reply = control.execute_file(op, xml)
                check(total is not None, f"hostdevd {op} failed: {reply}")
            elif op == "attach":
                total, reply = control.execute("attach-device", xml=l1lib.read(xml) + "\n")
            else:
                total, reply = control.execute("detach-device", xml=l1lib.read(xml) + "\n",
                                               wait=60.0)
            return total, reply

        detaches = {"hostdevd": 0}
        # the processes whose CPU time is each tool's: the daemon and its client;
        # virsh, which holds libvirt's embedded QEMU driver
        tool_pids = {"hostdevd": [daemon.process.pid] + ([control.process.pid]
                                                           if isinstance(control, CtlClient) else []),
                     "libvirt": [virsh.process.pid]}

        def floor(tool):
            """The median of LV_FLOOR_REQUESTS requests that do no work, in ms:
            hostdevd's query-version through the same control client (two process
            switches, the JSON both ways), libvirt's domstate (virsh's own time: a
            call into the driver in its own process)."""
            times = []
            for _ in range(LV_FLOOR_REQUESTS):
                if tool == "hostdevd":
                    ms, why = control.execute("query-version")
                    check(ms is not None, f"hostdevd's query-version failed: {why}")
                else:
                    ms, output = virsh.command(f"domstate {LV_VM}")
                    check("running" in output, f"virsh domstate {LV_VM}: {output}")
                times.append(ms)
            return round(lv_median(times), 3)

        def cycle(tool):
            """One attach + detach by @tool, each checked in sysfs and QEMU.
            Return: {op: {total, kernel, qemu, own, …}}."""
            out = {}
            for op in ("attach", "detach"):
                trace.mark()
                kernel.clear()
                extra = {}
                cpu_before = cpu_ms(tool_pids[tool])
                wall = time.time()
                started = time.monotonic()
                if tool == "hostdevd":
                    total, reply = hostdevd_request(op)
                    if op == "attach":
                        check("return" in reply, f"hostdevd attach failed: {reply}")
                        extra["phases"] = reply["return"].get("timings")
                    else:
                        check(reply.get("return", {}).get("status") == "detached",
                              f"hostdevd detach did not finish: {reply}")
                else:
                    total, _ = virsh.command(f"{op}-device {LV_VM} {xml}")
                if op == "detach" and l1lib.pci_driver(bdf) != "e1000e":
                    # the reply came before the device was back on the host (libvirt
                    # stops waiting for DEVICE_DELETED after 5 s and finishes the
                    # removal when the event comes): the detach ends when it is back
                    extra["replied_ms"] = round(total, 3)
                    wait_for(lambda: l1lib.pci_driver(bdf) == "e1000e", 60,
                             f"{bdf} back on e1000e after {tool}'s detach", interval=0.02)
                    total = (time.monotonic() - started) * 1000.0
                writes = kernel.take()
                # the tool's QMP commands in this operation, device_add/device_del
                # included (libvirt's ids are "libvirt-N", hostdevd's numbers): how
                # many, and QEMU's dispatch-to-answer time on them
                ours = [(i, a, b) for i, a, b in trace.commands()
                        if (isinstance(i, str) and i.startswith("libvirt-")) == (tool == "libvirt")
                        and not isinstance(i, bool) and i != ""]
                extra["qmp_commands"] = len(ours)
                extra["qmp_ms"] = round(sum((b - a) * 1000.0 for _, a, b in ours if b), 3)
                extra["qmp_first_last"] = [round(ours[0][1], 6), round(ours[-1][1], 6)] if ours else None
                extra["wall"] = [round(wall, 6), round(time.time(), 6)]
                driver = l1lib.pci_driver(bdf)
                in_qemu = qemu_pci_functions(l2.qmp, 0x8086, 0x10d3)
                vfio = l2.qmp.vfio_devices()
                # the kernel's count of the function's users, which hostdevd's
                # release takes as the proof that QEMU let go (host_pci_is_disabled)
                enabled = l1lib.read(f"/sys/bus/pci/devices/{bdf}/enable")
                if op == "attach":
                    check(enabled == "1", f"{bdf} in QEMU: the kernel counts {enabled} users, not 1")
                elif tool == "hostdevd":
                    detaches["hostdevd"] += 1

                    def let_go_count():
                        return sum("released: QEMU reported DEVICE_DELETED; the kernel shows "
                                   "QEMU let go of it" in line
                                   for line in daemon.log_of_this_run().splitlines())
                    # the line follows the answer: wait (bounded) for it
                    try:
                        wait_for(lambda: let_go_count() >= detaches["hostdevd"], 10,
                                 "hostdevd's release line", interval=0.05)
                    except Failure:
                        pass
                    let_go = let_go_count()
                    check(let_go == detaches["hostdevd"],
                          f"of hostdevd's {detaches['hostdevd']} detaches, {let_go} took the "
                          f"kernel's word that QEMU let go instead of asking QEMU")
                if op == "attach":
                    check(driver == "vfio-pci", f"after {tool}'s attach {bdf} is on {driver}")
                    check(len(in_qemu) == 1 and list(vfio.values()) == [bdf],
                          f"after {tool}'s attach QEMU shows {in_qemu} (query-pci), vfio-pci {vfio}")
                    alias = next(iter(vfio))
                    qemu_ms, queued_ms = trace.device_add_ms(bdf)
                else:
                    check(driver == "e1000e", f"after {tool}'s detach {bdf} is on {driver}")
                    check(not in_qemu and not vfio,
                          f"after {tool}'s detach QEMU still shows {in_qemu} (query-pci), vfio-pci {vfio}")
                    qemu_ms, queued_ms = trace.device_del_ms(alias)
                check(qemu_ms is not None, f"no device_add/device_del of {tool}'s {op} in QEMU's trace")
                kernel_ms = sum(ms for _, _, ms in writes)
                by_function = {}
                for _, function, ms in writes:
                    by_function[function] = round(by_function.get(function, 0) + ms, 3)
                check(queued_ms is not None,
                      f"no handle_qmp_command of {tool}'s {op} in QEMU's trace")
                own = total - kernel_ms - qemu_ms
                # the CPU the tool's processes used for the operation, the checks
                # above included (hostdevd's lines after its reply), and the
                # kernel's work done on their threads (the bind/unbind writes)
                extra["cpu"] = round(cpu_ms(tool_pids[tool]) - cpu_before, 3)
                # the command's wait in QEMU between its monitor thread reading it
                # and its dispatch: inside "own" as defined, shown apart
                result = {"total": round(total, 3), "kernel": round(kernel_ms, 3),
                          "qemu": round(qemu_ms, 3), "own": round(own, 3),
                          "qemu_queue": round(queued_ms, 3),
                          "kernel_writes": by_function,
                          "writers": sorted({p for p, _, _ in writes}), **extra}
                ctx.log(f"{tool} {op}: {result}")
                out[op] = result
            out["floor"] = floor(tool)
            return out

        cycles = {"hostdevd": [], "libvirt": []}
        for index in range(LV_WARMUP + LV_ROUNDS):
            order = ("libvirt", "hostdevd") if index % 2 == 0 else ("hostdevd", "libvirt")
            for tool in order:
                ctx.step(f"round {index} ({'warm-up' if index < LV_WARMUP else 'measured'}): {tool}")
                result = cycle(tool)
                if index >= LV_WARMUP:
                    cycles[tool].append(result)

        if os.environ.get("HOSTDEVD_TEST_S20_STRACE"):
            # diagnosis, not measured: one more hostdevd cycle with its system
            # calls timed (strace -T), to see where its own share goes
            path = os.path.join(l1lib.LOGS, f"s{ctx.n}-hostdevd.strace")
            tracer = ctx.spawn(["strace", "-f", "-tt", "-T", "-s", "200", "-o", path,
                                "-p", str(daemon.process.pid)], stderr=subprocess.DEVNULL)
            time.sleep(3)
            ctx.step("hostdevd under strace (not counted)")
            ctx.log(f"under strace: {cycle('hostdevd')}")
            tracer.terminate()
            tracer.wait(timeout=30)

        if os.environ.get("HOSTDEVD_TEST_S20_SYSTRACE"):
            # diagnosis, not measured: one more hostdevd cycle with its system
            # calls as ftrace events (an instance of its own, far lighter than
            # strace), to see where its own share goes between them
            instance = f"{KernelBindTrace.TRACING}/instances/s20-syscalls"
            os.makedirs(instance, exist_ok=True)
            # QEMU's threads too (its monitor thread's reads of each command),
            # unless the switch says "hostdevd": then a whole cycle fits
            tids = os.listdir(f"/proc/{daemon.process.pid}/task")
            if os.environ["HOSTDEVD_TEST_S20_SYSTRACE"] != "hostdevd":
                tids += os.listdir(f"/proc/{qemu_pid}/task")
            for name, value in (("buffer_size_kb", "32768"), ("set_event_pid", " ".join(tids)),
                                ("options/event-fork", "1"),
                                ("events/raw_syscalls/enable", "1"),
                                ("events/sched/sched_switch/enable", "1")):
                with open(f"{instance}/{name}", "w") as f:
                    f.write(value + "\n")
            ctx.step("hostdevd with its system calls traced (not counted)")
            ctx.log(f"traced: {cycle('hostdevd')}")
            with open(f"{instance}/events/enable", "w") as f:
                f.write("0\n")
            shutil.copyfile(f"{instance}/trace",
                            os.path.join(l1lib.LOGS, f"s{ctx.n}-hostdevd.systrace"))
            os.rmdir(instance)

        summary = {}
        for tool, runs in cycles.items():
            summary[tool] = {op: {part: lv_median([r[op][part] for r in runs])
                                  for part in ("total", "kernel", "qemu", "own", "qemu_queue",
                                               "cpu")}
                             for op in ("attach", "detach")}
            summary[tool]["floor"] = lv_median([r["floor"] for r in runs])
        phases = [r["attach"]["phases"] for r in cycles["hostdevd"] if r["attach"].get("phases")]
        if phases:
            summary["hostdevd"]["attach_phases"] = {
                name: lv_median([p.get(name) for p in phases]) for name in phases[0]}
        results = {"device": f"e1000e {bdf} (managed='yes'), booted L2 guest (q35, 128 MiB, TCG)",
                   "kernel": os.uname().release, "libvirt": virsh.version,
                   "qemu": subprocess.run([ctx.config["qemu"], "-version"], capture_output=True,
                                          text=True).stdout.splitlines()[0],
                   "rounds": LV_ROUNDS, "warmup": LV_WARMUP, "client": client,
                   "median": summary, "cycles": cycles}
        with open(os.path.join(l1lib.LOGS, "vfio-libvirt.json"), "w") as f:
            json.dump(results, f, indent=1)
        ctx.log(f"medians: {json.dumps(summary)}")
    finally:
        if control:
            control.close()
        if kernel:
            kernel.stop()
        if virsh:
            try:
                virsh.command(f"destroy {LV_VM}", timeout=120)
            except Failure as e:
                ctx.log(f"virsh destroy: {e}")
            virsh.quit()
        # libvirt's QEMU leads its own session: the runner's kill of this
        # scenario's process group would miss it
        if qemu_pid and l1lib.read(f"/proc/{qemu_pid}/stat"):
            try:
                os.kill(qemu_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in (f"{LV_VM}.serial",):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                shutil.copy(path, os.path.join(l1lib.LOGS, f"s{ctx.n}-{name}"))
        log = os.path.join(root, "log", "qemu", f"{LV_VM}.log")
        if os.path.exists(log):
            shutil.copy(log, os.path.join(l1lib.LOGS, f"s{ctx.n}-{LV_VM}.qemu.log"))


# the L2 boots under libvirt here (two to six minutes in nested TCG, with the
# runner's guests booting beside it), then 2 × 10 cycles of about 5 s
SCENARIOS[20].time_limit = 900


# -- 21 ---------------------------------------------------------------------

# Scenario 21: a <devices> request of unrelated devices (the e1000e, an
# SR-IOV VF, the USB keyboard) is all or nothing on a real kernel, and one
# request of N managed PCI devices against the same devices as N requests.
# Everything is judged from L1's sysfs, the claims, the journal and the test's
# own QMP connection to the L2, not from hostdevd's replies.

BATCH_ROUNDS = 3                # measured rounds, each a batch and N singles, interleaved
BATCH_WARMUP = 1
BATCH_GUEST_USB_PORT = "1"      # the port the failing request's keyboard asks for


def usb_xml_at_guest_port(vendor, product, port_path, guest_port):
    """The keyboard at @port_path, asking for guest USB port @guest_port of bus 0."""
    return l1lib.usb_xml(vendor, product, port=port_path).replace(
        "</hostdev>", f"  <address type='usb' bus='0' port='{guest_port}'/>\n</hostdev>")


def qemu_pci_ids(qmp):
    """The qdev ids of every function QEMU's query-pci shows."""
    found = set()

    def walk(devices):
        for d in devices:
            if d.get("qdev_id"):
                found.add(d["qdev_id"])
            bridge = d.get("pci_bridge")
            if bridge:
                walk(bridge.get("devices", []))
    for root in qmp.ok("query-pci"):
        walk(root.get("devices", []))
    return found


def usb_on_usbhid(name):
    drivers = l1lib.usb_interface_drivers(name)
    return bool(drivers) and all(d == "usbhid" for d in drivers.values())


def expect_batch_gone(ctx, l2, vm, before, kbd, why):
    """Nothing of the request left: each PCI device back on its driver with
    its driver_override, the keyboard on usbhid, no claim, no journal
    record, the groups' /dev/vfio nodes gone or root's; and in QEMU (the
    test's QMP) no vfio-pci, no usb-host, no new PCI function."""
    for bdf, (driver, override) in before["pci"].items():
        expect_back(ctx, bdf, driver, override, why)
    try:
        wait_for(lambda: usb_on_usbhid(kbd), 20, "usbhid to have the keyboard")
    except Failure:
        ctx.expect(False, f"{why}: the keyboard's interfaces are on "
                          f"{l1lib.usb_interface_drivers(kbd)}, not usbhid")
    try:
        wait_for(lambda: not journal_entries(ctx, vm), 20, f"{vm}'s journal to empty")
    except Failure:
        ctx.expect(False, f"{why}: {vm}'s journal still holds {journal_entries(ctx, vm)}")
    left = claims(ctx)
    ctx.expect(not left, f"{why}: claims left: {sorted(left)}")
    for bdf in before["pci"]:
        group = l1lib.pci_group(bdf)
        node = l1lib.vfio_node_stat(group)
        ctx.expect(node is None or (node["uid"], node["gid"]) == (0, 0),
                   f"{why}: /dev/vfio/{group} belongs to {node}")
    ctx.expect(l2.qmp.vfio_devices() == {} and l2.qmp.usb_host_devices() == {},
               f"{why}: QEMU still has {l2.qmp.peripherals()}")
    ctx.expect(qemu_pci_ids(l2.qmp) == before["qemu_pci"],
               f"{why}: QEMU's query-pci shows {sorted(qemu_pci_ids(l2.qmp))}, before the "
               f"request {sorted(before['qemu_pci'])}")
    usb_text = l2.qmp.ok("x-query-usb")["human-readable-text"]
    ctx.expect("QEMU USB Keyboard" not in usb_text, f"{why}: x-query-usb shows the keyboard: "
                                                    f"{usb_text.strip()}")


def wait_all_back(ctx, before, why):
    for bdf, (driver, override) in before.items():
        check(expect_back(ctx, bdf, driver, override, why), f"{why}: {bdf} did not come back")


def measure_batch_against_singles(ctx, l2, daemon, bdfs):
    """Interleaved rounds into the same L2: one <devices> request of @bdfs and
    the same devices as one request each (attach timed request to reply,
    through one kept control connection; detach between them, checked).
    Return: the results for batch-pci.json."""
    before = {bdf: host_state(bdf) for bdf in bdfs}
    batch_xml = "<devices>\n" + "".join(l1lib.pci_xml(b) for b in bdfs) + "</devices>\n"
    single_xml = {bdf: l1lib.pci_xml(bdf) for bdf in bdfs}
    control = ControlClient(daemon.socket)
    runs = {"batch": [], "singles": []}

    def check_in(why):
        ctx.expect(all(l1lib.pci_driver(b) == "vfio-pci" for b in bdfs),
                   f"{why}: not all on vfio-pci: {[host_state(b) for b in bdfs]}")
        check(sorted(l2.qmp.vfio_devices().values()) == sorted(bdfs),
              f"{why}: QEMU has {l2.qmp.vfio_devices()}, expected {bdfs}")

    def detach(xml, leaving, why):
        ms, reply = control.execute("detach-device", xml=xml, wait=60)
        check("return" in reply, f"{why}: detach failed: {reply}")
        wait_for(lambda: not set(leaving) & set(l2.qmp.vfio_devices().values()), 60,
                 f"{why}: QEMU to let go of {leaving}")
        wait_all_back(ctx, {bdf: before[bdf] for bdf in leaving}, why)
        return ms

    def batch(why):
        ms, reply = control.execute("attach-device", xml=batch_xml)
        check("return" in reply, f"{why}: the batch failed: {reply}")
        check_in(why)
        return {"attach_ms": ms, "phases": reply["return"].get("timings") or {},
                "detach_ms": detach(batch_xml, bdfs, why)}

    def singles(why):
        total, phases, detached = 0.0, {}, 0.0
        for bdf in bdfs:
            ms, reply = control.execute("attach-device", xml=single_xml[bdf])
            check("return" in reply, f"{why}: attaching {bdf} failed: {reply}")
            total += ms
            for name, value in (reply["return"].get("timings") or {}).items():
                phases[name] = phases.get(name, 0.0) + value
        check_in(why)
        for bdf in bdfs:
            detached += detach(single_xml[bdf], [bdf], why)
        return {"attach_ms": total, "phases": phases, "detach_ms": detached}

    try:
        for n in range(BATCH_WARMUP + BATCH_ROUNDS):
            order = ("batch", "singles") if n % 2 == 0 else ("singles", "batch")
            for kind in order:
                why = f"round {n} ({'warm-up' if n < BATCH_WARMUP else 'measured'}), {kind}"
                ctx.step(why)
                result = batch(why) if kind == "batch" else singles(why)
                ctx.log(f"{why}: {json.dumps(result)}")
                if n >= BATCH_WARMUP:
                    runs[kind].append(result)
    finally:
        control.close()
    median = {kind: lv_median([r["attach_ms"] for r in runs[kind]]) for kind in runs}
    phases = {kind: {name: lv_median([r["phases"].get(name, 0.0) for r in runs[kind]])
                     for name in runs[kind][0]["phases"]} for kind in runs}
    return {"devices": bdfs, "rounds": BATCH_ROUNDS, "warmup": BATCH_WARMUP,
            "median_attach_ms": median, "ratio": median["batch"] / median["singles"],
            "median_phases_ms": phases, "runs": runs}


@scenario(21, "a <devices> batch of unrelated devices (e1000e, SR-IOV VF, USB keyboard) into a booted L2: "
              "the last one failing leaves nothing on the host or in QEMU; then attached and detached "
              "whole; one batch of the managed PCI devices timed against single requests "
              "(batch-pci.json)")
def batch_unrelated_devices(ctx):
    vm = "vm21"
    pf_sys = f"{l1lib.SYS_PCI}/{NVME_PF}"
    kbd = KBD_PORTS[0]
    require_host_driver(E1000E, "e1000e")
    require_host_driver(NVME_PF, "nvme")
    check(l1lib.read(f"{pf_sys}/sriov_numvfs") == "0", "precondition: no VF of the NVMe PF enabled")
    check(usb_on_usbhid(kbd), f"precondition: the keyboard at {kbd} should be on usbhid")
    l2 = ctx.booted_l2()
    try:
        ctx.step("nodedev-set-numvfs 2: two VFs")
        ctx.ctl("nodedev-set-numvfs", nodedev_name(NVME_PF), "2", check_ok=True)
        vfs = [f"0000:02:00.{f}" for f in (1, 2)]
        for vf in vfs:
            wait_for(lambda: l1lib.pci_exists(vf), 10, f"VF {vf}")
        groups = {bdf: l1lib.pci_group(bdf) for bdf in [E1000E, *vfs]}
        ctx.log(f"IOMMU groups: {groups}")
        check(l1lib.group_members(groups[NVME_VF]) == [NVME_VF],
              f"the VF {NVME_VF} should be alone in its group: {l1lib.group_members(groups[NVME_VF])}")
        guest_before = wait_for(l2.guest_pci, 30, "the L2 guest's PCI list")
        daemon = ctx.start_hostdevd(l2, vm=vm)
        before = {"pci": {bdf: host_state(bdf) for bdf in (E1000E, NVME_VF)},
                  "qemu_pci": qemu_pci_ids(l2.qmp)}
        ctx.log(f"before: {before}")

        failing = ctx.file("batch-failing.xml", "<devices>\n" + l1lib.pci_xml(E1000E) +
                           l1lib.pci_xml(NVME_VF) +
                           usb_xml_at_guest_port(*KBD, kbd, BATCH_GUEST_USB_PORT) + "</devices>\n")
        result, plan = ctx.ctl_json("attach-device", vm, failing, "--dry-run", check_ok=True,
                                    what="dry run of the batch")
        steps = [s["step"] for s in plan["return"]["plan"]]
        ctx.log(f"plan: {steps}")
        ctx.expect(steps[-1] == "device-add" and "usb-host" in plan["return"]["plan"][-1]["what"],
                   f"the keyboard's device_add should be the plan's last step: {steps}")

        # hostdevd reads the VM's USB ports at its first USB attach (a dry run's
        # reading is dropped) and keeps them up to date from then on
        ctx.step(f"hostdevd learns the VM's USB ports: the keyboard at {kbd} alone, in and out")
        alone = ctx.file("kbd.xml", l1lib.usb_xml(*KBD, port=kbd))
        attach_ok(ctx, vm, alone, "attach of the keyboard alone")
        detach(ctx, vm, alone, 10, "detached", "detach of the keyboard alone")
        wait_for(lambda: usb_on_usbhid(kbd), 20, "usbhid to have the keyboard back")

        ctx.step(f"guest USB port {BATCH_GUEST_USB_PORT} taken behind hostdevd's back "
                 "(a usb-tablet through the test's QMP)")
        l2.qmp.ok("device_add", driver="usb-tablet", bus="usb.0", port=BATCH_GUEST_USB_PORT,
                  id="s21blocker")

        ctx.step("the batch, whose last device QEMU refuses: nothing of it stays")
        result, reply = ctx.ctl_json("attach-device", vm, failing, check_ok=False,
                                     what="the batch with the keyboard's port taken")
        desc = error_of(reply).get("desc", "")
        ctx.log(f"error: {desc}")
        ctx.expect("usb-host" in desc, f"the error should be QEMU's refusal of the usb-host: {reply}")
        log = daemon.log_of_this_run()
        ctx.expect("device-add" in log and "undoing" in log,
                   "hostdevd's log should show the attach failing at a device-add and undone")
        # the PCI devices QEMU accepted leave once the guest lets go of them
        try:
            wait_for(lambda: not l2.qmp.vfio_devices(), 60, "QEMU to let go of the PCI devices")
        except Failure as e:
            ctx.expect(False, str(e))
        l2.qmp.ok("device_del", id="s21blocker")
        l2.qmp.wait_event("DEVICE_DELETED", 10, device="s21blocker")
        expect_batch_gone(ctx, l2, vm, before, kbd, "after the failed batch")
        wait_for(lambda: ctx.listed(vm) == [], 20, "hostdevd to list nothing")
        expect_guest_sees(ctx, l2, guest_before, 0, "the guest to report the devices gone")

        ctx.step("the same batch without the taken port: every device in the VM")
        whole = ctx.file("batch.xml", "<devices>\n" + l1lib.pci_xml(E1000E) +
                         l1lib.pci_xml(NVME_VF) + l1lib.usb_xml(*KBD, port=kbd) + "</devices>\n")
        _, reply = ctx.ctl_json("attach-device", vm, whole, check_ok=True, what="the batch")
        ctx.log(f"timings: {reply['return'].get('timings')}")
        for bdf in (E1000E, NVME_VF):
            check(l1lib.pci_driver(bdf) == "vfio-pci", f"{bdf} is on {l1lib.pci_driver(bdf)}")
        check(sorted(l2.qmp.vfio_devices().values()) == sorted([E1000E, NVME_VF]),
              f"QEMU should have both PCI devices: {l2.qmp.vfio_devices()}")
        check(len(l2.qmp.usb_host_devices()) == 1, f"QEMU has no usb-host: {l2.qmp.peripherals()}")
        ctx.expect("QEMU USB Keyboard" in l2.qmp.ok("x-query-usb")["human-readable-text"],
                   "x-query-usb does not show the keyboard")
        expect_guest_sees(ctx, l2, guest_before, 2, "the guest to report the two new PCI functions")

        ctx.step("detach the batch: everything back")
        _, reply = ctx.ctl_json("detach-device", vm, whole, "--wait", "60", check_ok=True,
                                what="detach of the batch", timeout=180)
        statuses = [d.get("status") for d in ((reply or {}).get("return") or {}).get("devices", [])]
        ctx.expect(statuses == ["detached"] * 3, f"each device of the batch should be detached: {reply}")
        try:
            wait_for(lambda: not l2.qmp.vfio_devices() and not l2.qmp.usb_host_devices(), 60,
                     "QEMU to let go of the devices")
        except Failure as e:
            ctx.expect(False, str(e))
        expect_batch_gone(ctx, l2, vm, before, kbd, "after the batch's detach")
        expect_guest_sees(ctx, l2, guest_before, 0, "the guest to report the devices gone")

        ctx.step("one request of the independent managed PCI devices against one request each")
        measured = [bdf for bdf in (E1000E, *vfs) if l1lib.group_members(groups[bdf]) == [bdf]]
        ctx.log(f"devices alone in their IOMMU groups: {measured}")
        check(len(measured) >= 2, f"at least two devices alone in their groups: {groups}")
        batch_xml = ctx.file("measured.xml", "<devices>\n" +
                             "".join(l1lib.pci_xml(b) for b in measured) + "</devices>\n")
        _, plan = ctx.ctl_json("attach-device", vm, batch_xml, "--dry-run", check_ok=True,
                               what="dry run of the measured batch")
        binds = [s for s in plan["return"]["plan"] if s["step"] == "vfio-bind"]
        parallel = len(binds) == len(measured) and all(s.get("together") for s in binds)
        ctx.log(f"the plan binds them {'together' if parallel else 'one after the other'}: "
                f"{json.dumps(binds)}")
        quiet_pool(ctx, 300)
        results = measure_batch_against_singles(ctx, l2, daemon, measured)
        results.update({"kernel": os.uname().release, "binds_together": parallel,
                        "hostdevd": ctx.config["hostdevd"],
                        "guest": "booted L2 guest (q35, 128 MiB, TCG)"})
        with open(os.path.join(l1lib.LOGS, "batch-pci.json"), "w") as f:
            json.dump(results, f, indent=1)
        ctx.log(f"median attach ms {results['median_attach_ms']}, ratio {results['ratio']:.3f}, "
                f"phases {results['median_phases_ms']}")
    finally:
        unplug_directly(ctx, l2, list(l2.connect().vfio_devices()))
        for alias in list(l2.qmp.usb_host_devices()) + ["s21blocker"]:
            if alias in l2.qmp.peripherals():
                l2.qmp.command("device_del", id=alias)
        if l1lib.read(f"{pf_sys}/sriov_numvfs") != "0":
            ctx.step("nodedev-set-numvfs 0")
            wait_for(lambda: all(l1lib.pci_driver(vf) != "vfio-pci"
                                 for vf in ("0000:02:00.1", "0000:02:00.2")
                                 if l1lib.pci_exists(vf)), 60, "the VFs off vfio-pci")
            ctx.ctl("nodedev-set-numvfs", nodedev_name(NVME_PF), "0", check_ok=True)
            wait_for(lambda: not l1lib.pci_exists(NVME_VF), 10, "the VFs to disappear")


# a booted guest, up to 7 cycles of three devices (about 10 s each) and the rest
SCENARIOS[21].time_limit = 900
