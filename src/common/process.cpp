#include "common/process.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>

#include "common/fs.hpp"

// The start and end of the program's code, from the linker's default script.
extern "C" const char __executable_start[];
extern "C" const char etext[];

namespace kapsel::proc {

Result<std::uint64_t> start_time(pid_t pid) {
  auto stat = fs::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return tl::unexpected(stat.error());
  // The command name (field 2) may contain spaces and parentheses, so count fields from the
  // last ')'.
  auto close = stat->rfind(')');
  if (close == std::string::npos || close + 2 >= stat->size())
    return fail(ErrorKind::failure, "malformed /proc stat");
  // A zombie has finished: it only waits for its parent to collect its status.
  char state = (*stat)[close + 2];
  if (state == 'Z' || state == 'X') return fail(ErrorKind::not_found, "process has exited");
  size_t pos = close + 2;  // field 3 starts here
  for (int field = 3; field < 22; ++field) {
    pos = stat->find(' ', pos);
    if (pos == std::string::npos) return fail(ErrorKind::failure, "malformed /proc stat");
    ++pos;
  }
  std::uint64_t value = 0;
  auto end = stat->data() + stat->size();
  if (std::from_chars(stat->data() + pos, end, value).ec != std::errc())
    return fail(ErrorKind::failure, "malformed /proc stat");
  return value;
}

Result<ProcessRef> ref(pid_t pid) {
  auto t = start_time(pid);
  if (!t) return tl::unexpected(t.error());
  return ProcessRef{pid, *t};
}

bool ProcessRef::alive() const {
  if (pid <= 0) return false;
  auto t = proc::start_time(pid);
  return t && *t == start_time;
}

Result<UniqueFd> open_pidfd(const ProcessRef& p) {
  if (p.pid <= 0) return fail(ErrorKind::not_found, "no such process");
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0)));
  if (!fd) return errno_fail("opening pidfd of " + std::to_string(p.pid));
  // The pidfd now pins this pid; if the start time still matches, it is the same process.
  if (!p.alive()) return fail(ErrorKind::not_found, "process has exited");
  return fd;
}

bool wait_pidfd(int pidfd, int timeout_ms) {
  struct pollfd pfd = {pidfd, POLLIN, 0};
  for (;;) {
    int r = ::poll(&pfd, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

Status signal_pidfd(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0 && errno != ESRCH)
    return errno_fail("sending signal " + std::to_string(sig));
  return {};
}

Child::~Child() {
  if (pid_ <= 0) return;
  if (whole_group_) ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  (void)wait();
}

Result<int> Child::wait() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return errno_fail("waiting for child " + std::to_string(pid_));
  }
  pid_ = 0;
  return status;
}

std::string read_to_eof(int fd) {
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

double uptime_seconds() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

long clock_ticks() {
  return ::sysconf(_SC_CLK_TCK);
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

void prefault_code() {
  auto start = reinterpret_cast<std::uintptr_t>(__executable_start) & ~std::uintptr_t{4095};
  auto end = reinterpret_cast<std::uintptr_t>(etext);
  (void)::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_READ);
}

}  // namespace kapsel::proc
