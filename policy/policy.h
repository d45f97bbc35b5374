/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policy.h - who may use a VM's control socket, as pure decisions
 *
 * No I/O and no device knowledge: callers hand in facts (the peer's
 * credentials) and get a decision plus the rule that made it, so every
 * refusal can name its rule.
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

typedef enum {
  POLICY_ACCESS_NONE,   /* may not connect */
  POLICY_ACCESS_READ,   /* list-devices, dumpxml, events */
  POLICY_ACCESS_FULL,   /* also attach-device, detach-device */
} PolicyAccess;

typedef struct _Policy Policy;

/* policy_new_default() - the policy in force without a policy file: only
 * root, and the user hostdevd itself runs as, may connect, with full access. */
Policy *policy_new_default(uid_t daemon_uid);
void policy_free(Policy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Policy, policy_free)

/**
 * policy_client_access() - what a control-socket peer may do
 * @rule: (out) (optional): the rule that decided, for messages and logs
 */
PolicyAccess policy_client_access(const Policy *policy, const char *vm,
                                  uid_t uid, gid_t gid, const char **rule);

/* Return: whether @command only reads (needs POLICY_ACCESS_READ). */
gboolean policy_command_is_read_only(const char *command);

G_END_DECLS
