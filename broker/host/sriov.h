/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sriov.h - SR-IOV: the number of VFs of a PF, and a VF's MAC address and
 * VLAN, which only the PF's driver can set (rtnetlink RTM_SETLINK with
 * IFLA_VFINFO_LIST on the PF's network interface).
 */
#pragma once

#include "hostdev.h"

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/**
 * sriov_set_numvfs() - enable @numvfs VFs on PF @pf (0 disables them)
 * @runtime_dir: (nullable): when given, VFs that would disappear must not
 *   be claimed by a VM (Busy naming the VM)
 * Checks before writing (InvalidArgument: not a PF, @numvfs above
 * sriov_totalvfs; HostError: no PF driver, a change between two non-zero
 * counts, which the kernel refuses), then writes sriov_numvfs and explains
 * the kernel's answer (ERANGE, EBUSY, ENOENT, ENOMEM/ENOSPC, ...).
 */
gboolean sriov_set_numvfs(const PciAddress *pf, guint numvfs,
                          const char *runtime_dir, GError **error);

/* Where a VF is configured: its PF's interface and the VF's index. */
typedef struct {
  PciAddress pf;
  guint vf_index;      /* N of the PF's virtfnN link */
  char *pf_ifname;     /* "enp2s0f0" */
  int pf_ifindex;
} SriovVfLink;

void sriov_vf_link_clear(SriovVfLink *link);

/**
 * sriov_vf_lookup() - find @vf's PF, index and the PF's network interface
 * InvalidArgument: not a VF; HostError: the PF has no network interface
 * (its driver is not a network driver, or it is unbound).
 */
gboolean sriov_vf_lookup(const PciAddress *vf, SriovVfLink *link, GError **error);

typedef struct {
  guint8 mac[6];
  guint vlan;          /* 0 none, 1..4095 */
  guint qos;           /* 0..7 */
} SriovVfConfig;

/* sriov_mac_parse() - "52:54:00:12:34:56" (either case) to 6 bytes. */
gboolean sriov_mac_parse(const char *text, guint8 mac[6]);

/* Return: (transfer full): "52:54:00:12:34:56". */
char *sriov_mac_format(const guint8 mac[6]);

/* sriov_vf_config_append_json() - @config as {"mac", "vlan", "qos"} for the
 * journal, appended to @out (json-text.h). */
void sriov_vf_config_append_json(GString *out, const SriovVfConfig *config);

/* sriov_vf_config_from_json() - read it back, strictly (InvalidArgument). */
gboolean sriov_vf_config_from_json(JsonObject *object, SriovVfConfig *config,
                                   GError **error);

/* sriov_vf_get_config() - the VF's current MAC and VLAN from the PF
 * (RTM_GETLINK with RTEXT_FILTER_VF); HostError. */
gboolean sriov_vf_get_config(const SriovVfLink *link, SriovVfConfig *config,
                             GError **error);

/* sriov_vf_set_config() - program MAC and VLAN through the PF
 * (RTM_SETLINK); HostError with the kernel's answer explained. */
gboolean sriov_vf_set_config(const SriovVfLink *link, const SriovVfConfig *config,
                             GError **error);

/* The netlink messages, exposed for tests. */

/* Return: (transfer full): RTM_SETLINK of @ifindex with one IFLA_VF_INFO
 * holding IFLA_VF_MAC and IFLA_VF_VLAN, flags REQUEST|ACK. */
GBytes *sriov_build_setlink(int ifindex, guint vf, const SriovVfConfig *config,
                            guint32 seq);

/* Return: (transfer full): RTM_GETLINK of @ifindex asking for VF info. */
GBytes *sriov_build_getlink(int ifindex, guint32 seq);

/* sriov_parse_newlink() - find VF @vf's MAC and VLAN in an RTM_NEWLINK
 * message; NotFound when the message lists no such VF, HostError when it
 * is malformed. */
gboolean sriov_parse_newlink(const guint8 *buf, gsize len, guint vf,
                             SriovVfConfig *config, GError **error);

G_END_DECLS
