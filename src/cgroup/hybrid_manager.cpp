#include "cgroup/hybrid_manager.hpp"

#include "cgroup/cgroupfs.hpp"

namespace kapsel::cgroup {

HybridManager::HybridManager(std::vector<Hierarchy> v1, std::string v2_mount, std::string parent)
    : v1_(std::move(v1), parent),
      v2_(std::move(v2_mount), std::move(parent), V2Manager::Controllers::leave) {}

Status HybridManager::create(const std::string& ve) {
  KAPSEL_TRY(v1_.create(ve), "hybrid layout, v1 part");
  KAPSEL_TRY(v2_.create(ve), "hybrid layout, v2 part");
  return {};
}

Status HybridManager::attach(const std::string& ve, pid_t pid) {
  KAPSEL_TRY(v2_.attach(ve, pid), "hybrid layout, v2 part");
  KAPSEL_TRY(v1_.attach(ve, pid), "hybrid layout, v1 part");
  return {};
}

Result<std::vector<UniqueFd>> HybridManager::open_procs(const std::string& ve) {
  auto fds = v2_.open_procs(ve);
  if (!fds) return tl::unexpected(fds.error().context("hybrid layout, v2 part"));
  auto more = v1_.open_procs(ve);
  if (!more) return tl::unexpected(more.error().context("hybrid layout, v1 part"));
  for (auto& fd : *more) fds->push_back(std::move(fd));
  return fds;
}

Result<std::vector<pid_t>> HybridManager::pids(const std::string& ve) {
  return v2_.pids(ve);
}

Status HybridManager::kill_all(const std::string& ve, int timeout_ms) {
  Deadline deadline(timeout_ms);
  KAPSEL_TRY(v2_.kill_all(ve, timeout_ms), "hybrid layout, v2 part");
  // Usually finds nothing: one read of each v1 hierarchy's cgroup.procs.
  KAPSEL_TRY(v1_.kill_all(ve, deadline.remaining_ms()), "hybrid layout, v1 part");
  return {};
}

// The v2 part: pids() lists it too, and cgroup.freeze needs no controller there.
Status HybridManager::freeze(const std::string& ve, bool frozen) {
  return with_context(v2_.freeze(ve, frozen), "hybrid layout, v2 part");
}

bool HybridManager::frozen(const std::string& ve) const {
  return v2_.frozen(ve);
}

Status HybridManager::destroy(const std::string& ve) {
  if (check_ve_name(ve) && remove_if_empty(paths(ve))) return {};
  auto killed = kill_all(ve, kDestroyKillTimeoutMs);
  // Remove both parts even if one fails, so a re-run has less to do; report the first error.
  auto removed_v2 = v2_.remove(ve);
  auto removed_v1 = v1_.remove(ve);
  if (!killed) return killed;
  if (!removed_v2) return removed_v2;
  return removed_v1;
}

bool HybridManager::exists(const std::string& ve) const {
  return v2_.exists(ve) || v1_.exists(ve);
}

std::vector<std::string> HybridManager::paths(const std::string& ve) const {
  auto out = v2_.paths(ve);
  for (auto& p : v1_.paths(ve)) out.push_back(std::move(p));
  return out;
}

Status HybridManager::check(const Limits& limits) const {
  return v1_.check(limits);
}

Status HybridManager::apply(const std::string& ve, const Limits& limits) {
  return v1_.apply(ve, limits);
}

Result<Stats> HybridManager::stats(const std::string& ve) const {
  return v1_.stats(ve);
}

Result<UniqueFd> HybridManager::watch_oom(const std::string& ve) {
  return v1_.watch_oom(ve);
}

Status HybridManager::set_devices(const std::string& ve, const std::vector<DeviceRule>& rules) {
  if (v1_.has_controller("devices")) return v1_.set_devices(ve, rules);
  return v2_.set_devices(ve, rules);
}

std::string HybridManager::memory_cgroup_path(const std::string& ve) const {
  return v1_.memory_cgroup_path(ve);
}

}  // namespace kapsel::cgroup
