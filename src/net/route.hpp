// Routes through rtnetlink, for IPv4 and IPv6 alike.
#pragma once

#include "common/error.hpp"
#include "net/cidr.hpp"
#include "net/netlink_socket.hpp"

namespace kapsel::net {

// Adds the default route via `gateway` out of link `ifindex`, in the main table.
[[nodiscard]] Status add_default_route(NetlinkSocket& sock, int ifindex, const IpAddress& gateway);

}  // namespace kapsel::net
