// The OCI runtime's operations (runtime.md "Operations") on containers kept under one state
// directory (runc's --root): create, start, state, kill, delete, plus runc's exec and ps. A
// container is a VE of the container driver whose config carries its bundle
// (store::BundleConfig): the same namespaces, mounts, cgroups and security code as every VE.
// Nothing here parses command lines or prints.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "oci/bundle_spec.hpp"
#include "store/store.hpp"

namespace kapsel::oci {

// runtime.md "State": status is one of the spec's four, or runc's "paused" (a running container
// whose processes are frozen, which engines expect to see).
enum class ContainerStatus { creating, created, running, stopped, paused };
[[nodiscard]] std::string_view to_string(ContainerStatus s);

struct ContainerState {
  std::string oci_version;
  std::string id;
  ContainerStatus status = ContainerStatus::creating;
  pid_t pid = 0;  // 0 once stopped
  std::string bundle;
  std::map<std::string, std::string> annotations;
  std::int64_t created = 0;  // unix time
  // The spec's JSON (plus runc's rootfs, created and owner).
  [[nodiscard]] std::string to_json() const;
};

struct CreateRequest {
  std::string bundle = ".";
  std::string pid_file;
  std::string console_socket;
  bool no_pivot = false;
  int preserve_fds = 0;
};

struct ExecProcess {
  store::BundleProcess process;
  // process.capabilities of an `exec --process` file (as the container's are read); unset: the
  // container's, as runc has it.
  std::optional<std::vector<std::string>> capabilities;
  // From a process file, whose rlimits and noNewPrivileges replace the container's; by args
  // (false), the container's apply, as runc does.
  bool from_file = false;
  bool no_new_privs = false;  // --no-new-privs
  std::string pid_file;
  std::string console_socket;
  bool detach = false;
};

class Runtime {
 public:
  explicit Runtime(const std::string& root);

  [[nodiscard]] Status create(const std::string& id, const CreateRequest& request);
  [[nodiscard]] Status start(const std::string& id);
  [[nodiscard]] Result<ContainerState> state(const std::string& id);
  [[nodiscard]] Status kill(const std::string& id, int signal, bool all);
  [[nodiscard]] Status remove(const std::string& id, bool force);
  // Freezes every process of a running container (the driver's pause: the cgroup freezer).
  [[nodiscard]] Status pause(const std::string& id);
  [[nodiscard]] Status resume(const std::string& id);
  // Returns the process's exit status (0 at once with `detach`).
  [[nodiscard]] Result<int> exec(const std::string& id, const ExecProcess& request);
  [[nodiscard]] Result<std::vector<pid_t>> pids(const std::string& id);
  [[nodiscard]] Result<std::vector<ContainerState>> list();

 private:
  struct Loaded {
    store::VeConfig config;
    ContainerSpec spec;  // hooks and annotations, from the bundle's config as created
    ContainerState state;
    std::optional<store::RuntimeState> runtime;
  };
  [[nodiscard]] Result<Loaded> load(const std::string& id);
  // Kills what is left of the container and removes it: its cgroups, runtime files and state.
  [[nodiscard]] Status destroy(Loaded& c);

  store::Store store_;
};

// A signal by name ("KILL", "SIGKILL") or number ("9").
[[nodiscard]] Result<int> parse_signal(const std::string& text);

// runc's `exec --process` file: a process object of the spec (config.md "Process").
[[nodiscard]] Result<ExecProcess> parse_process(std::string_view text);

}  // namespace kapsel::oci
