#include "cli/network_flags.hpp"

#include <CLI/CLI.hpp>

namespace kapsel::cli {

void NetworkFlags::add_to(CLI::App& cmd) {
  const std::string group = "Network";
  cmd.add_option("--network", mode,
                 "none (loopback only), host (the host's; weakens isolation), bridge (network "
                 "kapsel0, made on first use) or bridge:NAME. Default: bridge if kapsel0 exists, "
                 "else none")
      ->group(group);
  cmd.add_option("--ip", ip, "The VE's address on its bridge (default: the lowest free one)")
      ->group(group);
  cmd.add_option("-p,--publish", publish,
                 "Publish a port of the VE on the host: [HOSTIP:]HOSTPORT:VEPORT[/tcp|/udp] "
                 "(repeatable; reachable from the host's loopback too)")
      ->group(group)
      ->take_all()
      ->expected(1);
}

static std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::vector<std::pair<std::string, std::string>> describe(const store::NetworkConfig& n) {
  if (!n.is_bridge()) return {{"network", n.mode}};
  return {{"network", "bridge " + n.network},
          {"address", n.address},
          {"gateway", n.gateway},
          {"mac", n.mac},
          {"published", n.publish.empty() ? std::string("-") : join(n.publish)}};
}

}  // namespace kapsel::cli
