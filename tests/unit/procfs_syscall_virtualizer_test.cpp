// sysinfo(2) and sched_getaffinity(2) answered by a SyscallVirtualizer, end to end: a forked
// child installs the filter and hands its listener to the test process over a socketpair, as a
// VE's init hands it to the monitor; the test process answers from a hand-made VeView while the
// child makes the calls and reports what it saw through a pipe. The filter needs CAP_SYS_ADMIN
// or no_new_privs; a child without the capability sets no_new_privs, so no root is needed. The
// answers that need no kernel (layouts, length checks) are tested directly at the end.
#include "procfs/syscall_virtualizer.hpp"
#include "raw_syscall.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <type_traits>

namespace kapsel::procfs {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1024} * 1024;
constexpr std::uint64_t kGiB = 1024 * kMiB;

VeView small_ve() {
  VeView v;
  v.mem_total = 256 * kMiB;
  v.mem_free = 200 * kMiB;
  v.mem_available = 220 * kMiB;
  v.mem_shared = 1 * kMiB;
  v.mem_buffers = 2 * kMiB;
  v.swap_total = 64 * kMiB;
  v.swap_free = 60 * kMiB;
  v.cpus = {0};
  v.uptime_s = 5;
  v.procs = 3;
  return v;
}

using testing::Call;
using testing::raw;

int count_cpus(const unsigned char* mask, std::size_t size) {
  int n = 0;
  for (std::size_t i = 0; i < size; ++i) n += __builtin_popcount(mask[i]);
  return n;
}

int first_cpu(const unsigned char* mask, std::size_t size) {
  for (std::size_t i = 0; i < size * 8; ++i)
    if (mask[i / 8] & (1u << (i % 8))) return static_cast<int>(i);
  return -1;
}

// A forked child with the filter installed, its listener (received as the monitor would), a
// pidfd to see it exit, the pipe it reports through and the one it waits on before it starts.
struct Supervised {
  pid_t pid = 0;
  UniqueFd pidfd;
  UniqueFd listener;
  UniqueFd report;  // read end
  UniqueFd go;      // write end: one byte starts the child's body

  ~Supervised() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  void start() { ASSERT_EQ(::write(go.get(), "g", 1), 1); }
};

void write_all(int fd, const void* data, std::size_t size) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(3);
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Runs in the child: the VE init's side (install, hand over, close), then `body`, whose report
// goes to the parent after an int that is 0 when the set-up worked and an errno otherwise.
template <class R>
[[noreturn]] void child_main(int sock, int go, int report, const std::function<R()>& body) {
  // Without CAP_SYS_ADMIN the kernel takes a filter only with no_new_privs; as root the test
  // covers the path the VE's init takes (capabilities still held, no_new_privs unset).
  if (::geteuid() != 0) ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  int setup = 0;
  auto listener = install_listener();
  if (!listener) setup = listener.error().code ? listener.error().code : EINVAL;
  if (listener && !send_listener_fd(sock, listener->get())) setup = EPIPE;
  listener = UniqueFd();  // the parent holds it now; the VE must not keep it
  ::close(sock);
  write_all(report, &setup, sizeof setup);
  if (setup != 0) ::_exit(1);
  char byte = 0;
  if (::read(go, &byte, 1) != 1) ::_exit(2);
  R r = body();
  write_all(report, &r, sizeof r);
  ::_exit(0);
}

template <class R>
void start_child(Supervised& s, const std::function<R()>& body) {
  static_assert(std::is_trivially_copyable_v<R>);
  int sock[2], go[2], report[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock), 0);
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(sock[0]);
    ::close(go[1]);
    ::close(report[0]);
    child_main<R>(sock[1], go[0], report[1], body);
  }
  s.pid = pid;
  ::close(sock[1]);
  ::close(go[0]);
  ::close(report[1]);
  UniqueFd sock_parent(sock[0]);
  s.go = UniqueFd(go[1]);
  s.report = UniqueFd(report[0]);
  s.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  ASSERT_TRUE(s.pidfd.valid()) << std::strerror(errno);
  auto listener = receive_listener_fd(sock_parent.get());
  int setup = -1;
  ASSERT_EQ(::read(s.report.get(), &setup, sizeof setup), static_cast<ssize_t>(sizeof setup));
  ASSERT_EQ(setup, 0) << "child could not install the listener: " << std::strerror(setup);
  ASSERT_TRUE(listener) << listener.error().message;
  s.listener = std::move(*listener);
}

