#include "net/route.hpp"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>

namespace kapsel::net {

Status add_default_route(NetlinkSocket& sock, int ifindex, const IpAddress& gateway) {
  NetlinkMessage msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rt = msg.put_extra<rtmsg>();
  rt->rtm_family = static_cast<unsigned char>(gateway.family);
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_BOOT;
  rt->rtm_scope = RT_SCOPE_UNIVERSE;
  rt->rtm_type = RTN_UNICAST;
  mnl_attr_put(msg.header(), RTA_GATEWAY, gateway.size(), gateway.bytes.data());
  mnl_attr_put_u32(msg.header(), RTA_OIF, static_cast<std::uint32_t>(ifindex));
  return sock.request(msg, "adding the default route via " + gateway.to_string());
}

}  // namespace kapsel::net
