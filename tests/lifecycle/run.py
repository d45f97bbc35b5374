#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Randomized lifecycle runs of hostdevd (issue 16).

Per seed: a sequence of random steps over two or three VMs (a fake QEMU
process and the real hostdevd each) sharing host devices of a fake kernel
(FUSE, see fake_kernel.py): attach (managed yes/no), detach by XML or alias
with a cooperating, slow, refusing, busy or silent guest, a second detach
while one is pending, SIGKILL/SIGTERM/restart of hostdevd (also in the
middle of an operation, during a slow sysfs write), QEMU exit or kill, the
systemd stop order, another VM asking for the same device, nodedev-reattach
and nodedev-detach, slow and failing sysfs writes.  After every step, once
the system settles (bounded wait), invariants are checked against the fake
host and the fake QEMUs (see World.check).  A failing sequence is shrunk
and printed with the command that replays it.  Sequences written by hand
(tests/lifecycle/sequences) may also use "crash-at": hostdevd restarted with
HOSTDEVD_TEST_CRASH_AT kills itself right after journaling that point of
an action, a moment no timed signal hits surely; and "during": one action
while another is held in a slowed sysfs write.

  HOSTDEVD=build/broker/hostdevd HOSTDEVCTL=build/broker/hostdevctl \\
      tests/lifecycle/run.py --seeds 20 --steps 25          # what CI runs
  tests/lifecycle/run.py --seeds 100000 --hours 4           # a long run
  tests/lifecycle/run.py --seed 17 --steps 25               # one seed again
  tests/lifecycle/run.py --replay FILE                      # a printed sequence

