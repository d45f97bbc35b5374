#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Are the test hooks in a hostdevd binary, as the build option says?

Usage: check_test_hooks.py HOSTDEVD present|absent

The hooks read HOSTDEVD_TEST_CRASH_AT and HOSTDEVD_TEST_HOLD_AFTER_DEVICE_ADD_MS;
each name is in the binary exactly when its code is (only compiled with
-Dtest_hooks=true).  Exit 0 when the binary matches what the build option
promises, 1 otherwise.
"""
import sys

HOOKS = (b"HOSTDEVD_TEST_CRASH_AT", b"HOSTDEVD_TEST_HOLD_AFTER_DEVICE_ADD_MS")


def main():
    path, expected = sys.argv[1], sys.argv[2]
    with open(path, "rb") as binary:
        content = binary.read()
    status = 0
    for hook in HOOKS:
        found = hook in content
        if found != (expected == "present"):
            print(f"{path}: the test hook {hook.decode()} is "
                  f"{'in' if found else 'not in'} the binary, but the build option says "
                  f"it should be {expected}", file=sys.stderr)
            status = 1
        else:
            print(f"{path}: {hook.decode()} {expected}, as -Dtest_hooks says")
    return status


if __name__ == "__main__":
    sys.exit(main())
