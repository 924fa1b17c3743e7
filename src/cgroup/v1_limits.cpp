// V1Manager's limits, statistics and OOM watching: the interface files of the legacy memory,
// cpu, cpuacct, cpuset, pids and blkio controllers (Documentation/admin-guide/cgroup-v1/).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "cgroup/cgroupfs.hpp"
#include "cgroup/v1_manager.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

// v1 writes "no limit" as -1 (memory.limit_in_bytes, memory.memsw.limit_in_bytes).
std::string v1_value(std::uint64_t limit) {
  return limit == kUnlimited ? "-1" : std::to_string(limit);
}

std::string refused(int code) {
  return std::string("(the kernel refused: ") + std::strerror(code) + ")";
}

// The value of a limit file, kUnlimited when it cannot be read: only used to explain a refusal.
std::uint64_t read_limit(const std::string& path) {
  auto text = fs::read_file(path);
  if (!text) return kUnlimited;
  return v1_limit(*text).value_or(kUnlimited);
}

// The kernel's reasons for refusing a memory limit: EBUSY when it could not reclaim enough to get
// below the new limit (nothing left to reclaim: anonymous memory without swap, or locked),
// EINVAL when the limit would be above memsw's (memsw counts memory plus swap).
FileWrite memory_write(const std::string& dir, std::uint64_t limit) {
  FileWrite w{std::string(kMemoryOption), dir + "/memory.limit_in_bytes", v1_value(limit), {}, {}};
  w.explain = [dir, limit](int code) -> std::string {
    if (code == EBUSY) {
      std::uint64_t used = read_limit(dir + "/memory.usage_in_bytes");
      return "the VE already uses " + format_bytes(used) + ", more than the new limit " +
             format_bytes(limit) + " " + refused(code);
    }
    std::uint64_t memsw = read_limit(dir + "/memory.memsw.limit_in_bytes");
    if (code == EINVAL && memsw != kUnlimited && limit > memsw) {
      return "the new limit " + format_bytes(limit) + " is above the memory+swap limit " +
             format_bytes(memsw) + " in force; raise " + std::string(kMemorySwapOption) +
             " as well " + refused(code);
    }
    return std::string();  // no better reason than the kernel's
  };
  return w;
}

FileWrite memsw_write(const std::string& dir, std::uint64_t limit) {
  FileWrite w{std::string(kMemorySwapOption),
              dir + "/memory.memsw.limit_in_bytes",
              v1_value(limit),
              {},
              {}};
  w.explain = [dir, limit](int code) -> std::string {
    if (code == EBUSY) {
      std::uint64_t used = read_limit(dir + "/memory.memsw.usage_in_bytes");
      return "the VE already uses " + format_bytes(used) +
             " of memory and swap, more than the new limit " + format_bytes(limit) + " " +
             refused(code);
    }
    std::uint64_t memory = read_limit(dir + "/memory.limit_in_bytes");
    if (code == EINVAL && limit < memory) {
      return "the new limit " + format_bytes(limit) + " is below the memory limit " +
             format_bytes(memory) + " in force; it counts memory plus swap " + refused(code);
    }
    return std::string();  // no better reason than the kernel's
  };
  return w;
}

// blkio.throttle.*_device hold one "MAJ:MIN RATE" line per throttled device, and a write changes
// only the device it names; its old rate, or 0 (no throttle), restores it.
FileWrite throttle_write(std::string_view option, const std::string& path, const DeviceRate& r) {
  DeviceNumber device{r.major, r.minor};
  FileWrite w{std::string(option), path, to_string(device) + " " + std::to_string(r.rate), {}, {}};
  w.undo = [device](std::string_view before) {
    for (std::string_view line : lines(before)) {
      auto fields = words(line);
      if (fields.size() == 2 && to_device(fields[0]) == device)
        return to_string(device) + " " + fields[1];
    }
    return to_string(device) + " 0";
  };
  return w;
}

