#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Orders of events across hostdevd, QEMU and a second VM.

Each VM is a scripted QMP peer running as a process of its own (so that its
death is a real process's death, as hostdevd sees QEMU's) and a real
hostdevd; the host is the sysfs snapshot (--host-root), whose USB keyboard
0627:0001 at bus 1 device 2 is claimed host-wide as usb_1_2 and handed to
QEMU as a descriptor.  Outcomes are judged from the host (claim files, the
journal on disk) and from QEMU's own view (its device list), never from
hostdevd's replies alone.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

from harness import (HOSTDEVCTL, HOSTDEVD, SANDBOX, Qmp, extract_fixture, main, read_json_files,
                     wait_for)

KEYBOARD = """<hostdev mode='subsystem' type='usb' managed='yes'>
  <source><vendor id='0x0627'/><product id='0x0001'/></source>
</hostdev>"""
ABSENT = """<hostdev mode='subsystem' type='usb'>
  <source startupPolicy='optional'><vendor id='0x1d6b'/><product id='0x0104'/></source>
</hostdev>"""
FAKE_QEMU = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_qemu.py")


class Vm:
    """One VM: a fake QEMU process and the hostdevd beside it."""

    def __init__(self, case, name):
        self.case = case
        self.name = name
        self.qmp_path = os.path.join(case.tmp, f"{name}.qmp")
        self.socket = os.path.join(case.tmp, f"{name}.sock")
        self.log_path = os.path.join(case.tmp, f"{name}.log")
        self.qemu = None
        self.daemon = None
        self.view = None

    def start_qemu(self):
        if os.path.exists(self.qmp_path):
            os.unlink(self.qmp_path)
        self.qemu = self.case.spawn([sys.executable, FAKE_QEMU, self.qmp_path])
        self.view = Qmp(self.qmp_path)
        self.case.addCleanup(self.view.close)

    def start_hostdevd(self, wait_socket=True):
        argv = [HOSTDEVD, "--vm", self.name, "--qmp", self.qmp_path, "--socket", self.socket,
                "--state-dir", os.path.join(self.case.tmp, "state"), "--sandbox", SANDBOX,
                "--qmp-wait", "60", "--host-root", self.case.host_root,
                # an absent optional USB device goes to QEMU: the cheap device these tests use
                "--optional-usb", "qemu"]
        log = open(self.log_path, "ab")
        self.daemon = self.case.spawn(argv, stdout=log, stderr=subprocess.STDOUT,
                                      env=dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.case.tmp))
        if wait_socket:
            wait_for(lambda: self.answers() or self.daemon.poll() is not None, 60,
                     f"{self.name}'s control socket")
            self.case.assertIsNone(self.daemon.poll(), f"hostdevd exited early:\n{self.log()}")
        return self.daemon

    def answers(self):
        try:
            return json.loads(self.ctl("--json", "list").stdout or "{}").get("return") is not None
        except (ValueError, subprocess.TimeoutExpired):
            return False

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def ctl(self, verb, *args, check=None, xml=None):
        argv = [HOSTDEVCTL]
        if verb == "--json":
            argv.append(verb)
            verb, args = args[0], args[1:]
        argv += [verb, self.socket, *args]
        if xml is not None:
            path = os.path.join(self.case.tmp, f"{self.name}-{abs(hash(xml))}.xml")
            with open(path, "w") as f:
                f.write(xml)
            argv.append(path)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                                env=dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.case.tmp))
        if check is True:
            self.case.assertEqual(result.returncode, 0, f"{argv}: {result.stderr}\n{self.log()}")
        elif check is False:
            self.case.assertNotEqual(result.returncode, 0, f"{argv} succeeded: {result.stdout}")
        return result

    def listing(self):
        reply = json.loads(self.ctl("--json", "list", check=True).stdout)["return"]
        return {d["alias"]: d["state"] for d in reply}

    def in_qemu(self):
        """The host devices in QEMU (its USB controller "usb" is always there)."""
        return set(self.view.peripherals()) - {"usb"}

    def journal(self):
        # an attach's "attached" record is written right after its answer: one more
        # request, answered, says it is there
        if self.daemon is not None and self.daemon.poll() is None:
            self.ctl("list")
        directory = os.path.join(self.case.tmp, "state", f"{self.name}.journal")
        return {entry["alias"]: entry["state"]
                for _, entry in read_json_files(directory, lambda name: name.endswith(".json"))}

    def stop(self, process, sig):
        """Send @sig to @process and wait until it is reaped."""
        process.send_signal(sig)
        return process.wait(timeout=60)


