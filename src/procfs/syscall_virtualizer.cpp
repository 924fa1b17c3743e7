#include "procfs/syscall_virtualizer.hpp"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "common/fs.hpp"
#include "security/seccomp_policy.hpp"

namespace kapsel::procfs {
namespace {

enum class Call { sysinfo, sched_getaffinity };

// One (architecture, system call number) pair the filter notifies, as the kernel reports it in
// seccomp_data.
struct Intercepted {
  std::uint32_t arch;  // AUDIT_ARCH_*, which libseccomp's SCMP_ARCH_* tokens equal
  int nr;
  Call call;
  SyscallAbi abi;
};

constexpr std::pair<const char*, Call> kCalls[] = {{"sysinfo", Call::sysinfo},
                                                   {"sched_getaffinity", Call::sched_getaffinity}};

// The ABIs the filter covers. On x86-64 a process can also make 32-bit x86 system calls (int
// $0x80 or a 32-bit binary; seccomp sees AUDIT_ARCH_I386 and the i386 numbers) and x32 calls
// (AUDIT_ARCH_X86_64 with __X32_SYSCALL_BIT in the number). Both are covered: a 32-bit `free`
// in the VE should see the VE too, and x32 shares the 64-bit entry points, so it needs nothing
// else. Other architectures' compat ABIs are not in the filter; the filter lets their calls
// through (SCMP_FLTATR_ACT_BADARCH below), so such a process sees the host's figures.
struct Abi {
  std::uint32_t filter_arch;  // the token libseccomp resolves names for
  std::uint32_t seen_arch;    // the arch seccomp_data reports
  SyscallAbi abi;
};

std::vector<Abi> covered_abis() {
  std::vector<Abi> abis = {{SCMP_ARCH_NATIVE, seccomp_arch_native(), SyscallAbi::native}};
#if defined(__x86_64__)
  abis.push_back({SCMP_ARCH_X86, SCMP_ARCH_X86, SyscallAbi::ia32});
  abis.push_back({SCMP_ARCH_X32, SCMP_ARCH_X86_64, SyscallAbi::native});
#endif
  return abis;
}

// The numbers are resolved by libseccomp, from the same tables it builds the filter with.
const std::vector<Intercepted>& intercepted() {
  static const std::vector<Intercepted> table = [] {
    std::vector<Intercepted> t;
    for (const Abi& abi : covered_abis()) {
      for (auto [name, call] : kCalls) {
        int nr = seccomp_syscall_resolve_name_arch(abi.filter_arch, name);
        if (nr >= 0) t.push_back({abi.seen_arch, nr, call, abi.abi});
      }
    }
    return t;
  }();
  return table;
}

const Intercepted* classify(const seccomp_data& data) {
  for (const Intercepted& i : intercepted())
    if (i.arch == data.arch && i.nr == data.nr) return &i;
  return nullptr;
}

// A pointer argument: a 32-bit caller's upper half is not part of its address.
std::uint64_t user_address(SyscallAbi abi, std::uint64_t arg) {
  return abi == SyscallAbi::ia32 ? static_cast<std::uint32_t>(arg) : arg;
}

Status set_attr(scmp_filter_ctx ctx, scmp_filter_attr attr, std::uint32_t value,
                std::string_view what) {
  if (int rc = seccomp_attr_set(ctx, attr, value); rc < 0) return sys_fail(-rc, what);
  return {};
}

// The 32-bit x86 struct sysinfo (the kernel's struct compat_sysinfo, kernel/sys.c): longs are
// 32 bits wide, and the whole is 64 bytes.
struct CompatSysinfo {
  std::int32_t uptime;
  std::uint32_t loads[3];
  std::uint32_t totalram;
  std::uint32_t freeram;
  std::uint32_t sharedram;
  std::uint32_t bufferram;
  std::uint32_t totalswap;
  std::uint32_t freeswap;
  std::uint16_t procs;
  std::uint16_t pad;
  std::uint32_t totalhigh;
  std::uint32_t freehigh;
  std::uint32_t mem_unit;
  char f[8];
};
static_assert(sizeof(CompatSysinfo) == 64);
static_assert(offsetof(CompatSysinfo, procs) == 40 && offsetof(CompatSysinfo, mem_unit) == 52);
static_assert(sizeof(struct sysinfo) <= sizeof(SysinfoReply::bytes));

template <class T>
T saturate(std::uint64_t v) {
  return static_cast<T>(std::min<std::uint64_t>(v, std::numeric_limits<T>::max()));
}

// Puts an answer into the caller's memory: checks that its notification is still pending (the
// caller has neither died nor been interrupted), writes `size` bytes at `address` in it, and
// sets `resp` to return `value`, or -EFAULT where the kernel's copy_to_user would have failed.
//
// Why process_vm_writev and not /proc/<pid>/mem: process_vm_writev honours the caller's page
// protections as copy_to_user does, so a pointer into read-only memory gets EFAULT as from the
// kernel, while a write through /proc/<pid>/mem is a forced (ptrace-style) access that would
// succeed there. Why the pid is safe to use: a caller cannot run while its notification is
// pending, so after NOTIF_ID_VALID it can only go by a fatal signal; its pid is then free only
// once its parent has reaped it, and is handed out again only after the allocator has gone
// round all other free pids. All that between the check and the next system call here would
// take the monitor being descheduled for that long while the host forks tens of thousands of
// times; the risk is accepted for exact EFAULT semantics. (seccomp_unotify(2) describes the
// /proc/<pid>/mem variant, whose fd pins the caller's memory and closes even that window.)
// The address is the caller's and is never dereferenced here: the kernel resolves it against
// the caller's mappings.
Status write_and_answer(int fd, const seccomp_notif& req, std::uint64_t address, const void* data,
                        std::size_t size, std::int64_t value, seccomp_notif_resp& resp) {
  std::uint64_t id = req.id;
  if (::ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) != 0) return {};  // the caller is gone
  struct iovec local = {const_cast<void*>(data), size};  // process_vm_writev only reads it
  // NOLINTNEXTLINE(performance-no-int-to-ptr): an address in the caller, never dereferenced here
  struct iovec remote = {reinterpret_cast<void*>(static_cast<std::uintptr_t>(address)), size};
  ssize_t n = ::process_vm_writev(static_cast<pid_t>(req.pid), &local, 1, &remote, 1, 0);
  if (n >= 0 && static_cast<std::size_t>(n) == size) {
    resp.flags = 0;
    resp.val = value;
    resp.error = 0;
    return {};
  }
  // A short write ran into an unmapped or read-only page part of the way.
  if (n >= 0 || errno == EFAULT) {
    resp.flags = 0;
    resp.error = -EFAULT;
    return {};
  }
  if (errno == ESRCH) return {};
  // Not allowed to write (a ptrace policy, say): the kernel answers with the host's figures.
  return errno_fail("writing the answer into process " + std::to_string(req.pid));
}

}  // namespace

