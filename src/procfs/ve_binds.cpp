// Binding the service's files over a VE's kernel files: at VE start (bind_into, in the VE's own
// setup child), and from outside into a running VE's mount namespace (unbind_in, rebind_in)
// when the service was lost and restarted.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstring>
#include <vector>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"
#include "procfs/procfs_service.hpp"

namespace kapsel::procfs {
namespace {

// The fstype mountinfo shows for the service's mounts ("fuse." + the subtype serve() gives).
constexpr std::string_view kFsType = "fuse.kapsel";

// The pid behind a pidfd, from its fdinfo ("Pid:\t1234"; -1 once the process has exited).
Result<pid_t> pid_of(int pidfd) {
  auto info = fs::read_file("/proc/self/fdinfo/" + std::to_string(pidfd));
  if (!info) return tl::unexpected(info.error());
  auto at = info->find("\nPid:\t");
  pid_t pid = 0;
  if (at == std::string::npos ||
      std::from_chars(info->data() + at + 6, info->data() + info->size(), pid).ec != std::errc())
    return fail(ErrorKind::failure, "descriptor " + std::to_string(pidfd) + " is not a pidfd");
  if (pid <= 0) return fail(ErrorKind::not_found, "the VE's init has exited");
  return pid;
}

// mountinfo escapes blanks, tabs, newlines and backslashes in paths as octal (\040).
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      if (std::from_chars(s.data() + i + 1, s.data() + i + 4, v, 8).ec == std::errc()) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// How many of the service's mounts lie on top of each virtual file's target in a mount table
// (/proc/<pid>/mountinfo, whose paths are relative to that process's root): the run of
// fuse.kapsel mounts at the top of the stack on that path, which may be removed without
// touching what a VE mounted there itself.
std::vector<int> bound_counts(std::string_view mountinfo) {
  std::vector<int> counts(kVirtualFiles.size(), 0);
  while (!mountinfo.empty()) {
    auto eol = mountinfo.find('\n');
    auto line = mountinfo.substr(0, eol);
    mountinfo = eol == std::string_view::npos ? std::string_view{} : mountinfo.substr(eol + 1);
    // id parent major:minor root mountpoint options [optional fields] - fstype source super
    std::vector<std::string_view> f;
    for (std::size_t pos = 0; pos < line.size();) {
      auto end = line.find(' ', pos);
      f.push_back(line.substr(pos, end - pos));
      pos = end == std::string_view::npos ? line.size() : end + 1;
    }
    if (f.size() < 7) continue;
    std::size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 1 >= f.size()) continue;
    auto point = unescape(f[4]);
    for (std::size_t i = 0; i < kVirtualFiles.size(); ++i) {
      if (point != kVirtualFiles[i].target) continue;
      // Mounts on one path are listed bottom to top; anything else on top ends the run.
      counts[i] = f[dash + 1] == kFsType ? counts[i] + 1 : 0;
    }
  }
  return counts;
}

// Runs `body` in a child that has joined the mount namespace of the process behind `pidfd`,
// and returns the errno it exits with (0: success). The caller's own namespaces stay as they
// are, and setns(CLONE_NEWNS) needs a single-threaded process, which a forked child is. `body`
// runs between fork and _exit, so it may only make async-signal-safe calls.
template <class Body>
Status in_mount_namespace(int pidfd, const std::string& what, Body body) {
  pid_t child = ::fork();
  if (child < 0) return errno_fail(what + ": forking");
  if (child == 0) {
    if (::setns(pidfd, CLONE_NEWNS) != 0) ::_exit(errno);
    ::_exit(body());
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return errno_fail(what + ": waiting for the child");
  }
  if (!WIFEXITED(status)) return fail(ErrorKind::failure, what + ": the child was killed");
  if (int code = WEXITSTATUS(status); code != 0) return sys_fail(code, what);
  return {};
}

}  // namespace

