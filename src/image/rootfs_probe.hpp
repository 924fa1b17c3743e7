// Questions asked of a finished template tree: how to start and stop its init, and how much
// disk it uses. Used for imported (dir, tar) templates, whose contents kapsel did not choose.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace kapsel::image {

struct InitInfo {
  std::string init = "/sbin/init";
  int halt_signal = SIGTERM;
};

// Resolves `path` (absolute as seen from inside the tree) the way the kernel would after
// chroot(root): every symlink is followed, absolute targets restart at `root` and ".." never
// climbs above it, so nothing outside the tree is ever looked at. Returns the host path of the
// final non-symlink object, or not_found if a component is missing.
[[nodiscard]] Result<std::string> resolve_in_tree(const std::string& root, std::string_view path);

// Looks at /sbin/init of the tree: busybox init halts on SIGUSR1, systemd on SIGRTMIN+3, and
// SIGTERM is the sysvinit-style default for anything else. A tree without /sbin/init still gets
// "/sbin/init", so that starting it reports the missing init plainly.
[[nodiscard]] InitInfo detect_init(const std::string& root);

// Sum of st_blocks * 512 over the tree (what du reports), counting each hard-linked inode once
// and not crossing into other mounts.
[[nodiscard]] Result<std::uint64_t> disk_usage(const std::string& root);

}  // namespace kapsel::image
