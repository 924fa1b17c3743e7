// The OS-level container driver: the VE's init runs on the host kernel in new pid, mount, uts,
// ipc, net and cgroup namespaces, on an overlay of its template, in its own cgroups.
#pragma once

#include <optional>

#include "common/process.hpp"
#include "driver/driver.hpp"

namespace kapsel::driver::container {

class ContainerDriver final : public Driver {
 public:
  explicit ContainerDriver(Context& ctx) : ctx_(ctx) {}

  [[nodiscard]] Status create(const store::VeConfig& config) override;
  [[nodiscard]] Result<store::RuntimeState> start(const store::VeConfig& config,
                                                  const store::VeLock& lock) override;
  [[nodiscard]] Status stop(const store::VeConfig& config, const store::RuntimeState& state,
                            const StopOptions& options) override;
  [[nodiscard]] Result<int> exec(const store::VeConfig& config, const store::RuntimeState& state,
                                 const ExecRequest& request) override;
  [[nodiscard]] Result<int> start_and_exec(const store::VeConfig& config, const store::VeLock& lock,
                                           const ExecRequest& request,
                                           const std::function<void()>& started) override;
  [[nodiscard]] Status pause(const store::VeConfig& config,
                             const store::RuntimeState& state) override;
  [[nodiscard]] Status resume(const store::VeConfig& config,
                              const store::RuntimeState& state) override;
  [[nodiscard]] bool paused(const store::VeConfig& config,
                            const store::RuntimeState& state) override;
  [[nodiscard]] Status cleanup(const store::VeConfig& config) override;
  [[nodiscard]] Result<std::size_t> process_count(const store::VeConfig& config,
                                                  const store::RuntimeState& state) override;
  [[nodiscard]] Status check_limits(const cgroup::Limits& limits) override;
  [[nodiscard]] Status apply_limits(const store::VeConfig& config, const store::RuntimeState& state,
                                    const cgroup::Limits& change) override;
  [[nodiscard]] Result<Usage> usage(const store::VeConfig& config,
                                    const store::RuntimeState& state) override;

 private:
  // start(), with `booting` called once the VE's cgroups and the monitor's files and socket
  // are ready and init is about to exec (see monitor::launch).
  [[nodiscard]] Result<store::RuntimeState> start_with(
      const store::VeConfig& config, const store::VeLock& lock,
      const std::function<void(pid_t monitor, pid_t init)>& booting);

  // exec() in two steps: what the command needs, made outside the VE (its init's pidfd, its
  // cgroups, the monitor's socket, the security policy); then joining the VE and running it.
  struct ExecPlan;
  [[nodiscard]] Result<ExecPlan> plan_exec(const store::VeConfig& config,
                                           const proc::ProcessRef& monitor, UniqueFd init,
                                           const std::string& cgroup_parent);
  [[nodiscard]] Result<int> run_exec(const store::VeConfig& config, ExecPlan& plan,
                                     const ExecRequest& request);

  // Body of the forked monitor process; never returns. It holds `lock` (a duplicate of the
  // starting command's) until the VE is up or the start has been rolled back.
  // `procfs_service`: the /proc service whose files the VE gets, if it runs.
  [[noreturn]] void run_monitor(const store::VeConfig& config, const image::Template& tmpl,
                                UniqueFd report, UniqueFd lock,
                                std::optional<proc::ProcessRef> procfs_service);

  Context& ctx_;
};

// runc's console socket protocol (used by `create --console-socket` and `exec
// --console-socket`): connects to the Unix socket at `socket_path` and sends one message whose
// data is the pty's `name` and whose one SCM_RIGHTS descriptor is its `master`.
[[nodiscard]] Status send_pty_master(const std::string& socket_path, int master,
                                     const std::string& name);

}  // namespace kapsel::driver::container
