#include "cgroup/v1_manager.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "cgroup/cgroupfs.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

// A new cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, and the kernel refuses to
// attach a task to it (ENOSPC) until both are set. A level that already has a value keeps it,
// so an administrator's restriction on the parent directory survives.
Status inherit_cpuset(const std::string& parent, const std::string& dir, const char* file) {
  auto own = fs::read_file(dir + "/" + file);
  if (!own) return tl::unexpected(own.error());
  if (!words(*own).empty()) return {};
  auto inherited = fs::read_file(parent + "/" + file);
  if (!inherited) return tl::unexpected(inherited.error());
  auto value = words(*inherited);
  if (value.empty())
    return fail(ErrorKind::failure, parent + "/" + file + " is empty, nothing to inherit");
  return fs::write_existing(dir + "/" + file, value.front());
}

Status prepare_level(const Hierarchy& h, const std::string& parent, const std::string& dir) {
  if (h.has("cpuset")) {
    KAPSEL_TRY(inherit_cpuset(parent, dir, "cpuset.cpus"), "initialising cpuset");
    KAPSEL_TRY(inherit_cpuset(parent, dir, "cpuset.mems"), "initialising cpuset");
  }
  if (h.has("memory")) {
    // Without use_hierarchy a v1 memory limit on the VE would not cover its nested cgroups.
    // Kernels since 5.16 always behave hierarchically and keep the file only for
    // compatibility, and older ones refuse the write once the cgroup has children: either way
    // a failure here changes nothing, so it is ignored.
    (void)fs::write_existing(dir + "/memory.use_hierarchy", "1");
  }
  return {};
}

// Adds one line to devices.allow or devices.deny with a single write(2). Appended rather than
// truncated: cgroupfs ignores both, and a regular file standing in for one in a test then keeps
// every line in the order written.
Status append_line(const std::string& path, const std::string& line) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (!fd) return errno_fail("opening " + path);
  std::string data = line + "\n";
  ssize_t n;
  do {
    n = ::write(fd.get(), data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_fail("writing '" + line + "' to " + path);
  return {};
}

}  // namespace

V1Manager::V1Manager(std::vector<Hierarchy> hierarchies, std::string parent)
    : hierarchies_(std::move(hierarchies)), parent_(std::move(parent)) {}

std::string V1Manager::dir(const Hierarchy& h, const std::string& ve) const {
  return h.mount + "/" + parent_ + "/" + ve;
}

Status V1Manager::create(const std::string& ve) {
  KAPSEL_TRY(check_ve_name(ve), "creating cgroup");
  for (const auto& h : hierarchies_) {
    KAPSEL_TRY(make_levels(h.mount, parent_ + "/" + ve,
                           [&h](const std::string& parent, const std::string& level) {
                             return prepare_level(h, parent, level);
                           }),
               "creating cgroup for VE " + ve);
  }
  return {};
}

Status V1Manager::attach(const std::string& ve, pid_t pid) {
  KAPSEL_TRY(check_ve_name(ve), "attaching to cgroup");
  std::string value = std::to_string(pid);  // "0" moves the writer itself
  for (const auto& h : hierarchies_) {
    KAPSEL_TRY(fs::write_existing(dir(h, ve) + "/cgroup.procs", value),
               "attaching pid " + value + " to cgroup of VE " + ve);
  }
  return {};
}

Result<std::vector<UniqueFd>> V1Manager::open_procs(const std::string& ve) {
  KAPSEL_TRY(check_ve_name(ve), "opening cgroup");
  std::vector<UniqueFd> fds;
  for (const auto& h : hierarchies_) {
    auto fd = open_procs_file(dir(h, ve));
    if (!fd) return tl::unexpected(fd.error().context("opening cgroup of VE " + ve));
    fds.push_back(std::move(*fd));
  }
  return fds;
}

Result<std::vector<pid_t>> V1Manager::pids(const std::string& ve) {
  KAPSEL_TRY(check_ve_name(ve), "listing cgroup");
  if (hierarchies_.empty()) return std::vector<pid_t>{};
  // Every process is in exactly one cgroup of each hierarchy, so one hierarchy suffices;
  // pids is the one kapsel always mounts for its limit, and the rest are equivalent.
  auto it = std::find_if(hierarchies_.begin(), hierarchies_.end(),
                         [](const Hierarchy& h) { return h.has("pids"); });
  const Hierarchy& h = it != hierarchies_.end() ? *it : hierarchies_.front();
  return with_context(read_procs_recursive(dir(h, ve)), "listing processes of VE " + ve);
}

