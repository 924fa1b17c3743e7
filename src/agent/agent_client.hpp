// `kapsel exec` and `kapsel enter` for a VE whose guest runs kapsel-agent: one session over the
// monitor's agent socket (agent_relay.hpp), relaying the caller's stdin, stdout and stderr (or
// its terminal, with `tty`) until the command exits.
#pragma once

#include <string>

#include "agent/protocol.hpp"
#include "common/error.hpp"

namespace kapsel::agent {

// Runs `spec` through the agent socket at `socket_path`; returns the command's exit code.
[[nodiscard]] Result<int> run_session(const std::string& socket_path, ExecSpec spec);

}  // namespace kapsel::agent
