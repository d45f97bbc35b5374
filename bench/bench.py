#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hostdevd benchmarks: cost against raw QMP and libvirt, memory, start-up, scale.

Run through bench/run.sh.  Every figure is a ratio against a baseline measured
in the same run, interleaved operation by operation, so that a loaded machine
slows both sides alike; CPU cost is also given as callgrind instruction counts,
which do not depend on load at all.

Every process started here is tracked by PID and stopped on the way out, also
on failure or Ctrl-C.  Nothing listens on a network: Unix sockets only.
"""
import argparse
import datetime
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
VIRSH = shutil.which("virsh")
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)

# One USB configuration for every QEMU here, raw, hostdevd and libvirt alike:
# an xHCI with 15 USB 2 ports, three of them holding 8-port hubs, so 36 free
# ports take 32 devices.
USB_QEMU = ["-device", "qemu-xhci,id=usb,p2=15,p3=15",
            "-device", "usb-hub,id=hub1,bus=usb.0,port=13",
            "-device", "usb-hub,id=hub2,bus=usb.0,port=14",
            "-device", "usb-hub,id=hub3,bus=usb.0,port=15"]
USB_LIBVIRT = """<controller type='usb' index='0' model='qemu-xhci' ports='15'/>
    <hub type='usb'><address type='usb' bus='0' port='13'/></hub>
    <hub type='usb'><address type='usb' bus='0' port='14'/></hub>
    <hub type='usb'><address type='usb' bus='0' port='15'/></hub>"""

VENDOR, PRODUCT = 0x1d6b, 0x0104            # no host has it: startupPolicy='optional'
# Where hostdevd and libvirt put the first USB device of that layout (the lowest
# free port of the first controller); the trace step checks it.
USB_PLACE = ("usb.0", "1")
SCALE_VENDOR, SCALE_PRODUCT = 0x5a00, 0x0100  # + index, 32 distinct devices

MODES = {
    # cycles: interleaved attach+detach pairs; ctl: hostdevctl spawns; churn:
    # cycles between the two memory readings; scale, batch: rounds per device count
    "quick": dict(cycles=30, ctl=8, churn=100, scale={1: 8, 8: 2, 32: 1}, batch={4: 4, 8: 2},
                  startup=6,
                  callgrind=20, libvirt=15, libvirt_churn=50, virsh_cli=4),
    "full": dict(cycles=200, ctl=30, churn=1000, scale={1: 24, 8: 6, 32: 3}, batch={4: 12, 8: 6},
                 startup=20,
                 callgrind=100, libvirt=60, libvirt_churn=1000, virsh_cli=12),
}


def usb_xml(vendor, product):
    return f"""<hostdev mode='subsystem' type='usb' managed='yes'>
  <source startupPolicy='optional'>
    <vendor id='0x{vendor:04x}'/>
    <product id='0x{product:04x}'/>
  </source>
</hostdev>
"""


class BenchError(Exception):
    pass


def median(values):
    return statistics.median(values) if values else float("nan")


def ms(ns):
    return ns / 1e6


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise BenchError(f"timed out after {timeout}s waiting for {what}")


def proc_status(pid):
    """{'VmRSS': kB, 'RssAnon': kB} of a live process."""
    figures = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                figures[key] = int(value.split()[0])
    return figures


def cpu_ns(pid):
    """CPU time of every thread of @pid so far, from the scheduler (ns)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


