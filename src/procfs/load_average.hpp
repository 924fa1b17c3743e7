// A VE's own load average: the kernel's exponentially damped averages of the number of active
// (runnable or uninterruptible) tasks over 1, 5 and 15 minutes (kernel/sched/loadavg.c), fed
// with samples of the VE's tasks taken every kSampleInterval.
#pragma once

#include <array>

namespace kapsel::procfs {

class LoadAverage {
 public:
  // The kernel's LOAD_FREQ.
  static constexpr double kSampleIntervalS = 5.0;

  // Folds in one sample of `active` tasks, taken kSampleIntervalS after the previous one. The
  // first sample sets all three averages: the averages of a VE first looked at after running
  // for days are unknown, and its present load is a better guess than the zero of a fresh boot.
  void sample(double active);

  [[nodiscard]] bool seeded() const { return seeded_; }
  // 1, 5 and 15 minute averages.
  [[nodiscard]] const std::array<double, 3>& values() const { return avg_; }

 private:
  std::array<double, 3> avg_{};
  bool seeded_ = false;
};

}  // namespace kapsel::procfs