Exit status: 0 all seeds passed, 1 a seed failed, 2 usage/setup error.
"""
import argparse
import json
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world import DEVICES, Violation, World, claim_live, nodedev_name  # noqa: E402

PCI = ["solo", "g0", "g1"]
ALL = PCI + ["usb"]


# -- generating ----------------------------------------------------------------

# Where HOSTDEVD_TEST_CRASH_AT can stop an action: each point right after hostdevd
# journals it (state.c), by the kind of action
CRASH_POINTS = {
    "attach": ["attaching:claim", "attaching:claims-taken", "attaching:claimed",
               "attaching:vfio-bind",
               "attaching:guest-memory", "attaching:memlock", "attaching:pass-fd",
               "attaching:device-add", "attaching:verify", "attached:done", "answered"],
    "batch": ["request:noted", "attaching:claimed", "attaching:vfio-bind",
              "attaching:device-add", "attached:done", "request:forgotten"],
    "detach": ["detaching:device-del", "detaching:wait-group", "detaching:host-release",
               "detaching:usb-revoke", "forgotten"],
}


def generate(seed, steps, crash_points=False):
    """The scenario of @seed: VMs, policy, and @steps steps (pure data).
    @crash_points: also crash-at and during steps (not in CI's budget: its seeds stay
    as they are)."""
    rng = random.Random(seed)
    vms = ["vm1", "vm2"] + (["vm3"] if rng.random() < 0.5 else [])
    takeover = {vm: rng.random() < 0.4 for vm in vms}
    up = {vm: "running" for vm in vms}   # running | daemonless | off | orphaned
    sequence = []

    likely = {}   # dev -> vm that probably holds it, so detaches mostly name real devices

    def action(vm):
        kind = rng.choices(["attach", "detach", "detach2", "batch"], [5, 4, 1, 1.5])[0]
        if kind == "batch":
            # two or three devices in one request; g0 and g1 together make one
            # multifunction slot
            devs = sorted(rng.sample(ALL, rng.choice([2, 2, 3])), key=ALL.index)
            for dev in devs:
                likely.setdefault(dev, vm)
            return {"op": "batch", "vm": vm, "devs": devs,
                    "managed": "no" if rng.random() < 0.2 else "yes"}
        mine = [d for d, v in likely.items() if v == vm]
        if kind != "attach" and mine and rng.random() < 0.85:
            dev = rng.choice(mine)
        elif kind == "attach" and rng.random() < 0.75:
            free = [d for d in ALL if d not in likely] or ALL
            dev = rng.choice(free)
        else:
            dev = rng.choice(ALL)
        if kind == "attach":
            likely.setdefault(dev, vm)
            return {"op": "attach", "vm": vm, "dev": dev,
                    "managed": "no" if dev != "usb" and rng.random() < 0.25 else "yes"}
        if likely.get(dev) == vm:
            del likely[dev]
        if kind == "detach":
            guest = rng.choices(["cooperate", "slow", "refuse", "busy", "silent"],
                                [6, 2, 1, 1, 0.3])[0]
            step = {"op": "detach", "vm": vm, "dev": dev, "guest": guest,
                    "by": rng.choice(["xml", "alias"]),
                    "wait": rng.choice([None, None, 0.3, 1.0])}
            if guest == "slow":
                step["delay"] = rng.choice([0.6, 1.5, 3.0])
            if guest == "busy":
                step["busy"] = rng.randint(1, 4)
            return step
        return {"op": "detach2", "vm": vm, "dev": dev if dev != "usb" else rng.choice(PCI),
                "by": rng.choice(["xml", "alias"])}

    def forget(vm):
        for dev in [d for d, v in likely.items() if v == vm]:
            del likely[dev]

    for _ in range(steps):
        running = [vm for vm in vms if up[vm] == "running"]
        down = [vm for vm in vms if up[vm] != "running"]
        weights = {"action": 10 if running else 0, "kill": 2 if running else 0,
                   "crash-during": 2 if running else 0, "fault": 1.5 if running else 0,
                   "qemu-exit": 0.8 if running else 0, "systemd-stop": 0.4 if running else 0,
                   "revive": 6 if down else 0, "reattach": 1, "nodedev-detach": 0.5}
        if crash_points:
            weights["crash-at"] = 3 if running else 0
            weights["during"] = 2 if running else 0
        kind = rng.choices(list(weights), list(weights.values()))[0]
        if kind == "action":
            sequence.append(action(rng.choice(running)))
        elif kind == "kill":
            vm = rng.choice(running)
            restart = rng.random() < 0.7
            sequence.append({"op": "kill", "vm": vm, "sig": rng.choice(["KILL", "TERM"]),
                             "restart": restart})
            if not restart:
                up[vm] = "daemonless"
        elif kind == "crash-during":
            vm = rng.choice(running)
            inner = action(vm)
            match = rng.choice(["driver_override", "unbind", "drivers_probe", None] +
                               # QEMU slow to answer: a crash between two devices of a request
                               (["device_add"] * 2 if inner["op"] == "batch" else []))
            crash = {"op": "crash-during", "vm": vm, "action": inner,
                     "sig": rng.choice(["KILL", "KILL", "TERM"]),
                     "slow": match, "after": round(rng.uniform(0.0, 0.3), 3)}
            if match == "device_add" and rng.random() < 0.6:
                # the kill once this many devices of the request are in QEMU
                crash["in-qemu"] = rng.randint(1, len(inner["devs"]))
            sequence.append(crash)
        elif kind == "crash-at":
            vm = rng.choice(running)
            inner = action(vm)
            points = CRASH_POINTS[inner["op"] if inner["op"] in CRASH_POINTS else "detach"]
            sequence.append({"op": "crash-at", "vm": vm, "point": rng.choice(points),
                             "action": inner, "may-miss": True})
        elif kind == "during":
            # a release (or an attach) held in a slowed write while another action comes
            inner = action(rng.choice(running))
            sequence.append({"op": "during", "action": inner, "then": action(rng.choice(running)),
                             "slow": rng.choice(["unbind", "drivers_probe", "driver_override"])})
        elif kind == "fault":
            vm = rng.choice(running)
            fault = rng.choice([{"match": "drivers_probe", "errno": 5},
                                {"match": "unbind", "errno": 16},
                                {"match": "driver_override", "errno": 5},
                                {"match": "drivers_probe", "nothing": True},
                                {"match": "unbind", "delay": 1.0}])
            fault["count"] = 1
            sequence.append({"op": "fault", "fault": fault, "action": action(vm)})
        elif kind == "qemu-exit":
            vm = rng.choice(running)
            sequence.append({"op": "qemu-exit", "vm": vm, "sig": rng.choice(["TERM", "KILL"]),
                             "delay": rng.choice([0.05, 0.3, 1.0])})
            up[vm] = "off"
            forget(vm)
        elif kind == "systemd-stop":
            vm = rng.choice(running)
            sequence.append({"op": "systemd-stop", "vm": vm})
            up[vm] = "orphaned"
            forget(vm)
        elif kind == "revive":
            vm = rng.choice(down)
            sequence.append({"op": "start-hostdevd" if up[vm] == "daemonless" else "start-vm",
                             "vm": vm})
            up[vm] = "running"
        elif kind == "reattach":
            sequence.append({"op": "reattach", "dev": rng.choice(PCI)})
        elif kind == "nodedev-detach":
            sequence.append({"op": "nodedev-detach", "dev": rng.choice(PCI)})
    return {"seed": seed, "vms": vms, "takeover": takeover, "steps": sequence}


# -- running ---------------------------------------------------------------------

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM}


class Runner:
    def __init__(self, world):
        self.world = world

    def vm_state(self, vm):
        v = self.world.vms[vm]
        if v.qemu_alive():
            return "running" if v.daemon_alive() else "daemonless"
        return "off"

    def apply_guest(self, step):
        guest = step.get("guest", "cooperate")
        self.world.qemu_call(step["vm"], {"op": "guest", "mode": guest,
                                          "delay": step.get("delay", 0.1),
                                          "busy": step.get("busy", 0)})

    def action_argv(self, step):
        w = self.world
        if step["op"] == "batch":
            return ["attach-device", step["vm"], w.batch_xml_file(step["devs"], step["managed"])]
        vm, dev = step["vm"], step["dev"]
        if step["op"] == "attach":
            return ["attach-device", vm, w.xml_file(dev, step["managed"])]
        wait = ["--wait", str(step["wait"])] if step.get("wait") is not None else []
        if step.get("by") == "alias":
            alias = w.alias_of(vm, dev) or "hostdev0"
            return ["detach-device-alias", vm, alias] + wait
        return ["detach-device", vm, w.xml_file(dev, "yes")] + wait

    def run_action(self, step):
        if self.vm_state(step["vm"]) != "running":
            return "skipped (VM not running)"
        w = self.world
        if step["op"] == "detach2":
            w.qemu_call(step["vm"], {"op": "guest", "mode": "slow", "delay": 2.0})
            first = dict(step, op="detach", wait=0.3)
            r1 = w.ctl(*self.action_argv(first))
            r2 = w.ctl(*self.action_argv(first))
            return f"{r1.returncode}/{r2.returncode} {r2.stderr.strip()[:120]}"
        if step["op"] == "detach":
            self.apply_guest(step)
        result = w.ctl(*self.action_argv(step))
        return f"{result.returncode} {(result.stderr or result.stdout).strip()[:160]}"

    def step(self, step):
        """Run one step; Return: a line saying what happened."""
        w = self.world
        op = step["op"]
        if op in ("attach", "detach", "detach2", "batch"):
            return self.run_action(step)
        if op == "kill":
            if self.vm_state(step["vm"]) != "running":
                return "skipped"
            w.vms[step["vm"]].expect_exit = True
            status = w.signal_daemon(step["vm"], SIGNALS[step["sig"]])
            if step["restart"]:
                w.start_hostdevd(step["vm"])
            return f"hostdevd exited {status}"
        if op == "crash-during":
            if self.vm_state(step["vm"]) != "running":
                return "skipped"
            inner = step["action"]
            slow_write = step["slow"] if step["slow"] != "device_add" else None
            if inner["op"] == "batch":
                # a guest that refuses to let go keeps what it was given, also in-process;
                # a QEMU slow to answer device_add lets the crash come between two devices;
                # with "in-qemu", QEMU never answers the device_add that puts that many of
                # the request's new devices in: hostdevd is surely still in the request
                before = w.kept(step["vm"], inner["devs"])
                new = [d for d in inner["devs"] if d not in before]
                w.qemu_call(step["vm"], {"op": "guest", "mode": "cooperate",
                                         "add-delay": 0.25 if step["slow"] == "device_add"
                                         else 0,
                                         "hold-add": min(step.get("in-qemu") or 0, len(new))})
            if slow_write:
                w.kcall({"op": "fault", "fault": {"match": slow_write, "delay": 1.0,
                                                  "count": 1}})
            if inner["op"] == "detach":
                self.apply_guest(inner)
            if inner["op"] == "detach2":
                inner = dict(inner, op="detach", wait=0.3)
            client = w.ctl_async(*self.action_argv(inner))
            if slow_write:
                self.wait_write(client)
            if step.get("in-qemu"):
                # QEMU holds the answer of the device_add that made it so: hostdevd is
                # still in the request when it is killed
                self.wait_in_qemu(step["vm"], new, step["in-qemu"], client)
            else:
                time.sleep(step["after"] * (3 if step["slow"] == "device_add" else 1))
            w.vms[step["vm"]].expect_exit = True
            status = w.signal_daemon(step["vm"], SIGNALS[step["sig"]])
            try:
                client.wait(timeout=60)
            except Exception:
                client.kill()
            w.kcall({"op": "clear-faults"})
            w.qemu_call(step["vm"], {"op": "guest", "mode": "cooperate"})
            w.start_hostdevd(step["vm"])
            kept = ""
            if inner["op"] == "batch":
                kept = self.check_all_or_nothing(step["vm"], inner["devs"], before,
                                                  client.returncode, step.get("in-qemu"))
            return f"hostdevd exited {status} (client {client.returncode}){kept}"
        if op == "during":
            # "then" runs while "action" is held in a slowed sysfs write (say, a release
            # still unbinding when a new attach comes)
            if self.vm_state(step["action"]["vm"]) != "running":
                return "skipped"
            inner = step["action"]
            w.kcall({"op": "fault", "fault": {"match": step["slow"], "delay": 1.0, "count": 1}})
            if inner["op"] == "detach":
                self.apply_guest(inner)
            if inner["op"] == "detach2":
                inner = dict(inner, op="detach", wait=0.3)
            client = w.ctl_async(*self.action_argv(inner))
            self.wait_write(client)
            outcome = self.run_action(step["then"])
            try:
                client.wait(timeout=60)
            except Exception:
                client.kill()
            w.kcall({"op": "clear-faults"})
            return f"{outcome} (during {inner['op']}'s {step['slow']}: client {client.returncode})"
        if op == "crash-at":
            # hostdevd restarted with HOSTDEVD_TEST_CRASH_AT kills itself right after it
            # journals that point of the action (a point no signal can hit surely)
            if self.vm_state(step["vm"]) != "running":
                return "skipped"
            w.vms[step["vm"]].expect_exit = True
            w.signal_daemon(step["vm"], signal.SIGTERM)
            try:
                w.start_hostdevd(step["vm"], crash_at=step["point"])
            except Violation:
                if w.vms[step["vm"]].daemon.poll() != -signal.SIGKILL:
                    raise
                # its start-up replay journaled that point already: the crash came there
                w.start_hostdevd(step["vm"])
                return f"hostdevd crashed at {step['point']} in its start-up replay"
            w.vms[step["vm"]].expect_exit = True
            inner = step["action"]
            if inner["op"] == "detach":
                self.apply_guest(inner)
            if inner["op"] == "detach2":
                inner = dict(inner, op="detach", wait=0.3)
            client = w.ctl_async(*self.action_argv(inner))
            try:
                client.wait(timeout=60)
            except Exception:
                client.kill()
            w.qemu_call(step["vm"], {"op": "guest", "mode": "cooperate"})
            try:
                # the crash comes right after the journal write, about when the answer does
                status = w.vms[step["vm"]].daemon.wait(timeout=3 if step.get("may-miss") else 10)
            except Exception:
                if not step.get("may-miss"):
                    raise Violation(f"stuck: hostdevd of {step['vm']} did not crash at "
                                    f"{step['point']}")
                # the action never came there (refused earlier, another kind of device)
                status = w.signal_daemon(step["vm"], signal.SIGTERM)
            w.start_hostdevd(step["vm"])
            return f"hostdevd exited {status} at {step['point']} (client {client.returncode})"
        if op == "fault":
            if self.vm_state(step["action"]["vm"]) != "running":
                return "skipped"
            w.kcall({"op": "fault", "fault": step["fault"]})
            outcome = self.run_action(step["action"])
            w.kcall({"op": "clear-faults"})
            return outcome
        if op == "qemu-exit":
            if not w.vms[step["vm"]].qemu_alive():
                return "skipped"
            w.kcall({"op": "exit-delay", "seconds": step["delay"]})
            w.stop_qemu(step["vm"], SIGNALS[step["sig"]])
            vm = w.vms[step["vm"]]
            if vm.daemon is not None:
                try:
                    status = vm.daemon.wait(timeout=30)
                except Exception:
                    raise Violation(f"stuck: hostdevd of {step['vm']} still runs 30 s after "
                                    f"its QEMU exited")
                return f"hostdevd exited {status}"
            return "QEMU gone"
        if op == "systemd-stop":
            if self.vm_state(step["vm"]) != "running":
                return "skipped"
            w.vms[step["vm"]].expect_exit = True
            status = w.signal_daemon(step["vm"], signal.SIGTERM)
            w.stop_qemu(step["vm"], signal.SIGTERM)
            return f"hostdevd exited {status}, then QEMU"
        if op == "start-vm":
            if self.vm_state(step["vm"]) != "off":
                return "skipped"
            w.start_vm(step["vm"])
            return "started"
        if op == "start-hostdevd":
            if self.vm_state(step["vm"]) != "daemonless":
                return "skipped"
            w.start_hostdevd(step["vm"])
            return "started"
        if op in ("reattach", "nodedev-detach"):
            bdf = DEVICES[step["dev"]]["bdf"]
            before = w.kcall({"op": "state"})["pci"][bdf]
            verb = "nodedev-reattach" if op == "reattach" else "nodedev-detach"
            result = w.ctl(verb, nodedev_name(step["dev"]), "--host-root", w.root,
                           *(["--timeout", "3"] if op == "reattach" else []))
            after = w.kcall({"op": "state"})["pci"][bdf]
            if result.returncode != 0 and (before["driver"], before["override"]) != \
                    (after["driver"], after["override"]):
                raise Violation(f"nodedev-half: `hostdevctl {verb}` failed "
                                f"({result.stderr.strip()[:200]}) but left {bdf} changed: "
                                f"driver {before['driver']} -> {after['driver']}, "
                                f"driver_override '{before['override']}' -> "
                                f"'{after['override']}'")
            held = before["held-by"] and not before.get("dying")
            if result.returncode == 0 and not held and not any(
                    c.get("vm") and claim_live(c) for k, c in w.claims().items()
                    if k == nodedev_name(step["dev"])):
                # the administrator changed the device's host state (free, or left by a VM
                # whose hostdevd and QEMU are gone, its QEMU's VFIO teardown maybe still
                # under way): the new baseline, which the VM's next hostdevd leaves as it is
                w.baseline[step["dev"]] = {"driver": after["driver"],
                                           "override": after["override"]}
            return f"{result.returncode} {(result.stderr or result.stdout).strip()[:160]}"
        raise ValueError(f"unknown step {op}")

    def wait_write(self, client, timeout=60):
        """Wait (bounded) until a slowed sysfs write is in progress, or until the request
        of @client (a process) is over without one (it was refused before any write)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and client.poll() is None:
            if self.world.kcall({"op": "wait-write", "timeout": 0.5})["in-progress"]:
                return

    def wait_in_qemu(self, vm, devs, count, client, timeout=60):
        """Wait (bounded) until @count of @devs are in @vm's QEMU, or until the request
        of @client (a process) is over without that (it failed before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            held = {self.world.alias_of(vm, dev) for dev in devs} - {None}
            if len(held) >= min(count, len(devs)) or client.poll() is not None:
                return
            time.sleep(0.01)

    def check_all_or_nothing(self, vm, devs, before, client_status, in_qemu=None):
        """A <devices> request interrupted by a crash: once the restarted hostdevd has
        settled, the VM keeps every device of it it did not have before, or none; none
        when it was killed while some of them were not in QEMU yet (@in_qemu fewer)."""
        new = [dev for dev in devs if dev not in before]
        deadline = time.monotonic() + 60
        while True:
            kept = self.world.kept(vm, new)
            if len(kept) in (0, len(new)) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if 0 < len(kept) < len(new):
            raise Violation(f"half-batch: after a crash in the middle of the <devices> request "
                            f"of {', '.join(devs)} (client exit {client_status}), {vm} keeps "
                            f"{', '.join(sorted(kept))} but not "
                            f"{', '.join(sorted(set(new) - kept))}")
        if in_qemu and in_qemu < len(new) and kept and client_status != 0:
            raise Violation(f"half-batch: hostdevd was killed while only {in_qemu} of the "
                            f"new devices {', '.join(new)} of a <devices> request were in "
                            f"QEMU, yet after the restart {vm} keeps them all")
        if client_status == 0 and len(kept) != len(new):
            raise Violation(f"half-batch: the <devices> request of {', '.join(devs)} succeeded "
                            f"but {vm} does not keep {', '.join(sorted(set(new) - kept))}")
        return f"; of the request's new devices {vm} keeps {'all' if kept else 'none'}" \
            if new else "; the VM had every device of the request already"

    def finish(self):
        """Bring every VM back (a new hostdevd replays its journal) for a last check."""
        for vm in self.world.vms:
            state = self.vm_state(vm)
            if state == "daemonless":
                self.world.start_hostdevd(vm)
            elif state == "off" and not self.world.vms[vm].daemon_alive():
                self.world.start_vm(vm)


def run_scenario(scenario, args, log=None):
    """Return: (failure or None, steps run); a failure is (step index, kind, text)."""
    world = World(args.hostdevd, args.hostdevctl, scenario["vms"], scenario["takeover"],
                  verbose=args.verbose, ignore=args.ignore)
    steps_run = 0
    failure = None
    try:
        world.start()
        runner = Runner(world)
        problems = world.settle()
        if problems:
            failure = (-1, problems[0][0], problems)
        for index, step in enumerate(scenario["steps"] + [{"op": "finish"}]):
            if failure:
                break
            try:
                if step["op"] == "finish":
                    runner.finish()
                    outcome = "every VM running again"
                else:
                    outcome = runner.step(step)
                steps_run += 1
                problems = world.settle(args.settle)
            except Violation as v:
                problems = [tuple(x.strip() for x in str(v).split(":", 1))]
            if log:
                log(f"  [{index}] {json.dumps(step)} -> {outcome if not problems else 'FAIL'}")
            if problems:
                failure = (index, problems[0][0], problems)
    except Violation as v:
        problem = tuple(x.strip() for x in str(v).split(":", 1))
        failure = (-1, problem[0], [problem])
    except Exception as e:   # the runner's own trouble: reported, never shrunk
        import traceback
        failure = (-1, "harness-error", [("harness-error", traceback.format_exc())])
        sys.stderr.write(traceback.format_exc())
    finally:
        if failure and args.keep:
            sys.stderr.write(f"# kept {world.tmp}\n")
        world.close(keep=bool(failure and args.keep))
    return failure, steps_run


def shrink(scenario, failure, args, log):
    """Drop steps while the same kind of failure remains; Return: (scenario, failure, runs)."""
    kind = failure[1]
    best = dict(scenario, steps=scenario["steps"][:max(failure[0] + 1, 0)])
    best_failure = failure
    runs = 0
    deadline = time.monotonic() + args.shrink_seconds

    def still_fails(candidate):
        nonlocal runs
        runs += 1
        result, _ = run_scenario(candidate, args)
        return result if result and result[1] == kind else None

    chunk = max(len(best["steps"]) // 2, 1)
    while chunk >= 1 and runs < args.shrink_runs and time.monotonic() < deadline:
        start = 0
        changed = False
        while start < len(best["steps"]) and runs < args.shrink_runs and \
                time.monotonic() < deadline:
            steps = best["steps"][:start] + best["steps"][start + chunk:]
            candidate = dict(best, steps=steps)
            result = still_fails(candidate) if steps != best["steps"] else None
            if result:
                best, best_failure, changed = candidate, result, True
                if result[0] >= 0:
                    best = dict(best, steps=best["steps"][:result[0] + 1])
                log(f"#   shrunk to {len(best['steps'])} steps")
            else:
                start += chunk
        if not changed:
            chunk //= 2
    return best, best_failure, runs


def report(scenario, failure, args, out):
    path = os.path.join(args.out, f"lifecycle-seed-{scenario['seed']}.json")
    os.makedirs(args.out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(scenario, f, indent=1)
    out(f"# FAILED ({failure[1]}) after step {failure[0]}:")
    for kind, text in failure[2][:6]:
        out(f"#   {kind}: {text}")
    out(f"# minimal sequence ({len(scenario['steps'])} steps), saved in {path}:")
    for index, step in enumerate(scenario["steps"]):
        out(f"#   [{index}] {json.dumps(step)}")
    out(f"# replay: HOSTDEVD={args.hostdevd} HOSTDEVCTL={args.hostdevctl} "
        f"{os.path.abspath(__file__)} --replay {path}")
    out(f"# sequence: {json.dumps(scenario, separators=(',', ':'))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (20)")
    parser.add_argument("--seed", type=int, default=None, help="first seed (default 1)")
    parser.add_argument("--steps", type=int, default=25, help="steps per sequence (25)")
    parser.add_argument("--hours", type=float, default=None,
                        help="stop starting new seeds after this long")
    parser.add_argument("--replay", action="append",
                        help="run the sequence saved in this JSON file (may be repeated)")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="how long, at most, to wait for the system to settle after a "
                             "step (30 s; a step ends as soon as it has)")
    parser.add_argument("--shrink-runs", type=int, default=30,
                        help="at most this many runs to shrink one failure (30)")
    parser.add_argument("--shrink-seconds", type=float, default=240,
                        help="at most this long to shrink one failure (240 s)")
    parser.add_argument("--shrink-total", type=float, default=None,
                        help="at most this long shrinking in all (CI: a fixed budget)")
    parser.add_argument("--no-shrink", action="store_true")
    parser.add_argument("--ignore", default=os.environ.get("HOSTDEVD_LIFECYCLE_IGNORE", ""),
                        help="comma-separated kinds of violation not to report (e.g. "
                             "claim-stale while a known defect is being fixed)")
    parser.add_argument("--out", default=os.environ.get("HOSTDEVD_LIFECYCLE_OUT",
                                                        "/tmp/hostdevd-lifecycle"),
                        help="where failing sequences are saved")
    parser.add_argument("--tap", action="store_true", help="TAP output (meson)")
    parser.add_argument("--keep", action="store_true", help="keep a failing run's files")
    parser.add_argument("--hostdevd", default=os.environ.get("HOSTDEVD"))
    parser.add_argument("--hostdevctl", default=os.environ.get("HOSTDEVCTL"))
    parser.add_argument("--crash-points", action="store_true",
                        help="generate crash-at steps (HOSTDEVD_TEST_CRASH_AT; needs a "
                             "-Dtest_hooks=true build) and during steps too")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every step")
    args = parser.parse_args()
    if not args.hostdevd or not args.hostdevctl:
        parser.error("set HOSTDEVD and HOSTDEVCTL (or --hostdevd/--hostdevctl)")
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        if args.tap:
            print("1..0 # SKIP needs root and /dev/fuse (a FUSE mount is the fake kernel)")
            return 0
        parser.error("needs root and /dev/fuse")
    args.ignore = {k for k in args.ignore.split(",") if k}
    args.hostdevd = os.path.abspath(args.hostdevd)
    args.hostdevctl = os.path.abspath(args.hostdevctl)

    def out(line):
        print(line, flush=True)

    # meson's timeout and ^C: unwind, so that every run stops its processes and unmounts
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))

    if args.replay:
        scenarios = []
        for path in args.replay:
            with open(path) as f:
                scenarios.append(dict(json.load(f), name=os.path.basename(path)))
        if args.tap:
            out(f"1..{len(scenarios)}")
    else:
        first = args.seed if args.seed is not None else 1
        count = args.seeds
        scenarios = (generate(s, args.steps, args.crash_points)
                     for s in range(first, first + count))
        if args.tap:
            out(f"1..{count}")
    started = time.monotonic()
    sequences = steps_total = shrink_runs = 0
    run_time = 0.0
    failures = []
    for number, scenario in enumerate(scenarios, 1):
        if args.hours is not None and time.monotonic() - started > args.hours * 3600:
            break
        t0 = time.monotonic()
        log = out if args.verbose or args.replay else None
        if log and args.tap:
            # TAP diagnostics: a batch's reply spans lines, each one a "# " line
            log = lambda text: out("\n".join(f"# {line}" for line in text.splitlines() or [""]))  # noqa: E731
        failure, steps_run = run_scenario(scenario, args, log)
        run_time += time.monotonic() - t0
        sequences += 1
        steps_total += steps_run
        name = f"{scenario.get('name') or 'seed ' + str(scenario['seed'])} " \
               f"({len(scenario['vms'])} VMs, {steps_run} steps, {time.monotonic() - t0:.1f} s)"
        if failure is None:
            out(f"ok {number} - {name}" if args.tap else f"seed {scenario['seed']}: ok "
                f"({steps_run} steps, {time.monotonic() - t0:.1f} s)")
            continue
        out(f"not ok {number} - {name}" if args.tap else f"seed {scenario['seed']}: FAILED")
        if failure[0] >= 0:
            scenario = dict(scenario, steps=scenario["steps"][:failure[0] + 1])
        shrink_left = None if args.shrink_total is None else \
            args.shrink_total - (time.monotonic() - started - run_time)
        if not args.no_shrink and not args.replay and failure[1] != "harness-error" and \
                (shrink_left is None or shrink_left > 0):
            limit = args.shrink_seconds
            args.shrink_seconds = min(limit, shrink_left) if shrink_left is not None else limit
            scenario, failure, runs = shrink(scenario, failure, args, out)
            args.shrink_seconds = limit
            shrink_runs += runs
        failures.append((scenario, failure))
        report(scenario, failure, args, out)
    elapsed = time.monotonic() - started
    out(f"# {sequences} sequences, {steps_total} steps, {len(failures)} failing, "
        f"{shrink_runs} shrink runs, {elapsed:.0f} s")
    if args.tap and not args.replay and args.hours is not None and sequences < args.seeds:
        for number in range(sequences + 1, args.seeds + 1):
            out(f"ok {number} - # SKIP time budget spent")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
