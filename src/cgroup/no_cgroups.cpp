#include "cgroup/no_cgroups.hpp"

namespace kapsel::cgroup {

Status NoCgroups::check(const Limits& limits) const {
  if (limits.empty()) return {};
  return fail(ErrorKind::permission,
              "resource limits need cgroups, and a rootless kapsel has none delegated to it: run "
              "kapsel as root to limit a VE, or leave out the limit flags");
}

Result<UniqueFd> NoCgroups::watch_oom(const std::string&) {
  return fail(ErrorKind::not_found, "no memory cgroup to watch (rootless)");
}

}  // namespace kapsel::cgroup
