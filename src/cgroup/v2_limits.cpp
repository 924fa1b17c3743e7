// V2Manager's limits, statistics and OOM watching: the interface files of the unified
// hierarchy's memory, cpu, cpuset, pids and io controllers
// (Documentation/admin-guide/cgroup-v2.rst).
#include <sys/inotify.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "cgroup/cgroupfs.hpp"
#include "cgroup/v2_manager.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

std::string v2_value(std::uint64_t limit) {
  return limit == kUnlimited ? "max" : std::to_string(limit);
}

// io.max holds one line per throttled device, "MAJ:MIN rbps=N wbps=max riops=max wiops=max", and
// a write changes only the keys it names for the device it names; the old line (the kernel
// takes the form it shows), or "max" for every key, restores it.
FileWrite io_max_write(std::string_view option, const std::string& path, DeviceNumber device,
                       const std::string& settings) {
  FileWrite w{std::string(option), path, to_string(device) + " " + settings, {}, {}};
  w.undo = [device](std::string_view before) {
    for (std::string_view line : lines(before)) {
      auto fields = words(line);
      if (!fields.empty() && to_device(fields[0]) == device) return std::string(line);
    }
    return to_string(device) + " rbps=max wbps=max riops=max wiops=max";
  };
  return w;
}

// "MAJ:MIN key=N key=N ..." lines of io.stat.
Status read_io_stat(const std::string& path, std::vector<DeviceIo>& out) {
  auto text = read_optional(path);
  if (!text) return tl::unexpected(text.error());
  if (!*text) return {};
  std::map<DeviceNumber, DeviceIo> io;
  for (std::string_view line : lines(**text)) {
    auto fields = words(line);
    auto device = to_device(fields.front());
    if (!device) return unexpected_contents(path, line);
    DeviceIo d;
    d.major = device->major;
    d.minor = device->minor;
    for (size_t i = 1; i < fields.size(); ++i) {
      std::string_view field = fields[i];
      size_t eq = field.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view key = field.substr(0, eq);
      // Other keys (dbytes, dios, cost.*) are left alone; their values need not be counters.
      std::uint64_t* slot = key == "rbytes"   ? &d.read_bytes
                            : key == "wbytes" ? &d.write_bytes
                            : key == "rios"   ? &d.read_ios
                            : key == "wios"   ? &d.write_ios
                                              : nullptr;
      if (!slot) continue;
      auto v = to_number(field.substr(eq + 1));
      if (!v) return unexpected_contents(path, line);
      *slot = *v;
    }
    io[*device] = d;
  }
  for (const auto& [device, d] : io) {
    if (d.read_bytes || d.write_bytes || d.read_ios || d.write_ios) out.push_back(d);
  }
  return {};
}

}  // namespace

Status V2Manager::check(const Limits& l) const {
  if (auto st = validate(l); !st) return st;
  std::string d = nearest_existing(mount_, parent_);
  auto text = read_optional(d + "/cgroup.controllers");
  if (!text) return tl::unexpected(text.error().context("checking limits"));
  auto offered = words(text->value_or(""));
  auto need = [&](std::string_view option, std::string_view controller) -> Status {
    if (std::find(offered.begin(), offered.end(), controller) != offered.end()) return {};
    std::string list;
    for (const auto& c : offered) list += (list.empty() ? "" : " ") + c;
    return fail(ErrorKind::usage, std::string(option) + ": the " + std::string(controller) +
                                      " controller is not available in " + d +
                                      " (cgroup.controllers: " + list + ")");
  };

  if (l.memory)
    if (auto st = need(kMemoryOption, "memory"); !st) return st;
  if (l.memory_swap) {
    if (auto st = need(kMemorySwapOption, "memory"); !st) return st;
    // memory.swap.max exists in every cgroup but the root where the kernel accounts swap; the
    // root has none, so a parent not yet made cannot tell.
    if (d != mount_ && !fs::exists(d + "/memory.swap.max")) {
      return fail(ErrorKind::usage, std::string(kMemorySwapOption) +
                                        ": this host has no swap accounting (memory.swap.max is "
                                        "missing in " +
                                        d + ")");
    }
  }
  if (l.cpus)
    if (auto st = need(kCpusOption, "cpu"); !st) return st;
  if (l.cpu_shares || l.cpu_weight)
    if (auto st = need(l.cpu_shares ? kCpuSharesOption : kCpuWeightOption, "cpu"); !st) return st;
  if (l.cpuset) {
    if (auto st = need(kCpusetOption, "cpuset"); !st) return st;
    auto effective = read_optional(d + "/cpuset.cpus.effective");
    if (!effective) return tl::unexpected(effective.error().context(std::string(kCpusetOption)));
    if (*effective) {
      if (auto st = check_cpuset_within(*l.cpuset, **effective, d); !st) return st;
    }
  }
  if (l.pids)
    if (auto st = need(kPidsOption, "pids"); !st) return st;
  if (l.blkio_weight)
    if (auto st = need(kBlkioWeightOption, "io"); !st) return st;
  for (const Throttle& t : throttles(l)) {
    if (!t.rates->empty())
      if (auto st = need(t.option, "io"); !st) return st;
  }
  return {};
}

