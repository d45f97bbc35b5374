#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0-or-later
# /init of the tiny second-level guest (L2) that some scenarios boot: a
# kernel that answers PCIe hot-plug (pciehp is built in) and reports the PCI
# functions it sees on its serial console whenever they change, so a test
# can tell from outside that the guest OS itself saw a device come and go.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

echo "L2 READY"
# A glob, not ls: every fork costs dearly under nested TCG.
last=""
while true; do
  now=""
  for device in /sys/bus/pci/devices/*; do
    now="$now ${device##*/}"
  done
  if [ "$now" != "$last" ]; then
    echo "L2 PCI:$now"
    last=$now
  fi
  sleep 1
done
