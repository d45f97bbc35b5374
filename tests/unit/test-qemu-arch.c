/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-qemu-arch.c - the guest architecture of a QEMU process, from its
 * executable's name or ELF header (issue 11, finding 3), and the USB hub
 * port paths the journal may name (finding 6)
 */
#include "hostdevd-error.h"
#include "qemu-arch.h"
#include "usb-revoke.h"

#include <elf.h>
#include <string.h>
#include <unistd.h>

/* The first 20 bytes of an ELF file: e_ident, e_type, e_machine. */
static void
make_header(guint8 *header, guint8 elf_class, guint8 data, guint16 machine)
{
  memset(header, 0, 64);
  memcpy(header, ELFMAG, SELFMAG);
  header[EI_CLASS] = elf_class;
  header[EI_DATA] = data;
  header[EI_VERSION] = EV_CURRENT;
  if (data == ELFDATA2LSB) {
    header[16] = ET_EXEC;
    header[18] = machine & 0xff;
    header[19] = machine >> 8;
  } else {
    header[17] = ET_EXEC;
    header[18] = machine >> 8;
    header[19] = machine & 0xff;
  }
}

static void
test_elf_machines(void)
{
  static const struct {
    guint8 elf_class, data;
    guint16 machine;
    const char *arch;
  } cases[] = {
    { ELFCLASS64, ELFDATA2LSB, EM_X86_64, "x86_64" },
    { ELFCLASS64, ELFDATA2MSB, EM_S390, "s390x" },      /* big-endian, as s390x is */
    { ELFCLASS64, ELFDATA2LSB, EM_AARCH64, "aarch64" },
    { ELFCLASS64, ELFDATA2LSB, EM_PPC64, "ppc64" },     /* ppc64le */
    { ELFCLASS64, ELFDATA2MSB, EM_PPC64, "ppc64" },
    { ELFCLASS64, ELFDATA2LSB, EM_RISCV, "riscv64" },
    { ELFCLASS32, ELFDATA2LSB, EM_RISCV, "riscv32" },
    { ELFCLASS32, ELFDATA2LSB, EM_386, "i386" },
    { ELFCLASS32, ELFDATA2LSB, EM_ARM, "arm" },
  };
  guint8 header[64];

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    make_header(header, cases[i].elf_class, cases[i].data, cases[i].machine);
    g_assert_cmpstr(qemu_arch_from_elf_header(header, sizeof header, &error), ==, cases[i].arch);
    g_assert_no_error(error);
    g_assert_true(qemu_arch_is_known(cases[i].arch));
  }
}

static void
test_elf_refused(void)
{
  guint8 header[64];
  g_autoptr(GError) error = NULL;

  /* 31-bit s390 is no QEMU target */
  make_header(header, ELFCLASS32, ELFDATA2MSB, EM_S390);
  g_assert_null(qemu_arch_from_elf_header(header, sizeof header, &error));
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull(strstr(error->message, "machine 22 (32-bit)"));
  g_clear_error(&error);

  make_header(header, ELFCLASS64, ELFDATA2LSB, EM_X86_64);
  g_assert_null(qemu_arch_from_elf_header(header, 19, &error));   /* truncated */
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
  g_clear_error(&error);

  header[0] = '#';                                                 /* a script */
  g_assert_null(qemu_arch_from_elf_header(header, sizeof header, &error));
  g_assert_cmpstr(error->message, ==, "not an ELF executable");
  g_clear_error(&error);

  make_header(header, 7, ELFDATA2LSB, EM_X86_64);
  g_assert_null(qemu_arch_from_elf_header(header, sizeof header, &error));
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT);
}

static void
test_executable_names(void)
{
  g_assert_cmpstr(qemu_arch_from_executable_name("qemu-system-s390x"), ==, "s390x");
  g_assert_cmpstr(qemu_arch_from_executable_name("qemu-system-x86_64"), ==, "x86_64");
  g_assert_null(qemu_arch_from_executable_name("qemu-system-s390x.sh"));
  g_assert_null(qemu_arch_from_executable_name("qemu-system-"));
  g_assert_null(qemu_arch_from_executable_name("qemu-kvm"));
  g_assert_null(qemu_arch_from_executable_name("python3"));
  g_assert_false(qemu_arch_is_known("../../etc"));
  g_assert_false(qemu_arch_is_known(""));
  g_assert_false(qemu_arch_is_known(NULL));
}

/* This test's own process: its executable is an ELF for the machine it was built for. */
static void
test_own_process(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *how = NULL;
  const char *arch = qemu_arch_of_process(getpid(), &how, &error);

  g_assert_no_error(error);
  g_assert_true(g_str_has_suffix(how, "test-qemu-arch"));
#if defined(__x86_64__)
  g_assert_cmpstr(arch, ==, "x86_64");
#elif defined(__s390x__)
  g_assert_cmpstr(arch, ==, "s390x");
#elif defined(__aarch64__)
  g_assert_cmpstr(arch, ==, "aarch64");
#else
  g_assert_nonnull(arch);
#endif
  g_assert_null(qemu_arch_of_process(0x7ffffff0, NULL, &error) ? "found" : NULL);
  g_assert_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR);
}

static void
test_usb_port_paths(void)
{
  g_assert_true(usb_revoke_port_is_valid("sys/devices/pci0000:00/0000:00:07.0/usb1/1-0:1.0/usb1-port1"));
  g_assert_true(usb_revoke_port_is_valid("sys/devices/pci0000:00/0000:00:07.0/usb1/1-1/1-1:1.0/1-1-port3"));
  g_assert_true(usb_revoke_port_is_valid("sys/devices/x/1-1.2-port14"));
  g_assert_false(usb_revoke_port_is_valid("sys/devices/../../etc/usb1-port1"));
  g_assert_false(usb_revoke_port_is_valid("sys/devices/x/.."));
  g_assert_false(usb_revoke_port_is_valid("etc/usb1-port1"));
  g_assert_false(usb_revoke_port_is_valid("sys/devices/x/usb1-port"));
  g_assert_false(usb_revoke_port_is_valid("sys/devices/x/-port1"));
  g_assert_false(usb_revoke_port_is_valid("sys/devices/x/shadow"));
  g_assert_false(usb_revoke_port_is_valid("sys/devices/x/usb1-port1 x"));
  g_assert_false(usb_revoke_port_is_valid(NULL));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/qemu-arch/elf-machines", test_elf_machines);
  g_test_add_func("/qemu-arch/elf-refused", test_elf_refused);
  g_test_add_func("/qemu-arch/executable-names", test_executable_names);
  g_test_add_func("/qemu-arch/own-process", test_own_process);
  g_test_add_func("/qemu-arch/usb-port-paths", test_usb_port_paths);
  return g_test_run();
}
