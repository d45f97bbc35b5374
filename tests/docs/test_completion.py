#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bash completion of hostdevctl, driven through bash's own machinery.

The completion script is sourced into a real bash, COMP_WORDS/COMP_CWORD
are set as readline sets them, the function that `complete -p hostdevctl`
names is called, and COMPREPLY is read back.  VM names come from a runtime
directory holding real sockets; aliases from a real hostdevd beside a real
QEMU; node device names from the sysfs fixture.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import HOSTDEVCTL, HostdevdTestCase, extract_fixture, main

COMPLETION = os.environ["HOSTDEVCTL_COMPLETION"]

DRIVER = r'''
source "$1"; shift
spec=$(complete -p hostdevctl) || exit 3
function=${spec#*-F }; function=${function%% *}
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
"$function" hostdevctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def complete(*words, runtime_dir=None):
    """The completions bash offers for the command line @words (the last is being typed)."""
    env = dict(os.environ)
    if runtime_dir is not None:
        env["HOSTDEVD_RUNTIME_DIR"] = runtime_dir
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", DRIVER, "bash",
                             COMPLETION, HOSTDEVCTL, *words],
                            capture_output=True, text=True, timeout=60, env=env)
    if result.returncode != 0:
        raise AssertionError(f"completion of {words} failed: {result.stderr}")
    return sorted(line for line in result.stdout.splitlines() if line)


def make_socket(path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.close()   # the socket file stays, as a hostdevd that is gone leaves it


class CompletionWithoutDaemon(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hostdevd-completion-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def test_verbs(self):
        self.assertEqual(complete("det"), ["detach-device", "detach-device-alias"])
        self.assertEqual(complete("nodedev-re"), ["nodedev-reattach"])
        every = complete("")
        for verb in ("attach-device", "list", "dumpxml", "events", "version",
                     "nodedev-list", "mdev-create", "mdev-remove"):
            self.assertIn(verb, every)
        # an option before the verb does not hide it
        self.assertEqual(complete("--json", "dump"), ["dumpxml"])

    def test_options(self):
        self.assertEqual(complete("attach-device", "vm1", "x.xml", "--dr"), ["--dry-run"])
        self.assertIn("--wait", complete("detach-device-alias", "vm1", "--"))
        self.assertEqual(complete("nodedev-list", "--cap", ""), ["mdev", "pci", "usb_device"])
        self.assertEqual(complete("events", "vm1", "--l"), ["--loop"])

    def test_vm_names_are_the_sockets_of_the_runtime_directory(self):
        make_socket(os.path.join(self.tmp, "web1.sock"))
        make_socket(os.path.join(self.tmp, "web2.sock"))
        make_socket(os.path.join(self.tmp, "db.sock"))
        open(os.path.join(self.tmp, "notasocket.sock"), "w").close()
        os.mkdir(os.path.join(self.tmp, "claims"))
        self.assertEqual(complete("list", "", runtime_dir=self.tmp),
                         ["db", "web1", "web2"])
        self.assertEqual(complete("attach-device", "we", runtime_dir=self.tmp),
                         ["web1", "web2"])
        self.assertEqual(complete("--json", "dumpxml", "d", runtime_dir=self.tmp), ["db"])
        self.assertEqual(complete("mdev-create", "--vm", "w", runtime_dir=self.tmp),
                         ["web1", "web2"])
        # host-only verbs take no VM
        self.assertNotIn("db", complete("nodedev-dumpxml", "", runtime_dir=self.tmp))

    def test_node_device_names_from_the_fixture(self):
        root = extract_fixture(os.path.join(self.tmp, "root"))
        self.assertEqual(complete("nodedev-detach", "--host-root", root, "pci_0000_05"),
                         ["pci_0000_05_00_0", "pci_0000_05_00_1"])
        names = complete("nodedev-dumpxml", "--host-root", root, "")
        self.assertIn("pci_0000_01_00_0", names)
        self.assertIn("usb_1_1", names)
        # detach takes PCI devices only
        self.assertNotIn("usb_1_1", complete("nodedev-detach", "--host-root", root, ""))


USB_KEY = """<hostdev mode='subsystem' type='usb' managed='yes'>
  <source startupPolicy='optional'>
    <vendor id='0x1d6b'/>
    <product id='0x0104'/>
  </source>
  <alias name='ua-key'/>
</hostdev>
"""

USB_OTHER = """<hostdev mode='subsystem' type='usb' managed='yes'>
  <source startupPolicy='optional'>
    <vendor id='0x1d6b'/>
    <product id='0x0105'/>
  </source>
</hostdev>
"""


class CompletionWithDaemon(HostdevdTestCase):
    """A real hostdevd beside a real QEMU: the VM's name and its aliases."""

    def test_vm_and_its_aliases(self):
        self.assertEqual(complete("detach-device-alias", "test", runtime_dir=self.tmp),
                         [self.vm])
        self.assertEqual(complete("detach-device-alias", self.vm, "", runtime_dir=self.tmp), [])

        self.ctl("attach-device", self.vm, self.write_xml("key.xml", USB_KEY), check=True)
        self.ctl("attach-device", self.vm, self.write_xml("other.xml", USB_OTHER), check=True)
        self.assertEqual(complete("detach-device-alias", self.vm, "", runtime_dir=self.tmp),
                         ["hostdev0", "ua-key"])
        self.assertEqual(complete("detach-device-alias", self.vm, "ua", runtime_dir=self.tmp),
                         ["ua-key"])
        # the socket path works as the VM too
        self.assertEqual(complete("detach-device-alias", self.socket_path, "host",
                                  runtime_dir=self.tmp), ["hostdev0"])

        self.ctl("detach-device-alias", self.vm, "ua-key", check=True)
        self.assertEqual(complete("detach-device-alias", self.vm, "", runtime_dir=self.tmp),
                         ["hostdev0"])


if __name__ == "__main__":
    main()
