// A driver turns a VE's config into running kernel objects for one kind of virtualisation
// (container, uml, vm). It is chosen once per VE from its kind. A driver never parses command
// lines and never prints: it returns values and errors for a front end to present.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/resources.hpp"
#include "common/error.hpp"
#include "image/template.hpp"
#include "store/store.hpp"
#include "store/ve_config.hpp"

namespace kapsel::cgroup {
class Manager;
}

namespace kapsel::driver {

// What every driver may use: the store and the host's cgroup manager (probed lazily, because
// many commands never need it).
class Context {
 public:
  Context(store::Store& store, std::string cgroup_parent);
  [[nodiscard]] store::Store& store() { return store_; }
  [[nodiscard]] Result<cgroup::Manager*> cgroups() { return cgroups(cgroup_parent_); }
  // The manager for VEs under another cgroup parent: a running VE's are where its state says
  // (RuntimeState::cgroup_parent), whatever this command's --cgroup-parent. Empty: this
  // command's own.
  [[nodiscard]] Result<cgroup::Manager*> cgroups(const std::string& parent);
  [[nodiscard]] const std::string& cgroup_parent() const { return cgroup_parent_; }
  [[nodiscard]] image::TemplateStore templates() const;
  // A stored template by id, read once per process: `run` creates and then starts a VE, and
  // each would read the template's metadata again.
  [[nodiscard]] Result<image::Template> load_template(const std::string& id);
  void remember_template(const image::Template& t) { templates_cache_[t.id] = t; }
  // Where a driver reports a slow step of this command (a UML VE's disk image, built at its
  // create): the front end's progress display, if it has one.
  void set_progress(image::ProgressFn progress) { progress_ = std::move(progress); }
  [[nodiscard]] const image::ProgressFn& progress() const { return progress_; }
  ~Context();

 private:
  store::Store& store_;
  std::string cgroup_parent_;
  std::map<std::string, std::unique_ptr<cgroup::Manager>> cgroups_;
  std::map<std::string, image::Template> templates_cache_;
  image::ProgressFn progress_;
};

struct StopOptions {
  int timeout_seconds = 10;  // how long init may take to shut down before it is killed
  bool kill = false;         // skip the clean shutdown
  // Work to do once every process of the VE has gone, side by side with the monitor's cleanup
  // of cgroups and runtime files (destroy removes the VE's files here). May be empty.
  std::function<void()> once_down;
};

struct ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // KEY=VALUE, added to the VE's default environment
  std::string cwd = "/";
  bool tty = false;  // allocate a pty in the VE and relay the caller's terminal to it
  // What the OCI surface's exec needs besides (all unset: as `kapsel exec`):
  bool whole_env = false;  // `env` is the whole environment, not additions to the VE's default
  std::optional<std::uint32_t> uid;  // run as this user (and `gid`, `groups`) instead of root
  std::uint32_t gid = 0;
  std::vector<std::uint32_t> groups;
  // With `tty`: the pty's master is given to this instead of being relayed to the caller's
  // terminal.
  std::function<Status(int master)> pty_master;
  // Called with the command's host pid once it runs; with `detach`, exec returns 0 then,
  // without waiting for the command (which the caller's subreaper inherits).
  std::function<void(pid_t)> started;
  bool detach = false;
};

// What a running VE uses now, for stats and top.
struct Usage {
  cgroup::Stats cgroup;
  // Bytes through the VE's network interfaces, loopback left out.
  std::uint64_t net_rx_bytes = 0;
  std::uint64_t net_tx_bytes = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;

  // Prepares the VE's private resources after the store has created its directory.
  [[nodiscard]] virtual Status create(const store::VeConfig& config) = 0;

  // Starts the VE's monitor and returns once the VE is up; on failure everything is rolled
  // back and the error names the phase that failed. The caller holds the VE's `lock`; the
  // monitor shares it until the VE is up or rolled back, so that if the caller is killed
  // half-way no other command sees (or cleans up) a VE that is still being started.
  [[nodiscard]] virtual Result<store::RuntimeState> start(const store::VeConfig& config,
                                                          const store::VeLock& lock) = 0;

  // Stops a running VE: asks its init to shut down, waits, then kills what is left. Returns
  // once nothing of the VE is left running, even if its monitor died instead of cleaning up.
  [[nodiscard]] virtual Status stop(const store::VeConfig& config, const store::RuntimeState& state,
                                    const StopOptions& options) = 0;

