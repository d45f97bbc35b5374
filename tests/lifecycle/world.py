# SPDX-License-Identifier: GPL-2.0-or-later
"""One run of the lifecycle runner: a fake kernel (FUSE), two or three VMs,
each a fake QEMU process and a real hostdevd, and the checks that look only
at the (fake) host and QEMU, never at what hostdevd replied.

Every process started here is kept by pid and stopped in close(), which
also unmounts the FUSE tree, whatever happened before.
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.environ.get("HOSTDEVD_FIXTURES", os.path.join(HERE, "..", "fixtures"))
SANDBOX = os.environ.get("HOSTDEVD_TEST_SANDBOX", "off")

# The devices the runs share: a PCI function alone in its IOMMU group, the two
# functions of group 12 (0000:05:00.1 is on vfio-pci in the snapshot, with
# driver_override vfio-pci: the state its release must give back), a USB device.
DEVICES = {
    "solo": {"kind": "pci", "bdf": "0000:01:00.0"},
    "g0": {"kind": "pci", "bdf": "0000:05:00.0"},
    "g1": {"kind": "pci", "bdf": "0000:05:00.1"},
    "usb": {"kind": "usb", "key": "1-2", "vendor": "0x0627", "product": "0x0001"},
}
NODE_BASELINE = {"uid": 0, "gid": 0, "mode": 0o600}

# what in a hostdevd log is a crash or a sanitizer report
LOG_ALARMS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
              "CRITICAL **", "** ERROR **", "Segmentation fault", "AddressSanitizer:DEADLYSIGNAL")


def device_xml(dev, managed="yes"):
    d = DEVICES[dev]
    if d["kind"] == "usb":
        return (f"<hostdev mode='subsystem' type='usb' managed='yes'><source>"
                f"<vendor id='{d['vendor']}'/><product id='{d['product']}'/></source></hostdev>")
    domain, bus, rest = d["bdf"].split(":")
    slot, function = rest.split(".")
    return (f"<hostdev mode='subsystem' type='pci' managed='{managed}'><source><address "
            f"domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>"
            f"</source></hostdev>")


def nodedev_name(dev):
    return "pci_" + DEVICES[dev]["bdf"].replace(":", "_").replace(".", "_")


def claim_pids(claim):
    """The processes @claim names: its hostdevd, its QEMU."""
    return [v for k, v in claim.items() if "pid" in k and isinstance(v, int) and v > 0]


def claim_live(claim):
    """Whether a process @claim names is alive: a claim naming only dead ones is
    stale, and anyone may take the device."""
    return any(pid_alive(p) for p in claim_pids(claim))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Violation(Exception):
    pass


class LineClient:
    """JSON lines over a Unix socket, one request at a time."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + 60
        while True:   # the socket file exists a moment before its server listens
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(path)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.file = self.sock.makefile("rwb")

    def call(self, request):
        self.file.write((json.dumps(request) + "\n").encode())
        self.file.flush()
        line = self.file.readline()
        if not line:
            raise EOFError("peer closed")
        return json.loads(line)

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


