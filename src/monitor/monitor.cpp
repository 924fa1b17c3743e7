#include "monitor/monitor.hpp"

#include "cgroup/manager.hpp"
#include "common/process.hpp"
#include "common/trace.hpp"
#include "net/ve_network.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace kapsel::monitor {

static sigset_t supervised_signals() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, kKillRequestSignal);
  for (int sig : kHaltRequestSignals) sigaddset(&mask, sig);
  return mask;
}

void detach(const std::string& name) {
  ::setsid();
  ::prctl(PR_SET_NAME, "kapsel-monitor", 0, 0, 0);
  (void)name;
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) ::close(null);
  }
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask = supervised_signals();
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
}

// The console log is capped so a chatty VE cannot fill the host's disk: past the cap, the log
// starts over (the tail of a console is what an operator reads).
constexpr off_t kConsoleLogCap = 4 << 20;

static void append_console(int log, const char* buf, size_t len) {
  if (log < 0) return;
  struct stat st {};
  if (::fstat(log, &st) == 0 && st.st_size > kConsoleLogCap) (void)::ftruncate(log, 0);
  while (len > 0) {
    ssize_t n = ::write(log, buf, len);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    buf += n;
    len -= static_cast<size_t>(n);
  }
}

int supervise(const Supervision& s) {
  sigset_t mask = supervised_signals();
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  int console = s.console_master;
  char buf[8192];
  for (;;) {
    int status = 0;
    if (::waitpid(s.init, &status, WNOHANG) == s.init) {
      // Drain what init wrote last (its shutdown messages) before reporting.
      if (console >= 0) {
        ::fcntl(console, F_SETFL, ::fcntl(console, F_GETFL) | O_NONBLOCK);
        ssize_t n;
        while ((n = ::read(console, buf, sizeof buf)) > 0)
          append_console(s.console_log, buf, static_cast<size_t>(n));
      }
      if (sfd >= 0) ::close(sfd);
      return status;
    }
    std::vector<Watch> extra = s.watches ? s.watches() : std::vector<Watch>{};
    std::vector<struct pollfd> fds = {{sfd, POLLIN, 0}, {console, POLLIN, 0}};
    for (const auto& w : extra) fds.push_back({w.fd, POLLIN, 0});
    int timeout = s.timeout_ms ? s.timeout_ms() : -1;
    if (sfd < 0 && (timeout < 0 || timeout > 100)) timeout = 100;
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) ::usleep(10000);
    if (n == 0 && s.on_timeout && s.timeout_ms && s.timeout_ms() == 0) s.on_timeout();
    if (n <= 0) continue;
    for (size_t i = 0; i < extra.size(); ++i) {
      if (fds[i + 2].revents) extra[i].on_ready();
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si {};
      while (::read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGCHLD) continue;
        // A kill is sent before the stop is recorded: the record only says what is under way,
        // and the VE is gone sooner. A halt is recorded first, so that `status` says
        // "stopping" for as long as init takes to shut down.
        bool kill = si.ssi_signo == kKillRequestSignal;
        if (kill) ::kill(s.init, SIGKILL);
        if (kill) trace::point("monitor: init killed");
        if (s.on_stop_request) s.on_stop_request();
        if (!kill) ::kill(s.init, s.halt_signal);
      }
    }
    if (fds[1].revents & POLLIN) {
      ssize_t r = ::read(console, buf, sizeof buf);
      if (r > 0) append_console(s.console_log, buf, static_cast<size_t>(r));
    }
    // POLLHUP on the master: no slave is open (between init closing its console and exiting).
    // Stop polling it rather than spin; SIGCHLD will follow.
    if (fds[1].revents & (POLLHUP | POLLERR) && !(fds[1].revents & POLLIN)) console = -1;
  }
}

store::ExitRecord classify(int wait_status) {
  store::ExitRecord r;
  r.at = ::time(nullptr);
  if (WIFEXITED(wait_status)) {
    r.reason = "exited";
    r.exit_code = WEXITSTATUS(wait_status);
    r.detail = "init exited with status " + std::to_string(r.exit_code);
  } else if (WIFSIGNALED(wait_status)) {
    r.signal = WTERMSIG(wait_status);
    switch (r.signal) {
      case SIGINT:
        r.reason = "halted";
        r.detail = "init halted the VE";
        break;
      case SIGHUP:
        r.reason = "rebooted";
        r.detail = "init asked for a reboot";
        break;
      case SIGKILL:
        r.reason = "killed";
        r.detail = "init was killed (SIGKILL)";
        break;
      default:
        r.reason = "killed";
        r.detail = std::string("init was killed by signal ") + ::sigabbrev_np(r.signal);
    }
  }
  return r;
}

void StartReport::booting(pid_t init) {
  if (!fd_) return;
  std::string msg = "B" + std::to_string(init) + " ";
  (void)!::write(fd_.get(), msg.data(), msg.size());
}

void StartReport::ok() {
  if (fd_) (void)!::write(fd_.get(), "O", 1);
  fd_.reset();
}

void StartReport::error(const Error& e) {
  if (!fd_) return;
  std::string msg = "E" + std::to_string(static_cast<int>(e.kind)) + " " + std::to_string(e.code) +
                    " " + e.message;
  (void)!::write(fd_.get(), msg.data(), msg.size());
  fd_.reset();
}

