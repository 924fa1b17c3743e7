// A VE's nftables rules, in kapsel's own table `ip kapsel` and nowhere else: outbound NAT
// (masquerade) for its address, and DNAT for its published ports. Each VE's rules are in three
// base chains of its own, named after its host veth (kv...-pre, -out, -post), so they are
// replaced and deleted exactly, in one transaction, without touching any other VE's.
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"
#include "net/cidr.hpp"
#include "net/publish.hpp"
#include "store/ve_config.hpp"

namespace kapsel::net {

inline constexpr const char* kNftTable = "kapsel";

// What a VE on a bridge needs from nftables.
struct VeNat {
  std::string ve;
  std::string bridge;
  Cidr address;  // the VE's, with its subnet's prefix
  std::vector<PublishSpec> publish;
};

// nft commands that remove the VE's chains (made first if missing: `delete` of a chain that
// does not exist fails the whole transaction).
[[nodiscard]] std::string ve_nat_removal(const std::string& ve);
// nft commands that replace the VE's chains with ones holding its rules.
[[nodiscard]] std::string ve_nat_rules(const VeNat& nat);

// Installs the VE's rules, and lets published ports reach it from the host's loopback
// (route_localnet on its bridge: without it the kernel drops packets from 127.0.0.1 that DNAT
// sent out of a bridge).
[[nodiscard]] Status apply_ve_nat(const VeNat& nat);
// Removes the VE's rules, if there are any.
[[nodiscard]] Status remove_ve_nat(const std::string& ve);

// The VeNat of a VE's stored config (bridge mode).
[[nodiscard]] Result<VeNat> ve_nat_of(const std::string& ve, const store::NetworkConfig& config);

}  // namespace kapsel::net
