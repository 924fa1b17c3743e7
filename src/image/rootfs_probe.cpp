#include "image/rootfs_probe.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <unordered_set>
#include <vector>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::image {

namespace {

// The kernel's limit on symlinks followed in one lookup (MAXSYMLINKS).
constexpr int kMaxSymlinks = 40;

// Only a file this small is searched for a busybox banner; busybox is 1-3 MiB.
constexpr off_t kMaxScannedInit = 8 << 20;

void push_components(std::deque<std::string>& queue, std::string_view path) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > pos) parts.emplace_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  // In front of what is still to be resolved, in order: a symlink's target replaces the link.
  queue.insert(queue.begin(), parts.begin(), parts.end());
}

std::string join(const std::string& root, const std::vector<std::string>& parts) {
  std::string out = root;
  for (const auto& p : parts) out += "/" + p;
  return out;
}

bool looks_like_busybox(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxScannedInit)
    return false;
  auto data = fs::read_file(path);
  return data && data->find("BusyBox v") != std::string::npos;
}

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Adds the usage of everything below `dfd` to `total`. `seen` holds inodes with more than one
// link that were already counted; one device only, so the inode number alone identifies a file.
Status add_usage(int dfd, dev_t dev, const std::string& path, std::uint64_t& total,
                 std::unordered_set<ino_t>& seen) {
  auto names = fs::list_dir(dfd, path);
  if (!names) return tl::unexpected(names.error());
  for (const auto& name : *names) {
    struct stat st {};
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return errno_fail("inspecting " + path + "/" + name);
    if (st.st_dev != dev) continue;  // a mount point inside the tree is not part of it
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen.insert(st.st_ino).second) continue;
    total += static_cast<std::uint64_t>(st.st_blocks) * 512;
    if (S_ISDIR(st.st_mode)) {
      UniqueFd child(::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child) return errno_fail("opening " + path + "/" + name);
      if (auto r = add_usage(child.get(), dev, path + "/" + name, total, seen); !r) return r;
    }
  }
  return {};
}

}  // namespace

Result<std::string> resolve_in_tree(const std::string& root, std::string_view path) {
  std::deque<std::string> todo;
  push_components(todo, path);
  std::vector<std::string> resolved;
  int links = 0;
  while (!todo.empty()) {
    std::string part = std::move(todo.front());
    todo.pop_front();
    if (part == ".") continue;
    if (part == "..") {
      if (!resolved.empty()) resolved.pop_back();
      continue;
    }
    resolved.push_back(part);
    std::string host = join(root, resolved);
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) return errno_fail("resolving " + std::string(path));
    if (!S_ISLNK(st.st_mode)) continue;
    if (++links > kMaxSymlinks) return sys_fail(ELOOP, "resolving " + std::string(path));
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlink(host.c_str(), target.data(), target.size());
    if (n < 0) return errno_fail("reading link " + host);
    target.resize(static_cast<size_t>(n));
    resolved.pop_back();
    if (!target.empty() && target[0] == '/') resolved.clear();
    push_components(todo, target);
  }
  return join(root, resolved);
}

InitInfo detect_init(const std::string& root) {
  InitInfo info;
  auto target = resolve_in_tree(root, info.init);
  if (!target) return info;
  std::string name = base_name(*target);
  if (name == "systemd") {
    info.halt_signal = SIGRTMIN + 3;  // systemd(1): "SIGRTMIN+3: halts the machine"
  } else if (name == "busybox" || looks_like_busybox(*target)) {
    info.halt_signal = SIGUSR1;  // busybox init: USR1 halts, USR2 powers off, TERM reboots
  }
  return info;
}

Result<std::uint64_t> disk_usage(const std::string& root) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errno_fail("opening " + root);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_fail("inspecting " + root);
  std::uint64_t total = static_cast<std::uint64_t>(st.st_blocks) * 512;
  std::unordered_set<ino_t> seen;
  KAPSEL_TRY(add_usage(fd.get(), st.st_dev, root, total, seen), "measuring " + root);
  return total;
}

}  // namespace kapsel::image
