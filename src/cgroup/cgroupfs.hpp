// Operations on cgroup directories that every backend shares: v1 and v2 hierarchies are both
// trees of directories holding a cgroup.procs file, removed with rmdir(2), and emptied by
// killing what cgroup.procs lists. What differs (cpuset set-up, subtree_control, cgroup.kill,
// the freezer's files) stays in the backends.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::cgroup {

// How long destroy() waits for the VE's processes to die before it tries removing the cgroups
// anyway. SIGKILL cannot be ignored, so only a task stuck in uninterruptible sleep (a hung NFS
// server, a FUSE daemon that is itself in the VE) takes this long.
inline constexpr int kDestroyKillTimeoutMs = 5000;
// How long a pause may take to freeze every task (one in an uninterruptible sleep, e.g. on a
// slow disk, holds it up) before it is undone and reported.
inline constexpr int kPauseTimeoutMs = 5000;

// A VE name becomes one path component in every hierarchy: it must not be empty, ".", "..",
// or contain '/', so no name can reach outside the parent directory.
[[nodiscard]] Status check_ve_name(std::string_view ve);

// The parent is a relative path of such components ("kapsel", "kapsel/test").
[[nodiscard]] Status check_parent(std::string_view parent);

// Every cgroup directory from `dir` down, parents before their children. A missing `dir` has
// none; cgroups that vanish while the tree is walked are skipped.
[[nodiscard]] Result<std::vector<std::string>> list_tree(const std::string& dir);

// The pids listed in `dir`/cgroup.procs. A cgroup that is gone holds none.
[[nodiscard]] Result<std::vector<pid_t>> read_procs(const std::string& dir);

// The pids of `dir` and every cgroup nested in it, sorted, each once.
[[nodiscard]] Result<std::vector<pid_t>> read_procs_recursive(const std::string& dir);

// Creates `mount`/`rel` one level at a time. `prepare(parent, dir)` runs on every level below
// `mount`, new or already there, before the next level is created: v1 cpusets must be filled in
// top-down, and a level left half-prepared by a crash is repaired on the next call.
[[nodiscard]] Status make_levels(
    const std::string& mount, std::string_view rel,
    const std::function<Status(const std::string& parent, const std::string& dir)>& prepare);

// rmdir(2)s `dir` and the cgroups nested in it, deepest first. Only directories are removed:
// cgroupfs's files vanish with their directory. EBUSY is retried for a short while because a
// cgroup stays busy briefly after its last process has died. A missing `dir` is success.
[[nodiscard]] Status remove_tree_dirs(const std::string& dir);

// The common case of destroy, once a VE's init has died: every cgroup is empty and has no
// children, so one rmdir each removes it. Returns true if all of `dirs` are gone; false sends
// the caller down the slow path (kill, walk, retry), which copes with anything left.
[[nodiscard]] bool remove_if_empty(const std::vector<std::string>& dirs);

// Opens `dir`/cgroup.procs for writing.
[[nodiscard]] Result<UniqueFd> open_procs_file(const std::string& dir);

// Sends SIGKILL to every pid; a process that has gone already is no error.
[[nodiscard]] Status kill_pids(const std::vector<pid_t>& pids);

// True if `text` has a line equal to `line` (cgroup.events "populated 0", freezer.state
// "FROZEN").
[[nodiscard]] bool has_line(std::string_view text, std::string_view line);

// The whitespace-separated words of `text` (cgroup.controllers, cpuset values).
[[nodiscard]] std::vector<std::string> words(std::string_view text);

void sleep_ms(int ms);

// A point in time after which waiting stops; a negative timeout never passes.
class Deadline {
 public:
  explicit Deadline(int timeout_ms);
  [[nodiscard]] bool passed() const;
  // Milliseconds left (0 once passed), or -1 when there is no limit.
  [[nodiscard]] int remaining_ms() const;

 private:
  std::optional<std::chrono::steady_clock::time_point> end_;
};

// The files through which a cgroup subtree is frozen: v1's freezer.state or v2's cgroup.freeze.
struct FreezerFiles {
  std::string control;      // written to freeze and thaw; empty when there is no freezer
  std::string freeze;       // value that freezes: "FROZEN" (v1), "1" (v2)
  std::string thaw;         // value that thaws: "THAWED" (v1), "0" (v2)
  std::string state;        // file that reports the state: freezer.state, cgroup.events
  std::string frozen_line;  // its line once frozen: "FROZEN", "frozen 1"
};

// Freezes (`frozen`) or thaws the subtree behind `freezer` and waits, until `deadline`, for the
// kernel to report it done: freezing is asynchronous, and a caller that reports "paused" must
// mean it. ErrorKind::state if there is no freezer; ETIMEDOUT if it did not take hold.
[[nodiscard]] Status set_frozen(const FreezerFiles& freezer, bool frozen, const Deadline& deadline);
// True if the subtree behind `freezer` is frozen now (false without a freezer or a cgroup).
[[nodiscard]] bool is_frozen(const FreezerFiles& freezer);

// One round of killing without a cgroup.kill: freeze the subtree so that nothing in it can fork
// while `list()`'s pids are SIGKILLed one by one, then thaw it so that the signals are
// delivered. Nothing is frozen if `list()` is empty. Refuses if the calling process is listed,
// because it would freeze itself and never thaw. A missing freezer file (the cgroup went away,
// or the kernel has no freezer there) means the pids are killed without freezing.
[[nodiscard]] Status freeze_kill_thaw(const std::function<Result<std::vector<pid_t>>()>& list,
                                      const FreezerFiles& freezer, const Deadline& deadline);

// Runs `kill_round` at once and again every so often (processes may have joined or been stuck
// in the kernel), polling `is_empty` in between, until it reports true or `timeout_ms` passes
// (an ETIMEDOUT error naming `what`).
[[nodiscard]] Status kill_until_empty(const std::function<Status()>& kill_round,
                                      const std::function<Result<bool>()>& is_empty, int timeout_ms,
                                      std::string_view what);

}  // namespace kapsel::cgroup