Result<std::vector<pid_t>> V1Manager::all_pids(const std::string& ve) const {
  std::vector<pid_t> all;
  for (const auto& h : hierarchies_) {
    auto pids = read_procs_recursive(dir(h, ve));
    if (!pids) return tl::unexpected(pids.error());
    all.insert(all.end(), pids->begin(), pids->end());
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

FreezerFiles V1Manager::freezer(const std::string& ve) const {
  auto it = std::find_if(hierarchies_.begin(), hierarchies_.end(),
                         [](const Hierarchy& h) { return h.has("freezer"); });
  if (it == hierarchies_.end()) return {};
  // Freezing the VE's cgroup freezes the cgroups nested in it as well.
  std::string freezer_dir = dir(*it, ve);
  return {freezer_dir + "/freezer.state", "FROZEN", "THAWED", freezer_dir + "/freezer.state",
          "FROZEN"};
}

Status V1Manager::freeze(const std::string& ve, bool frozen) {
  KAPSEL_TRY(check_ve_name(ve), frozen ? "freezing cgroup" : "thawing cgroup");
  return with_context(set_frozen(freezer(ve), frozen, Deadline(kPauseTimeoutMs)),
                      "cgroup of VE " + ve);
}

bool V1Manager::frozen(const std::string& ve) const {
  return check_ve_name(ve) && is_frozen(freezer(ve));
}

Status V1Manager::kill_all(const std::string& ve, int timeout_ms) {
  KAPSEL_TRY(check_ve_name(ve), "killing cgroup");
  FreezerFiles freezer = this->freezer(ve);
  Deadline deadline(timeout_ms);
  auto list = [this, &ve] { return all_pids(ve); };
  return kill_until_empty([&] { return freeze_kill_thaw(list, freezer, deadline); },
                          [&]() -> Result<bool> {
                            auto pids = list();
                            if (!pids) return tl::unexpected(pids.error());
                            return pids->empty();
                          },
                          timeout_ms, "cgroup of VE " + ve);
}

Status V1Manager::remove(const std::string& ve) {
  KAPSEL_TRY(check_ve_name(ve), "removing cgroup");
  Status first;
  for (const auto& h : hierarchies_) {
    // Carry on after a failure: cleanup should get as far as it can, and a re-run retries.
    auto st = remove_tree_dirs(dir(h, ve));
    if (!st && first) first = st;
  }
  return with_context(first, "removing cgroup of VE " + ve);
}

Status V1Manager::destroy(const std::string& ve) {
  if (check_ve_name(ve) && remove_if_empty(paths(ve))) return {};
  auto killed = kill_all(ve, kDestroyKillTimeoutMs);
  // Remove what can be removed even if some process survived; its cgroup stays (EBUSY).
  auto removed = remove(ve);
  return killed ? removed : killed;
}

bool V1Manager::exists(const std::string& ve) const {
  if (!check_ve_name(ve)) return false;
  return std::any_of(hierarchies_.begin(), hierarchies_.end(),
                     [&](const Hierarchy& h) { return fs::is_dir(dir(h, ve)); });
}

std::vector<std::string> V1Manager::paths(const std::string& ve) const {
  std::vector<std::string> out;
  if (!check_ve_name(ve)) return out;
  for (const auto& h : hierarchies_) out.push_back(dir(h, ve));
  return out;
}

Status V1Manager::set_devices(const std::string& ve, const std::vector<DeviceRule>& rules) {
  std::string context = "setting the device rules of VE " + ve;
  KAPSEL_TRY(check_ve_name(ve), context);
  auto writes = v1_device_writes(rules);
  if (!writes) return tl::unexpected(writes.error().context(context));
  const Hierarchy* h = find("devices");
  if (!h) {
    // Not skipped: a VE started without its device rules could open every device of the host.
    return fail(ErrorKind::failure, context +
                                        ": this host has no devices controller (no cgroup v1 "
                                        "hierarchy of it is mounted); mount it to run VEs");
  }
  std::string d = dir(*h, ve);
  if (!fs::is_dir(d)) return fail(ErrorKind::not_found, "VE " + ve + " has no cgroup " + d);
  for (const auto& w : *writes) {
    auto st = append_line(d + "/" + w.file, w.line);
    if (st) continue;
    if (st.error().code == EINVAL && w.line == "a") {
      return sys_fail(EINVAL, context +
                                  ": the kernel refuses to replace them once the VE's cgroup has "
                                  "nested cgroups (" +
                                  d + "); restart the VE to change them");
    }
    return tl::unexpected(st.error().context(context));
  }
  return {};
}

}  // namespace kapsel::cgroup