class ServeClient:
    """ctl-client or raw-qmp in 'serve' mode: one operation per line, timed inside the C client."""

    def __init__(self, bench, argv, name):
        self.name = name
        self.process = bench.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True, bufsize=1)

    def op(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer.startswith("ok "):
            raise BenchError(f"{self.name}: '{line}' failed: {answer.strip() or 'no answer'}")
        fields = answer.split()
        return int(fields[1]), fields[2:]

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            except OSError:
                pass
            self.process.wait(timeout=10)


class QmpProxy:
    """Forwards one QMP connection and records the commands sent (the trace step only)."""

    def __init__(self, listen_path, qemu_path):
        self.commands = []
        self.device_add_places = []   # (bus, port) of each device_add
        self.qemu_path = qemu_path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(listen_path)
        self.server.listen(1)
        self.threads = []
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()

    def _accept(self):
        try:
            client, _ = self.server.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.qemu_path)
        for source, sink, record in ((client, upstream, True), (upstream, client, False)):
            thread = threading.Thread(target=self._pump, args=(source, sink, record), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _pump(self, source, sink, record):
        pending = b""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if record:
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        try:
                            message = json.loads(line)
                        except ValueError:
                            self.commands.append("?")
                            continue
                        self.commands.append(message.get("execute", "?"))
                        if message.get("execute") == "device_add":
                            arguments = message.get("arguments", {})
                            self.device_add_places.append((arguments.get("bus"),
                                                           arguments.get("port")))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.mode = MODES["quick" if args.quick else "full"]
        self.build = os.path.abspath(args.build)
        self.hostdevd = os.path.join(self.build, "broker", "hostdevd")
        self.hostdevctl = os.path.join(self.build, "broker", "hostdevctl")
        self.ctl_client = os.path.join(self.build, "bench", "ctl-client")
        self.raw_qmp = os.path.join(self.build, "bench", "raw-qmp")
        self.qmp_relay = os.path.join(self.build, "bench", "qmp-relay")
        self.tmp = tempfile.mkdtemp(prefix="hostdevd-bench-")
        # hostdevd's journal lives in /run/hostdevd by default, a tmpfs on systemd hosts:
        # keep it on a tmpfs here too, or every attach pays a disk fsync the default does not.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and not args.state_on_disk else None
        self.state_root = tempfile.mkdtemp(prefix="hostdevd-bench-state-", dir=shm or self.tmp)
        self.state_fs = subprocess.run(["stat", "-f", "-c", "%T", self.state_root],
                                       capture_output=True, text=True).stdout.strip()
        self.processes = []
        self.extra_pids = []          # processes started by others for us (libvirt's QEMU)
        self.results = {}
        self.notes = []
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_path = os.path.join(self.tmp, "notify.sock")
        self.notify.bind(self.notify_path)

    # -- processes ---------------------------------------------------------

    def spawn(self, argv, **kwargs):
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(argv, **kwargs)
        self.processes.append(process)
        return process

    def stop(self, process, timeout=10):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def cleanup(self):
        for process in reversed(self.processes):
            try:
                self.stop(process)
            except Exception as error:   # keep stopping the others
                print(f"bench: could not stop {process.pid}: {error}", file=sys.stderr)
        for pid in self.extra_pids:
            try:
                os.kill(pid, signal.SIGTERM)
                wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, f"pid {pid} to exit")
            except (ProcessLookupError, BenchError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.notify.close()
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
            shutil.rmtree(self.state_root, ignore_errors=True)

    def start_qemu(self, name, monitors=1):
        paths = [os.path.join(self.tmp, f"{name}-{i}.qmp") for i in range(monitors)]
        argv = [QEMU, "-machine", "q35,accel=tcg", "-m", "128", "-nodefaults",
                "-display", "none", "-S", *USB_QEMU]
        for path in paths:
            argv += ["-qmp", f"unix:{path},server=on,wait=off"]
        log = open(os.path.join(self.tmp, f"{name}.log"), "wb")
        process = self.spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: all(os.path.exists(p) for p in paths) or process.poll() is not None,
                 30, f"QEMU {name}")
        if process.poll() is not None:
            raise BenchError(f"QEMU {name} exited: {open(log.name).read()}")
        return process, paths

    def _drain_notify(self):
        self.notify.setblocking(False)
        try:
            while True:
                self.notify.recv(4096)
        except BlockingIOError:
            pass
        finally:
            self.notify.setblocking(True)

    def _wait_ready(self, process, timeout, what):
        """Nanoseconds from now until @process sends READY=1 to the notify socket."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            exited = process.poll() is not None
            if remaining <= 0:
                raise BenchError(f"{what} did not become ready (exit status {process.poll()})")
            # A process that exits right after READY=1 has still sent it: read before judging.
            self.notify.settimeout(0 if exited else min(remaining, 0.5))
            try:
                message = self.notify.recv(4096)
            except (socket.timeout, BlockingIOError):
                if exited:
                    raise BenchError(f"{what} exited ({process.poll()}) without READY=1")
                continue
            if b"READY=1" in message:
                return time.monotonic_ns()

    def start_hostdevd(self, name, qmp_path, wrapper=(), timeout=30):
        """Start hostdevd; return (process, control socket, ns from spawn to ready)."""
        sock = os.path.join(self.tmp, f"{name}.sock")
        argv = [*wrapper, self.hostdevd, "--vm", name, "--qmp", qmp_path, "--socket", sock,
                "--state-dir", os.path.join(self.state_root, name), "--sandbox", "off",
                "--qmp-wait", "20",
                # the benchmark's device is absent on every host: QEMU takes it by
                # vendor/product, so the cycle is a real device_add/device_del
                "--optional-usb", "qemu"]
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.tmp, NOTIFY_SOCKET=self.notify_path)
        log = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        self._drain_notify()
        start = time.monotonic_ns()
        process = self.spawn(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        ready = self._wait_ready(process, timeout, f"hostdevd {name}")
        return process, sock, ready - start

    def stop_hostdevd(self, process):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    def timed_run(self, argv, env=None):
        start = time.monotonic_ns()
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
        elapsed = time.monotonic_ns() - start
        if result.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        return elapsed

    def xml_file(self, vendor, product):
        path = os.path.join(self.tmp, f"usb-{vendor:04x}-{product:04x}.xml")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(usb_xml(vendor, product))
        return path

    def log(self, text):
        print(f"bench: {text}", file=sys.stderr, flush=True)

    # -- the sections --------------------------------------------------------

    def run(self):
        self.log(f"mode {'quick' if self.args.quick else 'full'}, work dir {self.tmp}")
        self.qemu_a, (self.qmp_a,) = self.start_qemu("qemu-a")
        self.qemu_b, (self.qmp_b,) = self.start_qemu("qemu-b")
        self.daemon, self.sock, _ = self.start_hostdevd("benchvm", self.qmp_a)
        time.sleep(0.2)
        self.results["memory_idle"] = proc_status(self.daemon.pid)
        self.ctl = ServeClient(self, [self.ctl_client, self.sock, "serve"], "ctl-client")
        self.raw = ServeClient(self, [self.raw_qmp, self.qmp_b, "serve"], "raw-qmp")
        # the same client through a process that only forwards bytes: what being
        # a process between client and QEMU costs, before any work of a broker
        self.qemu_c, (qmp_c,) = self.start_qemu("qemu-c")
        relay_path = os.path.join(self.tmp, "relay.qmp")
        self.spawn([self.qmp_relay, relay_path, qmp_c])
        self.relayed = ServeClient(self, [self.raw_qmp, relay_path, "serve"], "raw-qmp via relay")

        self.section("trace", self.trace)
        self.section("overhead", self.overhead)
        self.section("hostdevctl", self.hostdevctl_spawn)
        self.section("scale", self.scale)
        self.section("batch", self.batch)
        self.section("memory", self.memory)
        self.section("startup", self.startup)
        if shutil.which("strace"):
            self.section("syscalls", self.syscalls)
        if not self.args.no_callgrind:
            self.section("callgrind", self.callgrind)
        if not self.args.no_libvirt:
            self.section("libvirt", self.libvirt)
        self.results["vfio"] = self.vfio_phases()
        self.results["usb_follow"] = self.usb_follow_latency()
        self.results["vfio_libvirt"] = self.vfio_libvirt()
        self.results["batch_pci"] = self.batch_pci()

    def section(self, name, function):
        if self.args.only and name not in self.args.only:
            return
        self.log(f"{name} ...")
        start = time.monotonic()
        try:
            function()
        except (BenchError, OSError, subprocess.SubprocessError, ValueError, KeyError) as error:
            self.results.setdefault("failed", {})[name] = str(error)
            self.log(f"{name} FAILED: {error}")
        self.log(f"{name} took {time.monotonic() - start:.1f}s")

    def trace(self):
        """Which QMP commands hostdevd sends for one attach and one detach."""
        qemu, (qmp,) = self.start_qemu("qemu-trace")
        proxy_path = os.path.join(self.tmp, "trace-proxy.qmp")
        proxy = QmpProxy(proxy_path, qmp)
        try:
            daemon, sock, _ = self.start_hostdevd("tracevm", proxy_path)
            client = ServeClient(self, [self.ctl_client, sock, "serve"], "ctl-client(trace)")
            # the first attach learns what QEMU has (commands, USB ports); the next ones
            # are what every attach costs from then on
            marks = [len(proxy.commands)]
            for _ in range(2):
                client.op(f"attach {VENDOR:#x} {PRODUCT:#x}")
                marks.append(len(proxy.commands))
                client.op(f"detach {VENDOR:#x} {PRODUCT:#x}")
                marks.append(len(proxy.commands))
            client.close()
            self.stop_hostdevd(daemon)
            if proxy.device_add_places[-1] != USB_PLACE:
                raise BenchError(f"hostdevd placed the device at {proxy.device_add_places[-1]}, "
                                 f"not {USB_PLACE}: the raw baseline must ask for the same port")
            self.results["trace"] = {"first_attach": proxy.commands[marks[0]:marks[1]],
                                     "attach": proxy.commands[marks[2]:marks[3]],
                                     "detach": proxy.commands[marks[3]:marks[4]]}
        finally:
            proxy.close()
            self.stop(qemu)

    def overhead(self):
        """Attach and detach through hostdevd vs raw device_add/device_del, op by op."""
        n = self.mode["cycles"]
        h_attach, h_detach, r_attach, r_detach = [], [], [], []
        parts = {"qom-get": [], "x-query-usb": [], "device_add": []}
        attach_h = f"attach {VENDOR:#x} {PRODUCT:#x}"
        detach_h = f"detach {VENDOR:#x} {PRODUCT:#x}"
        # the same device_add hostdevd sends, on the port it (and libvirt) chooses
        attach_r = f"attach hostdev0 {VENDOR:#x} {PRODUCT:#x} {' '.join(USB_PLACE)}"
        relay_attach, relay_detach = [], []
        for _ in range(5):   # warm-up, not counted
            self.ctl.op(attach_h), self.raw.op(attach_r), self.relayed.op(attach_r)
            self.ctl.op(detach_h), self.raw.op("detach hostdev0")
            self.relayed.op("detach hostdev0")
        cpu = {"attach": 0, "detach": 0}

        def raw_attach():
            r_attach.append(self.raw.op(attach_r)[0])
            # What each other QMP round trip hostdevd makes costs on its own, device plugged.
            parts["qom-get"].append(self.raw.op(
                'exec qom-get {"path":"/machine/peripheral/hostdev0","property":"type"}')[0])
            parts["x-query-usb"].append(self.raw.op("exec x-query-usb")[0])

        def hostdevd_op(line, kind, into):
            before = cpu_ns(self.daemon.pid)
            into.append(self.ctl.op(line)[0])
            cpu[kind] += cpu_ns(self.daemon.pid) - before

        sides = [
            (lambda: hostdevd_op(attach_h, "attach", h_attach),
             lambda: hostdevd_op(detach_h, "detach", h_detach)),
            (raw_attach, lambda: r_detach.append(self.raw.op("detach hostdev0")[0])),
            (lambda: relay_attach.append(self.relayed.op(attach_r)[0]),
             lambda: relay_detach.append(self.relayed.op("detach hostdev0")[0])),
        ]
        cpu_daemon = cpu_ns(self.daemon.pid)
        cpu_qemu_a = cpu_ns(self.qemu_a.pid)
        for i in range(n):
            # Rotate who goes first so that none always follows another.
            order = sides[i % 3:] + sides[:i % 3]
            for attach, _ in order:
                attach()
            for _, detach in order:
                detach()
        cpu_daemon = cpu_ns(self.daemon.pid) - cpu_daemon
        cpu_qemu_a = cpu_ns(self.qemu_a.pid) - cpu_qemu_a
        # The floor of any request through hostdevd: one control-socket round trip, no QMP.
        floor = [self.ctl.op("exec query-version")[0] for _ in range(max(10, n // 2))]
        parts["device_add"] = r_attach
        self.results["overhead"] = {
            "n": n,
            "hostdevd_attach": median(h_attach), "raw_attach": median(r_attach),
            "hostdevd_detach": median(h_detach), "raw_detach": median(r_detach),
            "relay_attach": median(relay_attach), "relay_detach": median(relay_detach),
            "daemon_cpu_per_cycle": cpu_daemon / n, "qemu_cpu_per_cycle": cpu_qemu_a / n,
            "daemon_cpu_attach": cpu["attach"] / n, "daemon_cpu_detach": cpu["detach"] / n,
            "control_round_trip": median(floor),
            "qmp_parts": {k: median(v) for k, v in parts.items()},
        }

    def hostdevctl_spawn(self):
        """hostdevctl as a user runs it: one process per request."""
        n = self.mode["ctl"]
        xml = self.xml_file(VENDOR, PRODUCT)
        env = dict(os.environ, HOSTDEVD_RUNTIME_DIR=self.tmp)
        attach, detach, raw_attach, raw_detach = [], [], [], []
        for _ in range(n):
            attach.append(self.timed_run([self.hostdevctl, "attach-device", self.sock, xml], env))
            raw_attach.append(self.raw.op(f"attach hostdev0 {VENDOR:#x} {PRODUCT:#x}")[0])
            detach.append(self.timed_run([self.hostdevctl, "detach-device", self.sock, xml], env))
            raw_detach.append(self.raw.op("detach hostdev0")[0])
        self.results["hostdevctl"] = {"n": n, "attach": median(attach), "detach": median(detach),
                                      "raw_attach": median(raw_attach),
                                      "raw_detach": median(raw_detach)}

    def scale(self):
        """k devices attached then detached in one VM, k = 1, 8, 32: per-device cost."""
        out = {}
        for k, rounds in self.mode["scale"].items():
            sides = {"hostdevd": ([], []), "raw": ([], [])}
            cpu = cpu_ns(self.daemon.pid)
            for r in range(rounds):
                order = ("hostdevd", "raw") if r % 2 == 0 else ("raw", "hostdevd")
                for side in order:
                    attach, detach = sides[side]
                    for i in range(k):
                        v, p = SCALE_VENDOR, SCALE_PRODUCT + i
                        attach.append(self.ctl.op(f"attach {v:#x} {p:#x}")[0] if side == "hostdevd"
                                      else self.raw.op(f"attach hostdev{i} {v:#x} {p:#x}")[0])
                    for i in range(k):
                        v, p = SCALE_VENDOR, SCALE_PRODUCT + i
                        detach.append(self.ctl.op(f"detach {v:#x} {p:#x}")[0] if side == "hostdevd"
                                      else self.raw.op(f"detach hostdev{i}")[0])
            out[k] = {side: {"attach": median(a), "detach": median(d), "samples": len(a)}
                      for side, (a, d) in sides.items()}
            out[k]["hostdevd"]["cpu_per_device"] = (cpu_ns(self.daemon.pid) - cpu) / (k * rounds)
        self.results["scale"] = out

    def batch(self):
        """k devices in one <devices> request vs k single requests (same devices, interleaved)."""
        out = {}
        for k, rounds in self.mode["batch"].items():
            sides = {"batch": [], "singles": []}
            for r in range(rounds):
                order = ("batch", "singles") if r % 2 == 0 else ("singles", "batch")
                for side in order:
                    start = time.monotonic_ns()
                    if side == "batch":
                        self.ctl.op(f"attach-batch {SCALE_VENDOR:#x} {SCALE_PRODUCT:#x} {k}")
                    else:
                        for i in range(k):
                            self.ctl.op(f"attach {SCALE_VENDOR:#x} {SCALE_PRODUCT + i:#x}")
                    sides[side].append(time.monotonic_ns() - start)
                    for i in range(k):
                        self.ctl.op(f"detach {SCALE_VENDOR:#x} {SCALE_PRODUCT + i:#x}")
            out[k] = {side: median(values) for side, values in sides.items()}
        self.results["batch"] = out

    def memory(self):
        """RSS after warm-up, after many cycles, and with 32 devices attached."""
        # Only the cycling client is connected: every other client is sent the events too.
        self.ctl.close()
        before = proc_status(self.daemon.pid)
        churn = self.mode["churn"]
        self._cycles(churn)
        after = proc_status(self.daemon.pid)
        self.ctl = ServeClient(self, [self.ctl_client, self.sock, "serve"], "ctl-client")
        for i in range(32):
            self.ctl.op(f"attach {SCALE_VENDOR:#x} {SCALE_PRODUCT + i:#x}")
        with32 = proc_status(self.daemon.pid)
        for i in range(32):
            self.ctl.op(f"detach {SCALE_VENDOR:#x} {SCALE_PRODUCT + i:#x}")
        self.ctl.close()
        # A connected client that never reads its events (a stuck `hostdevctl events`).
        stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stalled.connect(self.sock)
        stalled_cycles = min(churn, 300)
        self._cycles(stalled_cycles)
        with_stalled = proc_status(self.daemon.pid)
        stalled.close()
        self._cycles(5)
        self.ctl = ServeClient(self, [self.ctl_client, self.sock, "serve"], "ctl-client")
        self.results["memory"] = {"churn": churn, "before": before, "after": after,
                                  "stalled_cycles": stalled_cycles,
                                  "with_stalled": with_stalled,
                                  "after_stalled": proc_status(self.daemon.pid),
                                  "with32": with32, "idle": self.results["memory_idle"]}

    def _cycles(self, n, sock=None):
        result = subprocess.run([self.ctl_client, sock or self.sock, "cycles", str(n)],
                                capture_output=True, text=True, timeout=1800)
        if result.returncode != 0:
            raise BenchError(f"ctl-client cycles failed: {result.stderr.strip()}")

    def syscalls(self):
        """System calls hostdevd makes per attach+detach cycle (strace -c; counts are exact)."""
        n = max(20, self.mode["callgrind"] // 2)
        out = os.path.join(self.tmp, "strace.txt")
        tracer = self.spawn(["strace", "-f", "-c", "-o", out, "-p", str(self.daemon.pid)],
                            stderr=subprocess.PIPE, text=True)
        # strace says "Process N attached" once it is in place.
        if "attached" not in tracer.stderr.readline():
            raise BenchError("strace could not attach to hostdevd")
        subprocess.run([self.ctl_client, self.sock, "cycles", str(n)], capture_output=True,
                       timeout=600, check=True)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        rows = []
        with open(out) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 5 and re.match(r"^[\d.]+$", fields[0]) and fields[-1] != "total":
                    calls = int(fields[3])
                    rows.append({"syscall": fields[-1], "calls": calls / n,
                                 "time_share": float(fields[0])})
        rows.sort(key=lambda r: -r["time_share"])
        self.results["syscalls"] = {"n": n, "total": sum(r["calls"] for r in rows),
                                    "top": rows[:8]}

    def startup(self):
        """Process start → control socket ready, vs a raw connect + qmp_capabilities."""
        qemu, (qmp_h, qmp_r) = self.start_qemu("qemu-startup", monitors=2)
        try:
            hostdevd_ns, raw_ns = [], []
            env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
            for i in range(self.mode["startup"] + 1):
                for side in (("h", "r") if i % 2 == 0 else ("r", "h")):
                    if side == "h":
                        daemon, _, elapsed = self.start_hostdevd("startupvm", qmp_h)
                        self.stop_hostdevd(daemon)
                        if i:
                            hostdevd_ns.append(elapsed)
                    else:
                        self._drain_notify()
                        start = time.monotonic_ns()
                        process = self.spawn([self.raw_qmp, qmp_r, "startup"], env=env,
                                             stdout=subprocess.DEVNULL)
                        ready = self._wait_ready(process, 30, "raw-qmp startup")
                        process.wait(timeout=10)
                        if i:
                            raw_ns.append(ready - start)
            self.results["startup"] = {"n": len(hostdevd_ns), "hostdevd": median(hostdevd_ns),
                                       "raw": median(raw_ns)}
        finally:
            self.stop(qemu)

    def callgrind(self):
        """Instructions hostdevd executes per start-up and per attach+detach (load-independent)."""
        if not shutil.which("valgrind"):
            raise BenchError("valgrind is not installed")
        n = self.mode["callgrind"]
        qemu, (qmp, qmp_raw) = self.start_qemu("qemu-callgrind", monitors=2)
        out = os.path.join(self.tmp, "callgrind.hostdevd")
        try:
            daemon, sock, _ = self.start_hostdevd(
                "cgvm", qmp, wrapper=("valgrind", "--tool=callgrind", "--quiet",
                                      f"--callgrind-out-file={out}"), timeout=180)
            # Dumps: .1 = start-up (to ready), .2 = the cycles; counters restart at each dump.
            subprocess.run(["callgrind_control", "--dump=startup", str(daemon.pid)],
                           capture_output=True, timeout=60, check=True)
            subprocess.run([self.ctl_client, sock, "cycles", "3"], capture_output=True,
                           timeout=300, check=True)
            subprocess.run(["callgrind_control", "--zero", str(daemon.pid)],
                           capture_output=True, timeout=60, check=True)
            subprocess.run([self.ctl_client, sock, "cycles", str(n)], capture_output=True,
                           timeout=600, check=True)
            subprocess.run(["callgrind_control", "--dump=cycles", str(daemon.pid)],
                           capture_output=True, timeout=60, check=True)
            raw = self._raw_instructions(qmp_raw, n)
            # The same cycles with 31 other devices in the VM: what grows with the device count.
            client = ServeClient(self, [self.ctl_client, sock, "serve"], "ctl-client(callgrind)")
            for i in range(31):
                client.op(f"attach {SCALE_VENDOR:#x} {SCALE_PRODUCT + i:#x}")
            client.close()
            subprocess.run(["callgrind_control", "--zero", str(daemon.pid)],
                           capture_output=True, timeout=60, check=True)
            n31 = max(10, n // 2)
            self._cycles(n31, sock)
            subprocess.run(["callgrind_control", "--dump=cycles-with-31", str(daemon.pid)],
                           capture_output=True, timeout=60, check=True)
            self.stop_hostdevd(daemon)
            startup_file, cycles_file, cycles31_file = f"{out}.1", f"{out}.2", f"{out}.3"
            one = callgrind_functions(cycles_file)
            many = callgrind_functions(cycles31_file)
            growth = sorted(((many.get(f, 0) / n31 - one.get(f, 0) / n, f) for f in many),
                            reverse=True)
            self.results["callgrind"] = {
                "n": n,
                "startup_ir": callgrind_total(startup_file),
                "cycle_ir": callgrind_total(cycles_file) / n,
                "cycle31_ir": callgrind_total(cycles31_file) / n31,
                "growth": [(g, f) for g, f in growth
                           if not f.startswith(("main", "(below", "g_main", "0x", "__libc",
                                                "g_task_return", "on_read"))][:12],
                "raw_cycle_ir": raw,
                "inclusive": callgrind_top(cycles_file, inclusive=True),
                "self": callgrind_top(cycles_file, inclusive=False)[:12],
                "file": "bench-callgrind-cycles.out",
            }
            shutil.copy(cycles_file, os.path.join(self.build, "bench-callgrind-cycles.out"))
        finally:
            self.stop(qemu)

    def _raw_instructions(self, qmp, n):
        """raw-qmp's instructions per cycle: (N cycles − 0 cycles) / N."""
        totals = []
        for cycles in (0, n):
            out = os.path.join(self.tmp, f"callgrind.raw.{cycles}")
            subprocess.run(["valgrind", "--tool=callgrind", "--quiet",
                            f"--callgrind-out-file={out}", self.raw_qmp, qmp, "cycles",
                            str(cycles)], capture_output=True, timeout=600, check=True)
            totals.append(callgrind_total(out))
        return (totals[1] - totals[0]) / n

    # -- libvirt -------------------------------------------------------------

    def libvirt(self):
        reason = libvirt_unavailable()
        if reason:
            self.results["libvirt"] = {"skipped": reason}
            return
        lv = LibvirtEmbedded(self)
        try:
            lv.setup()
            self.libvirt_compare(lv)
        except BenchError as error:
            self.results["libvirt"] = {"skipped": f"libvirt could not run here: {error}"}
        finally:
            lv.teardown()

    def libvirt_compare(self, lv):
        xml = self.xml_file(VENDOR, PRODUCT)
        lv.start_domain()
        idle = proc_status(lv.virsh.pid)
        n = self.mode["libvirt"]
        l_attach, l_detach, h_attach, h_detach = [], [], [], []
        attach_h = f"attach {VENDOR:#x} {PRODUCT:#x}"
        detach_h = f"detach {VENDOR:#x} {PRODUCT:#x}"
        for _ in range(3):
            lv.command(f"attach-device benchvm {xml}"), lv.command(f"detach-device benchvm {xml}")
        cpu_virsh = cpu_ns(lv.virsh.pid)
        for i in range(n):
            if i % 2 == 0:
                l_attach.append(lv.command(f"attach-device benchvm {xml}"))
                h_attach.append(self.ctl.op(attach_h)[0])
                l_detach.append(lv.command(f"detach-device benchvm {xml}"))
                h_detach.append(self.ctl.op(detach_h)[0])
            else:
                h_attach.append(self.ctl.op(attach_h)[0])
                l_attach.append(lv.command(f"attach-device benchvm {xml}"))
                h_detach.append(self.ctl.op(detach_h)[0])
                l_detach.append(lv.command(f"detach-device benchvm {xml}"))
        cpu_virsh = cpu_ns(lv.virsh.pid) - cpu_virsh
        before = proc_status(lv.virsh.pid)
        churn = self.mode["libvirt_churn"]
        for _ in range(churn):
            lv.command(f"attach-device benchvm {xml}")
            lv.command(f"detach-device benchvm {xml}")
        after = proc_status(lv.virsh.pid)
        files = [self.xml_file(SCALE_VENDOR, SCALE_PRODUCT + i) for i in range(32)]
        for path in files:
            lv.command(f"attach-device benchvm {path}")
        with32 = proc_status(lv.virsh.pid)
        for path in files:
            lv.command(f"detach-device benchvm {path}")
        lv.quit_shell()

        # The command-line tools, one process per request, both entered the same way.
        cli = {"virsh_attach": [], "virsh_detach": [], "ctl_attach": [], "ctl_detach": []}
        for _ in range(self.mode["virsh_cli"]):
            cli["virsh_attach"].append(self.timed_run(lv.cli("attach-device", "benchvm", xml)))
            cli["ctl_attach"].append(self.timed_run(lv.enter(self.hostdevctl, "attach-device",
                                                             self.sock, xml)))
            cli["virsh_detach"].append(self.timed_run(lv.cli("detach-device", "benchvm", xml)))
            cli["ctl_detach"].append(self.timed_run(lv.enter(self.hostdevctl, "detach-device",
                                                             self.sock, xml)))
        self.results["libvirt"] = {
            "version": lv.version, "n": n,
            "attach": median(l_attach), "detach": median(l_detach),
            "hostdevd_attach": median(h_attach), "hostdevd_detach": median(h_detach),
            "cpu_per_cycle": cpu_virsh / n,
            "memory": {"idle": idle, "before": before, "after": after, "with32": with32,
                       "churn": churn},
            "cli": {k: median(v) for k, v in cli.items()}, "cli_n": self.mode["virsh_cli"],
        }

    def vfio_phases(self):
        """Item 6 of issue #8: per-phase times of a managed VFIO attach on a real kernel.

        Hook for tests/vm (the nested VM with an emulated IOMMU, vmtest.py): a
        scenario there attaches a managed vfio-pci device with `hostdevd -v`,
        takes the timestamps of each phase from the structured log (unbind,
        driver_override + drivers_probe, /dev/vfio/N appearing, IOMMU group
        check, device_add, verification, journal) and writes them as JSON
        {"phases": {"name": milliseconds, ...}, "device": "...", "kernel": "..."}
        into its results directory.  `bench/run.sh --vfio-phases FILE` (or
        BENCH_VFIO_PHASES=FILE) puts that file's figures into this report.
        """
        return vm_results(
            self.args.vfio_phases, "BENCH_VFIO_PHASES", "vfio-phases.json",
            "not measured in this run: the phases come from a tests/vm scenario (nested VM, "
            "real kernel VFIO) that writes them as JSON; pass that file with "
            "`bench/run.sh --vfio-phases FILE`",
            lambda data: {"phases": data["phases"], "device": data.get("device", "?"),
                          "kernel": data.get("kernel", "?")})

    def usb_follow_latency(self):
        """Issue #12: a followed USB device back in the VM, from the kernel's add
        uevent to device_add returned, on a real kernel.

        tests/vm scenario 17 re-enumerates a keyboard in L1 attached to an L2
        (and then lets an optional one arrive), takes hostdevd's own figures
        from its log and writes them as JSON {"reattach": [{"ms", "lookup_ms",
        "attach_ms"}], "arrival": [...], "method", "device", "kernel"} into its
        logs.  `--usb-follow FILE` (or BENCH_USB_FOLLOW=FILE) picks another file.
        """
        def read(data):
            cases = {case: data[case][0] for case in ("reattach", "arrival") if data.get(case)}
            if not cases:
                raise KeyError("reattach/arrival (written by an older scenario 17?)")
            return {"cases": cases, "method": data.get("method", "?"), "device": data.get("device", "?"),
                    "kernel": data.get("kernel", "?"),
                    "seen_by_test_s": {"reattach": data.get("reattach_seen_by_test_s"),
                                       "arrival": data.get("arrival_seen_by_test_s")}}

        return vm_results(
            self.args.usb_follow, "BENCH_USB_FOLLOW", "usb-follow.json",
            "not measured in this run: tests/vm scenario 17 (nested VM, real kernel USB) writes "
            "the figures; run it, or pass its file with `bench/run.sh --usb-follow FILE`", read)


    def vfio_libvirt(self):
        """Issue 14: a managed PCI attach/detach through hostdevd against libvirt 9.0
        on a real kernel, from tests/vm scenario 20 (vfio-libvirt.json there):
        both tools put the same e1000e into the same booted L2, interleaved; the
        kernel's bind/unbind writes (ftrace) and QEMU's device_add / device_del →
        DEVICE_DELETED (QEMU's trace events) are measured alike for both and
        subtracted from each total to give each tool's own share.
        `bench/run.sh --vfio-libvirt FILE` or BENCH_VFIO_LIBVIRT=FILE names the file."""
        def read(data):
            for tool in ("hostdevd", "libvirt"):
                for op in ("attach", "detach"):
                    for part in ("total", "kernel", "qemu", "own"):
                        float(data["median"][tool][op][part])
            return data

        return vm_results(
            self.args.vfio_libvirt, "BENCH_VFIO_LIBVIRT", "vfio-libvirt.json",
            "not measured in this run: tests/vm scenario 20 writes it (HOSTDEVD_VM_SCENARIOS=20 "
            "meson test --suite vm); pass that file with `bench/run.sh --vfio-libvirt FILE`", read)

    def batch_pci(self):
        """Issue 13: one <devices> request of N managed PCI devices (each alone in its
        IOMMU group) against the same devices as N requests, on a real kernel, from
        tests/vm scenario 21 (batch-pci.json there): interleaved rounds into one
        booted L2, each attach timed request to reply through a kept control-socket
        connection, with hostdevd's phase timings.  `bench/run.sh --batch-pci FILE`
        or BENCH_BATCH_PCI=FILE names the file."""
        def read(data):
            for kind in ("batch", "singles"):
                float(data["median_attach_ms"][kind])
            len(data["devices"])
            return data

        return vm_results(
            self.args.batch_pci, "BENCH_BATCH_PCI", "batch-pci.json",
            "not measured in this run: tests/vm scenario 21 writes it (tests/vm/run-vm-tests.sh "
            "21); pass that file with `bench/run.sh --batch-pci FILE`", read)