// Answers the child's calls with `v` until it exits; collects what handle() reported, and the
// time spent in it if asked.
void serve_until_exit(SyscallVirtualizer& v, Supervised& s, std::vector<Error>& errors,
                      std::chrono::nanoseconds* in_handle = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    std::vector<pollfd> pfds;
    for (int fd : v.fds()) pfds.push_back({fd, POLLIN, 0});
    pfds.push_back({s.pidfd.get(), POLLIN, 0});
    int r = ::poll(pfds.data(), pfds.size(), 1000);
    ASSERT_GE(r, 0) << std::strerror(errno);
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the child did not finish";
    for (std::size_t i = 0; i + 1 < pfds.size(); ++i) {
      if (pfds[i].revents == 0) continue;
      auto t0 = std::chrono::steady_clock::now();
      if (auto st = v.handle(pfds[i].fd); !st) errors.push_back(st.error());
      if (in_handle) *in_handle += std::chrono::steady_clock::now() - t0;
    }
    if (pfds.back().revents & POLLIN) return;
  }
}

// Reaps the child and reads its report.
template <class R>
R finish(Supervised& s) {
  int status = 0;
  EXPECT_EQ(::waitpid(s.pid, &status, 0), s.pid);
  s.pid = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  R r{};
  EXPECT_EQ(::read(s.report.get(), &r, sizeof r), static_cast<ssize_t>(sizeof r));
  return r;
}

#define SKIP_WITHOUT_USER_NOTIFICATION()                                           \
  if (!user_notification_supported())                                              \
  GTEST_SKIP() << "the kernel lacks seccomp user notification (SECCOMP_GET_NOTIF_" \
                  "SIZES failed: "                                                 \
               << std::strerror(errno) << ")"

struct FiguresReport {
  Call sysinfo;
  std::uint64_t totalram, freeram, sharedram, bufferram, totalswap, freeswap;
  long uptime;
  unsigned procs, mem_unit;
  int glibc_affinity_ret, cpu_count, first_cpu;
  Call affinity_len_128, affinity_len_4, affinity_len_0, affinity_len_12;
  Call affinity_own_pid;
  int own_pid_cpu_count;
  Call sysinfo_bad_pointer, sysinfo_read_only, affinity_bad_pointer;
};

