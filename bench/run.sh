#!/bin/sh
# hostdevd's benchmarks (issue #8), not part of `meson test`:
#
#   bench/run.sh            full run (~5 min), writes the results table into README.md
#   bench/run.sh --quick    about a minute, prints the table only (add --readme to write it)
#   other options:          --no-libvirt  --no-callgrind  --no-readme  --keep
#                           --only SECTION (e.g. --quick --only overhead: the attach/detach
#                           ratios alone, in a few seconds)
#
# Installs what it needs with apt-get (through sudo when not root), builds a
# release build in $BENCH_BUILD_DIR (default build-bench), then runs
# bench/bench.py.  Raw figures: $BENCH_BUILD_DIR/bench-results.json.
set -eu
cd "$(dirname "$0")/.."
sh contrib/install-deps.sh

# Only the benchmarks need these: callgrind, and libvirt's QEMU driver to compare with.
# No libvirt-daemon-system: nothing is started or configured on the host.
extra=""
for p in valgrind util-linux coreutils libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || extra="$extra $p"
done
if [ -n "$extra" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing:$extra"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $extra ||
    echo "bench: could not install$extra; the sections needing them report why they were skipped"
fi

build="${BENCH_BUILD_DIR:-build-bench}"
[ -f "$build/build.ninja" ] || meson setup "$build" -Dbuildtype=release
ninja -C "$build"

readme="--readme"
for arg in "$@"; do
  case "$arg" in
    --quick|--no-readme) readme="" ;;
  esac
done
for arg in "$@"; do
  [ "$arg" = "--readme" ] && readme="--readme"
done
args=""
for arg in "$@"; do
  [ "$arg" = "--no-readme" ] || [ "$arg" = "--readme" ] || args="$args $arg"
done
# shellcheck disable=SC2086
exec python3 bench/bench.py --build "$build" $readme $args
