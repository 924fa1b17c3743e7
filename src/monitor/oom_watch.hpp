// Records OOM kills inside a VE, with time and victim. The cgroup tells the monitor that an OOM
// happened (Manager::watch_oom) and counts them, but not whom the kernel killed: that is only in
// the kernel's log, as one "oom-kill:" summary line per kill naming the memory cgroup that ran
// out, the victim's command and pid. So on each event the monitor reads /dev/kmsg until it finds
// the line for its VE.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "store/ve_config.hpp"

namespace kapsel::monitor {

// The OOM event of a /dev/kmsg record ("6,1234,5678901,-;oom-kill:constraint=CONSTRAINT_MEMCG,
// ...,oom_memcg=/kapsel/web1,task_memcg=/kapsel/web1/x,task=stress,pid=4321,uid=0"), if it is an
// oom-kill summary for `memcg` or a cgroup nested in it. `at` is left 0.
[[nodiscard]] std::optional<store::OomEvent> parse_oom_kill(std::string_view record,
                                                            std::string_view memcg);

class OomWatch {
 public:
  using Recorder = std::function<void(const store::OomEvent&)>;

  // `event`: from Manager::watch_oom; `memcg`: Manager::memory_cgroup_path. Opens /dev/kmsg at
  // its end, so only kills from now on are read.
  [[nodiscard]] static Result<OomWatch> open(UniqueFd event, std::string memcg, Recorder record);

  [[nodiscard]] int event_fd() const { return event_.get(); }
  // /dev/kmsg while an OOM event waits for its log line, else -1: a monitor that polled the
  // kernel log all the time would wake for every message of the host, times hundreds of VEs.
  [[nodiscard]] int kmsg_fd() const { return pending_ ? kmsg_.get() : -1; }
  // Milliseconds until a pending event is given up on (-1: none pending).
  [[nodiscard]] int timeout_ms() const;

  // The event descriptor is readable: re-arm it, start looking in the log.
  void on_event();
  // The log has new records: record the VE's kills among them.
  void on_kmsg();
  // Nothing turned up in time (a log too busy, or an OOM that killed nobody): stop looking.
  void on_timeout();

 private:
  OomWatch(UniqueFd event, UniqueFd kmsg, std::string memcg, Recorder record);

  UniqueFd event_;
  UniqueFd kmsg_;
  std::string memcg_;
  Recorder record_;
  bool pending_ = false;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace kapsel::monitor
