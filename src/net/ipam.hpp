// Address allocation inside one bridge's subnet: pure arithmetic over what is taken, so that it
// can be tested without a store; network_store.hpp persists the leases under a lock.
#pragma once

#include <optional>
#include <set>

#include "common/error.hpp"
#include "net/cidr.hpp"

namespace kapsel::net {

// The gateway of a subnet: its first host address, which the bridge holds.
[[nodiscard]] IpAddress gateway_of(const Cidr& subnet);

// An address for a new VE: `requested` if it is a free host address of `subnet`, else (when
// none is requested) the lowest free one. `taken` holds every leased address; the network,
// gateway and (IPv4) broadcast addresses are never given out. Errors name the address and
// subnet.
[[nodiscard]] Result<IpAddress> allocate(const Cidr& subnet, const std::set<IpAddress>& taken,
                                         const std::optional<IpAddress>& requested);

}  // namespace kapsel::net
