// Helpers of the OCI surface's integration tests: bundles made from the busybox template, and
// `kapsel oci` run with its output in files (a created container keeps the creating command's
// stdout and stderr, as with runc, so nothing may wait for their end).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness.hpp"

namespace kapsel::testing {

class OciBundle {
 public:
  // A bundle in a temporary directory: rootfs/ a copy of the busybox template, config.json
  // `kapsel oci spec`'s default with no terminal and `args`.
  explicit OciBundle(const std::vector<std::string>& args);
  ~OciBundle();
  OciBundle(const OciBundle&) = delete;
  OciBundle& operator=(const OciBundle&) = delete;

  nlohmann::json config;  // written by save()
  void save() const;
  const std::string& dir() const { return dir_; }
  std::string rootfs() const { return dir_ + "/rootfs"; }

 private:
  std::string dir_;
};

class Oci {
 public:
  Oci();
  ~Oci();  // deletes (force) every container left in its root, then the root
  Oci(const Oci&) = delete;
  Oci& operator=(const Oci&) = delete;

  // `kapsel oci --root ROOT ARGS...`, its stdout and stderr in files read after it exits.
  RunResult run(const std::vector<std::string>& args, const std::string& program = {}) const;
  // create --bundle DIR ID; the container's stdout and stderr go to out_path().
  RunResult create(const std::string& id, const OciBundle& bundle,
                   const std::vector<std::string>& extra = {}) const;
  nlohmann::json state(const std::string& id) const;
  std::string status(const std::string& id) const;  // "" if state fails
  // What the container's process wrote to its stdout and stderr so far.
  std::string output(const std::string& id) const;
  std::string out_path(const std::string& id) const { return base_ + "/" + id + ".out"; }
  // Polls until the container is stopped.
  bool wait_stopped(const std::string& id, int timeout_ms = 10000) const;
  const std::string& root() const { return root_; }
  const std::string& base() const { return base_; }

 private:
  RunResult run_with_output(const std::vector<std::string>& args, const std::string& out,
                            const std::string& err, const std::string& program) const;
  std::string base_;
  std::string root_;
};

// runc's --console-socket, listening at `path`: the pty master that `create` sends arrives in
// receive_master(), and what the container writes on it is read by read_master().
class ConsoleSocket {
 public:
  explicit ConsoleSocket(const std::string& path);
  ~ConsoleSocket();
  ConsoleSocket(const ConsoleSocket&) = delete;
  ConsoleSocket& operator=(const ConsoleSocket&) = delete;

  // Accepts one connection and takes the descriptor it carries (SCM_RIGHTS); -1 on failure.
  int receive_master();
  // Reads the master until `marker` has been seen or 5 s have passed; the master stays open.
  std::string read_master(const std::string& marker);
  int master() const { return master_; }

 private:
  int listener_ = -1;
  int master_ = -1;
};

// The busybox template's tree, made once per test process.
const std::string& busybox_rootfs();

}  // namespace kapsel::testing