bool user_notification_supported() {
  struct seccomp_notif_sizes sizes {};
  return ::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) == 0;
}

const std::vector<std::string>& virtualised_calls() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& entry : kCalls) n.emplace_back(entry.first);
    return n;
  }();
  return names;
}

Result<std::vector<sock_filter>> filter_program() {
  security::SeccompContext ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return fail(ErrorKind::failure, "creating a seccomp filter: libseccomp failed");
  // A call from an ABI the filter does not know is let through, not killed (libseccomp's
  // default): this filter only virtualises, and must never be why a process dies.
  KAPSEL_TRY(
      set_attr(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW, "letting other ABIs through"),
      "creating a seccomp filter");
  for (const Abi& abi : covered_abis()) {
    if (abi.filter_arch == SCMP_ARCH_NATIVE) continue;  // seccomp_init added it
    int rc = seccomp_arch_add(ctx.get(), abi.filter_arch);
    if (rc < 0 && rc != -EEXIST)
      return sys_fail(-rc, "adding an architecture to the seccomp filter");
  }
  for (auto [name, call] : kCalls) {
    (void)call;
    // A native number: libseccomp translates it by name for each architecture of the filter.
    int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_NOTIFY, seccomp_syscall_resolve_name(name), 0);
    if (rc < 0) return sys_fail(-rc, std::string("adding ") + name + " to the seccomp filter");
  }

  // libseccomp builds the program; install_listener() loads it. seccomp_load() in 2.5 keeps the
  // listener in process-wide state, asks for none if it holds one already and then hands out
  // that old fd number again (a double owner, or a stale number once it was closed), and by
  // default sets no_new_privs, which is for the security policy to decide. So the program is
  // exported and loaded here.
  return security::export_seccomp_program(ctx.get(), "the syscall virtualiser's filter");
}

