#include "procfs/load_average.hpp"

#include <cmath>

namespace kapsel::procfs {

void LoadAverage::sample(double active) {
  if (!seeded_) {
    avg_ = {active, active, active};
    seeded_ = true;
    return;
  }
  // load = load * e + active * (1 - e), e = exp(-interval / window): the kernel's EXP_1, EXP_5
  // and EXP_15 in floating point.
  static const std::array<double, 3> decay = {std::exp(-kSampleIntervalS / 60.0),
                                              std::exp(-kSampleIntervalS / 300.0),
                                              std::exp(-kSampleIntervalS / 900.0)};
  for (std::size_t i = 0; i < avg_.size(); ++i)
    avg_[i] = avg_[i] * decay[i] + active * (1.0 - decay[i]);
}

}  // namespace kapsel::procfs
