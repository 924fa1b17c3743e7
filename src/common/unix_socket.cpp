#include "common/unix_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>

namespace kapsel::unix_socket {
namespace {

Result<sockaddr_un> address_of(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path)
    return fail(ErrorKind::failure, "socket path too long: " + path);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

Result<UniqueFd> listen(const std::string& path) {
  auto addr = address_of(path);
  if (!addr) return tl::unexpected(addr.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno_fail("creating " + path);
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0 ||
      ::chmod(path.c_str(), 0600) != 0 || ::listen(fd.get(), 16) != 0)
    return errno_fail("binding " + path);
  return fd;
}

Result<UniqueFd> connect(const std::string& path, const std::string& what) {
  auto addr = address_of(path);
  if (!addr) return tl::unexpected(addr.error().context(what));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
    return errno_fail(what + " at " + path);
  return fd;
}

UniqueFd accept_own_user(int listener, int flags) {
  UniqueFd conn(::accept4(listener, nullptr, nullptr, flags));
  if (!conn) return conn;
  struct ucred peer {};
  socklen_t len = sizeof peer;
  if (::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 ||
      peer.uid != ::geteuid())
    return UniqueFd();
  return conn;
}

}  // namespace kapsel::unix_socket
