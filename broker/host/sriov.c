/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sriov.c - SR-IOV VF count and VF MAC/VLAN
 *
 * The kernel's sriov_numvfs rules (drivers/pci/iov.c): above
 * sriov_totalvfs is ERANGE; the PF needs a bound driver with
 * sriov_configure (else ENOENT); going from N > 0 to M > 0 is EBUSY, the
 * count has to pass through 0.
 *
 * VF MAC/VLAN go over a plain NETLINK_ROUTE socket: RTM_SETLINK on the PF
 * with IFLA_VFINFO_LIST { IFLA_VF_INFO { IFLA_VF_MAC, IFLA_VF_VLAN } }.
 */
#define G_LOG_DOMAIN "hostdevd"

#include "sriov.h"
#include "claims.h"
#include "host-pci.h"
#include "host-root.h"
#include "json-text.h"
#include "hostdevd-error.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define NETLINK_TIMEOUT_S 5
#define NETLINK_BUFFER (64 * 1024)

/* ------------------------------------------------------------------ */
/* sriov_numvfs                                                        */

static gboolean
check_vfs_unclaimed(const HostPciDevice *pf, guint numvfs, const char *runtime_dir,
                    GError **error)
{
  for (guint i = numvfs; i < pf->virtfns->len; i++) {
    const PciAddress *vf = &g_array_index(pf->virtfns, PciAddress, i);
    g_autofree char *key = claims_key_pci(vf);
    g_autoptr(GError) local_error = NULL;
    g_autoptr(Claim) claim = claims_lookup(runtime_dir, key, &local_error);

    /* live while its hostdevd or its QEMU runs */
    if (claim != NULL && !claim->stale) {
      g_autofree char *bdf = pci_address_format(vf);
      g_autofree char *holder = claims_describe_holder(claim);
      g_autofree char *remedy = claims_describe_remedy(claim);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_BUSY,
                  "VF %s of %s is in use by %s: setting %u VFs would remove it; %s",
                  bdf, pf->name, holder, numvfs, remedy);
      return FALSE;
    }
  }
  return TRUE;
}

static void
set_numvfs_write_error(GError **error, int err, const HostPciDevice *pf,
                       guint numvfs, const GError *write_error)
{
  const char *why;

  switch (err) {
  case ERANGE:
    why = "more VFs than sriov_totalvfs";
    break;
  case EBUSY:
    why = "VFs are enabled already, and the kernel only changes the count "
          "from 0: set 0 first (this removes every VF), then the new count";
    break;
  case ENOENT:
    why = "the PF's driver does not support SR-IOV configuration through "
          "sysfs (or no driver is bound); for a PF on vfio-pci load it with "
          "enable_sriov=1";
    break;
  case ENOMEM:
  case ENOSPC:
    why = "the kernel could not find bus numbers or MMIO space for the VFs: "
          "enable SR-IOV support in the firmware, or boot with pci=realloc "
          "(and pci=assign-busses)";
    break;
  case EACCES:
  case EPERM:
  case EROFS:
    why = "hostdevd needs root and a writable /sys";
    break;
  default:
    why = "the PF's driver refused; see dmesg";
    break;
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot set %u VFs on %s: %s (%s)", numvfs, pf->name, why,
              write_error->message);
}

