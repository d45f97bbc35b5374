#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The nested-VM suite, host side: real kernel VFIO under TCG, as TAP.

    vmtest.py [N ...]      run scenarios N (default: all registered as default,
                           or $HOSTDEVD_VM_SCENARIOS)

1. Debian's kernel (the package linux-image-amd64 points at) and
   busybox-static come from apt into a cache kept between runs; the kernel
   is unpacked once, busybox depmod writes its modules.dep, and only the
   dependency closure of the modules L1 needs is kept.
2. An L1 initramfs (busybox, those modules, l1-init.sh) and an L2 one
   (busybox, l2-init.sh) are written as cpio archives by this script.
3. L1 boots under TCG: q35, intel-iommu with interrupt remapping, emulated
   devices to pass through, the host's root read-only over 9p (so the host's
   QEMU, python3 and the freshly built hostdevd/hostdevctl run inside through
   chroot) and a read-write share for scripts, logs and results.
4. L1 runs l1_runner.py, which runs each scenario of scenarios.py; every
   scenario becomes one TAP line here, printed as soon as it is known.

Skipped (TAP "1..0 # SKIP", loudly) only when QEMU cannot run at all; any
other problem fails.  L1 is stopped on every exit path, with a time bound.

Environment: HOSTDEVD, HOSTDEVCTL, HOSTDEVD_CTL_CLIENT (binaries; the last is
bench/ctl-client, by default beside HOSTDEVD's build), QEMU, HOSTDEVD_VM_CACHE (default
$XDG_CACHE_HOME/hostdevd-vm or ~/.cache/hostdevd-vm), HOSTDEVD_VM_WORKDIR
(default /tmp/hostdevd-vm-UID; meson: BUILD/tests/vm/work), HOSTDEVD_VM_TIMEOUT (seconds for the whole L1 run,
default 1500), HOSTDEVD_TEST_SANDBOX (hostdevd's --sandbox, default off).
"""
import ctypes
import fcntl
import glob
import json
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenarios  # noqa: E402  (titles only; the scenarios run inside L1)

# Modules L1 loads (their dependencies come along): 9p over virtio for the
# shares, VFIO, and the drivers of the emulated devices.
MODULE_ROOTS = ["virtio_pci", "9pnet_virtio", "9p", "vfio-pci", "vfio_iommu_type1",
                "e1000e", "e1000", "nvme", "xhci-pci", "usbhid", "hid-generic"]

# The devices L1 gets to hand to its L2s (see scenarios.py for their BDFs).
L1_DEVICES = [
    "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
    "-device", "e1000e,bus=rp1",
    "-device", "pcie-root-port,id=rp2,chassis=2,slot=2",
    "-device", "nvme-subsys,id=nvsub0",
    "-device", "nvme,serial=nvpf0,bus=rp2,subsys=nvsub0,sriov_max_vfs=2,sriov_vq_flexible=4,"
               "sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=4",
    "-device", "pcie-root-port,id=rp3,chassis=3,slot=3",
    "-device", "pcie-pci-bridge,id=ppb,bus=rp3",
    "-device", "e1000,bus=ppb,addr=1",
    "-device", "e1000,bus=ppb,addr=2",
    "-device", "pcie-root-port,id=rp4,chassis=4,slot=4",
    "-device", "e1000e,bus=rp4,addr=0.0,multifunction=on",
    "-device", "e1000e,bus=rp4,addr=0.1",
    "-device", "qemu-xhci,id=xhci",
    # two identical keyboards (same vendor/product) at fixed ports of a hub
    # that switches each port's power (Linux's port `disable` re-enumerates
    # one of them; xHCI root ports ignore port power), so their port paths
    # are 1-1.1 and 1-1.2 on every boot; the same serial too, so only the
    # port tells them apart
    "-device", "usb-hub,bus=xhci.0,port=1,ports=2,port-power=on",
    "-device", "usb-kbd,bus=xhci.0,port=1.1,serial=twin",
    "-device", "usb-kbd,bus=xhci.0,port=1.2,serial=twin",
]

# Paths L1's chroot does not show from the host (fresh mounts there).
HIDDEN_IN_L1 = ("/tmp", "/run", "/dev", "/proc", "/sys")

# Environment variables passed on to the processes inside L1.
PASSED_ENV = re.compile(r"^(ASAN_|UBSAN_|LSAN_|G_DEBUG$|G_MESSAGES_DEBUG$|HOSTDEVD_TEST_)")


class Skip(Exception):
    """QEMU cannot run at all: the only reason to skip."""


class SetupError(Exception):
    """Anything else that stops the suite before a scenario could run."""


def note(message):
    """Progress on stderr (meson keeps it in the test log)."""
    sys.stderr.write(f"vmtest: {message}\n")
    sys.stderr.flush()


def run(argv, timeout=300, **kwargs):
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{' '.join(argv)} did not finish within {timeout} s")
    except OSError as e:
        raise SetupError(f"cannot run {argv[0]}: {e}")
    return result


def run_ok(argv, timeout=300, **kwargs):
    result = run(argv, timeout, **kwargs)
    if result.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-800:]}")
    return result


def hidden_in_l1(path):
    path = os.path.realpath(path)
    return any(path == p or path.startswith(p + "/") for p in HIDDEN_IN_L1)


# -- QEMU --------------------------------------------------------------------

def find_qemu():
    qemu = os.environ.get("QEMU") or "qemu-system-x86_64"
    path = shutil.which(qemu)
    if path is None:
        raise Skip(f"{qemu} is not installed (apt-get install qemu-system-x86)")
    try:
        result = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Skip(f"{path} cannot run: {e}")
    if result.returncode != 0:
        raise Skip(f"{path} cannot run: {result.stderr.strip()[:300]}")
    path = os.path.realpath(path)
    if hidden_in_l1(path):
        raise SetupError(f"QEMU at {path} would not be visible inside L1 (under {HIDDEN_IN_L1})")
    return path


# -- the cache: kernel, busybox, libvirt's schemas -----------------------------

def cache_dir():
    if os.environ.get("HOSTDEVD_VM_CACHE"):
        return os.environ["HOSTDEVD_VM_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hostdevd-vm")


def apt_depends_kernel():
    """The kernel package apt's linux-image-amd64 points at, or None."""
    result = run(["apt-cache", "depends", "linux-image-amd64"], timeout=120)
    match = re.search(r"Depends:\s*(linux-image-\S+-amd64)\b", result.stdout)
    return match.group(1) if match else None


def apt_download(packages, directory):
    argv = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:
        # As root apt would drop to _apt, which may not write here.
        argv += ["-o", "APT::Sandbox::User=root"]
    run_ok(argv + packages, timeout=600, cwd=directory)


def newest(pattern):
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    return found[-1] if found else None


def resolve_kernel_package(debs):
    package = apt_depends_kernel()
    if package is None and os.geteuid() == 0:
        note("apt knows no linux-image-amd64; running apt-get update")
        run(["apt-get", "update", "-q"], timeout=600)
        package = apt_depends_kernel()
    if package is None:
        cached = newest(os.path.join(debs, "linux-image-*-amd64_*.deb"))
        if cached is None:
            raise SetupError("apt offers no linux-image-amd64 and none is cached: "
                             "run apt-get update (as root) and retry")
        package = os.path.basename(cached).split("_")[0]
        note(f"apt offers no kernel; using the cached {package}")
    return package


def fetch_deb(package, debs):
    deb = newest(os.path.join(debs, f"{package}_*.deb"))
    if deb is None:
        note(f"downloading {package} with apt-get")
        apt_download([package], debs)
        deb = newest(os.path.join(debs, f"{package}_*.deb"))
        if deb is None:
            raise SetupError(f"apt-get download {package} left no .deb in {debs}")
    return deb


def parse_modules_dep(path):
    deps = {}
    with open(path) as f:
        for line in f:
            if ":" not in line:
                continue
            module, rest = line.split(":", 1)
            deps[module.strip()] = rest.split()
    return deps


def module_name(path):
    return re.sub(r"\.ko(\.\w+)?$", "", os.path.basename(path))


def load_order(deps, roots):
    """Module paths of @roots and their dependencies, each after what it needs."""
    by_name = {module_name(p).replace("-", "_"): p for p in deps}
    order = []

    def visit(path, chain):
        if path in order:
            return
        if path in chain:
            raise SetupError(f"module dependency cycle: {chain + [path]}")
        for dep in deps.get(path, []):
            visit(dep, chain + [path])
        order.append(path)

    for root in roots:
        path = by_name.get(root.replace("-", "_"))
        if path is None:
            raise SetupError(f"the kernel package has no module {root}")
        visit(path, [])
    return order


def prepare_kernel(cache):
    """Kernel, module closure and busybox, unpacked once per kernel version.
    Return: the prepared directory (vmlinuz, busybox, modules/, load-order)."""
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    package = resolve_kernel_package(debs)
    version = package[len("linux-image-"):]
    kernel_deb = fetch_deb(package, debs)
    busybox_deb = fetch_deb("busybox-static", debs)
    prepared = os.path.join(cache, f"kernel-{version}")
    stamp = json.dumps({"kernel": os.path.basename(kernel_deb), "busybox": os.path.basename(busybox_deb),
                        "modules": MODULE_ROOTS, "layout": 2})
    stamp_path = os.path.join(prepared, "stamp")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        return prepared, version

    note(f"unpacking {os.path.basename(kernel_deb)}")
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix=".unpack-", dir=cache)
    try:
        tree = os.path.join(work, "tree")
        run_ok(["dpkg-deb", "-x", kernel_deb, tree])
        run_ok(["dpkg-deb", "-x", busybox_deb, os.path.join(work, "busybox")])
        busybox = os.path.join(work, "busybox", "bin", "busybox")
        run_ok([busybox, "depmod", "-b", tree, version])
        moddir = os.path.join(tree, "lib", "modules", version)
        order = load_order(parse_modules_dep(os.path.join(moddir, "modules.dep")), MODULE_ROOTS)
        out = os.path.join(work, "prepared")
        os.makedirs(os.path.join(out, "modules"))
        for path in order:
            shutil.copy(os.path.join(moddir, path), os.path.join(out, "modules", module_name(path) + ".ko"))
        with open(os.path.join(out, "load-order"), "w") as f:
            f.write("".join(module_name(p) + "\n" for p in order))
        vmlinuz = os.path.join(tree, "boot", f"vmlinuz-{version}")
        shutil.copy(vmlinuz, os.path.join(out, "vmlinuz"))
        elf = extract_vmlinux(vmlinuz)
        if elf:
            with open(os.path.join(out, "vmlinux"), "wb") as f:
                f.write(elf)
        else:
            note("cannot extract an uncompressed kernel; booting the bzImage (slower)")
        shutil.copy(busybox, os.path.join(out, "busybox"))
        with open(os.path.join(out, "stamp"), "w") as f:
            f.write(stamp)
        shutil.rmtree(prepared, ignore_errors=True)
        os.rename(out, prepared)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    note(f"kernel {version} prepared in {time.monotonic() - t0:.1f} s: {len(order)} modules")

    # Keep the cache to one kernel: older ones are of no further use.
    for old in glob.glob(os.path.join(cache, "kernel-*")):
        if old != prepared:
            shutil.rmtree(old, ignore_errors=True)
    for old in glob.glob(os.path.join(debs, "linux-image-*.deb")) + glob.glob(os.path.join(debs, "busybox-static_*.deb")):
        if old not in (kernel_deb, busybox_deb):
            os.unlink(old)
    return prepared, version