Result<UniqueFd> install_listener() {
  auto program = filter_program();
  if (!program) return tl::unexpected(program.error());
  return install_listener(*program);
}

Result<UniqueFd> install_listener(const std::vector<sock_filter>& program) {
  if (!user_notification_supported())
    return sys_fail(errno, "the kernel lacks seccomp user notification (Linux 5.0 or later)");
  struct sock_fprog fprog = {static_cast<unsigned short>(program.size()),
                             const_cast<sock_filter*>(program.data())};

  // The kernel takes it from a process with no_new_privs or CAP_SYS_ADMIN in its user
  // namespace, and gives one listener per process (EBUSY if a filter of this process has one).
  long fd =
      ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
  if (fd < 0) {
    if (errno == EACCES) {
      return tl::unexpected(Error{ErrorKind::permission, EACCES,
                                  "loading the seccomp filter: the kernel wants CAP_SYS_ADMIN or "
                                  "no_new_privs (install the listener before dropping "
                                  "capabilities)"});
    }
    if (errno == EBUSY)
      return sys_fail(EBUSY, "loading the seccomp filter: the process already has a listener");
    return errno_fail("loading the seccomp filter");
  }
  return UniqueFd(static_cast<int>(fd));  // O_CLOEXEC, as the kernel makes every listener
}

Status send_listener_fd(int sock, int fd) {
  char byte = 'L';
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));  // CMSG_DATA need not be aligned for int
  while (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return errno_fail("sending the syscall listener");
  }
  return {};
}

Result<UniqueFd> receive_listener_fd(int sock) {
  char byte = 0;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = 0;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0) {
    if (errno != EINTR) return errno_fail("receiving the syscall listener");
  }
  if (n == 0)
    return fail(ErrorKind::failure, "receiving the syscall listener: the sender closed first");
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == nullptr || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(sizeof(int)))
    return fail(ErrorKind::failure, "receiving the syscall listener: no fd in the message");
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
  // Owned from here, so that a truncated message cannot leak it.
  UniqueFd owned(fd);
  if (msg.msg_flags & MSG_CTRUNC)
    return fail(ErrorKind::failure, "receiving the syscall listener: control data truncated");
  return owned;
}

