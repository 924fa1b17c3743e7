// Relaying the user's terminal to a pty inside a VE (enter, exec --tty, later console).
#pragma once

#include <sys/types.h>
#include <termios.h>

#include "common/error.hpp"

namespace kapsel::terminal {

// Puts a terminal into raw mode and restores it when dropped, so the user's shell is never left
// raw, whatever path the command takes out.
class RawMode {
 public:
  explicit RawMode(int fd);
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

 private:
  int fd_;
  bool active_ = false;
  struct termios saved_ {};
};

// Copies the window size of `from` (the user's terminal) to `to` (the pty master). Returns
// false if `from` has none (it is no terminal).
bool copy_window_size(int from, int to);

// Relays stdin -> master and master -> stdout until `child` exits and the master has no more
// output, keeping the pty's window size in step with the user's terminal (SIGWINCH; 24x80
// when stdin is no terminal). SIGHUP, SIGTERM, SIGINT or SIGQUIT sent to the caller hang the
// session up, as a closed terminal would: the child and the pty's foreground job get SIGHUP
// (and the child SIGKILL if it outlives that by 2 s), so the caller returns normally and can
// restore the user's terminal. Returns the child's wait status.
[[nodiscard]] Result<int> relay(int master, pid_t child);

}  // namespace kapsel::terminal
