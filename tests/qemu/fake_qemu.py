# SPDX-License-Identifier: GPL-2.0-or-later
"""A scripted QMP peer for what a paused QEMU cannot be made to do.

It answers the handful of commands hostdevd sends for USB hot-plug the way
QEMU 7.2 does, keeps a device list, and lets the test decide what happens
on device_del: QEMU's usual reply, a "guest is busy" refusal for the first
N tries, no DEVICE_DELETED at all (a guest that never answers), or a
DEVICE_UNPLUG_GUEST_ERROR.  Events can also be sent at any later moment.
A second device_del of a device whose unplug is pending gets QEMU 7.2's
"already in the process of unplug" error.  USB descriptors are taken with
add-fd (the descriptor itself is dropped).

Run as a program (`fake_qemu.py SOCKET`) it is a process of its own, whose
death hostdevd sees as QEMU's: several clients may connect (the test's own
view, unlike a real -qmp socket), and `x-fake-set` changes the guest's
behaviour from the test ("on-device-del", "busy-replies", "commands": what
query-commands lists, unanswered by default), `x-fake-count` tells how often
a command was received, `x-fake-args` a device's device_add arguments,
`x-fake-delete` lets a device go (its DEVICE_DELETED is sent before the
reply, as QEMU does for a USB device).
"""
import json
import os
import socket
import threading
import time


ZPCI_BUS = "/machine/s390-pcihost/s390-pcibus.0"


