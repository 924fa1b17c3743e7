// `kapsel enter` and `kapsel exec -t` on a real terminal: the test allocates a pty, makes it the
// controlling terminal of the kapsel process, and talks to the shell in the VE through the
// master side, as a terminal emulator would.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "harness.hpp"

namespace kapsel::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One kapsel process on a pty of the test's own. Every wait has a deadline, so a hang fails
// the test instead of blocking it; the process is killed when the session is dropped.
class PtySession {
 public:
  PtySession(const Kapsel& k, const std::vector<std::string>& args, unsigned short rows,
             unsigned short cols) {
    struct winsize ws {};
    ws.ws_row = rows;
    ws.ws_col = cols;
    int master = -1, slave = -1;
    if (::openpty(&master, &slave, nullptr, nullptr, &ws) != 0) {
      ADD_FAILURE() << "openpty: " << std::strerror(errno);
      return;
    }
    master_ = master;
    slave_ = slave;
    ::fcntl(master_, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave_, F_SETFD, FD_CLOEXEC);
    ::tcgetattr(slave_, &initial_);

    std::vector<std::string> env = k.env();
    pid_ = ::fork();
    if (pid_ == 0) {
      // A session of its own with the pty as its controlling terminal, like a login shell's.
      ::setsid();
      if (::ioctl(slave, TIOCSCTTY, 0) != 0) ::_exit(120);
      for (int fd = 0; fd <= 2; ++fd) ::dup2(slave, fd);
      exec_kapsel(args, env);
    }
  }

  ~PtySession() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
    if (slave_ >= 0) ::close(slave_);
  }

  PtySession(const PtySession&) = delete;
  PtySession& operator=(const PtySession&) = delete;

  void send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::write(master_, s.data(), s.size());
      if (n < 0 && errno == EINTR) continue;
      ASSERT_GT(n, 0) << "writing to the pty: " << std::strerror(errno);
      s.remove_prefix(static_cast<size_t>(n));
    }
  }

  // Reads until `needle` appears after `from` in the output, or `timeout_ms` passes. Returns
  // the position just after the match, or npos.
  size_t expect(std::string_view needle, int timeout_ms = 10000, size_t from = 0) {
    auto deadline = Clock::now() + milliseconds(timeout_ms);
    for (;;) {
      size_t pos = output_.find(needle, from);
      if (pos != std::string::npos) return pos + needle.size();
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::string::npos;
      read_some(static_cast<int>(left));
    }
  }

  // Waits for kapsel to exit; returns its exit code, or -1 on timeout.
  int wait(int timeout_ms = 10000) {
    auto deadline = Clock::now() + milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        read_some(0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      read_some(20);  // keep draining, so kapsel never blocks writing to us
    }
    return -1;
  }

  void resize(unsigned short rows, unsigned short cols) {
    struct winsize ws {};
    ws.ws_row = rows;
    ws.ws_col = cols;
    // The kernel sends SIGWINCH to the terminal's foreground process group: kapsel.
    ASSERT_EQ(::ioctl(master_, TIOCSWINSZ, &ws), 0);
  }

  // Runs `commands` in the shell, between markers, and returns what they printed, with the
  // terminal's "\r\n" turned into "\n". The markers are computed by the shell, so the echo of
  // the command line itself does not match them.
  std::string run_in_shell(const std::string& commands, int timeout_ms = 10000) {
    ++markers_;
    std::string begin = "BEGIN" + std::to_string(markers_) + "X";
    std::string end = "END" + std::to_string(markers_) + "X";
    send("echo BEGIN$((" + std::to_string(markers_) + "))X; " + commands + "; echo END$((" +
         std::to_string(markers_) + "))X\n");
    size_t start = expect(begin + "\r\n", timeout_ms, searched_);
    if (start == std::string::npos) return "<timed out waiting for " + begin + ">\n" + output_;
    size_t stop = expect(end, timeout_ms, start);
    if (stop == std::string::npos) return "<timed out waiting for " + end + ">\n" + output_;
    searched_ = stop;
    std::string text = output_.substr(start, stop - end.size() - start);
    std::string out;
    for (char c : text) {
      if (c != '\r') out += c;
    }
    return out;
  }

  // Waits for the shell's prompt after the last run_in_shell. A key typed before it may reach
  // the shell while its terminal is still canonical, as it switches to line editing, and the
  // kernel can drop a lone EOF there; a person types after seeing the prompt, and so do we.
  bool expect_prompt(int timeout_ms = 10000) {
    size_t at = expect("# ", timeout_ms, searched_);
    if (at == std::string::npos) return false;
    searched_ = at;
    return true;
  }

  const termios& initial_termios() const { return initial_; }
  termios current_termios() const {
    termios t{};
    ::tcgetattr(slave_, &t);
    return t;
  }
  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }

 private:
  void read_some(int timeout_ms) {
    struct pollfd pfd = {master_, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) <= 0) return;
    char buf[4096];
    ssize_t n = ::read(master_, buf, sizeof buf);
    if (n > 0) output_.append(buf, static_cast<size_t>(n));
    // EIO would mean no slave is open; ours stays open, so it does not happen here.
  }

  int master_ = -1;
  int slave_ = -1;  // kept open: its termios are what the test checks kapsel restores
  pid_t pid_ = -1;
  bool exited_ = false;
  termios initial_{};
  std::string output_;
  size_t searched_ = 0;
  int markers_ = 0;
};

