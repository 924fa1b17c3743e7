// A VE's nftables rules, in kapsel's own table `inet kapsel` and nowhere else: outbound NAT
// (masquerade) for its address, DNAT for its published ports, and a filter that keeps it from
// reaching other kapsel networks through the host. Each VE's rules are in four base chains of
// its own, named after its host veth (kv...-pre, -out, -post, -fwd), so they are replaced and
// deleted exactly, in one transaction, without touching any other VE's.
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
  // The subnets of every other kapsel network (those of the VE's address family count): traffic
  // from the VE to them is dropped when
  // the host forwards, so two bridges isolate their VEs. (Networks made after the VE started
  // are covered by their own VEs' rules, which drop the replies.)
  std::vector<Cidr> other_networks;
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
[[nodiscard]] Result<VeNat> ve_nat_of(const std::string& ve, const store::NetworkConfig& config,
                                      const std::vector<Cidr>& other_networks);

}  // namespace kapsel::net
