// The unified (v2) backend: one hierarchy, the VE's cgroup at <mount>/<parent>/<ve>. The hybrid
// backend uses it, without controllers, to track the VE's processes.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

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

  // `parent` has passed check_parent().
  V2Manager(std::string mount, std::string parent, Controllers controllers);

  [[nodiscard]] Layout layout() const override { return Layout::unified; }
  [[nodiscard]] Status create(const std::string& ve) override;
  [[nodiscard]] Status attach(const std::string& ve, pid_t pid) override;
  [[nodiscard]] Result<std::vector<UniqueFd>> open_procs(const std::string& ve) override;
  [[nodiscard]] Result<std::vector<pid_t>> pids(const std::string& ve) override;
  [[nodiscard]] Status kill_all(const std::string& ve, int timeout_ms) override;
  [[nodiscard]] Status destroy(const std::string& ve) override;
  [[nodiscard]] bool exists(const std::string& ve) const override;
  [[nodiscard]] std::vector<std::string> paths(const std::string& ve) const override;
  // PLACEHOLDERS (being implemented).
  [[nodiscard]] Status check(const Limits&) const override { return {}; }
  [[nodiscard]] Status apply(const std::string&, const Limits&) override { return {}; }
  [[nodiscard]] Result<Stats> stats(const std::string&) const override { return Stats{}; }
  [[nodiscard]] Result<UniqueFd> watch_oom(const std::string&) override {
    return fail(ErrorKind::failure, "not implemented");
  }
  [[nodiscard]] std::string memory_cgroup_path(const std::string&) const override { return {}; }

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
};

}  // namespace kapsel::cgroup
