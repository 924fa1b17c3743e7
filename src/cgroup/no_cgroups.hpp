// The cgroup manager of a rootless kapsel: an unprivileged user has no cgroups of its own to
// make VEs' cgroups in (without a delegated subtree), so nothing is made, joined or limited.
// Limits asked for are refused by check(), naming what to do; processes are found and ended
// through the VE's pid namespace instead, whose init takes everything with it.
#pragma once

#include "cgroup/manager.hpp"

namespace kapsel::cgroup {

class NoCgroups final : public Manager {
 public:
  [[nodiscard]] Layout layout() const override { return Layout::none; }
  [[nodiscard]] Status create(const std::string&) override { return {}; }
  [[nodiscard]] Status attach(const std::string&, pid_t) override { return {}; }
  [[nodiscard]] Result<std::vector<UniqueFd>> open_procs(const std::string&) override {
    return std::vector<UniqueFd>{};
  }
  [[nodiscard]] Result<std::vector<pid_t>> pids(const std::string&) override {
    return std::vector<pid_t>{};
  }
  [[nodiscard]] Status kill_all(const std::string&, int) override { return {}; }
  [[nodiscard]] Status freeze(const std::string&, bool) override {
    return fail(ErrorKind::state, "a rootless VE has no cgroup to freeze, so it cannot be paused");
  }
  [[nodiscard]] bool frozen(const std::string&) const override { return false; }
  [[nodiscard]] Status destroy(const std::string&) override { return {}; }
  [[nodiscard]] bool exists(const std::string&) const override { return false; }
  [[nodiscard]] std::vector<std::string> paths(const std::string&) const override { return {}; }
  [[nodiscard]] Status check(const Limits& limits) const override;
  [[nodiscard]] Status apply(const std::string&, const Limits& limits) override {
    return check(limits);
  }
  [[nodiscard]] Result<Stats> stats(const std::string&) const override { return Stats{}; }
  [[nodiscard]] Result<UniqueFd> watch_oom(const std::string&) override;
  [[nodiscard]] Status set_devices(const std::string&, const std::vector<DeviceRule>&) override {
    return {};
  }
  [[nodiscard]] std::string memory_cgroup_path(const std::string&) const override { return {}; }
};

}  // namespace kapsel::cgroup
