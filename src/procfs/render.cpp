#include "procfs/render.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iterator>
#include <vector>

#include <fmt/format.h>

#include "common/process.hpp"

namespace kapsel::procfs {
namespace {

// Calls `fn` with each line of `text`, without its newline.
template <class Fn>
void for_each_line(std::string_view text, Fn fn) {
  while (!text.empty()) {
    auto eol = text.find('\n');
    fn(text.substr(0, eol));
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::uint64_t kib(std::uint64_t bytes) {
  return bytes / 1024;
}

// USER_HZ, the unit of /proc/stat's times.
double user_hz() {
  long hz = proc::clock_ticks();
  return hz > 0 ? static_cast<double>(hz) : 100.0;
}

std::uint64_t ticks(double seconds) {
  return seconds <= 0 ? 0 : static_cast<std::uint64_t>(seconds * user_hz());
}

// "12.34": two decimals truncated, as the kernel prints seconds (it never rounds up into a
// second that has not passed).
std::string seconds_2(double s) {
  if (s < 0) s = 0;
  auto hundredths = static_cast<std::uint64_t>(s * 100);
  return fmt::format("{}.{:02}", hundredths / 100, hundredths % 100);
}

}  // namespace

std::string render_meminfo(const VeView& view, const cgroup::Stats& stats,
                           std::string_view host_meminfo) {
  if (stats.memory_limit == cgroup::kUnlimited) return std::string(host_meminfo);

  const std::uint64_t host_total = meminfo_bytes(host_meminfo, "MemTotal");
  const std::uint64_t host_swap = meminfo_bytes(host_meminfo, "SwapTotal");
  const std::uint64_t host_commit = meminfo_bytes(host_meminfo, "CommitLimit");
  // The host's vm.overcommit_ratio, recovered from its CommitLimit = RAM * ratio + swap (hugetlb
  // pages aside), so the VE's limit is computed the same way.
  double ratio =
      host_total > 0 && host_commit > host_swap
          ? static_cast<double>(host_commit - host_swap) / static_cast<double>(host_total)
          : 0.5;
  auto commit_limit =
      static_cast<std::uint64_t>(static_cast<double>(view.mem_total) * ratio) + view.swap_total;

  const std::pair<std::string_view, std::uint64_t> replaced[] = {
      {"MemTotal", view.mem_total},
      {"MemFree", view.mem_free},
      {"MemAvailable", view.mem_available},
      {"Buffers", view.mem_buffers},
      {"Cached", view.mem_cached},
      {"SwapCached", 0},
      {"SwapTotal", view.swap_total},
      {"SwapFree", view.swap_free},
      {"AnonPages", std::min(stats.memory_rss, view.mem_total)},
      {"Shmem", view.mem_shared},
      {"CommitLimit", commit_limit},
  };
  auto machine_wide = [](std::string_view key) {
    return key == "VmallocTotal" || key == "Hugepagesize" || key == "Hugetlb" ||
           starts_with(key, "HugePages_") || starts_with(key, "DirectMap");
  };

  std::string out;
  out.reserve(host_meminfo.size());
  for_each_line(host_meminfo, [&](std::string_view line) {
    auto colon = line.find(':');
    // Only "Key:   value kB" lines are amounts of memory; anything else is passed through.
    if (colon == std::string_view::npos || line.size() < 3 ||
        line.substr(line.size() - 3) != " kB") {
      out.append(line).push_back('\n');
      return;
    }
    auto key = line.substr(0, colon);
    if (machine_wide(key)) {
      out.append(line).push_back('\n');
      return;
    }
    std::uint64_t bytes = 0;
    for (const auto& [name, value] : replaced) {
      if (name == key) bytes = value;
    }
    // The kernel's show_val_kb(): the label padded to 16 columns, the value to 8.
    fmt::format_to(std::back_inserter(out), "{:<16}{:>8} kB\n", fmt::format("{}:", key),
                   kib(bytes));
  });
  return out;
}

std::string render_cpuinfo(const VeView& view, std::string_view host_cpuinfo) {
  // One block per CPU, each ended by an empty line.
  std::map<unsigned, std::string_view> blocks;
  std::string_view first;
  std::string_view rest = host_cpuinfo;
  while (!rest.empty()) {
    auto end = rest.find("\n\n");
    auto block = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
    std::optional<unsigned> number;
    for_each_line(block, [&](std::string_view line) {
      auto colon = line.find(':');
      if (colon == std::string_view::npos || trim(line.substr(0, colon)) != "processor") return;
      auto value = trim(line.substr(colon + 1));
      unsigned n = 0;
      if (std::from_chars(value.data(), value.data() + value.size(), n).ec == std::errc())
        number = n;
    });
    if (!number) continue;
    blocks.emplace(*number, block);
    if (first.empty()) first = block;
  }
  if (blocks.empty()) return std::string(host_cpuinfo);

  const auto n = view.cpus.size();
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    auto found = blocks.find(view.cpus[i]);
    // A CPU the host text does not describe (it went offline between the reads): its
    // neighbour's description is the best there is.
    std::string_view block = found == blocks.end() ? first : found->second;
    for_each_line(block, [&](std::string_view line) {
      auto colon = line.find(':');
      std::optional<std::uint64_t> value;
      if (colon != std::string_view::npos) {
        auto key = trim(line.substr(0, colon));
        if (key == "processor" || key == "core id" || key == "apicid" || key == "initial apicid") {
          value = i;
        } else if (key == "physical id") {
          value = 0;
        } else if (key == "siblings" || key == "cpu cores") {
          value = n;
        }
      }
      if (!value) {
        out.append(line).push_back('\n');
        return;
      }
      // The label keeps the host's tabs, so columns line up as in the real file.
      out.append(line.substr(0, colon));
      fmt::format_to(std::back_inserter(out), ": {}\n", *value);
    });
    out.push_back('\n');
  }
  return out;
}

std::string render_stat(const VeView& view, const cgroup::Stats& stats, std::string_view host_stat,
                        const std::optional<TaskCounts>& tasks, std::time_t now) {
  const std::size_t n = view.cpus.size();
  // Each shown CPU's CPU time in ns.
  std::vector<double> usage(n, 0.0);
  double total = static_cast<double>(stats.cpu_usage_ns);
  if (!stats.cpu_per_cpu_ns.empty()) {
    double per_cpu_sum = 0;
    for (auto ns : stats.cpu_per_cpu_ns) per_cpu_sum += static_cast<double>(ns);
    total = std::max(total, per_cpu_sum);
    double shown = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (view.cpus[i] < stats.cpu_per_cpu_ns.size())
        usage[i] = static_cast<double>(stats.cpu_per_cpu_ns[view.cpus[i]]);
      shown += usage[i];
    }
    // Time spent on CPUs the VE is not shown (its quota cut them, or its cpuset changed) was
    // still spent by the VE: it goes to the CPUs it is shown, so the lines add up to its usage.
    if (n > 0 && total > shown) {
      for (auto& u : usage) u += (total - shown) / static_cast<double>(n);
    }
  } else if (n > 0) {
    for (auto& u : usage) u = total / static_cast<double>(n);
  }
  const double user_ns = static_cast<double>(stats.cpu_user_ns);
  const double system_ns = static_cast<double>(stats.cpu_system_ns);
  const double user_share = user_ns + system_ns > 0 ? user_ns / (user_ns + system_ns) : 1.0;

