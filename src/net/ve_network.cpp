#include "net/ve_network.hpp"

#include "net/link.hpp"

namespace kapsel::net {

Result<store::NetworkConfig> assign_network(NetworkStore& networks, const std::string& ve,
                                            const std::string& mode, const std::string& ip) {
  std::string wanted = mode;
  if (wanted.empty()) wanted = networks.exists(kDefaultNetwork) ? "bridge" : "none";
  store::NetworkConfig config;
  if (wanted == "none" || wanted == "host") {
    if (!ip.empty())
      return fail(ErrorKind::usage, "--ip " + ip + " needs --network bridge[:NAME], not " + wanted);
    config.mode = wanted;
    return config;
  }
  if (wanted != "bridge" && !wanted.starts_with("bridge:"))
    return fail(ErrorKind::usage,
                "unknown network mode '" + wanted + "' (use none, host, bridge or bridge:NAME)");
  std::optional<IpAddress> requested;
  if (!ip.empty()) {
    auto a = parse_address(ip);
    if (!a) return tl::unexpected(a.error().context("--ip"));
    requested = *a;
  }
  auto network = wanted == "bridge" ? networks.ensure_default() : networks.load(wanted.substr(7));
  if (!network) return tl::unexpected(network.error());
  auto address = networks.lease(network->name, ve, requested);
  if (!address) return tl::unexpected(address.error());
  config.mode = "bridge";
  config.network = network->name;
  config.address = Cidr{*address, network->subnet.prefix}.to_string();
  config.gateway = network->gateway.to_string();
  config.mac = to_string(stable_mac(network->name + "/" + address->to_string()));
  return config;
}

Status release_network(NetworkStore& networks, const std::string& ve,
                       const store::NetworkConfig& config) {
  if (!config.is_bridge()) return {};
  return networks.release(config.network, ve);
}

}  // namespace kapsel::net
