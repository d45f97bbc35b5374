#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Is the crash-injection hook in a hostdevd binary, as the build option says?

Usage: check_test_hooks.py HOSTDEVD present|absent

The hook reads HOSTDEVD_TEST_CRASH_AT; its name is in the binary exactly
when the code is (it is only compiled with -Dtest_hooks=true).  Exit 0 when
the binary matches what the build option promises, 1 otherwise.
"""
import sys

HOOK = b"HOSTDEVD_TEST_CRASH_AT"


def main():
    path, expected = sys.argv[1], sys.argv[2]
    with open(path, "rb") as binary:
        found = HOOK in binary.read()
    if found != (expected == "present"):
        print(f"{path}: the test hook {HOOK.decode()} is "
              f"{'in' if found else 'not in'} the binary, but the build option says "
              f"it should be {expected}", file=sys.stderr)
        return 1
    print(f"{path}: {HOOK.decode()} {expected}, as -Dtest_hooks says")
    return 0


if __name__ == "__main__":
    sys.exit(main())