def extract_vmlinux(bzimage):
    """The uncompressed ELF kernel inside Debian's bzImage (an xz payload),
    or None.  QEMU boots it directly through its PVH entry point
    (CONFIG_PVH=y), which skips the kernel's self-decompression: under
    nested TCG that alone takes minutes, against seconds this way."""
    data = read_bytes(bzimage)
    offset = data.find(b"\xfd7zXZ\x00")
    while offset >= 0:
        try:
            elf = lzma.LZMADecompressor().decompress(data[offset:])
            if elf.startswith(b"\x7fELF"):
                return elf
        except lzma.LZMAError:
            pass
        offset = data.find(b"\xfd7zXZ\x00", offset + 1)
    return None


def boot_kernel(prepared):
    """The kernel file QEMU's -kernel gets: the ELF one if there is one."""
    elf = os.path.join(prepared, "vmlinux")
    return elf if os.path.exists(elf) else os.path.join(prepared, "vmlinuz")


def nodedev_schema(cache):
    """libvirt's nodedev.rng: installed, or taken from the libvirt0 package."""
    installed = "/usr/share/libvirt/schemas/nodedev.rng"
    if os.path.exists(installed):
        return installed
    schemas = os.path.join(cache, "libvirt-schemas")
    if not os.path.exists(os.path.join(schemas, "nodedev.rng")):
        debs = os.path.join(cache, "debs")
        os.makedirs(debs, exist_ok=True)
        deb = fetch_deb("libvirt0", debs)
        work = tempfile.mkdtemp(prefix=".unpack-", dir=cache)
        try:
            run_ok(["dpkg-deb", "-x", deb, work])
            shutil.rmtree(schemas, ignore_errors=True)
            shutil.copytree(os.path.join(work, "usr", "share", "libvirt", "schemas"), schemas)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        os.unlink(deb)
    return os.path.join(schemas, "nodedev.rng")


