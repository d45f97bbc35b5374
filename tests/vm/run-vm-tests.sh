#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Run the nested-VM suite, or some of its scenarios, with the binaries of a
# meson build directory (default ./build, or $BUILD), which is built first:
#
#   tests/vm/run-vm-tests.sh          all scenarios
#   tests/vm/run-vm-tests.sh 6        scenario 6 alone
#   tests/vm/run-vm-tests.sh 1 3 5    several
#
# TAP on stdout, progress on stderr; the logs (L1's serial console, each
# scenario's steps, hostdevd's and QEMU's output, L1's dmesg) stay in
# BUILD/tests/vm/work/share/logs.  The kernel cache is described in vmtest.py.
set -eu
cd "$(dirname "$0")/../.."
build=${BUILD:-build}
[ -f "$build/build.ninja" ] || meson setup "$build"
ninja -C "$build" broker/hostdevd broker/hostdevctl
build=$(cd "$build" && pwd)

export HOSTDEVD="$build/broker/hostdevd"
export HOSTDEVCTL="$build/broker/hostdevctl"
export HOSTDEVD_VM_WORKDIR="$build/tests/vm/work"
export PYTHONDONTWRITEBYTECODE=1
# the steps that need -Dtest_hooks=true run when the binary has them
if grep -q HOSTDEVD_TEST_HOLD_AFTER_DEVICE_ADD_MS "$HOSTDEVD"; then
  export HOSTDEVD_TEST_HOOKS=1
else
  export HOSTDEVD_TEST_HOOKS=0
fi
exec python3 tests/vm/vmtest.py "$@"
