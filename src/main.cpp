#include <cstring>
#include <string_view>

#include "cli/cli.hpp"
#include "common/trace.hpp"
#include "oci/command.hpp"

int main(int argc, char** argv) {
  kapsel::trace::point("main");
  // The runc-compatible surface: `kapsel oci ...`, or this binary run as `kapsel-runc` (a link
  // that containerd, Podman and CRI-O are given as their runtime).
  std::string_view self = argv[0] ? argv[0] : "";
  if (auto slash = self.rfind('/'); slash != std::string_view::npos) self = self.substr(slash + 1);
  int code;
  if (self == "kapsel-runc") {
    code = kapsel::oci::run(argc, argv);
  } else if (argc > 1 && std::strcmp(argv[1], "oci") == 0) {
    code = kapsel::oci::run(argc - 1, argv + 1);
  } else {
    code = kapsel::cli::run(argc, argv);
  }
  kapsel::trace::point("exit");
  return code;
}