gboolean
sriov_set_numvfs(const PciAddress *pf_addr, guint numvfs, const char *runtime_dir,
                 GError **error)
{
  g_autoptr(HostPciDevice) pf = host_pci_device_read(pf_addr, error);
  g_autoptr(HostPciDevice) after = NULL;
  g_autofree char *path = NULL;
  g_autofree char *value = NULL;
  g_autoptr(GError) local_error = NULL;
  int err;

  if (pf == NULL)
    return FALSE;
  if (!pf->is_sriov_pf) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "PCI device %s is not an SR-IOV physical function (it has no "
                "sriov_totalvfs%s)", pf->name,
                pf->is_virtfn ? "; it is a VF itself" : "");
    return FALSE;
  }
  if (numvfs > pf->totalvfs) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "%s supports at most %u VFs (sriov_totalvfs); %u asked",
                pf->name, pf->totalvfs, numvfs);
    return FALSE;
  }
  if (numvfs == pf->numvfs)
    return TRUE;
  if (pf->driver == NULL) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "%s has no driver, and only the PF's driver can enable VFs: "
                "bind its driver first (e.g. `hostdevctl nodedev-reattach %s`)",
                pf->name, pf->name);
    return FALSE;
  }
  if (pf->numvfs != 0 && numvfs != 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "%s has %u VFs enabled, and the kernel only changes the count "
                "from 0: set 0 first (this removes every VF, so detach them "
                "from VMs before), then %u",
                pf->name, pf->numvfs, numvfs);
    return FALSE;
  }
  if (runtime_dir != NULL && !check_vfs_unclaimed(pf, numvfs, runtime_dir, error))
    return FALSE;

  path = host_path("sys/bus/pci/devices/%s/sriov_numvfs", pf->name);
  value = g_strdup_printf("%u", numvfs);
  err = host_write_attr(path, value, &local_error);
  if (err != 0) {
    set_numvfs_write_error(error, err, pf, numvfs, local_error);
    return FALSE;
  }
  after = host_pci_device_read(pf_addr, NULL);
  if (after == NULL || after->numvfs != numvfs) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "the kernel accepted %u VFs for %s, but sriov_numvfs reads %u: "
                "the PF's driver enabled fewer; see dmesg",
                numvfs, pf->name, after ? after->numvfs : 0);
    return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* VF look-up                                                          */

void
sriov_vf_link_clear(SriovVfLink *link)
{
  g_clear_pointer(&link->pf_ifname, g_free);
}

gboolean
sriov_vf_lookup(const PciAddress *vf_addr, SriovVfLink *link, GError **error)
{
  g_autoptr(HostPciDevice) vf = host_pci_device_read(vf_addr, error);
  g_autoptr(HostPciDevice) pf = NULL;
  g_autofree char *ifindex_path = NULL;
  g_autofree char *ifindex = NULL;
  g_autofree char *pf_dir = NULL;
  g_autoptr(GDir) dir = NULL;
  const char *entry;
  guint64 number;
  gboolean found = FALSE;

  if (vf == NULL)
    return FALSE;
  if (!vf->is_virtfn) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "PCI device %s is not an SR-IOV VF (it has no physfn), so "
                "<interface type='hostdev'> cannot program its MAC or VLAN; "
                "use <hostdev> for it", vf->name);
    return FALSE;
  }
  pf = host_pci_device_read(&vf->physfn, error);
  if (pf == NULL)
    return FALSE;
  pf_dir = host_path("sys/bus/pci/devices/%s", pf->name);
  dir = g_dir_open(pf_dir, 0, NULL);
  while (dir && !found && (entry = g_dir_read_name(dir)) != NULL) {
    g_autofree char *link_path = NULL;
    g_autofree char *name = NULL;
    PciAddress target;

    if (!g_str_has_prefix(entry, "virtfn") ||
        !g_ascii_string_to_unsigned(entry + 6, 10, 0, 0xffff, &number, NULL))
      continue;
    link_path = g_build_filename(pf_dir, entry, NULL);
    name = host_read_link_name(link_path, NULL);
    if (name && pci_address_parse(name, &target, NULL) &&
        pci_address_compare(&target, vf_addr) == 0) {
      link->vf_index = (guint)number;
      found = TRUE;
    }
  }
  if (!found) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "VF %s is not listed among the virtfnN links of its PF %s",
                vf->name, pf->name);
    return FALSE;
  }
  if (pf->net->len == 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "the PF %s of VF %s has no network interface (driver: %s), so "
                "the VF's MAC and VLAN cannot be set through it: bind the "
                "PF's network driver, or use <hostdev> instead of "
                "<interface type='hostdev'>",
                pf->name, vf->name, pf->driver ? pf->driver : "none");
    return FALSE;
  }
  ifindex_path = host_path("sys/bus/pci/devices/%s/net/%s/ifindex", pf->name,
                           (const char *)pf->net->pdata[0]);
  ifindex = host_read_attr(ifindex_path, NULL);
  if (ifindex == NULL ||
      !g_ascii_string_to_unsigned(ifindex, 10, 1, G_MAXINT32, &number, NULL)) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read the interface index of %s (PF %s)",
                (const char *)pf->net->pdata[0], pf->name);
    return FALSE;
  }
  link->pf = pf->addr;
  link->pf_ifname = g_strdup(pf->net->pdata[0]);
  link->pf_ifindex = (int)number;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* MAC and JSON                                                        */