SysinfoReply make_sysinfo_reply(SyscallAbi abi, const VeView& view, double uptime_s,
                                const std::array<unsigned long, 3>& host_loads) {
  // The kernel rounds the uptime up to the next second (do_sysinfo).
  auto uptime = static_cast<std::uint64_t>(std::ceil(std::max(uptime_s, 0.0)));
  SysinfoReply reply;
  if (abi == SyscallAbi::native) {
    // Zeroed whole, padding too: these bytes go into another process.
    struct sysinfo si;
    std::memset(&si, 0, sizeof si);
    si.uptime = saturate<long>(uptime);
    std::copy(host_loads.begin(), host_loads.end(), si.loads);
    si.totalram = view.mem_total;
    si.freeram = view.mem_free;
    si.sharedram = view.mem_shared;
    si.bufferram = view.mem_buffers;
    si.totalswap = view.swap_total;
    si.freeswap = view.swap_free;
    si.procs = saturate<unsigned short>(view.procs);  // the kernel truncates; a ceiling is kinder
    si.mem_unit = 1;
    std::memcpy(reply.bytes.data(), &si, sizeof si);
    reply.size = sizeof si;
    return reply;
  }
  // The kernel's compat_sysinfo: if RAM or swap does not fit 32 bits in bytes, count in pages
  // (PAGE_SIZE, 4 KiB on x86).
  unsigned shift = 0;
  if (view.mem_total > UINT32_MAX || view.swap_total > UINT32_MAX) shift = 12;
  auto mem = [&](std::uint64_t bytes) { return saturate<std::uint32_t>(bytes >> shift); };
  CompatSysinfo si;
  std::memset(&si, 0, sizeof si);
  si.uptime = saturate<std::int32_t>(uptime);
  for (std::size_t i = 0; i < 3; ++i) si.loads[i] = saturate<std::uint32_t>(host_loads[i]);
  si.totalram = mem(view.mem_total);
  si.freeram = mem(view.mem_free);
  si.sharedram = mem(view.mem_shared);
  si.bufferram = mem(view.mem_buffers);
  si.totalswap = mem(view.swap_total);
  si.freeswap = mem(view.swap_free);
  si.procs = saturate<std::uint16_t>(view.procs);
  si.mem_unit = 1u << shift;
  std::memcpy(reply.bytes.data(), &si, sizeof si);
  reply.size = sizeof si;
  return reply;
}

Result<KernelCpumask> probe_kernel_cpumask() {
  // nr_cpu_ids is the highest possible CPU plus one ("0-1", "0-3,8-11", "0").
  auto possible = fs::read_file("/sys/devices/system/cpu/possible");
  if (!possible) return tl::unexpected(possible.error().context("probing the CPU mask"));
  std::string_view text = *possible;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  auto last = text.find_last_of(",-");
  std::string_view highest = last == std::string_view::npos ? text : text.substr(last + 1);
  unsigned highest_cpu = 0;
  if (highest.empty() ||
      std::from_chars(highest.data(), highest.data() + highest.size(), highest_cpu).ec !=
          std::errc())
    return fail(ErrorKind::failure, "probing the CPU mask: cannot parse " + std::string(text));
  KernelCpumask mask;
  mask.nr_cpu_ids = highest_cpu + 1;

  // cpumask_size() is what sched_getaffinity(2) returns for a buffer at least that large; it
  // is at most NR_CPUS / 8 (8192 CPUs: 1 KiB), so a buffer that comes back part-filled is it.
  std::size_t len = std::max<std::size_t>(128, (std::size_t{mask.nr_cpu_ids} + 63) / 64 * 8);
  for (; len <= (1u << 20); len *= 2) {
    std::vector<unsigned char> buffer(len);
    long n = ::syscall(SYS_sched_getaffinity, 0, len, buffer.data());
    if (n < 0) return errno_fail("probing the CPU mask: sched_getaffinity");
    if (static_cast<std::size_t>(n) < len) {
      mask.size = static_cast<std::size_t>(n);
      return mask;
    }
  }
  return fail(ErrorKind::failure, "probing the CPU mask: larger than 1 MiB");
}

int sched_getaffinity_len_errno(SyscallAbi abi, const KernelCpumask& kernel, std::uint32_t len) {
  // The caller's mask is an array of its longs: 4 bytes for a 32-bit caller, 8 for x86-64 and
  // x32 (whose entry point is the 64-bit one).
  std::uint32_t word = abi == SyscallAbi::ia32 ? 4 : sizeof(unsigned long);
  if (static_cast<std::uint64_t>(len) * 8 < kernel.nr_cpu_ids) return EINVAL;
  if (len & (word - 1)) return EINVAL;
  return 0;
}

