#include "agent/agent_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "common/fs.hpp"
#include "common/terminal.hpp"
#include "common/unix_socket.hpp"

namespace kapsel::agent {
namespace {

volatile sig_atomic_t g_pending_signal = 0;
volatile sig_atomic_t g_winch = 0;
void on_signal(int sig) {
  g_pending_signal = sig;
}
void on_winch(int) {
  g_winch = 1;
}

}  // namespace

Result<int> run_session(const std::string& socket_path, ExecSpec spec) {
  auto connected = unix_socket::connect(socket_path, "exec: connecting to the VE's monitor");
  if (!connected) return tl::unexpected(connected.error());
  UniqueFd conn = std::move(*connected);

  std::optional<terminal::RawMode> raw;
  if (spec.tty) {
    struct winsize ws {};
    if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
      spec.rows = ws.ws_row;
      spec.cols = ws.ws_col;
    }
    if (::isatty(STDIN_FILENO)) raw.emplace(STDIN_FILENO);
  }
  auto send = [&](FrameType type, std::string payload) {
    return fs::write_all(conn.get(), encode(Frame{0, type, std::move(payload)}), "agent socket");
  };
  KAPSEL_TRY(send(FrameType::exec, encode_exec(spec)), "exec: sending the command");

  // Signals sent to `kapsel exec` go to the command, as for containers.
  struct sigaction sa {
  }, old[7]{};
  sa.sa_handler = on_signal;
  const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (std::size_t i = 0; i < 6; ++i) ::sigaction(forwarded[i], &sa, &old[i]);
  struct sigaction wa {};
  wa.sa_handler = on_winch;
  ::sigaction(SIGWINCH, &wa, &old[6]);
  auto restore = [&] {
    for (std::size_t i = 0; i < 6; ++i) ::sigaction(forwarded[i], &old[i], nullptr);
    ::sigaction(SIGWINCH, &old[6], nullptr);
  };

  FrameDecoder decoder;
  bool stdin_open = true;
  char buf[16384];
  std::optional<int> code;
  std::string error_text;
  while (!code) {
    if (g_pending_signal) {
      int sig = g_pending_signal;
      g_pending_signal = 0;
      // A session on a pty hangs up, as a closed terminal would (an interactive shell ignores
      // SIGTERM and SIGINT); without one, the command gets the signal.
      if (spec.tty && sig != SIGUSR1 && sig != SIGUSR2) {
        (void)send(FrameType::close, {});
        restore();
        return 128 + sig;
      }
      (void)send(FrameType::signal, encode_i32(sig));
    }
    if (g_winch) {
      g_winch = 0;
      struct winsize ws {};
      if (spec.tty && ::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
        (void)send(FrameType::resize, encode_size(ws.ws_row, ws.ws_col));
    }
    struct pollfd fds[2] = {{conn.get(), POLLIN, 0}, {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      restore();
      return errno_fail("exec: waiting");
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = ::read(STDIN_FILENO, buf, sizeof buf);
      if (r > 0) {
        (void)send(FrameType::stdin_, std::string(buf, static_cast<std::size_t>(r)));
      } else if (r == 0 || errno != EINTR) {
        stdin_open = false;
        // A pty's input ends with its EOF character, not a closed pipe.
        (void)send(FrameType::stdin_, spec.tty ? std::string("\x04") : std::string());
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = ::read(conn.get(), buf, sizeof buf);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        restore();
        return fail(ErrorKind::failure,
                    "exec: the VE's monitor closed the session before the command ended" +
                        (error_text.empty() ? std::string() : ": " + error_text));
      }
      decoder.feed(std::string_view(buf, static_cast<std::size_t>(r)));
      while (auto f = decoder.next()) {
        switch (f->type) {
          case FrameType::stdout_:
            (void)fs::write_all(STDOUT_FILENO, f->payload, "stdout");
            break;
          case FrameType::stderr_:
            (void)fs::write_all(STDERR_FILENO, f->payload, "stderr");
            break;
          case FrameType::error:
            error_text = f->payload;
            (void)fs::write_all(STDERR_FILENO, "kapsel: exec: " + f->payload + "\n", "stderr");
            break;
          case FrameType::exit:
            if (auto c = decode_i32(f->payload)) code = *c;
            break;
          default:
            break;
        }
      }
    }
  }
  restore();
  return *code;
}

}  // namespace kapsel::agent