// blkio.throttle.io_service_bytes(_recursive) and io_serviced(_recursive): "MAJ:MIN Op N" lines
// for Read, Write, Sync, Async, Discard and Total, and a last "Total N" line.
Status read_blkio(const std::string& path, std::map<DeviceNumber, DeviceIo>& io, bool bytes) {
  auto text = read_optional(path);
  if (!text) return tl::unexpected(text.error());
  if (!*text) return {};
  for (std::string_view line : lines(**text)) {
    auto fields = words(line);
    if (fields.size() == 2 && fields[0] == "Total") continue;
    auto device = fields.size() == 3 ? to_device(fields[0]) : std::nullopt;
    auto value = fields.size() == 3 ? to_number(fields[2]) : std::nullopt;
    if (!device || !value) return unexpected_contents(path, line);
    DeviceIo& d = io[*device];
    d.major = device->major;
    d.minor = device->minor;
    if (fields[1] == "Read") (bytes ? d.read_bytes : d.read_ios) = *value;
    if (fields[1] == "Write") (bytes ? d.write_bytes : d.write_ios) = *value;
  }
  return {};
}

}  // namespace

const Hierarchy* V1Manager::find(std::string_view controller) const {
  auto it = std::find_if(hierarchies_.begin(), hierarchies_.end(),
                         [&](const Hierarchy& h) { return h.has(controller); });
  return it == hierarchies_.end() ? nullptr : &*it;
}

Result<const Hierarchy*> V1Manager::need(std::string_view option,
                                         std::string_view controller) const {
  if (const Hierarchy* h = find(controller)) return h;
  return fail(ErrorKind::usage, std::string(option) + ": this host has no " +
                                    std::string(controller) +
                                    " controller (no cgroup v1 hierarchy of it is mounted)");
}

Result<std::string> V1Manager::ve_dir(const std::string& ve, std::string_view option,
                                      std::string_view controller) const {
  auto h = need(option, controller);
  if (!h) return tl::unexpected(h.error());
  std::string d = dir(**h, ve);
  if (!fs::is_dir(d)) return fail(ErrorKind::not_found, "VE " + ve + " has no cgroup " + d);
  return d;
}

Status V1Manager::check(const Limits& l) const {
  if (auto st = validate(l); !st) return st;
  // Where the VE's cgroups will be: the files the kernel gives every cgroup are there, or in the
  // nearest ancestor before the first VE has made the parent.
  auto probe_dir = [this](const Hierarchy& h) { return nearest_existing(h.mount, parent_); };

  if (l.memory || l.memory_swap) {
    auto h = need(l.memory ? kMemoryOption : kMemorySwapOption, "memory");
    if (!h) return tl::unexpected(h.error());
    std::string d = probe_dir(**h);
    if (l.memory_swap && !fs::exists(d + "/memory.memsw.limit_in_bytes")) {
      return fail(ErrorKind::usage,
                  std::string(kMemorySwapOption) +
                      ": this host has no swap accounting (memory.memsw.limit_in_bytes is "
                      "missing in " +
                      d + ")");
    }
  }
  if (l.cpus || l.cpu_shares || l.cpu_weight) {
    auto option = l.cpus ? kCpusOption : l.cpu_shares ? kCpuSharesOption : kCpuWeightOption;
    if (auto h = need(option, "cpu"); !h) return tl::unexpected(h.error());
  }
  if (l.cpuset) {
    auto h = need(kCpusetOption, "cpuset");
    if (!h) return tl::unexpected(h.error());
    std::string d = probe_dir(**h);
    auto text = read_optional(d + "/cpuset.effective_cpus");
    if (text && !*text) text = read_optional(d + "/cpuset.cpus");
    if (!text) return tl::unexpected(text.error().context(std::string(kCpusetOption)));
    if (*text) {
      if (auto st = check_cpuset_within(*l.cpuset, **text, d); !st) return st;
    }
  }
  if (l.pids) {
    if (auto h = need(kPidsOption, "pids"); !h) return tl::unexpected(h.error());
  }
  if (l.blkio_weight) {
    auto h = need(kBlkioWeightOption, "blkio");
    if (!h) return tl::unexpected(h.error());
    std::string d = probe_dir(**h);
    // The root cgroup has no weight; BFQ's other files there show that children get one.
    bool weight = fs::exists(d + "/blkio.bfq.weight") || fs::exists(d + "/blkio.weight") ||
                  (d == (*h)->mount && fs::exists(d + "/blkio.bfq.io_service_bytes"));
    if (!weight) {
      return fail(ErrorKind::usage,
                  std::string(kBlkioWeightOption) +
                      ": this host has no BFQ or CFQ weight file (blkio.bfq.weight or "
                      "blkio.weight) in " +
                      d + "; the BFQ I/O scheduler must be available");
    }
  }
  for (const Throttle& t : throttles(l)) {
    if (t.rates->empty()) continue;
    auto h = need(t.option, "blkio");
    if (!h) return tl::unexpected(h.error());
    std::string d = probe_dir(**h);
    if (!fs::exists(d + "/" + t.v1_file)) {
      return fail(ErrorKind::usage, std::string(t.option) + ": this host has no I/O throttling (" +
                                        t.v1_file + " is missing in " + d + ")");
    }
  }
  return {};
}

