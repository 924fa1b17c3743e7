// The monitor: one small supervisor process per running VE. It is the parent of the VE's init
// (or, for other kinds, of the UML kernel or the VMM), holds the console, records how the VE
// ended and cleans up after it. There is no daemon shared by VEs: a crash of one monitor
// touches only its own VE.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "store/store.hpp"
#include "store/ve_config.hpp"

namespace kapsel::cgroup {
class Manager;
}

namespace kapsel::monitor {

// Turns the freshly forked current process into VE `name`'s monitor: a session of its own (so
// the terminal's signals do not reach it), the name "kapsel-monitor" in ps, stdio on /dev/null.
// The signals supervise() handles (the stop and kill requests below, and SIGCHLD) are blocked
// from here on: a request that arrives while the VE is still starting waits for supervise()
// instead of killing the monitor. (So a child that execs something else must unblock them, or its
// program would inherit the mask.)
void detach(const std::string& name);

// What a monitor does with signals sent to it: SIGTERM, SIGINT and SIGHUP ask for a clean
// shutdown (init gets the template's halt signal); SIGUSR1 asks for the VE to be killed at once
// (init gets SIGKILL, which takes every process of its pid namespace with it).
constexpr int kHaltRequestSignals[] = {SIGTERM, SIGINT, SIGHUP};
constexpr int kKillRequestSignal = SIGUSR1;

// A descriptor the monitor polls besides its signals and the console, and what to do when it is
// readable.
struct Watch {
  int fd = -1;
  std::function<void()> on_ready;
};

struct Supervision {
  pid_t init = 0;             // the supervised child of this process
  int console_master = -1;    // pty master of the VE's console, or -1
  int console_log = -1;       // where console output is appended, or -1
  int halt_signal = SIGTERM;  // sent to init when someone asks the monitor to stop (SIGTERM)
  // Called each time someone asks the monitor to stop or kill the VE, before init gets the
  // signal: the monitor records that the VE is stopping. May be empty.
  std::function<void()> on_stop_request;
  // Asked before each wait: what else to poll (OOM events, seccomp listeners; the set may
  // change from one wait to the next), and how long to wait at most (-1: no limit), after which
  // `on_timeout` runs. Each may be empty.
  std::function<std::vector<Watch>()> watches;
  std::function<int()> timeout_ms;
  std::function<void()> on_timeout;
};

// Runs until init exits, copying console output to the log and passing stop and kill requests
// (see kHaltRequestSignals) on to init. Returns init's wait status.
[[nodiscard]] int supervise(const Supervision& s);

// Describes a wait status of a VE's init. A pid namespace's init that calls reboot(2) is
// reported killed by SIGINT (halt, power off) or SIGHUP (restart); see reboot(2).
[[nodiscard]] store::ExitRecord classify(int wait_status);

// The channel on which a starting monitor tells the command that forked it whether the VE came
// up: one message, then the monitor closes it. EOF without a message means the monitor died.
// Before it, the monitor may say that init is about to run (booting).
class StartReport {
 public:
  explicit StartReport(UniqueFd fd) : fd_(std::move(fd)) {}
  // The VE's cgroups and the monitor's files are in place, and `init` has been told to go.
  void booting(pid_t init);
  void ok();
  void error(const Error& e);

  // Read side: blocks until the monitor reports; `on_booting` (if set) is called with init's
  // pid when the monitor says it is booting.
  [[nodiscard]] static Status wait(int fd, const std::function<void(pid_t init)>& on_booting = {});

 private:
  UniqueFd fd_;
};

// The descriptors a monitor keeps of the command that starts it, at fixed numbers (see launch).
constexpr int kReportFd = 3;
constexpr int kLockFd = 4;
constexpr int kStdioFd = 5;  // with keep_stdio: the command's stdin, stdout and stderr at 5, 6, 7
constexpr int kPreservedFdBase = 8;  // and its descriptors 3.. of --preserve-fds from 8 on

// Forks VE `name`'s monitor and waits until it reports the VE up, then returns the state it
// saved; or the monitor's error. The monitor is detach()ed and keeps, at the numbers above and
// nothing else of this command's (anything more could leak into the VE): the report channel
// and its share of the VE's lock (held until the VE is up or rolled back, then closed, so that
// the lock is not held for as long as the VE runs), and with `keep_stdio` this command's stdio
// (a bundle's init gets the caller's pipes) and its `preserved_fds` descriptors from 3 on (an OCI
// create's --preserve-fds). Then `run` becomes the monitor and never returns.
// One fork, no double fork: the monitor is reparented to the host's init when this command
// exits (a fork costs ~1.5 ms here, and start-up is measured).
// `booting`, if set, is called with the monitor's and init's pids when the monitor reports that
// init is booting: the VE's cgroups and the monitor's files and socket are ready then.
[[nodiscard]] Result<store::RuntimeState> launch(
    store::Store& store, const std::string& name, const store::VeLock& lock, bool keep_stdio,
    int preserved_fds, const std::function<void(UniqueFd report, UniqueFd lock)>& run,
    const std::function<void(pid_t monitor, pid_t init)>& booting = {});

// Ends the monitor of a VE that failed to start, leaving nothing behind: its `child` (if any,
// > 0) is killed, its cgroups (if `cg` made them), network and runtime files removed, the
// failure recorded as its exit and reported to the starting command.
[[noreturn]] void abandon_start(store::Store& store, const store::VeConfig& config, pid_t child,
                                cgroup::Manager* cg, UniqueFd lock, StartReport& report,
                                const Error& e);

// Ends the monitor of a VE that has stopped: its cgroups, network and runtime files are removed
// and `rec` recorded, in that order (stop takes a gone runtime directory to mean "all done").
[[noreturn]] void finish(store::Store& store, const store::VeConfig& config, cgroup::Manager& cg,
                         const store::ExitRecord& rec);

}  // namespace kapsel::monitor
