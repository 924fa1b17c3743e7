#include "common/terminal.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "common/unique_fd.hpp"

namespace kapsel::terminal {

RawMode::RawMode(int fd) : fd_(fd) {
  if (!::isatty(fd) || ::tcgetattr(fd, &saved_) != 0) return;
  struct termios raw = saved_;
  ::cfmakeraw(&raw);
  active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
}

RawMode::~RawMode() {
  if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
}

bool copy_window_size(int from, int to) {
  struct winsize ws {};
  if (::ioctl(from, TIOCGWINSZ, &ws) != 0) return false;
  ::ioctl(to, TIOCSWINSZ, &ws);
  return true;
}

// Hangs up the session on the pty: SIGHUP to its foreground job and to `child` (the session
// leader, usually a shell), as the kernel does when a terminal goes away.
static void hang_up(int master, pid_t child) {
  pid_t fg = ::tcgetpgrp(master);
  if (fg > 0) ::kill(-fg, SIGHUP);
  ::kill(child, SIGHUP);
  ::kill(child, SIGCONT);  // a stopped shell must run to see the hangup
}

// Writes all of `len` bytes; gives up quietly if the reader went away (the session ends then).
static bool write_all(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    buf += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

Result<int> relay(int master, pid_t child) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGWINCH, SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT}) sigaddset(&mask, sig);
  sigset_t old;
  ::sigprocmask(SIG_BLOCK, &mask, &old);
  UniqueFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sfd) {
    auto err = errno_fail("creating signalfd");
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    return err;
  }

  // Without a terminal to copy from, the pty would be 0x0, which full-screen programs (and
  // busybox's stty) take for an error.
  if (!copy_window_size(STDIN_FILENO, master)) {
    struct winsize ws {};
    ws.ws_row = 24;
    ws.ws_col = 80;
    ::ioctl(master, TIOCSWINSZ, &ws);
  }
  bool stdin_open = true;
  bool master_open = true;
  int status = -1;
  // Once the session has been hung up: when the child must be gone by.
  bool hung_up = false;
  auto kill_at = std::chrono::steady_clock::time_point::max();
  char buf[16384];
  for (;;) {
    if (status < 0) {
      pid_t r = ::waitpid(child, &status, WNOHANG);
      if (r != child) status = -1;
    }
    // Once the child has exited, drain what it left in the pty, then stop.
    if (status >= 0 && !master_open) break;
    if (status < 0 && std::chrono::steady_clock::now() >= kill_at) {
      ::kill(child, SIGKILL);
      kill_at = std::chrono::steady_clock::time_point::max();
    }
    struct pollfd fds[3] = {{sfd.get(), POLLIN, 0},
                            {master_open ? master : -1, POLLIN, 0},
                            {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    int timeout = status >= 0 ? 0 : hung_up ? 100 : -1;
    int n = ::poll(fds, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0 && status >= 0) break;  // child gone and nothing left to read
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si {};
      while (::read(sfd.get(), &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGWINCH) {
          copy_window_size(STDIN_FILENO, master);
        } else if (si.ssi_signo != SIGCHLD && status < 0 && !hung_up) {
          hang_up(master, child);
          hung_up = true;
          kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(2);
          stdin_open = false;  // the user's terminal is going away
        }
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = ::read(master, buf, sizeof buf);
      if (r > 0) {
        if (!write_all(STDOUT_FILENO, buf, static_cast<size_t>(r))) master_open = false;
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        master_open = false;  // EIO: every slave fd is closed
      }
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
      if (r > 0) {
        if (!write_all(master, buf, static_cast<size_t>(r))) stdin_open = false;
      } else if (r == 0) {
        // End of input: pass it on as the terminal's EOF character, as a real terminal would.
        char eot = 4;
        (void)write_all(master, &eot, 1);
        stdin_open = false;
      } else if (errno != EINTR && errno != EAGAIN) {
        stdin_open = false;
      }
    }
  }
  if (status < 0 && ::waitpid(child, &status, 0) < 0) status = 0;
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  return status;
}

}  // namespace kapsel::terminal