  struct Line {
    std::uint64_t user, system, idle;
  };
  std::vector<Line> lines(n);
  std::uint64_t sum_user = 0, sum_system = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double used_s = usage[i] / 1e9;
    lines[i].user = ticks(used_s * user_share);
    lines[i].system = ticks(used_s * (1 - user_share));
    lines[i].idle = ticks(view.uptime_s - used_s);
    sum_user += lines[i].user;
    sum_system += lines[i].system;
  }

  // Fields: user nice system idle iowait irq softirq steal guest guest_nice.
  std::string out;
  fmt::format_to(std::back_inserter(out), "cpu  {} 0 {} {} 0 0 0 0 0 0\n", sum_user, sum_system,
                 ticks(view.idle_s));
  for (std::size_t i = 0; i < n; ++i) {
    fmt::format_to(std::back_inserter(out), "cpu{} {} 0 {} {} 0 0 0 0 0 0\n", i, lines[i].user,
                   lines[i].system, lines[i].idle);
  }
  for_each_line(host_stat, [&](std::string_view line) {
    if (starts_with(line, "cpu")) return;
    if (starts_with(line, "btime ")) {
      auto boot = static_cast<long long>(now) - static_cast<long long>(view.uptime_s);
      fmt::format_to(std::back_inserter(out), "btime {}\n", boot);
    } else if (tasks && starts_with(line, "processes ") && tasks->last_pid > 0) {
      // Forks since the VE booted: its pid namespace hands out pids in order from 1, so its
      // newest pid is the count (until pids wrap, which takes 4 million forks).
      fmt::format_to(std::back_inserter(out), "processes {}\n", tasks->last_pid);
    } else if (tasks && starts_with(line, "procs_running ")) {
      fmt::format_to(std::back_inserter(out), "procs_running {}\n",
                     std::max<std::uint64_t>(1, tasks->running));
    } else if (tasks && starts_with(line, "procs_blocked ")) {
      fmt::format_to(std::back_inserter(out), "procs_blocked {}\n", tasks->blocked);
    } else {
      out.append(line).push_back('\n');
    }
  });
  return out;
}

