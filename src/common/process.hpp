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

// Seconds since boot from CLOCK_BOOTTIME, and the clock tick rate, to turn start times into
// wall-clock times.
[[nodiscard]] double uptime_seconds();
[[nodiscard]] long clock_ticks();

}  // namespace kapsel::proc
