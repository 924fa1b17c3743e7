// The unified (v2) backend: one hierarchy, the VE's cgroup at <mount>/<parent>/<ve>. The hybrid
// backend uses it, without controllers, to track the VE's processes.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/interface_files.hpp"
#include "cgroup/manager.hpp"

namespace kapsel::cgroup {

class V2Manager final : public Manager {
 public:
  // Whether create() enables controllers for the VE in the parents' cgroup.subtree_control.
  // A unified host needs it for limits; in a hybrid layout the controllers live in v1 and the
  // v2 tree only tracks processes.
  enum class Controllers { enable, leave };

  // The controllers create() enables where the parent offers them (cgroup.controllers).
  static constexpr std::array<std::string_view, 5> kEnabledControllers = {"cpu", "cpuset", "io",
                                                                          "memory", "pids"};

  // `parent` has passed check_parent(); `mount_root` is the hierarchy's mountinfo root field
  // (Hierarchy::root).
  V2Manager(std::string mount, std::string parent, Controllers controllers,
            std::string mount_root = "/");

  [[nodiscard]] Layout layout() const override { return Layout::unified; }
  [[nodiscard]] Status create(const std::string& ve) override;
  [[nodiscard]] Status attach(const std::string& ve, pid_t pid) override;
  [[nodiscard]] Result<std::vector<UniqueFd>> open_procs(const std::string& ve) override;
  [[nodiscard]] Result<std::vector<pid_t>> pids(const std::string& ve) override;
  [[nodiscard]] Status kill_all(const std::string& ve, int timeout_ms) override;
  [[nodiscard]] Status freeze(const std::string& ve, bool frozen) override;
  [[nodiscard]] bool frozen(const std::string& ve) const override;
  [[nodiscard]] Status destroy(const std::string& ve) override;
  [[nodiscard]] bool exists(const std::string& ve) const override;
  [[nodiscard]] std::vector<std::string> paths(const std::string& ve) const override;
  // Limits, statistics and OOM watching (v2_limits.cpp). check() needs each limit's controller
  // in the cgroup.controllers of the VE's parent (or of its nearest existing ancestor before
  // the first VE has made it): memory, cpu, cpuset, pids, io.
  [[nodiscard]] Status check(const Limits& limits) const override;
  // memory_swap is Docker's memory plus swap, so memory.swap.max gets memory_swap minus memory.
  // When only memory changes and both limits are finite, memory.swap.max is recomputed so that
  // memory plus swap stays what it was, as v1's memsw does by itself.
  [[nodiscard]] Status apply(const std::string& ve, const Limits& limits) override;
  // cpu.stat, memory.*, pids.*, cpuset.cpus.effective and io.stat; cpu_per_cpu_ns stays empty
  // (v2 has no per-CPU counter).
  [[nodiscard]] Result<Stats> stats(const std::string& ve) const override;
  // An inotify descriptor watching memory.events for IN_MODIFY. The kernel modifies that file on
  // every memory event (low, high, max, oom, oom_kill), so a wake-up means "look at
  // stats().oom_kills", not always a kill.
  [[nodiscard]] Result<UniqueFd> watch_oom(const std::string& ve) override;
  // attach_device_program() on the VE's cgroup: an update replaces kapsel's previous program.
  [[nodiscard]] Status set_devices(const std::string& ve,
                                   const std::vector<DeviceRule>& rules) override;
  // "<mount root>/<parent>/<ve>" ("/kapsel/web1" on a host).
  [[nodiscard]] std::string memory_cgroup_path(const std::string& ve) const override;

  // The writes apply() makes for `limits`, in order, after check() (see V1Manager::plan).
  [[nodiscard]] Result<std::vector<FileWrite>> plan(const std::string& ve,
                                                    const Limits& limits) const;

  // Removes the VE's cgroup directory, nested ones first, without killing anything first:
  // destroy() minus kill_all().
  [[nodiscard]] Status remove(const std::string& ve);

  // True once no process is left in the VE's cgroup or below it (also when it does not exist).
  [[nodiscard]] Result<bool> empty(const std::string& ve) const;

  // The VE's cgroup directory.
  [[nodiscard]] std::string dir(const std::string& ve) const;

 private:
  std::string mount_;
  std::string parent_;
  Controllers controllers_;
  std::string mount_root_;
};

}  // namespace kapsel::cgroup
