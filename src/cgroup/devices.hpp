// Device access rules for a VE's cgroup: which device nodes its processes may open (read,
// write) or create (mknod). v1 has the devices controller with its devices.allow/deny files;
// cgroup2 has no such files and takes an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE
// instead, which the kernel runs on every open and mknod of a device node. The rules are the
// same for both; the backends pick the mechanism (Manager::set_devices).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"

// linux/bpf.h, which defines it, is large and only needed where programs are made or loaded;
// every user of the cgroup manager sees this header.
struct bpf_insn;

namespace kapsel::cgroup {

struct DeviceRule {
  char type = 'a';             // 'a' (all), 'c' (character), 'b' (block)
  std::int64_t major = -1;     // -1: any
  std::int64_t minor = -1;     // -1: any
  std::string access = "rwm";  // a non-empty subset of "rwm": read, write, mknod
  bool allow = true;

  bool operator==(const DeviceRule&) const = default;
};

// The rules mean: nothing is allowed unless a rule allows it, and where several rules match
// an access, the last one decides. An allow rule matches an access (open for reading and
// writing, mknod) when it allows all of it, a deny rule when it denies any of it. kapsel's own
// lists hold only allow rules. In v1 a deny rule only takes back an earlier allow of exactly
// the same type and numbers (the kernel removes exceptions that way), so deny rules that
// overlap allow rules with wildcards differ there from the eBPF program.

// Refuses a rule neither mechanism could express: an unknown type, an access that is empty or
// not within "rwm", a number below -1 or above 2^31-1 (ErrorKind::usage).
[[nodiscard]] Status check_rule(const DeviceRule& rule);

// The rule as a line of v1's devices.allow or devices.deny: "c 1:3 rwm", "a *:* rwm",
// "c 136:* rwm". The access is given in the order "rwm".
[[nodiscard]] std::string to_v1_line(const DeviceRule& rule);

// One write of the v1 devices controller: `line` to `file` (devices.allow or devices.deny).
struct V1DeviceWrite {
  std::string file;
  std::string line;
  bool operator==(const V1DeviceWrite&) const = default;
};

// The writes that put `rules` in force in a v1 devices cgroup, in order: "a" to devices.deny
// (deny everything and forget the exceptions so far), then one line per rule, to devices.allow
// or devices.deny. A rule of type 'a' other than "everything, rwm" becomes a 'c' and a 'b' line:
// the kernel reads any line starting with 'a' as "all devices, all access", whatever follows.
[[nodiscard]] Result<std::vector<V1DeviceWrite>> v1_device_writes(
    const std::vector<DeviceRule>& rules);

// The eBPF program for `rules`: it reads the device's type, access, major and minor from its
// context (struct bpf_cgroup_dev_ctx), tries the rules from the last to the first, returns 1
// (allow) or 0 (deny) for the first that matches, and 0 when none does.
[[nodiscard]] Result<std::vector<struct bpf_insn>> device_program(
    const std::vector<DeviceRule>& rules);

// The name under which kapsel loads its device programs, so that an update finds its own
// among the programs attached to a cgroup.
inline constexpr const char* kDeviceProgramName = "kapsel_devices";

// Loads device_program(rules) and attaches it to the cgroup2 directory `cgroup2_dir` with
// BPF_F_ALLOW_MULTI, so that cgroups nested in it can attach programs of their own (all must
// allow an access). A kapsel program attached there before is replaced: atomically with
// BPF_F_REPLACE when there is exactly one (Linux 5.6), else the new one is attached first and the
// old ones detached after, so that no moment allows more than either set of rules. Needs the
// privilege to load and attach BPF programs (root on the host).
[[nodiscard]] Status attach_device_program(const std::string& cgroup2_dir,
                                           const std::vector<DeviceRule>& rules);

// The ids of the kapsel device programs attached to `cgroup2_dir` itself (not inherited from
// its parents): one after attach_device_program(), none before.
[[nodiscard]] Result<std::vector<std::uint32_t>> attached_device_programs(
    const std::string& cgroup2_dir);

}  // namespace kapsel::cgroup
