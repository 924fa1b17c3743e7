#include "procfs/ve_view.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/fs.hpp"
#include "common/process.hpp"

namespace kapsel::procfs {
namespace {

// A kernel CPU list ("0-3,5\n"). cgroup::parse_cpu_list() says the same, but the view must not
// depend on the cgroup backend's parsers: a host file that does not parse leaves the CPU list
// empty and make_view() falls back to CPU 0 rather than failing every read.
std::vector<unsigned> parse_cpus(std::string_view text) {
  std::vector<unsigned> cpus;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    while (!item.empty() && (item.back() == '\n' || item.back() == ' ')) item.remove_suffix(1);
    if (item.empty()) continue;
    unsigned first = 0, last = 0;
    auto dash = item.find('-');
    auto a = item.substr(0, dash);
    if (std::from_chars(a.data(), a.data() + a.size(), first).ec != std::errc()) return {};
    last = first;
    if (dash != std::string_view::npos) {
      auto b = item.substr(dash + 1);
      if (std::from_chars(b.data(), b.data() + b.size(), last).ec != std::errc()) return {};
    }
    // A range wider than any machine is a damaged file, not a reason to allocate gigabytes.
    if (last < first || last - first > 65536) return {};
    for (unsigned c = first; c <= last; ++c) cpus.push_back(c);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::uint64_t clamped_sub(std::uint64_t a, std::uint64_t b) {
  return a > b ? a - b : 0;
}

}  // namespace

Result<HostFacts> read_host_facts() {
  HostFacts host;
  auto meminfo = fs::read_file("/proc/meminfo");
  if (!meminfo) return tl::unexpected(meminfo.error().context("reading the host's memory"));
  host.meminfo = std::move(*meminfo);
  auto online = fs::read_file("/sys/devices/system/cpu/online");
  if (!online) return tl::unexpected(online.error().context("reading the host's CPUs"));
  host.online = parse_cpus(*online);
  // CLOCK_BOOTTIME is the clock /proc/uptime prints (both adjusted by a time namespace), and
  // reading it costs no file open on the path of every read of a virtual file.
  host.uptime_s = proc::uptime_seconds();
  return host;
}

VeView make_view(const cgroup::Stats& stats, const HostFacts& host, double ve_uptime_s) {
  VeView v;
  const std::uint64_t host_total = meminfo_bytes(host.meminfo, "MemTotal");
  const std::uint64_t host_swap = meminfo_bytes(host.meminfo, "SwapTotal");

  if (stats.memory_limit == cgroup::kUnlimited) {
    // Nothing bounds the VE but the host, so the host's own figures are the truth for it.
    v.mem_total = host_total;
    v.mem_free = meminfo_bytes(host.meminfo, "MemFree");
    v.mem_available = meminfo_bytes(host.meminfo, "MemAvailable");
    v.mem_cached = meminfo_bytes(host.meminfo, "Cached");
    v.mem_shared = meminfo_bytes(host.meminfo, "Shmem");
    v.mem_buffers = meminfo_bytes(host.meminfo, "Buffers");
    v.swap_total = host_swap;
    v.swap_free = meminfo_bytes(host.meminfo, "SwapFree");
  } else {
    // A limit above the host's memory can never be reached; the machine is what it has.
    v.mem_total = host_total == 0 ? stats.memory_limit : std::min(stats.memory_limit, host_total);
    v.mem_free = clamped_sub(v.mem_total, stats.memory_usage);
    // The cgroup's usage includes its page cache, so the cache is part of "used" here and can
    // be given back: available = free + cache, as the kernel estimates MemAvailable.
    v.mem_cached = std::min(stats.memory_cache, v.mem_total - v.mem_free);
    v.mem_available = std::min(v.mem_free + v.mem_cached, v.mem_total);
    v.mem_shared = std::min(stats.memory_shmem, v.mem_total);
    // The cgroup does not count buffers apart from the page cache.
    v.mem_buffers = 0;
    // Swap the VE may use: its own limit where it has one the host can back, else the host's.
    if (host_swap == 0) {
      v.swap_total = 0;
    } else if (stats.swap_limit != cgroup::kUnlimited && stats.swap_limit <= host_swap) {
      v.swap_total = stats.swap_limit;
    } else {
      v.swap_total = host_swap;
    }
    v.swap_free = clamped_sub(v.swap_total, stats.swap_usage);
  }

  // CPUs: the cpuset the kernel lets the VE run on, of those the host has online.
  std::vector<unsigned> online = host.online.empty() ? std::vector<unsigned>{0} : host.online;
  if (stats.cpuset.empty()) {
    v.cpus = online;
  } else {
    for (unsigned c : stats.cpuset) {
      if (std::binary_search(online.begin(), online.end(), c)) v.cpus.push_back(c);
    }
    std::sort(v.cpus.begin(), v.cpus.end());
    if (v.cpus.empty()) v.cpus = online;
  }
  // A quota of 1.5 CPUs lets the VE keep two CPUs busy part of the time; nproc should say 2.
  // (The epsilon keeps a quota computed as 1.0000001 from showing two CPUs.)
  if (stats.cpu_quota > 0) {
    auto n = static_cast<std::size_t>(std::max(1.0, std::ceil(stats.cpu_quota - 1e-6)));
    if (v.cpus.size() > n) v.cpus.resize(n);
  }

  v.uptime_s = std::max(0.0, ve_uptime_s);
  double used_s = static_cast<double>(stats.cpu_usage_ns) / 1e9;
  v.idle_s = std::max(0.0, v.uptime_s * static_cast<double>(v.cpus.size()) - used_s);
  v.procs = stats.pids_current;
  return v;
}

Result<double> init_age_seconds(pid_t pid, double host_uptime_s) {
  auto start = proc::start_time(pid);
  if (!start) return tl::unexpected(start.error().context("start time of " + std::to_string(pid)));
  long hz = proc::clock_ticks();
  if (hz <= 0) hz = 100;  // USER_HZ on every Linux architecture kapsel runs on
  double started = static_cast<double>(*start) / static_cast<double>(hz);
  return std::max(0.0, host_uptime_s - started);
}

std::uint64_t meminfo_bytes(std::string_view meminfo, std::string_view key) {
  std::size_t pos = 0;
  while (pos < meminfo.size()) {
    auto eol = meminfo.find('\n', pos);
    auto line = meminfo.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
    pos = eol == std::string_view::npos ? meminfo.size() : eol + 1;
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':')
      continue;
    auto rest = line.substr(key.size() + 1);
    auto digits = rest.find_first_not_of(' ');
    if (digits == std::string_view::npos) return 0;
    std::uint64_t value = 0;
    auto r = std::from_chars(rest.data() + digits, rest.data() + rest.size(), value);
    if (r.ec != std::errc()) return 0;
    // "kB" is the kernel's name for KiB; lines without a unit (HugePages_*) are counts.
    std::string_view unit(r.ptr, static_cast<std::size_t>(rest.data() + rest.size() - r.ptr));
    return unit.find("kB") != std::string_view::npos ? value * 1024 : value;
  }
  return 0;
}

}  // namespace kapsel::procfs
