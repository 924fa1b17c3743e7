// The /proc service: one FUSE file system per run dir that serves every running VE its own
// /proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats and
// /sys/devices/system/cpu/online, so `free`, `nproc`, `uptime` and `top` inside a VE show its
// limits, its usage and its own boot time.
//
// Density: one small process serves all VEs of a run dir (not one daemon per VE), and it does
// no work for a VE until something in it reads a file; only VEs whose loadavg was read in the
// last 15 minutes are sampled (every 5 s) for their load average.
//
// Failure: the VEs do not depend on the service. Its files are bind-mounted over the kernel's
// in each VE; if the service dies, the kernel aborts the FUSE connection and every read of a
// bound file fails at once with ENOTCONN (never hangs). The monitor then calls unbind_in() (the
// kernel's own files show again), ensure_service() and rebind_in().
//
//   <run_dir>/procfs/                  the mount point (fsname kapsel-procfs, type fuse.kapsel)
//   <run_dir>/procfs/<ve>/meminfo ...  one directory per VE whose state.json has a live monitor
//   <run_dir>/procfs.pid               "pid start_time\n" of the service, flock'ed while it runs
//   <run_dir>/procfs.lock              serialises starting and stopping the service
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/process.hpp"
#include "store/store.hpp"

namespace kapsel::procfs {

// A file the service serves in each VE's directory and where it is bound inside the VE.
struct VirtualFile {
  std::string_view name;    // in <mountpoint>/<ve>/
  std::string_view target;  // absolute path inside the VE
};
extern const std::array<VirtualFile, 8> kVirtualFiles;

// <run_dir>/procfs
[[nodiscard]] std::string mountpoint(const store::Paths& paths);

// Makes sure the service of this run dir runs and is mounted, starting it if not: runs
// `self_exe procfs-service --run-dir R --root X` detached (its own session, stdio on /dev/null,
// no inherited descriptors, default signal handling) and waits until it has mounted (at most
// 2 s). Racing callers are serialised by a lock; the loser finds the winner's service. Cheap
// when the service runs (a read of procfs.pid, of /proc/<pid>/stat and two statx that do not
// reach the FUSE server), so every `kapsel start` may call it. Returns the service's process.
[[nodiscard]] Result<proc::ProcessRef> ensure_service(const store::Paths& paths,
                                                      const std::string& self_exe);

// The service's main, for the hidden command `kapsel procfs-service`: mounts (lazily
// unmounting a dead predecessor's mount first), writes procfs.pid, serves until SIGTERM, SIGINT
// or SIGHUP or until it is unmounted, then unmounts. Returns the process's exit code; errors go
// to stderr. Refuses to run (exit code 1) when another service holds the run dir.
[[nodiscard]] int serve(const store::Paths& paths);

// Stops the service of the run dir (SIGTERM, up to 2 s, then SIGKILL) and removes its mount,
// also a dead service's. No error if it is not running.
[[nodiscard]] Status stop_service(const store::Paths& paths);

// Looks up <mountpoint>/<ve> and its files, so that the kernel has their names cached (for a
// second) when the VE's setup child binds them: each lookup is a round trip to the service,
// which the VE's monitor makes while the child mounts the VE's root, instead of the child after
// it. Needs the VE's state.json (see bind_into); errors are of no consequence and not reported.
void prefetch(const std::string& mountpoint, const std::string& ve);

// For a VE's setup child, in the VE's new mount namespace, after <rootfs>/proc and <rootfs>/sys
// are mounted and before pivot_root: bind-mounts <mountpoint>/<ve>/<name> read-only (and nosuid,
// nodev, noexec) over <rootfs><target> for each virtual file. A target the VE's kernel files
// lack is skipped. Fails, with nothing left bound, if the service is not reachable or does not
// know the VE (its state.json must exist with a live monitor); the caller decides whether the VE
// starts without.
[[nodiscard]] Status bind_into(const std::string& mountpoint, const std::string& ve,
                               const std::string& rootfs);

// In the mount namespace of a running VE (joined with setns(2) through `init_pidfd` in a forked
// child, so the caller is untouched): lazily unmounts the service's files, so the kernel's own
// show again. Only mounts of type fuse.kapsel are removed. Nothing bound is success.
[[nodiscard]] Status unbind_in(int init_pidfd);

// The inverse, after the service was restarted: binds the files of `ve` from the service at
// `mountpoint` (cloned on the host side with open_tree(2)) into the VE's mount namespace
// (move_mount(2) in a forked child). Call unbind_in() first, or bound files stack.
[[nodiscard]] Status rebind_in(int init_pidfd, const std::string& mountpoint,
                               const std::string& ve);

}  // namespace kapsel::procfs