void prefetch(const std::string& mountpoint, const std::string& ve) {
  const std::string dir = mountpoint + "/" + ve;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return;
  for (const auto& f : kVirtualFiles) (void)::stat((dir + "/" + std::string(f.name)).c_str(), &st);
}

Status bind_into(const std::string& mountpoint, const std::string& ve, const std::string& rootfs) {
  const std::string dir = mountpoint + "/" + ve;
  // One lookup through the service first: a dead service answers ENOTCONN, none ENOENT (the
  // mount point is a plain directory), and either way nothing is bound.
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return errno_fail("binding the /proc service's files: " + dir);
  std::vector<std::string> bound;
  auto undo = [&] {
    for (auto it = bound.rbegin(); it != bound.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  };
  for (const auto& f : kVirtualFiles) {
    std::string source = dir + "/" + std::string(f.name);
    std::string target = rootfs + std::string(f.target);
    // A kernel without the file (no swap support, say) has nothing to virtualise.
    if (::lstat(target.c_str(), &st) != 0 && errno == ENOENT) continue;
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      auto e = errno_fail("binding " + source + " on " + target);
      undo();
      return e;
    }
    // Read-only, nosuid, nodev and noexec like the service's own mount, from which a bind
    // copies its flags.
    bound.push_back(target);
  }
  return {};
}

Status unbind_in(int init_pidfd) {
  const std::string what = "unbinding the /proc service's files from a VE";
  auto pid = pid_of(init_pidfd);
  if (!pid) return tl::unexpected(pid.error().context(what));
  auto mountinfo = fs::read_file("/proc/" + std::to_string(*pid) + "/mountinfo");
  if (!mountinfo) return tl::unexpected(mountinfo.error().context(what));
  auto counts = bound_counts(*mountinfo);
  bool any = false;
  for (int c : counts) any = any || c > 0;
  if (!any) return {};
  // Prepared before the fork: the child may not allocate.
  std::vector<std::string> targets;
  for (const auto& f : kVirtualFiles) targets.emplace_back(f.target);
  return in_mount_namespace(init_pidfd, what, [&]() -> int {
    for (std::size_t i = 0; i < targets.size(); ++i) {
      for (int n = 0; n < counts[i]; ++n) {
        // Lazily: a reader inside the VE may hold the file open; it keeps its (dead) file.
        if (::umount2(targets[i].c_str(), MNT_DETACH) != 0) return errno;
      }
    }
    return 0;
  });
}

Status rebind_in(int init_pidfd, const std::string& mountpoint, const std::string& ve) {
  const std::string what = "binding the /proc service's files into VE " + ve;
  // Each file as a detached bind mount, made on the host side where the service's mount is
  // visible; the VE's namespace never sees the host's tree.
  std::vector<UniqueFd> trees;
  std::vector<std::string> targets;
  for (const auto& f : kVirtualFiles) {
    std::string source = mountpoint + "/" + ve + "/" + std::string(f.name);
    UniqueFd tree(::open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
    if (!tree) return errno_fail(what + ": cloning " + source);
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0)
      return errno_fail(what + ": making " + source + " read-only");
    trees.push_back(std::move(tree));
    targets.emplace_back(f.target);
  }
  return in_mount_namespace(init_pidfd, what, [&]() -> int {
    std::array<bool, kVirtualFiles.size()> moved{};
    for (std::size_t i = 0; i < trees.size(); ++i) {
      if (::move_mount(trees[i].get(), "", AT_FDCWD, targets[i].c_str(), MOVE_MOUNT_F_EMPTY_PATH) ==
          0) {
        moved[i] = true;
        continue;
      }
      if (errno == ENOENT) continue;  // as in bind_into: the VE's kernel lacks the file
      int e = errno;
      for (std::size_t j = 0; j < i; ++j) {
        if (moved[j]) ::umount2(targets[j].c_str(), MNT_DETACH);
      }
      return e;
    }
    return 0;
  });
}

}  // namespace kapsel::procfs
