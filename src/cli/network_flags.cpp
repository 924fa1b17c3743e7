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
}

std::vector<std::pair<std::string, std::string>> describe(const store::NetworkConfig& n) {
  if (!n.is_bridge()) return {{"network", n.mode}};
  return {{"network", "bridge " + n.network},
          {"address", n.address},
          {"gateway", n.gateway},
          {"mac", n.mac}};
}

}  // namespace kapsel::cli
