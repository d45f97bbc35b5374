/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "policy.h"

struct _Policy {
  uid_t daemon_uid;
};

Policy *
policy_new_default(uid_t daemon_uid)
{
  Policy *policy = g_new0(Policy, 1);
  policy->daemon_uid = daemon_uid;
  return policy;
}

void
policy_free(Policy *policy)
{
  g_free(policy);
}

PolicyAccess
policy_client_access(const Policy *policy, const char *vm, uid_t uid, gid_t gid,
                     const char **rule)
{
  const char *unused;
  if (rule == NULL)
    rule = &unused;

  if (uid == 0) {
    *rule = "default: root has full access";
    return POLICY_ACCESS_FULL;
  }
  if (uid == policy->daemon_uid) {
    *rule = "default: the user hostdevd runs as has full access";
    return POLICY_ACCESS_FULL;
  }
  *rule = "default: only root and hostdevd's own user may use the control socket "
          "(no policy file grants this user access)";
  return POLICY_ACCESS_NONE;
}

gboolean
policy_command_is_read_only(const char *command)
{
  static const char *const read_only[] = {
    "list-devices", "dumpxml", "query-version",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(read_only); i++)
    if (g_strcmp0(read_only[i], command) == 0)
      return TRUE;
  return FALSE;
}
