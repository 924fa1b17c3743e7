// The hybrid backend: resource controllers in v1 hierarchies, and a cgroup2 hierarchy with few
// or no controllers beside them (systemd's "hybrid" mode). The v1 part provides the limits;
// the v2 part tracks the processes, because it offers what v1 lacks: cgroup.kill and the
// "populated" flag of cgroup.events, both covering nested cgroups. It is made of the other two
// backends rather than repeating them.
#pragma once

#include <string>
#include <vector>

#include "cgroup/hierarchy.hpp"
#include "cgroup/manager.hpp"
#include "cgroup/v1_manager.hpp"
#include "cgroup/v2_manager.hpp"

namespace kapsel::cgroup {

class HybridManager final : public Manager {
 public:
  // `v1`: the v1 controller hierarchies; `v2_mount`: where the cgroup2 hierarchy is mounted.
  HybridManager(std::vector<Hierarchy> v1, std::string v2_mount, std::string parent);

  [[nodiscard]] Layout layout() const override { return Layout::hybrid; }
  [[nodiscard]] Status create(const std::string& ve) override;
  // Joins the v2 cgroup first: once a process is tracked there, cleanup finds it even if the
  // caller dies before the v1 hierarchies are done.
  [[nodiscard]] Status attach(const std::string& ve, pid_t pid) override;
  // The v2 cgroup.procs first, then one per v1 hierarchy.
  [[nodiscard]] Result<std::vector<UniqueFd>> open_procs(const std::string& ve) override;
  // From the v2 tree.
  [[nodiscard]] Result<std::vector<pid_t>> pids(const std::string& ve) override;
  // cgroup.kill in the v2 tree, then the v1 way for any process that only made it into v1
  // (attached by something other than attach(), or by a crashed kapsel).
  [[nodiscard]] Status kill_all(const std::string& ve, int timeout_ms) override;
  [[nodiscard]] Status freeze(const std::string& ve, bool frozen) override;
  [[nodiscard]] bool frozen(const std::string& ve) const override;
  [[nodiscard]] Status destroy(const std::string& ve) override;
  [[nodiscard]] bool exists(const std::string& ve) const override;
  // The v2 directory first, then one per v1 hierarchy.
  [[nodiscard]] std::vector<std::string> paths(const std::string& ve) const override;
  // Limits, statistics and OOM watching are the v1 part's: the controllers are there, and the
  // v2 tree holds none. The errors are the v1 part's as they are, naming the option.
  [[nodiscard]] Status check(const Limits& limits) const override;
  [[nodiscard]] Status apply(const std::string& ve, const Limits& limits) override;
  [[nodiscard]] Result<Stats> stats(const std::string& ve) const override;
  [[nodiscard]] Result<UniqueFd> watch_oom(const std::string& ve) override;
  // Through the v1 devices controller when it is mounted: the kernel checks both it and the
  // cgroup2 device programs, and v1 is what the other limits use. Without it, the eBPF program
  // on the VE's cgroup in the v2 hierarchy, which the kernel enforces whatever controllers v2
  // holds.
  [[nodiscard]] Status set_devices(const std::string& ve,
                                   const std::vector<DeviceRule>& rules) override;
  // In the v1 memory hierarchy, where the kernel's OOM reports name it.
  [[nodiscard]] std::string memory_cgroup_path(const std::string& ve) const override;

  [[nodiscard]] const V1Manager& v1() const { return v1_; }
  [[nodiscard]] const V2Manager& v2() const { return v2_; }

 private:
  V1Manager v1_;
  V2Manager v2_;
};

}  // namespace kapsel::cgroup
