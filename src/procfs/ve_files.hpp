// What the /proc service knows of the VEs of one run dir, and the text of each of their virtual
// files: it gathers the inputs of the renderers (state.json, cgroup counters, the host's files,
// the VE's tasks) and keeps the VEs' load averages. No FUSE here, so it is tested on its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/manager.hpp"
#include "common/error.hpp"
#include "procfs/load_average.hpp"
#include "procfs/render.hpp"
#include "store/store.hpp"

namespace kapsel::procfs {

class VeFiles {
 public:
  using Clock = std::chrono::steady_clock;
  // A VE whose loadavg has not been read for this long is no longer sampled.
  static constexpr auto kActiveFor = std::chrono::minutes(15);

  explicit VeFiles(store::Paths paths);

  // The VEs that have a state.json with a live monitor (starting, running or stopping), sorted.
  [[nodiscard]] std::vector<std::string> running() const;
  // The state of `ve` if it is one of them.
  [[nodiscard]] std::optional<store::RuntimeState> state_of(const std::string& ve) const;

  // The text of kVirtualFiles[index] for `ve`; not_found if the VE is not running. When the
  // VE's cgroup counters cannot be read (its cgroups are gone or not made yet), the VE is shown
  // the host's figures with its own uptime, as it would see without the service; a read must
  // not fail only because the VE is between states.
  [[nodiscard]] Result<std::string> render(const std::string& ve, std::size_t index);

  // Takes one load sample of every VE whose loadavg was read within kActiveFor, and forgets the
  // others. Called every LoadAverage::kSampleIntervalS.
  void sample_loads();

 private:
  struct Active {
    std::string cgroup_parent;
    LoadAverage load;
    Clock::time_point last_read;
  };

  // A cgroup manager, probed once per cgroup parent. Its calls are serialised: the Manager
  // interface promises nothing about concurrent use, and the FUSE threads and the load sampler
  // would otherwise share it.
  struct Cgroups {
    std::mutex mutex;
    std::unique_ptr<cgroup::Manager> manager;
  };
  Result<std::shared_ptr<Cgroups>> cgroups(const std::string& parent);
  cgroup::Stats stats_of(const std::string& ve, const store::RuntimeState& state);
  std::optional<TaskCounts> tasks_of(const std::string& ve, const std::string& parent,
                                     bool with_last_pid);
  Result<std::string> loadavg(const std::string& ve, const store::RuntimeState& state);

  store::Store store_;
  std::mutex managers_mutex_;
  std::map<std::string, std::shared_ptr<Cgroups>> managers_;
  std::mutex active_mutex_;
  std::map<std::string, Active> active_;
};

// The kernel's name of a block device ("vda"), from <sys>/dev/block/MAJ:MIN/uevent.
[[nodiscard]] std::optional<std::string> block_device_name(std::uint32_t major, std::uint32_t minor,
                                                           const std::string& sys = "/sys");

// The VE's tasks counted from /proc/<pid>/task/*/: states always, the highest pid in the VE's
// pid namespace (the last NSpid) only with `with_last_pid`, which costs a larger file per task.
[[nodiscard]] TaskCounts count_tasks(const std::vector<pid_t>& pids, bool with_last_pid,
                                     const std::string& proc = "/proc");

}  // namespace kapsel::procfs
