// PLACEHOLDER (being implemented).
#include "procfs/ve_view.hpp"

namespace kapsel::procfs {
Result<HostFacts> read_host_facts() {
  return HostFacts{};
}
VeView make_view(const cgroup::Stats&, const HostFacts&, double) {
  return VeView{};
}
Result<double> init_age_seconds(pid_t, double) {
  return 0.0;
}
std::uint64_t meminfo_bytes(std::string_view, std::string_view) {
  return 0;
}
}  // namespace kapsel::procfs
