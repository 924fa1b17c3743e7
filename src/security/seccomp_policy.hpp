// A VE's seccomp policy: kapsel's default profile (an allowlist modelled on moby's), no filter
// ("unconfined"), or an OCI seccomp profile from a file (oci_seccomp.hpp).
//
// The VE's monitor builds the program once (libseccomp, which allocates) and keeps it; the VE's
// init and every process `kapsel exec` starts load it just before execve, from a vfork child
// where nothing may allocate. This filter is stacked with the user-notification filter of
// procfs/syscall_virtualizer.hpp: the kernel runs both and takes the most restrictive answer.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "security/syscall_filter.hpp"

namespace kapsel::security {

enum class SeccompMode { default_profile, unconfined, file };

struct SeccompSpec {
  SeccompMode mode = SeccompMode::default_profile;
  std::string file;  // absolute path, for SeccompMode::file

  friend bool operator==(const SeccompSpec&, const SeccompSpec&) = default;
};

// Parses the value of `--seccomp`: "default", "unconfined", or the path of an OCI seccomp JSON
// file (a file named "default" is "./default"). A relative path is made absolute against the
// current directory. The file is compiled once here, so that a bad profile is refused when the
// VE is created rather than when it starts. Every error is ErrorKind::usage and starts with
// "--seccomp FILE: " ("--seccomp /root/p.json: line 3: syscalls[0].action: unknown action ...").
[[nodiscard]] Result<SeccompSpec> parse_seccomp_option(std::string_view value);

// "default", "unconfined" or the file's path, for the VE's config and `status`;
// parse_seccomp_option() reads it back.
[[nodiscard]] std::string to_string(const SeccompSpec& spec);

// kapsel's default profile for a VE whose processes keep the capabilities `caps` (bit n is
// capability n of <linux/capability.h>): it lets a process make the calls its capabilities are
// for (mount with CAP_SYS_ADMIN, ...). The calls named in `notified` (allowed ones) go to the
// filter's user-notification listener instead (SECCOMP_RET_USER_NOTIF), so that one filter
// does the work of the profile and of the syscall virtualiser's (procfs/syscall_virtualizer).
[[nodiscard]] FilterSpec default_profile(std::uint64_t caps,
                                         const std::vector<std::string>& notified = {});

// The program for a VE whose processes keep `caps`. Empty for unconfined. A file profile is
// read and compiled again, so that an edited profile takes effect at the VE's next start;
// `notified` applies to the default profile only.
[[nodiscard]] Result<std::vector<sock_filter>> build_seccomp_program(
    const SeccompSpec& spec, std::uint64_t caps, const std::vector<std::string>& notified = {});

// Loads `program` into the calling process with seccomp(SECCOMP_SET_MODE_FILTER), after the
// process's last mount, pivot_root or sethostname (the default profile refuses those without
// CAP_SYS_ADMIN). The kernel takes it only with no_new_privs set or CAP_SYS_ADMIN held (EACCES
// otherwise). With `listener`, the filter's user-notification listener is made and its
// descriptor (close-on-exec) put there; a process can have one (EBUSY). Async-signal-safe and
// allocation-free, for a vfork child; errno is left as it was, since a vfork child shares it
// with its parent. Returns 0 or an errno; an empty program is a no-op that returns 0.
int load_seccomp_program(const std::vector<sock_filter>& program, int* listener = nullptr) noexcept;

// ---------------------------------------------------------------------------------------------
// Shared by the profile compilers (here and oci_seccomp.cpp). procfs/syscall_virtualizer.cpp
// exports its filter the same way and could use these too.

// Owns a libseccomp filter context (scmp_filter_ctx is a void*).
struct SeccompContextRelease {
  void operator()(void* ctx) const;
};
using SeccompContext = std::unique_ptr<void, SeccompContextRelease>;

// The classic BPF program libseccomp generates for `ctx`. libseccomp 2.5.4 can only write it
// to an fd (seccomp_export_bpf_mem came in 2.6), so it goes through a memfd. `what` names the
// filter in errors ("exporting WHAT: ...").
[[nodiscard]] Result<std::vector<sock_filter>> export_seccomp_program(void* ctx,
                                                                      std::string_view what);

}  // namespace kapsel::security
