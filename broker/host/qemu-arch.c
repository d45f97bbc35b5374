/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu-arch.c - a QEMU process's guest architecture from its executable
 */
#define G_LOG_DOMAIN "hostdevd"

#include "qemu-arch.h"
#include "hostdevd-error.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#ifndef EM_LOONGARCH
#define EM_LOONGARCH 258
#endif

typedef struct {
  guint16 machine;
  guint8 elf_class;   /* 0: either */
  const char *arch;
} ElfArch;

/* e_machine (and class, where it tells two targets apart) → QEMU's target name */
static const ElfArch elf_arches[] = {
  { EM_X86_64, 0, "x86_64" },
  { EM_386, 0, "i386" },
  { EM_S390, ELFCLASS64, "s390x" },
  { EM_AARCH64, 0, "aarch64" },
  { EM_ARM, 0, "arm" },
  { EM_PPC64, 0, "ppc64" },
  { EM_PPC, 0, "ppc" },
  { EM_RISCV, ELFCLASS64, "riscv64" },
  { EM_RISCV, ELFCLASS32, "riscv32" },
  { EM_MIPS, ELFCLASS64, "mips64" },
  { EM_MIPS, ELFCLASS32, "mips" },
  { EM_LOONGARCH, ELFCLASS64, "loongarch64" },
};

static const char known_names[] =
  "x86_64 i386 s390x aarch64 arm ppc64 ppc riscv64 riscv32 mips64 mips loongarch64";

gboolean
qemu_arch_is_known(const char *arch)
{
  for (gsize i = 0; arch && i < G_N_ELEMENTS(elf_arches); i++)
    if (strcmp(elf_arches[i].arch, arch) == 0)
      return TRUE;
  return FALSE;
}

const char *
qemu_arch_known_names(void)
{
  return known_names;
}

const char *
qemu_arch_from_elf_header(const guint8 *header, gsize length, GError **error)
{
  if (length < 20 || memcmp(header, ELFMAG, SELFMAG) != 0) {
    g_set_error_literal(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                        "not an ELF executable");
    return NULL;
  }
  guint8 elf_class = header[EI_CLASS];
  guint8 data = header[EI_DATA];
  if ((elf_class != ELFCLASS32 && elf_class != ELFCLASS64) ||
      (data != ELFDATA2LSB && data != ELFDATA2MSB)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "an ELF file of unknown class %u or byte order %u", elf_class, data);
    return NULL;
  }
  /* e_machine follows e_ident[16] and e_type, in the file's byte order */
  guint16 machine = data == ELFDATA2LSB ? (guint16)(header[18] | header[19] << 8)
                                        : (guint16)(header[18] << 8 | header[19]);
  for (gsize i = 0; i < G_N_ELEMENTS(elf_arches); i++)
    if (elf_arches[i].machine == machine &&
        (elf_arches[i].elf_class == 0 || elf_arches[i].elf_class == elf_class))
      return elf_arches[i].arch;
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
              "an ELF executable for machine %u (%u-bit), which hostdevd does not know",
              machine, elf_class == ELFCLASS64 ? 64 : 32);
  return NULL;
}

const char *
qemu_arch_from_executable_name(const char *name)
{
  if (name == NULL || !g_str_has_prefix(name, "qemu-system-"))
    return NULL;
  const char *arch = name + strlen("qemu-system-");
  for (gsize i = 0; i < G_N_ELEMENTS(elf_arches); i++)
    if (strcmp(elf_arches[i].arch, arch) == 0)
      return elf_arches[i].arch;
  return NULL;
}

const char *
qemu_arch_of_process(pid_t pid, char **how, GError **error)
{
  g_autofree char *link = g_strdup_printf("/proc/%d/exe", (int)pid);
  g_autoptr(GError) local = NULL;
  g_autofree char *target = g_file_read_link(link, &local);

  if (target == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot tell which executable QEMU (pid %d) runs: %s", (int)pid, local->message);
    return NULL;
  }
  if (g_str_has_suffix(target, " (deleted)"))   /* upgraded while it runs: the name still tells */
    target[strlen(target) - strlen(" (deleted)")] = '\0';
  g_autofree char *name = g_path_get_basename(target);
  const char *arch = qemu_arch_from_executable_name(name);
  if (how)
    *how = g_strdup(target);
  if (arch)
    return arch;

  /* a binary of another name runs guests of its own architecture (KVM) */
  int fd = open(link, O_RDONLY | O_CLOEXEC);
  guint8 header[64];
  ssize_t n = fd >= 0 ? read(fd, header, sizeof header) : -1;
  int saved = errno;
  if (fd >= 0)
    close(fd);
  if (n < 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read QEMU's executable %s (pid %d): %s", target, (int)pid,
                g_strerror(saved));
    return NULL;
  }
  arch = qemu_arch_from_elf_header(header, (gsize)n, &local);
  if (arch == NULL)
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "QEMU's executable %s (pid %d) is %s", target, (int)pid, local->message);
  return arch;
}
