#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The shipped unit's exposure as systemd rates it (systemd-analyze security
# --offline=yes) stays at or under what README.md's "The systemd unit" says.
#   unit-exposure.sh BUILT_UNIT README
set -u
unit=$1
readme=$2
echo "1..2"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "ok 1 # SKIP systemd-analyze is not installed"
  echo "ok 2 # SKIP systemd-analyze is not installed"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM  # a timeout's SIGTERM cleans up too
cp "$unit" "$work/hostdevd@.service"
rating=$(cd "$work" && systemd-analyze security --offline=yes ./hostdevd@.service 2>&1 |
         sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -n "$rating" ]; then
  echo "ok 1 - systemd-analyze rates the unit $rating"
else
  echo "not ok 1 - systemd-analyze gave no rating"
  exit 0
fi
# README: "... rates it" then "**N OK**" at the start of the next line
promised=$(sed -n 's/^\*\*\([0-9.]*\) OK\*\*.*/\1/p' "$readme" | head -1)
if [ -n "$promised" ] && awk -v r="$rating" -v p="$promised" 'BEGIN { exit !(r <= p) }'; then
  echo "ok 2 - at or under README's $promised"
else
  echo "not ok 2 - rated $rating, README promises ${promised:-nothing readable}"
fi