Status StartReport::wait(int fd, const std::function<void(pid_t init)>& on_booting) {
  std::string msg;
  bool booted = false;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<std::size_t>(n));
    // "B<pid> " comes first, if at all.
    if (!booted && msg.size() > 1 && msg[0] == 'B') {
      auto end = msg.find(' ');
      if (end == std::string::npos) continue;
      pid_t init = std::atoi(msg.c_str() + 1);
      msg.erase(0, end + 1);
      booted = true;
      if (on_booting && init > 0) on_booting(init);
    }
  }
  if (msg == "O") return {};
  if (msg.empty() || msg[0] != 'E')
    return fail(ErrorKind::failure, "the VE's monitor died while starting it");
  int kind = 0, code = 0, used = 0;
  if (std::sscanf(msg.c_str() + 1, "%d %d %n", &kind, &code, &used) < 2)
    return fail(ErrorKind::failure, msg.substr(1));
  return tl::unexpected(Error{static_cast<ErrorKind>(kind), code, msg.substr(1 + used)});
}

Result<store::RuntimeState> launch(store::Store& store, const std::string& name,
                                   const store::VeLock& lock, bool keep_stdio, int preserved_fds,
                                   const std::function<void(UniqueFd report, UniqueFd lock)>& run,
                                   const std::function<void(pid_t monitor, pid_t init)>& booting) {
  int report_pipe[2];
  if (::pipe2(report_pipe, O_CLOEXEC) != 0) return errno_fail("creating report pipe");
  UniqueFd report_read(report_pipe[0]);
  UniqueFd report_write(report_pipe[1]);
  trace::point("start: forking the monitor");
  pid_t monitor = ::fork();
  if (monitor < 0) return errno_fail("forking the monitor");
  if (monitor == 0) {
    trace::point("monitor: forked");
    proc::prefault_code();
    report_read.reset();
    // Moved up first, above everything that is kept, so that nothing is overwritten on the
    // way to its number.
    const int above = kPreservedFdBase + preserved_fds;
    int report_fd = ::fcntl(report_write.get(), F_DUPFD_CLOEXEC, above);
    int lock_fd = ::fcntl(lock.fd(), F_DUPFD_CLOEXEC, above);
    // The preserved descriptors 3.. go up first, the highest first: each target is above its
    // source, and 3 to 7 are overwritten below.
    for (int i = preserved_fds - 1; i >= 0; --i) {
      if (::dup3(3 + i, kPreservedFdBase + i, O_CLOEXEC) < 0) ::_exit(1);
    }
    if (report_fd < 0 || lock_fd < 0 || ::dup3(report_fd, kReportFd, O_CLOEXEC) < 0 ||
        ::dup3(lock_fd, kLockFd, O_CLOEXEC) < 0)
      ::_exit(1);
    (void)report_write.release();  // closed by close_range below, or already replaced
    // (Preserved descriptors come with the caller's stdio: both are for a bundle's process.)
    int keep_from = kStdioFd;
    if (keep_stdio || preserved_fds > 0) {
      for (int fd = 0; fd <= 2; ++fd) {
        if (::dup3(fd, kStdioFd + fd, O_CLOEXEC) < 0) ::_exit(1);
      }
      keep_from = above;
    }
    ::syscall(SYS_close_range, keep_from, ~0U, 0);
    detach(name);
    trace::point("monitor: detached");
    run(UniqueFd(kReportFd), UniqueFd(kLockFd));
    ::_exit(1);  // run() ends the monitor itself
  }
  report_write.reset();
  trace::point("start: waiting for the monitor");
  std::function<void(pid_t)> on_booting;
  if (booting) on_booting = [&](pid_t init) { booting(monitor, init); };
  KAPSEL_TRY(StartReport::wait(report_read.get(), on_booting), "starting VE " + name);
  trace::point("start: the monitor reported");
  auto state = store.load_state(name);
  if (!state) return tl::unexpected(state.error().context("starting VE " + name));
  if (!*state)
    return fail(ErrorKind::failure, "starting VE " + name + ": the monitor left no state");
  return **state;
}

void abandon_start(store::Store& store, const store::VeConfig& config, pid_t child,
                   cgroup::Manager* cg, UniqueFd lock, StartReport& report, const Error& e) {
  if (child > 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
  }
  // Whatever else the child started (a UML kernel's helper processes) goes with the cgroups.
  if (cg) (void)cg->destroy(config.name);
  (void)net::tear_down_ve_network(config.name, config.network);
  (void)store.clear_runtime(config.name);
  store::ExitRecord rec{"start-failed", -1, 0, ::time(nullptr), e.message};
  (void)store.save_exit(config.name, rec);
  lock.reset();
  report.error(e);
  ::_exit(1);
}

void finish(store::Store& store, const store::VeConfig& config, cgroup::Manager& cg,
            const store::ExitRecord& rec) {
  trace::point("monitor: init ended");
  (void)cg.destroy(config.name);
  trace::point("monitor: cgroups removed");
  (void)net::tear_down_ve_network(config.name, config.network);
  (void)store.clear_runtime(config.name);
  trace::point("monitor: runtime dir removed");
  (void)store.save_exit(config.name, rec);
  trace::point("monitor: exit recorded");
  ::_exit(0);
}

}  // namespace kapsel::monitor
