// A raw system call and its outcome, for tests that check what the kernel, or a filter in front
// of it, answers: glibc's wrappers may do more than one call, or none.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace kapsel::testing {

// A raw system call's outcome, errno included.
struct Call {
  long ret = 0;
  int err = 0;
};

// syscall(2) reads its arguments as longs, so each is widened to one first.
inline long as_long(long v) {
  return v;
}
inline long as_long(const void* p) {
  return static_cast<long>(reinterpret_cast<std::uintptr_t>(p));
}

template <class... Args>
Call raw(long nr, Args... args) {
  errno = 0;
  long r = ::syscall(nr, as_long(args)...);
  return {r, r < 0 ? errno : 0};
}

}  // namespace kapsel::testing