class FakeQemu:
    def __init__(self, path):
        self.path = path
        self.devices = {}                  # id -> device_add arguments
        self.on_device_del = "delete"      # "delete", "delete-first", "silent", "guest-error",
        #                                    "forge" (says deleted, keeps the device)
        self.busy_replies = 0              # refuse this many device_del first
        self.commands = []                 # every command received, in order
        self.pending = set()               # ids whose unplug the guest has not finished
        self.fdsets = []
        self.usb_address = {}              # id -> (bus, port) x-query-usb shows instead
        self.usb_controllers = {"usb": 4}  # qemu-xhci id -> its ports (p2 = p3)
        self.usb_extra_lines = []          # lines x-query-usb shows first (hostile products)
        self.command_list = None           # query-commands' answer; None: CommandNotFound
        self.arch = "x86_64"               # what query-target says (s390x: a zPCI host bus too)
        self.zpci = {}                     # s390x: zpci id -> {"uid", "fid", "target"} QOM shows
        self.refuse_driver = None          # device_add of this driver fails (a target QEMU cannot add)
        self.lock = threading.RLock()
        self.conn = None                   # the first client (hostdevd)
        self.conns = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # -- the peer ------------------------------------------------------

    def _send(self, message, conn=None):
        """A reply to @conn, or an event to every client."""
        data = (json.dumps(message) + "\r\n").encode()
        with self.lock:
            for peer in [conn] if conn else list(self.conns):
                try:
                    peer.sendall(data)
                except OSError:
                    pass

    def event(self, name, **data):
        now = time.time()
        self._send({"event": name, "data": data,
                    "timestamp": {"seconds": int(now), "microseconds": int(now % 1 * 1e6)}})

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
                if self.conn is None:
                    self.conn = conn
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        self._send({"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0},
                                        "package": "fake"}, "capabilities": []}}, conn)
        buffer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    self._handle(json.loads(line), conn)
        with self.lock:
            if conn in self.conns:
                self.conns.remove(conn)

    def _reply(self, request, value=None, error=None):
        message = {"error": error} if error else {"return": {} if value is None else value}
        if "id" in request:
            message["id"] = request["id"]
        self._send(message, self._current)

    def _handle(self, request, conn=None):
        # under the lock: another client's request must not redirect this one's reply
        with self.lock:
            self._current = conn or self.conn
            self._dispatch(request)

    def _dispatch(self, request):
        command = request.get("execute")
        args = request.get("arguments", {})
        self.commands.append((command, args))
        if command == "qmp_capabilities":
            self._reply(request)
        elif command == "qom-list" and args.get("path") == "/machine/peripheral":
            self._reply(request, [{"name": "type", "type": "string"}] +
                        [{"name": i, "type": "child<qemu-xhci>"} for i in self.usb_controllers] +
                        [{"name": i, "type": f"child<{d['driver']}>"} for i, d in self.devices.items()
                         if i not in self.zpci] +
                        [{"name": i, "type": "child<zpci>"} for i in self.zpci])
        elif command == "qom-list" and args.get("path") == ZPCI_BUS:
            self._reply(request, [{"name": "type", "type": "string"}] +
                        [{"name": f"child[{n}]", "type": "link<zpci>"} for n in range(len(self.zpci))])
        elif command == "qom-get" and args.get("path") == ZPCI_BUS:
            n = int(args["property"][len("child["):-1])
            self._reply(request, f"/machine/peripheral/{list(self.zpci)[n]}")
        elif (command == "qom-get" and args.get("property") in ("uid", "fid", "target") and
              args.get("path", "").rsplit("/", 1)[-1] in self.zpci):
            self._reply(request, self.zpci[args["path"].rsplit("/", 1)[-1]][args["property"]])
        elif command == "qom-list":
            self._reply(request, [{"name": "type", "type": "string"}])
        elif command == "query-target":
            self._reply(request, {"arch": self.arch})
        elif (command == "qom-get" and args.get("property") == "type" and
              args.get("path", "").startswith("/machine/peripheral/")):
            name = args["path"][len("/machine/peripheral/"):]
            if name in self.devices:
                self._reply(request, self.devices[name]["driver"])
            elif name in self.usb_controllers:
                self._reply(request, "qemu-xhci")
            else:
                self._reply(request, error={"class": "DeviceNotFound",
                                            "desc": f"Device '{args['path']}' not found"})
        elif command == "qom-get" and args.get("path") == "/machine":
            self._reply(request, "s390-ccw-virtio-7.2-machine" if self.arch == "s390x"
                        else "pc-q35-7.2-machine")
        elif (command == "qom-get" and args.get("property") in ("p2", "p3") and
              args.get("path", "").rsplit("/", 1)[-1] in self.usb_controllers):
            self._reply(request, self.usb_controllers[args["path"].rsplit("/", 1)[-1]])
        elif command == "device_add":
            if args.get("driver") == self.refuse_driver:
                self._reply(request, error={"class": "GenericError",
                                            "desc": f"vfio {args.get('host')}: no such host device"})
            elif args["id"] in self.devices:
                self._reply(request, error={"class": "GenericError",
                                            "desc": f"Duplicate device ID '{args['id']}'"})
            else:
                self.devices[args["id"]] = args
                if args.get("driver") == "zpci":
                    self.zpci[args["id"]] = {k: args.get(k) for k in ("uid", "fid", "target")}
                self._reply(request)
        elif command == "x-query-usb":
            lines = list(self.usb_extra_lines)
            buses = {f"{c}.0": n for n, c in enumerate(self.usb_controllers)}
            for n, (i, d) in enumerate(self.devices.items(), 1):
                bus, port = self.usb_address.get(
                    i, (buses.get(d.get("bus"), 0), d.get("port", n)))
                lines.append(f"  Device {bus}.0, Port {port}, Speed 12 Mb/s, "
                             f"Product USB Host Device, ID: {i}")
            self._reply(request, {"human-readable-text": "\n".join(lines) + "\n"})
        elif command == "device_del":
            self._device_del(request, args["id"])
        elif command == "add-fd":
            fdset = args.get("fdset-id", max(self.fdsets, default=-1) + 1)
            self.fdsets.append(fdset)
            self._reply(request, {"fdset-id": fdset, "fd": 100 + fdset})
        elif command == "remove-fd":
            if args.get("fdset-id") in self.fdsets:
                self.fdsets.remove(args["fdset-id"])
            self._reply(request)
        elif command == "query-fdsets":
            self._reply(request, [{"fdset-id": f, "fds": []} for f in self.fdsets])
        elif command == "query-memory-size-summary":
            self._reply(request, {"base-memory": 128 << 20})
        elif command == "query-commands" and self.command_list is not None:
            self._reply(request, [{"name": name} for name in self.command_list])
        elif command == "x-fake-args":
            self._reply(request, self.devices.get(args["id"], {}))
        elif command == "x-fake-count":
            self._reply(request, self.count(args["command"]))
        elif command == "x-fake-set":
            if "on-device-del" in args:
                self.on_device_del = args["on-device-del"]
            if "commands" in args:
                self.command_list = args["commands"]
            if "busy-replies" in args:
                self.busy_replies = args["busy-replies"]
            self._reply(request)
        elif command == "x-fake-delete":
            # the event first: it is on hostdevd's connection before the test goes on,
            # so a request the test sends next cannot overtake it
            self._delete(args["id"])
            self._reply(request)
        else:
            self._reply(request, error={"class": "CommandNotFound",
                                        "desc": f"The command {command} has not been found"})

    def _device_del(self, request, device):
        if device not in self.devices:
            self._reply(request, error={"class": "DeviceNotFound",
                                        "desc": f"Device '{device}' not found"})
            return
        if device in self.pending:
            self._reply(request, error={"class": "GenericError",
                                        "desc": f"Device {device} is already in the process "
                                                "of unplug"})
            return
        if self.busy_replies > 0:
            self.busy_replies -= 1
            self._reply(request, error={"class": "GenericError",
                                        "desc": "Hot-unplug failed: guest is busy "
                                                "(power indicator blinking)"})
            return
        if self.on_device_del == "delete-first":
            # what QEMU does for a USB device: gone, and the event sent, before the reply
            self._delete(device)
            self._reply(request)
            return
        self._reply(request)
        if self.on_device_del == "delete":
            self._delete(device)
        elif self.on_device_del == "silent":
            self.pending.add(device)
        elif self.on_device_del == "forge":
            self.pending.add(device)
            self.event("DEVICE_DELETED", device=device, path=f"/machine/peripheral/{device}")
        elif self.on_device_del == "guest-error":
            self.event("DEVICE_UNPLUG_GUEST_ERROR", device=device,
                       path=f"/machine/peripheral/{device}")

    def forge_deleted(self, device):
        """A lying QEMU: says the device left, and keeps it."""
        with self.lock:
            self.event("DEVICE_DELETED", device=device, path=f"/machine/peripheral/{device}")

    def delete(self, device):
        """The guest lets go: the device leaves, QEMU says so."""
        with self.lock:
            self._delete(device)

    def _delete(self, device):
        self.devices.pop(device, None)
        self.zpci.pop(device, None)
        self.pending.discard(device)
        self.event("DEVICE_DELETED", device=device, path=f"/machine/peripheral/{device}")

    def count(self, command):
        return sum(1 for c, _ in self.commands if c == command)

    def close(self):
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.conns = []
            self.conn = None
        self.server.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


if __name__ == "__main__":
    import signal
    import sys
    fake = FakeQemu(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        fake.thread.join()
    finally:
        fake.close()
