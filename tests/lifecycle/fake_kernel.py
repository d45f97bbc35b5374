#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The fake kernel of the lifecycle runner: a FUSE filesystem serving a sysfs
and /dev tree (the real snapshot tests/fixtures/sysfs-linux-6.1-q35-viommu)
with the semantics hostdevd relies on, shared by every process of a run.

It reproduces tests/unit/host-fixture.c across processes: writes change the
state before write() returns; driver_override reads "(null)" when empty;
writing a BDF to drivers/X/unbind removes the driver link; drivers_probe
binds the override's driver, else the native one; a function's "enable"
counts its user (a QEMU holding it on vfio-pci, or its host driver);
/dev/vfio/N appears when the first member of group N binds to vfio-pci
and goes with the last; an unbind from vfio-pci blocks while a (fake)
QEMU holds the device, and the kernel asks that QEMU to release it (the
VFIO "request", which QEMU turns into an unplug); the probe of a host
driver fails with EINVAL while another member of the group is held;
chown/chmod of /dev/vfio/N are kept.

A control socket (JSON lines) serves the fake QEMUs (open/close a VFIO
device or a USB device; a connection that closes is a process that exited:
its devices are released after --exit-delay) and the runner (state, faults:
slow, failing or held writes, a probe that binds nothing; violations seen).
A held write waits until the runner releases its name ("release"), so a
test orders events across hostdevd's threads without guessing a delay.

