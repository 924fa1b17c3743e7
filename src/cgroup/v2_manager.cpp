#include "cgroup/v2_manager.hpp"

#include <algorithm>

#include "cgroup/cgroupfs.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

// Enables in `parent`/cgroup.subtree_control those of kEnabledControllers that `parent` offers
// and has not enabled yet, so the child cgroups get their interface files.
Status enable_controllers(const std::string& parent) {
  auto available = fs::read_file(parent + "/cgroup.controllers");
  if (!available) return tl::unexpected(available.error());
  auto enabled = fs::read_file(parent + "/cgroup.subtree_control");
  if (!enabled) return tl::unexpected(enabled.error());
  auto offered = words(*available);
  auto on = words(*enabled);
  std::vector<std::string> wanted;
  for (std::string_view c : V2Manager::kEnabledControllers) {
    if (std::find(offered.begin(), offered.end(), c) != offered.end() &&
        std::find(on.begin(), on.end(), c) == on.end())
      wanted.push_back("+" + std::string(c));
  }
  if (wanted.empty()) return {};
  std::string all;
  for (const auto& w : wanted) all += (all.empty() ? "" : " ") + w;
  // One write enables all or none. If it fails, enable one by one, so the error names the
  // controller the kernel refused (e.g. cpu while a real-time task sits in a child cgroup).
  std::string path = parent + "/cgroup.subtree_control";
  if (fs::write_existing(path, all)) return {};
  for (const auto& w : wanted) KAPSEL_TRY(fs::write_existing(path, w), "enabling controllers");
  return {};
}

}  // namespace

V2Manager::V2Manager(std::string mount, std::string parent, Controllers controllers,
                     std::string mount_root)
    : mount_(std::move(mount)),
      parent_(std::move(parent)),
      controllers_(controllers),
      mount_root_(std::move(mount_root)) {}

std::string V2Manager::dir(const std::string& ve) const {
  return mount_ + "/" + parent_ + "/" + ve;
}

Status V2Manager::create(const std::string& ve) {
  KAPSEL_TRY(check_ve_name(ve), "creating cgroup");
  return with_context(make_levels(mount_, parent_ + "/" + ve,
                                  [this](const std::string& parent, const std::string&) -> Status {
                                    if (controllers_ == Controllers::leave) return {};
                                    // Enabling in a parent that already has children is allowed
                                    // (the parent holds no processes), so doing it after the mkdir
                                    // is fine and also repairs a level left without controllers by
                                    // a crash.
                                    return enable_controllers(parent);
                                  }),
                      "creating cgroup for VE " + ve);
}

Status V2Manager::attach(const std::string& ve, pid_t pid) {
  KAPSEL_TRY(check_ve_name(ve), "attaching to cgroup");
  std::string value = std::to_string(pid);  // "0" moves the writer itself
  return with_context(fs::write_existing(dir(ve) + "/cgroup.procs", value),
                      "attaching pid " + value + " to cgroup of VE " + ve);
}

Result<std::vector<UniqueFd>> V2Manager::open_procs(const std::string& ve) {
  KAPSEL_TRY(check_ve_name(ve), "opening cgroup");
  auto fd = open_procs_file(dir(ve));
  if (!fd) return tl::unexpected(fd.error().context("opening cgroup of VE " + ve));
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(*fd));
  return fds;
}

Result<std::vector<pid_t>> V2Manager::pids(const std::string& ve) {
  KAPSEL_TRY(check_ve_name(ve), "listing cgroup");
  return with_context(read_procs_recursive(dir(ve)), "listing processes of VE " + ve);
}

Result<bool> V2Manager::empty(const std::string& ve) const {
  KAPSEL_TRY(check_ve_name(ve), "inspecting cgroup");
  std::string d = dir(ve);
  // "populated" covers the nested cgroups too, in one read.
  auto events = fs::read_file(d + "/cgroup.events");
  if (events) {
    if (has_line(*events, "populated 0")) return true;
    if (has_line(*events, "populated 1")) return false;
  } else if (events.error().code != ENOENT) {
    return tl::unexpected(events.error());
  }
  // No cgroup.events (gone, or not a kernel that has it): look at the processes themselves.
  auto pids = read_procs_recursive(d);
  if (!pids) return tl::unexpected(pids.error());
  return pids->empty();
}

// v2's freezer: a core file of every non-root cgroup, whatever controllers it has (Linux 5.2).
static FreezerFiles freezer_files(const std::string& d) {
  return {d + "/cgroup.freeze", "1", "0", d + "/cgroup.events", "frozen 1"};
}

Status V2Manager::freeze(const std::string& ve, bool frozen) {
  KAPSEL_TRY(check_ve_name(ve), frozen ? "freezing cgroup" : "thawing cgroup");
  std::string d = dir(ve);
  return with_context(set_frozen(freezer_files(d), frozen, Deadline(kPauseTimeoutMs)),
                      "cgroup of VE " + ve);
}

bool V2Manager::frozen(const std::string& ve) const {
  if (!check_ve_name(ve)) return false;
  std::string d = dir(ve);
  return is_frozen(freezer_files(d));
}

Status V2Manager::kill_all(const std::string& ve, int timeout_ms) {
  KAPSEL_TRY(check_ve_name(ve), "killing cgroup");
  std::string d = dir(ve);
  if (!fs::is_dir(d)) return {};
  Deadline deadline(timeout_ms);
  auto kill_round = [&]() -> Status {
    // cgroup.kill (Linux 5.14) kills the whole subtree in the kernel, racing with no fork.
    auto st = fs::write_existing(d + "/cgroup.kill", "1");
    if (st || st.error().code != ENOENT) return st;
    return freeze_kill_thaw([&] { return read_procs_recursive(d); }, freezer_files(d), deadline);
  };
  return kill_until_empty(
      kill_round, [&] { return empty(ve); }, timeout_ms, "cgroup of VE " + ve);
}

Status V2Manager::remove(const std::string& ve) {
  KAPSEL_TRY(check_ve_name(ve), "removing cgroup");
  return with_context(remove_tree_dirs(dir(ve)), "removing cgroup of VE " + ve);
}

Status V2Manager::destroy(const std::string& ve) {
  if (check_ve_name(ve) && remove_if_empty(paths(ve))) return {};
  auto killed = kill_all(ve, kDestroyKillTimeoutMs);
  auto removed = remove(ve);
  return killed ? removed : killed;
}

bool V2Manager::exists(const std::string& ve) const {
  return check_ve_name(ve) && fs::is_dir(dir(ve));
}

std::vector<std::string> V2Manager::paths(const std::string& ve) const {
  if (!check_ve_name(ve)) return {};
  return {dir(ve)};
}

Status V2Manager::set_devices(const std::string& ve, const std::vector<DeviceRule>& rules) {
  std::string context = "setting the device rules of VE " + ve;
  KAPSEL_TRY(check_ve_name(ve), context);
  std::string d = dir(ve);
  if (!fs::is_dir(d)) return fail(ErrorKind::not_found, "VE " + ve + " has no cgroup " + d);
  return with_context(attach_device_program(d, rules), "VE " + ve);
}

}  // namespace kapsel::cgroup
