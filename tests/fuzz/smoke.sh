#!/bin/sh
# smoke.sh FUZZER SECONDS SEED_DIR DICT - run one libFuzzer target briefly.
# New inputs go to a scratch directory, so the seed corpus in the source
# tree stays as committed; a crash leaves its input in the build directory.
set -eu
fuzzer=$1 seconds=$2 seeds=$3 dict=$4
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT; trap 'exit 143' TERM  # a timeout's SIGTERM cleans up too
exec_dir=$(dirname "$fuzzer")
# libFuzzer's own exit code for a crash is 77, which meson reads as "skipped"
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 \
  -max_len=140000 -dict="$dict" -artifact_prefix="$exec_dir/" \
  -print_final_stats=1 "$scratch" "$seeds"