Result<std::vector<FileWrite>> V1Manager::plan(const std::string& ve, const Limits& l) const {
  KAPSEL_TRY(check_ve_name(ve), "planning limits");
  std::vector<FileWrite> writes;

  if (l.memory || l.memory_swap) {
    auto d = ve_dir(ve, l.memory ? kMemoryOption : kMemorySwapOption, "memory");
    if (!d) return tl::unexpected(d.error());
    if (l.memory && l.memory_swap) {
      // The kernel keeps memsw >= memory at every moment. Raising memsw first works whenever
      // the new memsw is at least the current memory limit; otherwise the new memsw is below
      // that, so the new memory limit is too, and lowering memory first works.
      auto current = read_optional(*d + "/memory.limit_in_bytes");
      if (!current) return tl::unexpected(current.error());
      std::uint64_t now = *current ? v1_limit(**current).value_or(kUnlimited) : kUnlimited;
      if (*l.memory_swap >= now) {
        writes.push_back(memsw_write(*d, *l.memory_swap));
        writes.push_back(memory_write(*d, *l.memory));
      } else {
        writes.push_back(memory_write(*d, *l.memory));
        writes.push_back(memsw_write(*d, *l.memory_swap));
      }
    } else if (l.memory) {
      writes.push_back(memory_write(*d, *l.memory));
    } else {
      writes.push_back(memsw_write(*d, *l.memory_swap));
    }
  }

  if (l.cpus) {
    auto d = ve_dir(ve, kCpusOption, "cpu");
    if (!d) return tl::unexpected(d.error());
    std::string quota = "-1";
    if (*l.cpus > 0)
      quota = std::to_string(std::llround(*l.cpus * static_cast<double>(kCpuPeriodUs)));
    writes.push_back({std::string(kCpusOption),
                      *d + "/cpu.cfs_period_us",
                      std::to_string(kCpuPeriodUs),
                      {},
                      {}});
    writes.push_back({std::string(kCpusOption), *d + "/cpu.cfs_quota_us", quota, {}, {}});
  }
  if (l.cpu_shares || l.cpu_weight) {
    auto option = l.cpu_shares ? kCpuSharesOption : kCpuWeightOption;
    auto d = ve_dir(ve, option, "cpu");
    if (!d) return tl::unexpected(d.error());
    std::uint64_t shares = l.cpu_shares ? *l.cpu_shares : weight_to_shares(*l.cpu_weight);
    writes.push_back({std::string(option), *d + "/cpu.shares", std::to_string(shares), {}, {}});
  }

  if (l.cpuset) {
    auto h = need(kCpusetOption, "cpuset");
    if (!h) return tl::unexpected(h.error());
    auto d = ve_dir(ve, kCpusetOption, "cpuset");
    if (!d) return tl::unexpected(d.error());
    std::string cpus = *l.cpuset;
    if (cpus.empty()) {
      // v1 has no "inherit": a cpuset cgroup with tasks must list CPUs, so "all of the
      // parent's" is the parent's list as it is now.
      std::string parent_dir = (*h)->mount + "/" + parent_;
      auto text = fs::read_file(parent_dir + "/cpuset.cpus");
      if (!text) return tl::unexpected(text.error().context(std::string(kCpusetOption)));
      cpus = std::string(trim(*text));
    }
    writes.push_back({std::string(kCpusetOption), *d + "/cpuset.cpus", cpus, {}, {}});
  }

  if (l.pids) {
    auto d = ve_dir(ve, kPidsOption, "pids");
    if (!d) return tl::unexpected(d.error());
    std::string value = *l.pids == kUnlimited ? "max" : std::to_string(*l.pids);
    writes.push_back({std::string(kPidsOption), *d + "/pids.max", value, {}, {}});
  }

  if (l.blkio_weight) {
    auto d = ve_dir(ve, kBlkioWeightOption, "blkio");
    if (!d) return tl::unexpected(d.error());
    // BFQ's file where BFQ is loaded, CFQ's on kernels before 5.0; both take 10..1000.
    std::string file = *d + "/blkio.bfq.weight";
    if (!fs::exists(file)) file = *d + "/blkio.weight";
    if (!fs::exists(file)) {
      return fail(ErrorKind::usage, std::string(kBlkioWeightOption) +
                                        ": this host has no BFQ or CFQ weight file "
                                        "(blkio.bfq.weight or blkio.weight) in " +
                                        *d + "; the BFQ I/O scheduler must be available");
    }
    writes.push_back(
        {std::string(kBlkioWeightOption), file, std::to_string(*l.blkio_weight), {}, {}});
  }

  for (const Throttle& t : throttles(l)) {
    if (t.rates->empty()) continue;
    auto d = ve_dir(ve, t.option, "blkio");
    if (!d) return tl::unexpected(d.error());
    for (const auto& r : *t.rates)
      writes.push_back(throttle_write(t.option, *d + "/" + t.v1_file, r));
  }
  return writes;
}

