// What a VE may use (Limits) and what it uses now (Stats), in units that do not depend on the
// cgroup version. The backends translate: memory.limit_in_bytes or memory.max, cpu.cfs_quota_us
// or cpu.max, cpu.shares or cpu.weight, blkio.throttle.* or io.max.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/error.hpp"

namespace kapsel::cgroup {

// "No limit": memory.max's and pids.max's "max", a v1 limit of -1.
inline constexpr std::uint64_t kUnlimited = UINT64_MAX;

// A per-device throttle (bytes or I/O operations per second). A rate of 0 removes the
// device's throttle.
struct DeviceRate {
  std::uint32_t major = 0;
  std::uint32_t minor = 0;
  std::uint64_t rate = 0;
  bool operator==(const DeviceRate&) const = default;
};

// Every field is optional: an unset field is left as it is (at create: the kernel's default,
// which is "unlimited"). Limits are merged field by field when `kapsel set` changes some of
// them (merge()).
struct Limits {
  std::optional<std::uint64_t> memory;  // bytes, or kUnlimited
  std::optional<std::uint64_t>
      memory_swap;             // memory plus swap in bytes (Docker's meaning), or kUnlimited
  std::optional<double> cpus;  // CPU bandwidth in CPUs (quota/period); 0 = unlimited
  std::optional<std::uint64_t> cpu_shares;    // v1 weight, 2..262144 (default 1024)
  std::optional<std::uint64_t> cpu_weight;    // v2 weight, 1..10000 (default 100)
  std::optional<std::string> cpuset;          // host CPUs, "0-1,3"; "" = all of the parent's
  std::optional<std::uint64_t> pids;          // maximum number of tasks, or kUnlimited
  std::optional<std::uint64_t> blkio_weight;  // 10..1000 (BFQ's range; v2 io.weight 1..10000)
  std::vector<DeviceRate> read_bps;
  std::vector<DeviceRate> write_bps;
  std::vector<DeviceRate> read_iops;
  std::vector<DeviceRate> write_iops;

  [[nodiscard]] bool empty() const;
  bool operator==(const Limits&) const = default;
};

// `base` with every field that `change` sets replaced (device throttles per device; a rate of 0
// in `change` drops that device). cpu_shares and cpu_weight replace each other.
[[nodiscard]] Limits merge(const Limits& base, const Limits& change);

// Stored in a VE's config.json; unset fields are left out.
void to_json(nlohmann::json& j, const Limits& l);
void from_json(const nlohmann::json& j, Limits& l);

// One block device's I/O counters.
struct DeviceIo {
  std::uint32_t major = 0;
  std::uint32_t minor = 0;
  std::uint64_t read_bytes = 0;
  std::uint64_t write_bytes = 0;
  std::uint64_t read_ios = 0;
  std::uint64_t write_ios = 0;
};

// A snapshot of a VE's cgroup counters and the limits in force, read from the kernel (not from
// the VE's config), so it is what the kernel enforces. Counters a backend cannot read are 0.
struct Stats {
  // CPU time, nanoseconds: cpuacct.usage(_user/_sys)/usage_percpu (v1), cpu.stat (v2).
  std::uint64_t cpu_usage_ns = 0;
  std::uint64_t cpu_user_ns = 0;
  std::uint64_t cpu_system_ns = 0;
  std::vector<std::uint64_t> cpu_per_cpu_ns;  // indexed by host CPU; empty where unknown (v2)
  std::uint64_t cpu_periods = 0;              // cpu.stat nr_periods
  std::uint64_t cpu_throttled_periods = 0;    // cpu.stat nr_throttled
  std::uint64_t cpu_throttled_ns = 0;         // cpu.stat throttled_time / throttled_usec
  double cpu_quota = 0;                       // CPUs of bandwidth allowed; 0 = unlimited
  std::vector<unsigned> cpuset;               // host CPUs the VE may run on (effective)

  // Memory, bytes.
  std::uint64_t memory_usage = 0;  // memory.usage_in_bytes / memory.current
  std::uint64_t memory_limit = kUnlimited;
  std::uint64_t memory_max_usage = 0;     // v1 memory.max_usage_in_bytes / v2 memory.peak
  std::uint64_t memory_cache = 0;         // page cache: memory.stat total_cache / file
  std::uint64_t memory_rss = 0;           // anonymous: total_rss / anon
  std::uint64_t memory_shmem = 0;         // total_shmem / shmem
  std::uint64_t swap_usage = 0;           // memsw usage minus memory usage / memory.swap.current
  std::uint64_t swap_limit = kUnlimited;  // memsw limit minus memory limit / memory.swap.max
  std::uint64_t oom_kills = 0;            // memory.oom_control / memory.events "oom_kill"

  // Tasks.
  std::uint64_t pids_current = 0;
  std::uint64_t pids_limit = kUnlimited;

  std::vector<DeviceIo> io;  // devices with any I/O, sorted by major:minor
};

// Parsers for the command line and for `set`, each returning a usage error that names the
// option and the accepted form ("--memory: \"12X\" is not a size; use a number with an optional
// K, M, G or T suffix, e.g. 256M").
// Sizes: bytes with optional k/m/g/t (binary) suffix, case-insensitive, optional trailing "b";
// "max", "unlimited" or "-1" give kUnlimited; 0 is refused.
[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view option, std::string_view text);
// CPUs: a positive decimal ("0.5", "2"); "0", "max" or "unlimited" remove the limit.
[[nodiscard]] Result<double> parse_cpus(std::string_view option, std::string_view text);
// A cpuset list "0-2,5"; every CPU must be in `host_cpus` (the host's online CPUs) or the error
// names the CPUs the host has.
[[nodiscard]] Result<std::string> parse_cpuset(std::string_view option, std::string_view text,
                                               const std::vector<unsigned>& host_cpus);
// A kernel CPU list ("0-3,5") as numbers; the inverse of format_cpu_list().
[[nodiscard]] Result<std::vector<unsigned>> parse_cpu_list(std::string_view text);
[[nodiscard]] std::string format_cpu_list(const std::vector<unsigned>& cpus);
// The host's online CPUs (/sys/devices/system/cpu/online).
[[nodiscard]] Result<std::vector<unsigned>> host_online_cpus();
// An integer in [min, max] (weights, pids; "max"/"unlimited" allowed when `unlimited_ok`).
[[nodiscard]] Result<std::uint64_t> parse_count(std::string_view option, std::string_view text,
                                                std::uint64_t min, std::uint64_t max,
                                                bool unlimited_ok = false);
// DEVICE:RATE where DEVICE is a block device node (/dev/vda) and RATE a size per second
// ("10M", or a bare count for iops when `is_iops`).
[[nodiscard]] Result<DeviceRate> parse_device_rate(std::string_view option, std::string_view text,
                                                   bool is_iops);

// Human forms for status/stats: "256 MiB", "unlimited".
[[nodiscard]] std::string format_bytes(std::uint64_t bytes);

}  // namespace kapsel::cgroup
