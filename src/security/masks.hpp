// The parts of /proc and /sys a VE must not see or change: the kernel's files there are not
// namespaced, so writing one (sysrq-trigger, core_pattern) or reading one (kcore, keys,
// timer_list) acts on or reveals the host. The lists are runc's and Docker's defaults.
#pragma once

#include <array>
#include <string_view>

namespace kapsel::security {

// Hidden: a file is covered by /dev/null, a directory by an empty read-only tmpfs.
inline constexpr std::array<std::string_view, 12> kMaskedPaths = {
    "/proc/acpi",       "/proc/asound",      "/proc/interrupts",
    "/proc/kcore",      "/proc/keys",        "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi",       "/sys/firmware",     "/sys/devices/virtual/powercap"};

// Read-only: bound over themselves with the read-only flag (/sys is read-only as a whole).
inline constexpr std::array<std::string_view, 5> kReadonlyPaths = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};

}  // namespace kapsel::security