void keep_first_cpus(std::span<unsigned char> mask, std::size_t keep) {
  std::size_t seen = 0;
  for (unsigned char& byte : mask) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      auto m = static_cast<unsigned char>(1u << bit);
      if (!(byte & m)) continue;
      if (seen < keep) {
        ++seen;
      } else {
        byte = static_cast<unsigned char>(byte & ~m);
      }
    }
  }
}

SyscallVirtualizer::SyscallVirtualizer(std::function<Result<VeView>()> view)
    : view_(std::move(view)) {
  // Resolved now rather than on the first notification, whose caller would wait for it.
  (void)intercepted();
  if (auto mask = probe_kernel_cpumask()) {
    cpumask_ = *mask;
    mask_buffer_.resize(mask->size);
  }
}

void SyscallVirtualizer::add(UniqueFd listener) {
  listeners_.push_back(std::move(listener));
}

std::vector<int> SyscallVirtualizer::fds() const {
  std::vector<int> fds;
  fds.reserve(listeners_.size());
  for (const UniqueFd& l : listeners_) fds.push_back(l.get());
  return fds;
}

Status SyscallVirtualizer::handle(int fd) {
  auto it = std::find_if(listeners_.begin(), listeners_.end(),
                         [fd](const UniqueFd& l) { return l.get() == fd; });
  if (it == listeners_.end())
    return fail(ErrorKind::usage, "fd " + std::to_string(fd) + " is not a syscall listener");
  // Asked again rather than trusting the caller's poll: NOTIF_RECV waits when nothing is
  // pending, and a notification can vanish between poll and here (its caller was killed).
  struct pollfd p = {fd, POLLIN, 0};
  if (::poll(&p, 1, 0) < 0) return errno == EINTR ? Status{} : errno_fail("polling a listener");
  if (p.revents & POLLIN) return answer_one(fd);
  // No process uses the filter any more: nothing can ever arrive on it.
  if (p.revents & (POLLHUP | POLLERR)) listeners_.erase(it);
  // Someone closed our fd: forget it without closing the number again.
  if (p.revents & POLLNVAL) {
    (void)it->release();
    listeners_.erase(it);
  }
  return {};
}

Result<const SyscallVirtualizer::View*> SyscallVirtualizer::current_view() {
  auto now = std::chrono::steady_clock::now();
  if (cached_ && now - cached_->taken < kViewMaxAge) return &*cached_;
  cached_.reset();
  auto view = view_();
  if (!view) return tl::unexpected(view.error().context("computing the VE's view"));
  View v{std::move(*view), {}, now};
  // The kernel keeps one load average for the whole host and none per cgroup, so the VE is
  // shown the host's (as LXCFS does unless asked to estimate one).
  struct sysinfo host;
  if (::sysinfo(&host) == 0) std::copy(host.loads, host.loads + 3, v.host_loads.begin());
  cached_ = std::move(v);
  return &*cached_;
}

