# SPDX-License-Identifier: GPL-2.0-or-later
"""What the scenarios use inside L1: the kernel's sysfs, L2 QEMUs, hostdevd.

This runs in L1's chroot (the host's root, read-only, with fresh /tmp, /run,
/dev, /proc and /sys): the host's python3, QEMU and the freshly built
hostdevd/hostdevctl against Debian's real kernel with an emulated IOMMU.

Every process is tracked by PID and stopped when the scenario ends, also on
failure; every wait is bounded.  Outcomes are checked independently of
hostdevd: in L1's sysfs and through a second QMP connection to each L2.
"""
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import xml.etree.ElementTree as ET

SHARE = "/tmp/w"
LOGS = os.path.join(SHARE, "logs")
RESULTS = os.path.join(SHARE, "results")
POOL = "/tmp/pool"
SYS_PCI = "/sys/bus/pci/devices"
SYS_USB = "/sys/bus/usb/devices"


class Failure(Exception):
    """A scenario's check failed; the message is what the TAP line shows."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def wait_for(predicate, timeout, what, interval=0.05):
    """The predicate's first true value, or Failure after @timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def load_config():
    with open(os.path.join(SHARE, "config.json")) as f:
        return json.load(f)


# -- L1's kernel, through sysfs ---------------------------------------------

def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def link_name(path):
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def pci_driver(bdf):
    """The driver bound to @bdf, or None when unbound."""
    return link_name(f"{SYS_PCI}/{bdf}/driver")


def pci_override(bdf):
    """driver_override of @bdf, '' when unset (the kernel shows '(null)')."""
    value = read(f"{SYS_PCI}/{bdf}/driver_override", "")
    return "" if value == "(null)" else value


def pci_exists(bdf):
    return os.path.isdir(f"{SYS_PCI}/{bdf}")


def pci_netdevs(bdf):
    try:
        return sorted(os.listdir(f"{SYS_PCI}/{bdf}/net"))
    except OSError:
        return []


def pci_group(bdf):
    name = link_name(f"{SYS_PCI}/{bdf}/iommu_group")
    return int(name) if name is not None else None


def group_members(group):
    try:
        return sorted(os.listdir(f"/sys/kernel/iommu_groups/{group}/devices"))
    except OSError:
        return []


def pci_ids(bdf):
    return (read(f"{SYS_PCI}/{bdf}/vendor"), read(f"{SYS_PCI}/{bdf}/device"))


def all_pci():
    return sorted(os.listdir(SYS_PCI))