gboolean
sriov_mac_parse(const char *text, guint8 mac[6])
{
  if (text == NULL || strlen(text) != 17)
    return FALSE;
  for (guint i = 0; i < 6; i++) {
    int high = g_ascii_xdigit_value(text[i * 3]);
    int low = g_ascii_xdigit_value(text[i * 3 + 1]);

    if (high < 0 || low < 0 || (i < 5 && text[i * 3 + 2] != ':'))
      return FALSE;
    mac[i] = (guint8)(high << 4 | low);
  }
  return TRUE;
}

char *
sriov_mac_format(const guint8 mac[6])
{
  return g_strdup_printf("%02x:%02x:%02x:%02x:%02x:%02x",
                         mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

void
sriov_vf_config_append_json(GString *out, const SriovVfConfig *config)
{
  g_autofree char *mac = sriov_mac_format(config->mac);

  json_text_object_begin(out);
  json_text_member_string(out, "mac", mac);
  json_text_member_int(out, "vlan", config->vlan);
  json_text_member_int(out, "qos", config->qos);
  json_text_object_end(out);
}

gboolean
sriov_vf_config_from_json(JsonObject *object, SriovVfConfig *config, GError **error)
{
  JsonNode *mac = json_object_get_member(object, "mac");
  JsonNode *vlan = json_object_get_member(object, "vlan");
  JsonNode *qos = json_object_get_member(object, "qos");
  SriovVfConfig parsed = { 0 };

  if (mac == NULL || json_node_get_value_type(mac) != G_TYPE_STRING ||
      !sriov_mac_parse(json_node_get_string(mac), parsed.mac) ||
      vlan == NULL || json_node_get_value_type(vlan) != G_TYPE_INT64 ||
      json_node_get_int(vlan) < 0 || json_node_get_int(vlan) > 4095 ||
      qos == NULL || json_node_get_value_type(qos) != G_TYPE_INT64 ||
      json_node_get_int(qos) < 0 || json_node_get_int(qos) > 7) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "VF configuration: expected {\"mac\": \"xx:xx:xx:xx:xx:xx\", "
                "\"vlan\": 0..4095, \"qos\": 0..7}");
    return FALSE;
  }
  parsed.vlan = (guint)json_node_get_int(vlan);
  parsed.qos = (guint)json_node_get_int(qos);
  *config = parsed;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Netlink messages                                                    */

/* A message under construction; attributes are 4-byte aligned. */
typedef struct {
  GByteArray *bytes;
} Msg;

static void
msg_put(Msg *msg, const void *data, gsize len)
{
  static const guint8 zeros[4] = { 0 };

  g_byte_array_append(msg->bytes, data, (guint)len);
  g_byte_array_append(msg->bytes, zeros, (guint)(NLMSG_ALIGN(len) - len));
}

/* Return: the offset of the attribute header, to close it with attr_end(). */
static gsize
attr_begin(Msg *msg, guint16 type)
{
  struct rtattr rta = { .rta_len = 0, .rta_type = type };
  gsize offset = msg->bytes->len;

  msg_put(msg, &rta, sizeof(rta));
  return offset;
}

static void
attr_end(Msg *msg, gsize offset)
{
  guint16 len = (guint16)(msg->bytes->len - offset);

  memcpy(msg->bytes->data + offset + G_STRUCT_OFFSET(struct rtattr, rta_len),
         &len, sizeof(len));
}

static void
attr_put(Msg *msg, guint16 type, const void *data, gsize len)
{
  struct rtattr rta = { .rta_len = (unsigned short)RTA_LENGTH(len), .rta_type = type };

  g_byte_array_append(msg->bytes, (const guint8 *)&rta, sizeof(rta));
  msg_put(msg, data, len);
}

static Msg
msg_new(guint16 type, guint16 flags, guint32 seq, int ifindex)
{
  Msg msg = { g_byte_array_new() };
  struct nlmsghdr header = {
    .nlmsg_len = 0, .nlmsg_type = type, .nlmsg_flags = flags,
    .nlmsg_seq = seq, .nlmsg_pid = 0,
  };
  struct ifinfomsg info = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };

  msg_put(&msg, &header, sizeof(header));
  msg_put(&msg, &info, sizeof(info));
  return msg;
}