def vm_results(option, variable, name, missing, read):
    """Return: what @read takes from the tests/vm results file @name (see
    vm_results_file()), with the file's path; {"skipped": why} when there is
    none (@missing says what would write it) or it cannot be read."""
    path = vm_results_file(option, variable, name)
    if not path:
        return {"skipped": missing}
    try:
        with open(path) as f:
            result = read(json.load(f))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        return {"skipped": f"could not read {path}: {error}"}
    result["file"] = path
    return result


def vm_results_file(option, variable, name):
    """Return: the results file @name of tests/vm to report: the one the option or
    environment @variable names, else what the nested-VM suite of the plain build
    wrote last (meson test --suite vm), else None."""
    path = option or os.environ.get(variable)
    written = os.path.join(SOURCE, "build", "tests", "vm", "work", "share", "logs", name)
    if not path and os.path.exists(written):
        path = written
    return path


def libvirt_unavailable():
    if VIRSH is None:
        return "virsh is not installed (libvirt-clients, libvirt-daemon-driver-qemu)"
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        return "unshare/nsenter (util-linux) are missing"
    if os.geteuid() != 0:
        return ("the embedded QEMU driver needs root here (it runs QEMU as root and "
                "needs a private mount namespace)")
    return None


class LibvirtEmbedded:
    """libvirt's QEMU driver embedded in one virsh process (qemu:///embed?root=DIR).

    No daemon and nothing outside DIR is written.  A private mount namespace,
    held open by a sleeping process, supplies what the driver insists on and
    this machine may lack: the 'libvirt-qemu' user (normally made by
    libvirt-daemon-system) and /sys/bus/usb/devices.
    """

    def __init__(self, bench):
        self.bench = bench
        self.root = os.path.join(bench.tmp, "libvirt-root")
        self.uri = f"qemu:///embed?root={self.root}"
        self.holder = None
        self.virsh = None
        self.version = subprocess.run([VIRSH, "--version"], capture_output=True,
                                      text=True).stdout.strip()

    def setup(self):
        os.makedirs(os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "etc", "qemu.conf"), "w") as f:
            f.write('user = "root"\ngroup = "root"\nnamespaces = [ ]\n'
                    'cgroup_controllers = [ ]\nremember_owner = 0\nsecurity_driver = "none"\n'
                    'stdio_handler = "file"\n')
        script = ["set -e"]
        if subprocess.run(["getent", "passwd", "libvirt-qemu"],
                          capture_output=True).returncode != 0:
            for name, line in (("passwd", "libvirt-qemu:x:64055:64055::/nonexistent:/bin/false"),
                               ("group", "libvirt-qemu:x:64055:")):
                copy = os.path.join(self.bench.tmp, name)
                shutil.copy(f"/etc/{name}", copy)
                with open(copy, "a") as f:
                    f.write(line + "\n")
                script.append(f"mount --bind {copy} /etc/{name}")
        if not os.path.isdir("/sys/bus/usb/devices"):
            script += ["mount -t tmpfs bench-sysbus /sys/bus", "mkdir -p /sys/bus/usb/devices"]
        script += ["echo ready", "exec sleep 3600"]
        self.holder = self.bench.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                        "\n".join(script)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        if self.holder.stdout.readline().strip() != "ready":
            raise BenchError("no private mount namespace (unshare -m): "
                             + self.holder.stderr.read().strip())
        domain = os.path.join(self.bench.tmp, "benchvm.xml")
        with open(domain, "w") as f:
            f.write(f"""<domain type='qemu'>
  <name>benchvm</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <emulator>{shutil.which(QEMU) or QEMU}</emulator>
    {USB_LIBVIRT}
    <memballoon model='none'/>
  </devices>
</domain>
""")
        self.domain_xml = domain
        self.virsh = self.bench.spawn(self.enter("stdbuf", "-oL", VIRSH, "-t", "-q", "-c", self.uri),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, bufsize=1)

    def enter(self, *argv):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--", *argv]

    def cli(self, *argv):
        return self.enter(VIRSH, "-q", "-c", self.uri, *argv)

    def command(self, line):
        """Run one command in the virsh shell; return virsh's own timing of it (ns)."""
        self.virsh.stdin.write(line + "\n")
        self.virsh.stdin.flush()
        output = []
        while True:
            text = self.virsh.stdout.readline()
            if not text:
                raise BenchError(f"virsh exited during '{line}': {' '.join(output)}")
            match = re.match(r"\(Time: ([0-9.]+) ms\)", text)
            if match:
                break
            output.append(text.strip())
        errors = [o for o in output if o.startswith("error:")]
        if errors:
            raise BenchError(f"virsh {line}: {' '.join(errors)}")
        return float(match.group(1)) * 1e6

    def start_domain(self):
        self.command(f"define {self.domain_xml}")
        self.command("start benchvm --paused")
        pidfile = os.path.join(self.root, "run", "qemu", "benchvm.pid")
        pid = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(),
                           10, "libvirt's QEMU pid file"))
        self.bench.extra_pids.append(pid)

    def quit_shell(self):
        self.virsh.stdin.write("quit\n")
        self.virsh.stdin.close()
        self.virsh.wait(timeout=30)

    def teardown(self):
        if self.holder and self.holder.poll() is None:
            if self.virsh and self.virsh.poll() is not None:
                subprocess.run(self.cli("destroy", "benchvm"), capture_output=True, timeout=60)
            elif self.virsh:
                try:
                    self.command("destroy benchvm")
                except (BenchError, OSError):
                    pass
                self.bench.stop(self.virsh)
            self.bench.stop(self.holder)