def sysfs_write(path, value, timeout=15):
    """Write @value to a sysfs file in a child process, so that a write the
    kernel blocks (unbinding a vfio-pci device QEMU still holds) cannot hang
    the caller; Failure if it did not finish in time."""
    try:
        result = subprocess.run(["sh", "-c", 'printf "%s\\n" "$1" > "$2"', "sh", value, path],
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure(f"writing '{value}' to {path} blocked for more than {timeout} s")
    if result.returncode != 0:
        raise Failure(f"writing '{value}' to {path} failed: {result.stderr.strip()}")


def pci_bind_by_hand(bdf, driver):
    """The sysfs sequence an administrator uses: override, unbind, probe.
    @driver None means back to the kernel's own choice."""
    sysfs_write(f"{SYS_PCI}/{bdf}/driver_override", driver or "")
    if pci_driver(bdf):
        sysfs_write(f"{SYS_PCI}/{bdf}/driver/unbind", bdf)
    sysfs_write("/sys/bus/pci/drivers_probe", bdf)


def dump_blocked_tasks():
    """Ask the kernel to log the stacks of tasks in uninterruptible sleep
    (sysrq w) now, while something hangs; the runner saves the kernel log
    of each scenario next to its steps."""
    try:
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("w")
    except OSError:
        pass


def vfio_node_stat(group):
    try:
        st = os.stat(f"/dev/vfio/{group}")
    except OSError:
        return None
    return {"uid": st.st_uid, "gid": st.st_gid, "mode": stat.S_IMODE(st.st_mode)}


def memlock_limits(pid):
    """(soft, hard) RLIMIT_MEMLOCK of @pid in bytes; None means unlimited."""
    text = read(f"/proc/{pid}/limits", "")
    match = re.search(r"^Max locked memory\s+(\S+)\s+(\S+)", text, re.M)
    if not match:
        raise Failure(f"cannot read the memlock limit of PID {pid}")
    return tuple(None if v == "unlimited" else int(v) for v in match.groups())


def usb_find(vendor, product):
    """sysfs names ('1-1') of the USB devices with these ids."""
    found = []
    for name in sorted(os.listdir(SYS_USB)):
        if ":" in name:
            continue
        if (read(f"{SYS_USB}/{name}/idVendor"), read(f"{SYS_USB}/{name}/idProduct")) == (vendor, product):
            found.append(name)
    return found


def usb_interface_drivers(name):
    """{interface: driver or None} of USB device @name."""
    drivers = {}
    for entry in sorted(os.listdir(SYS_USB)):
        if entry.startswith(name + ":"):
            drivers[entry] = link_name(f"{SYS_USB}/{entry}/driver")
    return drivers


def usb_node(name):
    bus = int(read(f"{SYS_USB}/{name}/busnum"))
    dev = int(read(f"{SYS_USB}/{name}/devnum"))
    return bus, dev, f"/dev/bus/usb/{bus:03d}/{dev:03d}"


def host_snapshot():
    """Everything a scenario might leave changed on L1's host side."""
    snap = {"pci": {}, "usb": {}, "vfio": {}}
    for bdf in all_pci():
        snap["pci"][bdf] = {"driver": pci_driver(bdf), "override": pci_override(bdf),
                            "numvfs": read(f"{SYS_PCI}/{bdf}/sriov_numvfs")}
    for name in sorted(os.listdir(SYS_USB)):
        if ":" in name:
            snap["usb"][name] = link_name(f"{SYS_USB}/{name}/driver")
    try:
        for group in sorted(os.listdir("/dev/vfio")):
            if group != "vfio":
                snap["vfio"][group] = vfio_node_stat(group)
    except OSError:
        pass
    return snap


# -- QMP, the test's own connection to an L2 --------------------------------

class Qmp:
    """A synchronous QMP client; events are kept until waited for."""

    def __init__(self, path, timeout=30):
        # the socket file appears at QEMU's bind(), a connection is taken only
        # after its listen(): on a slow L1 a connect can fall in between
        self.sock = wait_for(lambda: self._connect(path, timeout), timeout, f"QMP socket {path}")
        self.file = self.sock.makefile("rwb")
        self.events = []
        greeting = self._read()
        check("QMP" in greeting, f"not a QMP greeting: {greeting}")
        self.ok("qmp_capabilities")

    @staticmethod
    def _connect(path, timeout):
        """A connected socket, or None while QEMU does not listen yet."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return None

    def _read(self):
        line = self.file.readline()
        if not line:
            raise Failure("QEMU closed the test's QMP connection")
        return json.loads(line)

    def command(self, name, **arguments):
        message = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            return reply

    def ok(self, name, **arguments):
        reply = self.command(name, **arguments)
        if "error" in reply:
            raise Failure(f"QMP {name} {arguments} failed: {reply['error'].get('desc')}")
        return reply["return"]

    def peripherals(self):
        """{id: type} of the user-created devices QEMU has."""
        return {e["name"]: e["type"][len("child<"):-1]
                for e in self.ok("qom-list", path="/machine/peripheral")
                if e["type"].startswith("child<")}

    def vfio_devices(self):
        """{id: host BDF} of the vfio-pci devices QEMU has."""
        found = {}
        for name, kind in self.peripherals().items():
            if kind != "vfio-pci":
                continue
            reply = self.command("qom-get", path=f"/machine/peripheral/{name}", property="host")
            # listed a moment ago, gone since (a guest's unplug finishing): not there any more
            if reply.get("error", {}).get("class") == "DeviceNotFound":
                continue
            if "error" in reply:
                raise Failure(f"QMP qom-get of {name}'s host failed: {reply['error'].get('desc')}")
            found[name] = reply["return"]
        return found

    def usb_host_devices(self):
        return {name: kind for name, kind in self.peripherals().items() if kind == "usb-host"}

    def prop(self, device, name):
        return self.ok("qom-get", path=f"/machine/peripheral/{device}", property=name)

    def wait_event(self, name, timeout, **match):
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["event"] == name and all(event.get("data", {}).get(k) == v
                                                  for k, v in match.items()):
                    self.events.remove(event)
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"no QMP event {name} {match} within {timeout:g} s")
            self.sock.settimeout(remaining)
            try:
                self.events.append(self._read())
            except socket.timeout:
                pass
            finally:
                self.sock.settimeout(30)

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


# -- the scenario's world ---------------------------------------------------

class L2:
    """A second-level QEMU inside L1: q35, four spare root ports pci.1..4, an
    xHCI controller 'usb', and two QMP sockets (hostdevd's and the test's).
    Booted ones run the tiny guest; the others stay paused with no OS."""

    def __init__(self, name, directory, pid, process, serial, ram):
        self.name = name
        self.dir = directory
        self.pid = pid
        self.process = process          # None when the runner owns it
        self.hostdevd_qmp = os.path.join(directory, f"{name}.hd.qmp")
        self.test_qmp = os.path.join(directory, f"{name}.test.qmp")
        self.serial = serial
        self.ram = ram
        self.qmp = None

    @staticmethod
    def argv(config, name, directory, booted, ram, user=None, memlock=None, running=False):
        """QEMU's command line; without @booted the VM is paused (-S) unless
        @running (then its firmware runs and finds nothing to boot)."""
        qemu = [config["qemu"], "-machine", "q35,accel=tcg", "-m", str(ram),
                "-nodefaults", "-no-user-config", "-display", "none",
                "-qmp", f"unix:{directory}/{name}.hd.qmp,server=on,wait=off",
                "-qmp", f"unix:{directory}/{name}.test.qmp,server=on,wait=off",
                "-device", "qemu-xhci,id=usb"]
        for index in range(1, 5):
            qemu += ["-device", f"pcie-root-port,id=pci.{index},chassis={index}"]
        if booted:
            qemu += ["-kernel", config["l2_kernel"], "-initrd", config["l2_initrd"],
                     "-append", "console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check",
                     "-serial", f"file:{directory}/{name}.serial", "-no-reboot"]
        elif not running:
            qemu += ["-S"]
        prefix = []
        if memlock is not None:
            prefix += ["prlimit", f"--memlock={memlock}:{memlock}"]
        if user is not None:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        return prefix + qemu

    def connect(self):
        if self.qmp is None:
            self.qmp = Qmp(self.test_qmp)
        return self.qmp

    def alive(self):
        if self.process is not None:
            return self.process.poll() is None
        status = read(f"/proc/{self.pid}/stat", "")
        return bool(status) and status.split(") ", 1)[-1][:1] not in ("Z", "X")

    def serial_text(self):
        return read(self.serial, "") if self.serial else ""

    def wait_booted(self, timeout, qemu_log=None):
        wait_for(lambda: "L2 READY" in self.serial_text() or not self.alive(), timeout,
                 f"L2 guest {self.name} to boot", interval=0.5)
        check(self.alive(), f"L2 {self.name} exited while booting; QEMU said: "
              f"{(read(qemu_log, '') if qemu_log else '')[-1500:]}\nconsole: {self.serial_text()[-1500:]}")

    def guest_pci(self):
        """The PCI functions the L2 guest OS last reported (on a whole line: the
        console may be read while the guest is still writing the last one)."""
        try:
            with open(self.serial, errors="replace") as f:
                text = f.read()     # not read(): it strips the last line's newline
        except (OSError, TypeError):
            text = ""
        complete = text[:text.rfind("\n") + 1]
        lines = [l for l in complete.splitlines() if l.startswith("L2 PCI:")]
        return lines[-1][len("L2 PCI:"):].split() if lines else None

    def quit(self, timeout=30):
        """Ask QEMU to quit through the test's QMP and wait for the process to end."""
        try:
            self.connect().command("quit")
        except (Failure, OSError):
            pass
        try:
            wait_for(lambda: not self.alive(), timeout, f"L2 {self.name} to exit")
        except Failure:
            dump_blocked_tasks()
            raise Failure(f"L2 {self.name} (PID {self.pid}) did not exit within {timeout} s of 'quit'; "
                          "the stacks of blocked tasks are in the scenario's kernel log")


class Hostdevd:
    def __init__(self, ctx, vm, process, log, socket_path):
        self.ctx = ctx
        self.vm = vm
        self.process = process
        self.log_path = log
        self.socket = socket_path

    def log(self):
        return read(self.log_path, "")

    def log_of_this_run(self):
        """What this process logged (the file gets one '---- argv' line per start)."""
        text = self.log()
        marker = text.rfind("---- ")
        return text[marker:] if marker >= 0 else text

    def wait_exit(self, timeout):
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"hostdevd for {self.vm} did not exit within {timeout} s")

    def kill(self, sig=signal.SIGKILL):
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=10)

    def signal(self, sig):
        """Send @sig and return at once (the caller waits with wait_exit)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def alive(self):
        return self.process.poll() is None


class Ctx:
    """One scenario's processes, files and log; cleaned up on every exit."""

    def __init__(self, number, config):
        self.n = number
        self.config = config
        self.dir = f"/tmp/s{number}"
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o777)        # QEMU may run as another user
        self.runtime = os.path.join(self.dir, "run")
        os.makedirs(self.runtime, exist_ok=True)
        self.processes = []
        self.l2s = []
        self.ctl_prefix = []            # e.g. nsenter into the PID namespace of a hostdevd
        self.start = time.monotonic()
        self.log_file = open(os.path.join(LOGS, f"s{number}.log"), "a")
        self.failures = []

    # -- logging ---
    def log(self, message):
        self.log_file.write(f"[{time.monotonic() - self.start:7.2f}] {message}\n")
        self.log_file.flush()

    def step(self, message):
        self.log(f"== {message}")

    def expect(self, condition, message):
        """A check whose failure does not stop the scenario: the later steps
        still run and report, and the scenario fails at its end."""
        if not condition:
            self.failures.append(message)
            self.log("EXPECTATION FAILED: " + message)
        return bool(condition)

    # -- processes ---
    def spawn(self, argv, **kwargs):
        self.log("spawn: " + " ".join(argv))
        process = subprocess.Popen(argv, **kwargs)
        self.processes.append(process)
        return process

    def cleanup(self):
        for l2 in self.l2s:
            if l2.qmp:
                l2.qmp.close()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        for l2 in self.l2s:
            if l2.process is not None:
                self._save(l2.serial, f"s{self.n}-{l2.name}.serial")
        self.log_file.close()

    def _save(self, path, name):
        if path and os.path.exists(path):
            shutil.copy(path, os.path.join(LOGS, name))

    # -- L2 ---
    def paused_l2(self, name, ram=64, user=None, memlock=None, running=False):
        """A paused L2 (-S, no OS), its test QMP connected; @running: not
        paused (its firmware runs, with nothing to boot).  The same @name
        again is a new QEMU on the same QMP socket paths."""
        directory = os.path.join(self.dir, name)
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o777)
        log = open(os.path.join(LOGS, f"s{self.n}-{name}.qemu.log"), "ab")
        for stale in (f"{name}.hd.qmp", f"{name}.test.qmp"):
            if os.path.exists(os.path.join(directory, stale)):
                os.unlink(os.path.join(directory, stale))    # left by an earlier QEMU
        argv = L2.argv(self.config, name, directory, False, ram, user, memlock, running)
        process = self.spawn(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        l2 = L2(name, directory, process.pid, process, None, ram)
        self.l2s.append(l2)
        l2.connect()
        return l2

    def booted_l2(self, timeout=400):
        """The booted L2 guest this scenario shares (see GUEST_OF), which the
        runner started early because booting takes a minute or more under
        nested TCG; a new one if the runner has none."""
        guest = GUEST_OF.get(self.n)
        check(guest is not None, f"scenario {self.n} has no booted guest in GUEST_OF")
        spec = BOOTED_GUESTS[guest]
        info = pool_info(guest)
        if info is not None:
            l2 = L2(guest, info["dir"], info["pid"], None, info["serial"], spec["ram"])
            self.log(f"using the runner's booted L2 {guest} (PID {l2.pid})")
        else:
            l2 = start_pool_l2(self.config, guest, self.spawn, f"s{self.n}-")
            self.log(f"booting an L2 {guest} of its own (PID {l2.pid})")
        self.l2s.append(l2)
        t0 = time.monotonic()
        qemu_log = os.path.join(LOGS, f"{guest}.qemu.log" if info else f"s{self.n}-{guest}.qemu.log")
        l2.wait_booted(timeout, qemu_log)
        self.log(f"L2 {guest} booted (waited {time.monotonic() - t0:.1f} s here)")
        l2.connect()
        return l2

    # -- hostdevd ---
    def env(self):
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.runtime)
        return env

    def start_hostdevd(self, l2, extra=(), vm=None, wait_socket=True, qmp_wait=30, env=None):
        """hostdevd for @l2's QMP socket (@env: more environment variables);
        Return: once its control socket is there, or at once when not
        @wait_socket (QEMU may not run yet)."""
        vm = vm or l2.name
        state = os.path.join(self.dir, f"state-{vm}")
        socket_path = os.path.join(self.runtime, f"{vm}.sock")
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        argv = [self.config["hostdevd"], "--vm", vm, "--qmp", l2.hostdevd_qmp,
                "--state-dir", state, "--sandbox", self.config["sandbox"],
                "--qmp-wait", str(qmp_wait), "-v", *extra]
        log_path = os.path.join(LOGS, f"s{self.n}-hostdevd-{vm}.log")
        log = open(log_path, "ab")
        log.write(f"---- {' '.join(argv)}\n".encode())
        log.flush()
        process = self.spawn(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=dict(self.env(), **(env or {})))
        daemon = Hostdevd(self, vm, process, log_path, socket_path)
        if not wait_socket:
            return daemon
        wait_for(lambda: os.path.exists(socket_path) or process.poll() is not None, 60,
                 f"hostdevd's control socket for {vm}")
        check(process.poll() is None,
              f"hostdevd for {vm} exited early (status {process.returncode}); the end of its log:\n"
              + "\n".join(daemon.log().splitlines()[-12:]))
        return daemon

    # -- hostdevctl, the only way scenarios drive hostdevd ---
    def ctl(self, *args, timeout=180, check_ok=None, what=None):
        argv = [*self.ctl_prefix, self.config["hostdevctl"], *args]
        self.log("$ hostdevctl " + " ".join(args))
        t0 = time.monotonic()
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                    env=self.env(), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Failure(f"hostdevctl {' '.join(args)} did not finish within {timeout} s")
        self.log(f"  exit {result.returncode} after {time.monotonic() - t0:.2f} s")
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text.strip():
                self.log(f"  {name}: " + text.rstrip().replace("\n", "\n          "))
        label = what or f"hostdevctl {' '.join(args)}"
        if result.returncode == 2:
            raise Failure(f"{label}: hostdevctl does not know this command or option "
                          f"(exit 2, not implemented yet?): {result.stderr.strip()[:400]}")
        if check_ok is True and result.returncode != 0:
            raise Failure(f"{label} failed (exit {result.returncode}): {result.stderr.strip()[:600]}")
        if check_ok is False and result.returncode == 0:
            raise Failure(f"{label} succeeded but must fail: {result.stdout.strip()[:600]}")
        return result

    def ctl_json(self, *args, **kwargs):
        """hostdevctl --json: (exit status, the last JSON object printed)."""
        result = self.ctl("--json", *args, **kwargs)
        reply = None
        for line in result.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    reply = json.loads(line)
                except ValueError:
                    pass
        return result, reply

    def file(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def private_file(self, name, text):
        """A file only root can change, in a directory only root can change
        (hostdevd refuses a policy file others could alter)."""
        directory = os.path.join(self.dir, "etc")
        os.makedirs(directory, mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def dumpxml(self, vm):
        result = self.ctl("dumpxml", vm, check_ok=True)
        try:
            return ET.fromstring(result.stdout)
        except ET.ParseError as e:
            raise Failure(f"hostdevctl dumpxml {vm} printed no valid XML ({e}): {result.stdout[:300]}")

    def listed(self, vm):
        """hostdevctl --json list: [{alias, type, source, state, xml}]"""
        result, reply = self.ctl_json("list", vm, check_ok=True)
        check(reply is not None and isinstance(reply.get("return"), list),
              f"hostdevctl --json list {vm} printed no list: {result.stdout[:300]}")
        return reply["return"]

    def dmesg_tail(self, lines=30):
        result = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10)
        return "\n".join(result.stdout.splitlines()[-lines:])


def pci_xml(bdf, managed=True):
    domain, bus, rest = bdf.split(":")
    slot, function = rest.split(".")
    return (f"<hostdev mode='subsystem' type='pci' managed='{'yes' if managed else 'no'}'>\n"
            f"  <source>\n"
            f"    <address domain='0x{domain}' bus='0x{bus}' slot='0x{slot}' function='0x{function}'/>\n"
            f"  </source>\n"
            f"</hostdev>\n")


def usb_xml(vendor, product, port=None):
    """A USB hostdev by vendor/product and, with @port, by port path too."""
    selector = ("" if port is None else
                f"    <hostdevd:device xmlns:hostdevd='urn:hostdevd:hostdev:1' port='{port}'/>\n")
    return ("<hostdev mode='subsystem' type='usb' managed='yes'>\n"
            "  <source>\n"
            f"    <vendor id='0x{vendor}'/>\n"
            f"    <product id='0x{product}'/>\n"
            f"{selector}"
            "  </source>\n"
            "</hostdev>\n")


def find_hostdev(devices_xml, bdf):
    """The <hostdev> of live XML whose source is PCI device @bdf."""
    domain, bus, rest = bdf.split(":")
    slot, function = rest.split(".")
    want = (int(domain, 16), int(bus, 16), int(slot, 16), int(function, 16))
    for hostdev in devices_xml.iter("hostdev"):
        address = hostdev.find("source/address")
        if address is None:
            continue
        try:
            got = tuple(int(address.get(k, "0"), 0) for k in ("domain", "bus", "slot", "function"))
        except ValueError:
            continue
        if got == want:
            return hostdev
    return None


# -- booted guests started early by the runner ------------------------------

# Guests with an OS, for the scenarios that need one (a PCI unplug needs the
# guest's cooperation).  Each takes a minute or more of L1's CPU to boot, so
# scenarios share them, one after the other: the runner boots them at its
# start, runs the scenarios that need none meanwhile, and between two users
# of a guest unplugs whatever the first one left in it.
BOOTED_GUESTS = {
    "l2root": {"ram": 128},
    # QEMU as an unprivileged user with 64 KiB of locked memory, as a
    # distribution's QEMU runs: hostdevd must chown /dev/vfio/N and raise
    # the limit itself.
    "l2nobody": {"ram": 128, "user": 65534, "memlock": 65536},
}
GUEST_OF = {1: "l2root", 5: "l2root", 3: "l2nobody", 12: "l2root", 14: "l2root", 16: "l2root",
            21: "l2root"}


def pool_info(guest):
    """The runner's booted @guest: {dir, pid, serial}, or None."""
    try:
        with open(os.path.join(POOL, f"{guest}.json")) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    stat_line = read(f"/proc/{info['pid']}/stat", "")
    if not stat_line or stat_line.split(") ", 1)[-1][:1] in ("Z", "X"):
        return None
    return info


def start_pool_l2(config, guest, spawn, log_prefix=""):
    spec = BOOTED_GUESTS[guest]
    directory = os.path.join(POOL, guest)
    os.makedirs(directory, exist_ok=True)
    os.chmod(POOL, 0o755)
    os.chmod(directory, 0o777)
    serial = os.path.join(directory, f"{guest}.serial")
    if os.path.exists(serial):
        os.unlink(serial)
    argv = L2.argv(config, guest, directory, True, spec["ram"], spec.get("user"), spec.get("memlock"))
    log = open(os.path.join(LOGS, f"{log_prefix}{guest}.qemu.log"), "ab")
    process = spawn(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return L2(guest, directory, process.pid, process, serial, spec["ram"])


def guest_ready(serial):
    return "L2 READY" in (read(serial, "") or "")


def scrub_guest(l2, timeout=60):
    """Unplug every host device a scenario left in a shared booted guest.
    Return: what was left, or None when the guest is unusable."""
    try:
        qmp = Qmp(l2.test_qmp, timeout=10)
    except (Failure, OSError):
        return None
    try:
        left = {name: kind for name, kind in qmp.peripherals().items()
                if kind in ("vfio-pci", "usb-host")}
        for name in left:
            qmp.command("device_del", id=name)
        for name in left:
            qmp.wait_event("DEVICE_DELETED", timeout, device=name)
        return left
    except (Failure, OSError):
        return None
    finally:
        qmp.close()
