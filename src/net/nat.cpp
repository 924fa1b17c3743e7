#include "net/nat.hpp"

#include <span>

#include "common/fs.hpp"
#include "net/bridge_network.hpp"
#include "net/nft.hpp"

namespace kapsel::net {
namespace {

struct ChainHook {
  const char* suffix;
  const char* type;
  const char* hook;
  const char* priority;
};
// A VE's: DNAT before routing (from other hosts) and on output (from the host itself, loopback
// included); after routing, the masquerade of the host's loopback towards it.
constexpr ChainHook kVeChains[] = {{"-pre", "nat", "prerouting", "dstnat"},
                                   {"-out", "nat", "output", "-100"},
                                   {"-post", "nat", "postrouting", "srcnat"}};
// A network's: masquerade after routing, and the filter on forwarded traffic.
constexpr ChainHook kNetworkChains[] = {{"-post", "nat", "postrouting", "srcnat"},
                                        {"-fwd", "filter", "forward", "filter"}};

// Network chains are "net-" and the network's name; VE chains "kv" and 12 hex digits, which a
// network name cannot be mistaken for once prefixed.
std::string network_chain_base(const std::string& network) {
  return "net-" + network;
}

std::string table() {
  return "inet " + std::string(kNftTable);
}

std::string chain_decl(const std::string& base, const ChainHook& c) {
  return "add chain " + table() + " " + base + c.suffix + " { type " + c.type + " hook " + c.hook +
         " priority " + c.priority + "; policy accept; }\n";
}

std::string chains_removal(const std::string& base, std::span<const ChainHook> chains) {
  std::string cmds = "add table " + table() + "\n";
  for (const auto& c : chains) {
    cmds += chain_decl(base, c);
    cmds += "flush chain " + table() + " " + base + c.suffix + "\n";
    cmds += "delete chain " + table() + " " + base + c.suffix + "\n";
  }
  return cmds;
}

// Replaces the chains: whatever was there goes in the same transaction.
std::string chains_renewal(const std::string& base, std::span<const ChainHook> chains) {
  std::string cmds = chains_removal(base, chains);
  for (const auto& c : chains) cmds += chain_decl(base, c);
  return cmds;
}

const char* family_of(const IpAddress& a) {
  return a.family == AF_INET6 ? "ip6" : "ip";
}

}  // namespace

std::string network_nat_removal(const std::string& network) {
  return chains_removal(network_chain_base(network), kNetworkChains);
}

std::string network_nat_rules(const NetworkNat& nat) {
  std::string base = network_chain_base(nat.name);
  std::string cmds = chains_renewal(base, kNetworkChains);
  std::string rule = "add rule " + table() + " " + base;
  std::string family = family_of(nat.subnet.address);
  std::string subnet = Cidr{nat.subnet.network(), nat.subnet.prefix}.to_string();
  // The VEs' own traffic leaving their subnet (for an IPv6 ULA subnet too, as behind one host
  // address).
  cmds += rule + "-post " + family + " saddr " + subnet + " " + family + " daddr != " + subnet +
          " masquerade\n";
  std::string others;
  for (const auto& n : nat.other_networks) {
    if (n.address.family == nat.subnet.address.family)
      others += (others.empty() ? "" : ", ") + n.to_string();
  }
  if (!others.empty())
    cmds += rule + "-fwd " + family + " saddr " + subnet + " " + family + " daddr { " + others +
            " } drop\n";
  return cmds;
}

std::string ve_nat_removal(const std::string& ve) {
  return chains_removal(host_veth_name(ve), kVeChains);
}

std::string ve_nat_rules(const VeNat& nat) {
  std::string cmds = chains_renewal(host_veth_name(nat.ve), kVeChains);
  std::string rule = "add rule " + table() + " " + host_veth_name(nat.ve);
  bool v6 = nat.address.address.family == AF_INET6;
  std::string family = family_of(nat.address.address);
  std::string ve_ip = nat.address.address.to_string();
  std::string ve_target = v6 ? "[" + ve_ip + "]" : ve_ip;
  for (const auto& p : nat.publish) {
    // A published port of the other family cannot reach the VE (there is no NAT between
    // families); assign_network refuses such a host address, so none is here.
    std::string match =
        p.host_ip ? family + " daddr " + p.host_ip->to_string()
                  : "meta nfproto " + std::string(v6 ? "ipv6" : "ipv4") + " fib daddr type local";
    std::string dnat = match + " " + p.protocol + " dport " + std::to_string(p.host_port) +
                       " dnat " + family + " to " + ve_target + ":" + std::to_string(p.ve_port) +
                       "\n";
    cmds += rule + "-pre " + dnat;
    cmds += rule + "-out " + dnat;
  }
  // Connections from the host's IPv4 loopback to its published ports would reach it with a
  // source of 127.0.0.1 it cannot answer. (IPv6 has no such path: the kernel never routes ::1
  // out of an interface.)
  if (!nat.publish.empty() && !v6)
    cmds += rule + "-post ip saddr 127.0.0.0/8 ip daddr " + ve_ip + " masquerade\n";
  return cmds;
}

Status apply_network_nat(const NetworkNat& nat) {
  return with_context(run_nft(network_nat_rules(nat)), "setting up NAT for network " + nat.name);
}

Status remove_network_nat(const std::string& network) {
  return with_context(run_nft(network_nat_removal(network)),
                      "removing the NAT rules of network " + network);
}

Status apply_ve_nat(const VeNat& nat) {
  if (!nat.publish.empty() && nat.address.address.family == AF_INET) {
    KAPSEL_TRY(fs::write_existing("/proc/sys/net/ipv4/conf/" + nat.bridge + "/route_localnet", "1"),
               "letting the host's loopback reach published ports");
  }
  return with_context(run_nft(ve_nat_rules(nat)), "setting up NAT for VE " + nat.ve);
}

Status remove_ve_nat(const std::string& ve) {
  return with_context(run_nft(ve_nat_removal(ve)), "removing the NAT rules of VE " + ve);
}

Result<VeNat> ve_nat_of(const std::string& ve, const store::NetworkConfig& config) {
  auto address = parse_cidr(config.address);
  if (!address) return fail(ErrorKind::failure, "the network config of VE " + ve + " is damaged");
  VeNat nat{ve, config.network, *address, {}};
  for (const auto& text : config.publish) {
    auto spec = parse_publish(text);
    if (!spec) return tl::unexpected(spec.error());
    nat.publish.push_back(*spec);
  }
  return nat;
}

}  // namespace kapsel::net
