// Throttles progress reports of one phase of a long operation, so that a caller printing a
// progress line is called at most ten times a second however many entries are processed.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "image/template.hpp"

namespace kapsel::image {

class ProgressReporter {
 public:
  // `fn` may be empty (no reporting) and must outlive the reporter. Reports "0 done" at once,
  // so the caller learns the phase name even if the phase then takes long.
  ProgressReporter(const ProgressFn& fn, std::string phase, std::uint64_t total = 0)
      : fn_(fn), phase_(std::move(phase)), total_(total) {
    report(0);
  }

  // Reports `done` unless the previous report was less than kInterval ago.
  void update(std::uint64_t done) {
    if (!fn_) return;
    auto now = Clock::now();
    if (now - last_ < kInterval) return;
    report(done, now);
  }

  // Reports the final count unconditionally.
  void finish(std::uint64_t done) { report(done); }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kInterval = std::chrono::milliseconds(100);

  void report(std::uint64_t done, Clock::time_point now = Clock::now()) {
    if (!fn_) return;
    last_ = now;
    fn_(phase_, done, total_);
  }

  const ProgressFn& fn_;
  std::string phase_;
  std::uint64_t total_;
  Clock::time_point last_{};
};

}  // namespace kapsel::image