TEST(SyscallVirtualizer, AnswersSysinfoAndAffinityWithTheVesFigures) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  int view_calls = 0;
  SyscallVirtualizer v([&]() -> Result<VeView> {
    ++view_calls;
    return small_ve();
  });
  Supervised s;
  start_child<FiguresReport>(s, [] {
    FiguresReport r{};
    struct sysinfo si {};
    r.sysinfo = raw(SYS_sysinfo, &si);
    r.totalram = si.totalram * si.mem_unit;
    r.freeram = si.freeram * si.mem_unit;
    r.sharedram = si.sharedram * si.mem_unit;
    r.bufferram = si.bufferram * si.mem_unit;
    r.totalswap = si.totalswap * si.mem_unit;
    r.freeswap = si.freeswap * si.mem_unit;
    r.uptime = si.uptime;
    r.procs = si.procs;
    r.mem_unit = si.mem_unit;
    cpu_set_t set;
    CPU_ZERO(&set);
    r.glibc_affinity_ret = ::sched_getaffinity(0, sizeof set, &set);
    r.cpu_count = CPU_COUNT(&set);
    r.first_cpu = -1;
    for (int i = 0; i < CPU_SETSIZE && r.first_cpu < 0; ++i)
      if (CPU_ISSET(i, &set)) r.first_cpu = i;
    unsigned char mask[128] = {};
    r.affinity_len_128 = raw(SYS_sched_getaffinity, 0, 128, mask);
    r.affinity_len_4 = raw(SYS_sched_getaffinity, 0, 4, mask);
    r.affinity_len_0 = raw(SYS_sched_getaffinity, 0, 0, mask);
    r.affinity_len_12 = raw(SYS_sched_getaffinity, 0, 12, mask);
    unsigned char own[128] = {};
    r.affinity_own_pid = raw(SYS_sched_getaffinity, ::getpid(), sizeof own, own);
    r.own_pid_cpu_count = count_cpus(own, sizeof own);
    r.sysinfo_bad_pointer = raw(SYS_sysinfo, 8);
    void* ro = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r.sysinfo_read_only = raw(SYS_sysinfo, ro);
    r.affinity_bad_pointer = raw(SYS_sched_getaffinity, 0, 128, 8);
    return r;
  });
  if (HasFatalFailure()) return;
  v.add(std::move(s.listener));
  s.start();
  std::vector<Error> errors;
  serve_until_exit(v, s, errors);
  auto r = finish<FiguresReport>(s);
  for (const Error& e : errors) ADD_FAILURE() << "handle: " << e.message;

  // The kernel's own answers, for the cases the virtualizer must answer like it.
  unsigned char mask[128] = {};
  Call kernel_128 = raw(SYS_sched_getaffinity, 0, 128, mask);
  int real_first = first_cpu(mask, sizeof mask);
  int real_count = count_cpus(mask, sizeof mask);
  Call kernel_4 = raw(SYS_sched_getaffinity, 0, 4, mask);
  Call kernel_0 = raw(SYS_sched_getaffinity, 0, 0, mask);
  Call kernel_12 = raw(SYS_sched_getaffinity, 0, 12, mask);

  EXPECT_EQ(r.sysinfo.ret, 0) << std::strerror(r.sysinfo.err);
  EXPECT_EQ(r.totalram, 256 * kMiB);
  EXPECT_EQ(r.freeram, 200 * kMiB);
  EXPECT_EQ(r.sharedram, 1 * kMiB);
  EXPECT_EQ(r.bufferram, 2 * kMiB);
  EXPECT_EQ(r.totalswap, 64 * kMiB);
  EXPECT_EQ(r.freeswap, 60 * kMiB);
  EXPECT_EQ(r.mem_unit, 1u);
  // Rounded up, like the kernel; the view may have aged a little.
  EXPECT_GE(r.uptime, 5);
  EXPECT_LE(r.uptime, 6);
  EXPECT_EQ(r.procs, 3u);

  EXPECT_EQ(r.glibc_affinity_ret, 0);
  EXPECT_EQ(r.cpu_count, 1);
  EXPECT_EQ(r.first_cpu, real_first);
  EXPECT_EQ(r.affinity_len_128.ret, kernel_128.ret);  // min(len, cpumask_size())
  EXPECT_EQ(r.affinity_len_4.ret, -1);
  EXPECT_EQ(r.affinity_len_4.err, EINVAL);
  EXPECT_EQ(r.affinity_len_4.err, kernel_4.err);
  EXPECT_EQ(r.affinity_len_0.err, EINVAL);
  EXPECT_EQ(r.affinity_len_0.err, kernel_0.err);
  EXPECT_EQ(r.affinity_len_12.ret, kernel_12.ret);
  EXPECT_EQ(r.affinity_len_12.err, kernel_12.err);
  // For a pid other than 0 the kernel answers, with the real mask.
  EXPECT_EQ(r.affinity_own_pid.ret, kernel_128.ret);
  EXPECT_EQ(r.own_pid_cpu_count, real_count);

  EXPECT_EQ(r.sysinfo_bad_pointer.err, EFAULT);
  EXPECT_EQ(r.sysinfo_read_only.err, EFAULT);
  EXPECT_EQ(r.affinity_bad_pointer.err, EFAULT);

  // One view serves the calls made within kViewMaxAge; there were 7 that needed one.
  EXPECT_GE(view_calls, 1);
  EXPECT_LE(view_calls, 7);

  // With its last process gone, the filter has no users: the listener hangs up (on 6.18 at
  // the exit already, so the serve loop may have seen it) and handle() drops it.
  for (int fd : v.fds()) {
    pollfd p = {fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    EXPECT_TRUE(p.revents & POLLHUP) << p.revents;
    EXPECT_TRUE(v.handle(fd));
  }
  EXPECT_TRUE(v.fds().empty());
}

struct ClosedReport {
  Call sysinfo;
  Call affinity;
};