bool same_termios(const termios& a, const termios& b) {
  return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
         a.c_lflag == b.c_lflag && std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0;
}

class EnterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KAPSEL_REQUIRE_ROOT();
    auto c = k.run({"create", "box", "--hostname", "enterbox"});
    ASSERT_EQ(c.exit_code, 0) << c;
    auto s = k.run({"start", "box"});
    ASSERT_EQ(s.exit_code, 0) << s;
  }

  Kapsel k;
};

TEST_F(EnterTest, ShellOnTheVesOwnPtyWithWindowSizeSignalsAndExitStatus) {
  PtySession pty(k, {"enter", "box"}, 40, 100);
  EXPECT_EQ(pty.run_in_shell("stty size; tty; hostname"), "40 100\n/dev/pts/0\nenterbox\n")
      << pty.output();
  // kapsel has put the host side of the terminal into raw mode while it relays.
  EXPECT_FALSE(pty.current_termios().c_lflag & ICANON);
  EXPECT_FALSE(pty.current_termios().c_lflag & ECHO);

  // A window size change reaches the VE's pty.
  pty.resize(50, 120);
  bool resized = false;
  std::string size;
  for (int i = 0; i < 50 && !resized; ++i) {
    size = pty.run_in_shell("stty size");
    resized = size == "50 120\n";
    if (!resized) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(resized) << size << pty.output();

  // Ctrl-C interrupts the command in the VE, not kapsel or the shell.
  pty.send("sleep 30\n");
  std::this_thread::sleep_for(milliseconds(300));
  auto t0 = Clock::now();
  pty.send("\x03");
  EXPECT_EQ(pty.run_in_shell("echo alive-$((20+1))", 5000), "alive-21\n") << pty.output();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2)) << "Ctrl-C did not stop the sleep";
  EXPECT_EQ(::kill(pty.pid(), 0), 0) << "kapsel died";

  // The shell's exit status becomes kapsel's; the terminal is as it was before.
  pty.send("exit 3\n");
  EXPECT_EQ(pty.wait(10000), 3) << pty.output();
  EXPECT_TRUE(same_termios(pty.current_termios(), pty.initial_termios()))
      << "kapsel left the terminal in raw mode";
  // The VE runs on.
  EXPECT_EQ(k.status("box")["state"], "running");
}

TEST_F(EnterTest, CtrlDLeavesTheShell) {
  PtySession pty(k, {"enter", "box"}, 24, 80);
  EXPECT_EQ(pty.run_in_shell("echo $((6*7))"), "42\n") << pty.output();
  ASSERT_TRUE(pty.expect_prompt()) << pty.output();
  pty.send("\x04");
  EXPECT_EQ(pty.wait(10000), 0) << pty.output();
  EXPECT_TRUE(same_termios(pty.current_termios(), pty.initial_termios()));
}

TEST_F(EnterTest, KapselKilledByATerminalSignalRestoresTheTerminal) {
  // A hangup (the terminal went away) or SIGTERM must not leave the user's terminal raw, nor the
  // shell in the VE behind.
  for (int sig : {SIGHUP, SIGTERM}) {
    SCOPED_TRACE(::sigabbrev_np(sig));
    PtySession pty(k, {"enter", "box"}, 24, 80);
    EXPECT_EQ(pty.run_in_shell("echo $((1+1))"), "2\n") << pty.output();
    ::kill(pty.pid(), sig);
    int code = pty.wait(10000);
    EXPECT_NE(code, -1) << "kapsel did not exit on " << ::sigabbrev_np(sig);
    EXPECT_NE(code, 0);
    EXPECT_TRUE(same_termios(pty.current_termios(), pty.initial_termios()));
    // The shell went with it.
    auto shells = [&] {
      return k.run({"exec", "box", "--", "sh", "-c", "ps -o args | grep -c '^/bin/sh -l' || true"})
          .out;
    };
    EXPECT_TRUE(eventually([&] { return shells() == "0\n"; })) << shells();
  }
}

TEST_F(EnterTest, ExecWithTtyRunsOnAPtyAndReturnsTheStatus) {
  PtySession pty(k, {"exec", "-t", "box", "--", "sh", "-c", "stty size; tty; exit 7"}, 33, 77);
  EXPECT_EQ(pty.wait(10000), 7) << pty.output();
  EXPECT_NE(pty.output().find("33 77"), std::string::npos) << pty.output();
  EXPECT_NE(pty.output().find("/dev/pts/0"), std::string::npos) << pty.output();
  EXPECT_TRUE(same_termios(pty.current_termios(), pty.initial_termios()));

  // Without a terminal on the caller's side, -t still gives the command a usable pty.
  auto r = k.run({"exec", "-t", "box", "--", "sh", "-c", "tty; stty size; exit 5"});
  EXPECT_EQ(r.exit_code, 5) << r;
  EXPECT_NE(r.out.find("/dev/pts/"), std::string::npos) << r;
  EXPECT_NE(r.out.find("24 80"), std::string::npos) << r;

  // Without -t, the command has no terminal.
  auto plain = k.run({"exec", "box", "--", "sh", "-c", "tty || true"});
  EXPECT_EQ(plain.out, "not a tty\n") << plain;
}

}  // namespace
}  // namespace kapsel::testing
