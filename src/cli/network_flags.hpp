// The network options shared by create and run (--network, --ip, --publish). They are resolved
// by the net part at create, so a bad mode, network or address gets one line naming it and
// nothing is created.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "store/ve_config.hpp"

namespace CLI {
class App;
}

namespace kapsel::cli {

struct NetworkFlags {
  std::string mode;  // empty: bridge if the default network exists, else none
  std::string ip;
  std::vector<std::string> publish;

  // Declares the options on `cmd`, in an option group of their own in --help.
  void add_to(CLI::App& cmd);
};

// Lines for `status`: "network: bridge kapsel0", "address: 10.88.0.2/16", ...
[[nodiscard]] std::vector<std::pair<std::string, std::string>> describe(
    const store::NetworkConfig& n);

// The warning `create` prints for --network host.
inline constexpr const char* kHostNetworkWarning =
    "kapsel: warning: --network host shares the host's network namespace: the VE sees and can "
    "use every interface of the host";

}  // namespace kapsel::cli
