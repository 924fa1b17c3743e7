// kapsel's nftables rules, in its own table `inet kapsel` and nowhere else (one table for both
// families; each rule names its family, ip or ip6).
//
// A network's rules are made once, when its bridge is made: outbound NAT (masquerade) for its
// subnet, and a filter that keeps its VEs from reaching other kapsel networks through the host.
// They live in two base chains of the network's own, net-NAME-post and net-NAME-fwd. A VE needs
// rules of its own only for published ports: DNAT, and the masquerade that lets the host's
// loopback reach them, in three base chains named after its host veth (kv...-pre, -out, -post).
// So a VE without --publish costs no nftables work at start or stop, and each set of chains is
// replaced or deleted exactly, in one transaction, without touching any other.
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"
#include "net/cidr.hpp"
#include "net/publish.hpp"
#include "store/ve_config.hpp"

namespace kapsel::net {

inline constexpr const char* kNftTable = "kapsel";

// What a network needs from nftables.
struct NetworkNat {
  std::string name;
  Cidr subnet;
  // The subnets of every other kapsel network (those of the subnet's family count): traffic from
  // this network to them is dropped when the host forwards, so two bridges isolate their VEs.
  // (A network made later is covered by its own rules, which drop the replies.)
  std::vector<Cidr> other_networks;
};

// What a VE with published ports needs from nftables.
struct VeNat {
  std::string ve;
  std::string bridge;
  Cidr address;  // the VE's, with its subnet's prefix
  std::vector<PublishSpec> publish;
};

// nft commands that replace the network's chains with ones holding its rules, and that remove
// them (made first if missing: `delete` of a chain that does not exist fails the transaction).
[[nodiscard]] std::string network_nat_rules(const NetworkNat& nat);
[[nodiscard]] std::string network_nat_removal(const std::string& network);
// The same for a VE's chains.
[[nodiscard]] std::string ve_nat_rules(const VeNat& nat);
[[nodiscard]] std::string ve_nat_removal(const std::string& ve);

[[nodiscard]] Status apply_network_nat(const NetworkNat& nat);
[[nodiscard]] Status remove_network_nat(const std::string& network);

// Installs the VE's rules, and lets published ports reach it from the host's loopback
// (route_localnet on its bridge: without it the kernel drops packets from 127.0.0.1 that DNAT
// sent out of a bridge).
[[nodiscard]] Status apply_ve_nat(const VeNat& nat);
// Removes the VE's rules, if there are any.
[[nodiscard]] Status remove_ve_nat(const std::string& ve);

// The VeNat of a VE's stored config (bridge mode).
[[nodiscard]] Result<VeNat> ve_nat_of(const std::string& ve, const store::NetworkConfig& config);

}  // namespace kapsel::net
