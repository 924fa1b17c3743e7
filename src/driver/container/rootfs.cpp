#include "driver/container/rootfs.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <array>

#include "common/fs.hpp"
#include "common/trace.hpp"
#include "common/unique_fd.hpp"
#include "procfs/procfs_service.hpp"

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

struct DeviceNode {
  const char* name;
  unsigned major;
  unsigned minor;
};

// The minimal /dev of a container (the same set as runc's and LXC's defaults).
constexpr std::array<DeviceNode, 6> kDevices = {{{"null", 1, 3},
                                                 {"zero", 1, 5},
                                                 {"full", 1, 7},
                                                 {"random", 1, 8},
                                                 {"urandom", 1, 9},
                                                 {"tty", 5, 0}}};

Status setup_dev(const std::string& root, const std::string& console) {
  std::string dev = root + "/dev";
  KAPSEL_TRY(ensure_dir(dev, 0755), "dev");
  KAPSEL_TRY(do_mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k"), "dev");
  for (const auto& d : kDevices) {
    std::string path = dev + "/" + d.name;
    if (::mknod(path.c_str(), S_IFCHR | 0666, makedev(d.major, d.minor)) != 0)
      return errno_fail("dev: creating " + path);
    // mknod is subject to the umask; the nodes must be usable by every user of the VE.
    if (::chmod(path.c_str(), 0666) != 0) return errno_fail("dev: chmod " + path);
  }
  KAPSEL_TRY(ensure_dir(dev + "/pts", 0755), "dev");
  // newinstance: the VE's ptys are its own, invisible to the host and to other VEs.
  KAPSEL_TRY(do_mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                      "newinstance,ptmxmode=0666,mode=0620,gid=5"),
             "dev");
  if (::symlink("pts/ptmx", (dev + "/ptmx").c_str()) != 0) return errno_fail("dev: ptmx");
  KAPSEL_TRY(ensure_dir(dev + "/shm", 01777), "dev");
  KAPSEL_TRY(do_mount("shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "mode=1777,size=65536k"),
             "dev");
  KAPSEL_TRY(ensure_dir(dev + "/mqueue", 0755), "dev");
  KAPSEL_TRY(do_mount("mqueue", dev + "/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC),
             "dev");
  const std::array<std::pair<const char*, const char*>, 4> links = {
      {{"/proc/self/fd", "fd"},
       {"/proc/self/fd/0", "stdin"},
       {"/proc/self/fd/1", "stdout"},
       {"/proc/self/fd/2", "stderr"}}};
  for (const auto& [to, name] : links) {
    if (::symlink(to, (dev + "/" + name).c_str()) != 0) return errno_fail("dev: symlink");
  }
  // /dev/console is the monitor's pty, bind-mounted over an empty file.
  std::string console_path = dev + "/console";
  UniqueFd f(::open(console_path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  if (!f) return errno_fail("console: creating " + console_path);
  KAPSEL_TRY(do_mount(console, console_path, nullptr, MS_BIND), "console");
  return {};
}

Status pivot(const std::string& root) {
  if (::chdir(root.c_str()) != 0) return errno_fail("pivot_root: entering " + root);
  // pivot_root(".", ".") stacks the old root under the new one at "/", so no directory for it
  // is needed inside the VE; detaching "." then drops the host's tree from the namespace.
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return errno_fail("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) return errno_fail("pivot_root: detaching the host root");
  if (::chdir("/") != 0) return errno_fail("pivot_root: chdir /");
  return {};
}

Status mount_overlay(const RootfsSpec& spec) {
  std::string upper = spec.upper;
  std::string work = spec.work;
  if (spec.tmpfs_upper) {
    // Mounted on the target itself, where the overlay then stacks on top of it: overlayfs keeps
    // a private reference to its upper layer, so the tmpfs lives exactly as long as the
    // overlay. No nodev or nosuid: the upper layer is checked on access like ext4 would be.
    KAPSEL_TRY(do_mount("tmpfs", spec.target, "tmpfs", 0, "mode=0755"), "private layer");
    upper = spec.target + "/upper";
    work = spec.target + "/work";
    KAPSEL_TRY(ensure_dir(upper, 0755), "private layer");
    KAPSEL_TRY(ensure_dir(work, 0700), "private layer");
    for (const auto& [path, content] : spec.upper_files) {
      std::string file = upper + "/" + path;
      KAPSEL_TRY(fs::make_dirs(file.substr(0, file.rfind('/')), 0755), "private layer");
      KAPSEL_TRY(fs::write_file_atomic(file, content, 0644, /*sync=*/false), "private layer");
    }
  }
  std::string opts = "lowerdir=" + spec.lower + ",upperdir=" + upper + ",workdir=" + work;
  return do_mount("overlay", spec.target, "overlay", 0, opts);
}

}  // namespace

Status setup_rootfs(const RootfsSpec& spec) {
  // Nothing done in this namespace may propagate back to the host.
  KAPSEL_TRY(do_mount("none", "/", nullptr, MS_REC | MS_PRIVATE), "making mounts private");
  trace::point("init: private");
  KAPSEL_TRY(mount_overlay(spec), "overlay");
  trace::point("init: overlay");
  const std::string& root = spec.target;
  KAPSEL_TRY(ensure_dir(root + "/proc", 0555), "proc");
  KAPSEL_TRY(do_mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC), "proc");
  KAPSEL_TRY(ensure_dir(root + "/sys", 0555), "sys");
  KAPSEL_TRY(
      do_mount("sysfs", root + "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC),
      "sys");
  // A VE whose service cannot serve it still starts, with the kernel's figures: the service
  // is a view, not something the VE's programs depend on.
  trace::point("init: proc sys");
  if (!spec.procfs_mount.empty()) (void)procfs::bind_into(spec.procfs_mount, spec.ve_name, root);
  trace::point("init: procfs binds");
  if (auto st = setup_dev(root, spec.console); !st) return st;
  trace::point("init: mounts ready");
  return pivot(root);
}

}  // namespace kapsel::driver::container
