#include "driver/container/rootfs.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string_view>
#include <tuple>

#include "common/fs.hpp"
#include "common/trace.hpp"
#include "common/unique_fd.hpp"
#include "procfs/procfs_service.hpp"
#include "security/masks.hpp"
#include "security/userns.hpp"

namespace kapsel::driver::container {
namespace {

Status do_mount(const std::string& source, const std::string& target, const char* type,
                unsigned long flags, const std::string& data = {}) {
  if (::mount(source.c_str(), target.c_str(), type, flags, data.empty() ? nullptr : data.c_str()) !=
      0)
    return errno_fail("mounting " + std::string(type ? type : source) + " on " + target);
  return {};
}

// A directory that must exist in the VE's tree for a mount; templates may lack it.
Status ensure_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return errno_fail("creating " + path);
  return {};
}

// The kernel's path to an open descriptor, for mount(2), which takes only paths: the host's
// procfs is still mounted at /proc in this namespace (set-up runs before pivot_root), and
// setup_rootfs() has checked that it is one.
struct FdPath {
  explicit FdPath(int fd) { std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd); }
  char path[32];
};

// Resolves `path` (relative to the VE's root) beneath `root` without following any symlink:
// the template and the VE's own writes decide what the tree holds, and a symlink planted where
// kapsel mounts (/proc -> /etc of the host, say) must not lead a mount out of the VE, nor onto
// a file of the VE's choosing. Returns an O_PATH descriptor; ENOENT if it is missing.
Result<UniqueFd> open_beneath(int root, std::string_view path, int flags = 0) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::string rel(path.empty() ? "." : path);
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(O_PATH | O_CLOEXEC | O_NOFOLLOW | flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how));
  if (fd < 0) {
    if (errno == ELOOP || errno == EXDEV || errno == ENOTDIR)
      return sys_fail(errno, "/" + rel +
                                 " in the VE's root is (or passes through) a symlink or a file; "
                                 "kapsel refuses to mount there (fix the template)");
    return errno_fail("opening /" + rel + " in the VE's root");
  }
  return UniqueFd(fd);
}

// A directory of the VE's root where kapsel mounts a file system of its own (/proc, /sys, /dev):
// made if the template lacks it, and refused if it is anything but a directory.
Result<UniqueFd> mount_point(int root, const char* name, mode_t mode) {
  if (::mkdirat(root, name, mode) != 0 && errno != EEXIST)
    return errno_fail(std::string("creating /") + name);
  return open_beneath(root, name, O_DIRECTORY);
}