Result<std::vector<FileWrite>> V2Manager::plan(const std::string& ve, const Limits& l) const {
  KAPSEL_TRY(check_ve_name(ve), "planning limits");
  std::string d = dir(ve);
  if (!fs::is_dir(d)) return fail(ErrorKind::not_found, "VE " + ve + " has no cgroup " + d);
  std::vector<FileWrite> writes;

  if (l.memory || l.memory_swap) {
    auto current = read_optional(d + "/memory.max");
    if (!current) return tl::unexpected(current.error());
    if (!*current) {
      return fail(ErrorKind::usage, std::string(l.memory ? kMemoryOption : kMemorySwapOption) +
                                        ": the memory controller is not enabled for " + d +
                                        " (no memory.max)");
    }
    std::uint64_t memory_now = v2_limit(**current).value_or(kUnlimited);
    std::uint64_t memory = l.memory.value_or(memory_now);
    if (l.memory)
      writes.push_back({std::string(kMemoryOption), d + "/memory.max", v2_value(memory), {}, {}});

    // memory plus swap, in Docker's sense, to keep or to set.
    auto swap_now = read_optional(d + "/memory.swap.max");
    if (!swap_now) return tl::unexpected(swap_now.error());
    std::optional<std::uint64_t> total = l.memory_swap;
    if (!total && *swap_now && memory_now != kUnlimited) {
      std::uint64_t swap = v2_limit(**swap_now).value_or(kUnlimited);
      if (swap != kUnlimited) total = memory_now + swap;
    }
    if (total) {
      if (!*swap_now) {
        return fail(ErrorKind::usage, std::string(kMemorySwapOption) +
                                          ": this host has no swap accounting (memory.swap.max "
                                          "is missing in " +
                                          d + ")");
      }
      std::string swap;
      if (*total == kUnlimited) {
        swap = "max";
      } else if (memory == kUnlimited) {
        return fail(ErrorKind::usage, std::string(kMemorySwapOption) +
                                          ": a limit on memory plus swap needs a " +
                                          std::string(kMemoryOption) + " limit as well");
      } else if (*total < memory) {
        // Given explicitly, validate() has compared them; kept from before, the new memory limit
        // is what outgrew it.
        if (l.memory_swap) {
          return fail(ErrorKind::usage, std::string(kMemorySwapOption) + ": " +
                                            format_bytes(*total) + " is less than the memory " +
                                            "limit " + format_bytes(memory) +
                                            "; it counts memory plus swap");
        }
        return fail(ErrorKind::usage,
                    std::string(kMemoryOption) + ": the new limit " + format_bytes(memory) +
                        " is above the memory+swap limit " + format_bytes(*total) +
                        " in force; raise " + std::string(kMemorySwapOption) + " as well");
      } else {
        swap = std::to_string(*total - memory);
      }
      writes.push_back({std::string(l.memory_swap ? kMemorySwapOption : kMemoryOption),
                        d + "/memory.swap.max",
                        swap,
                        {},
                        {}});
    }
  }

  if (l.cpus) {
    std::string quota = "max";
    if (*l.cpus > 0)
      quota = std::to_string(std::llround(*l.cpus * static_cast<double>(kCpuPeriodUs)));
    writes.push_back({std::string(kCpusOption),
                      d + "/cpu.max",
                      quota + " " + std::to_string(kCpuPeriodUs),
                      {},
                      {}});
  }
  if (l.cpu_shares || l.cpu_weight) {
    auto option = l.cpu_weight ? kCpuWeightOption : kCpuSharesOption;
    std::uint64_t weight = l.cpu_weight ? *l.cpu_weight : shares_to_weight(*l.cpu_shares);
    writes.push_back({std::string(option), d + "/cpu.weight", std::to_string(weight), {}, {}});
  }
  if (l.cpuset) {
    // "" (written as a newline) makes the cgroup use its parent's CPUs again.
    writes.push_back({std::string(kCpusetOption), d + "/cpuset.cpus", *l.cpuset, {}, {}});
  }
  if (l.pids) {
    writes.push_back({std::string(kPidsOption), d + "/pids.max", v2_value(*l.pids), {}, {}});
  }
  if (l.blkio_weight) {
    // BFQ's own weight takes blkio's scale as it is; without BFQ, io.weight is the io.cost
    // controller's, on a scale of 1..10000.
    if (fs::exists(d + "/io.bfq.weight")) {
      writes.push_back({std::string(kBlkioWeightOption),
                        d + "/io.bfq.weight",
                        "default " + std::to_string(*l.blkio_weight),
                        {},
                        {}});
    } else if (fs::exists(d + "/io.weight")) {
      writes.push_back({std::string(kBlkioWeightOption),
                        d + "/io.weight",
                        "default " + std::to_string(blkio_weight_to_io_weight(*l.blkio_weight)),
                        {},
                        {}});
    } else {
      return fail(ErrorKind::usage, std::string(kBlkioWeightOption) +
                                        ": this host has no io.bfq.weight or io.weight in " + d +
                                        "; the BFQ I/O scheduler or the io.cost controller is "
                                        "needed");
    }
  }

  // One io.max line per device, with every key Limits sets for it.
  std::map<DeviceNumber, std::pair<std::string_view, std::string>> per_device;
  for (const Throttle& t : throttles(l)) {
    for (const auto& r : *t.rates) {
      auto& [first_option, settings] = per_device[DeviceNumber{r.major, r.minor}];
      if (settings.empty()) first_option = t.option;
      settings += (settings.empty() ? "" : " ") + std::string(t.v2_key) + "=" +
                  (r.rate == 0 ? "max" : std::to_string(r.rate));
    }
  }
  for (const auto& [device, entry] : per_device)
    writes.push_back(io_max_write(entry.first, d + "/io.max", device, entry.second));
  return writes;
}

