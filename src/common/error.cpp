#include "common/error.hpp"

#include <cstring>

namespace kapsel {

tl::unexpected<Error> sys_fail(int code, std::string_view message) {
  ErrorKind kind = ErrorKind::failure;
  if (code == ENOENT) kind = ErrorKind::not_found;
  if (code == EPERM || code == EACCES) kind = ErrorKind::permission;
  return tl::unexpected<Error>(
      Error{kind, code, std::string(message) + ": " + std::strerror(code)});
}

}  // namespace kapsel
