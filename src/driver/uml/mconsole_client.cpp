#include "driver/uml/mconsole_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <cstddef>
#include <cstring>

namespace kapsel::driver::uml {

static_assert(sizeof(MconsoleRequest) == 12 + kMconsoleMaxData, "mconsole.h layout");
static_assert(sizeof(MconsoleReply) == 12 + kMconsoleMaxData, "mconsole.h layout");

static std::int64_t now_ms() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Result<MconsoleClient> MconsoleClient::open(std::string socket_path, int timeout_ms) {
  sockaddr_un probe{};
  if (socket_path.size() >= sizeof probe.sun_path)
    return fail(ErrorKind::usage, "mconsole socket path too long: " + socket_path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_fail("mconsole: creating a socket");
  // Binding only the family autobinds an abstract name (unix(7)): the kernel needs an address
  // to reply to, and an abstract one leaves no file behind.
  sockaddr_un self{};
  self.sun_family = AF_UNIX;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&self), sizeof(sa_family_t)) != 0)
    return errno_fail("mconsole: binding the client's socket");
  return MconsoleClient(std::move(fd), std::move(socket_path), timeout_ms);
}

Result<std::string> MconsoleClient::command(std::string_view command) {
  const std::string what = "mconsole '" + std::string(command) + "' at " + path_;
  if (command.size() >= kMconsoleMaxData)
    return fail(ErrorKind::usage, what + ": command longer than 511 bytes");
  MconsoleRequest req{};
  req.magic = kMconsoleMagic;
  req.version = kMconsoleVersion;
  req.len = static_cast<std::uint32_t>(command.size());
  std::memcpy(req.data, command.data(), command.size());
  sockaddr_un to{};
  to.sun_family = AF_UNIX;
  std::memcpy(to.sun_path, path_.data(), path_.size());
  const std::size_t size = offsetof(MconsoleRequest, data) + command.size();
  if (::sendto(fd_.get(), &req, size, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED)
      return tl::unexpected(
          Error{ErrorKind::not_found, err, what + ": no UML kernel listens there"});
    return sys_fail(err, what);
  }
  std::string out;
  bool first = true;
  const std::int64_t deadline_step = timeout_ms_;
  for (;;) {
    // The timeout restarts with each chunk: a long reply (proc of a big file) is not an error
    // as long as it keeps coming.
    std::int64_t deadline = now_ms() + deadline_step;
    MconsoleReply reply{};
    ssize_t n = -1;
    for (;;) {
      int left = static_cast<int>(deadline - now_ms());
      if (left < 0) left = 0;
      struct pollfd p {
        fd_.get(), POLLIN, 0
      };
      int r = ::poll(&p, 1, left);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno_fail(what);
      if (r == 0) return sys_fail(ETIMEDOUT, what + ": no reply");
      n = ::recv(fd_.get(), &reply, sizeof reply, 0);
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    if (n < 0) return errno_fail(what);
    if (static_cast<std::size_t>(n) < offsetof(MconsoleReply, data) || reply.len > kMconsoleMaxData)
      return fail(ErrorKind::failure, what + ": malformed reply");
    std::size_t len = std::min<std::size_t>(
        reply.len, static_cast<std::size_t>(n) - offsetof(MconsoleReply, data));
    std::string_view chunk(reply.data, len);
    // Each chunk's text ends in a NUL that is not part of the reply.
    if (!chunk.empty() && chunk.back() == '\0') chunk.remove_suffix(1);
    out.append(chunk);
    if (first && reply.err != 0) {
      // Later chunks of an error reply are still read, so that none is mistaken for the reply
      // to the next command.
      while (reply.more) {
        struct pollfd p {
          fd_.get(), POLLIN, 0
        };
        if (::poll(&p, 1, timeout_ms_) <= 0 || ::recv(fd_.get(), &reply, sizeof reply, 0) <= 0)
          break;
      }
      return fail(ErrorKind::failure, what + ": " + (out.empty() ? "failed" : out));
    }
    first = false;
    if (!reply.more) break;
  }
  return out;
}

}  // namespace kapsel::driver::uml
