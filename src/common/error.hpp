// Errors are values: every fallible function returns Result<T> (tl::expected) carrying an
// Error with an errno, a kind that the CLI maps to an exit code, and a message that gains
// context on the way up ("creating VE web1: mounting overlay: Invalid argument").
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace kapsel {

// What went wrong, from the caller's point of view. The CLI maps each kind to a stable exit
// code (docs/cli.md), so scripts can tell "no such VE" from "VE is running".
enum class ErrorKind {
  failure,    // an operation failed (system error, I/O, kernel refused)
  usage,      // bad argument or flag value
  not_found,  // the named VE, template or file does not exist
  exists,     // the thing to be created already exists
  state,      // the VE is in the wrong state for the command (running, stopped)
  permission  // the caller lacks the privilege (not root)
};

struct Error {
  ErrorKind kind = ErrorKind::failure;
  int code = 0;  // errno, or 0 when the error is not a system error
  std::string message;

  // Returns a copy with `what` prefixed, as in "what: message".
  [[nodiscard]] Error context(std::string_view what) const {
    Error e = *this;
    e.message = std::string(what) + ": " + message;
    return e;
  }
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

[[nodiscard]] inline tl::unexpected<Error> fail(ErrorKind kind, std::string message) {
  return tl::unexpected<Error>(Error{kind, 0, std::move(message)});
}

// A system error from an errno value: "message: strerror(code)".
[[nodiscard]] tl::unexpected<Error> sys_fail(int code, std::string_view message);

// A system error from the current errno.
[[nodiscard]] inline tl::unexpected<Error> errno_fail(std::string_view message) {
  return sys_fail(errno, message);
}

// Adds context to the error of a result, leaving a value untouched:
//   return with_context(mount_overlay(...), "mounting overlay");
template <class T>
[[nodiscard]] Result<T> with_context(Result<T> r, std::string_view what) {
  if (!r) return tl::unexpected<Error>(r.error().context(what));
  return r;
}

}  // namespace kapsel

// Propagates an error from an expression returning Result/Status, adding context.
// A statement macro because C++ has no `?` operator; keeps the happy path flat.
#define KAPSEL_TRY(expr, ctx)                                                     \
  do {                                                                            \
    if (auto kapsel_try_r_ = (expr); !kapsel_try_r_)                              \
      return tl::unexpected<::kapsel::Error>(kapsel_try_r_.error().context(ctx)); \
  } while (0)
