// Interface addresses through rtnetlink, for IPv4 and IPv6 alike.
#pragma once

#include "common/error.hpp"
#include "net/cidr.hpp"
#include "net/netlink_socket.hpp"

namespace kapsel::net {

// Adds `address` (host address and prefix, "10.88.0.2/16") to link `ifindex`. An address the
// link already has is success (a bridge's gateway address survives kapsel's commands).
[[nodiscard]] Status add_address(NetlinkSocket& sock, int ifindex, const Cidr& address);

}  // namespace kapsel::net
