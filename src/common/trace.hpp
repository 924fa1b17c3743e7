// Timing trace for finding where a command spends its time: with KAPSEL_TRACE=1 in the
// environment, each trace point appends "kapsel-trace <pid> <real-time ms> <what>" to
// /tmp/kapsel-trace.log (the monitor's stderr is /dev/null), which each process keeps open.
#pragma once

namespace kapsel::trace {

[[nodiscard]] bool enabled();
void point(const char* what);

}  // namespace kapsel::trace
