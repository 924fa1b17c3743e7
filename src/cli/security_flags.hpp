// The security options shared by create and run (--cap-add, --cap-drop, --seccomp, --device,
// --userns, --userns-range).
// They are parsed and checked by the security part, so a bad name, file or device gets one
// line naming it and nothing is created.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "store/ve_config.hpp"

namespace CLI {
class App;
}

namespace kapsel::cli {

struct SecurityFlags {
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;
  std::string seccomp;
  std::vector<std::string> devices;
  bool userns = false;
  std::string userns_range;  // BASE[:SIZE]; implies userns

  // Declares the options on `cmd`, in an option group of their own in --help.
  void add_to(CLI::App& cmd);
  // The VE's security settings: kapsel's defaults changed by what the options say.
  [[nodiscard]] Result<store::SecurityConfig> parse() const;
};

// Lines for `status`: "capabilities: default", "seccomp: default", "devices: /dev/fuse".
[[nodiscard]] std::vector<std::pair<std::string, std::string>> describe(
    const store::SecurityConfig& s);

}  // namespace kapsel::cli