# -- initramfs ---------------------------------------------------------------

class Cpio:
    """A newc ("070701") cpio archive, as the kernel unpacks an initramfs.
    Written here so that device nodes need no root."""

    def __init__(self):
        self.data = bytearray()
        self.inode = 1

    def _entry(self, name, mode, body=b"", rdev=(0, 0), nlink=1):
        encoded = name.encode() + b"\0"
        fields = (self.inode, mode, 0, 0, nlink, 0, len(body), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self.inode += 1
        self.data += b"070701" + "".join(f"{v:08x}" for v in fields).encode() + encoded
        self.data += b"\0" * (-len(self.data) % 4)
        self.data += body
        self.data += b"\0" * (-len(self.data) % 4)

    def directory(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, body, mode=0o644):
        self._entry(name, 0o100000 | mode, body)

    def char_device(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def write(self, path):
        # Uncompressed: gunzip under nested TCG costs more than reading more.
        self._entry("TRAILER!!!", 0)
        with open(path, "wb") as f:
            f.write(bytes(self.data))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def base_initramfs(prepared, init_script):
    archive = Cpio()
    for directory in ("bin", "dev", "proc", "sys", "tmp"):
        archive.directory(directory)
    archive.char_device("dev/console", 5, 1)
    archive.char_device("dev/null", 1, 3)
    archive.file("init", read_bytes(os.path.join(HERE, init_script)), 0o755)
    archive.file("bin/busybox", read_bytes(os.path.join(prepared, "busybox")), 0o755)
    return archive


def build_l1_initrd(prepared, path):
    archive = base_initramfs(prepared, "l1-init.sh")
    archive.directory("modules")
    for name in os.listdir(os.path.join(prepared, "modules")):
        archive.file(f"modules/{name}", read_bytes(os.path.join(prepared, "modules", name)))
    archive.file("modules/load-order", read_bytes(os.path.join(prepared, "load-order")))
    archive.write(path)


def build_l2_initrd(prepared, path):
    base_initramfs(prepared, "l2-init.sh").write(path)


# -- the share L1 mounts at /w (/tmp/w in its chroot) ---------------------------

def binary(name, default):
    path = os.environ.get(name) or default
    if not os.path.isabs(path):
        path = shutil.which(path) or os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise SetupError(f"{name}: {path} is not an executable (build first: ninja -C build)")
    return os.path.realpath(path)


def in_l1(path, share, subdir):
    """@path as L1's chroot sees it; copied into the share if hidden there."""
    if not hidden_in_l1(path):
        return path
    target = os.path.join(share, subdir)
    os.makedirs(target, exist_ok=True)
    shutil.copy(path, target)
    return os.path.join("/tmp/w", subdir, os.path.basename(path))


def l2_kernel(prepared, share):
    """The kernel in the share, where an L2 QEMU running as an unprivileged
    user can read it too (the cache may sit in root's home)."""
    source = boot_kernel(prepared)
    target = os.path.join(share, "l2", os.path.basename(source))
    try:
        os.link(source, target)
    except OSError:
        shutil.copy(source, target)
    os.chmod(target, 0o644)
    return "/tmp/w/l2/" + os.path.basename(source)


def prepare_share(share, prepared, qemu, selected, cache):
    if os.path.exists(share):
        shutil.rmtree(share)
    os.makedirs(os.path.join(share, "vm"))
    for name in ("l1_runner.py", "l1lib.py", "scenarios.py"):
        shutil.copy(os.path.join(HERE, name), os.path.join(share, "vm", name))
    # The shipped systemd unit, which scenario 15 runs under real systemd in L1.
    shutil.copy(os.path.join(HERE, "..", "..", "contrib", "systemd", "hostdevd@.service.in"),
                os.path.join(share, "vm", "hostdevd@.service.in"))
    # Compiled here by the very python3 L1 runs: compiling under TCG costs seconds.
    run_ok(["/usr/bin/python3", "-m", "compileall", "-q", os.path.join(share, "vm")])
    os.makedirs(os.path.join(share, "l2"))
    build_l2_initrd(prepared, os.path.join(share, "l2", "initrd"))
    hostdevd = binary("HOSTDEVD", "hostdevd")
    hostdevctl = binary("HOSTDEVCTL", "hostdevctl")
    # bench/ctl-client, the least a control-socket client can do (scenario 20
    # times hostdevd through it); beside hostdevd's build unless named
    ctl_client = os.environ.get("HOSTDEVD_CTL_CLIENT") or os.path.join(
        os.path.dirname(os.path.dirname(hostdevd)), "bench", "ctl-client")
    ctl_client = in_l1(os.path.realpath(ctl_client), share, "bin") \
        if os.access(ctl_client, os.X_OK) else ""
    schema = ""
    if 8 in selected:
        try:
            schema = nodedev_schema(cache)
            if hidden_in_l1(schema):
                shutil.copytree(os.path.dirname(schema), os.path.join(share, "schemas"))
                schema = "/tmp/w/schemas/nodedev.rng"
        except SetupError as e:
            note(f"libvirt's nodedev schema is unavailable, scenario 8 will fail: {e}")
    config = {
        "scenarios": selected,
        "hostdevd": in_l1(hostdevd, share, "bin"),
        "hostdevctl": in_l1(hostdevctl, share, "bin"),
        "ctl_client": ctl_client,
        "qemu": qemu,
        "l2_kernel": l2_kernel(prepared, share),
        "l2_initrd": "/tmp/w/l2/initrd",
        "nodedev_schema": schema,
        "sandbox": os.environ.get("HOSTDEVD_TEST_SANDBOX", "off"),
        "env": {k: v for k, v in os.environ.items() if PASSED_ENV.match(k)},
    }
    with open(os.path.join(share, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(share, "l1-run.sh"), "w") as f:
        f.write("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                "export HOME=/root LANG=C.UTF-8\n"
                "cd /tmp\n"
                "exec /usr/bin/python3 -S -B /tmp/w/vm/l1_runner.py\n")
    note(f"hostdevd {config['hostdevd']}, hostdevctl {config['hostdevctl']}, QEMU {qemu}")


# -- L1 ----------------------------------------------------------------------

def l1_argv(qemu, prepared, initrd, share):
    return [qemu, "-machine", "q35,accel=tcg,kernel-irqchip=split", "-cpu", "max", "-smp", "2",
            "-m", "4096", "-device", "intel-iommu,intremap=on",
            "-kernel", boot_kernel(prepared), "-initrd", initrd,
            # no_timer_check: under TCG on a loaded host the kernel's boot-time
            # check of the IO-APIC timer can miss its ticks, and with interrupt
            # remapping a miss is a panic ("timer doesn't work through
            # Interrupt-remapped IO-APIC"); the timer itself works
            "-append", "console=ttyS0 intel_iommu=on panic=-1 loglevel=4 cryptomgr.notests "
                       "no_timer_check",
            "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nodefaults",
            "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={share},mount_tag=work,security_model=none",
            *L1_DEVICES]


class Tap:
    """TAP lines in scenario order, each printed once it and all before it are known."""

    def __init__(self, selected):
        self.selected = selected
        self.done = {}
        self.printed = 0
        print(f"1..{len(selected)}", flush=True)

    def record(self, number, result):
        if number not in self.done:
            self.done[number] = result
        while self.printed < len(self.selected) and self.selected[self.printed] in self.done:
            n = self.selected[self.printed]
            self.printed += 1
            self._print(self.printed, n, self.done[n])

    def _print(self, index, number, result):
        seconds = result.get("seconds")
        timing = f" ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else ""
        title = scenarios.SCENARIOS[number].title
        print(f"{'ok' if result['ok'] else 'not ok'} {index} - scenario {number}: {title}{timing}", flush=True)
        if not result["ok"]:
            for line in result.get("message", "").splitlines():
                print(f"#   {line}", flush=True)
            for line in result.get("log_tail", []):
                print(f"#   | {line}", flush=True)

    def all_ok(self):
        return len(self.done) == len(self.selected) and all(r["ok"] for r in self.done.values())


def tail(path, lines, stop_at=None):
    """The last @lines lines of @path (of what comes before @stop_at)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    if stop_at and stop_at in text:
        text = text[:text.index(stop_at)]
    return text.splitlines()[-lines:]


def die_with_parent():
    """In the child before exec: SIGKILL when this script dies, however it
    dies, so that no L1 outlives the suite."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def boot_l1(qemu, prepared, initrd, share, tap, selected, timeout):
    """Run L1 until it powers off (or the time is up); Return: seconds it ran."""
    serial_log = os.path.join(share, "logs", "l1-serial.log")
    os.makedirs(os.path.dirname(serial_log), exist_ok=True)
    argv = l1_argv(qemu, prepared, initrd, share)
    with open(os.path.join(share, "logs", "l1-qemu-argv.txt"), "w") as f:
        f.write(" ".join(argv) + "\n")
    results = os.path.join(share, "results")
    t0 = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    note(f"L1 started (PID {process.pid}); serial console in {serial_log}")

    def pump():
        with open(serial_log, "wb") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                text = line.decode(errors="replace").rstrip()
                if text.startswith("L1:"):
                    note(f"[{time.monotonic() - t0:6.1f}s] {text}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = t0 + timeout
        while process.poll() is None and time.monotonic() < deadline:
            collect(results, tap, selected, share)
            time.sleep(0.5)
        if process.poll() is None:
            note(f"L1 did not finish within {timeout} s; stopping it")
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=10)
    collect(results, tap, selected, share)
    return time.monotonic() - t0, process.returncode


def collect(results, tap, selected, share):
    for number in selected:
        path = os.path.join(results, f"{number}.json")
        if number in tap.done or not os.path.exists(path):
            continue
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError):
            continue        # being written; the next poll reads it
        if not result["ok"]:
            result["log_tail"] = tail(os.path.join(share, "logs", f"s{number}.log"), 25,
                                      "---- L1 kernel messages")
        tap.record(number, result)


def selection(argv):
    words = argv or os.environ.get("HOSTDEVD_VM_SCENARIOS", "").replace(",", " ").split()
    if not words:
        return sorted(n for n, s in scenarios.SCENARIOS.items() if s.default)
    chosen = []
    for word in words:
        if not word.isdigit() or int(word) not in scenarios.SCENARIOS:
            sys.exit(f"vmtest: unknown scenario '{word}'; there are {sorted(scenarios.SCENARIOS)}")
        if int(word) not in chosen:
            chosen.append(int(word))
    return sorted(chosen)


def main(argv):
    selected = selection(argv)
    try:
        qemu = find_qemu()
    except Skip as e:
        message = f"SKIPPING the whole nested-VM suite: {e}"
        sys.stderr.write("\n" + "!" * 72 + f"\n!!! vmtest: {message}\n" + "!" * 72 + "\n\n")
        print(f"1..0 # SKIP {message}", flush=True)
        return 0

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)

    tap = Tap(selected)
    timings = {}
    workdir = os.path.abspath(os.environ.get("HOSTDEVD_VM_WORKDIR")
                              or os.path.join(tempfile.gettempdir(), f"hostdevd-vm-{os.getuid()}"))
    share = os.path.join(workdir, "share")
    t0 = time.monotonic()
    boot_status = None
    l1_started = None
    try:
        cache = cache_dir()
        os.makedirs(cache, exist_ok=True)
        with open(os.path.join(cache, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            prepared, version = prepare_kernel(cache)
            os.makedirs(workdir, exist_ok=True)
            prepare_share(share, prepared, qemu, selected, cache)
        initrd = os.path.join(workdir, "l1-initrd")
        build_l1_initrd(prepared, initrd)
        timings["prepare"] = time.monotonic() - t0
        note(f"kernel {version} from {cache}; prepared in {timings['prepare']:.1f} s")
        timeout = float(os.environ.get("HOSTDEVD_VM_TIMEOUT", "1500"))
        l1_started = time.monotonic()
        timings["L1"], boot_status = boot_l1(qemu, prepared, initrd, share, tap, selected, timeout)
    except SetupError as e:
        for number in selected:
            tap.record(number, {"ok": False, "message": f"the nested-VM harness could not run: {e}"})
    except KeyboardInterrupt as e:
        note(f"interrupted ({e}); L1 stopped")
    except Exception:
        problem = traceback.format_exc()
        for number in selected:
            tap.record(number, {"ok": False, "message": f"the nested-VM harness broke:\n{problem}"})
    finally:
        if l1_started is not None and "L1" not in timings:
            timings["L1"] = time.monotonic() - l1_started
        serial = os.path.join(share, "logs", "l1-serial.log")
        for number in selected:
            if number not in tap.done:
                tap.record(number, {"ok": False,
                                    "message": f"no result from L1 (L1 exit status {boot_status}); "
                                               f"the end of its serial console ({serial}):",
                                    "log_tail": tail(serial, 30)})

    total = time.monotonic() - t0
    print(f"# nested-VM suite: {total:.1f} s in all (preparation {timings.get('prepare', 0):.1f} s, "
          f"L1 boot to power-off {timings.get('L1', 0):.1f} s)", flush=True)
    for number in selected:
        result = tap.done.get(number, {})
        print(f"#   scenario {number}: {result.get('seconds', '-')} s "
              f"{'ok' if result.get('ok') else 'FAILED'}", flush=True)
    print(f"# logs: {os.path.join(share, 'logs')}", flush=True)
    return 0 if tap.all_ok() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
