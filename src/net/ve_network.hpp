// A VE's network settings at create and destroy: the user's --network/--ip resolved into a
// store::NetworkConfig (with a leased address), and the lease given back.
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"
#include "net/network_store.hpp"
#include "store/ve_config.hpp"

namespace kapsel::net {

// `publish`: --publish specs (bridge mode only), each checked against the host's sockets and
// `published_elsewhere` (other VEs' specs). `mode`: "none", "host", "bridge" (the default network,
// made on first use), "bridge:NAME", or empty: "bridge" if the default network exists, else "none".
// `ip`: a static address for bridge mode, or empty for the lowest free one. Leases the address;
// errors name the bad part and lease nothing.
[[nodiscard]] Result<store::NetworkConfig> assign_network(
    NetworkStore& networks, const std::string& ve, const std::string& mode, const std::string& ip,
    const std::vector<std::string>& publish, const std::vector<std::string>& published_elsewhere);

// At every start, by the monitor (bridge mode): the veth pair, eth0 in the VE's network
// namespace (open as `netns_fd`) and, for published ports, the VE's nftables rules; the first VE
// since the host booted also makes the bridge and the network's rules (masquerade, and
// isolation from the other networks of `networks`). Rolled back on failure.
[[nodiscard]] Status set_up_ve_network(const NetworkStore& networks, const std::string& ve,
                                       const store::NetworkConfig& config, int netns_fd);
// The same for a guest kernel's VE (UML): a tap named host_veth_name(ve) on the bridge instead
// of a veth pair; the guest configures its own eth0.
[[nodiscard]] Status set_up_ve_tap(const NetworkStore& networks, const std::string& ve,
                                   const store::NetworkConfig& config);
// At every stop, and for a VE whose monitor died: its veth pair (or tap) and NAT rules go.
[[nodiscard]] Status tear_down_ve_network(const std::string& ve,
                                          const store::NetworkConfig& config);

// `network remove`: the network (refused while a VE holds a lease on it), its bridge and its
// nftables rules.
[[nodiscard]] Status remove_network(NetworkStore& networks, const std::string& name);

// Gives the VE's lease back (bridge mode); anything else has nothing to give back.
[[nodiscard]] Status release_network(NetworkStore& networks, const std::string& ve,
                                     const store::NetworkConfig& config);

}  // namespace kapsel::net
