/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu-arch.h - which guest architecture a QEMU process emulates, told by
 * its executable rather than by its QMP answers
 *
 * query-target is QEMU's word, and a guest may own its QEMU.  On s390x
 * hostdevd reads zPCI identifiers from QEMU and reuses zpci devices, so
 * the architecture decides which of QEMU's answers are acted on.  The
 * executable of the QMP peer (/proc/PID/exe, read while hostdevd still has
 * the privilege to) names it: "qemu-system-s390x" emulates s390x whatever
 * the host is (TCG); any other name (qemu-kvm, kvm) is a binary that only
 * runs guests of its own architecture, read from its ELF header's
 * e_machine.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Return: whether @arch is a QEMU target name hostdevd knows ("x86_64", "s390x", ...). */
gboolean qemu_arch_is_known(const char *arch);

/* Return: a space-separated list of the known names, for messages and --help. */
const char *qemu_arch_known_names(void);

/**
 * qemu_arch_from_elf_header() - the QEMU target an ELF executable runs natively
 * @header: the file's first bytes; @length: how many (at least 20 needed)
 * Return: (transfer none): "x86_64", "s390x", "aarch64", ..., or NULL with
 * @error (InvalidArgument: not ELF, truncated, or a machine hostdevd does not know).
 */
const char *qemu_arch_from_elf_header(const guint8 *header, gsize length, GError **error);

/* Return: (transfer none) (nullable): X of an executable named "qemu-system-X" for a known X. */
const char *qemu_arch_from_executable_name(const char *name);

/**
 * qemu_arch_of_process() - the architecture process @pid emulates, from its executable
 * @how: (out) (optional): how it was told, for messages ("/usr/bin/qemu-system-s390x")
 * Return: (transfer none): the target name, or NULL with @error (HostError: the
 * executable cannot be read, e.g. without CAP_SYS_PTRACE for another user's process).
 */
const char *qemu_arch_of_process(pid_t pid, char **how, GError **error);

G_END_DECLS
