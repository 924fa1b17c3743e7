// Builds the built-in "busybox" template: a small but complete system made from the host's
// static busybox (Debian's busybox-static), so that a first VE needs nothing from the network.
#pragma once

#include <string>

#include "common/error.hpp"
#include "image/template.hpp"

namespace kapsel::image {

inline constexpr const char* kHostBusybox = "/bin/busybox";

// Fills `rootfs`, an existing empty directory, from the busybox binary at `busybox` (which
// must be statically linked: the tree has no libc). Needs no privilege, since it creates only
// directories, regular files and symlinks: no device nodes, because kapsel mounts /dev for a
// container and the guest kernels of the other kinds mount devtmpfs.
[[nodiscard]] Status build_busybox_rootfs(const std::string& rootfs, const ProgressFn& progress,
                                          const std::string& busybox = kHostBusybox);

}  // namespace kapsel::image
