#include "cgroup/cgroupfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <thread>

#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

// How long rmdir keeps retrying EBUSY: a cgroup counts as populated until its last task has
// finished exiting, which can lag a moment behind the kill and behind cgroup.procs; that takes
// milliseconds, so a cgroup still busy after this is genuinely in use.
constexpr int kRmdirRetryMs = 2000;
constexpr int kRmdirPollMs = 10;
// How often kill_until_empty checks for emptiness, and how often it repeats the kill.
constexpr int kEmptyPollMs = 5;
constexpr auto kRekillInterval = std::chrono::milliseconds(100);
// Upper bound for waiting until a freeze has taken effect before killing anyway: a task in
// uninterruptible sleep delays freezing, and the kill round is repeated regardless.
constexpr int kFreezeWaitMs = 100;

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

Status check_component(std::string_view name, std::string_view what) {
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos)
    return fail(ErrorKind::usage, "invalid " + std::string(what) + " '" + std::string(name) +
                                      "': must be one path component");
  return {};
}

// Appends `dir`'s nested cgroups, parents first, to `out`.
Status collect_children(const std::string& dir, std::vector<std::string>& out) {
  DirPtr d(::opendir(dir.c_str()));
  if (!d) {
    if (errno == ENOENT) return {};  // removed while we walked: nothing below it any more
    return errno_fail("listing " + dir);
  }
  std::vector<std::string> children;
  for (;;) {
    errno = 0;  // readdir(3) reports an error only through errno
    struct dirent* ent = ::readdir(d.get());
    if (!ent) {
      if (errno != 0 && errno != ENOENT) return errno_fail("listing " + dir);
      break;
    }
    std::string_view name = ent->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = ent->d_type == DT_DIR;
    if (ent->d_type == DT_UNKNOWN) {
      struct stat st {};
      is_dir = ::fstatat(::dirfd(d.get()), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               S_ISDIR(st.st_mode);
    }
    if (is_dir) children.push_back(dir + "/" + ent->d_name);
  }
  d.reset();
  std::sort(children.begin(), children.end());
  for (auto& child : children) {
    out.push_back(child);
    if (auto st = collect_children(child, out); !st) return st;
  }
  return {};
}

}  // namespace

Status check_ve_name(std::string_view ve) {
  return check_component(ve, "VE name");
}

Status check_parent(std::string_view parent) {
  if (parent.empty() || parent.front() == '/')
    return fail(ErrorKind::usage,
                "invalid cgroup parent '" + std::string(parent) + "': must be a relative path");
  size_t pos = 0;
  while (pos <= parent.size()) {
    size_t end = parent.find('/', pos);
    if (end == std::string_view::npos) end = parent.size();
    KAPSEL_TRY(check_component(parent.substr(pos, end - pos), "cgroup parent component"),
               "cgroup parent '" + std::string(parent) + "'");
    pos = end + 1;
  }
  return {};
}

Result<std::vector<std::string>> list_tree(const std::string& dir) {
  std::vector<std::string> out;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return out;
    return errno_fail("inspecting " + dir);
  }
  if (!S_ISDIR(st.st_mode)) return sys_fail(ENOTDIR, "listing " + dir);
  out.push_back(dir);
  KAPSEL_TRY(collect_children(dir, out), "listing cgroups below " + dir);
  return out;
}

Result<std::vector<pid_t>> read_procs(const std::string& dir) {
  std::vector<pid_t> pids;
  auto text = fs::read_file(dir + "/cgroup.procs");
  if (!text) {
    // ENOENT: the cgroup was removed, or its directory never was a cgroup. ENODEV: cgroupfs
    // reports it for a cgroup that is being removed.
    if (text.error().code == ENOENT || text.error().code == ENODEV) return pids;
    return tl::unexpected(text.error());
  }
  for (const auto& word : words(*text)) {
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), pid);
    if (ec != std::errc() || end != word.data() + word.size() || pid <= 0)
      return fail(ErrorKind::failure, "unexpected '" + word + "' in " + dir + "/cgroup.procs");
    pids.push_back(pid);
  }
  return pids;
}

Result<std::vector<pid_t>> read_procs_recursive(const std::string& dir) {
  auto tree = list_tree(dir);
  if (!tree) return tl::unexpected(tree.error());
  std::vector<pid_t> all;
  for (const auto& cgroup : *tree) {
    auto pids = read_procs(cgroup);
    if (!pids) return tl::unexpected(pids.error());
    all.insert(all.end(), pids->begin(), pids->end());
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

Status make_levels(
    const std::string& mount, std::string_view rel,
    const std::function<Status(const std::string& parent, const std::string& dir)>& prepare) {
  std::string dir = mount;
  size_t pos = 0;
  while (pos < rel.size()) {
    size_t end = rel.find('/', pos);
    if (end == std::string_view::npos) end = rel.size();
    std::string parent = dir;
    dir += "/";
    dir += rel.substr(pos, end - pos);
    pos = end + 1;
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return errno_fail("creating cgroup " + dir);
    KAPSEL_TRY(prepare(parent, dir), "preparing cgroup " + dir);
  }
  return {};
}

Status remove_tree_dirs(const std::string& dir) {
  auto tree = list_tree(dir);
  if (!tree) return tl::unexpected(tree.error());
  for (auto it = tree->rbegin(); it != tree->rend(); ++it) {
    Deadline deadline(kRmdirRetryMs);
    while (::rmdir(it->c_str()) != 0) {
      if (errno == ENOENT) break;
      if (errno != EBUSY || deadline.passed()) return errno_fail("removing cgroup " + *it);
      sleep_ms(kRmdirPollMs);
    }
  }
  return {};
}

bool remove_if_empty(const std::vector<std::string>& dirs) {
  bool all = true;
  for (const auto& d : dirs) {
    if (::rmdir(d.c_str()) != 0 && errno != ENOENT) all = false;
  }
  return all;
}

Result<UniqueFd> open_procs_file(const std::string& dir) {
  std::string path = dir + "/cgroup.procs";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_fail("opening " + path);
  return fd;
}

Status kill_pids(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    // pid <= 0 would signal a process group or everything: cgroup.procs never lists such a
    // value, but a kill(2) with one must never happen by accident.
    if (pid <= 0) continue;
    if (::kill(pid, SIGKILL) != 0 && errno != ESRCH)
      return errno_fail("killing pid " + std::to_string(pid));
  }
  return {};
}

bool has_line(std::string_view text, std::string_view line) {
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    if (text.substr(pos, end - pos) == line) return true;
    pos = end + 1;
  }
  return false;
}

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    pos = text.find_first_not_of(" \t\n", pos);
    if (pos == std::string_view::npos) break;
    size_t end = text.find_first_of(" \t\n", pos);
    if (end == std::string_view::npos) end = text.size();
    out.emplace_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

