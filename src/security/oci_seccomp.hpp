// OCI seccomp profiles (runtime-spec config-linux.md#seccomp), compiled with libseccomp to the
// classic BPF program that load_seccomp_program() loads.
//
// What runc does is the reference where the spec leaves room:
// - system call names this libseccomp does not know are skipped (a profile written for a newer
//   kernel still loads);
// - a rule whose action is the default action is skipped (libseccomp refuses it);
// - several conditions on one argument make one rule per condition, so they are ORed (libseccomp
//   cannot AND them); conditions on different arguments are ANDed;
// - errnoRet and defaultErrnoRet default to EPERM.
// What kapsel refuses, with an error naming the field:
// - SCMP_ACT_NOTIFY, listenerPath and SECCOMP_FILTER_FLAG_NEW_LISTENER: kapsel has no seccomp
//   agent to hand a listener to;
// - Docker's non-empty "includes"/"excludes" conditions (Docker's own profile format, not OCI's):
//   ignoring them would allow what they restrict to a capability or an architecture.
// Flags: SECCOMP_FILTER_FLAG_LOG, SPEC_ALLOW, TSYNC and WAIT_KILLABLE_RECV are accepted and have
// no effect. They are load-time flags, not part of the program, and load_seccomp_program() passes
// none: without LOG the kernel logs only the KILL and LOG actions (as its actions_logged sysctl
// allows), not ERRNO, TRAP or TRACE; without SPEC_ALLOW the speculative store bypass mitigation
// stays on (the safe side); TSYNC is moot in the single-threaded processes that load the filter.
// A system call from an architecture the profile does not list kills the process: the profile
// cannot judge a call whose numbers it was not written for.
#pragma once

#include <linux/filter.h>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace kapsel::security {

// Compiles the "linux.seccomp" object of an OCI runtime spec. Errors are ErrorKind::usage for a
// bad profile and read "ORIGIN: PATH: what is wrong (what is expected)", PATH being the JSON
// path of the offending value ("syscalls[3].action").
[[nodiscard]] Result<std::vector<sock_filter>> compile_oci_seccomp(const nlohmann::json& seccomp,
                                                                   std::string_view origin);

// Reads and compiles the OCI seccomp profile in the file `path`. A bad profile's error also
// gives the line of the offending value: "PATH: line 7: syscalls[3].action: ...".
[[nodiscard]] Result<std::vector<sock_filter>> compile_oci_seccomp_file(const std::string& path);

}  // namespace kapsel::security
