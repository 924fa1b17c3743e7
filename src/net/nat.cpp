#include "net/nat.hpp"

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
// DNAT before routing (from other hosts) and on output (from the host itself, loopback
// included); masquerade after routing.
// And the filter on forwarded traffic.
constexpr ChainHook kChains[] = {{"-pre", "nat", "prerouting", "dstnat"},
                                 {"-out", "nat", "output", "-100"},
                                 {"-post", "nat", "postrouting", "srcnat"},
                                 {"-fwd", "filter", "forward", "filter"}};

std::string chain_decl(const std::string& ve, const ChainHook& c) {
  return "add chain inet " + std::string(kNftTable) + " " + host_veth_name(ve) + c.suffix +
         " { type " + c.type + " hook " + c.hook + " priority " + c.priority +
         "; policy accept; }\n";
}

}  // namespace

std::string ve_nat_removal(const std::string& ve) {
  std::string cmds = "add table inet " + std::string(kNftTable) + "\n";
  for (const auto& c : kChains) {
    std::string chain = host_veth_name(ve) + c.suffix;
    cmds += chain_decl(ve, c);
    cmds += "flush chain inet " + std::string(kNftTable) + " " + chain + "\n";
    cmds += "delete chain inet " + std::string(kNftTable) + " " + chain + "\n";
  }
  return cmds;
}

std::string ve_nat_rules(const VeNat& nat) {
  std::string cmds = ve_nat_removal(nat.ve);
  for (const auto& c : kChains) cmds += chain_decl(nat.ve, c);
  std::string rule = "add rule inet " + std::string(kNftTable) + " " + host_veth_name(nat.ve);
  bool v6 = nat.address.address.family == AF_INET6;
  // The table is `inet`, for both families: each rule names the VE's (ip or ip6), and the
  // NAT statements say which family's address they write.
  std::string family = v6 ? "ip6" : "ip";
  std::string ve_ip = nat.address.address.to_string();
  std::string ve_target = v6 ? "[" + ve_ip + "]" : ve_ip;
  std::string subnet = Cidr{nat.address.network(), nat.address.prefix}.to_string();
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
  // The VE's own traffic leaving its subnet; and connections from the host's IPv4 loopback to
  // its published ports, which would otherwise reach it with a source of 127.0.0.1 it cannot
  // answer. (IPv6 has no such path: the kernel never routes ::1 out of an interface.)
  cmds += rule + "-post " + family + " saddr " + ve_ip + " " + family + " daddr != " + subnet +
          " masquerade\n";
  if (!nat.publish.empty() && !v6)
    cmds += rule + "-post ip saddr 127.0.0.0/8 ip daddr " + ve_ip + " masquerade\n";
  std::string others;
  for (const auto& n : nat.other_networks) {
    if (n.address.family == nat.address.address.family)
      others += (others.empty() ? "" : ", ") + n.to_string();
  }
  if (!others.empty())
    cmds += rule + "-fwd " + family + " saddr " + ve_ip + " " + family + " daddr { " + others +
            " } drop\n";
  return cmds;
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

Result<VeNat> ve_nat_of(const std::string& ve, const store::NetworkConfig& config,
                        const std::vector<Cidr>& other_networks) {
  auto address = parse_cidr(config.address);
  if (!address) return fail(ErrorKind::failure, "the network config of VE " + ve + " is damaged");
  VeNat nat{ve, config.network, *address, {}, other_networks};
  for (const auto& text : config.publish) {
    auto spec = parse_publish(text);
    if (!spec) return tl::unexpected(spec.error());
    nat.publish.push_back(*spec);
  }
  return nat;
}

}  // namespace kapsel::net
