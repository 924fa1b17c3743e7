// A VE's network settings at create and destroy: the user's --network/--ip resolved into a
// store::NetworkConfig (with a leased address), and the lease given back.
#pragma once

#include <string>

#include "common/error.hpp"
#include "net/network_store.hpp"
#include "store/ve_config.hpp"

namespace kapsel::net {

// `mode`: "none", "host", "bridge" (the default network, made on first use), "bridge:NAME",
// or empty: "bridge" if the default network exists, else "none". `ip`: a static address for
// bridge mode, or empty for the lowest free one. Leases the address; errors name the bad part
// and lease nothing.
[[nodiscard]] Result<store::NetworkConfig> assign_network(NetworkStore& networks,
                                                          const std::string& ve,
                                                          const std::string& mode,
                                                          const std::string& ip);

// Gives the VE's lease back (bridge mode); anything else has nothing to give back.
[[nodiscard]] Status release_network(NetworkStore& networks, const std::string& ve,
                                     const store::NetworkConfig& config);

}  // namespace kapsel::net
