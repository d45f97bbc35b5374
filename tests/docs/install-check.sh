#!/bin/sh
# `meson install --destdir` into a temporary directory holds the man pages,
# the unit and the bash completion; each page renders with groff -ww without
# a warning; every man: page the unit's Documentation= names is installed.
# Usage: install-check.sh BUILD_DIR PREFIX MANDIR UNITDIR COMPLETIONSDIR
set -eu
build=$1 prefix=$2 mandir=$3 unitdir=$4 completionsdir=$5
case $mandir in /*) ;; *) mandir=$prefix/$mandir ;; esac

dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM  # a timeout's SIGTERM cleans up too
meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$dest.log" 2>&1 || {
  cat "$dest.log"; rm -f "$dest.log"; exit 1; }
rm -f "$dest.log"

failed=0
n=0
check() {  # check DESCRIPTION COMMAND...
  n=$((n + 1))
  description=$1; shift
  if "$@"; then echo "ok $n - $description"; else echo "not ok $n - $description"; failed=1; fi
}

renders_clean() {
  out=$(LC_ALL=C.UTF-8 groff -ww -man -Tutf8 -z "$1" 2>&1) || return 1
  [ -z "$out" ] || { printf '%s\n' "$out" >&2; return 1; }
}

for page in hostdevd.8 hostdevctl.1 hostdevd-policy.conf.5; do
  section=${page##*.}
  file=$dest$mandir/man$section/$page
  check "$page installed in $mandir/man$section" test -s "$file"
  check "$page renders with groff -ww without warnings" renders_clean "$file"
done

unit=$dest$unitdir/hostdevd@.service
check "unit installed in $unitdir" test -s "$unit"
docs=$(sed -n 's/^Documentation=//p' "$unit" 2>/dev/null)
check "the unit has a Documentation= line" test -n "$docs"
for doc in $docs; do
  case $doc in
    man:*\(*\))
      name=${doc#man:}; section=${name#*\(}; section=${section%\)}; name=${name%%\(*}
      check "Documentation=$doc resolves" test -s "$dest$mandir/man$section/$name.$section" ;;
    *) check "Documentation=$doc is a man: page" false ;;
  esac
done

if [ "$completionsdir" != none ]; then
  check "bash completion installed in $completionsdir" test -s "$dest$completionsdir/hostdevctl"
fi

echo "1..$n"
exit $failed