static GBytes *
msg_finish(Msg *msg)
{
  guint32 len = msg->bytes->len;

  memcpy(msg->bytes->data + G_STRUCT_OFFSET(struct nlmsghdr, nlmsg_len), &len, sizeof(len));
  return g_byte_array_free_to_bytes(msg->bytes);
}

GBytes *
sriov_build_setlink(int ifindex, guint vf, const SriovVfConfig *config, guint32 seq)
{
  Msg msg = msg_new(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifindex);
  struct ifla_vf_mac mac = { .vf = vf };
  struct ifla_vf_vlan vlan = { .vf = vf, .vlan = config->vlan, .qos = config->qos };
  gsize list, info;

  memcpy(mac.mac, config->mac, 6);
  list = attr_begin(&msg, IFLA_VFINFO_LIST);
  info = attr_begin(&msg, IFLA_VF_INFO);
  attr_put(&msg, IFLA_VF_MAC, &mac, sizeof(mac));
  attr_put(&msg, IFLA_VF_VLAN, &vlan, sizeof(vlan));
  attr_end(&msg, info);
  attr_end(&msg, list);
  return msg_finish(&msg);
}

GBytes *
sriov_build_getlink(int ifindex, guint32 seq)
{
  Msg msg = msg_new(RTM_GETLINK, NLM_F_REQUEST, seq, ifindex);
  guint32 mask = RTEXT_FILTER_VF;

  attr_put(&msg, IFLA_EXT_MASK, &mask, sizeof(mask));
  return msg_finish(&msg);
}

/* Walk the attributes in [@buf, @buf + @len); calls @each for each one
 * with its payload.  Return: FALSE when an attribute is malformed. */
typedef gboolean (*AttrFunc)(guint16 type, const guint8 *data, gsize len, gpointer user);

static gboolean
walk_attrs(const guint8 *buf, gsize len, AttrFunc each, gpointer user)
{
  gsize offset = 0;

  while (offset + sizeof(struct rtattr) <= len) {
    struct rtattr rta;

    memcpy(&rta, buf + offset, sizeof(rta));
    if (rta.rta_len < sizeof(rta) || offset + rta.rta_len > len)
      return FALSE;
    if (!each(rta.rta_type & NLA_TYPE_MASK, buf + offset + RTA_LENGTH(0),
              rta.rta_len - RTA_LENGTH(0), user))
      return FALSE;
    offset += RTA_ALIGN(rta.rta_len);
  }
  return TRUE;
}

typedef struct {
  guint vf;
  gboolean found_mac;
  gboolean found_vlan;
  gboolean this_vf;
  SriovVfConfig config;
  SriovVfConfig current;
  gboolean have_mac;
  gboolean have_vlan;
} VfSearch;

