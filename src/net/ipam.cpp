#include "net/ipam.hpp"

namespace kapsel::net {

IpAddress gateway_of(const Cidr& subnet) {
  return subnet.network().plus(1);
}

Result<IpAddress> allocate(const Cidr& subnet, const std::set<IpAddress>& taken,
                           const std::optional<IpAddress>& requested) {
  IpAddress network = subnet.network();
  IpAddress gateway = gateway_of(subnet);
  // Host addresses are network+1 .. network+host_count; +1 is the gateway's.
  IpAddress last = network.plus(subnet.host_count());
  if (requested) {
    const std::string shown = requested->to_string();
    if (!subnet.contains(*requested) || *requested <= network || *requested > last)
      return fail(ErrorKind::usage,
                  "address " + shown + " is not a host address of subnet " + subnet.to_string());
    if (*requested == gateway)
      return fail(ErrorKind::usage,
                  "address " + shown + " is the gateway of subnet " + subnet.to_string());
    if (taken.contains(*requested))
      return fail(ErrorKind::exists, "address " + shown + " is already in use");
    return *requested;
  }
  for (std::uint64_t i = 2; i <= subnet.host_count(); ++i) {
    IpAddress candidate = network.plus(i);
    if (!taken.contains(candidate)) return candidate;
  }
  return fail(ErrorKind::failure, "subnet " + subnet.to_string() + " has no free address");
}

}  // namespace kapsel::net
