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

// Refuses values that no host could enforce, whatever its cgroups: out-of-range weights, CPUs
// below kMinCpus, a cpuset that is no CPU list, both cpu_shares and cpu_weight, a memory_swap
// below memory (both set), a memory_swap limit with unlimited memory. The backends' check()
// starts with it; the CLI may call it on its own for a stored config. Errors are
// ErrorKind::usage and name the option.
[[nodiscard]] Status validate(const Limits& limits);

// `base` with every field that `change` sets replaced (device throttles per device; a rate of 0
// in `change` drops that device). cpu_shares and cpu_weight replace each other.
[[nodiscard]] Limits merge(const Limits& base, const Limits& change);

// Stored in a VE's config.json; unset fields and empty device lists are left out. Keys are the
// field names (memory, memory_swap, cpus, cpu_shares, cpu_weight, cpuset, pids, blkio_weight,
// read_bps, write_bps, read_iops, write_iops); kUnlimited is the string "max"; device lists are
// arrays of {"major", "minor", "rate"}. from_json ignores unknown keys and throws a
// nlohmann::json exception for a value of the wrong type.
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

// The command-line option of each field. check() and apply() name it in their errors, so that a
// refusal points at what the user typed.
inline constexpr std::string_view kMemoryOption = "--memory";
inline constexpr std::string_view kMemorySwapOption = "--memory-swap";
inline constexpr std::string_view kCpusOption = "--cpus";
inline constexpr std::string_view kCpuSharesOption = "--cpu-shares";
inline constexpr std::string_view kCpuWeightOption = "--cpu-weight";
inline constexpr std::string_view kCpusetOption = "--cpuset";
inline constexpr std::string_view kPidsOption = "--pids";
inline constexpr std::string_view kBlkioWeightOption = "--blkio-weight";
inline constexpr std::string_view kReadBpsOption = "--device-read-bps";
inline constexpr std::string_view kWriteBpsOption = "--device-write-bps";
inline constexpr std::string_view kReadIopsOption = "--device-read-iops";
inline constexpr std::string_view kWriteIopsOption = "--device-write-iops";

// The ranges of the two CPU weights, and the conversion between them that runc and crun use
// (linear, so that the ends map onto each other: 2 <-> 1, 262144 <-> 10000; the default 1024
// becomes 39, not 100). Out-of-range input is clamped.
inline constexpr std::uint64_t kMinCpuShares = 2;
inline constexpr std::uint64_t kMaxCpuShares = 262144;
inline constexpr std::uint64_t kMinCpuWeight = 1;
inline constexpr std::uint64_t kMaxCpuWeight = 10000;
[[nodiscard]] std::uint64_t shares_to_weight(std::uint64_t shares);
[[nodiscard]] std::uint64_t weight_to_shares(std::uint64_t weight);

// blkio_weight's range (BFQ's and CFQ's v1 range), and its conversion to v2's io.weight
// (1..10000, the iocost controller), as runc does where io.bfq.weight is missing.
inline constexpr std::uint64_t kMinBlkioWeight = 10;
inline constexpr std::uint64_t kMaxBlkioWeight = 1000;
[[nodiscard]] std::uint64_t blkio_weight_to_io_weight(std::uint64_t weight);

// The CFS period kapsel writes (100 ms, the kernel's default); the quota is cpus times it.
inline constexpr std::uint64_t kCpuPeriodUs = 100000;
// The smallest quota the kernel takes is 1 ms, so the fewest CPUs a limit can give is 0.01.
inline constexpr double kMinCpus = 0.01;

// Parsers for the command line and for `set`. Each error is one line of ErrorKind::usage that
// names the option and the accepted form ("--memory: \"12X\" is not a size; use a number with
// an optional K, M, G or T suffix (e.g. 256M) or \"max\"").
// Sizes: bytes with optional k/m/g/t (binary) suffix, case-insensitive, optional trailing "b",
// a decimal fraction allowed with a suffix ("1.5G"); "max", "unlimited" or "-1" give
// kUnlimited; 0 and anything that rounds to 0 bytes is refused.
[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view option, std::string_view text);
// CPUs: a positive decimal ("0.5", "2") of at least kMinCpus; "0", "max" or "unlimited" remove
// the limit (returned as 0). Negative values are refused.
[[nodiscard]] Result<double> parse_cpus(std::string_view option, std::string_view text);
// A cpuset list "0-2,5", returned in the kernel's canonical form ("0,1,2" gives "0-2"); every
// CPU must be in `host_cpus` (the host's online CPUs) or the error names the CPUs the host has
// ("--cpuset: CPU 7 does not exist on this host (it has 0-1)"). "" (all of the parent's CPUs)
// is returned as "".
[[nodiscard]] Result<std::string> parse_cpuset(std::string_view option, std::string_view text,
                                               const std::vector<unsigned>& host_cpus);
// A kernel CPU list ("0-3,5", surrounding white space allowed, "" for none) as sorted numbers,
// each once; the inverse of format_cpu_list(). The error (ErrorKind::usage) quotes the text.
// CPU numbers above kMaxCpu are refused.
inline constexpr unsigned kMaxCpu = 65535;
[[nodiscard]] Result<std::vector<unsigned>> parse_cpu_list(std::string_view text);
[[nodiscard]] std::string format_cpu_list(const std::vector<unsigned>& cpus);
// The host's online CPUs (/sys/devices/system/cpu/online).
[[nodiscard]] Result<std::vector<unsigned>> host_online_cpus();
// A whole number in [min, max] (weights, pids); "max" and "unlimited" give kUnlimited when
// `unlimited_ok`.
[[nodiscard]] Result<std::uint64_t> parse_count(std::string_view option, std::string_view text,
                                                std::uint64_t min, std::uint64_t max,
                                                bool unlimited_ok = false);
// DEVICE:RATE where DEVICE is a block device node (/dev/vda; stat(2)ed, it must be a block
// device) and RATE a size per second ("10M") or, when `is_iops`, a whole number of operations per
// second. A RATE of 0 removes the device's throttle.
[[nodiscard]] Result<DeviceRate> parse_device_rate(std::string_view option, std::string_view text,
                                                   bool is_iops);

// Human forms for status/stats and errors: "512 B", "80.0 MiB", "1.5 GiB" (binary units, one
// decimal), "unlimited" for kUnlimited.
[[nodiscard]] std::string format_bytes(std::uint64_t bytes);

}  // namespace kapsel::cgroup
