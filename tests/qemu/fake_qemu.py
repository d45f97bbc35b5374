# SPDX-License-Identifier: GPL-2.0-or-later
"""A scripted QMP peer for what a paused QEMU cannot be made to do.

It answers the handful of commands hostdevd sends for USB hot-plug the way
QEMU 7.2 does, keeps a device list, and lets the test decide what happens
on device_del: QEMU's usual reply, a "guest is busy" refusal for the first
N tries, no DEVICE_DELETED at all (a guest that never answers), or a
DEVICE_UNPLUG_GUEST_ERROR.  Events can also be sent at any later moment.
"""
import json
import os
import socket
import threading
import time


class FakeQemu:
    def __init__(self, path):
        self.path = path
        self.devices = {}                  # id -> device_add arguments
        self.on_device_del = "delete"      # "delete", "silent", "guest-error"
        self.busy_replies = 0              # refuse this many device_del first
        self.commands = []                 # every command received, in order
        self.lock = threading.Lock()
        self.conn = None
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # -- the peer ------------------------------------------------------

    def _send(self, message):
        data = (json.dumps(message) + "\r\n").encode()
        with self.lock:
            if self.conn:
                self.conn.sendall(data)

    def event(self, name, **data):
        now = time.time()
        self._send({"event": name, "data": data,
                    "timestamp": {"seconds": int(now), "microseconds": int(now % 1 * 1e6)}})

    def _serve(self):
        try:
            self.conn, _ = self.server.accept()
        except OSError:
            return
        self._send({"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0},
                                        "package": "fake"}, "capabilities": []}})
        buffer = b""
        while True:
            try:
                chunk = self.conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    self._handle(json.loads(line))

    def _reply(self, request, value=None, error=None):
        message = {"error": error} if error else {"return": {} if value is None else value}
        if "id" in request:
            message["id"] = request["id"]
        self._send(message)

    def _handle(self, request):
        command = request.get("execute")
        args = request.get("arguments", {})
        self.commands.append((command, args))
        if command == "qmp_capabilities":
            self._reply(request)
        elif command == "qom-list" and args.get("path") == "/machine/peripheral":
            self._reply(request, [{"name": "type", "type": "string"}] +
                        [{"name": i, "type": f"child<{d['driver']}>"} for i, d in self.devices.items()])
        elif command == "qom-list":
            self._reply(request, [{"name": "type", "type": "string"}])
        elif command == "query-target":
            self._reply(request, {"arch": "x86_64"})
        elif command == "qom-get" and args.get("path") == "/machine":
            self._reply(request, "pc-q35-7.2-machine")
        elif command == "device_add":
            if args["id"] in self.devices:
                self._reply(request, error={"class": "GenericError",
                                            "desc": f"Duplicate device ID '{args['id']}'"})
            else:
                self.devices[args["id"]] = args
                self._reply(request)
        elif command == "x-query-usb":
            lines = [f"  Device 0.0, Port {n}, Speed 12 Mb/s, Product USB Host Device, ID: {i}"
                     for n, i in enumerate(self.devices, 1)]
            self._reply(request, {"human-readable-text": "\n".join(lines) + "\n"})
        elif command == "device_del":
            self._device_del(request, args["id"])
        else:
            self._reply(request, error={"class": "CommandNotFound",
                                        "desc": f"The command {command} has not been found"})

    def _device_del(self, request, device):
        if device not in self.devices:
            self._reply(request, error={"class": "DeviceNotFound",
                                        "desc": f"Device '{device}' not found"})
            return
        if self.busy_replies > 0:
            self.busy_replies -= 1
            self._reply(request, error={"class": "GenericError",
                                        "desc": "Hot-unplug failed: guest is busy "
                                                "(power indicator blinking)"})
            return
        self._reply(request)
        if self.on_device_del == "delete":
            self.delete(device)
        elif self.on_device_del == "guest-error":
            self.event("DEVICE_UNPLUG_GUEST_ERROR", device=device,
                       path=f"/machine/peripheral/{device}")

    def delete(self, device):
        """The guest lets go: the device leaves, QEMU says so."""
        self.devices.pop(device, None)
        self.event("DEVICE_DELETED", device=device, path=f"/machine/peripheral/{device}")

    def count(self, command):
        return sum(1 for c, _ in self.commands if c == command)

    def close(self):
        with self.lock:
            if self.conn:
                try:
                    self.conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.conn.close()
                self.conn = None
        self.server.close()
        if os.path.exists(self.path):
            os.unlink(self.path)
