// The VE store owns kapsel's on-disk layout:
//
//   <root>/ves/<name>/config.json        the VE's configuration (persistent)
//   <root>/ves/<name>/private/{upper,work} its writable layer over the template (overlayfs);
//                                        none for an ephemeral VE (`run --rm`), which writes to a
//                                        tmpfs in its own mount namespace
//   <root>/ves/<name>/last-exit.json     how the VE last ended
//   <root>/ves/<name>/console.log        what its init wrote to the console
//   <root>/ves/<name>/oom.log            the OOM kills in it, one JSON object per line
//   <root>/templates/<id>/               read-only templates (image::TemplateStore)
//   <run>/ves/<name>/state.json          present while a monitor runs for the VE; the directory
//                                        is the mount point of the VE's root in its namespace
//   <run>/locks/<name>.lock              serialises commands on one VE
//
// <root> is /var/lib/kapsel and <run> is /run/kapsel unless overridden by --root/--run-dir or
// KAPSEL_ROOT/KAPSEL_RUN_DIR, so tests run in temporary directories. Every write is atomic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/unique_fd.hpp"
#include "store/ve_config.hpp"

namespace kapsel::store {

struct Paths {
  std::string root = "/var/lib/kapsel";
  std::string run_dir = "/run/kapsel";

  // Fills unset fields from KAPSEL_ROOT / KAPSEL_RUN_DIR, then the defaults (a non-root user's:
  // rootless_defaults()).
  static Paths resolve(const std::string& root_flag, const std::string& run_flag);
  // $XDG_DATA_HOME/kapsel (~/.local/share/kapsel) and $XDG_RUNTIME_DIR/kapsel (/tmp/kapsel-UID).
  static Paths rootless_defaults();
};

// A VE name must be usable as a file name, a cgroup name and a hostname label: 1 to 64 bytes
// of letters, digits, '-', '_' and '.', starting with a letter or digit.
[[nodiscard]] Status validate_name(std::string_view name);

// An exclusive lock on one VE, held for the duration of a command (flock; released when the
// process dies, so a killed command never leaves a VE locked).
class VeLock {
 public:
  VeLock() = default;
  explicit VeLock(UniqueFd fd) : fd_(std::move(fd)) {}
  [[nodiscard]] bool held() const { return fd_.valid(); }
  // The locked file's descriptor: a process that inherits a duplicate shares the lock (flock
  // belongs to the open file), which is how a starting VE's monitor keeps it locked.
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

class Store {
 public:
  explicit Store(Paths paths);

  [[nodiscard]] const Paths& paths() const { return paths_; }
  [[nodiscard]] std::string ve_dir(const std::string& name) const;
  [[nodiscard]] std::string ve_run_dir(const std::string& name) const;
  [[nodiscard]] std::string templates_dir() const;

  // Creates the store's directories (first use).
  [[nodiscard]] Status init() const;

  // Takes the VE's lock, waiting for another command on it to finish; with `wait` false,
  // fails with ErrorKind::state at once if it is held. The name is validated first: it becomes
  // part of a path.
  [[nodiscard]] Result<VeLock> lock(const std::string& name, bool wait = true) const;
  // Deletes the lock file of a VE that does not exist (any more), while `lock` is held on it, so
  // that destroyed VEs and failed creates leave no lock files behind. A command that was waiting
  // for the lock then holds one on a deleted file; lock() notices that and starts over.
  void remove_lock(const std::string& name, const VeLock& lock) const;

  [[nodiscard]] bool exists(const std::string& name) const;
  // not_found error, with the hint to run `kapsel list`, if there is no such VE.
  [[nodiscard]] Result<VeConfig> load_config(const std::string& name) const;
  [[nodiscard]] Status save_config(const VeConfig& config) const;

  // Creates the VE's directory with its config and empty private area in one step: everything
  // is built in a hidden directory and renamed into place, so a crash leaves no half VE and a
  // concurrent create of the same name fails with ErrorKind::exists.
  [[nodiscard]] Status create_ve(const VeConfig& config) const;
  // Removes the VE's directory (config and private area); the VE must be stopped.
  [[nodiscard]] Status remove_ve(const std::string& name) const;

  // Names of all VEs, sorted.
  [[nodiscard]] Result<std::vector<std::string>> list() const;

  [[nodiscard]] Result<std::optional<RuntimeState>> load_state(const std::string& name) const;
  [[nodiscard]] Status save_state(const std::string& name, const RuntimeState& state) const;
  // Removes the VE's runtime directory (state file and rootfs mount point).
  [[nodiscard]] Status clear_runtime(const std::string& name) const;

  [[nodiscard]] Result<std::optional<ExitRecord>> load_exit(const std::string& name) const;
  [[nodiscard]] Status save_exit(const std::string& name, const ExitRecord& record) const;

  // The VE's OOM kills since it was created, oldest first (oom.log; a damaged line is skipped).
  [[nodiscard]] Result<std::vector<OomEvent>> load_oom_events(const std::string& name) const;
  // Appends one record to oom.log (O_APPEND: one write per record, so concurrent writers and a
  // crash leave whole lines).
  [[nodiscard]] Status append_oom_event(const std::string& name, const OomEvent& event) const;

  // Removes hidden leftovers of creates and destroys that were killed half-way.
  void sweep_leftovers() const;

 private:
  Paths paths_;
};

}  // namespace kapsel::store
