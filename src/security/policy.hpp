// A VE's security settings (store::SecurityConfig) turned into what its processes get: the
// capabilities they keep, the system-call filter they run under, and the devices they may use.
// Made once by the VE's monitor before it clones init, so that applying it there and in every
// `kapsel exec` allocates nothing and builds nothing.
#pragma once

#include <linux/filter.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/devices.hpp"
#include "common/error.hpp"
#include "security/capabilities.hpp"
#include "security/devices.hpp"
#include "security/seccomp_policy.hpp"
#include "store/ve_config.hpp"

namespace kapsel::security {

struct VePolicy {
  CapSet caps = 0;
  CapabilityPlan cap_plan;
  SeccompSpec seccomp_spec;
  std::vector<sock_filter> seccomp;  // empty: unconfined
  // The program also sends the syscall virtualiser's calls to a user-notification listener
  // (security::default_profile's `notified`): it is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER,
  // and no separate virtualiser filter is needed.
  bool seccomp_notifies = false;
  // Set no_new_privs (always for a VE; for an OCI bundle's process only when its
  // noNewPrivileges says so, as the runtime spec has it).
  bool no_new_privs = true;
  std::vector<DeviceSpec> devices;  // host devices added to the VE's /dev
  std::vector<cgroup::DeviceRule> device_rules;
};

// Errors name the setting and what to do: a seccomp file gone since the VE was created, a
// device node removed from the host. With `seccomp`, that program (the monitor's, left in the
// run dir) is used instead of building it again. `notified`: the calls a listener answers
// (procfs::virtualised_calls()); the default profile then sends them to it, which saves every
// process of the VE the load of a second filter. With `seccomp` given, `notified` says that the
// program was made so.
//
// libseccomp takes 7 to 12 ms to build the default profile, a third of a VE's start, so a
// program once built is kept in `cache_dir` (the run dir's seccomp/), keyed by everything it is
// made from: this kapsel binary, the capabilities, the profile and a profile file's contents.
[[nodiscard]] Result<VePolicy> make_policy(const store::SecurityConfig& config,
                                           const std::string& cache_dir,
                                           const std::vector<sock_filter>* seccomp = nullptr,
                                           const std::vector<std::string>& notified = {});

// A program as bytes, for a file or a pipe, and back: nullopt if `bytes` is not a whole program
// the kernel would take (a torn or foreign file).
[[nodiscard]] std::string program_bytes(const std::vector<sock_filter>& program);
[[nodiscard]] std::optional<std::vector<sock_filter>> program_from_bytes(std::string_view bytes);

// A seccomp program from `cache_dir`, or `build`'s, kept there for the next call. `what` is
// everything the program is made from besides the kapsel binary (which is added here).
[[nodiscard]] Result<std::vector<sock_filter>> cached_program(
    const std::string& cache_dir, const std::string& what,
    const std::function<Result<std::vector<sock_filter>>()>& build);

// Applied in the calling process right before it execs the VE's init or an `exec`'d command,
// after every step of set-up that needs privilege: no_new_privs, then the capabilities, then
// the system-call filters (last, so that they filter none of kapsel's own calls; without
// no_new_privs the kernel takes a filter only from a holder of CAP_SYS_ADMIN, so then they come
// first, before the capabilities are dropped, as runc does). With
// `listener`, the process's calls to the syscall virtualiser go to a new user-notification
// listener, returned there (close-on-exec): through the policy's own program if it notifies,
// else through `virtualiser` (procfs::filter_program()), loaded first. No allocation: it runs
// in vfork children. Returns 0 or an errno; `step` names what failed.
int enter_policy(const VePolicy& policy, const char** step) noexcept;
int enter_policy(const VePolicy& policy, const std::vector<sock_filter>* virtualiser, int* listener,
                 const char** step) noexcept;

}  // namespace kapsel::security
