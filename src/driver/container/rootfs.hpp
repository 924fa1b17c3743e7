// Building a container VE's root file system inside its new mount namespace, in named phases:
// overlay, proc, sys, dev, console, pivot_root. Everything is mounted only in the VE's own
// mount namespace, so it all disappears with the VE's last process: a crashed monitor cannot
// leak a mount into the host.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "security/devices.hpp"

namespace kapsel::driver::container {

struct RootfsSpec {
  std::string lower;    // the template's read-only tree
  std::string upper;    // the VE's private writable layer
  std::string work;     // overlayfs work directory (same file system as upper)
  std::string target;   // mount point for the VE's root
  std::string console;  // host path of the pty slave that becomes /dev/console
  // An ephemeral VE (`run --rm`) writes to a tmpfs instead of `upper`, mounted only in its own
  // namespace (systemd-nspawn's --volatile=overlay): it is gone with the VE, with nothing on
  // disk to remove, and its pages are charged to the VE's memory cgroup. `upper_files` (path
  // relative to the VE's root, content) are written into it first, as create() writes them
  // into a VE's private area on disk.
  bool tmpfs_upper = false;
  std::vector<std::pair<std::string, std::string>> upper_files;
  // The /proc service's mount point and the VE's name in it: its files are bound over the
  // kernel's /proc and /sys files (procfs::bind_into). Empty: the VE sees the kernel's.
  std::string procfs_mount;
  std::string ve_name;
  // Host devices given to the VE (--device): made as nodes in its /dev.
  std::vector<security::DeviceSpec> devices;
};

// Runs in the VE's init process after unshare, as root. On return the process's root is the VE
// root and its cwd is "/".
[[nodiscard]] Status setup_rootfs(const RootfsSpec& spec);

}  // namespace kapsel::driver::container
