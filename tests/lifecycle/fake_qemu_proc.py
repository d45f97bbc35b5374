#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A scripted QEMU 7.2 (q35) as a process of its own, for the lifecycle runner.

It has a real pid that hostdevd sees through SO_PEERCRED and watches die.
It speaks QMP on --qmp (one client at a time, like a socket chardev) and
answers what hostdevd sends: qmp_capabilities, qom-list/qom-get of the
peripherals (a qemu-xhci "usb", pcie-root-ports pci.1..pci.4), query-target,
query-memory-size-summary, query-fdsets, add-fd/remove-fd (descriptors
received with SCM_RIGHTS), device_add of vfio-pci and usb-host (opening the
device in the fake kernel, so that an unbind blocks while QEMU holds it),
x-query-usb and device_del with a scripted guest: cooperating, slow,
refusing (DEVICE_UNPLUG_GUEST_ERROR), busy ("guest is busy", then
cooperating), or silent.  A root port's slot takes several functions as
QEMU's PCIe hot-plug does: functions 1-7 first (the guest is not told; a
device_del removes one at once), function 0 last with multifunction=on
(the guest is told of the whole slot, and an unplug of any function asks
the guest to let the whole slot go).  A second device_del while an unplug is pending
gets QEMU 7.2's "Device X is already in the process of unplug".  The
kernel's VFIO request (someone unbinds a device this QEMU holds) is an
unplug request, as in QEMU's vfio_req_notifier_handler.

