#!/bin/sh
# Build the Debian package from a copy of the source tree (the tree itself
# stays clean), then check it: the files it must install, the unit's paths,
# that the programs run from it, and that lintian reports no error.
# Usage: build-deb.sh SOURCE_DIR     (DEB_BUILD_OPTIONS=nocheck unless set)
set -eu
src=$(cd "$1" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM  # a timeout's SIGTERM cleans up too
mkdir "$work/hostdevd"
# Tracked and untracked-but-not-ignored files: what a commit of this tree holds.
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf -) | tar -C "$work/hostdevd" -xf -
else
  tar -C "$src" --exclude='./build*' -cf - . | tar -C "$work/hostdevd" -xf -
fi

n=0
failed=0
check() {  # check DESCRIPTION COMMAND...
  n=$((n + 1))
  description=$1; shift
  if "$@"; then echo "ok $n - $description"; else echo "not ok $n - $description"; failed=1; fi
}

start=$(date +%s)
if ! (cd "$work/hostdevd" &&
      DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-nocheck} dpkg-buildpackage -b -us -uc) \
      >"$work/build.log" 2>&1; then
  tail -n 60 "$work/build.log" | sed 's/^/# /'
  echo "not ok 1 - dpkg-buildpackage -b -us -uc"
  echo "1..1"
  exit 1
fi
check "dpkg-buildpackage -b -us -uc builds ($(($(date +%s) - start)) s)" true

set -- "$work"/hostdevd_*.deb
deb=$1
check "one .deb built" test -f "$deb"
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$work/contents"
for path in /usr/sbin/hostdevd /usr/bin/hostdevctl /lib/systemd/system/hostdevd@.service \
            /usr/share/man/man8/hostdevd.8.gz /usr/share/man/man1/hostdevctl.1.gz \
            /usr/share/man/man5/hostdevd-policy.conf.5.gz \
            /usr/share/bash-completion/completions/hostdevctl \
            /usr/share/doc/hostdevd/examples/policy.conf /usr/share/doc/hostdevd/copyright; do
  check "the package installs $path" grep -qx "$path" "$work/contents"
done

dpkg-deb -x "$deb" "$work/root"
check "the unit starts /usr/sbin/hostdevd" \
  grep -q '^ExecStart=/usr/sbin/hostdevd ' "$work/root/lib/systemd/system/hostdevd@.service"
check "hostdevctl from the package runs" \
  sh -c '"$1" --version | grep -q "^hostdevctl "' sh "$work/root/usr/bin/hostdevctl"
check "hostdevd from the package runs" \
  sh -c '"$1" --help | grep -q -- "--vm"' sh "$work/root/usr/sbin/hostdevd"
check "the package's man page renders" \
  sh -c 'man -l "$1" >/dev/null 2>&1' sh "$work/root/usr/share/man/man8/hostdevd.8.gz"
check "the package depends on GLib" \
  sh -c 'dpkg-deb -f "$1" Depends | grep -q libglib2.0' sh "$deb"

start=$(date +%s)
# lintian keeps caches in TMPDIR (mldbm-elf-*) and leaves them: in $work they go with it
TMPDIR="$work" lintian --tag-display-limit 0 "$deb" >"$work/lintian.log" 2>&1 || true
sed 's/^/# /' "$work/lintian.log"
check "lintian reports no error ($(($(date +%s) - start)) s)" \
  sh -c '! grep -q "^E: " "$1"' sh "$work/lintian.log"

echo "1..$n"
exit $failed
