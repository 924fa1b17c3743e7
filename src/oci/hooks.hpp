// Runs the hooks of config.md "POSIX-platform Hooks": each program with its args and env, the
// container's state (the spec's JSON) on its stdin, killed when its timeout passes.
#pragma once

#include <string>
#include <vector>

#include "common/error.hpp"
#include "oci/bundle_spec.hpp"

namespace kapsel::oci {

// Runs `hooks` in order and stops at the first that fails (non-zero exit, killed, timed out);
// the error names the hook list (`what`, "createRuntime") and the program.
[[nodiscard]] Status run_hooks(const std::vector<Hook>& hooks, const std::string& state_json,
                               const std::string& what);

}  // namespace kapsel::oci
