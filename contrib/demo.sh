#!/bin/sh
# Demo: build hostdevd, start a throwaway QEMU (TCG, paused, with an xHCI
# controller and spare PCIe root ports), run hostdevd beside it, and
# hot-plug a USB host device into the VM and out again with hostdevctl.
#
# The device is named by vendor/product with startupPolicy='optional', so
# no real USB device of this machine is taken away from it: with
# --optional-usb qemu, QEMU holds the slot and would pick the device up if
# it were plugged in (by default hostdevd would list it as waiting for the
# device and attach it by descriptor when it appears).
set -eu
cd "$(dirname "$0")/.."
sh contrib/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

work=$(mktemp -d /tmp/hostdevd-demo.XXXXXX)
qemu_pid=""
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
export HOSTDEVD_RUNTIME_DIR="$work"
ctl() { echo "\$ hostdevctl $*"; ./build/broker/hostdevctl "$@"; echo; }

echo "== starting QEMU (q35, TCG, paused) with qemu-xhci and 4 pcie-root-ports"
qemu-system-x86_64 -machine q35,accel=tcg -m 128 -nodefaults -display none -S \
  -qmp "unix:$work/demo.qmp,server=on,wait=off" \
  -device qemu-xhci,id=usb \
  -device pcie-root-port,id=pci.1,chassis=1 -device pcie-root-port,id=pci.2,chassis=2 \
  -device pcie-root-port,id=pci.3,chassis=3 -device pcie-root-port,id=pci.4,chassis=4 \
  </dev/null >"$work/qemu.log" 2>&1 &
qemu_pid=$!

echo "== starting hostdevd --vm demo --qmp $work/demo.qmp --optional-usb qemu"
./build/broker/hostdevd --vm demo --qmp "$work/demo.qmp" --optional-usb qemu 2>"$work/hostdevd.log" &
daemon_pid=$!
i=0
until [ -S "$work/demo.sock" ]; do
  i=$((i + 1)); [ $i -le 200 ] || { cat "$work/hostdevd.log"; exit 1; }
  sleep 0.1
done

cat >"$work/usb.xml" <<'XML'
<hostdev mode='subsystem' type='usb' managed='yes'>
  <source startupPolicy='optional'>
    <vendor id='0x1d6b'/>
    <product id='0x0104'/>
  </source>
</hostdev>
XML
echo "== the device, as libvirt XML:"; cat "$work/usb.xml"; echo

ctl version demo
ctl attach-device demo "$work/usb.xml" --dry-run
ctl attach-device demo "$work/usb.xml"
ctl list demo
ctl dumpxml demo
ctl detach-device demo "$work/usb.xml"
ctl list demo

echo "== hostdevd's log"
cat "$work/hostdevd.log"
echo "== demo finished: QEMU and hostdevd are stopped and $work is removed"
