// Timing trace for finding where a command spends its time: with KAPSEL_TRACE=1 in the
// environment, each trace point prints "kapsel-trace <pid> <monotonic ms> <what>" to stderr
// (the monitor's stderr is /dev/null, so it appends to /tmp/kapsel-trace.log instead).
#pragma once

namespace kapsel::trace {

[[nodiscard]] bool enabled();
void point(const char* what);

}  // namespace kapsel::trace