std::string render_uptime(const VeView& view) {
  return seconds_2(view.uptime_s) + " " + seconds_2(view.idle_s) + "\n";
}

std::string render_loadavg(const std::array<double, 3>& load, const TaskCounts& tasks) {
  std::string out;
  for (double l : load) {
    // The kernel rounds to the nearest hundredth (it adds FIXED_1/200 before splitting).
    auto hundredths = static_cast<std::uint64_t>(std::llround(std::max(0.0, l) * 100));
    fmt::format_to(std::back_inserter(out), "{}.{:02} ", hundredths / 100, hundredths % 100);
  }
  fmt::format_to(std::back_inserter(out), "{}/{} {}\n", std::max<std::uint64_t>(1, tasks.running),
                 std::max<std::uint64_t>(1, tasks.total), tasks.last_pid);
  return out;
}

std::string render_swaps(const VeView& view, std::string_view host_swaps) {
  std::string out = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
  if (view.swap_total == 0) return out;
  std::string name = "none";
  bool partition = true;
  long long priority = -2;
  bool header = true;
  for_each_line(host_swaps, [&](std::string_view line) {
    if (header) {
      header = false;
      return;
    }
    if (name != "none") return;
    // Filename Type Size Used Priority; the kernel escapes blanks in names, so fields split on
    // blanks.
    std::vector<std::string_view> f;
    std::size_t pos = 0;
    while (pos < line.size()) {
      auto start = line.find_first_not_of(" \t", pos);
      if (start == std::string_view::npos) break;
      auto end = line.find_first_of(" \t", start);
      f.push_back(line.substr(start, end - start));
      pos = end == std::string_view::npos ? line.size() : end;
    }
    if (f.size() < 5) return;
    name = std::string(f[0]);
    partition = f[1] == "partition";
    std::from_chars(f[4].data(), f[4].data() + f[4].size(), priority);
  });
  std::uint64_t size = kib(view.swap_total);
  std::uint64_t used = kib(view.swap_total - std::min(view.swap_free, view.swap_total));
  // mm/swapfile.c swap_show(): the name padded to 40 columns, tabs that line up the numbers.
  out += name;
  out.append(name.size() < 40 ? 40 - name.size() : 1, ' ');
  fmt::format_to(std::back_inserter(out), "{}\t{}\t{}{}\t{}{}\n",
                 partition ? "partition" : "file\t", size, size < 10000000 ? "\t" : "", used,
                 used < 10000000 ? "\t" : "", priority);
  return out;
}

std::string render_diskstats(const cgroup::Stats& stats, const DeviceNames& names) {
  std::string out;
  for (const auto& d : stats.io) {
    auto name = names.find({d.major, d.minor});
    if (name == names.end()) continue;
    // block/genhd.c diskstats_show(): major, minor, name, then reads (completed, merged,
    // sectors, ms), writes (the same four), in flight, io ms, weighted io ms, discards (four),
    // flushes (completed, ms).
    fmt::format_to(std::back_inserter(out),
                   "{:>4} {:>7} {} {} 0 {} 0 {} 0 {} 0 0 0 0 0 0 0 0 0 0\n", d.major, d.minor,
                   name->second, d.read_ios, d.read_bytes / 512, d.write_ios, d.write_bytes / 512);
  }
  return out;
}

std::string render_cpu_online(const VeView& view) {
  if (view.cpus.size() <= 1) return "0\n";
  return fmt::format("0-{}\n", view.cpus.size() - 1);
}

}  // namespace kapsel::procfs
