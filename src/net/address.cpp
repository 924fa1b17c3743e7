#include "net/address.hpp"

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

namespace kapsel::net {

Status add_address(NetlinkSocket& sock, int ifindex, const Cidr& address) {
  NetlinkMessage msg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = msg.put_extra<ifaddrmsg>();
  ifa->ifa_family = static_cast<std::uint8_t>(address.address.family);
  ifa->ifa_prefixlen = static_cast<std::uint8_t>(address.prefix);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(ifindex);
  // IPv6: usable at once; duplicate detection would hold it back for a second or more, and
  // kapsel's allocator already guarantees that no one else on the bridge has it.
  if (address.address.family == AF_INET6) ifa->ifa_flags = IFA_F_NODAD;
  const auto* bytes = address.address.bytes.data();
  auto size = address.address.size();
  mnl_attr_put(msg.header(), IFA_LOCAL, size, bytes);
  mnl_attr_put(msg.header(), IFA_ADDRESS, size, bytes);
  auto added = sock.request(msg, "adding address " + address.to_string());
  if (!added && added.error().code == EEXIST) return {};
  return added;
}

}  // namespace kapsel::net