static gboolean
on_vf_info_attr(guint16 type, const guint8 *data, gsize len, gpointer user)
{
  VfSearch *search = user;

  if (type == IFLA_VF_MAC) {
    struct ifla_vf_mac mac;

    if (len < sizeof(mac))
      return FALSE;
    memcpy(&mac, data, sizeof(mac));
    search->this_vf = mac.vf == search->vf;
    memcpy(search->current.mac, mac.mac, 6);
    search->have_mac = TRUE;
  } else if (type == IFLA_VF_VLAN) {
    struct ifla_vf_vlan vlan;

    if (len < sizeof(vlan))
      return FALSE;
    memcpy(&vlan, data, sizeof(vlan));
    if (vlan.vf == search->vf) {
      search->current.vlan = vlan.vlan;
      search->current.qos = vlan.qos;
      search->have_vlan = TRUE;
    }
  }
  return TRUE;
}

static gboolean
on_vfinfo_list_attr(guint16 type, const guint8 *data, gsize len, gpointer user)
{
  VfSearch *search = user;

  if (type != IFLA_VF_INFO)
    return TRUE;
  search->this_vf = FALSE;
  search->have_mac = FALSE;
  search->have_vlan = FALSE;
  memset(&search->current, 0, sizeof(search->current));
  if (!walk_attrs(data, len, on_vf_info_attr, search))
    return FALSE;
  if (search->this_vf && search->have_mac) {
    search->config = search->current;
    search->found_mac = TRUE;
    search->found_vlan = search->have_vlan;
  }
  return TRUE;
}

static gboolean
on_link_attr(guint16 type, const guint8 *data, gsize len, gpointer user)
{
  if (type == IFLA_VFINFO_LIST)
    return walk_attrs(data, len, on_vfinfo_list_attr, user);
  return TRUE;
}

gboolean
sriov_parse_newlink(const guint8 *buf, gsize len, guint vf, SriovVfConfig *config,
                    GError **error)
{
  struct nlmsghdr header;
  gsize attrs = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  VfSearch search = { .vf = vf };

  if (len < sizeof(header))
    goto malformed;
  memcpy(&header, buf, sizeof(header));
  if (header.nlmsg_type != RTM_NEWLINK || header.nlmsg_len > len ||
      header.nlmsg_len < NLMSG_ALIGN(attrs))
    goto malformed;
  if (!walk_attrs(buf + NLMSG_ALIGN(attrs), header.nlmsg_len - NLMSG_ALIGN(attrs),
                  on_link_attr, &search))
    goto malformed;
  if (!search.found_mac) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_NOT_FOUND,
                "the PF reports no VF %u over netlink: its driver does not "
                "expose VF configuration, or the VF was removed", vf);
    return FALSE;
  }
  *config = search.config;
  return TRUE;

malformed:
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "malformed RTM_NEWLINK message from the kernel");
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* Netlink socket                                                      */

static int
netlink_open(GError **error)
{
  struct timeval timeout = { .tv_sec = NETLINK_TIMEOUT_S };
  struct sockaddr_nl local = { .nl_family = AF_NETLINK };
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

  if (fd < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
      bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
    int saved = errno;
    if (fd >= 0)
      close(fd);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot open a NETLINK_ROUTE socket: %s", g_strerror(saved));
    return -1;
  }
  return fd;
}

/* Send @request and receive the answer with @seq into @reply.
 * Return: 0, a negative errno from an NLMSG_ERROR answer (an ACK is 0),
 * or 1 with @error set on a transport failure. */
