// Building a container VE's root file system inside its new mount namespace, in named phases:
// overlay, proc, sys, dev, console, pivot_root. Everything is mounted only in the VE's own
// mount namespace, so it all disappears with the VE's last process: a crashed monitor cannot
// leak a mount into the host.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "security/devices.hpp"
#include "store/ve_config.hpp"

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
  // A VE with a user namespace (--userns) cannot make device nodes: its /dev holds binds of the
  // host's nodes instead. `lower_tree` is then the template's tree as an id-mapped mount (see
  // security::idmap_tree), attached nowhere yet, which is used as the overlay's lower layer.
  bool userns = false;
  int lower_tree = -1;
};

// For a VE with a user namespace, run before init becomes its namespace's root: opens the host
// directories of `spec` that the namespace's root may not be able to reach (they lie below
// kapsel's 0700 directories, owned by the host's root) and points `spec` at them through
// /proc/self/fd. `pins` holds the descriptors for as long as `spec` is used.
[[nodiscard]] Status pin_host_paths(RootfsSpec& spec, std::vector<UniqueFd>& pins);

// Runs in the VE's init process after unshare, as root (of its user namespace, if it has one). On
// return the process's root is the VE root and its cwd is "/".
[[nodiscard]] Status setup_rootfs(const RootfsSpec& spec);

// The root file system of a container made from an OCI bundle, in the same phases as a VE's:
// the bundle's root bound on itself, its mounts in order (config.json's "mounts"), the spec's
// default devices and links in /dev, its own device nodes, /dev/console (the pty slave
// `console`, when its process has a terminal), its masked and read-only paths, then pivot_root
// (or, with no_pivot, a move of the root onto / and chroot). On return the process's root is
// the bundle's root and its cwd is "/"; root.readonly and rootfsPropagation are in force.
[[nodiscard]] Status setup_bundle_rootfs(const store::BundleConfig& bundle,
                                         const std::string& console);

// A mount's fstab-style options as mount(2) takes them: flags to set, propagation flags (applied
// after the mount), whether it is a bind (recursive), and the rest as the file system's data.
struct MountOptions {
  unsigned long flags = 0;
  unsigned long propagation = 0;
  bool bind = false;
  bool recursive = false;
  std::string data;
};
[[nodiscard]] MountOptions parse_mount_options(const std::vector<std::string>& options);

}  // namespace kapsel::driver::container