Status V1Manager::apply(const std::string& ve, const Limits& limits) {
  if (auto st = check(limits); !st) return st;
  auto writes = plan(ve, limits);
  if (!writes) return tl::unexpected(writes.error());
  return write_all_or_restore(*writes);
}

Result<Stats> V1Manager::stats(const std::string& ve) const {
  KAPSEL_TRY(check_ve_name(ve), "reading statistics");
  if (!exists(ve)) return fail(ErrorKind::not_found, "VE " + ve + " has no cgroup");
  Stats s;
  // A hierarchy the host lacks, or a VE cgroup missing in one, leaves its counters at 0.
  auto dir_of = [&](std::string_view controller) -> std::optional<std::string> {
    const Hierarchy* h = find(controller);
    if (!h || !fs::is_dir(dir(*h, ve))) return std::nullopt;
    return dir(*h, ve);
  };
  auto context = "reading statistics of VE " + ve;

  if (auto d = dir_of("cpuacct")) {
    KAPSEL_TRY(read_number(*d, "cpuacct.usage", s.cpu_usage_ns), context);
    KAPSEL_TRY(read_number(*d, "cpuacct.usage_user", s.cpu_user_ns), context);
    KAPSEL_TRY(read_number(*d, "cpuacct.usage_sys", s.cpu_system_ns), context);
    auto percpu = read_optional(*d + "/cpuacct.usage_percpu");
    if (!percpu) return tl::unexpected(percpu.error().context(context));
    if (*percpu) {
      for (const auto& w : words(**percpu)) {
        auto v = to_number(w);
        if (!v) KAPSEL_TRY(unexpected_contents(*d + "/cpuacct.usage_percpu", **percpu), context);
        s.cpu_per_cpu_ns.push_back(v.value_or(0));
      }
    }
  }
  if (auto d = dir_of("cpu")) {
    auto stat = read_optional(*d + "/cpu.stat");
    if (!stat) return tl::unexpected(stat.error().context(context));
    if (*stat) {
      s.cpu_periods = keyed_value(**stat, "nr_periods").value_or(0);
      s.cpu_throttled_periods = keyed_value(**stat, "nr_throttled").value_or(0);
      s.cpu_throttled_ns = keyed_value(**stat, "throttled_time").value_or(0);
    }
    auto quota = read_optional(*d + "/cpu.cfs_quota_us");
    auto period = read_optional(*d + "/cpu.cfs_period_us");
    if (!quota) return tl::unexpected(quota.error().context(context));
    if (!period) return tl::unexpected(period.error().context(context));
    if (*quota && *period) {
      // -1 (no quota) is not a number to to_number, and leaves the quota at 0.
      auto q = to_number(**quota);
      auto p = to_number(**period);
      if (q && p && *p > 0) s.cpu_quota = static_cast<double>(*q) / static_cast<double>(*p);
    }
  }
  if (auto d = dir_of("cpuset")) {
    auto cpus = read_optional(*d + "/cpuset.effective_cpus");
    if (cpus && !*cpus) cpus = read_optional(*d + "/cpuset.cpus");
    if (!cpus) return tl::unexpected(cpus.error().context(context));
    if (*cpus) {
      auto list = parse_cpu_list(**cpus);
      if (!list) KAPSEL_TRY(unexpected_contents(*d + "/cpuset.effective_cpus", **cpus), context);
      s.cpuset = list.value_or(std::vector<unsigned>{});
    }
  }
  if (auto d = dir_of("memory")) {
    KAPSEL_TRY(read_number(*d, "memory.usage_in_bytes", s.memory_usage), context);
    KAPSEL_TRY(read_number(*d, "memory.limit_in_bytes", s.memory_limit, v1_limit), context);
    KAPSEL_TRY(read_number(*d, "memory.max_usage_in_bytes", s.memory_max_usage), context);
    auto stat = read_optional(*d + "/memory.stat");
    if (!stat) return tl::unexpected(stat.error().context(context));
    if (*stat) {
      // The total_ lines cover nested cgroups too.
      s.memory_cache = keyed_value(**stat, "total_cache").value_or(0);
      s.memory_rss = keyed_value(**stat, "total_rss").value_or(0);
      s.memory_shmem = keyed_value(**stat, "total_shmem").value_or(0);
    }
    std::uint64_t memsw_usage = 0, memsw_limit = kUnlimited;
    KAPSEL_TRY(read_number(*d, "memory.memsw.usage_in_bytes", memsw_usage), context);
    KAPSEL_TRY(read_number(*d, "memory.memsw.limit_in_bytes", memsw_limit, v1_limit), context);
    // memsw counts memory plus swap; the two are sampled one after the other, so memory may
    // have grown in between: never below 0.
    s.swap_usage = memsw_usage > s.memory_usage ? memsw_usage - s.memory_usage : 0;
    if (memsw_limit != kUnlimited && s.memory_limit != kUnlimited)
      s.swap_limit = memsw_limit > s.memory_limit ? memsw_limit - s.memory_limit : 0;
    auto oom = read_optional(*d + "/memory.oom_control");
    if (!oom) return tl::unexpected(oom.error().context(context));
    if (*oom) s.oom_kills = keyed_value(**oom, "oom_kill").value_or(0);
  }
  if (auto d = dir_of("pids")) {
    KAPSEL_TRY(read_number(*d, "pids.current", s.pids_current), context);
    KAPSEL_TRY(read_number(*d, "pids.max", s.pids_limit, v2_limit), context);
  }
  if (auto d = dir_of("blkio")) {
    std::map<DeviceNumber, DeviceIo> io;
    // The _recursive files include nested cgroups; older kernels have only the flat ones.
    for (bool bytes : {true, false}) {
      std::string base =
          *d + (bytes ? "/blkio.throttle.io_service_bytes" : "/blkio.throttle.io_serviced");
      std::string file = fs::exists(base + "_recursive") ? base + "_recursive" : base;
      KAPSEL_TRY(read_blkio(file, io, bytes), context);
    }
    for (const auto& [device, counters] : io) {
      if (counters.read_bytes || counters.write_bytes || counters.read_ios || counters.write_ios)
        s.io.push_back(counters);
    }
  }
  return s;
}

