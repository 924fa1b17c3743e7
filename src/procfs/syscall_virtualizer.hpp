// sysinfo(2) and sched_getaffinity(2) answered for a VE's processes with the VE's own figures.
//
// Inside a VE limited to 256 MiB and one CPU, busybox `free` takes total and free RAM from
// sysinfo(2) and `nproc` counts the bits of sched_getaffinity(2); the kernel answers both with
// the host's figures. A seccomp filter installed in the VE's init (and inherited by everything
// it starts) turns these two system calls into notifications (SECCOMP_RET_USER_NOTIF, see
// seccomp_unotify(2)) that the VE's monitor answers from its VeView, so `free` agrees with the
// /proc/meminfo that procfs_service renders from the same view.
//
// This filter is not a security boundary: every other system call is allowed, and a process
// the filter cannot serve is let through to the kernel rather than failed.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "procfs/ve_view.hpp"

// <linux/seccomp.h>'s notification and response; only the implementation needs their layout.
struct seccomp_notif;
struct seccomp_notif_resp;

namespace kapsel::procfs {

// Whether the kernel can notify user space of system calls (Linux 5.0). Answering "let the
// kernel do it" came in 5.5; before that such calls fail with ENOSYS instead.
[[nodiscard]] bool user_notification_supported();

// Loads the filter into the calling process and returns its listener, for the monitor.
//
// Call it in the VE's init (or in a process `kapsel exec` starts in the VE) after the last of
// its own set-up calls and before execve: from here on, sysinfo(2) and sched_getaffinity(2)
// block until the monitor answers, so the listener must reach the monitor (send_listener_fd)
// before anything in this process calls either; then close this process's copy (it is
// O_CLOEXEC, so execve closes it at the latest; a VE process holding it could answer its own
// VE's calls).
//
// The kernel takes a filter only from a process that has no_new_privs set or CAP_SYS_ADMIN in
// its user namespace. This function sets neither (no_new_privs is the security policy's
// decision; libseccomp only builds the program here, it does not load it with its default of
// setting no_new_privs), so call it before capabilities are dropped; without either it fails
// with ErrorKind::permission and says so, rather than raising a capability behind the caller's
// back.
//
// Fails with EBUSY if the process already has a filter with a listener (the kernel allows one
// per process: a VE cannot run a nested runtime that uses user notification itself).
[[nodiscard]] Result<UniqueFd> install_listener();
// The same with the program filter_program() built earlier (a VE's monitor builds it once, before
// it clones init, and keeps it for `kapsel exec`: libseccomp takes ~0.4 ms to build it).
[[nodiscard]] Result<UniqueFd> install_listener(const std::vector<sock_filter>& program);

// Passes `fd` (a listener) over the Unix socket `sock` as SCM_RIGHTS, and receives it on the
// other end. One fd per message, with a one-byte payload so that EOF is told apart.
[[nodiscard]] Status send_listener_fd(int sock, int fd);
[[nodiscard]] Result<UniqueFd> receive_listener_fd(int sock);

// ---------------------------------------------------------------------------------------------
// The parts of the answers that need no kernel, exposed for tests.

// The system call ABI of a caller: x86-64 (and x32, which shares its sysinfo and
// sched_getaffinity entry points) or 32-bit x86, whose struct sysinfo has 32-bit fields.
enum class SyscallAbi { native, ia32 };

// What sysinfo(2) would copy out to a caller of `abi`.
struct SysinfoReply {
  std::array<unsigned char, 128> bytes{};
  std::size_t size = 0;
};
[[nodiscard]] SysinfoReply make_sysinfo_reply(SyscallAbi abi, const VeView& view, double uptime_s,
                                              const std::array<unsigned long, 3>& host_loads);

// The host kernel's CPU mask: nr_cpu_ids (highest possible CPU + 1), which the caller's buffer
// must hold, and cpumask_size(), which sched_getaffinity(2) copies out at most. The latter can
// be larger than the former needs (NR_CPUS bits on kernels that keep cpumasks on the stack).
struct KernelCpumask {
  unsigned nr_cpu_ids = 0;
  std::size_t size = 0;
};
[[nodiscard]] Result<KernelCpumask> probe_kernel_cpumask();

// The errno sched_getaffinity(2) fails with for a buffer of `len` bytes (EINVAL), or 0: the
// kernel's checks, in its order, for each ABI (kernel/sched/syscalls.c, kernel/compat.c).
[[nodiscard]] int sched_getaffinity_len_errno(SyscallAbi abi, const KernelCpumask& kernel,
                                              std::uint32_t len);

// The calls the virtualiser answers (sysinfo, sched_getaffinity), by name: a VE's default
// seccomp profile sends them to the listener itself (security::default_profile), and then no
// filter_program() is loaded.
[[nodiscard]] const std::vector<std::string>& virtualised_calls();

// The filter install_listener() loads, as classic BPF: SECCOMP_RET_USER_NOTIF for sysinfo and
// sched_getaffinity on x86-64, i386 and x32 (natively elsewhere), SECCOMP_RET_ALLOW for the
// rest, other ABIs included.
[[nodiscard]] Result<std::vector<sock_filter>> filter_program();

// Clears every set bit of `mask` (a CPU bitmap, bit i of byte i/8 is CPU i) after its first
// `keep` set bits.
void keep_first_cpus(std::span<unsigned char> mask, std::size_t keep);

// ---------------------------------------------------------------------------------------------

// The monitor's side: owns the listeners (the init's, and one per process `kapsel exec` starts)
// and answers each notification. Single-threaded; driven by the monitor's poll loop.
class SyscallVirtualizer {
 public:
  // `view` computes the VE's current view. It is called at most once per notification, and a
  // view is reused for kViewMaxAge (the figures of `free` need not be fresher than that).
  explicit SyscallVirtualizer(std::function<Result<VeView>()> view);
  SyscallVirtualizer(const SyscallVirtualizer&) = delete;
  SyscallVirtualizer& operator=(const SyscallVirtualizer&) = delete;
  SyscallVirtualizer(SyscallVirtualizer&&) = default;
  SyscallVirtualizer& operator=(SyscallVirtualizer&&) = default;

