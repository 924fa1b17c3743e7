#include "common/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace kapsel::fs {

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_fail("opening " + path);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_fail("reading " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_fail("writing " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode,
                         bool durable) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (dir.empty()) dir = "/";
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return errno_fail("creating " + tmp);
  auto st = write_all(fd.get(), data, tmp);
  if (st && durable && ::fsync(fd.get()) != 0) st = errno_fail("syncing " + tmp);
  if (st && ::rename(tmp.c_str(), path.c_str()) != 0) st = errno_fail("renaming " + tmp);
  if (!st) {
    ::unlink(tmp.c_str());
    return st;
  }
  // Persist the rename itself: without this a crash can leave the old name in place.
  if (durable) {
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd) ::fsync(dfd.get());
  }
  return {};
}

Status write_existing(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_fail("opening " + path);
  ssize_t n;
  do {
    n = ::write(fd.get(), data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_fail("writing '" + std::string(data) + "' to " + path);
  return {};
}

Status make_dirs(const std::string& path, mode_t mode) {
  if (path.empty() || path == "/") return {};
  // The directory usually exists, or only its last component is missing: try that first, and
  // walk up only on ENOENT (every command makes its directories; one mkdir each is enough).
  if (::mkdir(path.c_str(), mode) == 0) return {};
  if (errno == ENOENT) {
    auto slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) {
      if (auto st = make_dirs(path.substr(0, slash), mode); !st) return st;
    }
    if (::mkdir(path.c_str(), mode) == 0 || errno == EEXIST) {
      if (is_dir(path)) return {};
      return sys_fail(ENOTDIR, "creating directory " + path);
    }
    return errno_fail("creating directory " + path);
  }
  if (errno != EEXIST) return errno_fail("creating directory " + path);
  if (!is_dir(path)) return sys_fail(ENOTDIR, "creating directory " + path);
  return {};
}

Result<std::vector<std::string>> list_dir(int dfd, const std::string& path) {
  // Through a duplicate opened anew: fdopendir would take over `dfd` and share its offset.
  UniqueFd dup(::openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dup) return errno_fail("opening " + path);
  DIR* dir = ::fdopendir(dup.get());
  if (!dir) return errno_fail("listing " + path);
  (void)dup.release();  // closedir closes it
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* ent = ::readdir(dir)) {
    std::string_view name = ent->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return sys_fail(err, "listing " + path);
  return names;
}

// Removes everything below the directory `dfd` (which lies on device `dev`), then nothing else.
static Status remove_children(int dfd, dev_t dev, const std::string& path) {
  auto names = list_dir(dfd, path);
  if (!names) return tl::unexpected(names.error());
  for (const auto& name : *names) {
    std::string child = path + "/" + name;
    struct stat st {};
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return errno_fail("inspecting " + child);
    }
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) return sys_fail(EBUSY, "refusing to descend into mount point " + child);
      UniqueFd cfd(::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      // A directory of our own that we may not read (overlayfs leaves its work directory's
      // "work" with mode 0): without root's override, we open it to ourselves first.
      if (!cfd && errno == EACCES && st.st_uid == ::geteuid() &&
          ::fchmodat(dfd, name.c_str(), 0700, 0) == 0)
        cfd.reset(::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!cfd) return errno_fail("opening " + child);
      KAPSEL_TRY(remove_children(cfd.get(), dev, child), "removing " + child);
      if (::unlinkat(dfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
        return errno_fail("removing " + child);
    } else if (::unlinkat(dfd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return errno_fail("removing " + child);
    }
  }
  return {};
}

Status remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return errno_fail("inspecting " + path);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_fail("removing " + path);
    return {};
  }
  UniqueFd dfd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dfd) return errno_fail("opening " + path);
  KAPSEL_TRY(remove_children(dfd.get(), st.st_dev, path), "removing " + path);
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return errno_fail("removing " + path);
  return {};
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace kapsel::fs