Result<UniqueFd> V1Manager::watch_oom(const std::string& ve) {
  std::string context = "watching VE " + ve + " for OOM kills";
  KAPSEL_TRY(check_ve_name(ve), context);
  auto d = ve_dir(ve, kMemoryOption, "memory");
  if (!d) return tl::unexpected(d.error().context(context));
  UniqueFd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event) return errno_fail(context + ": eventfd");
  std::string control = *d + "/memory.oom_control";
  UniqueFd oom(::open(control.c_str(), O_RDONLY | O_CLOEXEC));
  if (!oom) return errno_fail(context + ": opening " + control);
  // The registration keeps its own references (the eventfd's context and the cgroup), not the
  // memory.oom_control file, so that descriptor may close when this returns; closing the eventfd
  // ends the registration (mm/memcontrol-v1.c, memcg_write_event_control).
  std::string line = std::to_string(event.get()) + " " + std::to_string(oom.get());
  KAPSEL_TRY(write_value(*d + "/cgroup.event_control", line), context);
  return event;
}

std::string V1Manager::memory_cgroup_path(const std::string& ve) const {
  const Hierarchy* h = find("memory");
  if (!h || !check_ve_name(ve)) return {};
  std::string root = h->root;
  while (!root.empty() && root.back() == '/') root.pop_back();
  return root + "/" + parent_ + "/" + ve;
}

}  // namespace kapsel::cgroup
