#include "driver/uml/console_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

#include "common/fs.hpp"
#include "common/terminal.hpp"
#include "common/unix_socket.hpp"

namespace kapsel::driver::uml {

// As the container monitor's log: past the cap it starts over, since the tail is what an
// operator reads, and a chatty guest must not fill the host's disk.
constexpr off_t kConsoleLogCap = 4 << 20;
constexpr char kDetach = 0x1d;  // Ctrl-]

std::vector<monitor::Watch> ConsoleServer::watches() {
  std::vector<monitor::Watch> w;
  w.push_back({master_, [this] { on_console(); }});
  w.push_back({listener_.get(), [this] { on_accept(); }});
  for (auto& c : clients_) {
    int fd = c.get();
    w.push_back({fd, [this, fd] { on_client(fd); }});
  }
  return w;
}

void ConsoleServer::on_console() {
  char buf[8192];
  ssize_t n = ::read(master_, buf, sizeof buf);
  if (n <= 0) {
    // No slave open (the kernel is between exec's on reboot, or gone): do not spin.
    if (n < 0 && errno != EAGAIN && errno != EINTR) ::usleep(20000);
    return;
  }
  std::string_view data(buf, static_cast<std::size_t>(n));
  if (log_ >= 0) {
    struct stat st {};
    if (::fstat(log_, &st) == 0 && st.st_size > kConsoleLogCap) (void)::ftruncate(log_, 0);
    (void)fs::write_all(log_, data, "console.log");
  }
  // A client that does not keep up loses output rather than stall the monitor.
  for (auto it = clients_.begin(); it != clients_.end();) {
    ssize_t w = ::send(it->get(), data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) {
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
}

void ConsoleServer::on_accept() {
  if (UniqueFd conn = unix_socket::accept_own_user(listener_.get()))
    clients_.push_back(std::move(conn));
}

void ConsoleServer::on_client(int fd) {
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n <= 0) {
    std::erase_if(clients_, [fd](const UniqueFd& c) { return c.get() == fd; });
    return;
  }
  (void)fs::write_all(master_, std::string_view(buf, static_cast<std::size_t>(n)), "console");
}

Status attach_console(const std::string& path, const std::string& name) {
  auto connected = unix_socket::connect(path, "console: connecting to the monitor of VE " + name);
  if (!connected) return tl::unexpected(connected.error());
  UniqueFd conn = std::move(*connected);
  if (::isatty(STDERR_FILENO))
    std::fprintf(stderr, "kapsel: console of VE %s; Ctrl-] detaches\r\n", name.c_str());
  std::optional<terminal::RawMode> raw;
  if (::isatty(STDIN_FILENO)) raw.emplace(STDIN_FILENO);
  bool stdin_open = true;
  char buf[8192];
  for (;;) {
    struct pollfd fds[2] = {{conn.get(), POLLIN, 0}, {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return errno_fail("console");
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(conn.get(), buf, sizeof buf);
      if (n <= 0) return {};  // the VE stopped
      (void)fs::write_all(STDOUT_FILENO, std::string_view(buf, static_cast<std::size_t>(n)),
                          "stdout");
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) {
        // Input ended (a script): keep showing the output until the VE stops or the caller
        // interrupts.
        stdin_open = false;
        continue;
      }
      std::string_view in(buf, static_cast<std::size_t>(n));
      auto cut = in.find(kDetach);
      if (cut != std::string_view::npos) {
        if (cut > 0) (void)fs::write_all(conn.get(), in.substr(0, cut), "console");
        return {};
      }
      KAPSEL_TRY(fs::write_all(conn.get(), in, "console"), "console");
    }
  }
}

}  // namespace kapsel::driver::uml