  static constexpr std::chrono::milliseconds kViewMaxAge{100};

  void add(UniqueFd listener);

  // The listeners, to poll for POLLIN. add() and handle() change the set, so rebuild the poll
  // set from here each round. A listener reports POLLHUP once no process uses its
  // filter any more (on Linux 6.18 as soon as the last one has exited, before it is reaped);
  // handle() then drops it.
  [[nodiscard]] std::vector<int> fds() const;

  // Handles what poll reported on `fd`: answers one pending notification, or drops the
  // listener if it hung up. Returns at once if there is nothing to do, and never blocks for
  // long. Whatever it returns, a notification it received has been answered (the caller is
  // never left waiting), so an error is worth logging but not fatal; a caller that died or was
  // interrupted by a signal meanwhile is no error.
  [[nodiscard]] Status handle(int fd);

 private:
  struct View {
    VeView view;
    std::array<unsigned long, 3> host_loads{};
    std::chrono::steady_clock::time_point taken;
  };

  // The view, no older than kViewMaxAge; never null.
  [[nodiscard]] Result<const View*> current_view();
  // Receives one notification on `fd` and answers it.
  [[nodiscard]] Status answer_one(int fd);
  // Each fills `resp` (which starts out as "let the kernel answer") and returns an error only
  // to be reported.
  [[nodiscard]] Status answer_sysinfo(int fd, const ::seccomp_notif& req, SyscallAbi abi,
                                      ::seccomp_notif_resp& resp);
  [[nodiscard]] Status answer_sched_getaffinity(int fd, const ::seccomp_notif& req, SyscallAbi abi,
                                                ::seccomp_notif_resp& resp);

  std::function<Result<VeView>()> view_;
  std::optional<View> cached_;
  std::vector<UniqueFd> listeners_;
  // The host kernel's CPU mask, probed once; nullopt if the probe failed (then the kernel
  // answers sched_getaffinity itself).
  std::optional<KernelCpumask> cpumask_;
  std::vector<unsigned char> mask_buffer_;  // cpumask_->size bytes, reused
};

}  // namespace kapsel::procfs