# -- callgrind output ---------------------------------------------------------

def callgrind_total(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise BenchError(f"no totals in {path}")


def callgrind_functions(path):
    """{function: inclusive Ir} for named functions of hostdevd and its libraries."""
    argv = ["callgrind_annotate", "--threshold=100", "--inclusive=yes", path]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
    functions = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+\S*?:(\S+)", line)
        if match and "PROGRAM TOTALS" not in line:
            functions[match.group(2)] = int(match.group(1).replace(",", ""))
    return functions


def callgrind_top(path, inclusive, count=40):
    """[(percent, function)] from callgrind_annotate, biggest first."""
    argv = ["callgrind_annotate", "--threshold=100", f"--inclusive={'yes' if inclusive else 'no'}",
            path]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
    total = callgrind_total(path)
    rows = []
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
        if not match or "PROGRAM TOTALS" in line or ":" not in match.group(2):
            continue
        ir = int(match.group(1).replace(",", ""))
        location, _, function = match.group(2).partition(":")
        function = re.sub(r"\s*\[.*\]$", "", function).strip()
        library = os.path.basename(re.sub(r"^.*\[(.*)\]$", r"\1", match.group(2))) \
            if "[" in match.group(2) else os.path.basename(location)
        rows.append((100.0 * ir / total, function, library))
    rows.sort(reverse=True)
    return rows[:count]


# -- the report -----------------------------------------------------------------

def machine():
    def first(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  timeout=20).stdout.splitlines()[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    commit = first(["git", "-C", SOURCE, "describe", "--always", "--dirty"])
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory": f"{mem_kb / 1048576:.1f} GiB",
            "kernel": os.uname().release, "qemu": first([QEMU, "--version"]),
            "commit": commit, "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC")}


