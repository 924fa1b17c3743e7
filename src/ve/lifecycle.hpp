// The VE operations every front end needs (the CLI now; the OCI surface and a REST API later):
// create, start, stop, exec, destroy, list, status. They take the VE's lock, bring its stored
// state in line with reality, and call the VE's driver. Nothing here parses or prints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/error.hpp"
#include "driver/driver.hpp"
#include "image/template.hpp"
#include "security/userns.hpp"
#include "store/store.hpp"

namespace kapsel::ve {

struct CreateOptions {
  std::string name;
  std::string kind = "container";
  std::string template_spec = "busybox";
  std::string hostname;    // defaults to the name
  bool ephemeral = false;  // `run --rm`
  cgroup::Limits limits;
  store::SecurityConfig security;
  // --network and --ip, as net::assign_network takes them (empty: its defaults).
  std::string network_mode;
  std::string ip;
  std::vector<std::string> publish;  // --publish, repeatable
  std::uint64_t disk_bytes = 0;      // --disk (UML VEs)
};

// What list and status show about one VE.
struct VeInfo {
  store::VeConfig config;
  std::string state = "stopped";  // stopped, starting, running, paused, stopping
  std::optional<store::RuntimeState> runtime;
  std::optional<store::ExitRecord> last_exit;
  std::optional<std::size_t> processes;
  // OOM kills: in the current run (the cgroup's counter), and every one recorded since the VE
  // was created, with time and victim.
  std::optional<std::uint64_t> oom_kills;
  std::vector<store::OomEvent> oom_events;
  // What the VE's driver adds for its kind (a UML guest's kernel and memory).
  std::vector<std::pair<std::string, std::string>> details;
};
void to_json(nlohmann::json& j, const VeInfo& info);

// What stats and top show about one running VE: its counters at one moment.
struct VeUsage {
  std::string name;
  driver::Usage usage;
  std::int64_t sampled_ns = 0;  // CLOCK_MONOTONIC, for rates between two samples
};

// Hostnames follow RFC 1123: labels of letters, digits and '-', at most 64 bytes in all.
[[nodiscard]] Status validate_hostname(std::string_view hostname);

class Lifecycle {
 public:
  Lifecycle(store::Store& store, std::string cgroup_parent);

  [[nodiscard]] Result<store::VeConfig> create(const CreateOptions& options,
                                               const image::ProgressFn& progress = {});
  [[nodiscard]] Status start(const std::string& name);
  [[nodiscard]] Status stop(const std::string& name, const driver::StopOptions& options);
  [[nodiscard]] Status restart(const std::string& name, const driver::StopOptions& options);
  // Freezes a running VE's processes, and thaws them. Pausing a paused VE, or resuming one
  // that is not paused, is ErrorKind::state, as with docker and runc.
  [[nodiscard]] Status pause(const std::string& name);
  [[nodiscard]] Status resume(const std::string& name);
  // Returns the command's exit status.
  [[nodiscard]] Result<int> exec(const std::string& name, const driver::ExecRequest& request);
  [[nodiscard]] Status destroy(const std::string& name, bool force);
  // Hot-plugs a host file into a running VE as a disk (UML), returning the guest's device; and
  // takes one out again.
  [[nodiscard]] Result<std::string> attach_disk(const std::string& name, const std::string& path,
                                                bool read_only);
  [[nodiscard]] Status detach_disk(const std::string& name, const std::string& device);
  // Attaches the caller's terminal to the running VE's console (returns when detached).
  [[nodiscard]] Status console(const std::string& name);
  // With `details`, the driver is asked for what its kind adds (list leaves that out: for a
  // UML VE it is a round trip to the guest's kernel).
  [[nodiscard]] Result<VeInfo> status(const std::string& name, bool details = true);
  [[nodiscard]] Result<std::vector<VeInfo>> list();

  // Changes the VE's limits: every field `change` sets, merged into its config. A running VE
  // gets them at once; either way they hold from its next start on. On failure nothing
  // changes, neither the running VE nor its config.
  [[nodiscard]] Result<cgroup::Limits> set(const std::string& name, const cgroup::Limits& change);
  // Cleans up after every VE whose monitor died (as the next command on it would), and gives
  // back the address leases of VEs that no longer exist (a destroy that was killed half-way).
  [[nodiscard]] Status gc();
  // Counters of a running VE (ErrorKind::state if it is not running).
  [[nodiscard]] Result<VeUsage> usage(const std::string& name);
  // Counters of every running VE, by name.
  [[nodiscard]] Result<std::vector<VeUsage>> usage_all();

  // One-shot: create (a generated name if none is given), start, exec, then stop, or destroy
  // with `remove`. Returns the command's exit status; the name used is stored in `name_out`.
  [[nodiscard]] Result<int> run(CreateOptions options, const driver::ExecRequest& request,
                                bool remove, std::string* name_out = nullptr);

 private:
  // An existing VE's lock and config. The name is checked and the VE looked up before the lock
  // is taken, so that a mistyped or malicious name creates nothing on disk (not even a lock
  // file), and again once it is held: the VE may have been destroyed meanwhile.
  struct LockedVe {
    store::VeLock lock;
    store::VeConfig config;
  };
  [[nodiscard]] Result<LockedVe> lock_existing(const std::string& name);
  // A running VE with its lock held, its live state and its driver: what every command that
  // acts on a running VE (exec, console, pause, disk) starts from. `what` begins the refusal
  // when the VE is not running (or is stopping), e.g. "disk: VE web".
  struct RunningVe {
    LockedVe ve;
    store::RuntimeState state;
    std::unique_ptr<driver::Driver> driver;
  };
  [[nodiscard]] Result<RunningVe> lock_running(const std::string& name, const std::string& what);
  // The store's table of the host id ranges its --userns VEs hold.
  [[nodiscard]] security::RangeTable userns_ranges() const;
  // Gives a --userns VE being created its range of host ids (the one asked for, if free).
  [[nodiscard]] Status allocate_ids(store::VeConfig& config);
  [[nodiscard]] Result<std::unique_ptr<driver::Driver>> driver_for(const store::VeConfig& c);
  // Brings the stored state of a VE in line with reality while its lock is held: a VE whose
  // monitor has died is cleaned up and its end recorded. Returns the live state, if running.
  [[nodiscard]] Result<std::optional<store::RuntimeState>> reconcile(const store::VeConfig& c);
  [[nodiscard]] Status stop_locked(const store::VeConfig& config,
                                   const driver::StopOptions& options);
  // The running VE's state and driver for pause and resume, with the lock held.
  [[nodiscard]] Status set_paused(const std::string& name, bool paused);
  // create() and start() with the lock held throughout, for run(): the new VE's lock is kept,
  // and the started VE's state returned, so that nothing is read back that was just written.
  [[nodiscard]] Result<LockedVe> create_locked(const CreateOptions& options,
                                               const image::ProgressFn& progress);
  [[nodiscard]] Result<store::RuntimeState> start_locked(const LockedVe& ve);

  // Every other VE's published ports, which a new VE may not publish again.
  [[nodiscard]] std::vector<std::string> published_by_other_ves() const;

  store::Store& store_;
  driver::Context ctx_;
};

}  // namespace kapsel::ve