The runner drives it on --control (JSON lines): {"op": "guest", "mode":
..., "delay": s, "busy": n, "add-delay": s, "hold-add": n}, {"op": "devices"};
"add-delay" holds each device_add's answer that long after the device is in
(a slow realize), so that a crash of hostdevd can come between two devices
of one request; "hold-add": n never answers the n-th device_add (counted
from this "guest" op on) and those after it, once the device is in: the
runner kills hostdevd while it waits for that answer, with exactly n devices
in, whatever the machine's speed.  SIGTERM: SHUTDOWN event,
exit 0; SIGKILL: just gone; either way the kernel connection closes and the
fake kernel releases the devices after its exit delay.
"""
import argparse
import array
import json
import os
import queue
import signal
import socket
import sys
import threading
import time

ROOT_PORTS = ["pci.1", "pci.2", "pci.3", "pci.4"]


class KernelClient:
    def __init__(self, path, vm, on_event):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.replies = queue.Queue()
        self.on_event = on_event
        self.lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()
        self.call({"op": "hello", "vm": vm})

    def _reader(self):
        buffer = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                os._exit(3)      # the kernel is gone: so are we
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                if "event" in message:
                    threading.Thread(target=self.on_event, args=(message,), daemon=True).start()
                else:
                    self.replies.put(message)

    def call(self, request):
        with self.lock:
            self.sock.sendall((json.dumps(request) + "\n").encode())
            return self.replies.get(timeout=30)


class FakeQemu:
    def __init__(self, args):
        self.vm = args.vm
        self.lock = threading.RLock()
        self.devices = {}          # id -> {"driver", "host"/"usb", "bus", "pending"}
        self.fdsets = {}           # id -> [fd]
        self.next_fdset = 0
        self.pending_fds = []
        self.guest = {"mode": "cooperate", "delay": 0.1, "busy": 0, "add-delay": 0,
                      "hold-add": 0}
        self.adds = 0              # device_adds done since the last "guest" op
        self.conn = None
        self.send_lock = threading.Lock()
        self.kernel = KernelClient(args.kernel, args.vm, self.on_kernel_event)
        self.log = open(args.log, "a") if args.log else None

    def trace(self, text):
        if self.log:
            self.log.write(f"{time.monotonic():.3f} {text}\n")
            self.log.flush()

    # -- QMP ------------------------------------------------------------

    def send(self, message, conn=None):
        conn = conn or self.conn
        if conn is None:
            return
        data = (json.dumps(message) + "\r\n").encode()
        try:
            with self.send_lock:
                conn.sendall(data)
        except OSError:
            pass

    def event(self, name, **data):
        now = time.time()
        self.trace(f"event {name} {data}")
        self.send({"event": name, "data": data,
                   "timestamp": {"seconds": int(now), "microseconds": int(now % 1 * 1e6)}})

    def serve_qmp(self, path):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(4)
        while True:
            conn, _ = server.accept()
            self.conn = conn
            self.trace("qmp connected")
            self.send({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7},
                                           "package": "fake"}, "capabilities": ["oob"]}})
            buffer = b""
            try:
                while True:
                    data, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
                    for level, kind, payload in ancdata:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds = array.array("i")
                            fds.frombytes(payload[:len(payload) - len(payload) % 4])
                            self.pending_fds.extend(fds)
                    if not data:
                        break
                    buffer += data
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            self.handle(json.loads(line))
            except OSError:
                pass
            self.trace("qmp disconnected")
            with self.send_lock:
                self.conn = None
            conn.close()

    def reply(self, request, value=None, error=None):
        message = {"error": error} if error else {"return": {} if value is None else value}
        if "id" in request:
            message["id"] = request["id"]
        self.send(message)

    @staticmethod
    def generic(desc):
        return {"class": "GenericError", "desc": desc}

    def handle(self, request):
        command = request.get("execute")
        args = request.get("arguments", {}) or {}
        self.trace(f"<- {command} {json.dumps(args)}")
        with self.lock:
            handler = getattr(self, "qmp_" + command.replace("-", "_"), None)
            if handler is None:
                self.reply(request, error={"class": "CommandNotFound",
                                           "desc": f"The command {command} has not been found"})
                return
            handler(request, args)

    def qmp_qmp_capabilities(self, request, args):
        self.reply(request)

    def qmp_query_target(self, request, args):
        self.reply(request, {"arch": "x86_64"})

    def qmp_query_memory_size_summary(self, request, args):
        self.reply(request, {"base-memory": 134217728, "plugged-memory": 0})

    def qmp_query_fdsets(self, request, args):
        self.reply(request, [{"fdset-id": i, "fds": [{"fd": fd} for fd in fds]}
                             for i, fds in self.fdsets.items()])

    def qmp_add_fd(self, request, args):
        if not self.pending_fds:
            self.reply(request, error=self.generic("No file descriptor supplied via SCM_RIGHTS"))
            return
        fd = self.pending_fds.pop(0)
        fdset = args.get("fdset-id")
        if fdset is None:
            fdset = self.next_fdset
            while fdset in self.fdsets:
                fdset += 1
            self.next_fdset = fdset + 1
        self.fdsets.setdefault(fdset, []).append(fd)
        self.reply(request, {"fdset-id": fdset, "fd": fd})

    def qmp_remove_fd(self, request, args):
        fdset = args.get("fdset-id")
        if fdset not in self.fdsets:
            self.reply(request, error=self.generic(f"File descriptor named 'fdset-id:{fdset}' "
                                                   f"not found"))
            return
        for fd in self.fdsets.pop(fdset):
            os.close(fd)
        self.reply(request)

    def qmp_qom_list(self, request, args):
        path = args.get("path")
        if path == "/machine/peripheral":
            entries = [{"name": "type", "type": "string"}]
            entries += [{"name": "usb", "type": "child<qemu-xhci>"}]
            entries += [{"name": p, "type": "child<pcie-root-port>"} for p in ROOT_PORTS]
            entries += [{"name": i, "type": f"child<{d['driver']}>"}
                        for i, d in self.devices.items()]
            self.reply(request, entries)
        elif path == "/machine/peripheral-anon":
            self.reply(request, [{"name": "type", "type": "string"}])
        else:
            self.reply(request, error={"class": "DeviceNotFound",
                                       "desc": f"Device '{path}' not found"})

    def qmp_qom_get(self, request, args):
        path, prop = args.get("path", ""), args.get("property")
        if path == "/machine" and prop == "type":
            self.reply(request, "pc-q35-7.2-machine")
            return
        name = path.rsplit("/", 1)[-1]
        values = {}
        if name == "usb":
            values = {"parent_bus": "/machine/q35/pcie.0", "addr": 8}
        elif name in ROOT_PORTS:
            values = {"parent_bus": "/machine/q35/pcie.0", "addr": 16 + 8 * ROOT_PORTS.index(name),
                      "hotplug": True}
        elif name in self.devices:
            device = self.devices[name]
            if device["driver"] == "vfio-pci":
                values = {"parent_bus": f"/machine/peripheral/{device['bus']}/{device['bus']}",
                          "addr": device["function"]}
            else:
                values = {"parent_bus": "/machine/peripheral/usb/usb.0"}
        else:
            self.reply(request, error={"class": "DeviceNotFound",
                                       "desc": f"Device '{path}' not found"})
            return
        # every QOM object has its type (hostdevd asks whether a device exists by it)
        values["type"] = ("qemu-xhci" if name == "usb" else "pcie-root-port" if name in ROOT_PORTS
                          else self.devices[name]["driver"])
        if prop not in values:
            self.reply(request, error=self.generic(f"Property '{prop}' not found"))
            return
        self.reply(request, values[prop])

    def qmp_x_query_usb(self, request, args):
        lines = [f"  Device 0.{n + 2}, Port {n + 1}, Speed 12 Mb/s, Product USB Host Device, "
                 f"ID: {i}" for n, i in enumerate(i for i, d in self.devices.items()
                                                  if d["driver"] == "usb-host")]
        self.reply(request, {"human-readable-text": "".join(line + "\n" for line in lines)})

    def qmp_device_add(self, request, args):
        driver, device_id = args.get("driver"), args.get("id")
        if device_id in self.devices or device_id in ROOT_PORTS or device_id == "usb":
            self.reply(request, error=self.generic(f"Duplicate device ID '{device_id}'"))
            return
        if driver == "vfio-pci":
            bus = args.get("bus")
            if bus not in ROOT_PORTS:
                self.reply(request, error=self.generic(f"Bus '{bus}' not found"))
                return
            function = self.function_of(args.get("addr"))
            for other_id, other in self.devices.items():
                if other.get("bus") != bus:
                    continue
                # QEMU: no function of an announced slot, no function twice, and function 0
                # of a slot with other functions only as a multifunction device
                if other["function"] in (0, function) or \
                        (function == 0 and not args.get("multifunction")):
                    self.reply(request, error=self.generic(
                        f"PCI: slot 0 function {function} not available for vfio-pci, in use "
                        f"by {other['driver']},id={other_id}"))
                    return
            host = args.get("host")
            error = self.kernel.call({"op": "open-vfio", "bdf": host})["error"]
            if error:
                self.reply(request, error=self.generic(error))
                return
            self.devices[device_id] = {"driver": driver, "host": host, "bus": bus,
                                       "function": function, "pending": False}
            self.reply_added(request)
        elif driver == "usb-host":
            hostdevice = args.get("hostdevice", "")
            if not hostdevice.startswith("/dev/fdset/"):
                self.reply(request, error=self.generic("the lifecycle runner's QEMU only takes "
                                                       "USB devices as descriptors"))
                return
            fds = self.fdsets.get(int(hostdevice[len("/dev/fdset/"):]), [])
            if not fds:
                self.reply(request, error=self.generic(f"failed to open host usb device "
                                                       f"{hostdevice}"))
                return
            target = os.readlink(f"/proc/self/fd/{fds[0]}")
            parts = target.rstrip("/").split("/")
            key = f"{int(parts[-2])}-{int(parts[-1])}"
            error = self.kernel.call({"op": "open-usb", "key": key})["error"]
            if error:
                self.reply(request, error=self.generic(error))
                return
            self.devices[device_id] = {"driver": driver, "usb": key, "pending": False}
            self.reply_added(request)
        else:
            self.reply(request, error=self.generic(f"'{driver}' is not a valid device model name"))

    def reply_added(self, request):
        self.adds += 1
        if self.guest["hold-add"] and self.adds >= self.guest["hold-add"]:
            self.trace(f"holding the answer of device_add number {self.adds}")
            return
        if self.guest["add-delay"]:
            self.later(self.guest["add-delay"], lambda: self.reply(request))
        else:
            self.reply(request)

    def qmp_device_del(self, request, args):
        device_id = args.get("id")
        device = self.devices.get(device_id)
        if device is None:
            self.reply(request, error={"class": "DeviceNotFound",
                                       "desc": f"Device '{device_id}' not found"})
            return
        slot_zero = self.function_zero(device)
        if device["driver"] == "usb-host" or (slot_zero is None and device["function"]):
            # USB unplug is immediate, and so is that of a function the guest was never
            # told of (its slot has no function 0): the event comes before the reply
            self.remove(device_id)
            self.reply(request)
            return
        if slot_zero is not None and slot_zero != device_id:
            # the guest is asked to let the whole slot go (QEMU pushes the slot's button)
            device_id, device = slot_zero, self.devices[slot_zero]
        if device["pending"]:
            self.reply(request, error=self.generic(
                f"Device {device_id} is already in the process of unplug"))
            return
        if self.guest["mode"] == "busy" and self.guest["busy"] > 0:
            self.guest["busy"] -= 1
            self.reply(request, error=self.generic(
                "Hot-unplug failed: guest is busy (power indicator blinking)"))
            return
        self.reply(request)
        self.unplug_request(device_id)

    def unplug_request(self, device_id):
        """The guest is asked to let go; what it does is scripted."""
        device = self.devices.get(device_id)
        if device is None or device["pending"]:
            return
        device["pending"] = True
        mode = self.guest["mode"]
        if mode == "silent":
            return
        delay = self.guest["delay"] if mode == "slow" else 0.05
        if mode == "refuse":
            def refuse():
                with self.lock:
                    if device_id in self.devices:
                        self.devices[device_id]["pending"] = False
                        self.event("DEVICE_UNPLUG_GUEST_ERROR", device=device_id,
                                   path=f"/machine/peripheral/{device_id}")
            self.later(0.1, refuse)
            return
        self.later(delay, lambda: self.remove_slot(device_id))

    def remove_slot(self, device_id):
        """The guest let go of @device_id: with its function 0, the whole slot goes."""
        with self.lock:
            device = self.devices.get(device_id)
            others = [i for i, d in self.devices.items()
                      if device and d.get("bus") == device.get("bus") and i != device_id] \
                if device and device.get("function") == 0 else []
        for other in others:
            self.remove(other)
        self.remove(device_id)

    @staticmethod
    def function_of(addr):
        """The function of a device_add's "addr" ("0x0", "0x0.0x1"; slot 0 only)."""
        return int(str(addr or "0").split(".")[1], 16) if "." in str(addr or "") else 0

    def function_zero(self, device):
        """Return: the id of function 0 of @device's slot, None without one."""
        if device["driver"] != "vfio-pci":
            return None
        return next((i for i, d in self.devices.items()
                     if d.get("bus") == device["bus"] and d["function"] == 0), None)

    @staticmethod
    def later(delay, function):
        timer = threading.Timer(delay, function)
        timer.daemon = True
        timer.start()

    def remove(self, device_id):
        """The device leaves: QEMU finalizes it, which closes its VFIO descriptors
        (vfio_instance_finalize) before device_finalize sends DEVICE_DELETED."""
        with self.lock:
            device = self.devices.pop(device_id, None)
            if device is None:
                return
            if "host" in device:
                self.kernel.call({"op": "close", "bdf": device["host"]})
            else:
                self.kernel.call({"op": "close", "usb": device["usb"]})
            self.event("DEVICE_DELETED", device=device_id, path=f"/machine/peripheral/{device_id}")

    def on_kernel_event(self, message):
        if message.get("event") == "vfio-request":
            with self.lock:
                for device_id, device in self.devices.items():
                    if device.get("host") == message["bdf"]:
                        self.trace(f"vfio request for {device_id}")
                        self.unplug_request(device_id)

    # -- the runner's side channel --------------------------------------

    def serve_control(self, path):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(4)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=self.control_client, args=(conn,), daemon=True).start()

    def control_client(self, conn):
        file = conn.makefile("rwb")
        for line in file:
            request = json.loads(line)
            with self.lock:
                if request["op"] == "guest":
                    self.guest = {"mode": request.get("mode", "cooperate"),
                                  "delay": request.get("delay", 0.1),
                                  "busy": request.get("busy", 0),
                                  "add-delay": request.get("add-delay", 0),
                                  "hold-add": request.get("hold-add", 0)}
                    self.adds = 0
                    reply = {}
                elif request["op"] == "devices":
                    reply = {"devices": json.loads(json.dumps(self.devices))}
                else:
                    reply = {"error": "unknown op"}
            file.write((json.dumps(reply) + "\n").encode())
            file.flush()
        conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vm", required=True)
    parser.add_argument("--qmp", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--kernel", required=True)
    parser.add_argument("--log")
    args = parser.parse_args()
    qemu = FakeQemu(args)

    def on_term(signum, frame):
        qemu.event("SHUTDOWN", guest=False, reason="host-signal")
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=qemu.serve_control, args=(args.control,), daemon=True).start()
    qemu.serve_qmp(args.qmp)


if __name__ == "__main__":
    sys.exit(main())
