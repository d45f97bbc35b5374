#!/bin/sh
# Every option `hostdevd --help` prints is in hostdevd(8); every verb and
# option `hostdevctl --help` prints is in hostdevctl(1); every key of the
# policy file (policy/policy.c) is in hostdevd-policy.conf(5).  So the pages
# cannot fall behind the programs.
# Usage: coverage-check.sh HOSTDEVD HOSTDEVCTL MAN_BUILD_DIR POLICY_C
set -eu
hostdevd=$1 hostdevctl=$2 mandir=$3 policy_c=$4

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM  # a timeout's SIGTERM cleans up too

# Plain text, no hyphenation, lines long enough never to break a word.
text() {
  groff -man -Tascii -rLL=3000n -rHY=0 -P-cbou "$mandir/$1" 2>/dev/null
}
text hostdevd.8 >"$tmp/hostdevd"
text hostdevctl.1 >"$tmp/hostdevctl"
text hostdevd-policy.conf.5 >"$tmp/policy"

failed=0
n=0
# in_page WORD PAGE: WORD is described in PAGE: a line of its own begins
# with it, as the term of an entry ("--vm NAME", "-v, --verbose",
# "list VM", "max-devices=N"), not only mentioned in passing.
in_page() {
  n=$((n + 1))
  if grep -qE -- "^ *(--?[a-zA-Z-]+, )*$1([ ,=]|\$)" "$tmp/$2"; then
    echo "ok $n - $1 in $2"
  else
    echo "not ok $n - $1 is missing from $2's man page"
    failed=1
  fi
}

"$hostdevd" --help-all >"$tmp/hostdevd-help"
options=$(grep -oE -- '(^|[ ,])--?[a-zA-Z][a-z-]*' "$tmp/hostdevd-help" | tr -d ' ,' | sort -u)
[ -n "$options" ] || { echo "Bail out! no options in hostdevd --help"; exit 1; }
for option in $options; do in_page "$option" hostdevd; done

"$hostdevctl" --help >"$tmp/hostdevctl-help"
verbs=$(sed -n 's/^  \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\1/p' "$tmp/hostdevctl-help" | sort -u)
[ "$(echo "$verbs" | wc -l)" -ge 10 ] || { echo "Bail out! too few verbs in hostdevctl --help"; exit 1; }
for verb in $verbs; do in_page "$verb" hostdevctl; done
options=$(grep -oE -- '(^|[ [])--?[a-zA-Z][a-z-]*' "$tmp/hostdevctl-help" | tr -d ' [' | sort -u)
for option in $options; do in_page "$option" hostdevctl; done

keys=$(sed -n 's/.*\[KEY_[A-Z_]*\] = { "\([a-z-]*\)".*/\1/p' "$policy_c")
[ -n "$keys" ] || { echo "Bail out! no keys found in $policy_c"; exit 1; }
for key in $keys; do in_page "$key" policy; done

echo "1..$n"
exit $failed