static int
netlink_exchange(GBytes *request, guint32 seq, GByteArray *reply, GError **error)
{
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  gsize size = 0;
  const guint8 *data = g_bytes_get_data(request, &size);
  g_autofree guint8 *buffer = g_malloc(NETLINK_BUFFER);
  int fd = netlink_open(error);

  if (fd < 0)
    return 1;
  if (sendto(fd, data, size, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
    int saved = errno;
    close(fd);
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot send to the kernel over netlink: %s", g_strerror(saved));
    return 1;
  }
  for (;;) {
    ssize_t n = recv(fd, buffer, NETLINK_BUFFER, MSG_TRUNC);
    gsize offset = 0;

    if (n < 0) {
      int saved = errno;
      if (saved == EINTR)
        continue;
      close(fd);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "no answer from the kernel over netlink: %s", g_strerror(saved));
      return 1;
    }
    if (n > NETLINK_BUFFER) {
      close(fd);
      g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                  "the kernel's netlink answer is larger than %d bytes", NETLINK_BUFFER);
      return 1;
    }
    while (offset + sizeof(struct nlmsghdr) <= (gsize)n) {
      struct nlmsghdr header;

      memcpy(&header, buffer + offset, sizeof(header));
      if (header.nlmsg_len < sizeof(header) || offset + header.nlmsg_len > (gsize)n)
        break;
      if (header.nlmsg_seq == seq) {
        if (header.nlmsg_type == NLMSG_ERROR) {
          struct nlmsgerr answer;

          if (header.nlmsg_len < NLMSG_LENGTH(sizeof(answer)))
            break;
          memcpy(&answer, buffer + offset + NLMSG_HDRLEN, sizeof(answer));
          close(fd);
          return answer.error;
        }
        g_byte_array_append(reply, buffer + offset, header.nlmsg_len);
        close(fd);
        return 0;
      }
      offset += NLMSG_ALIGN(header.nlmsg_len);
    }
  }
}

static guint32
next_seq(void)
{
  static gint seq;

  return (guint32)g_atomic_int_add(&seq, 1) + 1;
}

gboolean
sriov_vf_get_config(const SriovVfLink *link, SriovVfConfig *config, GError **error)
{
  guint32 seq = next_seq();
  g_autoptr(GBytes) request = sriov_build_getlink(link->pf_ifindex, seq);
  g_autoptr(GByteArray) reply = g_byte_array_new();
  int answer = netlink_exchange(request, seq, reply, error);

  if (answer == 1)
    return FALSE;
  if (answer < 0) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
                "cannot read the VFs of %s (ifindex %d): %s",
                link->pf_ifname ? link->pf_ifname : "?", link->pf_ifindex,
                g_strerror(-answer));
    return FALSE;
  }
  return sriov_parse_newlink(reply->data, reply->len, link->vf_index, config, error);
}

gboolean
sriov_vf_set_config(const SriovVfLink *link, const SriovVfConfig *config, GError **error)
{
  guint32 seq = next_seq();
  g_autoptr(GBytes) request = NULL;
  g_autoptr(GByteArray) reply = g_byte_array_new();
  g_autofree char *mac = sriov_mac_format(config->mac);
  const char *why;
  int answer;

  if (config->vlan > 4095 || config->qos > 7) {
    g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_INVALID_ARGUMENT,
                "VLAN %u / QoS %u out of range (0..4095, 0..7)", config->vlan, config->qos);
    return FALSE;
  }
  request = sriov_build_setlink(link->pf_ifindex, link->vf_index, config, seq);
  answer = netlink_exchange(request, seq, reply, error);
  if (answer == 1)
    return FALSE;
  if (answer == 0)
    return TRUE;

  switch (-answer) {
  case EOPNOTSUPP:
    why = "the PF's driver cannot configure VFs";
    break;
  case EPERM:
    why = "hostdevd needs CAP_NET_ADMIN";
    break;
  case EINVAL:
    why = "the PF's driver rejected the value (a multicast MAC, a VLAN it "
          "does not support, or no such VF)";
    break;
  case ENODEV:
    why = "the PF's interface is gone";
    break;
  default:
    why = "see dmesg";
    break;
  }
  g_set_error(error, HOSTDEVD_ERROR, HOSTDEVD_ERROR_HOST_ERROR,
              "cannot set MAC %s VLAN %u on VF %u of %s: %s (%s)", mac,
              config->vlan, link->vf_index, link->pf_ifname ? link->pf_ifname : "?",
              g_strerror(-answer), why);
  return FALSE;
}