// The kernel's behaviour this relies on (kernel/seccomp.c, seccomp_do_user_notification): once
// the listener is closed, a call the filter would notify fails with ENOSYS at once. So if the
// monitor dies, `free` in the VE fails rather than hangs.
TEST(SyscallVirtualizer, CallFailsWithEnosysOnceTheListenerIsClosed) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  Supervised s;
  start_child<ClosedReport>(s, [] {
    ClosedReport r{};
    struct sysinfo si {};
    r.sysinfo = raw(SYS_sysinfo, &si);
    unsigned char mask[128];
    r.affinity = raw(SYS_sched_getaffinity, 0, sizeof mask, mask);
    return r;
  });
  if (HasFatalFailure()) return;
  s.listener.reset();
  s.start();
  pollfd p = {s.pidfd.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the child hangs in its system call";
  auto r = finish<ClosedReport>(s);
  EXPECT_EQ(r.sysinfo.ret, -1);
  EXPECT_EQ(r.sysinfo.err, ENOSYS);
  EXPECT_EQ(r.affinity.ret, -1);
  EXPECT_EQ(r.affinity.err, ENOSYS);
}

struct HostReport {
  Call sysinfo;
  std::uint64_t totalram;
  int cpu_count;
};

TEST(SyscallVirtualizer, KernelAnswersWhenTheViewCannotBeComputed) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  SyscallVirtualizer v([]() -> Result<VeView> { return fail(ErrorKind::failure, "cgroup gone"); });
  Supervised s;
  start_child<HostReport>(s, [] {
    HostReport r{};
    struct sysinfo si {};
    r.sysinfo = raw(SYS_sysinfo, &si);
    r.totalram = si.totalram * si.mem_unit;
    cpu_set_t set;
    CPU_ZERO(&set);
    ::sched_getaffinity(0, sizeof set, &set);
    r.cpu_count = CPU_COUNT(&set);
    return r;
  });
  if (HasFatalFailure()) return;
  v.add(std::move(s.listener));
  s.start();
  std::vector<Error> errors;
  serve_until_exit(v, s, errors);
  auto r = finish<HostReport>(s);

  struct sysinfo host {};
  ASSERT_EQ(::sysinfo(&host), 0);
  cpu_set_t set;
  ASSERT_EQ(::sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(r.sysinfo.ret, 0);
  EXPECT_EQ(r.totalram, std::uint64_t{host.totalram} * host.mem_unit);
  EXPECT_EQ(r.cpu_count, CPU_COUNT(&set));
  // Reported to the monitor, which may log it; the callers were not failed.
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].message.find("cgroup gone"), std::string::npos) << errors[0].message;
}

// The calling thread's own mask is the one cut down: a thread pinned to another CPU than its
// process sees that CPU, so handing the mask back to sched_setaffinity(2) keeps it valid.
struct ThreadReport {
  int main_first, main_count, thread_first, thread_count;
};

TEST(SyscallVirtualizer, AffinityIsCutFromTheCallingThreadsMask) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  cpu_set_t own;
  ASSERT_EQ(::sched_getaffinity(0, sizeof own, &own), 0);
  if (CPU_COUNT(&own) < 2) GTEST_SKIP() << "needs two CPUs to pin a thread apart";
  int last = CPU_SETSIZE - 1;
  while (!CPU_ISSET(last, &own)) --last;
  SyscallVirtualizer v([]() -> Result<VeView> { return small_ve(); });
  Supervised s;
  start_child<ThreadReport>(s, [last] {
    ThreadReport r{};
    cpu_set_t set;
    CPU_ZERO(&set);
    ::sched_getaffinity(0, sizeof set, &set);
    r.main_count = CPU_COUNT(&set);
    r.main_first = -1;
    for (int i = 0; i < CPU_SETSIZE && r.main_first < 0; ++i)
      if (CPU_ISSET(i, &set)) r.main_first = i;
    std::thread t([&r, last] {
      cpu_set_t pin;
      CPU_ZERO(&pin);
      CPU_SET(last, &pin);
      ::sched_setaffinity(0, sizeof pin, &pin);
      cpu_set_t got;
      CPU_ZERO(&got);
      ::sched_getaffinity(0, sizeof got, &got);
      r.thread_count = CPU_COUNT(&got);
      r.thread_first = -1;
      for (int i = 0; i < CPU_SETSIZE && r.thread_first < 0; ++i)
        if (CPU_ISSET(i, &got)) r.thread_first = i;
    });
    t.join();
    return r;
  });
  if (HasFatalFailure()) return;
  v.add(std::move(s.listener));
  s.start();
  std::vector<Error> errors;
  serve_until_exit(v, s, errors);
  auto r = finish<ThreadReport>(s);
  EXPECT_TRUE(errors.empty());
  int first = 0;
  while (!CPU_ISSET(first, &own)) ++first;
  EXPECT_EQ(r.main_count, 1);
  EXPECT_EQ(r.main_first, first);
  EXPECT_EQ(r.thread_count, 1);
  EXPECT_EQ(r.thread_first, last);
}

