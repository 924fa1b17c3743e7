// The text of each virtual file, in the kernel's own format, from a VE's view of itself. Pure
// functions: everything they need (the view, the cgroup counters, the host's own file where
// the VE's copy is derived from it) comes in as arguments, so they are tested against texts
// copied from real machines, and the service only gathers inputs.
//
// Formats follow the kernel's printing code (fs/proc/meminfo.c, arch/x86/kernel/cpu/proc.c,
// fs/proc/stat.c, fs/proc/uptime.c, fs/proc/loadavg.c, mm/swapfile.c, block/genhd.c,
// drivers/base/cpu.c) so that parsers written against the real files (busybox, procps, htop)
// read these unchanged.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "cgroup/resources.hpp"
#include "procfs/ve_view.hpp"

namespace kapsel::procfs {

// The VE's tasks (threads, as the kernel counts them) at one moment.
struct TaskCounts {
  std::uint64_t running = 0;   // state R
  std::uint64_t blocked = 0;   // state D (uninterruptible)
  std::uint64_t total = 0;     // every task
  std::uint64_t last_pid = 0;  // the highest pid in the VE's pid namespace; 0 if unknown
};

// /proc/meminfo. With a memory limit, every line of `host_meminfo` is kept in its order, and:
//   - MemTotal, MemFree, MemAvailable, Buffers, Cached, Shmem, SwapTotal, SwapFree come from
//     the view, AnonPages from the cgroup's anonymous memory, SwapCached is 0;
//   - CommitLimit is the kernel's formula applied to the VE (its memory times the host's
//     overcommit ratio, plus its swap);
//   - lines that describe the machine rather than use of it (VmallocTotal, Hugepagesize,
//     HugePages_*, Hugetlb, DirectMap*) are kept;
//   - every other amount (Active, Inactive, Slab, SReclaimable, Dirty, Committed_AS, ...) is 0.
//     The cgroup counters kapsel reads do not give these per VE. A host figure kept would be
//     larger than the VE's whole memory; a scaled one would be invented. Zero is "none known",
//     and it keeps the sums tools make correct: busybox and procps free count SReclaimable as
//     cache, so the host's SReclaimable (often more than a small VE's memory) would push
//     "used" below zero.
// Without a memory limit the VE sees the host's memory, and the host's text is returned as is.
[[nodiscard]] std::string render_meminfo(const VeView& view, const cgroup::Stats& stats,
                                         std::string_view host_meminfo);

// /proc/cpuinfo: the host's block of each CPU the VE has, in the view's order and numbered
// 0..n-1. The VE's CPUs are presented as one package of n cores of one thread each
// ("physical id" 0, "siblings" and "cpu cores" n, "core id", "apicid" and "initial apicid"
// the CPU's number), so that tools multiplying sockets, cores and threads (lscpu) count n. A
// host text without "processor" lines (an unknown format) is returned unchanged.
[[nodiscard]] std::string render_cpuinfo(const VeView& view, std::string_view host_cpuinfo);

// /proc/stat: the "cpu" line and one "cpuN" line per CPU of the VE, in USER_HZ ticks, then the
// host's other lines with btime the VE's boot time (`now` minus its uptime), and processes,
// procs_running and procs_blocked the VE's where `tasks` is given. CPU time: the cgroup's
// per-CPU usage of each CPU shown, plus whatever it used on CPUs not shown spread evenly over
// them (spread evenly when the backend has no per-CPU counters); user and system split in the
// proportion of the cgroup's user and system time. Idle: the view's idle time on the "cpu"
// line, and uptime minus the CPU's usage on each "cpuN" line.
[[nodiscard]] std::string render_stat(const VeView& view, const cgroup::Stats& stats,
                                      std::string_view host_stat,
                                      const std::optional<TaskCounts>& tasks, std::time_t now);

// /proc/uptime: "uptime idle\n", seconds with two decimals, truncated as the kernel does.
[[nodiscard]] std::string render_uptime(const VeView& view);

// /proc/loadavg: "1min 5min 15min running/total last_pid\n". `running` is at least 1, as on the
// host, where the reader itself is running.
[[nodiscard]] std::string render_loadavg(const std::array<double, 3>& load,
                                         const TaskCounts& tasks);

// /proc/swaps: the header, and one line if the VE has swap, named (and typed, prioritised) like
// the host's first swap area, which backs the VE's swap as it backs everything on the host.
[[nodiscard]] std::string render_swaps(const VeView& view, std::string_view host_swaps);

// /proc/diskstats: one line per device in `stats.io` that `names` names ("vda"), with reads and
// writes completed and sectors (512 bytes) read and written; counters the cgroup does not
// keep (merges, times, in-flight, discards, flushes) are 0.
using DeviceNames = std::map<std::pair<std::uint32_t, std::uint32_t>, std::string>;
[[nodiscard]] std::string render_diskstats(const cgroup::Stats& stats, const DeviceNames& names);

// /sys/devices/system/cpu/online: "0-(n-1)\n", or "0\n".
[[nodiscard]] std::string render_cpu_online(const VeView& view);

}  // namespace kapsel::procfs
