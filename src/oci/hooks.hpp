// Runs the hooks of config.md "POSIX-platform Hooks": each program with its args and env, the
// container's state (the spec's JSON) on its stdin, killed when its timeout passes.
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"
#include "oci/bundle_spec.hpp"

namespace kapsel::oci {

// Where a hook runs (config.md, "POSIX-platform Hooks"): createRuntime, poststart and poststop
// in the runtime's namespaces; createContainer in the container's, its path found in the
// runtime's; startContainer in the container's, its path found there too.
enum class HookPlace { runtime, container_runtime_path, container };

// Runs `hooks` in order and stops at the first that fails (non-zero exit, killed, timed out);
// the error names the hook list (`what`, "createRuntime") and the program. For a place in the
// container, `container_init` is its init (host pid), whose mount, uts, ipc, net and cgroup
// namespaces the hook joins, where they differ from the runtime's.
[[nodiscard]] Status run_hooks(const std::vector<Hook>& hooks, const std::string& state_json,
                               const std::string& what, HookPlace place = HookPlace::runtime,
                               pid_t container_init = 0);

}  // namespace kapsel::oci