// A signal while the call waits makes the kernel drop the notification and restart the call
// (SA_RESTART); the answer to the dropped one is no error, and the restarted call is answered.
struct SignalReport {
  Call sysinfo;
  std::uint64_t totalram;
  int signals;
};

volatile sig_atomic_t g_signals = 0;

TEST(SyscallVirtualizer, CallerInterruptedBySignalIsNoError) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  SyscallVirtualizer v([]() -> Result<VeView> { return small_ve(); });
  Supervised s;
  start_child<SignalReport>(s, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_signals = g_signals + 1; };
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGUSR1, &sa, nullptr);
    SignalReport r{};
    struct sysinfo si {};
    r.sysinfo = raw(SYS_sysinfo, &si);
    r.totalram = si.totalram * si.mem_unit;
    r.signals = g_signals;
    return r;
  });
  if (HasFatalFailure()) return;
  int fd = s.listener.get();
  v.add(std::move(s.listener));
  s.start();
  // The child's call is pending; interrupt it before it is answered.
  pollfd p = {fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  ASSERT_EQ(::kill(s.pid, SIGUSR1), 0);
  std::vector<Error> errors;
  serve_until_exit(v, s, errors);
  auto r = finish<SignalReport>(s);
  EXPECT_TRUE(errors.empty()) << errors[0].message;
  EXPECT_EQ(r.signals, 1);
  EXPECT_EQ(r.sysinfo.ret, 0);
  EXPECT_EQ(r.totalram, 256 * kMiB);
}

// Runs `f` in a forked child and returns its exit status (or -1 if it did not exit).
int exit_code_in_child(const std::function<int()>& f) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(f());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(SyscallVirtualizer, InstallingWithoutCapSysAdminOrNoNewPrivsIsAPermissionError) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  int code = exit_code_in_child([] {
    // Leaving root for an unprivileged user clears every capability (no SECBIT_KEEP_CAPS).
    if (::geteuid() == 0 &&
        (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0))
      return 10;
    auto l = install_listener();
    if (l) return 11;
    if (l.error().kind != ErrorKind::permission || l.error().code != EACCES) return 12;
    if (l.error().message.find("CAP_SYS_ADMIN") == std::string::npos) return 13;
    // With no_new_privs (the security policy's choice, not install_listener's) it loads.
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    return install_listener() ? 0 : 14;
  });
  EXPECT_EQ(code, 0);
}

TEST(SyscallVirtualizer, ASecondListenerInOneProcessIsRefused) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  int code = exit_code_in_child([] {
    if (::geteuid() != 0) ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    auto first = install_listener();
    if (!first) return 10;
    auto second = install_listener();
    if (second) return 11;
    return second.error().code == EBUSY ? 0 : 12;
  });
  EXPECT_EQ(code, 0);
}

#if defined(__x86_64__)
// A 64-bit process can make 32-bit x86 system calls with int $0x80; seccomp then sees
// AUDIT_ARCH_I386, as for a 32-bit binary.
long int80(long nr, unsigned long arg) {
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(arg) : "memory");
  return ret;
}

constexpr long kI386Sysinfo = 116;  // arch/x86/entry/syscalls/syscall_32.tbl

