// One interface over the host's cgroup layout. The backend is chosen once, by probing the
// host at start-up: unified v2, legacy v1, or hybrid (v1 controllers beside a v2 hierarchy
// that holds few or no controllers, the layout of the machines kapsel is built on).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/devices.hpp"
#include "cgroup/resources.hpp"
#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::cgroup {

// none: a rootless kapsel, which has no cgroups (no_cgroups.hpp).
enum class Layout { unified, legacy, hybrid, none };
[[nodiscard]] std::string_view to_string(Layout layout);

struct Options {
  // Where the cgroup hierarchies are mounted.
  std::string root = "/sys/fs/cgroup";
  // The directory under each hierarchy that holds one cgroup per VE: <hierarchy>/<parent>/<ve>.
  // Tests use their own parent so they never touch real VEs.
  std::string parent = "kapsel";
  // Read to find the hierarchies and their controllers.
  std::string mountinfo = "/proc/self/mountinfo";
};

class Manager {
 public:
  virtual ~Manager() = default;

  [[nodiscard]] virtual Layout layout() const = 0;

  // Creates the VE's cgroup in every hierarchy kapsel uses (initialising what v1 needs before
  // a task may join, e.g. cpuset.cpus/mems). Idempotent.
  [[nodiscard]] virtual Status create(const std::string& ve) = 0;

  // Moves `pid` (0: the calling process) into the VE's cgroup in every hierarchy.
  [[nodiscard]] virtual Status attach(const std::string& ve, pid_t pid) = 0;

  // Opens the VE's cgroup.procs in every hierarchy for writing. A process that must join the VE
  // after it has left the host's mount namespace (exec) opens these first, then writes "0".
  [[nodiscard]] virtual Result<std::vector<UniqueFd>> open_procs(const std::string& ve) = 0;

  // Every process in the VE's cgroup, including nested cgroups.
  [[nodiscard]] virtual Result<std::vector<pid_t>> pids(const std::string& ve) = 0;

  // SIGKILLs every process of the VE (cgroup.kill where the kernel has it, otherwise freeze,
  // kill, thaw, repeated until empty) and waits up to `timeout_ms` until none remains.
  [[nodiscard]] virtual Status kill_all(const std::string& ve, int timeout_ms) = 0;

  // Freezes every process of the VE (nested cgroups too), or thaws them, and returns once the
  // kernel reports it done. v1: freezer.state in the freezer hierarchy; v2 and hybrid:
  // cgroup.freeze, which every non-root v2 cgroup has whatever its controllers. A host without
  // a freezer is ErrorKind::state.
  [[nodiscard]] virtual Status freeze(const std::string& ve, bool frozen) = 0;
  // True if the VE's processes are frozen now.
  [[nodiscard]] virtual bool frozen(const std::string& ve) const = 0;

  // Removes the VE's cgroup, and any cgroups nested in it, from every hierarchy, killing
  // leftover processes first. A missing cgroup is success, so cleanup can always be re-run.
  [[nodiscard]] virtual Status destroy(const std::string& ve) = 0;

  // True if the VE's cgroup exists in any hierarchy.
  [[nodiscard]] virtual bool exists(const std::string& ve) const = 0;

  // The VE's cgroup directory in each hierarchy (for diagnostics and tests).
  [[nodiscard]] virtual std::vector<std::string> paths(const std::string& ve) const = 0;

  // Refuses limits this host cannot enforce, before anything is written: a controller or file
  // the host lacks (e.g. memory_swap without swap accounting, blkio_weight without BFQ), a
  // cpuset outside the parent's CPUs, and whatever validate() refuses. The error is one line of
  // ErrorKind::usage that names the option ("--memory-swap: this host has no swap accounting
  // (memory.memsw.limit_in_bytes is missing in /sys/fs/cgroup/memory/kapsel)"). The VE's cgroup
  // need not exist yet.
  [[nodiscard]] virtual Status check(const Limits& limits) const = 0;

  // Writes every field `limits` sets to the VE's cgroup (which must exist), in an order the
  // kernel accepts (e.g. v1 memsw is raised before and lowered after memory). If the kernel
  // refuses one, the values written so far are put back, so the previous limits stay in force,
  // and the error (ErrorKind::failure, the errno as code) names the option and the kernel's
  // reason ("--memory: the VE already uses 80.0 MiB, more than the new limit 64.0 MiB (the
  // kernel refused: Device or resource busy)"). Runs check() first; a VE without a cgroup is
  // ErrorKind::not_found.
  [[nodiscard]] virtual Status apply(const std::string& ve, const Limits& limits) = 0;

  // The VE's counters and the limits in force (see Stats).
  [[nodiscard]] virtual Result<Stats> stats(const std::string& ve) const = 0;

  // A descriptor that becomes readable each time the kernel OOM-kills in the VE's memory
  // cgroup: an eventfd registered on memory.oom_control through cgroup.event_control (v1, read
  // 8 bytes to re-arm; it is also signalled once when the cgroup is removed), or an inotify
  // descriptor watching memory.events for modification (v2, read the inotify events to re-arm;
  // other memory events wake it too). It may wake without a kill, so counting the kills is
  // stats().oom_kills. Non-blocking and close-on-exec.
  [[nodiscard]] virtual Result<UniqueFd> watch_oom(const std::string& ve) = 0;

  // Replaces the VE's device access rules (see cgroup/devices.hpp): only devices matching an
  // allow rule may be opened or created (mknod) by its processes, nested cgroups included. v1:
  // "a" into devices.deny, then each rule's line into devices.allow (or .deny), in the devices
  // hierarchy. v2: an eBPF device program attached to the VE's cgroup, replacing the one set
  // before. Hybrid: the v1 devices controller when it is mounted, else the eBPF program on the
  // VE's cgroup in the v2 hierarchy. The VE's cgroup must exist (ErrorKind::not_found). Files
  // and processes opened before keep working: the kernel checks at open and mknod.
  [[nodiscard]] virtual Status set_devices(const std::string& ve,
                                           const std::vector<DeviceRule>& rules) = 0;

  // The VE's memory cgroup as the kernel names it in OOM reports ("oom_memcg=/kapsel/web1"):
  // its path relative to the root of the hierarchy that holds the memory controller.
  [[nodiscard]] virtual std::string memory_cgroup_path(const std::string& ve) const = 0;
};

// Probes the host and returns the matching backend.
[[nodiscard]] Result<std::unique_ptr<Manager>> probe(const Options& options = {});

}  // namespace kapsel::cgroup
