#include "net/ve_network.hpp"

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

Status set_up_ve_network(const NetworkStore& networks, const std::string& ve,
                         const store::NetworkConfig& config, int netns_fd) {
  auto all = networks.list();
  if (!all) return tl::unexpected(all.error().context("network"));
  std::vector<Cidr> others;
  for (const auto& n : *all) {
    if (n.name != config.network) others.push_back(n.subnet);
  }
  KAPSEL_TRY(attach_ve(ve, config, netns_fd), "network");
  auto nat = ve_nat_of(ve, config, others);
  Status applied = nat ? apply_ve_nat(*nat) : Status(tl::unexpected(nat.error()));
  if (!applied) {
    (void)detach_ve(ve);
    return tl::unexpected(applied.error().context("network"));
  }
  return {};
}

Status tear_down_ve_network(const std::string& ve, const store::NetworkConfig& config) {
  if (!config.is_bridge()) return {};
  Status detached = detach_ve(ve);
  Status unnatted = remove_ve_nat(ve);
  return detached ? unnatted : detached;
}

Status release_network(NetworkStore& networks, const std::string& ve,
                       const store::NetworkConfig& config) {
  if (!config.is_bridge()) return {};
  return networks.release(config.network, ve);
}

}  // namespace kapsel::net