// Whether int $0x80 works here: it raises #GP where the kernel runs without IA-32 emulation
// (ia32_emulation=0, or under PVM as on the project's machines).
bool ia32_calls_work() {
  pid_t pid = ::fork();
  if (pid == 0) {
    (void)::signal(SIGSEGV, SIG_DFL);  // die quietly, not through a sanitizer's report
    ::_exit(int80(20 /* getpid */, 0) > 0 ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct Ia32Report {
  long ret;
  unsigned char bytes[64];
};

TEST(SyscallVirtualizer, Ia32CallerGetsTheCompatLayout) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  if (!ia32_calls_work())
    GTEST_SKIP() << "32-bit system calls (int $0x80) are not available on this kernel";
  SyscallVirtualizer v([]() -> Result<VeView> { return small_ve(); });
  Supervised s;
  start_child<Ia32Report>(s, [] {
    Ia32Report r{};
    // A 32-bit caller's pointer has 32 bits.
    void* low = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    r.ret = int80(kI386Sysinfo, reinterpret_cast<unsigned long>(low));
    std::memcpy(r.bytes, low, sizeof r.bytes);
    return r;
  });
  if (HasFatalFailure()) return;
  v.add(std::move(s.listener));
  s.start();
  std::vector<Error> errors;
  serve_until_exit(v, s, errors);
  auto r = finish<Ia32Report>(s);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(r.ret, 0);
  auto expected = make_sysinfo_reply(SyscallAbi::ia32, small_ve(), 5, {0, 0, 0});
  std::uint32_t totalram = 0, mem_unit = 0;
  std::memcpy(&totalram, r.bytes + 16, 4);
  std::memcpy(&mem_unit, r.bytes + 52, 4);
  EXPECT_EQ(std::uint64_t{totalram} * mem_unit, 256 * kMiB);
  EXPECT_EQ(0, std::memcmp(r.bytes + 16, expected.bytes.data() + 16, 64 - 16));
}
#endif

// Prints what a virtualised call costs against the native one; asserts nothing about time.
struct BenchReport {
  double sysinfo_ns, affinity_ns, getppid_ns;
};

constexpr int kBenchCalls = 10000;

double ns_per_call(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kBenchCalls; ++i) f();
  std::chrono::duration<double, std::nano> d = std::chrono::steady_clock::now() - t0;
  return d.count() / kBenchCalls;
}

BenchReport measure() {
  BenchReport r{};
  struct sysinfo si {};
  unsigned char mask[128];
  r.sysinfo_ns = ns_per_call([&] { ::syscall(SYS_sysinfo, &si); });
  r.affinity_ns = ns_per_call([&] { ::syscall(SYS_sched_getaffinity, 0, sizeof mask, mask); });
  r.getppid_ns = ns_per_call([] { ::syscall(SYS_getppid); });
  return r;
}

TEST(SyscallVirtualizerBench, PrintsTheCostOfAVirtualisedCall) {
  SKIP_WITHOUT_USER_NOTIFICATION();
  BenchReport native = measure();
  SyscallVirtualizer v([]() -> Result<VeView> { return small_ve(); });
  Supervised s;
  start_child<BenchReport>(s, measure);
  if (HasFatalFailure()) return;
  v.add(std::move(s.listener));
  s.start();
  std::vector<Error> errors;
  std::chrono::nanoseconds in_handle{0};
  serve_until_exit(v, s, errors, &in_handle);
  auto virt = finish<BenchReport>(s);
  EXPECT_TRUE(errors.empty());
  std::printf("%d calls each, ns per call      native  virtualised\n", kBenchCalls);
  std::printf("  sysinfo                      %8.0f  %11.0f\n", native.sysinfo_ns, virt.sysinfo_ns);
  std::printf("  sched_getaffinity(0)         %8.0f  %11.0f\n", native.affinity_ns,
              virt.affinity_ns);
  std::printf("  getppid (not intercepted)    %8.0f  %11.0f\n", native.getppid_ns, virt.getppid_ns);
  std::printf("  monitor's time in handle() per answered call: %.0f ns\n",
              static_cast<double>(in_handle.count()) / (2 * kBenchCalls));
}

// --- The parts that need no kernel ------------------------------------------------------------

TEST(SyscallVirtualizerAbi, NativeSysinfoCountsBytes) {
  auto reply = make_sysinfo_reply(SyscallAbi::native, small_ve(), 4.2, {1, 2, 3});
  ASSERT_EQ(reply.size, sizeof(struct sysinfo));
  struct sysinfo si;
  std::memcpy(&si, reply.bytes.data(), sizeof si);
  EXPECT_EQ(si.uptime, 5);  // rounded up, as the kernel does
  EXPECT_EQ(si.loads[0], 1u);
  EXPECT_EQ(si.loads[2], 3u);
  EXPECT_EQ(si.totalram, 256 * kMiB);
  EXPECT_EQ(si.freeram, 200 * kMiB);
  EXPECT_EQ(si.totalswap, 64 * kMiB);
  EXPECT_EQ(si.procs, 3);
  EXPECT_EQ(si.totalhigh, 0u);
  EXPECT_EQ(si.mem_unit, 1u);
}

TEST(SyscallVirtualizerAbi, ProcsAreCappedAtTheFieldsWidth) {
  VeView v = small_ve();
  v.procs = 70000;
  struct sysinfo si;
  std::memcpy(&si, make_sysinfo_reply(SyscallAbi::native, v, 0, {}).bytes.data(), sizeof si);
  EXPECT_EQ(si.procs, 65535);
}

struct Compat {
  std::int32_t uptime;
  std::uint32_t loads[3], totalram, freeram, sharedram, bufferram, totalswap, freeswap;
  std::uint16_t procs, pad;
  std::uint32_t totalhigh, freehigh, mem_unit;
  char f[8];
};

TEST(SyscallVirtualizerAbi, Ia32SysinfoCountsBytesWhileTheyFit) {
  auto reply = make_sysinfo_reply(SyscallAbi::ia32, small_ve(), 5, {7, 8, 9});
  ASSERT_EQ(reply.size, 64u);
  Compat c;
  std::memcpy(&c, reply.bytes.data(), sizeof c);
  EXPECT_EQ(c.uptime, 5);
  EXPECT_EQ(c.loads[1], 8u);
  EXPECT_EQ(c.totalram, 256 * kMiB);
  EXPECT_EQ(c.freeswap, 60 * kMiB);
  EXPECT_EQ(c.procs, 3);
  EXPECT_EQ(c.mem_unit, 1u);
}

TEST(SyscallVirtualizerAbi, Ia32SysinfoCountsPagesWhenBytesDoNotFit) {
  VeView v = small_ve();
  v.mem_total = 24 * kGiB;
  v.mem_free = 10 * kGiB;
  Compat c;
  std::memcpy(&c, make_sysinfo_reply(SyscallAbi::ia32, v, 5, {}).bytes.data(), sizeof c);
  EXPECT_EQ(c.mem_unit, 4096u);
  EXPECT_EQ(std::uint64_t{c.totalram} * c.mem_unit, 24 * kGiB);
  EXPECT_EQ(std::uint64_t{c.freeram} * c.mem_unit, 10 * kGiB);
  EXPECT_EQ(std::uint64_t{c.totalswap} * c.mem_unit, 64 * kMiB);
}

TEST(SyscallVirtualizerAbi, AffinityLengthChecksFollowTheKernel) {
  KernelCpumask k{40, 32};  // 40 possible CPUs, NR_CPUS 256
  // 64-bit: whole longs, enough bits for nr_cpu_ids.
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::native, k, 0), EINVAL);
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::native, k, 4), EINVAL);
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::native, k, 8), 0);
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::native, k, 12), EINVAL);
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::native, k, 1024), 0);
  // 32-bit: whole 32-bit longs; 4 bytes are too few for 40 CPUs.
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::ia32, k, 4), EINVAL);
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::ia32, k, 6), EINVAL);
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::ia32, k, 8), 0);
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::ia32, k, 12), 0);
  KernelCpumask two{2, 32};
  EXPECT_EQ(sched_getaffinity_len_errno(SyscallAbi::ia32, two, 4), 0);
}

