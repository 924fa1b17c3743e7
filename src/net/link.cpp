#include "net/link.hpp"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include <cstdio>
#include <cstring>
#include <string_view>

namespace kapsel::net {
namespace {

// RTM_NEWLINK for a new interface that comes up as soon as it is made (rtnl_configure_link
// applies ifi_flags to new links, and veth applies its peer's to the peer).
NetlinkMessage new_link_message(const std::string& name) {
  NetlinkMessage msg(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifi = msg.put_extra<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  mnl_attr_put_strz(msg.header(), IFLA_IFNAME, name.c_str());
  return msg;
}

void put_link_kind(nlmsghdr* nlh, const char* kind) {
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
}

}  // namespace

Result<bool> ensure_bridge(NetlinkSocket& sock, const std::string& name) {
  NetlinkMessage msg = new_link_message(name);
  nlattr* info = mnl_attr_nest_start(msg.header(), IFLA_LINKINFO);
  put_link_kind(msg.header(), "bridge");
  mnl_attr_nest_end(msg.header(), info);
  auto made = sock.request(msg, "creating bridge " + name);
  if (!made && made.error().code == EEXIST) return false;
  if (!made) return tl::unexpected(made.error());
  return true;
}

NetlinkMessage veth_message(const VethPair& pair, int bridge_index) {
  NetlinkMessage msg = new_link_message(pair.host_name);
  nlmsghdr* nlh = msg.header();
  mnl_attr_put_u32(nlh, IFLA_MASTER, static_cast<std::uint32_t>(bridge_index));
  nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  put_link_kind(nlh, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  // VETH_INFO_PEER holds a whole ifinfomsg followed by the peer's own attributes.
  // The peer stays down: bringing up a link made in another namespace in the same request fails
  // with ENOTCONN on recent kernels (6.18); set_link_up does it from inside.
  auto* peer_ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  peer_ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, pair.peer_name.c_str());
  mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<std::uint32_t>(pair.peer_netns_fd));
  mnl_attr_put(nlh, IFLA_ADDRESS, pair.peer_mac.size(), pair.peer_mac.data());
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, info);
  return msg;
}

Status create_veth(NetlinkSocket& sock, const VethPair& pair) {
  auto bridge = link_index(sock, pair.bridge);
  if (!bridge) return tl::unexpected(bridge.error().context("attaching to bridge " + pair.bridge));
  NetlinkMessage msg = veth_message(pair, *bridge);
  return sock.request(msg, "creating veth pair " + pair.host_name);
}

Status set_link_up(NetlinkSocket& sock, int ifindex) {
  NetlinkMessage msg(RTM_NEWLINK, 0);
  auto* ifi = msg.put_extra<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return sock.request(msg, "bringing up link " + std::to_string(ifindex));
}

Status set_link_master_up(NetlinkSocket& sock, int ifindex, int bridge_index) {
  NetlinkMessage msg(RTM_NEWLINK, 0);
  auto* ifi = msg.put_extra<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  mnl_attr_put_u32(msg.header(), IFLA_MASTER, static_cast<std::uint32_t>(bridge_index));
  return sock.request(msg, "attaching link " + std::to_string(ifindex) + " to its bridge");
}

Status delete_link(NetlinkSocket& sock, const std::string& name) {
  NetlinkMessage msg(RTM_DELLINK, 0);
  msg.put_extra<ifinfomsg>()->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(msg.header(), IFLA_IFNAME, name.c_str());
  auto deleted = sock.request(msg, "deleting link " + name);
  if (!deleted && deleted.error().code == ENODEV) return {};
  return deleted;
}

Result<int> link_index(NetlinkSocket& sock, const std::string& name) {
  NetlinkMessage msg(RTM_GETLINK, 0);
  msg.put_extra<ifinfomsg>()->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(msg.header(), IFLA_IFNAME, name.c_str());
  int index = 0;
  auto found = sock.request(msg, "looking up link " + name, [&](const nlmsghdr* reply) {
    if (reply->nlmsg_type == RTM_NEWLINK)
      index = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(reply))->ifi_index;
  });
  if (!found && found.error().code == ENODEV)
    return fail(ErrorKind::not_found, "no network interface named " + name);
  if (!found) return tl::unexpected(found.error());
  return index;
}

Result<LinkBytes> link_bytes(NetlinkSocket& sock, const std::string& name) {
  NetlinkMessage msg(RTM_GETLINK, 0);
  msg.put_extra<ifinfomsg>()->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(msg.header(), IFLA_IFNAME, name.c_str());
  LinkBytes bytes;
  auto found =
      sock.request(msg, "reading the counters of link " + name, [&](const nlmsghdr* reply) {
        if (reply->nlmsg_type != RTM_NEWLINK) return;
        // mnl_attr_for_each, spelled out: its void* assignment is not C++.
        const auto* attr =
            static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(reply, sizeof(ifinfomsg)));
        const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(reply));
        for (; mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)));
             attr = mnl_attr_next(attr)) {
          if (mnl_attr_get_type(attr) != IFLA_STATS64 ||
              mnl_attr_get_payload_len(attr) < sizeof(rtnl_link_stats64))
            continue;
          // The payload is a struct rtnl_link_stats64 (checked for length above), maybe unaligned.
          rtnl_link_stats64 stats{};
          std::memcpy(&stats, mnl_attr_get_payload(attr), sizeof stats);
          bytes = LinkBytes{stats.rx_bytes, stats.tx_bytes};
        }
      });
  if (!found) return tl::unexpected(found.error());
  return bytes;
}

MacAddress stable_mac(std::string_view seed) {
  // FNV-1a: stable across builds and hosts, unlike std::hash.
  std::uint64_t h = 1469598103934665603ull;
  for (char c : seed) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  MacAddress mac{};
  for (std::size_t i = 0; i < mac.size(); ++i) mac[i] = static_cast<std::uint8_t>(h >> (8 * i));
  mac[0] = static_cast<std::uint8_t>((mac[0] & 0xfe) | 0x02);  // unicast, locally administered
  return mac;
}

std::string to_string(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return text;
}

}  // namespace kapsel::net