Deadline::Deadline(int timeout_ms) {
  if (timeout_ms >= 0)
    end_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
}

bool Deadline::passed() const {
  return end_ && std::chrono::steady_clock::now() >= *end_;
}

int Deadline::remaining_ms() const {
  if (!end_) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      *end_ - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

bool is_frozen(const FreezerFiles& freezer) {
  if (freezer.state.empty()) return false;
  auto state = fs::read_file(freezer.state);
  return state && has_line(*state, freezer.frozen_line);
}

Status set_frozen(const FreezerFiles& freezer, bool frozen, const Deadline& deadline) {
  if (freezer.control.empty())
    return fail(ErrorKind::state, "this host has no cgroup freezer to pause VEs with");
  KAPSEL_TRY(fs::write_existing(freezer.control, frozen ? freezer.freeze : freezer.thaw),
             frozen ? "freezing" : "thawing");
  // A task frozen in the middle of a system call gets there only when the call returns or
  // sleeps, so the state may lag the write; thawing is immediate but checked all the same.
  while (is_frozen(freezer) != frozen) {
    if (deadline.passed()) {
      // Half-frozen is worse than either: a VE that some tasks still run in, that reports as
      // running. Undo, so the caller's error leaves the VE as it was.
      if (frozen) (void)fs::write_existing(freezer.control, freezer.thaw);
      return sys_fail(ETIMEDOUT, frozen ? "freezing" : "thawing");
    }
    sleep_ms(1);
  }
  return {};
}

Status freeze_kill_thaw(const std::function<Result<std::vector<pid_t>>()>& list,
                        const FreezerFiles& freezer, const Deadline& deadline) {
  auto pids = list();
  if (!pids) return tl::unexpected(pids.error());
  if (pids->empty()) return {};
  if (std::find(pids->begin(), pids->end(), ::getpid()) != pids->end())
    return fail(ErrorKind::state,
                "refusing to freeze and kill a cgroup that holds the calling process");

  bool frozen = false;
  if (!freezer.control.empty()) {
    auto st = fs::write_existing(freezer.control, freezer.freeze);
    if (!st && st.error().code != ENOENT) return st;
    frozen = static_cast<bool>(st);
  }
  Status result;
  if (frozen) {
    // Freezing is asynchronous; until it has taken hold a task may still fork a child that
    // the list below misses. The next round catches such a child, so the wait is bounded.
    int wait = deadline.remaining_ms();
    Deadline frozen_by(wait < 0 ? kFreezeWaitMs : std::min(wait, kFreezeWaitMs));
    for (;;) {
      auto state = fs::read_file(freezer.state);
      if (!state || has_line(*state, freezer.frozen_line) || frozen_by.passed()) break;
      sleep_ms(1);
    }
    pids = list();  // now stable: a frozen task can neither fork nor exit
    if (!pids) result = tl::unexpected(pids.error());
  }
  if (result) result = kill_pids(*pids);
  if (frozen) {
    // Always thaw, even after an error: the SIGKILLs are only delivered once the tasks run,
    // and a VE left frozen would look hung.
    auto st = fs::write_existing(freezer.control, freezer.thaw);
    if (!st && st.error().code != ENOENT && result) result = st;
  }
  return result;
}

Status kill_until_empty(const std::function<Status()>& kill_round,
                        const std::function<Result<bool>()>& is_empty, int timeout_ms,
                        std::string_view what) {
  Deadline deadline(timeout_ms);
  auto last_round = std::chrono::steady_clock::now();
  KAPSEL_TRY(kill_round(), "killing " + std::string(what));
  for (;;) {
    auto empty = is_empty();
    if (!empty) return tl::unexpected(empty.error().context("waiting for " + std::string(what)));
    if (*empty) return {};
    if (deadline.passed())
      return tl::unexpected(Error{ErrorKind::failure, ETIMEDOUT,
                                  "processes remain in " + std::string(what) + " after " +
                                      std::to_string(timeout_ms) + " ms"});
    sleep_ms(kEmptyPollMs);
    if (std::chrono::steady_clock::now() - last_round >= kRekillInterval) {
      last_round = std::chrono::steady_clock::now();
      KAPSEL_TRY(kill_round(), "killing " + std::string(what));
    }
  }
}

}  // namespace kapsel::cgroup