  // Runs a command in a running VE; returns its exit status (128+N if killed by signal N).
  [[nodiscard]] virtual Result<int> exec(const store::VeConfig& config,
                                         const store::RuntimeState& state,
                                         const ExecRequest& request) = 0;

  // start(), then `started` (the caller lets go of the VE's lock), then exec(): for `run`. A
  // driver may prepare the command while the VE starts.
  [[nodiscard]] virtual Result<int> start_and_exec(const store::VeConfig& config,
                                                   const store::VeLock& lock,
                                                   const ExecRequest& request,
                                                   const std::function<void()>& started);

  // Freezes every process of a running VE where it stands, and lets them go on. A paused VE
  // uses no CPU, and keeps its memory, files and connections. Refused (ErrorKind::state) where
  // the host cannot freeze this kind.
  [[nodiscard]] virtual Status pause(const store::VeConfig& config,
                                     const store::RuntimeState& state) = 0;
  [[nodiscard]] virtual Status resume(const store::VeConfig& config,
                                      const store::RuntimeState& state) = 0;
  // True if the running VE is paused now.
  [[nodiscard]] virtual bool paused(const store::VeConfig& config,
                                    const store::RuntimeState& state) = 0;

  // Removes whatever a VE whose monitor is gone left behind (processes, cgroups, runtime
  // files). Safe to call at any time the VE is not running; does nothing when clean.
  [[nodiscard]] virtual Status cleanup(const store::VeConfig& config) = 0;

  // Number of processes in the running VE, for list/status.
  [[nodiscard]] virtual Result<std::size_t> process_count(const store::VeConfig& config,
                                                          const store::RuntimeState& state) = 0;

  // Refuses limits this host cannot enforce for this kind, before anything is changed.
  [[nodiscard]] virtual Status check_limits(const cgroup::Limits& limits) = 0;

  // Changes the limits of a running VE: every field `change` sets. On failure the previous
  // limits stay in force.
  [[nodiscard]] virtual Status apply_limits(const store::VeConfig& config,
                                            const store::RuntimeState& state,
                                            const cgroup::Limits& change) = 0;

  [[nodiscard]] virtual Result<Usage> usage(const store::VeConfig& config,
                                            const store::RuntimeState& state) = 0;

  // What this kind can tell about a running VE beyond the common fields, as (label, value)
  // pairs for status (a UML guest's kernel version and memory, asked through its mconsole).
  // A container has nothing to add.
  [[nodiscard]] virtual Result<std::vector<std::pair<std::string, std::string>>> details(
      const store::VeConfig& /*config*/, const store::RuntimeState& /*state*/) {
    return std::vector<std::pair<std::string, std::string>>{};
  }

  // Hot-plug: attaches host file `path` to the running VE as a disk and returns the device the
  // guest sees ("/dev/ubdb"); detaches one (`device` as returned, or its short name). Only
  // guests with a kernel of their own have disks to plug; a container's files are the host's.
  [[nodiscard]] virtual Result<std::string> attach_disk(const store::VeConfig& config,
                                                        const store::RuntimeState& /*state*/,
                                                        const std::string& /*path*/,
                                                        bool /*read_only*/) {
    return fail(ErrorKind::usage, "disk: hot-plug is for UML VEs; VE " + config.name + " is a " +
                                      config.kind +
                                      " (bind its files in with --device or a mount)");
  }
  [[nodiscard]] virtual Status detach_disk(const store::VeConfig& config,
                                           const store::RuntimeState& state,
                                           const std::string& /*device*/) {
    return attach_disk(config, state, "", false).map([](const std::string&) {});
  }

  // Attaches the caller's terminal to the running VE's console until the user detaches.
  [[nodiscard]] virtual Status console(const store::VeConfig& config,
                                       const store::RuntimeState& /*state*/) {
    return fail(ErrorKind::usage, "console: not supported for " + config.kind + " VEs yet (VE " +
                                      config.name + "; its console output is in console.log)");
  }
};

// The driver for a kind; an unknown kind is a usage error listing the known ones.
[[nodiscard]] Result<std::unique_ptr<Driver>> make_driver(const std::string& kind, Context& ctx);

}  // namespace kapsel::driver
