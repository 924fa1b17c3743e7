#include "common/trace.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace kapsel::trace {

bool enabled() {
  static const bool on = [] {
    const char* v = std::getenv("KAPSEL_TRACE");
    return v && *v && *v != '0';
  }();
  return on;
}

void point(const char* what) {
  if (!enabled()) return;
  struct timespec ts {};
  // The real-time clock: a VE's init lives in a time namespace of its own, whose monotonic
  // clock starts at zero.
  ::clock_gettime(CLOCK_REALTIME, &ts);
  char line[256];
  int n = std::snprintf(
      line, sizeof line, "kapsel-trace %d %.3f %s\n", ::getpid(),
      static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6, what);
  int fd = ::open("/tmp/kapsel-trace.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd >= 0) {
    (void)!::write(fd, line, static_cast<size_t>(n));
    ::close(fd);
  }
}

}  // namespace kapsel::trace