Status V2Manager::apply(const std::string& ve, const Limits& limits) {
  if (auto st = check(limits); !st) return st;
  auto writes = plan(ve, limits);
  if (!writes) return tl::unexpected(writes.error());
  return write_all_or_restore(*writes);
}

Result<Stats> V2Manager::stats(const std::string& ve) const {
  KAPSEL_TRY(check_ve_name(ve), "reading statistics");
  std::string d = dir(ve);
  if (!fs::is_dir(d)) return fail(ErrorKind::not_found, "VE " + ve + " has no cgroup " + d);
  std::string context = "reading statistics of VE " + ve;
  Stats s;

  auto cpu = read_optional(d + "/cpu.stat");
  if (!cpu) return tl::unexpected(cpu.error().context(context));
  if (*cpu) {
    // Microseconds in v2, nanoseconds in Stats.
    s.cpu_usage_ns = keyed_value(**cpu, "usage_usec").value_or(0) * 1000;
    s.cpu_user_ns = keyed_value(**cpu, "user_usec").value_or(0) * 1000;
    s.cpu_system_ns = keyed_value(**cpu, "system_usec").value_or(0) * 1000;
    s.cpu_periods = keyed_value(**cpu, "nr_periods").value_or(0);
    s.cpu_throttled_periods = keyed_value(**cpu, "nr_throttled").value_or(0);
    s.cpu_throttled_ns = keyed_value(**cpu, "throttled_usec").value_or(0) * 1000;
  }
  auto cpu_max = read_optional(d + "/cpu.max");
  if (!cpu_max) return tl::unexpected(cpu_max.error().context(context));
  if (*cpu_max) {
    auto fields = words(**cpu_max);
    if (fields.size() != 2) KAPSEL_TRY(unexpected_contents(d + "/cpu.max", **cpu_max), context);
    auto quota = to_number(fields[0]);  // "max": no quota
    auto period = to_number(fields[1]);
    if (quota && period && *period > 0)
      s.cpu_quota = static_cast<double>(*quota) / static_cast<double>(*period);
  }
  auto cpus = read_optional(d + "/cpuset.cpus.effective");
  if (!cpus) return tl::unexpected(cpus.error().context(context));
  if (*cpus) {
    auto list = parse_cpu_list(**cpus);
    if (!list) KAPSEL_TRY(unexpected_contents(d + "/cpuset.cpus.effective", **cpus), context);
    s.cpuset = list.value_or(std::vector<unsigned>{});
  }

  KAPSEL_TRY(read_number(d, "memory.current", s.memory_usage), context);
  KAPSEL_TRY(read_number(d, "memory.max", s.memory_limit, v2_limit), context);
  KAPSEL_TRY(read_number(d, "memory.peak", s.memory_max_usage), context);  // Linux 5.19
  auto memory = read_optional(d + "/memory.stat");
  if (!memory) return tl::unexpected(memory.error().context(context));
  if (*memory) {
    // v2's memory.stat is hierarchical already.
    s.memory_cache = keyed_value(**memory, "file").value_or(0);
    s.memory_rss = keyed_value(**memory, "anon").value_or(0);
    s.memory_shmem = keyed_value(**memory, "shmem").value_or(0);
  }
  KAPSEL_TRY(read_number(d, "memory.swap.current", s.swap_usage), context);
  KAPSEL_TRY(read_number(d, "memory.swap.max", s.swap_limit, v2_limit), context);
  auto events = read_optional(d + "/memory.events");
  if (!events) return tl::unexpected(events.error().context(context));
  if (*events) s.oom_kills = keyed_value(**events, "oom_kill").value_or(0);

  KAPSEL_TRY(read_number(d, "pids.current", s.pids_current), context);
  KAPSEL_TRY(read_number(d, "pids.max", s.pids_limit, v2_limit), context);
  KAPSEL_TRY(read_io_stat(d + "/io.stat", s.io), context);
  return s;
}

Result<UniqueFd> V2Manager::watch_oom(const std::string& ve) {
  std::string context = "watching VE " + ve + " for OOM kills";
  KAPSEL_TRY(check_ve_name(ve), context);
  std::string events = dir(ve) + "/memory.events";
  UniqueFd fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!fd) return errno_fail(context + ": inotify_init1");
  // cgroupfs generates IN_MODIFY on memory.events itself when a counter changes (kernfs_notify);
  // nothing writes to the file.
  if (::inotify_add_watch(fd.get(), events.c_str(), IN_MODIFY) < 0)
    return errno_fail(context + ": watching " + events);
  return fd;
}

std::string V2Manager::memory_cgroup_path(const std::string& ve) const {
  if (!check_ve_name(ve)) return {};
  std::string root = mount_root_;
  while (!root.empty() && root.back() == '/') root.pop_back();
  return root + "/" + parent_ + "/" + ve;
}

}  // namespace kapsel::cgroup
