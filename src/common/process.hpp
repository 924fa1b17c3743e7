// Identifying and waiting for processes that are not necessarily our children.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::proc {

// A pid plus the process's start time (field 22 of /proc/PID/stat, in clock ticks since
// boot). Together they name one process for good: a recycled pid has a different start time,
// so state files that outlive a process never make us signal a stranger.
struct ProcessRef {
  pid_t pid = 0;
  std::uint64_t start_time = 0;

  [[nodiscard]] bool alive() const;
};

// Start time of `pid`, or an error if it does not exist.
[[nodiscard]] Result<std::uint64_t> start_time(pid_t pid);
[[nodiscard]] Result<ProcessRef> ref(pid_t pid);

// A pidfd for `p`, checked against its start time after opening so that the fd refers to the
// right process. Fails with not_found if the process has gone.
[[nodiscard]] Result<UniqueFd> open_pidfd(const ProcessRef& p);

// Waits until the process behind `pidfd` exits or `timeout_ms` passes (-1: forever).
// Returns true if it exited.
[[nodiscard]] bool wait_pidfd(int pidfd, int timeout_ms);

// Sends `sig` through a pidfd (no pid-reuse race).
[[nodiscard]] Status signal_pidfd(int pidfd, int sig);

// A child process that is killed (SIGKILL; with `whole_group`, its process group first) and
// reaped if it is dropped before it was waited for, so that no error path leaves a stray
// process or a zombie behind.
class Child {
 public:
  explicit Child(pid_t pid, bool whole_group = false) : pid_(pid), whole_group_(whole_group) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  [[nodiscard]] pid_t pid() const { return pid_; }
  // Waits for the child; returns its wait status.
  [[nodiscard]] Result<int> wait();

 private:
  pid_t pid_;
  bool whole_group_;
};

// Reads `fd` to its end (or its first error) and returns what it read: for pipes whose
// writer reports by writing and closing.
[[nodiscard]] std::string read_to_eof(int fd);

// Seconds since boot from CLOCK_BOOTTIME, and the clock tick rate, to turn start times into
// wall-clock times.
[[nodiscard]] double uptime_seconds();
[[nodiscard]] long clock_ticks();

// The running binary's path (/proc/self/exe), for starting helpers from the same build; empty
// if unknown.
[[nodiscard]] std::string self_exe();

// Maps every page of this binary's code at once (madvise MADV_POPULATE_READ). On a
// paravirtualised host a page fault costs ~20 us, and a command takes some 50 faults on code
// scattered over the binary's 4 MB; mapping all of it in one call costs about half as much.
// Worth it at the start of a process that runs much of kapsel's code: a command, a monitor
// (whose fork inherits no mapping of the code). Errors are ignored: it is only an optimisation.
void prefault_code();

}  // namespace kapsel::proc
