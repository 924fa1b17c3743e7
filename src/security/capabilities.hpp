// The capabilities a VE's processes keep. Names go through libcap, so they are the ones
// capabilities(7) and every other tool use; the sets are plain bit masks so that a policy made
// once can be stored, compared and applied without libcap's allocations.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace kapsel::security {

// Bit n stands for capability n (linux/capability.h).
using CapSet = std::uint64_t;

[[nodiscard]] constexpr CapSet cap_bit(int cap) {
  return cap >= 0 && cap < 64 ? CapSet{1} << cap : 0;
}

// The container default of Docker and runc: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW,
// SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE; plus
// SYS_BOOT, which a VE's init needs to halt and reboot (see the definition).
[[nodiscard]] CapSet default_capabilities();

// The number of a capability given as "NET_ADMIN", "net_admin" or "CAP_NET_ADMIN". "ALL" is not
// a single capability and is refused here; resolve_capabilities() understands it. A name this
// kernel does not know, or no capability's name at all, is ErrorKind::usage:
// "unknown capability 'FOO' (see capabilities(7), e.g. NET_ADMIN)".
[[nodiscard]] Result<int> capability_from_name(std::string_view name);

// "CAP_NET_ADMIN": libcap's name, upper-cased. A capability newer than libcap has no name there
// and comes back as its number ("41"), which capability_from_name() takes back.
[[nodiscard]] std::string capability_name(int cap);

// default_capabilities() changed by --cap-add and --cap-drop, as Docker does: "ALL" in `add`
// starts from every capability this kernel knows, "ALL" in `drop` from none; then the named
// ones in `add` are added and the named ones in `drop` taken away, in that order, so a
// capability in both lists is dropped. Every name is checked first; the first bad one is the
// error (ErrorKind::usage).
[[nodiscard]] Result<CapSet> resolve_capabilities(const std::vector<std::string>& add,
                                                  const std::vector<std::string>& drop);

// The "CAP_..." names of `caps`, by number.
[[nodiscard]] std::vector<std::string> capability_names(CapSet caps);

// The inverse of capability_names(), for sets stored in a VE's configuration.
[[nodiscard]] Result<CapSet> capabilities_from_names(const std::vector<std::string>& names);

// The highest capability number the running kernel knows (/proc/sys/kernel/cap_last_cap, or
// CAP_LAST_CAP of the headers kapsel was built with when /proc cannot tell).
[[nodiscard]] int last_capability();

// What apply_capabilities() needs, worked out before fork or vfork because applying must not
// allocate or read files: it runs in a vfork child and in a VE's init right before execve.
struct CapabilityPlan {
  CapSet keep = 0;   // only capabilities the kernel knows
  int last_cap = 0;  // last_capability() when planned
};
[[nodiscard]] CapabilityPlan plan_capabilities(CapSet keep);

// Leaves the calling thread with exactly `plan.keep`: every other capability dropped from the
// bounding set (PR_CAPBSET_DROP), so that no execve, not even of a set-uid-root or file-capability
// program, brings it back; the ambient set cleared; the inheritable set cleared; permitted and
// effective set to `keep` (capset(2)). Needs CAP_SETPCAP and `keep` within the permitted set, so
// it is called after the last set-up step that needs more privilege. Returns 0 or an errno.
int apply_capabilities(const CapabilityPlan& plan) noexcept;

}  // namespace kapsel::security
