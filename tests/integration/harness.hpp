// Test harness for integration tests: runs the real kapsel binary in a private --root, --run-dir
// and cgroup parent, and inspects the host (processes, mounts, cgroups) to check what it did.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>
#include <unistd.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kapsel::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const RunResult& r);

struct RunOptions {
  std::string input;  // written to the command's stdin, then closed
  uid_t uid = 0;      // run as this user (0: unchanged), with no supplementary groups
  gid_t gid = 0;      // and this group (0: the number of uid)
  // The command's whole environment, instead of the harness's (empty: the harness's).
  std::vector<std::string> env = {};
  int timeout_seconds = 60;  // killed after this; the test then fails
};

class Kapsel {
 public:
  Kapsel();
  ~Kapsel();
  Kapsel(const Kapsel&) = delete;
  Kapsel& operator=(const Kapsel&) = delete;

  // Runs `kapsel ARGS...` and waits for it.
  RunResult run(const std::vector<std::string>& args, const RunOptions& options = {}) const;
  // Starts `kapsel ARGS...` without waiting; returns its pid.
  pid_t spawn(const std::vector<std::string>& args) const;

  // `create NAME EXTRA...` and `start NAME`; the failure names the step and its output.
  ::testing::AssertionResult create_and_start(const std::string& name,
                                              const std::vector<std::string>& extra = {}) const;
  // `exec NAME -- sh -c SCRIPT`.
  RunResult sh(const std::string& name, const std::string& script,
               const RunOptions& options = {}) const;

  // `list --json` / `status --json` parsed.
  nlohmann::json list() const;
  nlohmann::json status(const std::string& name) const;

  const std::string& root() const { return root_; }
  const std::string& run_dir() const { return run_dir_; }
  const std::string& cgroup_parent() const { return cgroup_parent_; }
  std::vector<std::string> env() const;

  // Runs every later command in the network namespace bound at `path` (e.g. /run/netns/NAME),
  // entered with setns in the forked child before the exec: network tests never touch the
  // machine's own interfaces.
  void use_netns(std::string path) { netns_ = std::move(path); }

  // The VE's cgroup directories that exist now, over every mounted hierarchy.
  std::vector<std::string> cgroup_dirs(const std::string& ve) const;

 private:
  std::string base_;
  std::string root_;
  std::string run_dir_;
  std::string cgroup_parent_;
  std::string netns_;
};

// Replaces the calling (forked) process with `kapsel ARGS...` in environment `env`; exits 127
// if the binary cannot be run.
[[noreturn]] void exec_kapsel(const std::vector<std::string>& args,
                              const std::vector<std::string>& env);

// In a forked child: enters the network namespace bound at `path` (nothing if empty); exits 126
// if it cannot.
void enter_netns(const std::string& path);

// Host-side inspection.
bool process_alive(pid_t pid);
// Pids of every host process in the pid namespace with inode `ns_inode`.
std::vector<pid_t> processes_in_pid_namespace(ino_t ns_inode);
ino_t pid_namespace_inode(pid_t pid);
// Lines of every process's mountinfo that mention `needle`.
std::vector<std::string> mounts_mentioning(const std::string& needle);
// Polls `pred` every 20 ms until it holds or `timeout_ms` passes.
bool eventually(const std::function<bool()>& pred, int timeout_ms = 5000);
std::string read_text(const std::string& path);

}  // namespace kapsel::testing

#define KAPSEL_REQUIRE_ROOT()                                                           \
  do {                                                                                  \
    if (::geteuid() != 0)                                                               \
      GTEST_SKIP() << "needs root: creates namespaces, mounts and cgroups on the host"; \
  } while (0)
