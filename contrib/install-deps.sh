#!/bin/sh
# Install what hostdevd needs to build and test on Debian 12, only if missing.
set -eu

packages="meson ninja-build gcc clang pkg-config python3 tar scdoc groff-base
libglib2.0-dev libjson-glib-dev libxml2-dev libseccomp-dev libcap-ng-dev libaudit-dev
qemu-system-x86 qemu-system-misc qemu-utils
libvirt-daemon-driver-qemu libvirt-clients libvirt-daemon libxml2-utils
libvirt0
python3-fuse fuse3 systemd
debhelper dpkg-dev lintian bash-completion
pci.ids usb.ids"

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing:$missing"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