Usage: fake_kernel.py --tree DIR --mount DIR --control SOCKET
"""
import argparse
import errno
import json
import os
import socket
import stat
import sys
import threading
import time

sys.path.append("/usr/lib/python3/dist-packages")
import fuse  # noqa: E402  (python3-fuse)

fuse.fuse_python_api = (0, 2)

QEMU_UID = 65534   # the fake QEMUs run as "nobody" (hostdevd --qemu-user nobody)


class Node:
    __slots__ = ("kind", "data", "mode", "uid", "gid", "target", "mtime")

    def __init__(self, kind, mode, data=b"", target=None, uid=0, gid=0):
        self.kind = kind          # "d", "f", "l"
        self.mode = mode
        self.data = data
        self.target = target
        self.uid = uid
        self.gid = gid
        self.mtime = time.time()


class Kernel:
    def __init__(self, tree):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.nodes = {}
        self.children = {}
        self.load(tree)
        self.pci = {}        # BDF -> device dir (absolute, resolved)
        self.devdir = {}     # device dir -> BDF
        for name in self.listdir("/sys/bus/pci/devices"):
            real = self.resolve("/sys/bus/pci/devices/" + name)
            self.pci[name] = real
            self.devdir[real] = name
        self.native = {}
        for bdf in self.pci:
            driver = self.driver(bdf)
            if driver and driver != "vfio-pci":
                self.native[bdf] = driver
        # the snapshot put 0000:05:00.1 on vfio-pci by hand: its own driver is e1000e
        if "0000:05:00.1" in self.pci:
            self.native["0000:05:00.1"] = "e1000e"
        for path in ("/dev/vfio/vfio", "/dev/bus/usb/001/001", "/dev/bus/usb/001/002",
                     "/dev/bus/usb/002/001"):
            self.mkfile(path, 0o600 if "vfio" in path else 0o664)
        for group in self.groups_on_vfio():
            self.mkfile(f"/dev/vfio/{group}", 0o600)
        self.holders = {}        # BDF -> (vm, conn id)
        self.usb_holders = {}    # "BUS-DEV" -> (vm, conn id)
        self.dying = set()       # conn ids whose process exited, devices not yet released
        self.conns = {}          # conn id -> Conn
        self.faults = []
        self.violations = []
        self.writes_in_progress = 0
        self.released = set()    # names of held writes the runner let go
        self.exit_delay = 0.3
        self.log = []

    # -- the tree ---------------------------------------------------------

    def load(self, tree):
        for dirpath, dirnames, filenames in os.walk(tree):
            rel = "/" + os.path.relpath(dirpath, tree)
            rel = "/" if rel == "/." else rel
            st = os.lstat(dirpath)
            self.nodes[rel] = Node("d", stat.S_IMODE(st.st_mode))
            self.children.setdefault(rel, set())
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                child = (rel.rstrip("/") + "/" + name)
                st = os.lstat(path)
                self.children[rel].add(name)
                if stat.S_ISLNK(st.st_mode):
                    self.nodes[child] = Node("l", 0o777, target=os.readlink(path))
                elif stat.S_ISREG(st.st_mode):
                    try:
                        with open(path, "rb") as f:
                            data = f.read()
                    except OSError:
                        data = b""
                    self.nodes[child] = Node("f", stat.S_IMODE(st.st_mode), data)
        for top in ("/dev", "/proc"):
            self.mkdir(top)

    def mkdir(self, path):
        if path in self.nodes:
            return
        parent, name = os.path.split(path)
        self.mkdir(parent)
        self.nodes[path] = Node("d", 0o755)
        self.children.setdefault(path, set())
        self.children[parent].add(name)

    def mkfile(self, path, mode, data=b""):
        parent, name = os.path.split(path)
        self.mkdir(parent)
        self.nodes[path] = Node("f", mode, data)
        self.children[parent].add(name)

    def link(self, path, target):
        parent, name = os.path.split(path)
        self.mkdir(parent)
        self.nodes[path] = Node("l", 0o777, target=target)
        self.children[parent].add(name)

    def unlink(self, path):
        if path in self.nodes:
            del self.nodes[path]
            parent, name = os.path.split(path)
            self.children.get(parent, set()).discard(name)

    def listdir(self, path):
        return sorted(self.children.get(path, ()))

    def resolve(self, path):
        """A path with every symlink resolved (all targets are relative)."""
        parts = [p for p in path.split("/") if p]
        out = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if out:
                    out.pop()
                continue
            candidate = "/" + "/".join(out + [part])
            node = self.nodes.get(candidate)
            if node is not None and node.kind == "l" and hops < 40:
                hops += 1
                parts = [p for p in node.target.split("/") if p] + parts
                if node.target.startswith("/"):
                    out = []
                continue
            out.append(part)
        return "/" + "/".join(out)

    def lookup(self, path):
        """The node at @path, following symlinks in the directories above it."""
        parent, name = os.path.split(path)
        real_parent = self.resolve(parent) if parent != "/" else "/"
        return self.nodes.get(os.path.join(real_parent, name)), os.path.join(real_parent, name)

    # -- devices ----------------------------------------------------------

    def driver(self, bdf):
        node = self.nodes.get(self.pci[bdf] + "/driver")
        return os.path.basename(node.target) if node else None

    def group(self, bdf):
        node = self.nodes.get(self.pci[bdf] + "/iommu_group")
        return int(os.path.basename(node.target)) if node else -1

    def members(self, group):
        return sorted(b for b in self.pci if self.group(b) == group)

    def is_bridge(self, bdf):
        node = self.nodes.get(self.pci[bdf] + "/class")
        return node is not None and node.data.strip().startswith(b"0x06")

    def override(self, bdf):
        node = self.nodes.get(self.pci[bdf] + "/driver_override")
        text = node.data.decode().strip() if node else ""
        return "" if text == "(null)" else text

    def contents(self, node, real):
        """What reading @node (at @real) gives: a function's "enable" counts
        its user, as the kernel's does: vfio-pci enables it while a QEMU has
        it open, a host driver while bound (the snapshot's count otherwise)."""
        parent, name = os.path.split(real)
        bdf = self.devdir.get(parent)
        if name != "enable" or bdf is None or self.driver(bdf) is None:
            return node.data
        if self.driver(bdf) == "vfio-pci":
            return b"1\n" if bdf in self.holders else b"0\n"
        return b"1\n"

    def groups_on_vfio(self):
        return sorted({self.group(b) for b in self.pci if self.driver(b) == "vfio-pci"})

    @staticmethod
    def rel_target(from_dir, to):
        return os.path.relpath(to, from_dir)

    def bind(self, bdf, driver):
        ddir = f"/sys/bus/pci/drivers/{driver}"
        self.mkdir(ddir)
        dev = self.pci[bdf]
        self.link(dev + "/driver", self.rel_target(dev, ddir))
        self.link(f"{ddir}/{bdf}", self.rel_target(ddir, dev))
        if driver == "vfio-pci":
            node = f"/dev/vfio/{self.group(bdf)}"
            if node not in self.nodes:
                self.mkfile(node, 0o600)
        self.log.append(f"bind {bdf} {driver}")

    def group_held(self, group, except_bdf=None):
        return [b for b in self.members(group) if b != except_bdf and b in self.holders]

    def do_unbind(self, driver, bdf):
        if bdf not in self.pci or self.driver(bdf) != driver:
            return errno.ENODEV
        if driver == "vfio-pci":
            asked = False
            while bdf in self.holders:
                vm, conn_id = self.holders[bdf]
                if not asked and conn_id not in self.dying:
                    asked = True
                    self.violations.append(
                        f"{bdf} was unbound from vfio-pci while VM {vm}'s QEMU held it "
                        f"(the kernel asked that QEMU to release it)")
                    conn = self.conns.get(conn_id)
                    if conn:
                        conn.send({"event": "vfio-request", "bdf": bdf})
                self.cond.wait(0.5)
        dev = self.pci[bdf]
        self.unlink(dev + "/driver")
        self.unlink(f"/sys/bus/pci/drivers/{driver}/{bdf}")
        self.log.append(f"unbind {bdf} {driver}")
        if driver == "vfio-pci":
            group = self.group(bdf)
            if not any(self.driver(b) == "vfio-pci" for b in self.members(group)):
                self.unlink(f"/dev/vfio/{group}")
        return 0

    def do_probe(self, bdf, nothing=False):
        if bdf not in self.pci:
            return errno.ENODEV
        if self.driver(bdf) is not None or nothing:
            return 0
        override = self.override(bdf)
        if override:
            if f"/sys/bus/pci/drivers/{override}" in self.nodes:
                self.bind(bdf, override)
            return 0
        native = self.native.get(bdf)
        if native is None:
            return 0
        if self.group_held(self.group(bdf), bdf):
            # the group's DMA is owned by a VFIO user: no host driver may bind
            return errno.EINVAL
        self.bind(bdf, native)
        return 0

    def do_bind(self, driver, bdf):
        if bdf not in self.pci or self.driver(bdf) is not None:
            return errno.EBUSY if bdf in self.pci else errno.ENODEV
        if driver != "vfio-pci" and self.group_held(self.group(bdf), bdf):
            return errno.EINVAL
        self.bind(bdf, driver)
        return 0

    # -- writes -----------------------------------------------------------

    def take_fault(self, path):
        for fault in self.faults:
            if fault["match"] in path and fault.get("count", 1) > 0:
                fault["count"] = fault.get("count", 1) - 1
                return dict(fault)
        return None

    HOLD_LIMIT = 60   # a held write never outlives a runner that forgot it

    def stall(self, fault):
        """A slow write sleeps its delay; a held one waits for its release."""
        with self.lock:
            self.writes_in_progress += 1
            self.cond.notify_all()
        if fault.get("delay"):
            time.sleep(fault["delay"])
        with self.lock:
            deadline = time.monotonic() + self.HOLD_LIMIT
            while fault.get("hold") and fault["hold"] not in self.released \
                    and time.monotonic() < deadline:
                self.cond.wait(0.1)
            self.writes_in_progress -= 1

    def write(self, path, data):
        """Return: 0 or an errno."""
        with self.lock:
            node, real = self.lookup(path)
            if node is None:
                return errno.ENOENT
            if node.kind != "f":
                return errno.EISDIR
            fault = self.take_fault(real)
            self.log.append(f"write {real} {data.strip()!r}")
        if fault and (fault.get("delay") or fault.get("hold")):
            self.stall(fault)
        if fault and fault.get("errno"):
            return fault["errno"]
        value = data.decode(errors="replace").strip()
        with self.lock:
            try:
                parent, name = os.path.split(real)
                if name == "driver_override" and parent in self.devdir:
                    node.data = ((value or "(null)") + "\n").encode()
                    return 0
                if parent.startswith("/sys/bus/pci/drivers/") and name == "unbind":
                    return self.do_unbind(os.path.basename(parent), value)
                if parent.startswith("/sys/bus/pci/drivers/") and name == "bind":
                    return self.do_bind(os.path.basename(parent), value)
                if real == "/sys/bus/pci/drivers_probe":
                    return self.do_probe(value, nothing=bool(fault and fault.get("nothing")))
                node.data = data
                return 0
            finally:
                self.cond.notify_all()

    # -- the control socket -----------------------------------------------

    def state(self):
        with self.lock:
            pci = {}
            for bdf in self.pci:
                holder = self.holders.get(bdf)
                pci[bdf] = {"driver": self.driver(bdf), "override": self.override(bdf),
                            "group": self.group(bdf), "held-by": holder[0] if holder else None,
                            "dying": bool(holder and holder[1] in self.dying)}
            nodes = {}
            for name in self.listdir("/dev/vfio"):
                node = self.nodes[f"/dev/vfio/{name}"]
                nodes[name] = {"uid": node.uid, "gid": node.gid, "mode": node.mode}
            usb = {k: v[0] for k, v in self.usb_holders.items()}
            return {"pci": pci, "nodes": nodes, "usb": usb, "violations": list(self.violations),
                    "writes-in-progress": self.writes_in_progress}

    def open_vfio(self, conn, vm, bdf):
        with self.lock:
            if bdf not in self.pci:
                return f"vfio {bdf}: no such host device: No such file or directory"
            group = self.group(bdf)
            if self.driver(bdf) != "vfio-pci":
                return (f"vfio {bdf}: no such host device: No such file or directory")
            node = self.nodes.get(f"/dev/vfio/{group}")
            if node is None:
                return f"vfio {bdf}: failed to open /dev/vfio/{group}: No such file or directory"
            if node.uid != QEMU_UID and not node.mode & 0o006:
                return f"vfio {bdf}: failed to open /dev/vfio/{group}: Permission denied"
            for member in self.members(group):
                if member == bdf or self.is_bridge(member):
                    continue
                if self.driver(member) not in (None, "vfio-pci", "pci-stub"):
                    return (f"vfio {bdf}: group {group} is not viable. Please ensure all "
                            f"devices within the iommu_group are bound to their vfio bus driver.")
            for member in self.members(group):
                holder = self.holders.get(member)
                if holder and holder[1] != conn.id:
                    if holder[1] not in self.dying:
                        self.violations.append(f"VM {vm}'s QEMU was given {bdf} while VM "
                                               f"{holder[0]}'s QEMU holds IOMMU group {group}")
                    return (f"vfio {bdf}: failed to open /dev/vfio/{group}: "
                            f"Device or resource busy")
            if bdf in self.holders:
                return f"vfio {bdf}: device is already attached"
            self.holders[bdf] = (vm, conn.id)
            return None

    def open_usb(self, conn, vm, key):
        with self.lock:
            holder = self.usb_holders.get(key)
            if holder and holder[1] != conn.id:
                self.violations.append(f"VM {vm}'s QEMU was given USB device {key} while VM "
                                       f"{holder[0]}'s QEMU holds it")
                return "failed to open host usb device: Device or resource busy"
            self.usb_holders[key] = (vm, conn.id)
            return None

    def close_device(self, conn, bdf=None, usb=None):
        with self.lock:
            if bdf and self.holders.get(bdf, (None, None))[1] == conn.id:
                del self.holders[bdf]
            if usb and self.usb_holders.get(usb, (None, None))[1] == conn.id:
                del self.usb_holders[usb]
            self.cond.notify_all()

    def process_exited(self, conn):
        """The QEMU's fds close as it exits; the devices are free a little later."""
        with self.lock:
            self.dying.add(conn.id)
            self.conns.pop(conn.id, None)
            delay = self.exit_delay
            # usbfs lets go at once; VFIO tears the container down (unpins guest RAM) first
            for key in [k for k, v in self.usb_holders.items() if v[1] == conn.id]:
                del self.usb_holders[key]

        def release():
            with self.lock:
                for table in (self.holders, self.usb_holders):
                    for key in [k for k, v in table.items() if v[1] == conn.id]:
                        del table[key]
                self.dying.discard(conn.id)
                self.cond.notify_all()
        timer = threading.Timer(delay, release)
        timer.daemon = True
        timer.start()

    def release_all(self):
        with self.lock:
            self.holders.clear()
            self.usb_holders.clear()
            self.cond.notify_all()

    def control(self, conn, request):
        op = request.get("op")
        if op == "state":
            return self.state()
        if op == "hello":
            conn.vm = request["vm"]
            with self.lock:
                self.conns[conn.id] = conn
            return {}
        if op == "open-vfio":
            return {"error": self.open_vfio(conn, conn.vm, request["bdf"])}
        if op == "open-usb":
            return {"error": self.open_usb(conn, conn.vm, request["key"])}
        if op == "close":
            self.close_device(conn, request.get("bdf"), request.get("usb"))
            return {}
        if op == "fault":
            with self.lock:
                self.faults.append(request["fault"])
            return {}
        if op == "release":
            with self.lock:
                self.released.add(request["name"])
                self.cond.notify_all()
            return {}
        if op == "clear-faults":
            with self.lock:
                self.faults.clear()
            return {}
        if op == "exit-delay":
            with self.lock:
                self.exit_delay = request["seconds"]
            return {}
        if op == "wait-write":
            deadline = time.monotonic() + request.get("timeout", 5)
            with self.lock:
                while self.writes_in_progress == 0 and time.monotonic() < deadline:
                    self.cond.wait(0.05)
                return {"in-progress": self.writes_in_progress}
        if op == "release-all":
            self.release_all()
            return {}
        if op == "log":
            with self.lock:
                return {"log": list(self.log)}
        return {"error": f"unknown op {op}"}


class Conn:
    counter = 0

    def __init__(self, sock):
        Conn.counter += 1
        self.id = Conn.counter
        self.sock = sock
        self.vm = None
        self.lock = threading.Lock()

    def send(self, message):
        try:
            with self.lock:
                self.sock.sendall((json.dumps(message) + "\n").encode())
        except OSError:
            pass


def serve_control(kernel, path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)

    def client(sock):
        conn = Conn(sock)
        buffer = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        request = json.loads(line)
                        reply = kernel.control(conn, request)
                        reply["reply"] = request.get("seq")
                        conn.send(reply)
        except OSError:
            pass
        finally:
            if conn.vm is not None:
                kernel.process_exited(conn)
            sock.close()

    while True:
        sock, _ = server.accept()
        threading.Thread(target=client, args=(sock,), daemon=True).start()


class SysFs(fuse.Fuse):
    kernel = None

    def getattr(self, path):
        k = self.kernel
        with k.lock:
            node, _ = k.lookup(path) if path != "/" else (k.nodes["/"], "/")
            if node is None:
                return -errno.ENOENT
            st = fuse.Stat()
            st.st_uid, st.st_gid = node.uid, node.gid
            st.st_atime = st.st_mtime = st.st_ctime = int(node.mtime)
            if node.kind == "d":
                st.st_mode = stat.S_IFDIR | node.mode
                st.st_nlink = 2
            elif node.kind == "l":
                st.st_mode = stat.S_IFLNK | 0o777
                st.st_nlink = 1
                st.st_size = len(node.target)
            else:
                st.st_mode = stat.S_IFREG | node.mode
                st.st_nlink = 1
                st.st_size = len(node.data) if node.data else 4096
            return st

    def readlink(self, path):
        with self.kernel.lock:
            node, _ = self.kernel.lookup(path)
            if node is None:
                return -errno.ENOENT
            if node.kind != "l":
                return -errno.EINVAL
            return node.target

    def readdir(self, path, offset):
        with self.kernel.lock:
            real = self.kernel.resolve(path) if path != "/" else "/"
            node = self.kernel.nodes.get(real)
            if node is None or node.kind != "d":
                return -errno.ENOTDIR
            names = [".", ".."] + self.kernel.listdir(real)
        return [fuse.Direntry(name) for name in names]

    def open(self, path, flags):
        with self.kernel.lock:
            node, _ = self.kernel.lookup(path)
            if node is None:
                return -errno.ENOENT
            if node.kind == "d":
                return -errno.EISDIR
        return 0

    def read(self, path, size, offset):
        with self.kernel.lock:
            node, real = self.kernel.lookup(path)
            if node is None:
                return -errno.ENOENT
            return self.kernel.contents(node, real)[offset:offset + size]

    def write(self, path, buf, offset):
        err = self.kernel.write(path, bytes(buf))
        return -err if err else len(buf)

    def truncate(self, path, size):
        return 0

    def ftruncate(self, path, size, fh=None):
        return 0

    def flush(self, path, fh=None):
        return 0

    def release(self, path, flags, fh=None):
        return 0

    def fsync(self, path, isdatasync, fh=None):
        return 0

    def chown(self, path, uid, gid):
        with self.kernel.lock:
            node, real = self.kernel.lookup(path)
            if node is None:
                return -errno.ENOENT
            if uid != -1 and uid != 0xffffffff:
                node.uid = uid
            if gid != -1 and gid != 0xffffffff:
                node.gid = gid
            self.kernel.log.append(f"chown {real} {uid} {gid}")
            return 0

    def chmod(self, path, mode):
        with self.kernel.lock:
            node, real = self.kernel.lookup(path)
            if node is None:
                return -errno.ENOENT
            node.mode = stat.S_IMODE(mode)
            self.kernel.log.append(f"chmod {real} {stat.S_IMODE(mode):o}")
            return 0

    def utimens(self, path, ts_acc, ts_mod):
        return 0

    def access(self, path, mode):
        with self.kernel.lock:
            node, _ = self.kernel.lookup(path)
            return 0 if node is not None else -errno.ENOENT

    def statfs(self):
        return fuse.StatVfs(f_bsize=4096, f_frsize=4096, f_blocks=0, f_bfree=0, f_bavail=0,
                            f_files=len(self.kernel.nodes), f_ffree=0, f_namemax=255)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", required=True)
    parser.add_argument("--mount", required=True)
    parser.add_argument("--control", required=True)
    args = parser.parse_args()

    kernel = Kernel(args.tree)
    threading.Thread(target=serve_control, args=(kernel, args.control), daemon=True).start()
    server = SysFs(version="fake-kernel", usage="", dash_s_do="setsingle")
    server.kernel = kernel
    server.multithreaded = True
    server.fuse_args.mountpoint = args.mount
    server.fuse_args.setmod("foreground")
    for option in ("entry_timeout=0", "attr_timeout=0", "negative_timeout=0", "direct_io",
                   "allow_other", "fsname=fake-sysfs"):
        server.fuse_args.add(option)
    server.main()


if __name__ == "__main__":
    main()
