// The veth request, checked attribute by attribute as the kernel's rtnl_newlink and
// veth_newlink read it.
#include "net/link.hpp"

#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include <cstring>
#include <map>
#include <string>

namespace kapsel::net {
namespace {

// The attributes laid out in [begin, begin + len), by type (libmnl's iteration macros are C
// and do not compile as C++).
std::map<int, const nlattr*> attrs_in(const void* begin, std::size_t len) {
  std::map<int, const nlattr*> found;
  const char* at = static_cast<const char*>(begin);
  const char* end = at + len;
  while (at + sizeof(nlattr) <= end) {
    auto* a = reinterpret_cast<const nlattr*>(at);
    found[mnl_attr_get_type(a)] = a;
    at += MNL_ALIGN(a->nla_len);
  }
  return found;
}
std::map<int, const nlattr*> nested(const nlattr* nest) {
  return attrs_in(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest));
}

TEST(NetLink, VethMessageCreatesHostEndOnTheBridgeAndPeerInTheVe) {
  VethPair pair{"kvabc", "kapsel0", "eth0", 42, stable_mac("web1")};
  NetlinkMessage msg = veth_message(pair, 7);
  const nlmsghdr* nlh = msg.header();
  EXPECT_EQ(nlh->nlmsg_type, RTM_NEWLINK);
  EXPECT_TRUE(nlh->nlmsg_flags & NLM_F_CREATE);
  EXPECT_TRUE(nlh->nlmsg_flags & NLM_F_EXCL);
  EXPECT_TRUE(nlh->nlmsg_flags & NLM_F_ACK);
  auto top = attrs_in(static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + sizeof(ifinfomsg),
                      mnl_nlmsg_get_payload_len(nlh) - sizeof(ifinfomsg));
  EXPECT_STREQ(mnl_attr_get_str(top.at(IFLA_IFNAME)), "kvabc");
  EXPECT_EQ(mnl_attr_get_u32(top.at(IFLA_MASTER)), 7u);
  auto info = nested(top.at(IFLA_LINKINFO));
  EXPECT_STREQ(mnl_attr_get_str(info.at(IFLA_INFO_KIND)), "veth");
  auto data = nested(info.at(IFLA_INFO_DATA));
  const nlattr* peer = data.at(VETH_INFO_PEER);
  auto* peer_ifi = static_cast<const ifinfomsg*>(mnl_attr_get_payload(peer));
  EXPECT_EQ(peer_ifi->ifi_flags & IFF_UP, 0u);  // brought up from inside, see set_link_up
  // The peer's attributes follow its ifinfomsg inside the nest.
  auto peer_attrs =
      attrs_in(static_cast<const char*>(mnl_attr_get_payload(peer)) + sizeof(ifinfomsg),
               mnl_attr_get_payload_len(peer) - sizeof(ifinfomsg));
  EXPECT_STREQ(mnl_attr_get_str(peer_attrs.at(IFLA_IFNAME)), "eth0");
  EXPECT_EQ(mnl_attr_get_u32(peer_attrs.at(IFLA_NET_NS_FD)), 42u);
  ASSERT_EQ(mnl_attr_get_payload_len(peer_attrs.at(IFLA_ADDRESS)), 6u);
  EXPECT_EQ(std::memcmp(mnl_attr_get_payload(peer_attrs.at(IFLA_ADDRESS)), pair.peer_mac.data(), 6),
            0);
}

TEST(NetLink, StableMacIsLocallyAdministeredUnicastAndDeterministic) {
  auto mac = stable_mac("web1");
  EXPECT_EQ(mac, stable_mac("web1"));
  EXPECT_NE(mac, stable_mac("web2"));
  EXPECT_EQ(mac[0] & 0x03, 0x02);
  EXPECT_EQ(to_string(mac).size(), 17u);
}

}  // namespace
}  // namespace kapsel::net
