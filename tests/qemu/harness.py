# SPDX-License-Identifier: GPL-2.0-or-later
"""Test harness: a real QEMU, a real hostdevd, and hostdevctl driven as a user would.

Every process started here is tracked by PID and stopped in tearDown, also
when a test fails.  QEMU gets two QMP sockets: one for hostdevd and one for
the test itself, so outcomes are checked independently of hostdevd.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

HOSTDEVD = os.environ.get("HOSTDEVD", "hostdevd")
HOSTDEVCTL = os.environ.get("HOSTDEVCTL", "hostdevctl")
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
QEMU_S390X = os.environ.get("QEMU_S390X", "qemu-system-s390x")
FIXTURES = os.environ.get("HOSTDEVD_FIXTURES",
                          os.path.join(os.path.dirname(__file__), "..", "fixtures"))
SANDBOX = os.environ.get("HOSTDEVD_TEST_SANDBOX", "off")


def dry_run_qmp(stdout):
    """The QMP commands of `hostdevctl attach-device --dry-run`'s plan, in order."""
    return [json.loads(line) for line in stdout.splitlines() if not line.startswith("#")]


def dry_run_steps(stdout):
    """The step names of a dry run's plan, in order ("# step: what" lines)."""
    return [line[2:].split(":", 1)[0] for line in stdout.splitlines() if line.startswith("# ")]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def read_json_files(directory, wanted):
    """(name, parsed JSON) of each file of @directory whose name @wanted accepts, in name
    order.  hostdevd writes and removes these files while a test looks: one removed
    between the listing and the reading is no longer there, not an error."""
    found = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if not wanted(name):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                found.append((name, json.load(f)))
        except FileNotFoundError:
            pass
    return found


class Qmp:
    """The test's own QMP connection: synchronous, events kept in a list."""

    def __init__(self, path, timeout=30):
        self.sock = wait_for(lambda: self._connect(path, timeout), timeout, f"QMP socket {path}")
        self.file = self.sock.makefile("rwb")
        self.events = []
        greeting = self._read()
        assert "QMP" in greeting, greeting
        self.command("qmp_capabilities")

    @staticmethod
    def _connect(path, timeout):
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
            raise EOFError("QEMU closed the test's QMP connection")
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
            raise AssertionError(f"QMP {name} failed: {reply['error']}")
        return reply["return"]

    def peripherals(self):
        """{id: qom type} of QEMU's user-created devices."""
        return {e["name"]: e["type"] for e in self.ok("qom-list", path="/machine/peripheral")
                if e["type"].startswith("child<")}

    def wait_event(self, name, timeout=10, **match):
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["event"] == name and all(event.get("data", {}).get(k) == v
                                                  for k, v in match.items()):
                    self.events.remove(event)
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {name} {match} within {timeout}s")
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


