// The guest's console, shared: the monitor holds its pty master, appends what it prints to
// console.log, and lets `kapsel console` attach through a Unix socket in the VE's run
// directory. An attached client gets the output from then on and types into the console; more
// than one may attach (they share it, as on a serial concentrator).
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "monitor/monitor.hpp"

namespace kapsel::driver::uml {

class ConsoleServer {
 public:
  ConsoleServer(int master, int log, UniqueFd listener)
      : master_(master), log_(log), listener_(std::move(listener)) {}

  // Descriptors for the monitor's poll loop.
  [[nodiscard]] std::vector<monitor::Watch> watches();
  // Reads the console once (while the monitor is not yet polling through watches()).
  void on_console();

 private:
  void on_accept();
  void on_client(int fd);

  int master_;
  int log_;
  UniqueFd listener_;
  std::vector<UniqueFd> clients_;
};

// `kapsel console`: relays the caller's terminal to the console socket at `path` until the
// user types Ctrl-] (or the VE stops).
[[nodiscard]] Status attach_console(const std::string& path, const std::string& name);

}  // namespace kapsel::driver::uml