def verdict(ok):
    return "**met**" if ok else "**missed**"


def kib(figures, key):
    return figures.get(key, 0)


def report(results, quick):
    m = results["machine"]
    lines = [
        f"Measured by `bench/run.sh{' --quick' if quick else ''}` on {m['date']}, "
        f"hostdevd {m['commit']}. Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, "
        f"Linux {m['kernel']}, {m['qemu']}.",
        "",
        "Times are medians; every ratio divides by a baseline measured in the same run, "
        "interleaved operation by operation (QEMU paused, TCG, one xHCI with three hubs). "
        "Baseline: `bench/raw-qmp`, a minimal C QMP client sending `device_add` / "
        "`device_del` + waiting for `DEVICE_DELETED` to an identical QEMU; hostdevd is "
        "driven by `bench/ctl-client`, its C twin on the control socket. The floor rows "
        "put `bench/qmp-relay` between the baseline client and a third identical QEMU: "
        "the cost of any process in the path, before any work of a broker.",
        "",
        "| measurement | hostdevd | baseline | ratio | target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    failed = results.get("failed", {})
    o = results.get("overhead")
    if o:
        ra = o["hostdevd_attach"] / o["raw_attach"]
        rd = o["hostdevd_detach"] / o["raw_detach"]
        lines.append(f"| attach, {o['n']} cycles | {ms(o['hostdevd_attach']):.2f} ms | "
                     f"{ms(o['raw_attach']):.2f} ms | {ra:.2f}× | ≤ 1.25× | {verdict(ra <= 1.25)} |")
        lines.append(f"| detach (until QEMU's DEVICE_DELETED) | {ms(o['hostdevd_detach']):.2f} ms | "
                     f"{ms(o['raw_detach']):.2f} ms | {rd:.2f}× | ≤ 1.1× | {verdict(rd <= 1.1)} |")
        if "relay_attach" in o:
            for op in ("attach", "detach"):
                lines.append(f"| floor: {op} through `bench/qmp-relay`, a process that only "
                             f"forwards bytes | {ms(o[f'relay_{op}']):.2f} ms | "
                             f"{ms(o[f'raw_{op}']):.2f} ms | "
                             f"{o[f'relay_{op}'] / o[f'raw_{op}']:.2f}× | — | |")
    c = results.get("hostdevctl")
    if c:
        lines.append(f"| attach with `hostdevctl` (a process per request), {c['n']} | "
                     f"{ms(c['attach']):.2f} ms | {ms(c['raw_attach']):.2f} ms | "
                     f"{c['attach'] / c['raw_attach']:.2f}× | — | |")
        lines.append(f"| detach with `hostdevctl` | {ms(c['detach']):.2f} ms | "
                     f"{ms(c['raw_detach']):.2f} ms | {c['detach'] / c['raw_detach']:.2f}× | — | |")
    b = results.get("batch")
    for k, v in sorted((b or {}).items(), key=lambda kv: int(kv[0])):
        lines.append(f"| attach of {k} devices in one `<devices>` request vs {k} requests | "
                     f"{ms(v['batch']):.2f} ms | {ms(v['singles']):.2f} ms | "
                     f"{v['batch'] / v['singles']:.2f}× | < 1× | {verdict(v['batch'] < v['singles'])} |")
    lines += batch_pci_row(results.get("batch_pci") or {})
    s = results.get("startup")
    if s:
        lines.append(f"| start-up: exec → control socket ready (sd_notify READY), {s['n']} runs "
                     f"| {ms(s['hostdevd']):.1f} ms | {ms(s['raw']):.1f} ms | "
                     f"{s['hostdevd'] / s['raw']:.2f}× | — | |")
    sc = results.get("scale")
    if sc and 1 in sc and 32 in sc:
        for op in ("attach", "detach"):
            per = " / ".join(f"{ms(sc[k]['hostdevd'][op]):.2f}" for k in sorted(sc))
            raw_per = " / ".join(f"{ms(sc[k]['raw'][op]):.2f}" for k in sorted(sc))
            h = sc[32]["hostdevd"][op] / sc[1]["hostdevd"][op]
            r = sc[32]["raw"][op] / sc[1]["raw"][op]
            lines.append(f"| scale: {op} per device with 1 / 8 / 32 in the VM (ms); 32/1 ratio "
                         f"| {per}; **{h:.2f}×** | {raw_per}; {r:.2f}× | {h:.2f}× | flat "
                         f"(32/1 ≤ 1.2×) | {verdict(h <= 1.2)} |")
    mem = results.get("memory")
    if mem:
        idle, before, after, with32 = mem["idle"], mem["before"], mem["after"], mem["with32"]
        growth = kib(after, "RssAnon") - kib(before, "RssAnon")
        lines.append(f"| memory idle, one VM: VmRSS / RssAnon | {kib(idle, 'VmRSS')} / "
                     f"**{kib(idle, 'RssAnon')} KiB** | | | RssAnon ≤ 1024 KiB | "
                     f"{verdict(kib(idle, 'RssAnon') <= 1024)} |")
        lines.append(f"| memory after warm-up → after {mem['churn']} more cycles: RssAnon | "
                     f"{kib(before, 'RssAnon')} → {kib(after, 'RssAnon')} KiB "
                     f"(**{growth:+d} KiB**) | | | zero growth (≤ 16 KiB noise) | "
                     f"{verdict(growth <= 16)} |")
        if "with_stalled" in mem:
            sg = kib(mem["with_stalled"], "RssAnon") - kib(after, "RssAnon")
            lines.append(f"| RssAnon growth over {mem['stalled_cycles']} cycles while another "
                         f"client is connected and never reads its events | **{sg:+d} KiB** "
                         f"({sg * 1024 / mem['stalled_cycles']:.0f} B per cycle) | | | "
                         f"(no target: should stay bounded) | |")
        lines.append(f"| memory with 32 devices attached: VmRSS / RssAnon | "
                     f"{kib(with32, 'VmRSS')} / {kib(with32, 'RssAnon')} KiB | | | — | |")
    cg = results.get("callgrind")
    if cg:
        lines.append(f"| CPU per attach+detach cycle (callgrind instructions, {cg['n']} cycles) | "
                     f"{cg['cycle_ir'] / 1e3:,.0f} k | raw-qmp: {cg['raw_cycle_ir'] / 1e3:,.1f} k | "
                     f"{cg['cycle_ir'] / cg['raw_cycle_ir']:,.0f}× | — | |")
        lines.append(f"| CPU per attach+detach cycle with 31 other devices attached "
                     f"(callgrind) | {cg['cycle31_ir'] / 1e3:,.0f} k | 1 device: "
                     f"{cg['cycle_ir'] / 1e3:,.0f} k | {cg['cycle31_ir'] / cg['cycle_ir']:.2f}× | "
                     f"flat | {verdict(cg['cycle31_ir'] / cg['cycle_ir'] <= 1.2)} |")
        lines.append(f"| CPU for start-up to ready (callgrind instructions) | "
                     f"{cg['startup_ir'] / 1e6:,.1f} M | | | — | |")
    if o:
        lines.append(f"| CPU time per cycle (scheduler, all threads) | "
                     f"{ms(o['daemon_cpu_per_cycle']):.3f} ms | QEMU main loop: "
                     f"{ms(o['qemu_cpu_per_cycle']):.3f} ms | | — | |")
    lv = results.get("libvirt", {})
    lines += ["", "**Against libvirt**"]
    if "skipped" in lv or not lv:
        lines.append(f"not measured: {lv.get('skipped', failed.get('libvirt', 'not run'))}")
    else:
        lm = lv["memory"]
        lines += [
            "",
            f"{lv['version'] and 'libvirt ' + lv['version']}, QEMU driver embedded in one "
            "`virsh -t` shell (`qemu:///embed`, no daemon), TCG domain with the same USB "
            "layout; API times are virsh's own `(Time: …)`, interleaved with the same "
            "requests to hostdevd through ctl-client.",
            "",
            "| measurement | hostdevd | libvirt | libvirt / hostdevd |",
            "|---|---:|---:|---:|",
            f"| attach, {lv['n']} cycles | {ms(lv['hostdevd_attach']):.2f} ms | "
            f"{ms(lv['attach']):.2f} ms | {lv['attach'] / lv['hostdevd_attach']:.2f}× |",
            f"| detach | {ms(lv['hostdevd_detach']):.2f} ms | {ms(lv['detach']):.2f} ms | "
            f"{lv['detach'] / lv['hostdevd_detach']:.2f}× |",
            f"| `hostdevctl` vs `virsh` command line, attach ({lv['cli_n']} runs each, "
            f"new process each) | {ms(lv['cli']['ctl_attach']):.1f} ms | "
            f"{ms(lv['cli']['virsh_attach']):.1f} ms | "
            f"{lv['cli']['virsh_attach'] / lv['cli']['ctl_attach']:.1f}× |",
            f"| `hostdevctl` vs `virsh` command line, detach | "
            f"{ms(lv['cli']['ctl_detach']):.1f} ms | {ms(lv['cli']['virsh_detach']):.1f} ms | "
            f"{lv['cli']['virsh_detach'] / lv['cli']['ctl_detach']:.1f}× |",
        ]
        if mem:
            hg = kib(mem["after"], "RssAnon") - kib(mem["before"], "RssAnon")
            lg = kib(lm["after"], "RssAnon") - kib(lm["before"], "RssAnon")
            lines += [
                f"| memory idle with the VM running: VmRSS / RssAnon | "
                f"{kib(mem['idle'], 'VmRSS')} / {kib(mem['idle'], 'RssAnon')} KiB | "
                f"{kib(lm['idle'], 'VmRSS')} / {kib(lm['idle'], 'RssAnon')} KiB | "
                f"{kib(lm['idle'], 'RssAnon') / max(1, kib(mem['idle'], 'RssAnon')):.1f}× |",
                f"| RssAnon growth over {mem['churn']} / {lm['churn']} cycles | {hg:+d} KiB | "
                f"{lg:+d} KiB | |",
                f"| memory with 32 devices: VmRSS / RssAnon | {kib(mem['with32'], 'VmRSS')} / "
                f"{kib(mem['with32'], 'RssAnon')} KiB | {kib(lm['with32'], 'VmRSS')} / "
                f"{kib(lm['with32'], 'RssAnon')} KiB | "
                f"{kib(lm['with32'], 'RssAnon') / max(1, kib(mem['with32'], 'RssAnon')):.1f}× |",
            ]
        if o:
            lines.append(f"| CPU time per cycle (scheduler) | {ms(o['daemon_cpu_per_cycle']):.3f} ms "
                         f"| {ms(lv['cpu_per_cycle']):.3f} ms | "
                         f"{lv['cpu_per_cycle'] / o['daemon_cpu_per_cycle']:.1f}× |")
        lines += ["", "libvirt's memory is the virsh process that holds the embedded driver "
                  "(a libvirtd/virtqemud would hold the same driver state plus its RPC server). "
                  "On the command line each `virsh -c qemu:///embed` process starts the QEMU "
                  "driver and reconnects to the domain before its request, so it pays more than "
                  "a `virsh` talking to a running libvirtd would; both tools are started through "
                  "the same `nsenter`."]

    lines += ["", "**Where the time goes**", ""]
    t = results.get("trace")
    if t:
        first = (f" (the first attach on a QEMU connection sends "
                 f"`{' → '.join(t['first_attach'])}`: it learns the QEMU's commands and "
                 f"USB ports)" if t.get("first_attach") else "")
        lines.append(f"- QMP commands hostdevd sends per attach: `{' → '.join(t['attach'])}`; "
                     f"per detach: `{' → '.join(t['detach'])}` (recorded by a proxy on its QMP "
                     f"socket){first}. The baseline sends one each.")
    if o:
        p = o["qmp_parts"]
        lines.append(
            f"- Each of those round trips on its own (raw client, same run): device_add "
            f"{ms(p['device_add']):.2f} ms, qom-get of the device's type "
            f"{ms(p['qom-get']):.2f} ms, x-query-usb {ms(p['x-query-usb']):.2f} ms. "
            f"hostdevd attach − raw attach = {ms(o['hostdevd_attach'] - o['raw_attach']):.2f} ms; "
            f"hostdevd's own CPU time (user + kernel, all threads, from /proc/PID/task/*/schedstat) "
            f"is {ms(o['daemon_cpu_attach']):.2f} ms per attach and "
            f"{ms(o['daemon_cpu_detach']):.2f} ms per detach; a bare control-socket round trip "
            f"(`query-version`, no QMP) takes {ms(o['control_round_trip']):.2f} ms.")
        lines.append(f"- Detach: QEMU itself sends DEVICE_DELETED for usb-host about "
                     f"{ms(o['raw_detach']):.0f} ms after device_del; both sides wait for it.")
    if cg:
        own = [(pct, fn) for pct, fn, lib in cg["inclusive"]
               if lib == "hostdevd" and fn not in ("main", "(below main)")][:14]
        lines.append("- callgrind, hostdevd's functions by inclusive share of its instructions "
                     "per cycle: " + "; ".join(f"`{fn}` {pct:.1f}%" for pct, fn in own))
        lines.append("- callgrind, by self share: " + "; ".join(
            f"`{fn if not fn.startswith('0x') else 'static code'}` ({lib}) {pct:.1f}%"
            for pct, fn, lib in cg["self"] if pct < 99.5)[:1500]
            + f" (full profile: `callgrind_annotate {os.path.basename(cg.get('file', ''))}` "
              "in the build directory)")
    if cg and cg.get("growth"):
        lines.append("- callgrind, what grows per cycle with 31 other devices attached "
                     "(inclusive instructions per cycle, 32 devices − 1 device): "
                     + "; ".join(f"`{fn}` {g / 1e3:+,.0f} k" for g, fn in cg["growth"]))
    sc = results.get("scale")
    if sc:
        lines.append("- hostdevd CPU time per device (scheduler) with 1 / 8 / 32 devices: "
                     + " / ".join(f"{ms(sc[k]['hostdevd'].get('cpu_per_device', 0)):.2f}"
                                  for k in sorted(sc)) + " ms (attach + detach).")
    sy = results.get("syscalls")
    if sy:
        lines.append(f"- System calls per attach+detach cycle (strace -c, {sy['n']} cycles): "
                     f"{sy['total']:.0f} in all; by share of system time: "
                     + ", ".join(f"{r['syscall']} ×{r['calls']:.1f} ({r['time_share']:.0f}%)"
                                 for r in sy["top"])
                     + f". hostdevd's journal is on {results.get('state_fs', '?')}.")
    v = results.get("vfio", {})
    if "phases" in v:
        lines += ["", f"**Managed VFIO attach on a real kernel** ({v['device']}, Linux "
                      f"{v['kernel']}, from `{os.path.basename(v['file'])}`, measured by tests/vm)",
                  "", "| phase | ms |", "|---|---:|"]
        lines += [f"| {name} | {value:.2f} |" for name, value in v["phases"].items()]
    else:
        lines += ["", f"Real VFIO phases (issue #8 item 6): {v.get('skipped', '?')}."]
    lines += usb_follow_report(results.get("usb_follow", {}))
    lines += vfio_libvirt_report(results.get("vfio_libvirt", {}))
    lines += batch_pci_report(results.get("batch_pci", {}))
    for name, error in failed.items():
        if name != "libvirt":
            lines.append(f"\nSection '{name}' failed: {error}")
    return "\n".join(lines)


def usb_follow_report(u):
    """The README lines of Bench.usb_follow_latency's result @u."""
    if "cases" not in u:
        return ["", f"USB follow latency (issue #12): {u.get('skipped', '?')}."]
    titles = {"reattach": "re-enumerated while attached",
              "arrival": "optional device absent at attach, appearing"}

    def ms(value):
        return "–" if value is None else f"{value:.1f}"
    lines = ["", f"**USB device back in the VM** ({u['device']}, re-enumerated by {u['method']}; "
                 f"Linux {u['kernel']}, "
                 f"nested TCG; from `{os.path.basename(u['file'])}`, measured by tests/vm scenario 17)",
             "", "| from the kernel's add uevent | to device_add returned, ms | look-up, ms | attach, ms "
                 "| in QEMU as the test saw it, s |",
             "|---|---:|---:|---:|---:|"]
    for case, entry in u["cases"].items():
        seen = u["seen_by_test_s"].get(case)
        lines.append(f"| {titles.get(case, case)} | {ms(entry.get('ms'))} | {ms(entry.get('lookup_ms'))} "
                     f"| {ms(entry.get('attach_ms'))} | {'–' if seen is None else f'{seen:.2f}'} |")
    lines += ["", "The look-up is hostdevd reading the new device in sysfs; it waits for the kernel's "
                  "own driver probe (usbhid) to release the device's lock before the string "
                  "attributes (serial) can be read. The last column is from the device back in "
                  "sysfs (as the test polls it) to the usb-host listed by QEMU."]
    return lines


def batch_pci_row(b):
    """The main table's row of the nested batch of managed PCI devices (tests/vm scenario 21)."""
    if "median_attach_ms" not in b:
        return []
    n, m = len(b["devices"]), b["median_attach_ms"]
    ratio = m["batch"] / m["singles"]
    return [f"| attach of {n} managed PCI devices in one `<devices>` request vs {n} requests, "
            f"nested (real kernel VFIO, booted L2; tests/vm scenario 21) | {m['batch']:.1f} ms | "
            f"{m['singles']:.1f} ms | {ratio:.2f}× | < 1× | {verdict(ratio < 1)} |"]


def batch_pci_report(b):
    """Where the time of the nested batch of managed PCI devices went (tests/vm scenario 21)."""
    if "median_attach_ms" not in b:
        return ["", f"Batch of managed PCI devices on a real kernel: {b.get('skipped', 'not measured')}."]
    phases = b["median_phases_ms"]
    names = [n for n in phases["batch"] if n in phases["singles"]]
    m = b["median_attach_ms"]
    lines = ["", f"**A batch of managed PCI devices on a real kernel** ({', '.join(b['devices'])}, "
                 f"each alone in its IOMMU group, managed='yes'; {b['guest']}; Linux {b['kernel']}; "
                 f"from `{os.path.basename(b['file'])}`, tests/vm scenario 21)",
             "",
             f"One `<devices>` request of the {len(b['devices'])} devices against one request per "
             f"device, {b['warmup']} warm-up and {b['rounds']} measured rounds, interleaved, into "
             f"the same L2, each attach timed from request to reply on a kept control-socket "
             f"connection and checked in sysfs and QEMU, detached between rounds; medians, the "
             f"singles' phases summed over the devices. The bindings "
             f"{'run together (one run of the plan)' if b.get('binds_together') else 'ran one after the other'}.",
             "",
             "| ms | one request | one per device | ratio |",
             "|---|---:|---:|---:|",
             f"| attach, request to reply | {m['batch']:.1f} | {m['singles']:.1f} | "
             f"{m['batch'] / m['singles']:.2f}× |"]
    for name in names:
        one, each = phases["batch"][name], phases["singles"][name]
        lines.append(f"| phase {name} | {one:.1f} | {each:.1f} | "
                     f"{one / each:.2f}× |" if each else f"| phase {name} | {one:.1f} | {each:.1f} | |")
    return lines


def times_of(b, a):
    """@b as a multiple of @a ("1.6×"), "—" when @a is not positive."""
    return f"{b / a:.1f}×" if a > 0 else "—"


def vfio_libvirt_report(v):
    """The nested managed-PCI comparison with libvirt (tests/vm scenario 20)."""
    if "median" not in v:
        return ["", f"Managed PCI attach against libvirt on a real kernel: "
                    f"{v.get('skipped', 'not measured')}."]
    m = v["median"]
    h, lv = m["hostdevd"], m["libvirt"]
    lines = ["", f"**Managed PCI attach/detach against libvirt on a real kernel** ({v['device']}; "
                 f"Linux {v['kernel']} in a TCG VM with an emulated IOMMU; libvirt {v['libvirt']}, QEMU "
                 f"driver embedded in one `virsh -t` shell; from `{os.path.basename(v['file'])}`, "
                 f"tests/vm scenario 20)",
             "",
             f"Both tools attach and detach the same device in the same L2 (libvirt's domain; "
             f"hostdevd on a second QMP monitor of its QEMU), {v['warmup']} warm-up and "
             f"{v['rounds']} measured cycles each, interleaved, medians. Total: request to reply "
             f"(virsh's own time in its shell; for hostdevd, "
             f"{v.get('client', 'a Python client')} kept connected to its control socket), "
             f"checked afterwards in sysfs (vfio-pci / e1000e) and in QEMU (query-pci). Kernel: the "
             f"sysfs driver_override / unbind / drivers_probe writes, timed by ftrace. QEMU: "
             f"device_add dispatch to answer, device_del dispatch to DEVICE_DELETED, from QEMU's "
             f"own trace events. Own share = total − kernel − QEMU, per cycle; each row is the "
             f"median of its own column. Where QEMU's trace has it (handle_qmp_command), the "
             f"time device_add or device_del waited in QEMU between its monitor thread reading "
             f"it and its dispatch is shown too: it is inside each tool's own share as defined, "
             f"but neither tool's work.",
             "",
             "| ms | hostdevd | libvirt | libvirt / hostdevd |",
             "|---|---:|---:|---:|"]
    for op in ("attach", "detach"):
        for part, label in (("total", f"{op}: total"), ("kernel", f"{op}: kernel bind/unbind writes"),
                            ("qemu", f"{op}: QEMU " + ("device_add" if op == "attach"
                                                        else "device_del → DEVICE_DELETED")),
                            ("own", f"{op}: **own share**")):
            a, b = h[op][part], lv[op][part]
            ratio = times_of(b, a)
            lines.append(f"| {label} | {a:.1f} | {b:.1f} | {ratio} |")
        if h[op].get("qemu_queue") is not None and lv[op].get("qemu_queue") is not None:
            command = "device_add" if op == "attach" else "device_del"
            a, b = h[op]["qemu_queue"], lv[op]["qemu_queue"]
            lines.append(f"| {op}: of the own share, {command} waiting in QEMU between its "
                         f"monitor thread's read and its dispatch | {a:.1f} | {b:.1f} | |")
    cycles = v.get("cycles", {})
    if all(c.get("attach", {}).get("qmp_commands") is not None
           for runs in cycles.values() for c in runs) and cycles:
        for op in ("attach", "detach"):
            count = {t: median([c[op]["qmp_commands"] for c in runs]) for t, runs in cycles.items()}
            lines.append(f"| {op}: QMP commands the tool sends (QEMU's trace) | "
                         f"{count['hostdevd']:.0f} | {count['libvirt']:.0f} | |")
    if cycles and all(runs for runs in cycles.values()):
        for op in ("attach", "detach"):
            spread = {t: [c[op]["own"] for c in runs] for t, runs in cycles.items()}
            lines.append(f"| {op}: own share, the lowest and the highest of the cycles | "
                         f"{min(spread['hostdevd']):.1f} – {max(spread['hostdevd']):.1f} | "
                         f"{min(spread['libvirt']):.1f} – {max(spread['libvirt']):.1f} | |")
    for op in ("attach", "detach"):
        a, b = h[op].get("cpu"), lv[op].get("cpu")
        if a is not None and b is not None:
            ratio = times_of(b, a)
            lines.append(f"| {op}: CPU time of the tool's processes, all threads (the kernel's "
                         f"writes on them included) | {a:.1f} | {b:.1f} | {ratio} |")
    if h.get("floor") is not None and lv.get("floor") is not None:
        lines.append(f"| a request that does no work (hostdevd: `query-version` through the same "
                     f"client; libvirt: `domstate`, a call into the driver inside virsh's process), "
                     f"after each cycle | {h['floor']:.1f} | {lv['floor']:.1f} | |")
        for op in ("attach", "detach"):
            a, b = h[op]["own"] - h["floor"], lv[op]["own"] - lv["floor"]
            ratio = times_of(b, a)
            lines.append(f"| {op}: own share less that request's floor | {a:.1f} | {b:.1f} | "
                         f"{ratio} |")
    for op in ("attach", "detach"):
        a, b = h[op]["own"], lv[op]["own"]
        lines.append(f"| target: hostdevd's own {op} share well under libvirt's | "
                     f"{a:.1f} | {b:.1f} | {verdict(a < 0.5 * b)} |")
    lines.append(f"| target: hostdevd's own attach share under the kernel's bind writes | "
                 f"{h['attach']['own']:.1f} | kernel: {h['attach']['kernel']:.1f} | "
                 f"{verdict(h['attach']['own'] < h['attach']['kernel'])} |")
    phases = h.get("attach_phases")
    if phases:
        lines += ["", "hostdevd's attach phases (ms, its own records, median): "
                  + ", ".join(f"{k} {val:.1f}" for k, val in phases.items() if val is not None)
                  + ". The detach's QEMU part is mostly the guest: QEMU sends DEVICE_DELETED once "
                    "the guest's pciehp has released the slot."]
    return lines


def write_readme(text):
    path = os.path.join(SOURCE, "README.md")
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    with open(path) as f:
        content = f.read()
    if begin not in content or end not in content:
        print(f"bench: {path} has no {begin} … {end} markers; README not updated", file=sys.stderr)
        return False
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(f"{head}{begin}\n{text}\n{end}{tail}")
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="meson build directory")
    parser.add_argument("--quick", action="store_true", help="fewer cycles (about a minute)")
    parser.add_argument("--no-libvirt", action="store_true")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--only", action="append", metavar="SECTION",
                        help="run only this section (trace, overhead, hostdevctl, scale, batch, "
                             "memory, startup, syscalls, callgrind, libvirt); repeatable; the "
                             "table then shows what was measured")
    parser.add_argument("--vfio-phases", metavar="FILE",
                        help="per-phase times of a managed VFIO attach measured by tests/vm")
    parser.add_argument("--usb-follow", metavar="FILE",
                        help="USB follow latencies measured by tests/vm scenario 17 (usb-follow.json)")
    parser.add_argument("--vfio-libvirt", metavar="FILE",
                        help="managed PCI attach/detach, hostdevd against libvirt, measured by "
                             "tests/vm scenario 20")
    parser.add_argument("--batch-pci", metavar="FILE",
                        help="a batch of managed PCI devices against single requests, measured "
                             "by tests/vm scenario 21 (batch-pci.json)")
    parser.add_argument("--state-on-disk", action="store_true",
                        help="hostdevd's journal in the work directory instead of a tmpfs")
    args = parser.parse_args()

    def terminate(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminate)

    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.log("interrupted")
        bench.cleanup()
        return 130
    except Exception:
        bench.cleanup()
        raise
    bench.cleanup()
    results = bench.results
    results["machine"] = machine()
    results["state_fs"] = bench.state_fs
    results["duration_s"] = round(time.monotonic() - started, 1)
    with open(os.path.join(bench.build, "bench-results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    text = report(results, args.quick)
    with open(os.path.join(bench.build, "bench-report.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    if args.readme:
        if write_readme(text):
            bench.log("README.md updated")
    bench.log(f"done in {results['duration_s']}s; results in {bench.build}/bench-results.json")
    return 1 if results.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