class Sequences(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hostdevd-seq-")
        self.processes = []
        self.addCleanup(self._cleanup)
        self.host_root = extract_fixture(os.path.join(self.tmp, "root"))
        usb = os.path.join(self.host_root, "dev", "bus", "usb", "001")
        os.makedirs(usb, exist_ok=True)
        for node in ("001", "002"):
            open(os.path.join(usb, node), "w").close()

    def spawn(self, argv, **kwargs):
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
        self.processes.append(process)
        return process

    def _cleanup(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def claims(self):
        """{key: claim} of every claim file on the host."""
        directory = os.path.join(self.tmp, "claims")
        return dict(read_json_files(directory, lambda name: not name.startswith(".")))

    def vm(self, name):
        vm = Vm(self, name)
        vm.start_qemu()
        vm.start_hostdevd()
        return vm

    # -- what QEMU can do ------------------------------------------------

    def test_qemu_without_x_query_usb_is_asked_once_and_followed(self):
        """What QEMU can do is asked once per connection (query-commands), and the attach
        follows it: without x-query-usb the device is confirmed from QEMU's device list."""
        vm = Vm(self, "vm1")
        vm.start_qemu()
        vm.view.ok("x-fake-set", commands=["qmp_capabilities", "query-commands", "qom-list", "qom-get",
                                           "device_add", "device_del", "add-fd", "remove-fd",
                                           "query-fdsets"])
        vm.start_hostdevd()
        vm.ctl("attach-device", xml=KEYBOARD, check=True)
        vm.ctl("attach-device", xml=ABSENT, check=True)
        self.assertEqual(vm.in_qemu(), {"hostdev0", "hostdev1"})
        self.assertEqual(vm.listing(), {"hostdev0": "attached", "hostdev1": "attached"})
        self.assertEqual(vm.view.ok("x-fake-count", command="query-commands"), 1)
        self.assertEqual(vm.view.ok("x-fake-count", command="x-query-usb"), 0)
        # a new QEMU is asked again
        vm.stop(vm.daemon, signal.SIGTERM)
        vm.stop(vm.qemu, signal.SIGKILL)
        vm.start_qemu()
        vm.start_hostdevd()
        wait_for(lambda: self.claims() == {}, 60, f"the dead QEMU's device back:\n{vm.log()}")
        vm.ctl("attach-device", xml=KEYBOARD, check=True)
        self.assertEqual(vm.view.ok("x-fake-count", command="query-commands"), 1)
        self.assertEqual(vm.view.ok("x-fake-count", command="x-query-usb"), 1)

    def test_usb_port_map_is_read_once_and_kept(self):
        """Issue 14: the USB ports are read at the first attach and kept up to date by
        hostdevd's own attaches and detaches; only a device hostdevd did not add leaving
        makes the next attach read them again."""
        vm = self.vm("vm1")
        vm.ctl("attach-device", xml=ABSENT, check=True)
        vm.ctl("detach-device-alias", "hostdev0", check=True)
        vm.ctl("attach-device", xml=ABSENT, check=True)
        self.assertEqual(vm.view.ok("x-fake-count", command="x-query-usb"), 1, vm.log())
        # the port the detach gave back is the one the next attach takes
        self.assertEqual(vm.view.ok("x-fake-args", id="hostdev0")["port"], "1")
        vm.view.ok("device_add", driver="usb-tablet", id="tablet", bus="usb.0", port="2")
        vm.view.ok("x-fake-delete", id="tablet")
        vm.ctl("attach-device", xml=ABSENT.replace("0x0104", "0x0105"), check=True)
        self.assertEqual(vm.view.ok("x-fake-count", command="x-query-usb"), 2, vm.log())
        self.assertEqual(vm.view.ok("x-fake-args", id="hostdev1")["port"], "2")

    # -- stopping -------------------------------------------------------

    def test_vm_stop_in_the_units_order_gives_everything_back(self):
        """systemd stops QEMU first (it is reaped), then SIGTERMs hostdevd at once: here
        the SIGTERM is pending before hostdevd could read QEMU's exit from the socket."""
        vm = self.vm("vm1")
        vm.ctl("attach-device", xml=KEYBOARD, check=True)
        self.assertEqual(set(self.claims()), {"usb_1_2"})
        vm.daemon.send_signal(signal.SIGSTOP)
        vm.stop(vm.qemu, signal.SIGKILL)
        vm.daemon.send_signal(signal.SIGTERM)
        vm.daemon.send_signal(signal.SIGCONT)
        self.assertEqual(vm.daemon.wait(timeout=60), 0, vm.log())
        self.assertEqual(self.claims(), {}, vm.log())
        self.assertEqual(vm.journal(), {}, vm.log())

    def test_hostdevd_stopped_first_then_qemu_dies_next_start_gives_back(self):
        """The other order: hostdevd leaves the device in the running VM; QEMU dies while
        no hostdevd runs; the next hostdevd gives the device back before any QEMU comes."""
        vm = self.vm("vm1")
        vm.ctl("attach-device", xml=KEYBOARD, check=True)
        self.assertEqual(vm.stop(vm.daemon, signal.SIGTERM), 0)
        self.assertEqual(vm.in_qemu(), {"hostdev0"})
        self.assertEqual(vm.journal(), {"hostdev0": "attached"})
        self.assertEqual(set(self.claims()), {"usb_1_2"})
        vm.stop(vm.qemu, signal.SIGKILL)
        os.unlink(vm.qmp_path)
        daemon = vm.start_hostdevd(wait_socket=False)
        wait_for(lambda: vm.journal() == {} and self.claims() == {}, 60,
                 f"the dead QEMU's device to be given back:\n{vm.log()}")
        self.assertIsNone(daemon.poll(), "hostdevd goes on waiting for its next QEMU")
        self.assertFalse(os.path.exists(vm.socket))
        vm.start_qemu()
        wait_for(vm.answers, 60, "hostdevd to serve the new QEMU")
        self.assertEqual(vm.listing(), {})

    def test_sigterm_while_qemu_runs_leaves_the_device_in_the_vm(self):
        vm = self.vm("vm1")
        vm.ctl("attach-device", xml=KEYBOARD, check=True)
        self.assertEqual(vm.stop(vm.daemon, signal.SIGTERM), 0)
        self.assertEqual(vm.in_qemu(), {"hostdev0"})
        vm.start_hostdevd()
        self.assertEqual(vm.listing(), {"hostdev0": "attached"})
        self.assertEqual(self.claims()["usb_1_2"]["vm"], "vm1")

    # -- ownership ----------------------------------------------------------

    def test_restart_takes_the_claims_again(self):
        """After a crash the claim names the new hostdevd: another VM cannot take the device
        from the running VM, even when the QEMU pid is not recorded (an older claim)."""
        vm1 = self.vm("vm1")
        vm1.ctl("attach-device", xml=KEYBOARD, check=True)
        vm1.stop(vm1.daemon, signal.SIGKILL)
        vm1.start_hostdevd()
        self.assertEqual(self.claims()["usb_1_2"]["pid"], vm1.daemon.pid)
        vm2 = self.vm("vm2")
        refused = vm2.ctl("attach-device", xml=KEYBOARD, check=False)
        self.assertIn("vm1", refused.stderr)
        self.assertEqual(vm2.in_qemu(), set())
        self.assertEqual(self.claims()["usb_1_2"]["vm"], "vm1")

    def test_replay_never_touches_a_device_another_vm_holds_now(self):
        vm1 = self.vm("vm1")
        vm1.ctl("attach-device", xml=KEYBOARD, check=True)
        vm1.stop(vm1.daemon, signal.SIGTERM)
        vm1.stop(vm1.qemu, signal.SIGKILL)
        vm2 = self.vm("vm2")
        vm2.ctl("attach-device", xml=KEYBOARD, check=True)
        claim = self.claims()["usb_1_2"]
        self.assertEqual(claim["vm"], "vm2")
        # VM1 comes back with a new QEMU: its old record names a device VM2 holds now
        vm1.start_qemu()
        vm1.start_hostdevd()
        wait_for(lambda: vm1.journal() == {}, 60, "VM1's stale record to be dropped")
        self.assertIn("vm2", vm1.log())
        self.assertEqual(self.claims()["usb_1_2"], claim)
        self.assertEqual(vm2.in_qemu(), {"hostdev0"})
        self.assertEqual(vm2.listing(), {"hostdev0": "attached"})
        self.assertEqual(vm1.listing(), {})

    # -- aliases and pending unplugs -------------------------------------------

    def test_release_leaves_a_device_another_vm_claimed_alone(self):
        """While the device was in this VM's QEMU another hostdevd took its claim (a stale
        claim taken over, a person's mistake): giving it back must not undo anything of
        the new holder's, only drop this VM's record."""
        vm = self.vm("vm1")
        vm.ctl("attach-device", xml=KEYBOARD, check=True)
        path = os.path.join(self.tmp, "claims", "usb_1_2")
        claim = self.claims()["usb_1_2"]
        with open("/proc/self/stat") as f:
            start_time = int(f.read().rsplit(")", 1)[1].split()[19])
        # the intruder's hostdevd is alive: the test itself
        claim.update(vm="intruder", pid=os.getpid(), **{"start-time": start_time})
        claim.pop("qemu-pid", None)
        claim.pop("qemu-start-time", None)
        with open(path, "w") as f:
            json.dump(claim, f)
        vm.ctl("detach-device-alias", "hostdev0", check=True)
        wait_for(lambda: vm.listing() == {} and vm.journal() == {}, 60,
                 f"the record to be dropped\n{vm.log()}")
        self.assertEqual(self.claims()["usb_1_2"], claim)
        self.assertIn("VM 'intruder'", vm.log())
        self.assertEqual(vm.in_qemu(), set())
        vm.ctl("attach-device", xml=ABSENT, check=True)
        self.assertEqual(vm.in_qemu(), {"hostdev0"})

    def test_a_long_detach_wait_does_not_hold_other_requests(self):
        """A client waits for a slow guest (--wait 60): other requests of the VM run
        meanwhile, and the waiting client still learns that the device left."""
        vm = self.vm("vm1")
        vm.ctl("attach-device", xml=ABSENT, check=True)
        vm.view.ok("x-fake-set", **{"on-device-del": "silent"})
        waiter = self.spawn([HOSTDEVCTL, "detach-device-alias", vm.socket, "hostdev0",
                             "--wait", "60"], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.tmp))
        wait_for(lambda: vm.listing().get("hostdev0") == "detaching", 60,
                 "the unplug request to reach QEMU")
        vm.ctl("attach-device", xml=KEYBOARD, check=True)
        self.assertIsNone(waiter.poll(), "the detach stopped waiting")
        self.assertEqual(vm.in_qemu(), {"hostdev0", "hostdev1"})
        vm.view.ok("x-fake-delete", id="hostdev0")
        self.assertEqual(waiter.wait(timeout=60), 0)
        self.assertIn("Device detached successfully (hostdev0)", waiter.stdout.read())
        self.assertEqual(vm.listing(), {"hostdev1": "attached"})

    def test_second_detach_while_pending_stays_pending(self):
        vm = self.vm("vm1")
        vm.ctl("attach-device", xml=ABSENT, check=True)
        vm.view.ok("x-fake-set", **{"on-device-del": "silent"})
        for attempt in (1, 2):
            result = vm.ctl("--json", "detach-device-alias", "hostdev0", "--wait", "0.3")
            self.assertEqual(vm.listing(), {"hostdev0": "detaching"},
                             f"after detach {attempt}: {result.stdout}{result.stderr}")
        vm.view.ok("x-fake-delete", id="hostdev0")
        wait_for(lambda: vm.listing() == {}, 60, "the late DEVICE_DELETED to finish it")
        self.assertEqual(vm.journal(), {})

    def test_detach_without_wait_still_hears_device_deleted(self):
        vm = self.vm("vm1")
        vm.ctl("attach-device", xml=KEYBOARD, check=True)
        vm.view.ok("x-fake-set", **{"on-device-del": "delete-first"})
        vm.ctl("detach-device-alias", "hostdev0", "--wait", "0", check=True)
        wait_for(lambda: vm.listing() == {}, 60, f"the release after DEVICE_DELETED\n{vm.log()}")
        self.assertEqual(vm.in_qemu(), set())
        self.assertEqual(self.claims(), {})
        self.assertEqual(vm.journal(), {})


if __name__ == "__main__":
    main()