def wait_for(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Vm:
    def __init__(self, name):
        self.name = name
        self.qemu = None          # Popen of the fake QEMU
        self.daemon = None        # Popen of hostdevd
        self.control = None       # LineClient to the fake QEMU
        self.log_offset = 0
        self.expect_exit = False  # hostdevd should exit by itself (its QEMU is gone)

    def qemu_alive(self):
        return self.qemu is not None and self.qemu.poll() is None

    def daemon_alive(self):
        return self.daemon is not None and self.daemon.poll() is None


class World:
    def __init__(self, hostdevd, hostdevctl, vms, takeover, verbose=False, ignore=()):
        self.hostdevd = hostdevd
        self.hostdevctl = hostdevctl
        self.verbose = verbose
        self.ignore = set(ignore)
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.tmp = tempfile.mkdtemp(prefix="hostdevd-life-", dir=base)
        self.tree = os.path.join(self.tmp, "tree")
        self.root = os.path.join(self.tmp, "root")
        self.runtime = os.path.join(self.tmp, "run")
        self.state = os.path.join(self.tmp, "state")
        self.logs = os.path.join(self.tmp, "logs")
        for d in (self.tree, self.root, self.runtime, self.state, self.logs):
            os.makedirs(d)
        self.processes = []
        self.kernel_proc = None
        self.kernel = None
        self.mounted = False
        self.fuse_conn = None
        self.vms = {name: Vm(name) for name in vms}
        self.policy = os.path.join(self.tmp, "policy.conf")
        with open(self.policy, "w") as f:
            f.write("[defaults]\nallow-iommu-group-takeover=false\n")
            for name in vms:
                if takeover.get(name):
                    f.write(f"[vm {name}]\nallow-iommu-group-takeover=true\n")
        os.chmod(self.policy, 0o644)
        self.seen_violations = 0
        self.baseline = {}

    # -- processes ------------------------------------------------------

    def spawn(self, argv, log, env=None):
        out = open(os.path.join(self.logs, log), "ab")
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
        out.close()
        self.processes.append(process)
        return process

    def start(self):
        with tarfile.open(os.path.join(FIXTURES, "sysfs-linux-6.1-q35-viommu.tar.gz")) as tar:
            tar.extractall(self.tree)
        # the "disable" attribute of every USB hub port, as Linux 6.1 has it (the
        # snapshot left it out): a release writes it (issue 11, finding 6)
        for top, dirs, _ in os.walk(os.path.join(self.tree, "sys", "devices")):
            for name in dirs:
                if "-port" in name and name.rsplit("-port", 1)[1].isdigit():
                    with open(os.path.join(top, name, "disable"), "w") as f:
                        f.write("0\n")
        # the host's memory size, which bounds what a QEMU may report as guest RAM
        os.makedirs(os.path.join(self.tree, "proc"), exist_ok=True)
        with open("/proc/meminfo") as src, open(os.path.join(self.tree, "proc", "meminfo"), "w") as dst:
            dst.write(src.read())
        python = sys.executable
        try:
            subprocess.run([python, "-c", "import sys; sys.path.append('/usr/lib/python3/"
                            "dist-packages'); import fuse"], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            python = "/usr/bin/python3"
        control = os.path.join(self.tmp, "kernel.sock")
        self.kernel_proc = self.spawn([python, os.path.join(HERE, "fake_kernel.py"),
                                       "--tree", self.tree, "--mount", self.root,
                                       "--control", control], "kernel.log")
        self.mounted = True
        if not wait_for(lambda: os.path.exists(control) and
                        os.path.isdir(os.path.join(self.root, "sys")) or
                        self.kernel_proc.poll() is not None, 30):
            raise RuntimeError("the fake kernel did not come up:\n" + self.read_log("kernel.log"))
        if self.kernel_proc.poll() is not None:
            raise RuntimeError("the fake kernel exited:\n" + self.read_log("kernel.log"))
        self.kernel = LineClient(control)
        # the FUSE connection's number, to abort it if its server ever hangs
        self.fuse_conn = os.minor(os.stat(self.root).st_dev)
        state = self.kernel.call({"op": "state"})
        for dev, d in DEVICES.items():
            if d["kind"] == "pci":
                p = state["pci"][d["bdf"]]
                self.baseline[dev] = {"driver": p["driver"], "override": p["override"]}
        for name in self.vms:
            self.start_vm(name)

    def read_log(self, name):
        try:
            with open(os.path.join(self.logs, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kcall(self, request):
        return self.kernel.call(request)

    def start_vm(self, name):
        vm = self.vms[name]
        qmp = os.path.join(self.tmp, f"{name}.qmp")
        control = os.path.join(self.tmp, f"{name}.qemu-control")
        for path in (qmp, control):
            if os.path.exists(path):
                os.unlink(path)
        vm.qemu = self.spawn([sys.executable, os.path.join(HERE, "fake_qemu_proc.py"),
                              "--vm", name, "--qmp", qmp, "--control", control,
                              "--kernel", os.path.join(self.tmp, "kernel.sock"),
                              "--log", os.path.join(self.logs, f"{name}.qemu-trace")],
                             f"{name}.qemu.log")
        if not wait_for(lambda: os.path.exists(control) or vm.qemu.poll() is not None, 60):
            raise RuntimeError(f"fake QEMU {name} did not start")
        vm.control = LineClient(control)
        self.start_hostdevd(name)

    def start_hostdevd(self, name, wait=True, crash_at=None):
        """crash_at: HOSTDEVD_TEST_CRASH_AT for this hostdevd (a -Dtest_hooks=true build)."""
        vm = self.vms[name]
        sock = os.path.join(self.runtime, f"{name}.sock")
        argv = [self.hostdevd, "--vm", name, "--qmp", os.path.join(self.tmp, f"{name}.qmp"),
                "--socket", sock, "--state-dir", self.state, "--host-root", self.root,
                "--sandbox", SANDBOX, "--qmp-wait", "20", "--qemu-user", "nobody",
                "--policy", self.policy, "-v"]
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.runtime)
        if crash_at:
            env["HOSTDEVD_TEST_CRASH_AT"] = crash_at
        log = os.path.join(self.logs, f"{name}.hostdevd.log")
        vm.log_offset = os.path.getsize(log) if os.path.exists(log) else 0
        with open(log, "a") as f:
            f.write(f"===== hostdevd started at {time.monotonic():.3f}\n")
        vm.daemon = self.spawn(argv, f"{name}.hostdevd.log", env=env)
        vm.expect_exit = False
        if wait:
            ok = wait_for(lambda: self.answers(sock) or vm.daemon.poll() is not None, 30)
            if vm.daemon.poll() is not None or not ok:
                raise Violation(f"crash: hostdevd of {name} did not come up "
                                f"(status {vm.daemon.poll()})")

    @staticmethod
    def answers(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def signal_daemon(self, name, sig, wait=True):
        vm = self.vms[name]
        if not vm.daemon_alive():
            return None
        vm.daemon.send_signal(sig)
        if wait:
            try:
                return vm.daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise Violation(f"stuck: hostdevd of {name} did not exit within 60 s of "
                                f"signal {sig}")
        return None

    def stop_qemu(self, name, sig):
        vm = self.vms[name]
        if not vm.qemu_alive():
            return
        vm.expect_exit = True
        vm.qemu.send_signal(sig)
        vm.qemu.wait(timeout=10)
        if vm.control:
            vm.control.close()
            vm.control = None

    def ctl(self, *args, timeout=60):
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.runtime)
        try:
            return subprocess.run([self.hostdevctl, *args], capture_output=True, text=True,
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise Violation(f"stuck: `hostdevctl {' '.join(args)}` got no answer in {timeout} s")

    def ctl_async(self, *args):
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.runtime)
        process = subprocess.Popen([self.hostdevctl, *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
        self.processes.append(process)
        return process

    def qemu_call(self, name, request):
        vm = self.vms[name]
        if not vm.qemu_alive() or vm.control is None:
            return None
        try:
            return vm.control.call(request)
        except (OSError, EOFError):
            return None

    def qemu_devices(self, name):
        reply = self.qemu_call(name, {"op": "devices"})
        return reply["devices"] if reply else {}

    def alias_of(self, name, dev):
        d = DEVICES[dev]
        for device_id, device in self.qemu_devices(name).items():
            # a PCI device has no "usb", a USB device no "host": compare only what each has
            if ("host" in device and device["host"] == d.get("bdf")) or \
                    ("usb" in device and device["usb"] == d.get("key")):
                return device_id
        return None

    def xml_file(self, dev, managed):
        path = os.path.join(self.tmp, f"{dev}-{managed}.xml")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(device_xml(dev, managed))
        return path

    def batch_xml_file(self, devs, managed):
        """A <devices> request of @devs (g0 and g1 together: one multifunction slot)."""
        path = os.path.join(self.tmp, f"{'+'.join(devs)}-{managed}.xml")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("<devices>\n" + "".join(device_xml(dev, managed) + "\n" for dev in devs)
                        + "</devices>\n")
        return path

    def kept(self, name, devs):
        """Return: those of @devs that VM @name keeps: in its QEMU and not on their way
        out (hostdevd lists them, not as detaching)."""
        reply = self.ctl("--json", "list", name)
        try:
            listing = {d["alias"]: d.get("state") for d in json.loads(reply.stdout)["return"]}
        except (ValueError, KeyError, TypeError):
            listing = {}
        return {dev for dev in devs
                if (alias := self.alias_of(name, dev)) and listing.get(alias) != "detaching"}

    # -- what the host and QEMU say ---------------------------------------

    def journal(self, name):
        entries = {}
        for path in sorted(glob.glob(os.path.join(self.state, f"{name}.journal", "*.json"))):
            try:
                with open(path) as f:
                    entry = json.load(f)
            except (OSError, ValueError) as e:
                entries[os.path.basename(path)] = {"unreadable": str(e)}
                continue
            if isinstance(entry, dict) and "alias" in entry:
                entries[entry["alias"]] = entry
        return entries

    def claims(self):
        """Every claim by its key; not the lock, temporary files or the administrator's
        notes (KEY.administered), whose names are no keys."""
        result = {}
        for path in glob.glob(os.path.join(self.runtime, "claims", "*")):
            key = os.path.basename(path)
            if not re.fullmatch(r"[a-z0-9_]{1,64}", key):
                continue
            try:
                with open(path) as f:
                    result[key] = json.load(f)
            except (OSError, ValueError):
                result[key] = {}
        return result

    def check(self):
        """Return: the invariants that do not hold now (empty: all hold)."""
        problems = []
        kstate = self.kcall({"op": "state"})
        for text in kstate["violations"][self.seen_violations:]:
            problems.append(("unbound-while-held" if "unbound" in text else "two-vms", text))
        holders = {}     # dev -> vm (from the fake QEMUs)
        qemu_ids = {}    # vm -> {id: dev}
        for name, vm in self.vms.items():
            qemu_ids[name] = {}
            for device_id, device in self.qemu_devices(name).items():
                dev = next((k for k, d in DEVICES.items()
                            if d.get("bdf") == device.get("host") and "host" in device
                            or d.get("key") == device.get("usb") and "usb" in device), None)
                qemu_ids[name][device_id] = dev
                if dev is None:
                    continue
                if dev in holders:
                    problems.append(("two-vms", f"{dev} is in the QEMUs of both {holders[dev]} "
                                                f"and {name}"))
                holders[dev] = name
        # A VM whose hostdevd is down cannot give anything back until it runs again (a
        # pending unplug the guest finishes meanwhile leaves a device out of QEMU but
        # still prepared): its journaled devices wait for its next hostdevd, which the
        # sequence's last step starts and checks.
        orphaned = {n for n, vm in self.vms.items() if not vm.daemon_alive() and self.journal(n)}
        exempt = set()
        for name in orphaned:
            for entry in self.journal(name).values():
                for dev, d in DEVICES.items():
                    ident = d.get("bdf") or ""
                    if ident and ident in json.dumps(entry):
                        exempt.add(dev)
                    if d["kind"] == "usb" and "usb" in json.dumps(entry):
                        exempt.add(dev)

        # every device: in exactly one QEMU, or back as it was on the host
        for dev, d in DEVICES.items():
            if d["kind"] != "pci" or dev in exempt:
                continue
            k = kstate["pci"][d["bdf"]]
            if k["dying"]:
                problems.append(("settling", f"{dev}: its QEMU is still exiting"))
                continue
            if dev in holders:
                if k["driver"] != "vfio-pci":
                    problems.append(("host-state", f"{dev} is in {holders[dev]}'s QEMU but on "
                                                   f"driver {k['driver']}"))
                continue
            group_busy = any(kstate["pci"][DEVICES[o]["bdf"]]["held-by"]
                             for o in DEVICES if o != dev and DEVICES[o]["kind"] == "pci" and
                             kstate["pci"][DEVICES[o]["bdf"]]["group"] == k["group"])
            base = self.baseline[dev]
            if (k["driver"], k["override"]) != (base["driver"], base["override"]):
                if group_busy and k["driver"] in ("vfio-pci", None):
                    continue   # waits for the rest of its IOMMU group to leave QEMU
                problems.append(("host-state", f"{dev} ({d['bdf']}) is in no VM but on driver "
                                               f"{k['driver']} with driver_override "
                                               f"'{k['override']}', not {base['driver']} / "
                                               f"'{base['override']}'"))
        for group, node in kstate["nodes"].items():
            if group == "vfio":
                continue
            members = [b for b, p in kstate["pci"].items() if str(p["group"]) == group]
            if any(kstate["pci"][b]["held-by"] for b in members):
                continue
            if any(dev in exempt for dev, d in DEVICES.items() if d.get("bdf") in members):
                continue
            if {k: node[k] for k in NODE_BASELINE} != NODE_BASELINE:
                problems.append(("node-owner", f"/dev/vfio/{group} is {node['uid']}:"
                                               f"{node['gid']} mode {node['mode']:o} while no "
                                               f"QEMU uses the group (was 0:0 600)"))

        # claims name a VM that holds the device, and stay live while it does
        for key, claim in self.claims().items():
            vm = claim.get("vm")
            if vm in orphaned:
                continue
            held = set()
            for dev, d in DEVICES.items():
                if holders.get(dev) != vm:
                    continue
                if d["kind"] == "usb":
                    held.add("usb_" + d["key"].replace("-", "_"))
                else:
                    held.add(nodedev_name(dev))
                    held.add(f"iommu_group_{kstate['pci'][d['bdf']]['group']}")
                    for o, od in DEVICES.items():   # the rest of its group travels with it
                        if od["kind"] == "pci" and kstate["pci"][od["bdf"]]["group"] == \
                                kstate["pci"][d["bdf"]]["group"]:
                            held.add(nodedev_name(o))
            if key not in held:
                problems.append(("claim-orphan", f"claim {key} names VM {vm}, whose QEMU does "
                                                 f"not hold it"))
        claims = self.claims()
        for dev, vm in holders.items():
            d = DEVICES[dev]
            keys = ["usb_" + d["key"].replace("-", "_")] if d["kind"] == "usb" else \
                [nodedev_name(dev), f"iommu_group_{kstate['pci'][d['bdf']]['group']}"]
            for key in keys:
                claim = claims.get(key)
                if claim is None or claim.get("vm") != vm:
                    problems.append(("claim-missing", f"{dev} is in {vm}'s QEMU but claim "
                                                      f"{key} is {claim}"))
                    continue
                if not claim_live(claim):
                    problems.append(("claim-stale", f"{dev} is in {vm}'s QEMU but claim {key} "
                                                    f"names only dead processes "
                                                    f"{claim_pids(claim)}: another "
                                                    f"VM or nodedev-reattach may take it"))

        # every hostdevd: its list, its journal and its QEMU agree
        for name, vm in self.vms.items():
            journal = self.journal(name)
            ids = qemu_ids[name]
            for alias, entry in journal.items():
                if "unreadable" in entry:
                    problems.append(("journal", f"{name}: journal file {alias} unreadable"))
            if vm.qemu_alive():
                for device_id in ids:
                    if device_id not in journal:
                        problems.append(("journal-missing", f"{name}: QEMU holds {device_id} "
                                                            f"but the journal has no record"))
            if not vm.daemon_alive():
                continue
            result = self.ctl("--json", "list", name, timeout=30)
            if result.returncode != 0:
                problems.append(("list-failed", f"{name}: hostdevctl list failed: "
                                                f"{result.stderr.strip()}"))
                continue
            try:
                listing = {e["alias"]: e.get("state")
                           for e in json.loads(result.stdout)["return"]}
            except (ValueError, KeyError, TypeError) as e:
                problems.append(("list-failed", f"{name}: unreadable list: {e}"))
                continue
            for device_id in ids:
                if device_id not in listing:
                    problems.append(("unlisted", f"{name}: QEMU holds {device_id} "
                                                 f"({ids[device_id]}), hostdevd does not list it"))
            for alias, state in listing.items():
                if state == "attached" and alias not in ids:
                    problems.append(("listed-not-in-qemu", f"{name}: {alias} is listed as "
                                                           f"attached but QEMU does not have it"))
            if set(listing) != set(journal) or any(
                    journal[a].get("state") != s for a, s in listing.items() if a in journal):
                problems.append(("journal-list", f"{name}: list {listing} but journal "
                                 f"{ {a: e.get('state') for a, e in journal.items()} }"))
        problems += self.crashes()
        return [p for p in problems if p[0] not in self.ignore]

    def crashes(self):
        problems = []
        for name, vm in self.vms.items():
            text = self.read_log(f"{name}.hostdevd.log")[vm.log_offset:]
            for alarm in LOG_ALARMS:
                if alarm in text:
                    line = next(l for l in text.splitlines() if alarm in l)
                    problems.append(("crash", f"{name}: hostdevd log: {line.strip()}"))
                    break
            if vm.daemon is not None and vm.daemon.poll() is not None and not vm.expect_exit:
                problems.append(("crash", f"{name}: hostdevd exited unexpectedly with "
                                          f"status {vm.daemon.poll()}"))
            if vm.expect_exit and vm.daemon is not None and vm.daemon.poll() not in (None, 0) \
                    and vm.daemon.poll() != -signal.SIGKILL:
                problems.append(("crash", f"{name}: hostdevd exited with status "
                                          f"{vm.daemon.poll()} after its QEMU went away"))
        return problems

    def settle(self, timeout=30.0):
        """Wait (bounded) for the invariants to hold; Return: the problems left."""
        deadline = time.monotonic() + timeout
        while True:
            problems = self.check()
            permanent = [p for p in problems if p[0] in ("unbound-while-held", "two-vms",
                                                          "crash")]
            if not problems or permanent or time.monotonic() >= deadline:
                kstate = self.kcall({"op": "state"})
                self.seen_violations = len(kstate["violations"])
                return problems
            time.sleep(0.25)

    # -- teardown ---------------------------------------------------------

    def root_mounted(self):
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == self.root for line in f)

    def close(self, keep=False):
        if self.kernel is not None:
            try:
                self.kcall({"op": "clear-faults"})
                self.kcall({"op": "release-all"})
            except (OSError, EOFError, ValueError):
                pass
        for vm in self.vms.values():
            if vm.control:
                vm.control.close()
        for process in reversed(self.processes):
            if process is self.kernel_proc or process.poll() is not None:
                continue
            try:
                process.kill()
            except OSError:
                pass
        for process in self.processes:
            if process is self.kernel_proc:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.kernel is not None:
            self.kernel.close()
        if self.kernel_proc is not None and self.kernel_proc.poll() is None:
            self.kernel_proc.terminate()
            try:
                self.kernel_proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.mounted:
            # a dead or hung server leaves its mount behind (and ismount() cannot
            # even stat it): abort the connection, then detach the mount
            if self.fuse_conn is not None and self.root_mounted():
                try:
                    with open(f"/sys/fs/fuse/connections/{self.fuse_conn}/abort", "w") as f:
                        f.write("1")
                except OSError:
                    pass
            if self.root_mounted():
                subprocess.run(["umount", "-l", self.root], capture_output=True)
        if self.kernel_proc is not None and self.kernel_proc.poll() is None:
            self.kernel_proc.kill()
            self.kernel_proc.wait()
        for process in self.processes:     # anything stuck on the mount is free now
            if process.poll() is None:
                try:
                    process.kill()
                    process.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