// Binds `source` (an O_PATH descriptor) over `target` and makes the new mount read-only with
// the given extra attributes, with no path in between that could be swapped.
Status bind_readonly(int source, int target, std::uint64_t attrs) {
  UniqueFd tree(
      ::open_tree(source, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE));
  if (!tree) return errno_fail("cloning the mount");
  struct mount_attr attr {};
  attr.attr_set = MOUNT_ATTR_RDONLY | attrs;
  if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
    return errno_fail("making the mount read-only");
  if (::move_mount(tree.get(), "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) !=
      0)
    return errno_fail("moving the mount into place");
  return {};
}

// A device node at `rel` in the VE's /dev. A VE with a user namespace may not make nodes
// (mknod(2) needs CAP_MKNOD in the host's namespace): the host's node `host_path` is bound over
// an empty file made in its place instead, which gives the same device to open.
Status make_node(int dev, const std::string& rel, mode_t type_and_mode, dev_t number,
                 const std::string& host_path, bool bind) {
  if (!bind) {
    if (::mknodat(dev, rel.c_str(), type_and_mode, number) != 0)
      return errno_fail("dev: creating /dev/" + rel);
    return {};
  }
  UniqueFd target(::openat(dev, rel.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                           type_and_mode & 07777));
  if (!target) return errno_fail("dev: creating /dev/" + rel);
  return do_mount(host_path, FdPath(target.get()).path, nullptr, MS_BIND);
}

// A node for a host device given with --device, at its path in the VE's /dev (parents made).
Status add_device(int dev, const security::DeviceSpec& d, bool bind) {
  std::string rel = d.ve_path.substr(std::string_view("/dev/").size());
  for (std::size_t slash = rel.find('/'); slash != std::string::npos;
       slash = rel.find('/', slash + 1)) {
    if (::mkdirat(dev, rel.substr(0, slash).c_str(), 0755) != 0 && errno != EEXIST)
      return errno_fail("dev: creating the directory of " + d.ve_path);
  }
  mode_t type = d.type == 'b' ? S_IFBLK : S_IFCHR;
  return with_context(
      make_node(dev, rel, type | (d.mode & 07777), makedev(d.major, d.minor), d.host_path, bind),
      "for " + d.host_path);
}

Status setup_dev(int root, const std::string& console,
                 const std::vector<security::DeviceSpec>& devices, bool bind_nodes) {
  auto dev_dir = mount_point(root, "dev", 0755);
  if (!dev_dir) return tl::unexpected(dev_dir.error());
  KAPSEL_TRY(do_mount("tmpfs", FdPath(dev_dir->get()).path, "tmpfs", MS_NOSUID | MS_NOEXEC,
                      "mode=755,size=65536k"),
             "dev");
  // The tmpfs just mounted: empty and kapsel's own, so names in it resolve to nothing else.
  auto dev_path = open_beneath(root, "dev", O_DIRECTORY);
  if (!dev_path) return tl::unexpected(dev_path.error());
  UniqueFd dev(::openat(dev_path->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dev) return errno_fail("dev: opening it");
  // The nodes must be usable by every user of the VE: made with no umask in the way.
  mode_t old_umask = ::umask(0);
  Status made;
  for (const auto& d : security::minimal_devices()) {
    mode_t type = d.type == 'b' ? S_IFBLK : S_IFCHR;
    made = make_node(dev.get(), d.name, type | d.mode, makedev(d.major, d.minor),
                     std::string("/dev/") + d.name, bind_nodes);
    if (!made) break;
  }
  for (const auto& d : devices) {
    if (!made) break;
    made = add_device(dev.get(), d, bind_nodes);
  }
  ::umask(old_umask);
  if (!made) return made;
  auto sub_mount = [&](const char* name, mode_t mode, const char* fstype, unsigned long flags,
                       const char* options) -> Status {
    if (::mkdirat(dev.get(), name, mode) != 0)
      return errno_fail(std::string("dev: creating /dev/") + name);
    auto at = open_beneath(dev.get(), name, O_DIRECTORY);
    if (!at) return tl::unexpected(at.error());
    return do_mount(fstype, FdPath(at->get()).path, fstype, flags, options ? options : "");
  };
  // newinstance: the VE's ptys are its own, invisible to the host and to other VEs. Their group
  // is tty (5), where the VE has that group: a rootless VE without subordinate ids maps only 0.
  auto gid_map = fs::read_file("/proc/self/gid_map");
  const bool tty_group = !gid_map || security::maps_id(*gid_map, 5);
  KAPSEL_TRY(sub_mount("pts", 0755, "devpts", MS_NOSUID | MS_NOEXEC,
                       tty_group ? "newinstance,ptmxmode=0666,mode=0620,gid=5"
                                 : "newinstance,ptmxmode=0666,mode=0620"),
             "dev");
  KAPSEL_TRY(
      sub_mount("shm", 01777, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"),
      "dev");
  KAPSEL_TRY(sub_mount("mqueue", 0755, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr), "dev");
  const std::array<std::pair<const char*, const char*>, 5> links = {
      {{"pts/ptmx", "ptmx"},
       {"/proc/self/fd", "fd"},
       {"/proc/self/fd/0", "stdin"},
       {"/proc/self/fd/1", "stdout"},
       {"/proc/self/fd/2", "stderr"}}};
  for (const auto& [to, name] : links) {
    if (::symlinkat(to, dev.get(), name) != 0)
      return errno_fail(std::string("dev: symlink /dev/") + name);
  }
  // /dev/console is the monitor's pty, bound over an empty file made here (O_EXCL: nothing of
  // the VE's can stand in its place).
  UniqueFd target(
      ::openat(dev.get(), "console", O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!target) return errno_fail("console: creating /dev/console");
  KAPSEL_TRY(do_mount(console, FdPath(target.get()).path, nullptr, MS_BIND), "console");
  return {};
}

// Hides and write-protects what the kernel does not namespace (security/masks.hpp), once
// everything else is mounted. A path this kernel lacks has nothing to hide.
template <class Masked, class Readonly>
Status mask_paths(int root, const Masked& masked_paths, const Readonly& readonly_paths) {
  // The /dev/null just made, verified, so that no file of the VE's stands in for it.
  auto null = open_beneath(root, "dev/null");
  if (!null) return tl::unexpected(null.error());
  struct stat st {};
  if (::fstat(null->get(), &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
    return fail(ErrorKind::failure, "masking: /dev/null is not the null device");
  for (std::string_view path : masked_paths) {
    auto at = open_beneath(root, path);
    if (!at) {
      if (at.error().code == ENOENT) continue;
      return tl::unexpected(at.error().context("masking"));
    }
    if (::fstat(at->get(), &st) != 0) return errno_fail("masking " + std::string(path));
    Status masked =
        S_ISDIR(st.st_mode)
            ? do_mount("tmpfs", FdPath(at->get()).path, "tmpfs",
                       MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0555")
            : do_mount(FdPath(null->get()).path, FdPath(at->get()).path, nullptr, MS_BIND);
    KAPSEL_TRY(masked, "masking " + std::string(path));
  }
  for (std::string_view path : readonly_paths) {
    auto at = open_beneath(root, path);
    if (!at) {
      if (at.error().code == ENOENT) continue;
      return tl::unexpected(at.error().context("protecting"));
    }
    KAPSEL_TRY(bind_readonly(at->get(), at->get(),
                             MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC),
               "making " + std::string(path) + " read-only");
  }
  return {};
}

Status pivot(int root) {
  if (::fchdir(root) != 0) return errno_fail("pivot_root: entering the VE's root");
  // pivot_root(".", ".") stacks the old root under the new one at "/", so no directory for it
  // is needed inside the VE; detaching "." then drops the host's tree from the namespace.
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return errno_fail("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return errno_fail("pivot_root: detaching the host root");
  if (::chdir("/") != 0) return errno_fail("pivot_root: chdir /");
  return {};
}

// Attaches the detached mount `mnt` on `target`, which may be a /proc/self/fd path (hence
// MOVE_MOUNT_T_SYMLINKS; kapsel's own targets hold no other links).
Status attach(int mnt, const std::string& target) {
  if (::move_mount(mnt, "", AT_FDCWD, target.c_str(),
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS) != 0)
    return errno_fail("attaching a mount on " + target);
  return {};
}

// A new file system of `type` with `options`, mounted on `target`. Returns the mount's root:
// whatever else is stacked on `target` later, the descriptor still names this mount, and paths
// through FdPath of it lead into it (a path through `target` may not, when `target` is itself
// a /proc/self/fd path: see pin_host_paths).
Result<UniqueFd> new_mount(const char* type,
                           const std::vector<std::pair<std::string, std::string>>& options,
                           const std::string& target) {
  const std::string what = std::string("mounting ") + type + " on " + target;
  UniqueFd fs(::fsopen(type, FSOPEN_CLOEXEC));
  if (!fs) return errno_fail(what);
  for (const auto& [key, value] : options) {
    if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0) != 0)
      return errno_fail(what + ": " + key + "=" + value);
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) return errno_fail(what);
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
  if (!mnt) return errno_fail(what);
  KAPSEL_TRY(attach(mnt.get(), target), what);
  return mnt;
}

// Mounts the VE's root on spec.target and returns it, held open: every path below is resolved
// beneath it.
Result<UniqueFd> mount_overlay(const RootfsSpec& spec) {
  std::string lower = spec.lower;
  std::string upper = spec.upper;
  std::string work = spec.work;
  if (spec.lower_tree >= 0) {
    // The id-mapped template is put on the target first, under the overlay, which takes it
    // through its descriptor.
    KAPSEL_TRY(attach(spec.lower_tree, spec.target), "the id-mapped template");
    lower = FdPath(spec.lower_tree).path;
  }
  UniqueFd tmpfs;
  if (spec.tmpfs_upper) {
    // Mounted on the target itself, where the overlay then stacks on top of it: overlayfs keeps
    // a private reference to its upper layer, so the tmpfs lives exactly as long as the
    // overlay. No nodev or nosuid: the upper layer is checked on access like ext4 would be.
    auto made = new_mount("tmpfs", {{"mode", "0755"}}, spec.target);
    if (!made) return tl::unexpected(made.error().context("private layer"));
    tmpfs = std::move(*made);
    upper = std::string(FdPath(tmpfs.get()).path) + "/upper";
    work = std::string(FdPath(tmpfs.get()).path) + "/work";
    KAPSEL_TRY(ensure_dir(upper, 0755), "private layer");
    KAPSEL_TRY(ensure_dir(work, 0700), "private layer");
    for (const auto& [path, content] : spec.upper_files) {
      std::string file = upper + "/" + path;
      KAPSEL_TRY(fs::make_dirs(file.substr(0, file.rfind('/')), 0755), "private layer");
      KAPSEL_TRY(fs::write_file_atomic(file, content, 0644, /*sync=*/false), "private layer");
    }
  }
  return new_mount("overlay", {{"lowerdir", lower}, {"upperdir", upper}, {"workdir", work}},
                   spec.target);
}

// Makes `path` (absolute, in the container) beneath `root`, its parents as directories and
// itself as a directory or, with `file`, an empty file; no symlink is followed on the way.
// Returns it as an O_PATH descriptor.
Result<UniqueFd> make_beneath(int root, std::string_view path, bool file) {
  std::string rel(path);
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  std::size_t pos = 0;
  while (pos < rel.size()) {
    std::size_t slash = rel.find('/', pos);
    bool last = slash == std::string::npos;
    std::string part = rel.substr(0, last ? rel.size() : slash);
    if (!last || !file) {
      if (::mkdirat(root, part.c_str(), 0755) != 0 && errno != EEXIST)
        return errno_fail("creating /" + part);
    } else {
      auto parent = open_beneath(
          root, part.substr(0, part.rfind('/') == std::string::npos ? 0 : part.rfind('/')),
          O_DIRECTORY);
      if (!parent) return tl::unexpected(parent.error());
      UniqueFd dir(::openat(parent->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      std::string name =
          part.substr(part.rfind('/') == std::string::npos ? 0 : part.rfind('/') + 1);
      UniqueFd made(
          ::openat(dir.get(), name.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644));
      if (!made && errno != EISDIR) return errno_fail("creating /" + part);
    }
    if (last) break;
    pos = slash + 1;
  }
  return open_beneath(root, rel);
}

// The spec's default devices (runtime-spec config-linux.md, "Default Devices") where the bundle's
// /dev lacks them; with `bind` (in a user namespace, where mknod(2) is refused) the host's nodes
// bound in their place, as runc does.
Status bundle_default_devices(int root, const std::string& console, bool bind) {
  auto dev_dir = make_beneath(root, "/dev", false);
  if (!dev_dir) return tl::unexpected(dev_dir.error());
  UniqueFd dev(::openat(dev_dir->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dev) return errno_fail("dev: opening it");
  mode_t old_umask = ::umask(0);
  Status made;
  for (const auto& d : security::minimal_devices()) {
    std::string name = d.name;
    if (name.find('/') != std::string::npos) continue;  // sub-directories are the bundle's
    mode_t type = d.type == 'b' ? S_IFBLK : S_IFCHR;
    struct stat existing {};
    if (::fstatat(dev.get(), d.name, &existing, AT_SYMLINK_NOFOLLOW) == 0) continue;
    made =
        make_node(dev.get(), name, type | d.mode, makedev(d.major, d.minor), "/dev/" + name, bind);
    if (!made) break;
  }
  ::umask(old_umask);
  if (!made) return made;
  const std::array<std::pair<const char*, const char*>, 6> links = {{{"pts/ptmx", "ptmx"},
                                                                     {"/proc/self/fd", "fd"},
                                                                     {"/proc/self/fd/0", "stdin"},
                                                                     {"/proc/self/fd/1", "stdout"},
                                                                     {"/proc/self/fd/2", "stderr"},
                                                                     {"/proc/kcore", "core"}}};
  for (const auto& [to, name] : links) {
    if (::symlinkat(to, dev.get(), name) != 0 && errno != EEXIST)
      return errno_fail(std::string("dev: symlink /dev/") + name);
  }
  if (!console.empty()) {
    UniqueFd target(
        ::openat(dev.get(), "console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!target) return errno_fail("console: creating /dev/console");
    KAPSEL_TRY(do_mount(console, FdPath(target.get()).path, nullptr, MS_BIND), "console");
  }
  return {};
}

Status bundle_device(int root, const store::BundleDevice& d, bool bind) {
  if (d.path.rfind("/dev/", 0) != 0)
    return fail(ErrorKind::usage, "device " + d.path + ": not under /dev");
  std::string parent = d.path.substr(0, d.path.rfind('/'));
  auto dir_path = make_beneath(root, parent, false);
  if (!dir_path) return tl::unexpected(dir_path.error());
  UniqueFd dir(::openat(dir_path->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::string name = d.path.substr(d.path.rfind('/') + 1);
  mode_t type = d.type == 'b' ? S_IFBLK : d.type == 'p' ? S_IFIFO : S_IFCHR;
  mode_t old_umask = ::umask(0);
  (void)::unlinkat(dir.get(), name.c_str(), 0);
  // In a user namespace the host's node at the same path is bound instead (and keeps its owner).
  Status made = make_node(dir.get(), name, type | (d.mode & 07777),
                          makedev(static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor)),
                          d.path, bind);
  ::umask(old_umask);
  if (!made) return with_context(made, "creating device " + d.path);
  if (bind) return {};
  if (::fchownat(dir.get(), name.c_str(), d.uid, d.gid, AT_SYMLINK_NOFOLLOW) != 0)
    return errno_fail("giving device " + d.path + " its owner");
  return {};
}

// One entry of the bundle's "mounts" on its destination beneath `root`.
Status bundle_mount(int root, const std::string& bundle_dir, const store::BundleMount& m) {
  MountOptions o = parse_mount_options(m.options);
  if (m.type == "bind") o.bind = true;
  std::string source = m.source;
  if (o.bind && !source.empty() && source.front() != '/') source = bundle_dir + "/" + source;
  struct stat st {};
  bool file = o.bind && ::stat(source.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
  auto target = make_beneath(root, m.destination, file);
  if (!target) return tl::unexpected(target.error());
  if (o.bind) {
    KAPSEL_TRY(
        do_mount(source, FdPath(target->get()).path, nullptr, MS_BIND | (o.recursive ? MS_REC : 0)),
        "bind");
    // The descriptor names the directory under the new mount: open it again for the remount.
    target = open_beneath(root, m.destination);
    if (!target) return tl::unexpected(target.error());
    unsigned long remount = o.flags & ~(MS_REC | MS_BIND | MS_REMOUNT);
    if (remount != 0)
      KAPSEL_TRY(
          do_mount("none", FdPath(target->get()).path, nullptr, MS_BIND | MS_REMOUNT | remount),
          "remounting bind");
  } else {
    std::string type = m.type;
    if (type == "cgroup") {
      // A hybrid or v1 host's controllers cannot all be shown in one mount: the container
      // gets the unified hierarchy (its own part of it, through its cgroup namespace).
      type = "cgroup2";
    }
    Status mounted = do_mount(source.empty() ? type : source, FdPath(target->get()).path,
                              type.c_str(), o.flags, o.data);
    if (!mounted && m.type == "cgroup") return {};  // no cgroup2 on this host: left empty
    KAPSEL_TRY(mounted, "mount");
    target = open_beneath(root, m.destination);
    if (!target) return tl::unexpected(target.error());
  }
  if (o.propagation != 0)
    KAPSEL_TRY(do_mount("none", FdPath(target->get()).path, nullptr, o.propagation),
               "setting the mount's propagation");
  return {};
}

// linux.sysctl through the container's own /proc (mounted by the bundle's mounts), before its
// read-only paths (/proc/sys among them) are made read-only, as runc does.
Status write_sysctls(int root, const std::map<std::string, std::string>& sysctl) {
  for (const auto& [key, value] : sysctl) {
    std::string rel = "proc/sys/" + key;
    std::replace(rel.begin() + 9, rel.end(), '.', '/');
    struct open_how how {};
    how.flags = O_WRONLY | O_CLOEXEC | O_NOFOLLOW;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how)));
    if (!fd) return errno_fail("sysctl " + key + ": opening /" + rel);
    if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
      return errno_fail("sysctl " + key + ": writing " + value);
  }
  return {};
}

unsigned long propagation_flags(const std::string& name) {
  if (name == "private") return MS_PRIVATE;
  if (name == "rprivate") return MS_PRIVATE | MS_REC;
  if (name == "shared") return MS_SHARED;
  if (name == "rshared") return MS_SHARED | MS_REC;
  if (name == "slave") return MS_SLAVE;
  if (name == "rslave") return MS_SLAVE | MS_REC;
  if (name == "unbindable") return MS_UNBINDABLE;
  if (name == "runbindable") return MS_UNBINDABLE | MS_REC;
  return 0;
}

}  // namespace

MountOptions parse_mount_options(const std::vector<std::string>& options) {
  // fstab's names (mount(8)); those that clear a flag clear it.
  static const std::array<std::tuple<const char*, bool, unsigned long>, 20> kFlags = {{
      {"ro", false, MS_RDONLY},          {"rw", true, MS_RDONLY},
      {"nosuid", false, MS_NOSUID},      {"suid", true, MS_NOSUID},
      {"nodev", false, MS_NODEV},        {"dev", true, MS_NODEV},
      {"noexec", false, MS_NOEXEC},      {"exec", true, MS_NOEXEC},
      {"sync", false, MS_SYNCHRONOUS},   {"async", true, MS_SYNCHRONOUS},
      {"dirsync", false, MS_DIRSYNC},    {"remount", false, MS_REMOUNT},
      {"mand", false, MS_MANDLOCK},      {"nomand", true, MS_MANDLOCK},
      {"atime", true, MS_NOATIME},       {"noatime", false, MS_NOATIME},
      {"diratime", true, MS_NODIRATIME}, {"nodiratime", false, MS_NODIRATIME},
      {"relatime", false, MS_RELATIME},  {"strictatime", false, MS_STRICTATIME},
  }};
  MountOptions o;
  for (const auto& opt : options) {
    if (opt == "bind" || opt == "rbind") {
      o.bind = true;
      o.recursive = o.recursive || opt == "rbind";
      continue;
    }
    if (auto p = propagation_flags(opt); p != 0) {
      o.propagation |= p;
      continue;
    }
    if (opt == "norelatime") {
      o.flags &= ~static_cast<unsigned long>(MS_RELATIME);
      continue;
    }
    bool known = false;
    for (const auto& [name, clear, flag] : kFlags) {
      if (opt != name) continue;
      known = true;
      if (clear) {
        o.flags &= ~flag;
      } else {
        o.flags |= flag;
      }
    }
    if (known) continue;
    if (!o.data.empty()) o.data += ",";
    o.data += opt;
  }
  return o;
}

Status setup_bundle_rootfs(const store::BundleConfig& bundle, const std::string& console) {
  KAPSEL_TRY(do_mount("none", "/", nullptr, MS_REC | MS_PRIVATE), "making mounts private");
  // The root is a mount of its own, for pivot_root; a bind of itself.
  KAPSEL_TRY(do_mount(bundle.rootfs, bundle.rootfs, nullptr, MS_BIND | MS_REC), "root");
  UniqueFd root(::open(bundle.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return errno_fail("opening the root " + bundle.rootfs);
  for (const auto& m : bundle.mounts)
    KAPSEL_TRY(bundle_mount(root.get(), bundle.bundle, m), "mounting " + m.destination);
  trace::point("init: bundle mounts");
  // A user namespace of the container's own may not make device nodes.
  const bool bind = bundle.has_namespace("user");
  KAPSEL_TRY(bundle_default_devices(root.get(), console, bind), "dev");
  for (const auto& d : bundle.devices)
    KAPSEL_TRY(bundle_device(root.get(), d, bind && d.type != 'p'), "devices");
  KAPSEL_TRY(write_sysctls(root.get(), bundle.sysctl), "linux.sysctl");
  KAPSEL_TRY(mask_paths(root.get(), bundle.masked_paths, bundle.readonly_paths),
             "masked and read-only paths");
  if (bundle.no_pivot) {
    // --no-pivot (a root on a ramfs, where pivot_root fails): the root moved onto / and chroot.
    if (::fchdir(root.get()) != 0) return errno_fail("entering the root");
    if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return errno_fail("moving the root");
    if (::chroot(".") != 0 || ::chdir("/") != 0) return errno_fail("chroot");
  } else {
    KAPSEL_TRY(pivot(root.get()), "pivot_root");
  }
  if (bundle.readonly) {
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof attr) != 0)
      return errno_fail("making the root read-only");
  }
  if (!bundle.rootfs_propagation.empty()) {
    unsigned long p = propagation_flags(bundle.rootfs_propagation);
    if (p == 0)
      return fail(ErrorKind::usage,
                  "rootfsPropagation " + bundle.rootfs_propagation + " is unknown");
    KAPSEL_TRY(do_mount("none", "/", nullptr, p), "rootfsPropagation");
  }
  return {};
}

Status setup_rootfs(const RootfsSpec& spec) {
  // Nothing done in this namespace may propagate back to the host.
  KAPSEL_TRY(do_mount("none", "/", nullptr, MS_REC | MS_PRIVATE), "making mounts private");
  trace::point("init: private");
  // Mounts below go through /proc/self/fd of the host's procfs: make sure that is what it is.
  struct statfs proc_fs {};
  if (::statfs("/proc/self/fd", &proc_fs) != 0 || proc_fs.f_type != PROC_SUPER_MAGIC)
    return fail(ErrorKind::failure, "setting up the VE: the host's /proc is not a procfs");
  auto overlay = mount_overlay(spec);
  if (!overlay) return tl::unexpected(overlay.error().context("overlay"));
  trace::point("init: overlay");
  UniqueFd root = std::move(*overlay);
  auto proc = mount_point(root.get(), "proc", 0555);
  if (!proc) return tl::unexpected(proc.error());
  KAPSEL_TRY(do_mount("proc", FdPath(proc->get()).path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC),
             "proc");
  auto sys = mount_point(root.get(), "sys", 0555);
  if (!sys) return tl::unexpected(sys.error());
  KAPSEL_TRY(do_mount("sysfs", FdPath(sys->get()).path, "sysfs",
                      MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC),
             "sys");
  trace::point("init: proc sys");
  // A VE whose service cannot serve it still starts, with the kernel's figures: the service
  // is a view, not something the VE's programs depend on. (Its targets lie in the procfs and
  // sysfs just mounted, which hold nothing of the VE's.)
  if (!spec.procfs_mount.empty())
    (void)procfs::bind_into(spec.procfs_mount, spec.ve_name, FdPath(root.get()).path);
  trace::point("init: procfs binds");
  KAPSEL_TRY(setup_dev(root.get(), spec.console, spec.devices, spec.userns), "dev");
  KAPSEL_TRY(mask_paths(root.get(), security::kMaskedPaths, security::kReadonlyPaths),
             "setting up the VE");
  trace::point("init: mounts ready");
  return pivot(root.get());
}

Status pin_host_paths(RootfsSpec& spec, std::vector<UniqueFd>& pins) {
  for (std::string* path : {&spec.target, &spec.upper, &spec.work, &spec.procfs_mount}) {
    // An ephemeral VE's layers are made in its own tmpfs.
    if (path->empty() || (spec.tmpfs_upper && (path == &spec.upper || path == &spec.work)))
      continue;
    UniqueFd fd(::open(path->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return errno_fail("opening " + *path);
    *path = FdPath(fd.get()).path;
    pins.push_back(std::move(fd));
  }
  return {};
}

}  // namespace kapsel::driver::container
