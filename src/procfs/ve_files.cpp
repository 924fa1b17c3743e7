#include "procfs/ve_files.hpp"

#include <dirent.h>

#include <algorithm>
#include <charconv>
#include <ctime>

#include "common/fs.hpp"
#include "common/process.hpp"
#include "procfs/procfs_service.hpp"

namespace kapsel::procfs {

const std::array<VirtualFile, 8> kVirtualFiles = {{
    {"meminfo", "/proc/meminfo"},
    {"cpuinfo", "/proc/cpuinfo"},
    {"stat", "/proc/stat"},
    {"uptime", "/proc/uptime"},
    {"loadavg", "/proc/loadavg"},
    {"swaps", "/proc/swaps"},
    {"diskstats", "/proc/diskstats"},
    {"cpu_online", "/sys/devices/system/cpu/online"},
}};

namespace {

// Indices into kVirtualFiles.
enum FileIndex : std::size_t {
  kMeminfo,
  kCpuinfo,
  kStat,
  kUptime,
  kLoadavg,
  kSwaps,
  kDiskstats,
  kCpuOnline
};

std::vector<std::string> list_names(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (auto* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(d);
  return names;
}

// Seconds since the VE's init started: from the start time in its state (no file to read), or
// from /proc while the state has the pid only; 0 while init is not there yet (starting).
double ve_uptime(const store::RuntimeState& state, double host_uptime_s) {
  if (state.init.pid <= 0) return 0;
  if (state.init.start_time > 0) {
    long hz = proc::clock_ticks();
    double started =
        static_cast<double>(state.init.start_time) / static_cast<double>(hz > 0 ? hz : 100);
    return std::max(0.0, host_uptime_s - started);
  }
  return init_age_seconds(state.init.pid, host_uptime_s).value_or(0.0);
}

}  // namespace

VeFiles::VeFiles(store::Paths paths) : store_(std::move(paths)) {}

std::optional<store::RuntimeState> VeFiles::state_of(const std::string& ve) const {
  // The name comes from a lookup in the file system: it becomes part of a path.
  if (!store::validate_name(ve)) return std::nullopt;
  auto state = store_.load_state(ve);
  if (!state || !*state) return std::nullopt;
  // A monitor that died without cleaning up leaves its state behind; that VE is not running.
  if (!(*state)->monitor.alive()) return std::nullopt;
  return **state;
}

std::vector<std::string> VeFiles::running() const {
  std::vector<std::string> names;
  for (auto& name : list_names(store_.paths().run_dir + "/ves")) {
    if (state_of(name)) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::shared_ptr<VeFiles::Cgroups>> VeFiles::cgroups(const std::string& parent) {
  std::lock_guard lock(managers_mutex_);
  if (auto it = managers_.find(parent); it != managers_.end()) return it->second;
  cgroup::Options options;
  options.parent = parent;
  auto manager = cgroup::probe(options);
  if (!manager) return tl::unexpected(manager.error());
  auto slot = std::make_shared<Cgroups>();
  slot->manager = std::move(*manager);
  managers_.emplace(parent, slot);
  return slot;
}

cgroup::Stats VeFiles::stats_of(const std::string& ve, const store::RuntimeState& state) {
  auto cg = cgroups(state.cgroup_parent.empty() ? "kapsel" : state.cgroup_parent);
  if (!cg) return {};
  std::lock_guard lock((*cg)->mutex);
  return (*cg)->manager->stats(ve).value_or(cgroup::Stats{});
}

std::optional<TaskCounts> VeFiles::tasks_of(const std::string& ve, const std::string& parent,
                                            bool with_last_pid) {
  auto cg = cgroups(parent.empty() ? "kapsel" : parent);
  if (!cg) return std::nullopt;
  Result<std::vector<pid_t>> pids;
  {
    std::lock_guard lock((*cg)->mutex);
    pids = (*cg)->manager->pids(ve);
  }
  if (!pids || pids->empty()) return std::nullopt;
  return count_tasks(*pids, with_last_pid);
}

Result<std::string> VeFiles::loadavg(const std::string& ve, const store::RuntimeState& state) {
  auto counts = tasks_of(ve, state.cgroup_parent, true);
  // No tasks to count (no cgroup): the host's load, as the VE would see without the service.
  if (!counts) return fs::read_file("/proc/loadavg");
  std::lock_guard lock(active_mutex_);
  auto& a = active_[ve];
  a.cgroup_parent = state.cgroup_parent;
  a.last_read = Clock::now();
  if (!a.load.seeded()) a.load.sample(static_cast<double>(counts->running + counts->blocked));
  return render_loadavg(a.load.values(), *counts);
}

void VeFiles::sample_loads() {
  std::vector<std::pair<std::string, std::string>> due;
  {
    std::lock_guard lock(active_mutex_);
    auto now = Clock::now();
    for (auto it = active_.begin(); it != active_.end();) {
      if (now - it->second.last_read > kActiveFor) {
        it = active_.erase(it);
      } else {
        due.emplace_back(it->first, it->second.cgroup_parent);
        ++it;
      }
    }
  }
  // Counted without the lock: reading /proc for a large VE takes a while, and readers of other
  // VEs' loadavg must not wait for it.
  for (const auto& [ve, parent] : due) {
    auto counts = tasks_of(ve, parent, false);
    std::lock_guard lock(active_mutex_);
    auto it = active_.find(ve);
    if (it == active_.end()) continue;
    if (!counts) {
      active_.erase(it);  // the VE has stopped (or its cgroups are gone)
    } else {
      it->second.load.sample(static_cast<double>(counts->running + counts->blocked));
    }
  }
}

Result<std::string> VeFiles::render(const std::string& ve, std::size_t index) {
  if (index >= kVirtualFiles.size()) return fail(ErrorKind::not_found, "no such file");
  auto state = state_of(ve);
  if (!state) return fail(ErrorKind::not_found, "VE " + ve + " is not running");
  if (index == kLoadavg) return loadavg(ve, *state);

  auto host = read_host_facts();
  if (!host) return tl::unexpected(host.error());
  auto stats = stats_of(ve, *state);
  auto view = make_view(stats, *host, ve_uptime(*state, host->uptime_s));
  switch (static_cast<FileIndex>(index)) {
    case kMeminfo:
      return render_meminfo(view, stats, host->meminfo);
    case kCpuinfo: {
      auto text = fs::read_file("/proc/cpuinfo");
      if (!text) return tl::unexpected(text.error());
      return render_cpuinfo(view, *text);
    }
    case kStat: {
      auto text = fs::read_file("/proc/stat");
      if (!text) return tl::unexpected(text.error());
      return render_stat(view, stats, *text, tasks_of(ve, state->cgroup_parent, true),
                         std::time(nullptr));
    }
    case kUptime:
      return render_uptime(view);
    case kSwaps: {
      auto text = fs::read_file("/proc/swaps");
      return render_swaps(view, text ? *text : std::string{});
    }
    case kDiskstats: {
      DeviceNames names;
      for (const auto& d : stats.io) {
        if (auto name = block_device_name(d.major, d.minor)) names[{d.major, d.minor}] = *name;
      }
      return render_diskstats(stats, names);
    }
    case kCpuOnline:
      return render_cpu_online(view);
    case kLoadavg:
      break;
  }
  return fail(ErrorKind::not_found, "no such file");
}

std::optional<std::string> block_device_name(std::uint32_t major, std::uint32_t minor,
                                             const std::string& sys) {
  auto uevent = fs::read_file(sys + "/dev/block/" + std::to_string(major) + ":" +
                              std::to_string(minor) + "/uevent");
  if (!uevent) return std::nullopt;
  std::string_view text = *uevent;
  for (std::size_t pos = 0; pos < text.size();) {
    auto eol = text.find('\n', pos);
    auto line = text.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (line.substr(0, 8) == "DEVNAME=" && line.size() > 8) return std::string(line.substr(8));
  }
  return std::nullopt;
}

TaskCounts count_tasks(const std::vector<pid_t>& pids, bool with_last_pid,
                       const std::string& proc) {
  TaskCounts counts;
  for (pid_t pid : pids) {
    std::string task_dir = proc + "/" + std::to_string(pid) + "/task";
    for (const auto& tid : list_names(task_dir)) {
      // Tasks come and go while they are counted; one that is gone is not counted.
      auto text = fs::read_file(task_dir + "/" + tid + (with_last_pid ? "/status" : "/stat"));
      if (!text) continue;
      char state = 0;
      if (with_last_pid) {
        // "State:\tR (running)" and "NSpid:\t4711\t12": the last pid is the innermost namespace's.
        auto s = text->find("\nState:\t");
        if (s != std::string::npos && s + 8 < text->size()) state = (*text)[s + 8];
        auto ns = text->find("\nNSpid:");
        if (ns != std::string::npos) {
          auto eol = text->find('\n', ns + 1);
          auto line = std::string_view(*text).substr(ns + 7, eol - (ns + 7));
          auto last = line.find_last_of(" \t");
          auto digits = last == std::string_view::npos ? line : line.substr(last + 1);
          std::uint64_t value = 0;
          std::from_chars(digits.data(), digits.data() + digits.size(), value);
          counts.last_pid = std::max(counts.last_pid, value);
        }
      } else {
        // The state follows the command name, which may itself contain ") ".
        auto close = text->rfind(')');
        if (close != std::string::npos && close + 2 < text->size()) state = (*text)[close + 2];
      }
      ++counts.total;
      if (state == 'R') ++counts.running;
      if (state == 'D') ++counts.blocked;
    }
  }
  return counts;
}

}  // namespace kapsel::procfs