#if defined(__x86_64__)
// Runs a classic BPF seccomp program over `data`, as the kernel would; knows the instructions
// libseccomp emits for a filter without argument checks.
std::uint32_t run_filter(const std::vector<sock_filter>& program, const seccomp_data& data) {
  std::uint32_t a = 0;
  for (std::size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& insn = program[pc];
    switch (insn.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (insn.k + 4 > sizeof data) return 0;
        std::memcpy(&a, reinterpret_cast<const char*>(&data) + insn.k, 4);
        break;
      case BPF_JMP | BPF_JA:
        pc += insn.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += a == insn.k ? insn.jt : insn.jf;
        break;
      case BPF_JMP | BPF_JGT | BPF_K:
        pc += a > insn.k ? insn.jt : insn.jf;
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += a >= insn.k ? insn.jt : insn.jf;
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        pc += (a & insn.k) ? insn.jt : insn.jf;
        break;
      case BPF_RET | BPF_K:
        return insn.k;
      default:
        ADD_FAILURE() << "instruction " << insn.code << " not known to this interpreter";
        return 0;
    }
  }
  ADD_FAILURE() << "the program ran off its end";
  return 0;
}

std::uint32_t action_for(const std::vector<sock_filter>& program, std::uint32_t arch, int nr) {
  seccomp_data data{};
  data.arch = arch;
  data.nr = nr;
  return run_filter(program, data) & SECCOMP_RET_ACTION_FULL;
}

