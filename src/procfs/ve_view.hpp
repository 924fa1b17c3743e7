// How a VE looks from inside: a machine with its own memory size, its own CPUs and its own boot
// time, computed from its cgroup counters and the host's figures. Both the /proc files served
// through FUSE (procfs_service) and the system calls answered for the VE (sysinfo(2),
// sched_getaffinity(2); syscall_virtualizer) are rendered from one VeView, so `free` and
// `cat /proc/meminfo` can never disagree.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/resources.hpp"
#include "common/error.hpp"

namespace kapsel::procfs {

// The host's own figures, read from the real /proc.
struct HostFacts {
  std::string meminfo;           // text of /proc/meminfo
  std::vector<unsigned> online;  // /sys/devices/system/cpu/online
  double uptime_s = 0;           // first field of /proc/uptime
};

[[nodiscard]] Result<HostFacts> read_host_facts();

struct VeView {
  // Memory in bytes, as /proc/meminfo and sysinfo(2) report it inside the VE. Without a memory
  // limit the host's figures are shown.
  std::uint64_t mem_total = 0;
  std::uint64_t mem_free = 0;
  std::uint64_t mem_available = 0;
  std::uint64_t mem_cached = 0;
  std::uint64_t mem_shared = 0;
  std::uint64_t mem_buffers = 0;
  std::uint64_t swap_total = 0;
  std::uint64_t swap_free = 0;

  // The host CPUs shown to the VE, in order: the VE's CPU i is host CPU cpus[i]. The effective
  // cpuset, cut to ceil(cpu quota) CPUs when a quota is set; never empty.
  std::vector<unsigned> cpus;

  // Seconds since the VE's init started, and the idle time its CPUs had in that time
  // (uptime * cpus minus the CPU time the VE used; never negative).
  double uptime_s = 0;
  double idle_s = 0;

  std::uint64_t procs = 0;  // tasks in the VE (pids.current)
};

// `ve_uptime_s`: seconds since the VE's init started (init_age_seconds()).
[[nodiscard]] VeView make_view(const cgroup::Stats& stats, const HostFacts& host,
                               double ve_uptime_s);

// Seconds since process `pid` started, from /proc/<pid>/stat's starttime and the host's
// uptime.
[[nodiscard]] Result<double> init_age_seconds(pid_t pid, double host_uptime_s);

// The value of a "Key:   1234 kB" line of a meminfo text, in bytes; 0 when absent.
[[nodiscard]] std::uint64_t meminfo_bytes(std::string_view meminfo, std::string_view key);

}  // namespace kapsel::procfs