class ControlClient:
    """A raw client of hostdevd's control socket, for what hostdevctl cannot send."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.greeting = self.read()

    def read(self):
        line = self.file.readline()
        if not line:
            raise EOFError("hostdevd closed the control connection")
        return json.loads(line)

    def send_raw(self, data):
        self.file.write(data)
        self.file.flush()

    def reply(self):
        while True:
            message = self.read()
            if "event" not in message:
                return message

    def execute(self, command, arguments=None, id=1):
        message = {"execute": command, "id": id}
        if arguments is not None:
            message["arguments"] = arguments
        self.send_raw(json.dumps(message).encode() + b"\n")
        return self.reply()

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


class HostdevdTestCase(unittest.TestCase):
    """Starts QEMU (paused, TCG, q35 with xHCI and spare root ports) and hostdevd."""

    vm = "testvm"
    host_root = None       # a fixture tree for --host-root, or None for the real host
    qemu_extra = []
    qemu_binary = QEMU
    machine = "q35"        # q35 gets a qemu-xhci "usb" and pcie-root-ports pci.1..pci.4
    hostdevd_prefix = []   # a command that execs hostdevd (same process), e.g. in a namespace
    # --optional-usb: "qemu" gives an absent startupPolicy='optional' USB device to
    # QEMU by vendorid/productid, the cheap way most tests get a real usb-host device
    # without USB hardware; None: hostdevd's default (it waits for the device itself)
    optional_usb = "qemu"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hostdevd-test-")
        self.processes = []
        self.addCleanup(self._cleanup)
        self.qemu = self.start_qemu()
        if self.qemu:
            self.qmp = Qmp(self.qmp_test_path)
            self.addCleanup(self.qmp.close)
        self.daemon = self.start_hostdevd()

    # -- processes --------------------------------------------------------

    def spawn(self, argv, **kwargs):
        process = subprocess.Popen(argv, **kwargs)
        self.processes.append(process)
        return process

    @staticmethod
    def stop(process):
        """SIGTERM @process, SIGKILL it if it is still there 10 s later; reaped either way."""
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _cleanup(self):
        for process in reversed(self.processes):
            self.stop(process)
        for name in ("hostdevd.log", "qemu.log"):
            path = os.path.join(self.tmp, name)
            if os.path.exists(path) and os.environ.get("HOSTDEVD_TEST_VERBOSE"):
                sys.stderr.write(f"--- {name}\n{open(path).read()}\n")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_qemu(self):
        self.qmp_path = os.path.join(self.tmp, "qmp-hostdevd.sock")
        self.qmp_test_path = os.path.join(self.tmp, "qmp-test.sock")
        argv = [self.qemu_binary, "-machine", f"{self.machine},accel=tcg", "-m", "128",
                "-nodefaults", "-display", "none", "-S",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-qmp", f"unix:{self.qmp_test_path},server=on,wait=off"]
        if self.machine == "q35":
            argv += ["-device", "qemu-xhci,id=usb"]
            for index in range(1, 5):
                argv += ["-device", f"pcie-root-port,id=pci.{index},chassis={index}"]
        argv += self.qemu_extra
        log = open(os.path.join(self.tmp, "qemu.log"), "wb")
        return self.spawn(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start_hostdevd(self, extra=(), wait=True, env=None):
        self.socket_path = os.path.join(self.tmp, f"{self.vm}.sock")
        argv = [*self.hostdevd_prefix, HOSTDEVD, "--vm", self.vm, "--qmp", self.qmp_path,
                "--socket", self.socket_path, "--state-dir", os.path.join(self.tmp, "state"),
                "--sandbox", SANDBOX, "--qmp-wait", "20"]
        if self.host_root:
            argv += ["--host-root", self.host_root]
        if self.optional_usb:
            argv += ["--optional-usb", self.optional_usb]
        argv += list(extra)
        self.daemon_log = os.path.join(self.tmp, "hostdevd.log")
        log = open(self.daemon_log, "ab")
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.tmp, **(env or {}))
        process = self.spawn(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            wait_for(lambda: self._answers(self.socket_path) or process.poll() is not None,
                     30, "hostdevd's control socket")
            self.assertIsNone(process.poll(), f"hostdevd exited early:\n{self.log()}")
        return process

    @staticmethod
    def _answers(path):
        """A socket file may be left by a killed hostdevd: wait for one that accepts."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def log(self):
        with open(self.daemon_log, errors="replace") as f:
            return f.read()

    # -- driving hostdevd -------------------------------------------------

    def ctl(self, *args, input=None, check=None, timeout=120):
        """Run hostdevctl; check=True/False asserts success/failure."""
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.tmp)
        result = subprocess.run([HOSTDEVCTL, *args], input=input, capture_output=True,
                                text=True, timeout=timeout, env=env)
        if check is True:
            self.assertEqual(result.returncode, 0,
                             f"hostdevctl {args} failed: {result.stderr}\n{self.log()}")
        elif check is False:
            self.assertNotEqual(result.returncode, 0, f"hostdevctl {args} succeeded: {result.stdout}")
        return result

    def settled(self):
        """One request answered, when hostdevd runs: an attach's "attached" record is written
        right after its answer, before hostdevd reads the next request."""
        if getattr(self, "daemon", None) is not None and self.daemon.poll() is None:
            self.ctl("list", self.vm)

    def journal(self):
        """(alias, state) of every device in hostdevd's journal (STATE/VM.journal/ALIAS.json)."""
        self.settled()
        directory = os.path.join(self.tmp, "state", f"{self.vm}.journal")
        entries = []
        for _, entry in read_json_files(directory, lambda name: name.endswith(".json")):
            entries.append((entry["alias"], entry["state"]))
        return entries

    def record(self, alias):
        """The journal record of @alias (STATE/VM.journal/ALIAS.json), parsed."""
        self.settled()
        with open(os.path.join(self.tmp, "state", f"{self.vm}.journal", f"{alias}.json")) as f:
            return json.load(f)

    def claims(self):
        """The host-wide claims held in this test's runtime directory."""
        directory = os.path.join(self.tmp, "claims")
        return sorted(name for name in os.listdir(directory) if not name.startswith(".")) \
            if os.path.isdir(directory) else []

    def write_xml(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def control(self):
        client = ControlClient(self.socket_path)
        self.addCleanup(client.close)
        return client


def add_usb_port_disable(destination):
    """Every USB hub port of the snapshot gets the "disable" attribute Linux
    6.1 has (the snapshot left write-mostly attributes out): hostdevd writes
    it to revoke a released device's descriptors (issue 11, finding 6)."""
    for top, dirs, _ in os.walk(os.path.join(destination, "sys", "devices")):
        for name in dirs:
            if "-port" in name and name.rsplit("-port", 1)[1].isdigit():
                with open(os.path.join(top, name, "disable"), "w") as f:
                    f.write("0\n")


def extract_fixture(destination, viable_group_12=False):
    """The real sysfs snapshot of a Linux 6.1 guest with an emulated IOMMU.

    In it 0000:05:00.1 is on vfio-pci but its IOMMU group 12 is not viable:
    0000:05:00.0 is still on e1000e.  @viable_group_12 unbinds 0000:05:00.0
    (as `echo 0000:05:00.0 > .../unbind` would), so every host check of
    0000:05:00.1 passes.
    """
    with tarfile.open(os.path.join(FIXTURES, "sysfs-linux-6.1-q35-viommu.tar.gz")) as tar:
        tar.extractall(destination)
    os.makedirs(os.path.join(destination, "dev", "vfio"), exist_ok=True)
    open(os.path.join(destination, "dev", "vfio", "12"), "w").close()
    add_usb_port_disable(destination)
    # the host's memory bounds the guest RAM QEMU may claim to have (memlock)
    os.makedirs(os.path.join(destination, "proc"), exist_ok=True)
    shutil.copyfile("/proc/meminfo", os.path.join(destination, "proc", "meminfo"))
    if viable_group_12:
        os.unlink(os.path.join(destination, "sys", "bus", "pci", "devices", "0000:05:00.0", "driver"))
    return destination


class TapResult(unittest.TestResult):
    """unittest results as TAP, which meson reads."""

    def __init__(self):
        super().__init__()
        self.number = 0
        self._failed_subtests = set()

    def _line(self, ok, test, note=""):
        self.number += 1
        print(f"{'ok' if ok else 'not ok'} {self.number} - {test.id().split('.', 1)[-1]}{note}",
              flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        self._diag(self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        self._diag(self.errors[-1][1])

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._failed_subtests.add(test.id())
            self._diag(f"subtest {subtest} failed:\n" + self._exc_info_to_string(err, test))

    def stopTest(self, test):
        super().stopTest(test)
        # a test whose subtests failed gets no addFailure of its own
        if test.id() in self._failed_subtests:
            self._failed_subtests.discard(test.id())
            self._line(False, test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, f" # SKIP {reason}")

    @staticmethod
    def _diag(text):
        for line in text.splitlines():
            print(f"# {line}", flush=True)


def main():
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(sys.modules["__main__"])
    if len(sys.argv) > 1:
        suite = unittest.TestSuite(t for t in _flatten(suite)
                                   if any(name in t.id() for name in sys.argv[1:]))
    print(f"1..{suite.countTestCases()}", flush=True)
    result = TapResult()
    suite.run(result)
    sys.exit(0 if result.wasSuccessful() else 1)


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item