// The i386 and x32 paths cannot run here (no int $0x80 under PVM, no x32 in this kernel), so
// the filter's treatment of them is checked on the program itself.
TEST(SyscallVirtualizerAbi, FilterNotifiesTheTwoCallsOnEachX86AbiAndAllowsTheRest) {
  auto program = filter_program();
  ASSERT_TRUE(program) << program.error().message;
  constexpr std::uint32_t kX32 = 0x40000000;  // __X32_SYSCALL_BIT
  // x86-64: sysinfo 99, sched_getaffinity 204, getpid 39 (syscall_64.tbl).
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_X86_64, 99), SECCOMP_RET_USER_NOTIF);
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_X86_64, 204), SECCOMP_RET_USER_NOTIF);
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_X86_64, 39), SECCOMP_RET_ALLOW);
  // i386: sysinfo 116, sched_getaffinity 242; 99 is statfs there (syscall_32.tbl).
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_I386, 116), SECCOMP_RET_USER_NOTIF);
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_I386, 242), SECCOMP_RET_USER_NOTIF);
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_I386, 99), SECCOMP_RET_ALLOW);
  // x32: the x86-64 numbers with the x32 bit.
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_X86_64, kX32 | 99), SECCOMP_RET_USER_NOTIF);
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_X86_64, kX32 | 204), SECCOMP_RET_USER_NOTIF);
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_X86_64, kX32 | 39), SECCOMP_RET_ALLOW);
  // Any other ABI is let through, never killed (sysinfo is 179 on arm64).
  EXPECT_EQ(action_for(*program, AUDIT_ARCH_AARCH64, 179), SECCOMP_RET_ALLOW);
}
#endif

TEST(SyscallVirtualizerAbi, KeepsTheFirstCpusOfTheMask) {
  unsigned char mask[4] = {0b10101100, 0b00000001, 0, 0b10000000};
  keep_first_cpus(mask, 3);  // CPUs 2, 3, 5 of 2, 3, 5, 7, 8, 31
  EXPECT_EQ(mask[0], 0b00101100);
  EXPECT_EQ(mask[1], 0);
  EXPECT_EQ(mask[3], 0);
  unsigned char few[1] = {0b00000110};
  keep_first_cpus(few, 8);  // fewer than asked: all stay
  EXPECT_EQ(few[0], 0b00000110);
}

TEST(SyscallVirtualizerAbi, ProbedCpumaskMatchesTheKernel) {
  auto k = probe_kernel_cpumask();
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_GE(k->nr_cpu_ids, 1u);
  EXPECT_GE(k->size * 8, k->nr_cpu_ids);
  EXPECT_EQ(k->size % sizeof(unsigned long), 0u);
  std::vector<unsigned char> buf(k->size + 64);
  EXPECT_EQ(raw(SYS_sched_getaffinity, 0, buf.size(), buf.data()).ret, static_cast<long>(k->size));
}

TEST(SyscallVirtualizerAbi, ListenerFdCrossesASocket) {
  int sock[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock), 0);
  UniqueFd a(sock[0]), b(sock[1]);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd read_end(p[0]), write_end(p[1]);
  ASSERT_TRUE(send_listener_fd(a.get(), write_end.get()));
  auto got = receive_listener_fd(b.get());
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_NE(got->get(), write_end.get());
  EXPECT_TRUE(::fcntl(got->get(), F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(::write(got->get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(read_end.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  a.reset();
  auto eof = receive_listener_fd(b.get());
  EXPECT_FALSE(eof);
}

}  // namespace
}  // namespace kapsel::procfs
