#include <sched.h>

#include <cstring>
#include <string_view>

#include "cli/cli.hpp"
#include "common/process.hpp"
#include "common/trace.hpp"
#include "oci/command.hpp"

int main(int argc, char** argv) {
  kapsel::proc::prefault_code();
  kapsel::trace::point("main");
  // A command started from a realtime context (chrt, a realtime service) would pass its policy
  // on to the monitor, init and exec'd commands, and none of them could join the VE's cpu
  // cgroup, which has no realtime budget (cpu.rt_runtime_us 0): the kernel refuses with EINVAL.
  // A VE's processes are scheduled as ordinary ones; nice values are kept.
  if (int policy = ::sched_getscheduler(0); policy == SCHED_FIFO || policy == SCHED_RR) {
    sched_param normal{};
    (void)::sched_setscheduler(0, SCHED_OTHER, &normal);
  }
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
