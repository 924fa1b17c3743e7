// The cgroup hierarchies mounted on the host, as listed in /proc/self/mountinfo. probe()
// classifies them into a layout; the backends only ever see the hierarchies they manage.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace kapsel::cgroup {

struct Hierarchy {
  // Mount point, e.g. /sys/fs/cgroup/cpu or /sys/fs/cgroup/unified.
  std::string mount;
  // A cgroup2 (unified) hierarchy rather than a v1 one.
  bool v2 = false;
  // The v1 controllers bound to this hierarchy, e.g. {"cpu", "cpuacct"} for a co-mount.
  // Always empty for cgroup2, whose controllers are listed in its cgroup.controllers instead.
  std::vector<std::string> controllers;
  // The cgroup mounted there, as a path within the hierarchy (mountinfo's root field): "/" when
  // the whole hierarchy is mounted, which is the rule on a host. Inside a container without a
  // cgroup namespace it is the container's own cgroup ("/lxc/c1"). Paths relative to the mount
  // point become the kernel's names for cgroups (OOM reports, /proc/<pid>/cgroup) with it in
  // front. Like all of mountinfo, it is relative to the cgroup namespace of the reader.
  std::string root = "/";

  [[nodiscard]] bool has(std::string_view controller) const;
};

// Parses the text of a mountinfo file (proc(5)) and returns the cgroup and cgroup2 mounts at or
// below `root`, in mount order. A hierarchy mounted twice (same device) is listed once, at its
// first mount point. Named v1 hierarchies without controllers ("name=systemd") are left out:
// they hold no resources and belong to whoever named them. A malformed line is an error: the
// kernel never writes one, so it means the wrong file was given.
[[nodiscard]] Result<std::vector<Hierarchy>> parse_mountinfo(std::string_view text,
                                                             std::string_view root);

}  // namespace kapsel::cgroup
