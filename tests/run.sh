#!/bin/sh
# The whole test suite, as CI runs it: install what is missing, build twice
# (plain, and with AddressSanitizer + UndefinedBehaviorSanitizer), run every
# suite in both builds; the plain build runs hostdevd with --sandbox on, so
# a syscall missing from the allowlist fails a test.  A third build with
# clang runs each libFuzzer target for a short smoke period.  Extra
# arguments go to `meson test` (e.g. --suite unit).
set -eu
cd "$(dirname "$0")/.."
sh contrib/install-deps.sh

status=0
for build in build build-asan; do
  # -Dtest_hooks=true: the crash-safety tests need HOSTDEVD_TEST_CRASH_AT,
  # which a default (shipped) build does not have; a build dir made before
  # the option existed, or without it, gets it too
  if [ ! -f "$build/build.ninja" ]; then
    if [ "$build" = build-asan ]; then
      meson setup "$build" -Dtest_hooks=true -Db_sanitize=address,undefined -Db_lundef=false
    else
      meson setup "$build" -Dtest_hooks=true
    fi
  elif ! meson introspect --buildoptions "$build" |
      python3 -c 'import json, sys; sys.exit(0 if any(o["name"] == "test_hooks" and o["value"] is True for o in json.load(sys.stdin)) else 1)'; then
    meson setup --reconfigure "$build" -Dtest_hooks=true
  fi
  ninja -C "$build"
  # LeakSanitizer's exit-time check needs ptrace, which the sandbox forbids:
  # the ASan build runs hostdevd unsandboxed (README.md, "Sandbox")
  sandbox=on
  [ "$build" = build-asan ] && sandbox=off
  HOSTDEVD_TEST_SANDBOX=$sandbox \
    meson test -C "$build" --print-errorlogs --num-processes 2 "$@" || status=1
done

# Fuzz smoke: only the fuzz targets are built with clang.
logs="build/meson-logs/testlog.json build-asan/meson-logs/testlog.json"
if [ $# -eq 0 ]; then
  if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
      -Db_lundef=false -Dqemu_tests=disabled
  fi
  # every target tests/fuzz has (one per fuzz-*.c), and nothing else
  targets=""
  for source in tests/fuzz/fuzz-*.c; do
    targets="$targets tests/fuzz/$(basename "$source" .c)"
  done
  # shellcheck disable=SC2086
  ninja -C build-fuzz $targets || status=1
  meson test -C build-fuzz --no-rebuild --suite fuzz --print-errorlogs --num-processes 2 \
    || status=1
  logs="$logs build-fuzz/meson-logs/testlog.json"
fi

# One line CI can read: TAP subtests counted one by one, other tests as one each.
# shellcheck disable=SC2086
python3 - $logs <<'PY'
import json, re, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
failures = []   # named again at the very end, where a log's tail still shows them
for path in sys.argv[1:]:
    build = path.split("/")[0]
    with open(path) as log:
        for line in log:
            test = json.loads(line)
            stdout = test.get("stdout") or ""
            subtests = re.findall(r"^(ok|not ok)\b.*?(# SKIP.*)?$", stdout, re.M)
            if not subtests:
                result = test["result"]
                counts["passed" if result == "OK" else "skipped" if result == "SKIP" else "failed"] += 1
            for verdict, skip in subtests:
                counts["skipped" if skip else "passed" if verdict == "ok" else "failed"] += 1
            if subtests and test["result"] not in ("OK", "SKIP") and all(v == "ok" for v, _ in subtests):
                counts["failed"] += 1   # crashed or timed out around passing subtests
            if test["result"] not in ("OK", "SKIP"):
                failures.append(f"{build}: {test['name']}: {test['result']} after {test.get('duration', 0):.0f} s")
                failures += [f"    {line}" for line in re.findall(r"^not ok\b.*$", stdout, re.M)]
                failures += [f"    | {line}" for line in (test.get("stderr") or "").splitlines()[-15:]]
for line in failures:
    print(line)
print(f"hostdevd: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
PY
exit $status
