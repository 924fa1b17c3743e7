#include "common/terminal.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

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

void copy_window_size(int from, int to) {
  struct winsize ws {};
  if (::ioctl(from, TIOCGWINSZ, &ws) == 0) ::ioctl(to, TIOCSWINSZ, &ws);
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
  sigaddset(&mask, SIGWINCH);
  sigaddset(&mask, SIGCHLD);
  sigset_t old;
  ::sigprocmask(SIG_BLOCK, &mask, &old);
  UniqueFd sfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sfd) return errno_fail("creating signalfd");

  copy_window_size(STDIN_FILENO, master);
  bool stdin_open = true;
  bool master_open = true;
  int status = -1;
  char buf[16384];
  for (;;) {
    if (status < 0) {
      pid_t r = ::waitpid(child, &status, WNOHANG);
      if (r != child) status = -1;
    }
    // Once the child has exited, drain what it left in the pty, then stop.
    if (status >= 0 && !master_open) break;
    struct pollfd fds[3] = {{sfd.get(), POLLIN, 0},
                            {master_open ? master : -1, POLLIN, 0},
                            {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    int timeout = status >= 0 ? 0 : -1;
    int n = ::poll(fds, 3, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0 && status >= 0) break;  // child gone and nothing left to read
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si {};
      while (::read(sfd.get(), &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGWINCH) copy_window_size(STDIN_FILENO, master);
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
