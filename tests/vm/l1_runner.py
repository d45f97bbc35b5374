# SPDX-License-Identifier: GPL-2.0-or-later
"""The scenario runner inside L1 (in the chroot of the host's root).

    l1_runner.py                 run the scenarios config.json selects

Each scenario runs in a forked child with a time limit; when the limit
passes, or when the child ends, the child's whole process group (its QEMUs
and hostdevds) is killed by PGID.
After each scenario the runner compares L1's host state (drivers,
driver_override, SR-IOV, USB drivers, /dev/vfio ownership) with the state
before it, puts back what differs, and fails a scenario that left anything
behind.  Results are JSON files in the share, read by vmtest.py on the host.
"""
import json
import os
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import l1lib  # noqa: E402
from l1lib import Failure  # noqa: E402
import scenarios  # noqa: E402

# Seconds a scenario may take: booted-guest scenarios include waiting for
# the guest, which boots in about 70 s alone and longer beside others.
TIME_LIMIT = {"booted": 600, "default": 300}

# What L1's emulated "host devices" must look like (see vmtest.py's L1
# command line): BDF -> (vendor, device, driver at boot).
EXPECTED_PCI = {
    "0000:01:00.0": ("0x8086", "0x10d3", "e1000e"),
    "0000:02:00.0": ("0x1b36", "0x0010", "nvme"),
    "0000:04:01.0": ("0x8086", "0x100e", "e1000"),
    "0000:04:02.0": ("0x8086", "0x100e", "e1000"),
    "0000:05:00.0": ("0x8086", "0x10d3", "e1000e"),
    "0000:05:00.1": ("0x8086", "0x10d3", "e1000e"),
}


def say(message):
    print(f"L1: {message}", flush=True)


def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.rename(tmp, path)


def preflight():
    """Wait for L1's drivers to bind, then check the topology: a wrong one
    would make every scenario fail for a reason that has nothing to do with
    hostdevd."""
    def settled():
        return all(l1lib.pci_driver(bdf) == driver for bdf, (_, _, driver) in EXPECTED_PCI.items()) \
            and len(l1lib.usb_find("0627", "0001")) == 2
    try:
        l1lib.wait_for(settled, 30, "L1's drivers to bind", interval=0.2)
    except Failure:
        pass
    problems = []
    for bdf, (vendor, device, driver) in EXPECTED_PCI.items():
        got = l1lib.pci_ids(bdf) + (l1lib.pci_driver(bdf),)
        if got != (vendor, device, driver):
            problems.append(f"{bdf}: expected {vendor}:{device} on {driver}, found {got}")
    if l1lib.usb_find("0627", "0001") != ["1-1.1", "1-1.2"]:
        problems.append(f"expected the two usb-kbd 0627:0001 at 1-1.1 and 1-1.2 (behind a usb-hub), "
                        f"found {l1lib.usb_find('0627', '0001')}")
    if not os.path.exists("/dev/vfio/vfio"):
        problems.append("no /dev/vfio/vfio: the vfio modules did not load")
    if not os.listdir("/sys/kernel/iommu_groups"):
        problems.append("no IOMMU groups: the emulated IOMMU is not enabled")
    if problems:
        lines = [f"  {bdf} {l1lib.pci_ids(bdf)} driver={l1lib.pci_driver(bdf)} "
                 f"group={l1lib.pci_group(bdf)}" for bdf in l1lib.all_pci()]
        raise Failure("L1 is not the machine the scenarios expect:\n" + "\n".join(problems)
                      + "\nL1's PCI devices:\n" + "\n".join(lines))


def restore_host(baseline):
    """Put L1's host state back to @baseline; Return: what differed."""
    now = l1lib.host_snapshot()
    differences = []
    for bdf, before in baseline["pci"].items():
        after = now["pci"].get(bdf)
        if after is None:
            differences.append(f"{bdf} disappeared")
            continue
        if after["numvfs"] != before["numvfs"]:
            differences.append(f"{bdf} sriov_numvfs {before['numvfs']} -> {after['numvfs']}")
            try:
                l1lib.sysfs_write(f"{l1lib.SYS_PCI}/{bdf}/sriov_numvfs", "0")
            except Failure as e:
                differences.append(f"  cannot reset it: {e}")
    for bdf, before in baseline["pci"].items():
        after = now["pci"].get(bdf)
        if after is None or not l1lib.pci_exists(bdf):
            continue
        if (after["driver"], after["override"]) != (before["driver"], before["override"]):
            differences.append(f"{bdf} driver {before['driver']} -> {after['driver']}, "
                               f"driver_override '{before['override']}' -> '{after['override']}'")
            try:
                l1lib.pci_bind_by_hand(bdf, before["override"] or None)
            except Failure as e:
                differences.append(f"  cannot restore it: {e}")
    for bdf in now["pci"]:
        if bdf not in baseline["pci"] and l1lib.pci_exists(bdf):
            differences.append(f"{bdf} appeared")
    for name, before in baseline["usb"].items():
        after = now["usb"].get(name)
        if after != before:
            differences.append(f"USB {name} driver {before} -> {after}")
    for iface, driver in _usb_interfaces().items():
        if driver is None and baseline.get("usb_interfaces", {}).get(iface):
            differences.append(f"USB interface {iface} lost its driver "
                               f"{baseline['usb_interfaces'][iface]}")
            try:
                l1lib.sysfs_write("/sys/bus/usb/drivers_probe", iface)
            except Failure as e:
                differences.append(f"  cannot restore it: {e}")
    for group, owner in now["vfio"].items():
        if owner and (owner["uid"], owner["gid"]) != (0, 0):
            differences.append(f"/dev/vfio/{group} left owned by {owner['uid']}:{owner['gid']}")
            try:
                os.chown(f"/dev/vfio/{group}", 0, 0)
            except OSError:
                pass
    return differences


