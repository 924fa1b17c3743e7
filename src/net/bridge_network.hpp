// A VE on a kapsel bridge, in the kernel: the bridge with the gateway address, and the VE's veth
// pair (host end on the bridge, eth0 in the VE with its address and default route). Made by the
// VE's monitor at every start, in the host's network namespace (the one kapsel runs in).
#pragma once

#include <string>
#include <string_view>

#include "common/error.hpp"
#include "store/ve_config.hpp"

namespace kapsel::net {

// The host end of a VE's veth pair (or its tap, for a guest kernel): "kv" and a hash of the VE's
// name, within the 15 bytes of an interface name (VE names may be 64), and the same at every start
// so leftovers can be found.
[[nodiscard]] std::string host_veth_name(std::string_view ve);

// Makes bridge `network` with the VE network's gateway address (`config.gateway`, with the
// prefix of `config.address`), up; what already exists is kept. Then the VE's veth pair, its
// end in the network namespace open as `netns_fd` as eth0 with its MAC and address, and the
// default route via the gateway. On failure the veth pair is removed again. True if the bridge
// was made now (so its network's nftables rules are to be made too).
[[nodiscard]] Result<bool> attach_ve(const std::string& ve, const store::NetworkConfig& config,
                                     int netns_fd);

// The same for a UML (later vm) guest: bridge `network` as above, then a persistent tap named
// host_veth_name(ve) on it, up, for the guest kernel to open. The guest configures its own
// interface (its kernel is not the host's). On failure the tap is removed again.
[[nodiscard]] Result<bool> attach_tap(const std::string& ve, const store::NetworkConfig& config);

// Removes the VE's veth pair or tap, if it is there (the kernel removes it by itself when the VE's
// namespace goes, but not always before the next start).
[[nodiscard]] Status detach_ve(const std::string& ve);

// Removes bridge `name`, if it is there.
[[nodiscard]] Status remove_bridge(const std::string& name);

// /etc/resolv.conf for a VE on a bridge: the host's, without loopback nameservers (a local
// resolver such as systemd-resolved's 127.0.0.53 is not reachable from the VE, and the bridge
// runs no DNS server to stand in for it). Empty when nothing usable is left.
[[nodiscard]] std::string resolv_conf_for_bridge(std::string_view host_resolv_conf);

}  // namespace kapsel::net
