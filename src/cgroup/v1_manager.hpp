// The legacy (v1) backend: one hierarchy per controller or group of co-mounted controllers, and
// the VE's cgroup at <hierarchy>/<parent>/<ve> in each. The hybrid backend uses it for its
// controllers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cgroup/cgroupfs.hpp"
#include "cgroup/hierarchy.hpp"
#include "cgroup/interface_files.hpp"
#include "cgroup/manager.hpp"

namespace kapsel::cgroup {

class V1Manager final : public Manager {
 public:
  // `hierarchies` are v1 controller hierarchies (parse_mountinfo leaves out named ones);
  // `parent` has passed check_parent().
  V1Manager(std::vector<Hierarchy> hierarchies, std::string parent);

  [[nodiscard]] Layout layout() const override { return Layout::legacy; }
  [[nodiscard]] Status create(const std::string& ve) override;
  [[nodiscard]] Status attach(const std::string& ve, pid_t pid) override;
  [[nodiscard]] Result<std::vector<UniqueFd>> open_procs(const std::string& ve) override;
  // Read from the hierarchy of the pids controller, else the first one.
  [[nodiscard]] Result<std::vector<pid_t>> pids(const std::string& ve) override;
  // Freezes the VE through the freezer controller (if mounted) and kills every process found
  // in any hierarchy, so that a process attached to only some of them (a crash during
  // attach()) is not missed.
  [[nodiscard]] Status kill_all(const std::string& ve, int timeout_ms) override;
  [[nodiscard]] Status freeze(const std::string& ve, bool frozen) override;
  [[nodiscard]] bool frozen(const std::string& ve) const override;
  [[nodiscard]] Status destroy(const std::string& ve) override;
  [[nodiscard]] bool exists(const std::string& ve) const override;
  [[nodiscard]] std::vector<std::string> paths(const std::string& ve) const override;
  // Limits, statistics and OOM watching (v1_limits.cpp). Each limit needs the hierarchy of its
  // controller: memory (memory, memory_swap), cpu (cpus, cpu_shares, cpu_weight), cpuset,
  // pids, blkio (blkio_weight, the throttles). check() looks at the VE's parent directory, or
  // at the nearest ancestor that exists before the first VE is created.
  [[nodiscard]] Status check(const Limits& limits) const override;
  [[nodiscard]] Status apply(const std::string& ve, const Limits& limits) override;
  // CPU time from cpuacct, throttling and the quota from cpu, memory and swap (memsw minus
  // memory) from memory, tasks from pids, the effective cpuset, and I/O from blkio's throttle
  // counters (the only ones kept whichever I/O scheduler runs).
  [[nodiscard]] Result<Stats> stats(const std::string& ve) const override;
  // An eventfd registered on memory.oom_control. The kernel also signals it once when the
  // cgroup is removed, and drops the registration when the eventfd is closed.
  [[nodiscard]] Result<UniqueFd> watch_oom(const std::string& ve) override;
  // v1_device_writes(rules) in the devices hierarchy, each line with a write(2) of its own (the
  // kernel takes one rule per write). A failure part way leaves the rules written so far: fewer
  // devices allowed, never more. The kernel refuses "a" in devices.deny once the VE's cgroup has
  // nested cgroups, so rules can only be replaced before (at start).
  [[nodiscard]] Status set_devices(const std::string& ve,
                                   const std::vector<DeviceRule>& rules) override;
  // "<root>/<parent>/<ve>" in the memory hierarchy ("/kapsel/web1"); "" without a memory
  // hierarchy.
  [[nodiscard]] std::string memory_cgroup_path(const std::string& ve) const override;

  // The writes apply() makes for `limits`, in order, after check(): exposed so that tests can
  // see the order (memsw before or after memory) and a front end can show a dry run. Reads the
  // VE's current memory limit to choose that order.
  [[nodiscard]] Result<std::vector<FileWrite>> plan(const std::string& ve,
                                                    const Limits& limits) const;

  // Removes the VE's cgroup directories, nested ones first, from every hierarchy, without
  // killing anything first: destroy() minus kill_all(). Tries every hierarchy and reports the
  // first failure.
  [[nodiscard]] Status remove(const std::string& ve);

  [[nodiscard]] const std::vector<Hierarchy>& hierarchies() const { return hierarchies_; }

  // True if a v1 hierarchy of `controller` is mounted.
  [[nodiscard]] bool has_controller(std::string_view controller) const {
    return find(controller) != nullptr;
  }

 private:
  // The VE's freezer.state, or nothing if no hierarchy has the freezer controller.
  [[nodiscard]] FreezerFiles freezer(const std::string& ve) const;
  [[nodiscard]] std::string dir(const Hierarchy& h, const std::string& ve) const;
  // The hierarchy holding `controller`, or nullptr.
  [[nodiscard]] const Hierarchy* find(std::string_view controller) const;
  // The hierarchy holding `controller`, or an error naming `option` that the host lacks it.
  [[nodiscard]] Result<const Hierarchy*> need(std::string_view option,
                                              std::string_view controller) const;
  // The VE's directory in the hierarchy of `controller`, which must exist.
  [[nodiscard]] Result<std::string> ve_dir(const std::string& ve, std::string_view option,
                                           std::string_view controller) const;
  // Every pid in the VE's cgroups of all hierarchies, sorted, each once.
  [[nodiscard]] Result<std::vector<pid_t>> all_pids(const std::string& ve) const;

  std::vector<Hierarchy> hierarchies_;
  std::string parent_;
};

}  // namespace kapsel::cgroup
