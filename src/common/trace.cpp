#include "common/trace.hpp"

#include <fcntl.h>
#include <sys/stat.h>
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

namespace {

// The log stays open, so that a VE's init can go on tracing after its pivot_root. The
// descriptor is checked before each use: a forked monitor closes every descriptor it does not
// know of, and the number may have been given to another file since.
struct Log {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
};
Log g_log;

int log_fd() {
  struct stat st {};
  if (g_log.fd >= 0 && ::fstat(g_log.fd, &st) == 0 && st.st_dev == g_log.dev &&
      st.st_ino == g_log.ino)
    return g_log.fd;
  int fd = ::open("/tmp/kapsel-trace.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0 || ::fstat(fd, &st) != 0) return -1;
  g_log = {fd, st.st_dev, st.st_ino};
  return fd;
}

}  // namespace

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
  if (int fd = log_fd(); fd >= 0) (void)!::write(fd, line, static_cast<size_t>(n));
}

}  // namespace kapsel::trace
