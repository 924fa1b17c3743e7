#include "net/ve_network.hpp"

#include "common/trace.hpp"
#include "net/bridge_network.hpp"
#include "net/link.hpp"
#include "net/nat.hpp"
#include "net/publish.hpp"

namespace kapsel::net {

Result<store::NetworkConfig> assign_network(NetworkStore& networks, const std::string& ve,
                                            const std::string& mode, const std::string& ip,
                                            const std::vector<std::string>& publish,
                                            const std::vector<std::string>& published_elsewhere) {
  std::string wanted = mode;
  if (wanted.empty()) wanted = networks.exists(kDefaultNetwork) ? "bridge" : "none";
  store::NetworkConfig config;
  if (wanted == "none" || wanted == "host") {
    if (!ip.empty())
      return fail(ErrorKind::usage, "--ip " + ip + " needs --network bridge[:NAME], not " + wanted);
    if (!publish.empty())
      return fail(ErrorKind::usage,
                  "--publish " + publish.front() + " needs --network bridge[:NAME], not " + wanted);
    config.mode = wanted;
    return config;
  }
  if (wanted != "bridge" && !wanted.starts_with("bridge:"))
    return fail(ErrorKind::usage,
                "unknown network mode '" + wanted + "' (use none, host, bridge or bridge:NAME)");
  std::vector<PublishSpec> specs;
  for (const auto& text : publish) {
    auto spec = parse_publish(text);
    if (!spec) return tl::unexpected(spec.error());
    for (const auto& other_text : published_elsewhere) {
      auto other = parse_publish(other_text);
      if (other && other->clashes_with(*spec))
        return fail(ErrorKind::exists, "port " + std::to_string(spec->host_port) + "/" +
                                           spec->protocol + " is already published by another VE");
    }
    for (const auto& earlier : specs) {
      if (earlier.clashes_with(*spec))
        return fail(ErrorKind::usage, "port " + std::to_string(spec->host_port) + "/" +
                                          spec->protocol + " is published twice");
    }
    KAPSEL_TRY(check_port_free(*spec), "--publish " + text);
    specs.push_back(*spec);
  }
  std::optional<IpAddress> requested;
  if (!ip.empty()) {
    auto a = parse_address(ip);
    if (!a) return tl::unexpected(a.error().context("--ip"));
    requested = *a;
  }
  auto network = wanted == "bridge" ? networks.ensure_default() : networks.load(wanted.substr(7));
  if (!network) return tl::unexpected(network.error());
  for (const auto& spec : specs) {
    // No NAT translates between the families: such a port could never reach the VE.
    if (spec.host_ip && spec.host_ip->family != network->subnet.address.family)
      return fail(ErrorKind::usage, "--publish " + spec.to_string() + ": the host address is " +
                                        (spec.host_ip->family == AF_INET ? "IPv4" : "IPv6") +
                                        " but network " + network->name + " is " +
                                        (spec.host_ip->family == AF_INET ? "IPv6" : "IPv4"));
  }
  auto address = networks.lease(network->name, ve, requested);
  if (!address) return tl::unexpected(address.error());
  config.mode = "bridge";
  config.network = network->name;
  config.address = Cidr{*address, network->subnet.prefix}.to_string();
  config.gateway = network->gateway.to_string();
  config.mac = to_string(stable_mac(network->name + "/" + address->to_string()));
  for (const auto& spec : specs) config.publish.push_back(spec.to_string());
  return config;
}

// The network's own rules (masquerade, isolation), made when its bridge is: at the first start
// of a VE on it since the host booted. The other networks are those in the store now.
static Status set_up_network_nat(const NetworkStore& networks, const std::string& name) {
  auto all = networks.list();
  if (!all) return tl::unexpected(all.error());
  NetworkNat nat{name, {}, {}};
  bool found = false;
  for (const auto& n : *all) {
    if (n.name == name) {
      nat.subnet = n.subnet;
      found = true;
    } else {
      nat.other_networks.push_back(n.subnet);
    }
  }
  if (!found) return fail(ErrorKind::not_found, "no network named '" + name + "'");
  return apply_network_nat(nat);
}

// What every kind of VE link shares: `attach` puts the VE's link on its bridge (making the
// bridge if needed, and saying so); then the network's rules if the bridge is new, and the VE's
// own rules for published ports. The link goes again if any of it fails.
template <typename Attach>
static Status set_up_ve_link(const NetworkStore& networks, const std::string& ve,
                             const store::NetworkConfig& config, Attach attach) {
  Result<bool> bridge_made = attach();
  if (!bridge_made) return tl::unexpected(bridge_made.error().context("network"));
  trace::point("network: VE link up");
  Status applied;
  if (*bridge_made) applied = set_up_network_nat(networks, config.network);
  if (applied && !config.publish.empty()) {
    auto nat = ve_nat_of(ve, config);
    applied = nat ? apply_ve_nat(*nat) : Status(tl::unexpected(nat.error()));
  }
  if (!applied) {
    (void)detach_ve(ve);
    return tl::unexpected(applied.error().context("network"));
  }
  return {};
}

Status set_up_ve_network(const NetworkStore& networks, const std::string& ve,
                         const store::NetworkConfig& config, int netns_fd) {
  return set_up_ve_link(networks, ve, config, [&] { return attach_ve(ve, config, netns_fd); });
}

Status set_up_ve_tap(const NetworkStore& networks, const std::string& ve,
                     const store::NetworkConfig& config) {
  return set_up_ve_link(networks, ve, config, [&] { return attach_tap(ve, config); });
}

Status tear_down_ve_network(const std::string& ve, const store::NetworkConfig& config) {
  if (!config.is_bridge()) return {};
  Status detached = detach_ve(ve);
  // Only a VE with published ports has chains of its own.
  Status unnatted = config.publish.empty() ? Status{} : remove_ve_nat(ve);
  return detached ? unnatted : detached;
}

Status remove_network(NetworkStore& networks, const std::string& name) {
  if (auto st = networks.remove(name); !st) return st;
  // The store entry is gone first, so a VE cannot be created on the network meanwhile; what is
  // left of it in the kernel goes next (a failure here leaves only kernel state that a later
  // network of the same name replaces).
  KAPSEL_TRY(remove_bridge(name), "removing bridge " + name);
  return remove_network_nat(name);
}

Status release_network(NetworkStore& networks, const std::string& ve,
                       const store::NetworkConfig& config) {
  if (!config.is_bridge()) return {};
  return networks.release(config.network, ve);
}

}  // namespace kapsel::net
