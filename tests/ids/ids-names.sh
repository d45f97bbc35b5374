#!/bin/sh
# nodedev-list and nodedev-dumpxml show vendor and device names once the
# id databases are installed (Debian packages pci.ids and usb.ids, which
# contrib/install-deps.sh installs): the sysfs fixture is given this host's
# /usr/share/misc/pci.ids and usb.ids under its --host-root, where
# hostdevctl looks for them.  Without them, the same devices have ids only.
# Usage: ids-names.sh HOSTDEVCTL FIXTURES_DIR
set -eu
hostdevctl=$1 fixtures=$2

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM  # a timeout's SIGTERM cleans up too
tar -xzf "$fixtures/sysfs-linux-6.1-q35-viommu.tar.gz" -C "$root"

n=0
failed=0
check() {  # check DESCRIPTION COMMAND...
  n=$((n + 1))
  description=$1; shift
  if "$@"; then echo "ok $n - $description"; else echo "not ok $n - $description"; failed=1; fi
}
contains() { printf '%s\n' "$1" | grep -qF -- "$2"; }

# Without the databases: ids only (the fixture's 0000:00:00.0 is 8086:29c0).
tree=$("$hostdevctl" nodedev-list --tree --host-root "$root")
check "without pci.ids the tree has ids only" \
  sh -c '! printf "%s\n" "$1" | grep -q "Intel Corporation"' sh "$tree"

for db in pci.ids usb.ids; do
  check "/usr/share/misc/$db is installed (Debian package $db)" test -s "/usr/share/misc/$db"
done
mkdir -p "$root/usr/share/misc"
ln -s /usr/share/misc/pci.ids /usr/share/misc/usb.ids "$root/usr/share/misc/"

tree=$("$hostdevctl" nodedev-list --tree --host-root "$root")
check "nodedev-list --tree names the PCI vendor and device" \
  contains "$tree" "8086:29c0 Intel Corporation 82G33/G31/P35/P31 Express DRAM Controller"
check "nodedev-list --tree names a virtio device" contains "$tree" "1af4:1009 Red Hat, Inc."

json=$("$hostdevctl" nodedev-list --json --cap pci --host-root "$root")
check "nodedev-list --json carries vendor_name" contains "$json" '"vendor_name" : "Intel Corporation"'

xml=$("$hostdevctl" nodedev-dumpxml pci_0000_00_00_0 --host-root "$root")
check "nodedev-dumpxml names the PCI vendor" \
  contains "$xml" "<vendor id='0x8086'>Intel Corporation</vendor>"
xml=$("$hostdevctl" nodedev-dumpxml usb_1_1 --host-root "$root")
check "nodedev-dumpxml names the USB vendor from usb.ids" \
  contains "$xml" "<vendor id='0x0627'>Adomax Technology Co., Ltd</vendor>"

echo "1..$n"
exit $failed
