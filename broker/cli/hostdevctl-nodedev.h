/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hostdevctl-nodedev.h - hostdevctl's host-only verbs, which run in
 * hostdevctl itself on the host-preparation code, without a hostdevd:
 * nodedev-list, nodedev-dumpxml, nodedev-detach, nodedev-reattach,
 * nodedev-set-numvfs, mdev-create, mdev-remove.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Return: whether the first operand of @argv (options skipped) is one of
 * the host-only verbs. */
gboolean hostdevctl_nodedev_handles(int argc, char **argv);

/* hostdevctl_nodedev_main() - run a host-only verb.
 * Return: the exit status: 0 success, 1 failure, 2 usage error. */
int hostdevctl_nodedev_main(int argc, char **argv);

/* hostdevctl_nodedev_usage() - the usage lines of these verbs. */
const char *hostdevctl_nodedev_usage(void);

G_END_DECLS
