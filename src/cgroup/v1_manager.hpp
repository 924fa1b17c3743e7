// The legacy (v1) backend: one hierarchy per controller or group of co-mounted controllers, and
// the VE's cgroup at <hierarchy>/<parent>/<ve> in each. The hybrid backend uses it for its
// controllers.
#pragma once

#include <string>
#include <vector>

#include "cgroup/hierarchy.hpp"
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

  // Removes the VE's cgroup directories, nested ones first, from every hierarchy, without
  // killing anything first: destroy() minus kill_all(). Tries every hierarchy and reports the
  // first failure.
  [[nodiscard]] Status remove(const std::string& ve);

  [[nodiscard]] const std::vector<Hierarchy>& hierarchies() const { return hierarchies_; }

 private:
  [[nodiscard]] std::string dir(const Hierarchy& h, const std::string& ve) const;
  // Every pid in the VE's cgroups of all hierarchies, sorted, each once.
  [[nodiscard]] Result<std::vector<pid_t>> all_pids(const std::string& ve) const;

  std::vector<Hierarchy> hierarchies_;
  std::string parent_;
};

}  // namespace kapsel::cgroup