def _usb_interfaces():
    return {name: l1lib.link_name(f"{l1lib.SYS_USB}/{name}/driver")
            for name in os.listdir(l1lib.SYS_USB) if ":" in name}


def snapshot_with_usb():
    snap = l1lib.host_snapshot()
    snap["usb_interfaces"] = _usb_interfaces()
    return snap


def run_child(number):
    """Run scenario @number in this process and write its result file."""
    config = l1lib.load_config()
    ctx = l1lib.Ctx(number, config)
    t0 = time.monotonic()
    ok, message = False, ""
    try:
        scenarios.SCENARIOS[number].function(ctx)
        ok = not ctx.failures
    except Failure as e:
        message = str(e)
    except Exception:
        message = "the scenario crashed:\n" + traceback.format_exc()
    finally:
        if ctx.failures:
            message = "\n".join(ctx.failures + ([message] if message else []))
        seconds = time.monotonic() - t0
        ctx.log(f"result: {'ok' if ok else 'FAILED'} in {seconds:.1f} s {message}")
        try:
            ctx.cleanup()
        except Exception:
            message += "\ncleanup failed:\n" + traceback.format_exc()
    write_json(os.path.join(l1lib.RESULTS, f"{number}.child.json"),
               {"ok": ok, "message": message, "seconds": round(seconds, 1)})
    return 0


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_forked(number, limit):
    """Run scenario @number in a forked child (no second interpreter start,
    which costs seconds under TCG) that leads its own session, so that
    everything it started can be killed by its process group.
    Return: (wait status, whether the time limit passed)."""
    out = os.open(os.path.join(l1lib.LOGS, f"s{number}.out"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setsid()
            os.dup2(out, 1)
            os.dup2(out, 2)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            code = run_child(number)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(out)
    deadline = time.monotonic() + limit
    status, timed_out = None, False
    while status is None:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            status = wait_status
        elif time.monotonic() > deadline:
            timed_out = True
            kill_group(pid)
            status = os.waitpid(pid, 0)[1]
        else:
            time.sleep(0.2)
    # Whatever the scenario left running goes with its process group.
    kill_group(pid)
    return status, timed_out


class GuestPool:
    """The booted L2 guests the scenarios share (l1lib.BOOTED_GUESTS)."""

    def __init__(self, config, selected):
        self.config = config
        self.users = {}                 # guest -> scenarios still to run on it
        for n in selected:
            guest = l1lib.GUEST_OF.get(n)
            if guest:
                self.users.setdefault(guest, []).append(n)
        self.guests = {}                # guest -> L2 (its process is ours)

    def start_all(self):
        for guest in self.users:
            self.start(guest)

    def start(self, guest):
        l2 = l1lib.start_pool_l2(self.config, guest, lambda argv, **kw: subprocess.Popen(argv, **kw))
        self.guests[guest] = l2
        write_json(os.path.join(l1lib.POOL, f"{guest}.json"),
                   {"dir": l2.dir, "pid": l2.pid, "serial": l2.serial})
        say(f"booting L2 guest {guest} (PID {l2.pid}) for scenarios {self.users[guest]}")

    def ready(self, n):
        """Whether scenario @n can go: its guest is up, or is gone (then the
        scenario starts its own and reports why that failed)."""
        guest = l1lib.GUEST_OF.get(n)
        l2 = self.guests.get(guest)
        return l2 is None or l2.process.poll() is not None or l1lib.guest_ready(l2.serial)

    def after(self, n):
        """Scenario @n is done with its guest: stop the guest when nobody
        needs it any more, else unplug what @n left in it.
        Return: a complaint about what was left, or None."""
        guest = l1lib.GUEST_OF.get(n)
        if guest is None or guest not in self.guests:
            return None
        self.users[guest].remove(n)
        l2 = self.guests[guest]
        if not self.users[guest]:
            self.stop(guest)
            return None
        left = l1lib.scrub_guest(l2)
        if left is None:
            self.stop(guest)
            self.start(guest)
            return f"the shared guest {guest} was unusable afterwards; booting a new one"
        if left:
            return f"the scenario left {left} in the shared guest {guest} (unplugged by the runner)"
        return None

    def stop(self, guest):
        l2 = self.guests.pop(guest)
        if l2.process.poll() is None:
            l2.process.terminate()
            try:
                l2.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                l2.process.kill()
                l2.process.wait()
        try:
            os.unlink(os.path.join(l1lib.POOL, f"{guest}.json"))
        except OSError:
            pass
        if os.path.exists(l2.serial):
            with open(l2.serial, "rb") as src, open(os.path.join(l1lib.LOGS, f"{guest}.serial"), "ab") as dst:
                dst.write(src.read())

    def stop_all(self):
        for guest in list(self.guests):
            self.stop(guest)


def next_scenario(pending, pool):
    """Run a booted-guest scenario as soon as its guest is up (then the
    guest can go and free L1's CPU); else one that needs no guest; else
    wait, bounded, for a guest."""
    deadline = time.monotonic() + TIME_LIMIT["booted"]
    while True:
        for n in pending:
            if n in l1lib.GUEST_OF and pool.ready(n):
                return n
        for n in pending:
            if n not in l1lib.GUEST_OF:
                return n
        if time.monotonic() > deadline:
            return pending[0]       # it waits for its guest itself, and says so
        time.sleep(1)


def main():
    config = l1lib.load_config()
    os.environ.update(config.get("env", {}))
    os.makedirs(l1lib.LOGS, exist_ok=True)
    os.makedirs(l1lib.RESULTS, exist_ok=True)
    os.makedirs(l1lib.POOL, exist_ok=True)
    selected = config["scenarios"]
    say(f"runner started; scenarios {selected}")

    try:
        preflight()
        setup_error = None
    except Failure as e:
        setup_error = str(e)
        say("preflight failed: " + setup_error.splitlines()[0])
    baseline = snapshot_with_usb()
    write_json(os.path.join(l1lib.LOGS, "baseline.json"), baseline)
    if setup_error:
        for n in selected:
            write_json(os.path.join(l1lib.RESULTS, f"{n}.json"),
                       {"ok": False, "message": setup_error, "seconds": 0})
        return 1

    pool = GuestPool(config, selected)
    pool.start_all()
    pending = list(selected)
    try:
        while pending:
            n = next_scenario(pending, pool)
            pending.remove(n)
            run_one(n, baseline, pool)
    finally:
        pool.stop_all()
        with open(os.path.join(l1lib.LOGS, "dmesg.txt"), "w") as f:
            subprocess.run(["dmesg"], stdout=f, stderr=subprocess.STDOUT, timeout=20)
    say("runner done")
    return 0


def kernel_log():
    try:
        return subprocess.run(["dmesg"], capture_output=True, text=True, timeout=20).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return []


def append_kernel_log(n, before, failed):
    """The kernel's messages during scenario @n go to its log; after a
    failure, with the stacks of blocked tasks (sysrq w): a process stuck in
    the kernel is what a VFIO problem looks like from outside."""
    if failed:
        try:
            with open("/proc/sysrq-trigger", "w") as f:
                f.write("w")
        except OSError:
            pass
    lines = kernel_log()[before:]
    with open(os.path.join(l1lib.LOGS, f"s{n}.log"), "a") as f:
        f.write("---- L1 kernel messages during the scenario\n" + "\n".join(lines) + "\n")


def run_one(n, baseline, pool):
    t0 = time.monotonic()
    kernel_before = len(kernel_log())
    booted = n in l1lib.GUEST_OF
    say(f"scenario {n} started: {scenarios.SCENARIOS[n].title}")
    limit = getattr(scenarios.SCENARIOS[n], "time_limit", None) \
        or TIME_LIMIT["booted" if booted else "default"]
    status, timed_out = run_forked(n, limit)
    seconds = time.monotonic() - t0
    child_file = os.path.join(l1lib.RESULTS, f"{n}.child.json")
    if timed_out:
        result = {"ok": False, "message": f"the scenario did not finish within its {limit} s limit"}
    elif os.path.exists(child_file):
        with open(child_file) as f:
            result = json.load(f)
    else:
        result = {"ok": False, "message": f"the scenario process died (wait status {status}) "
                                          "without writing a result"}
    leaked = []
    complaint = pool.after(n)
    if complaint:
        leaked.append(complaint)
    leaked += restore_host(baseline)
    if leaked:
        note = "L1's host state differed after the scenario (put back by the runner):\n  " \
            + "\n  ".join(leaked)
        if result["ok"]:
            result = {"ok": False, "message": "the scenario passed its own checks but left "
                      "the host changed. " + note}
        else:
            result["message"] += "\n" + note
    result["seconds"] = round(seconds, 1)
    append_kernel_log(n, kernel_before, not result["ok"])
    write_json(os.path.join(l1lib.RESULTS, f"{n}.json"), result)
    say(f"scenario {n} {'ok' if result['ok'] else 'FAILED'} ({seconds:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
