#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0-or-later
# /init of the first-level VM (L1): a busybox initramfs around Debian's kernel.
#
# It loads the modules vmtest.py chose (in the order it computed), mounts the
# host's root read-only over 9p at /host and the work share at /w, makes
# /host usable as a chroot (fresh /tmp, /run, /dev, /proc, /sys over the
# read-only tree, the share at /tmp/w), runs the scenario runner inside that
# chroot with the host's own python3, QEMU and hostdevd, and powers off.
# Lines starting with "L1:" are read by vmtest.py on the serial console.

/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

echo "L1: init started, kernel $(uname -r)"

while read -r module; do
  [ -n "$module" ] || continue
  insmod "/modules/$module.ko" || echo "L1: insmod $module failed"
done < /modules/load-order

fail() {
  echo "L1: FATAL: $*"
  sync
  poweroff -f
}

mkdir -p /host /w
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose hostroot /host ||
  fail "cannot mount the host root over 9p"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work /w ||
  fail "cannot mount the work share over 9p"

# Writable places over the read-only host tree, only inside L1.
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "cannot mount /host/tmp"
mount -t tmpfs -o mode=0755 tmpfs /host/run || fail "cannot mount /host/run"
mount -t devtmpfs dev /host/dev || fail "cannot mount /host/dev"
mount -t proc proc /host/proc || fail "cannot mount /host/proc"
mount -t sysfs sys /host/sys || fail "cannot mount /host/sys"
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mkdir /host/tmp/w && mount --bind /w /host/tmp/w || fail "cannot bind the share into the chroot"

# The environment, not the broker, decides that the nvme driver stays off
# VFs: their NVMe controllers stay offline (no virt-mgmt), so probing them
# would only fail slowly.
for pf in /sys/bus/pci/devices/*; do
  [ -e "$pf/sriov_drivers_autoprobe" ] && echo 0 > "$pf/sriov_drivers_autoprobe"
done

echo "L1: ready, running the scenarios"
chroot /host /bin/sh /tmp/w/l1-run.sh
echo "L1: runner exited with status $?"

sync
umount /host/tmp/w 2>/dev/null
umount /w 2>/dev/null
poweroff -f