Status SyscallVirtualizer::answer_one(int fd) {
  seccomp_notif req;
  std::memset(&req, 0, sizeof req);  // the kernel refuses a buffer that is not zeroed
  if (::ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
    // ENOENT: the caller was killed or interrupted after poll saw it.
    if (errno == ENOENT || errno == EINTR) return {};
    return errno_fail("receiving a seccomp notification");
  }
  // Unless an answer below says otherwise, the kernel runs the call itself (host figures).
  // CONTINUE is unsafe only for filters that enforce policy (seccomp_unotify(2)); here it
  // merely means "not virtualised".
  seccomp_notif_resp resp;
  std::memset(&resp, 0, sizeof resp);
  resp.id = req.id;
  resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;

  Status status;
  const Intercepted* call = classify(req.data);
  if (call == nullptr) {
    // The filter notifies nothing else; if it ever does, the kernel answers.
  } else if (req.pid == 0) {
    status = fail(ErrorKind::failure,
                  "a VE process outside the monitor's pid namespace: cannot answer for it");
  } else if (call->call == Call::sysinfo) {
    status = answer_sysinfo(fd, req, call->abi, resp);
  } else {
    status = answer_sched_getaffinity(fd, req, call->abi, resp);
  }
  if (::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0 || errno == ENOENT) return status;
  // Before Linux 5.5 the kernel refuses CONTINUE (EINVAL). The caller must still get an answer,
  // so it gets the one it would get with no monitor at all.
  if (errno == EINVAL && (resp.flags & SECCOMP_USER_NOTIF_FLAG_CONTINUE)) {
    resp.flags = 0;
    resp.error = -ENOSYS;
    if (::ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0 || errno == ENOENT) return status;
  }
  auto sent = errno_fail("answering a seccomp notification");
  if (status) return sent;
  return status;  // the first error is the one worth reporting
}

Status SyscallVirtualizer::answer_sysinfo(int fd, const seccomp_notif& req, SyscallAbi abi,
                                          seccomp_notif_resp& resp) {
  auto view = current_view();
  if (!view) return tl::unexpected(view.error().context("answering sysinfo"));
  const View& v = **view;
  std::chrono::duration<double> age = std::chrono::steady_clock::now() - v.taken;
  SysinfoReply reply = make_sysinfo_reply(abi, v.view, v.view.uptime_s + age.count(), v.host_loads);
  return with_context(write_and_answer(fd, req, user_address(abi, req.data.args[0]),
                                       reply.bytes.data(), reply.size, 0, resp),
                      "answering sysinfo");
}

Status SyscallVirtualizer::answer_sched_getaffinity(int fd, const seccomp_notif& req,
                                                    SyscallAbi abi, seccomp_notif_resp& resp) {
  // The pid is in the caller's pid namespace, which this process cannot translate cheaply. For
  // another process, or for the caller naming itself by its pid rather than 0, the kernel
  // answers with the real mask, as taskset -p would see it from the host.
  auto pid = static_cast<std::int32_t>(static_cast<std::uint32_t>(req.data.args[0]));
  if (pid != 0 || !cpumask_) return {};
  auto len = static_cast<std::uint32_t>(req.data.args[1]);
  if (int e = sched_getaffinity_len_errno(abi, *cpumask_, len); e != 0) {
    resp.flags = 0;
    resp.error = -e;
    return {};
  }
  auto view = current_view();
  if (!view) return tl::unexpected(view.error().context("answering sched_getaffinity"));
  std::size_t cpus = (*view)->view.cpus.size();
  if (cpus == 0) return {};  // never, by VeView's contract; an empty mask would break callers
  // The caller's pid 0 means its calling thread, which req.pid names in this pid namespace.
  long n = ::syscall(SYS_sched_getaffinity, static_cast<pid_t>(req.pid), mask_buffer_.size(),
                     mask_buffer_.data());
  if (n < 0) {
    if (errno == ESRCH) return {};
    return errno_fail("answering sched_getaffinity: reading the caller's affinity");
  }
  // The VE's CPUs are the first of those the caller may run on, so that setting the mask it
  // was given back with sched_setaffinity(2) stays valid.
  std::span<unsigned char> mask(mask_buffer_.data(), static_cast<std::size_t>(n));
  keep_first_cpus(mask, cpus);
  // The kernel copies min(len, cpumask_size()) bytes and returns that count. A 32-bit caller's
  // mask is an array of 32-bit words; on little-endian x86 their bytes are the same.
  std::size_t copied = std::min<std::size_t>(len, mask.size());
  return with_context(write_and_answer(fd, req, user_address(abi, req.data.args[2]), mask.data(),
                                       copied, static_cast<std::int64_t>(copied), resp),
                      "answering sched_getaffinity");
}

}  // namespace kapsel::procfs
