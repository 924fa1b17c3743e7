// Unix stream sockets by path, as the monitors serve them (the UML agent's and console's) and
// as kapsel's commands reach them.
#pragma once

#include <sys/socket.h>

#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::unix_socket {

// A non-blocking listening socket at `path` (any file there is replaced), mode 0600.
[[nodiscard]] Result<UniqueFd> listen(const std::string& path);

// A connection to the socket at `path`; `what` names it in the error.
[[nodiscard]] Result<UniqueFd> connect(const std::string& path, const std::string& what);

// The next connection on `listener` if it comes from a process of this process's own user (the
// host's root, or a rootless VE's user), else an invalid fd: the file's mode keeps others out
// of a path, but not out of an abstract socket, and a check costs nothing.
[[nodiscard]] UniqueFd accept_own_user(int listener, int flags = SOCK_CLOEXEC);

}  // namespace kapsel::unix_socket
