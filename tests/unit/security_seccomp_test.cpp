// The default seccomp profile and OCI profiles, end to end: each probe runs in a forked child
// that sets no_new_privs and loads the program (so no root is needed), and again in a child
// without it. The unfiltered answer is what makes a check mean something: a call refused with
// EPERM by the filter must not be refused with EPERM by the kernel too, and a call the filter
// lets through must get the kernel's own answer. Probes pass arguments the kernel rejects
// (missing paths, bad flags, bad magic), so that as root the unfiltered run changes nothing.
// The i386 and x32 halves of the filter cannot be run here (int $0x80 faults under PVM, the
// kernel has no x32), so they are checked by running the program in a BPF interpreter.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/reboot.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "raw_syscall.hpp"
#include "security/oci_seccomp.hpp"
#include "security/seccomp_policy.hpp"

namespace kapsel::security {
namespace {

using nlohmann::json;

constexpr std::uint64_t bit(unsigned n) {
  return std::uint64_t{1} << n;
}

// kapsel's default capability set.
constexpr std::uint64_t kDefaultCaps =
    bit(CAP_CHOWN) | bit(CAP_DAC_OVERRIDE) | bit(CAP_FSETID) | bit(CAP_FOWNER) | bit(CAP_MKNOD) |
    bit(CAP_NET_RAW) | bit(CAP_SETGID) | bit(CAP_SETUID) | bit(CAP_SETFCAP) | bit(CAP_SETPCAP) |
    bit(CAP_NET_BIND_SERVICE) | bit(CAP_SYS_CHROOT) | bit(CAP_KILL) | bit(CAP_AUDIT_WRITE) |
    bit(CAP_SYS_BOOT);

constexpr const char* kMissing = "/kapsel-test-no-such-path";

using testing::Call;
using testing::raw;

std::string describe(const Call& c) {
  if (c.ret >= 0) return "returned " + std::to_string(c.ret);
  return std::string("failed with ") + (c.err ? ::strerrordesc_np(c.err) : "?") + " (" +
         std::to_string(c.err) + ")";
}

struct ChildResult {
  bool reported = false;  // the probe ran and wrote its Call
  Call call;
  int status = 0;  // from waitpid
};

// Ends a forked child with exit_group(2) itself: a sanitizer's _exit checks for leaks first,
// with calls a strict profile refuses.
[[noreturn]] void exit_child(int code) {
  ::syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

// Runs `probe` in a forked child, after loading `program` with no_new_privs if there is one.
ChildResult run_in_child(const std::vector<sock_filter>* program,
                         const std::function<Call()>& probe) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    if (program != nullptr) {
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) exit_child(120);
      if (load_seccomp_program(*program) != 0) exit_child(121);
    }
    Call c = probe();
    ssize_t n = ::write(pipefd[1], &c, sizeof c);
    exit_child(n == static_cast<ssize_t>(sizeof c) ? 0 : 122);
  }
  ::close(pipefd[1]);
  ChildResult r;
  r.reported = ::read(pipefd[0], &r.call, sizeof r.call) == static_cast<ssize_t>(sizeof r.call);
  ::close(pipefd[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

Call filtered(const std::vector<sock_filter>& program, const std::function<Call()>& probe) {
  ChildResult r = run_in_child(&program, probe);
  EXPECT_TRUE(r.reported) << "the filtered child did not report; wait status " << r.status;
  return r.call;
}

Call unfiltered(const std::function<Call()>& probe) {
  ChildResult r = run_in_child(nullptr, probe);
  EXPECT_TRUE(r.reported) << "the unfiltered child did not report; wait status " << r.status;
  return r.call;
}

struct Probe {
  const char* name;
  std::function<Call()> call;
};

// Calls that fork end their child at once; the parent's Call is the outcome.
Call clone_raw(unsigned long flags) {
  Call c = raw(SYS_clone, static_cast<long>(flags | SIGCHLD), 0L, 0L, 0L, 0L);
  if (c.ret == 0) ::_exit(0);
  if (c.ret > 0) ::waitpid(static_cast<pid_t>(c.ret), nullptr, 0);
  return c;
}

// Probes the default profile refuses for the default capabilities.
std::vector<Probe> denied_probes() {
  return {
      // Flags no kexec knows: EINVAL from the kernel, after its CAP_SYS_BOOT check.
      {"kexec_load", [] { return raw(SYS_kexec_load, 0L, 0L, nullptr, 0x8000L); }},
      {"kexec_file_load", [] { return raw(SYS_kexec_file_load, -1L, -1L, 0L, nullptr, 0x8000L); }},
      {"init_module", [] { return raw(SYS_init_module, nullptr, 0L, ""); }},
      {"finit_module", [] { return raw(SYS_finit_module, -1L, "", 0L); }},
      {"delete_module", [] { return raw(SYS_delete_module, "kapsel_no_such_module", 0L); }},
      {"bpf", [] { return raw(SYS_bpf, 0xffffL, nullptr, 0L); }},
      {"perf_event_open", [] { return raw(SYS_perf_event_open, nullptr, 0L, -1L, -1L, 0L); }},
      {"keyctl", [] { return raw(SYS_keyctl, 9999L, 0L, 0L, 0L, 0L); }},
      {"add_key", [] { return raw(SYS_add_key, nullptr, nullptr, nullptr, 0L, 0L); }},
      {"request_key", [] { return raw(SYS_request_key, nullptr, nullptr, nullptr, 0L); }},
      {"open_by_handle_at", [] { return raw(SYS_open_by_handle_at, -1L, nullptr, 0L); }},
      {"name_to_handle_at",
       [] { return raw(SYS_name_to_handle_at, -1L, kMissing, nullptr, nullptr, 0L); }},
      {"mount", [] { return raw(SYS_mount, nullptr, kMissing, "tmpfs", 0L, nullptr); }},
      {"umount2", [] { return raw(SYS_umount2, kMissing, 0L); }},
      {"pivot_root", [] { return raw(SYS_pivot_root, kMissing, kMissing); }},
      {"setns", [] { return raw(SYS_setns, -1L, 0L); }},
      {"sethostname", [] { return raw(SYS_sethostname, nullptr, 100000L); }},
      {"clock_settime", [] { return raw(SYS_clock_settime, long{CLOCK_REALTIME}, nullptr); }},
      // Both pointers null: a no-op that succeeds when let through.
      {"settimeofday", [] { return raw(SYS_settimeofday, nullptr, nullptr); }},
      {"adjtimex", [] { return raw(SYS_adjtimex, nullptr); }},
      {"swapon", [] { return raw(SYS_swapon, kMissing, 0L); }},
      {"swapoff", [] { return raw(SYS_swapoff, kMissing); }},
      {"userfaultfd", [] { return raw(SYS_userfaultfd, 0x7fff0000L); }},
      {"io_uring_setup", [] { return raw(SYS_io_uring_setup, 0L, nullptr); }},
      {"acct", [] { return raw(SYS_acct, kMissing); }},
      {"syslog", [] { return raw(SYS_syslog, 10L /* SYSLOG_ACTION_SIZE_BUFFER */, nullptr, 0L); }},
      {"iopl", [] { return raw(SYS_iopl, 5L); }},
      {"quotactl", [] { return raw(SYS_quotactl, 0L, nullptr, 0L, nullptr); }},
      {"kcmp", [] { return raw(SYS_kcmp, long{::getpid()}, long{::getpid()}, 0L, 0L, 0L); }},
      {"personality(ADDR_NO_RANDOMIZE)",
       [] { return raw(SYS_personality, long{ADDR_NO_RANDOMIZE}); }},
      // glibc's reboot(RB_DISABLE_CAD): a command the profile leaves out even with CAP_SYS_BOOT.
      {"reboot(CAD_OFF)",
       [] { return raw(SYS_reboot, 0L, 0L, long{LINUX_REBOOT_CMD_CAD_OFF}, nullptr); }},
      {"unshare(CLONE_NEWUSER)", [] { return raw(SYS_unshare, long{CLONE_NEWUSER}); }},
      {"clone(CLONE_NEWUSER)", [] { return clone_raw(CLONE_NEWUSER); }},
      {"clone(CLONE_NEWNET)", [] { return clone_raw(CLONE_NEWNET); }},
  };
}

Call read_a_file() {
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {-1, errno};
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf);
  Call c{n, n < 0 ? errno : 0};
  ::close(fd);
  return c;
}

Call fork_and_wait() {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(7);
  if (pid < 0) return {-1, errno};
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return {-1, errno};
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0};
}

// glibc 2.34+ starts threads with clone3 and falls back to clone on ENOSYS only.
Call start_a_thread() {
  int value = 0;
  std::thread t([&] { value = 5; });
  t.join();
  return {value, 0};
}

Call open_a_socket() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Call c{fd, fd < 0 ? errno : 0};
  if (fd >= 0) ::close(fd);
  return c;
}

Call read_own_memory() {
  char src[8] = "kapsel", dst[8] = {};
  struct iovec local = {dst, sizeof dst};
  struct iovec remote = {src, sizeof src};
  ssize_t n = ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
  return {n == 8 && std::strcmp(dst, "kapsel") == 0 ? 0 : -1, n < 0 ? errno : 0};
}

// Probes every VE process needs; each succeeds.
std::vector<Probe> ordinary_probes() {
  return {
      {"getpid", [] { return raw(SYS_getpid); }},
      {"open and read a file", read_a_file},
      {"fork and wait", fork_and_wait},
      {"clone without namespace flags", [] { return clone_raw(0); }},
      {"a thread (clone3 falls back to clone)", start_a_thread},
      {"socket(AF_INET)", open_a_socket},
      {"uname",
       [] {
         struct utsname u;
         return raw(SYS_uname, &u);
       }},
      {"personality(query)", [] { return raw(SYS_personality, 0xffffffffL); }},
      {"process_vm_readv of itself", read_own_memory},
      {"chroot (CAP_SYS_CHROOT)", [] { return raw(SYS_chroot, kMissing); }},
  };
}

std::vector<sock_filter> program_for(std::uint64_t caps) {
  auto program = build_seccomp_program(SeccompSpec{}, caps);
  EXPECT_TRUE(program) << program.error().message;
  return program ? *program : std::vector<sock_filter>{};
}

bool is_root() {
  return ::geteuid() == 0;
}

TEST(SeccompDefault, RefusesTheDangerousCallsWithEperm) {
  auto program = program_for(kDefaultCaps);
  ASSERT_FALSE(program.empty());
  for (const Probe& p : denied_probes()) {
    Call with = filtered(program, p.call);
    EXPECT_EQ(with.ret, -1) << p.name << " " << describe(with);
    EXPECT_EQ(with.err, EPERM) << p.name << " " << describe(with);
    // As root the kernel would let each of these through to its argument checks, so EPERM
    // can only have come from the filter.
    if (is_root()) {
      Call without = unfiltered(p.call);
      EXPECT_NE(without.err, EPERM) << p.name << ": the kernel refuses it too, so this probe "
                                    << "cannot tell the filter's EPERM from the kernel's";
    }
  }
}

// The kernel's answer either way; a pid a call returns differs from run to run.
void expect_same_outcome(const char* name, const Call& with, const Call& without) {
  EXPECT_EQ(with.ret < 0, without.ret < 0)
      << name << " " << describe(with) << ", unfiltered " << describe(without);
  EXPECT_EQ(with.err, without.err)
      << name << " " << describe(with) << ", unfiltered " << describe(without);
}

TEST(SeccompDefault, LetsOrdinaryCallsThrough) {
  auto program = program_for(kDefaultCaps);
  for (const Probe& p : ordinary_probes()) {
    Call with = filtered(program, p.call);
    expect_same_outcome(p.name, with, unfiltered(p.call));
    // chroot on a missing path fails (after the kernel's CAP_SYS_CHROOT check, so as root with
    // ENOENT); everything else works.
    if (std::string_view(p.name).starts_with("chroot")) {
      if (is_root()) {
        EXPECT_EQ(with.err, ENOENT) << describe(with);
      }
    } else {
      EXPECT_GE(with.ret, 0) << p.name << " " << describe(with);
    }
  }
}

TEST(SeccompDefault, Clone3GivesEnosysSoThatGlibcFallsBack) {
  auto program = program_for(kDefaultCaps);
  Call with = filtered(program, [] { return raw(SYS_clone3, nullptr, 0L); });
  Call without = unfiltered([] { return raw(SYS_clone3, nullptr, 0L); });
  EXPECT_EQ(with.err, ENOSYS) << describe(with);
  EXPECT_EQ(without.err, EINVAL) << describe(without);  // a size of 0 is too small
}

// Bad magic: the kernel answers EINVAL after its CAP_SYS_BOOT check and before anything else,
// so nothing reboots. The command as glibc's reboot(int) passes it (sign-extended: HALT is a
// negative int) and zero-extended.
Call reboot_halt_sign_extended() {
  return raw(SYS_reboot, 0L, 0L, long{static_cast<int>(LINUX_REBOOT_CMD_HALT)}, nullptr);
}
Call reboot_halt_zero_extended() {
  return raw(SYS_reboot, 0L, 0L, long{LINUX_REBOOT_CMD_HALT}, nullptr);
}
Call reboot_power_off() {
  return raw(SYS_reboot, 0L, 0L, long{LINUX_REBOOT_CMD_POWER_OFF}, nullptr);
}

TEST(SeccompDefault, RebootIsLetThroughOnlyWithCapSysBoot) {
  if (!is_root())
    GTEST_SKIP() << "needs root: without CAP_SYS_BOOT the kernel itself answers EPERM";
  ASSERT_LT(static_cast<int>(LINUX_REBOOT_CMD_HALT), 0);
  auto with_boot = program_for(kDefaultCaps);
  auto without_boot = program_for(kDefaultCaps & ~bit(CAP_SYS_BOOT));
  for (auto probe : {reboot_halt_sign_extended, reboot_halt_zero_extended, reboot_power_off}) {
    EXPECT_EQ(unfiltered(probe).err, EINVAL);
    Call allowed = filtered(with_boot, probe);
    EXPECT_EQ(allowed.err, EINVAL) << describe(allowed);
    Call refused = filtered(without_boot, probe);
    EXPECT_EQ(refused.err, EPERM) << describe(refused);
  }
}

TEST(SeccompDefault, CapSysAdminLetsMountUnshareAndClone3Through) {
  if (!is_root())
    GTEST_SKIP() << "needs root: without CAP_SYS_ADMIN the kernel itself refuses mount";
  auto program = program_for(kDefaultCaps | bit(CAP_SYS_ADMIN));
  std::vector<Probe> probes = {
      {"mount", [] { return raw(SYS_mount, nullptr, kMissing, "tmpfs", 0L, nullptr); }},
      {"umount2", [] { return raw(SYS_umount2, kMissing, 0L); }},
      {"unshare(CLONE_NEWUSER)", [] { return raw(SYS_unshare, long{CLONE_NEWUSER}); }},
      {"clone(CLONE_NEWUSER)", [] { return clone_raw(CLONE_NEWUSER); }},
      {"clone3", [] { return raw(SYS_clone3, nullptr, 0L); }},
  };
  for (const Probe& p : probes) {
    Call without = unfiltered(p.call);
    ASSERT_NE(without.err, EPERM) << p.name << ": the kernel refuses it itself";
    expect_same_outcome(p.name, filtered(program, p.call), without);
  }
  // The kernel's own answer for a mount on a missing path, not the filter's.
  EXPECT_EQ(filtered(program, probes[0].call).err, ENOENT);
}

TEST(SeccompDefault, OtherCapabilitiesOpenTheirGroups) {
  if (!is_root()) GTEST_SKIP() << "needs root: the kernel checks the same capabilities";
  struct Case {
    unsigned cap;
    Probe probe;
  };
  std::vector<Case> cases = {
      {CAP_SYS_TIME, {"clock_settime", [] { return raw(SYS_clock_settime, 0L, nullptr); }}},
      {CAP_SYS_PACCT, {"acct", [] { return raw(SYS_acct, kMissing); }}},
      {CAP_SYSLOG, {"syslog", [] { return raw(SYS_syslog, 10L /* SIZE_BUFFER */, nullptr, 0L); }}},
      {CAP_DAC_READ_SEARCH,
       {"open_by_handle_at", [] { return raw(SYS_open_by_handle_at, -1L, nullptr, 0L); }}},
      {CAP_SYS_MODULE,
       {"delete_module", [] { return raw(SYS_delete_module, "kapsel_no_such_module", 0L); }}},
  };
  for (const Case& c : cases) {
    auto program = program_for(kDefaultCaps | bit(c.cap));
    Call with = filtered(program, c.probe.call);
    Call without = unfiltered(c.probe.call);
    EXPECT_NE(with.err, EPERM) << c.probe.name << " " << describe(with);
    EXPECT_EQ(with.err, without.err) << c.probe.name << " " << describe(with);
  }
}

TEST(SeccompDefault, UnconfinedIsAnEmptyProgramAndLoadingItIsANoOp) {
  auto program = build_seccomp_program(SeccompSpec{SeccompMode::unconfined, {}}, kDefaultCaps);
  ASSERT_TRUE(program) << program.error().message;
  EXPECT_TRUE(program->empty());
  errno = 1234;
  EXPECT_EQ(load_seccomp_program(*program), 0);
  EXPECT_EQ(errno, 1234);
  // Nothing was loaded into this process.
  EXPECT_EQ(::prctl(PR_GET_SECCOMP, 0, 0, 0, 0), 0);
}

TEST(SeccompDefault, LoadingWithoutNoNewPrivsOrCapSysAdminIsEaccesAndKeepsErrno) {
  auto program = program_for(kDefaultCaps);
  ChildResult r = run_in_child(nullptr, [&program] {
    // Leaving root for an unprivileged user clears every capability.
    if (::geteuid() == 0 &&
        (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0))
      return Call{-1, -1};
    errno = 1234;
    int e = load_seccomp_program(program);
    return Call{e, errno};
  });
  ASSERT_TRUE(r.reported);
  EXPECT_EQ(r.call.ret, EACCES);
  EXPECT_EQ(r.call.err, 1234);
}

// ---------------------------------------------------------------------------------------------
// The program itself, for the ABIs this machine cannot run.

// Runs a classic BPF seccomp program over `data`, as the kernel would.
std::uint32_t run_filter(const std::vector<sock_filter>& program, const seccomp_data& data) {
  std::uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
  for (std::size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& insn = program[pc];
    std::uint32_t operand = BPF_SRC(insn.code) == BPF_X ? x : insn.k;
    switch (BPF_CLASS(insn.code)) {
      case BPF_LD:
      case BPF_LDX: {
        std::uint32_t v = 0;
        switch (BPF_MODE(insn.code)) {
          case BPF_ABS:
            if (BPF_SIZE(insn.code) != BPF_W || insn.k + 4 > sizeof data) {
              ADD_FAILURE() << "bad load at " << pc;
              return 0;
            }
            std::memcpy(&v, reinterpret_cast<const char*>(&data) + insn.k, 4);
            break;
          case BPF_IMM:
            v = insn.k;
            break;
          case BPF_MEM:
            v = mem[insn.k % BPF_MEMWORDS];
            break;
          case BPF_LEN:
            v = sizeof data;
            break;
          default:
            ADD_FAILURE() << "load mode not for seccomp at " << pc;
            return 0;
        }
        (BPF_CLASS(insn.code) == BPF_LD ? a : x) = v;
        break;
      }
      case BPF_ST:
        mem[insn.k % BPF_MEMWORDS] = a;
        break;
      case BPF_STX:
        mem[insn.k % BPF_MEMWORDS] = x;
        break;
      case BPF_ALU:
        switch (BPF_OP(insn.code)) {
          case BPF_ADD:
            a += operand;
            break;
          case BPF_SUB:
            a -= operand;
            break;
          case BPF_MUL:
            a *= operand;
            break;
          case BPF_DIV:
            a = operand ? a / operand : 0;
            break;
          case BPF_MOD:
            a = operand ? a % operand : 0;
            break;
          case BPF_OR:
            a |= operand;
            break;
          case BPF_AND:
            a &= operand;
            break;
          case BPF_XOR:
            a ^= operand;
            break;
          case BPF_LSH:
            a <<= operand;
            break;
          case BPF_RSH:
            a >>= operand;
            break;
          case BPF_NEG:
            a = -a;
            break;
          default:
            ADD_FAILURE() << "alu op at " << pc;
            return 0;
        }
        break;
      case BPF_JMP: {
        bool taken = false;
        switch (BPF_OP(insn.code)) {
          case BPF_JA:
            pc += insn.k;
            continue;
          case BPF_JEQ:
            taken = a == operand;
            break;
          case BPF_JGT:
            taken = a > operand;
            break;
          case BPF_JGE:
            taken = a >= operand;
            break;
          case BPF_JSET:
            taken = (a & operand) != 0;
            break;
          default:
            ADD_FAILURE() << "jump op at " << pc;
            return 0;
        }
        pc += taken ? insn.jt : insn.jf;
        break;
      }
      case BPF_RET:
        return BPF_RVAL(insn.code) == BPF_A ? a : insn.k;
      case BPF_MISC:
        if (BPF_MISCOP(insn.code) == BPF_TAX) {
          x = a;
        } else {
          a = x;
        }
        break;
    }
  }
  ADD_FAILURE() << "the program ran off its end";
  return 0;
}

constexpr std::uint32_t kX32 = 0x40000000;  // __X32_SYSCALL_BIT

std::uint32_t verdict(const std::vector<sock_filter>& program, std::uint32_t arch, std::uint32_t nr,
                      std::initializer_list<std::uint64_t> args = {}) {
  seccomp_data data{};
  data.arch = arch;
  data.nr = static_cast<int>(nr);
  std::size_t i = 0;
  for (std::uint64_t arg : args) data.args[i++] = arg;
  return run_filter(program, data);
}

constexpr std::uint32_t kEperm = SECCOMP_RET_ERRNO | EPERM;
constexpr std::uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;

#if defined(__x86_64__)
// Numbers from the kernel's syscall_32.tbl and syscall_64.tbl (x32: the 64-bit number with
// the x32 bit, or its own 512+ number for calls with compat arguments).
TEST(SeccompDefaultProgram, JudgesI386CallsByTheSameListsAndKillsX32Calls) {
  auto program = program_for(kDefaultCaps);
  ASSERT_FALSE(program.empty());
  constexpr std::uint32_t i386 = AUDIT_ARCH_I386, x86_64 = AUDIT_ARCH_X86_64;
  // getpid, socketcall (i386's socket entry) and the i386-only chown32.
  EXPECT_EQ(verdict(program, i386, 20), SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(program, i386, 102), SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(program, i386, 212), SECCOMP_RET_ALLOW);
  // kexec_load, mount, init_module, bpf, vm86.
  EXPECT_EQ(verdict(program, i386, 283), kEperm);
  EXPECT_EQ(verdict(program, i386, 21), kEperm);
  EXPECT_EQ(verdict(program, i386, 128), kEperm);
  EXPECT_EQ(verdict(program, i386, 357), kEperm);
  EXPECT_EQ(verdict(program, i386, 166), kEperm);
  // clone (120): flags are its first argument on i386 too.
  EXPECT_EQ(verdict(program, i386, 120, {SIGCHLD}), SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(program, i386, 120, {CLONE_NEWUSER | SIGCHLD}), kEperm);
  EXPECT_EQ(verdict(program, i386, 435), kEnosys);  // clone3
  // personality (136) and reboot (88).
  EXPECT_EQ(verdict(program, i386, 136, {0xffffffff}), SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(program, i386, 136, {ADDR_NO_RANDOMIZE}), kEperm);
  EXPECT_EQ(verdict(program, i386, 88, {0, 0, LINUX_REBOOT_CMD_HALT}), SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(program, i386, 88, {0, 0, LINUX_REBOOT_CMD_CAD_ON}), kEperm);

  // x32 is not covered (security/seccomp_policy.cpp says why): every x32 call kills the
  // process, the harmless ones as well as those the lists refuse.
  for (std::uint32_t nr : {39u, 63u, 528u, 165u, 56u})
    EXPECT_EQ(verdict(program, x86_64, kX32 | nr), SECCOMP_RET_KILL_PROCESS) << nr;

  // x86-64 itself: getpid 39, kexec_load 246, io_uring_setup 425, and what no x86-64 number
  // is: i386's chown32 number (212 is epoll_ctl_old here, allowed like in moby).
  EXPECT_EQ(verdict(program, x86_64, 39), SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(program, x86_64, 246), kEperm);
  EXPECT_EQ(verdict(program, x86_64, 425), kEperm);

  // An ABI the filter does not cover is killed, not judged by another ABI's numbers.
  EXPECT_EQ(verdict(program, AUDIT_ARCH_AARCH64, 172), SECCOMP_RET_KILL_PROCESS);
}

TEST(SeccompDefaultProgram, CapabilitiesChangeTheProgramOnlyWhereTheyShould) {
  auto plain = program_for(kDefaultCaps);
  auto admin = program_for(kDefaultCaps | bit(CAP_SYS_ADMIN));
  constexpr std::uint32_t x86_64 = AUDIT_ARCH_X86_64;
  // mount 165, unshare 272, setns 308, clone 56 with CLONE_NEWNET, clone3 435.
  for (std::uint32_t nr : {165u, 272u, 308u}) {
    EXPECT_EQ(verdict(plain, x86_64, nr), kEperm) << nr;
    EXPECT_EQ(verdict(admin, x86_64, nr), SECCOMP_RET_ALLOW) << nr;
  }
  EXPECT_EQ(verdict(plain, x86_64, 56, {CLONE_NEWNET | SIGCHLD}), kEperm);
  EXPECT_EQ(verdict(admin, x86_64, 56, {CLONE_NEWNET | SIGCHLD}), SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(admin, x86_64, 435), SECCOMP_RET_ALLOW);
  // Never allowed, whatever the capabilities: kexec_load, swapon, userfaultfd, io_uring_setup,
  // keyctl.
  auto all = program_for(~std::uint64_t{0});
  for (std::uint32_t nr : {246u, 167u, 323u, 425u, 250u})
    EXPECT_EQ(verdict(all, x86_64, nr), kEperm) << nr;
  // reboot (169) only with CAP_SYS_BOOT, and only the four commands.
  auto no_boot = program_for(kDefaultCaps & ~bit(CAP_SYS_BOOT));
  EXPECT_EQ(verdict(no_boot, x86_64, 169, {0, 0, LINUX_REBOOT_CMD_POWER_OFF}), kEperm);
  EXPECT_EQ(verdict(plain, x86_64, 169, {0, 0, LINUX_REBOOT_CMD_POWER_OFF}), SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(plain, x86_64, 169, {0, 0, 0xffffffff00000000 | LINUX_REBOOT_CMD_RESTART2}),
            SECCOMP_RET_ALLOW);
  EXPECT_EQ(verdict(plain, x86_64, 169, {0, 0, LINUX_REBOOT_CMD_KEXEC}), kEperm);
  EXPECT_EQ(verdict(plain, x86_64, 169, {0, 0, LINUX_REBOOT_CMD_SW_SUSPEND}), kEperm);
}

// The compact compiler (security/syscall_filter.hpp) must answer exactly as libseccomp does
// for the same spec: every number of every ABI, the x32 range, numbers past every table, other
// ABIs, and the argument values the profile's conditions look at.
TEST(SeccompDefaultProgram, CompactProgramAnswersAsLibseccompsDoes) {
  const std::vector<std::string> notified = {"sysinfo", "sched_getaffinity"};
  const std::uint64_t cap_sets[] = {kDefaultCaps, kDefaultCaps & ~bit(CAP_SYS_BOOT),
                                    kDefaultCaps | bit(CAP_SYS_ADMIN), 0, ~std::uint64_t{0}};
  // First arguments: clone flags with and without namespaces, personalities in and out of the
  // list (also with high bits); third: reboot commands, also sign-extended.
  const std::uint64_t firsts[] = {0,           SIGCHLD,    CLONE_NEWUSER | SIGCHLD, CLONE_NEWNET,
                                  0x8,         0x20008,    ADDR_NO_RANDOMIZE,       0xffffffff,
                                  0x1ffffffff, 0x100000000};
  const std::uint64_t thirds[] = {LINUX_REBOOT_CMD_RESTART, LINUX_REBOOT_CMD_HALT,
                                  0xffffffff00000000 | LINUX_REBOOT_CMD_HALT,
                                  LINUX_REBOOT_CMD_KEXEC, LINUX_REBOOT_CMD_CAD_ON};
  std::vector<std::uint32_t> numbers;
  for (std::uint32_t nr = 0; nr < 1100; ++nr) numbers.push_back(nr);
  for (std::uint32_t nr = 0; nr < 600; ++nr) numbers.push_back(kX32 | nr);
  for (std::uint32_t nr :
       std::vector<std::uint32_t>{0x3fffffff, 0x7fffffff, 0x80000000, 0xffffffff})
    numbers.push_back(nr);
  for (std::uint64_t caps : cap_sets) {
    for (const auto& with : {std::vector<std::string>{}, notified}) {
      SCOPED_TRACE(::testing::Message() << "caps " << std::hex << caps << std::dec << ", "
                                        << with.size() << " notified");
      FilterSpec spec = default_profile(caps, with);
      auto compact = compile_compact(spec);
      auto reference = compile_with_libseccomp(spec);
      ASSERT_TRUE(compact) << compact.error().message;
      ASSERT_TRUE(reference) << reference.error().message;
      EXPECT_LT(compact->size() * 2, reference->size())
          << "the compact program is no longer much smaller than libseccomp's";
      int mismatches = 0;
      for (std::uint32_t arch :
           std::vector<std::uint32_t>{AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64}) {
        for (std::uint32_t nr : numbers) {
          if (arch != AUDIT_ARCH_X86_64 && nr >= 1100) continue;
          for (std::uint64_t first : firsts) {
            for (std::uint64_t third : thirds) {
              // An i386 process's arguments are zero-extended by the kernel.
              if (arch == AUDIT_ARCH_I386 && ((first | third) >> 32) != 0) continue;
              auto want = verdict(*reference, arch, nr, {first, 0, third});
              auto got = verdict(*compact, arch, nr, {first, 0, third});
              if (want != got && ++mismatches <= 5) {
                ADD_FAILURE() << "arch " << std::hex << arch << " nr " << nr << " args " << first
                              << ", " << third << ": libseccomp " << want << ", compact " << got;
              }
            }
          }
        }
      }
      EXPECT_EQ(mismatches, 0);
    }
  }
}

TEST(SeccompDefaultProgram, NotifiedCallsGoToTheListenerAndNothingElseChanges) {
  auto plain = build_seccomp_program(SeccompSpec{}, kDefaultCaps);
  auto merged =
      build_seccomp_program(SeccompSpec{}, kDefaultCaps, {"sysinfo", "sched_getaffinity"});
  ASSERT_TRUE(plain && merged);
  constexpr std::uint32_t x86_64 = AUDIT_ARCH_X86_64, i386 = AUDIT_ARCH_I386;
  // sysinfo is 99 and 116, sched_getaffinity 204 and 242 (x86-64, i386).
  for (auto [arch, nr] : {std::pair{x86_64, 99u}, {x86_64, 204u}, {i386, 116u}, {i386, 242u}}) {
    EXPECT_EQ(verdict(*plain, arch, nr), SECCOMP_RET_ALLOW) << nr;
    EXPECT_EQ(verdict(*merged, arch, nr), SECCOMP_RET_USER_NOTIF) << nr;
  }
  for (std::uint32_t nr = 0; nr < 500; ++nr) {
    if (nr == 99 || nr == 204) continue;
    EXPECT_EQ(verdict(*plain, x86_64, nr, {SIGCHLD}), verdict(*merged, x86_64, nr, {SIGCHLD}))
        << nr;
  }
}
#endif

// ---------------------------------------------------------------------------------------------
// OCI profiles.

std::vector<sock_filter> compile(const json& profile) {
  auto program = compile_oci_seccomp(profile, "test profile");
  EXPECT_TRUE(program) << program.error().message;
  return program ? *program : std::vector<sock_filter>{};
}

TEST(SeccompOci, DeniesOneCallWithItsErrno) {
  auto program = compile(json::parse(R"({
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [{"names": ["getppid", "kapsel_no_such_call"], "action": "SCMP_ACT_ERRNO",
                  "errnoRet": 99}]
  })"));
  Call c = filtered(program, [] { return raw(SYS_getppid); });
  EXPECT_EQ(c.ret, -1);
  EXPECT_EQ(c.err, 99);
  EXPECT_GT(filtered(program, [] { return raw(SYS_getpid); }).ret, 0);
}

TEST(SeccompOci, ArgumentConditions) {
  // personality(0xdead) refused with EQ; getpriority's second argument with MASKED_EQ; two
  // conditions on one argument are ORed (as runc does), on two arguments ANDed.
  auto program = compile(json::parse(R"({
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
      {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42,
       "args": [{"index": 0, "value": 57005, "op": "SCMP_CMP_EQ"}]},
      {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 43,
       "args": [{"index": 1, "value": 65280, "valueTwo": 4608, "op": "SCMP_CMP_MASKED_EQ"}]},
      {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 44,
       "args": [{"index": 1, "value": 111111, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 222222, "op": "SCMP_CMP_EQ"}]},
      {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 45,
       "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 333333, "op": "SCMP_CMP_EQ"}]}
    ]
  })"));
  auto prio = [&](long which, long who) {
    return filtered(program, [=] { return raw(SYS_getpriority, which, who); });
  };
  EXPECT_EQ(filtered(program, [] { return raw(SYS_personality, 0xdeadL); }).err, 42);
  EXPECT_EQ(filtered(program, [] { return raw(SYS_personality, 0xffffffffL); }).err, 0);
  EXPECT_EQ(prio(PRIO_PROCESS, 0x1234).err, 43);  // (0x1234 & 0xff00) == 0x1200
  EXPECT_EQ(prio(PRIO_PROCESS, 0x1334).err, ESRCH);
  EXPECT_EQ(prio(PRIO_PROCESS, 0).err, 0);
  EXPECT_EQ(prio(PRIO_PROCESS, 111111).err, 44);
  EXPECT_EQ(prio(PRIO_PROCESS, 222222).err, 44);
  EXPECT_EQ(prio(PRIO_PROCESS, 333333).err, 45);
  EXPECT_EQ(prio(PRIO_PGRP, 333333).err, ESRCH);
}

TEST(SeccompOci, DefaultKillProcessKillsWithSigsys) {
  // What the child does after its probe; ASan asks for the signal stack before a noreturn call.
  auto program = compile(json::parse(R"({
    "defaultAction": "SCMP_ACT_KILL_PROCESS",
    "syscalls": [{"names": ["getpid", "write", "exit_group", "sigaltstack"],
                  "action": "SCMP_ACT_ALLOW"}]
  })"));
  ChildResult r = run_in_child(&program, [] { return raw(SYS_getppid); });
  EXPECT_FALSE(r.reported);
  ASSERT_TRUE(WIFSIGNALED(r.status)) << "wait status " << r.status;
  EXPECT_EQ(WTERMSIG(r.status), SIGSYS);
  // What it allows still runs.
  ChildResult ok = run_in_child(&program, [] { return raw(SYS_getpid); });
  EXPECT_TRUE(ok.reported);
  EXPECT_TRUE(WIFEXITED(ok.status) && WEXITSTATUS(ok.status) == 0) << ok.status;
}

TEST(SeccompOci, AcceptsLoadTimeFlagsAndEmptyDockerConditions) {
  auto program = compile_oci_seccomp(json::parse(R"({
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    "listenerPath": "",
    "syscalls": [
      {"names": ["getpid", "write", "exit_group"], "action": "SCMP_ACT_ALLOW", "includes": {},
       "excludes": {}, "comment": "ignored"},
      {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    ]
  })"),
                                     "test");
  ASSERT_TRUE(program) << program.error().message;
  // Not allowed: the default's ENOSYS.
  EXPECT_EQ(filtered(*program, [] { return raw(SYS_getuid); }).err, ENOSYS);
}

// A profile with one rule whose `key` is set to `value` (JSON text).
json with_rule(const char* key, const char* value) {
  json rule = json::parse(R"({"names": ["getppid"], "action": "SCMP_ACT_ERRNO"})");
  rule[key] = json::parse(value);
  json profile = json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW"})");
  profile["syscalls"] = json::array({rule});
  return profile;
}

struct BadProfile {
  const char* what;
  json profile;
  const char* path;     // the JSON path the message must name
  const char* mention;  // and something else it must say
};

std::vector<BadProfile> bad_profiles() {
  return {
      {"missing defaultAction", json::object(), "defaultAction", "missing"},
      {"unknown action", with_rule("action", R"("SCMP_ACT_FOO")"), "syscalls[0].action",
       "unknown action 'SCMP_ACT_FOO'"},
      {"notify", with_rule("action", R"("SCMP_ACT_NOTIFY")"), "syscalls[0].action",
       "SCMP_ACT_NOTIFY"},
      {"default notify", json::parse(R"({"defaultAction": "SCMP_ACT_NOTIFY"})"), "defaultAction",
       "SCMP_ACT_NOTIFY"},
      {"action not a string", with_rule("action", "1"), "syscalls[0].action",
       "must be a string, not number"},
      {"names not an array", with_rule("names", R"("getppid")"), "syscalls[0].names",
       "must be an array, not string"},
      {"a name not a string", with_rule("names", R"(["getppid", 7])"), "syscalls[0].names[1]",
       "must be a string"},
      {"unknown op", with_rule("args", R"([{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}])"),
       "syscalls[0].args[0].op", "unknown operator 'SCMP_CMP_XX'"},
      {"index too large", with_rule("args", R"([{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])"),
       "syscalls[0].args[0].index", "at most 5"},
      {"negative value", with_rule("args", R"([{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}])"),
       "syscalls[0].args[0].value", "unsigned integer"},
      {"missing op", with_rule("args", R"([{"index": 0, "value": 1}])"), "syscalls[0].args[0].op",
       "missing"},
      {"errnoRet on ALLOW", json::parse(R"({"defaultAction": "SCMP_ACT_ERRNO",
                       "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
                                     "errnoRet": 1}]})"),
       "syscalls[0].errnoRet", "only for SCMP_ACT_ERRNO"},
      {"errno out of range", with_rule("errnoRet", "5000"), "syscalls[0].errnoRet", "at most 4095"},
      {"Docker condition", with_rule("includes", R"({"caps": ["CAP_SYS_ADMIN"]})"),
       "syscalls[0].includes", "Docker"},
      {"unknown arch", json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW",
                       "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]})"),
       "architectures[1]", "unknown architecture 'SCMP_ARCH_Z80'"},
      {"listenerPath",
       json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"})"),
       "listenerPath", "not supported"},
      {"new listener flag", json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW",
                       "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]})"),
       "flags[0]", "not supported"},
      {"unknown flag",
       json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FOO"]})"),
       "flags[0]", "unknown flag"},
      {"syscalls not an array",
       json::parse(R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": 3})"), "syscalls",
       "must be an array"},
  };
}

TEST(SeccompOci, BadProfilesNameTheOffendingField) {
  for (const BadProfile& b : bad_profiles()) {
    auto program = compile_oci_seccomp(b.profile, "config.json");
    ASSERT_FALSE(program) << b.what;
    const Error& e = program.error();
    EXPECT_EQ(e.kind, ErrorKind::usage) << b.what << ": " << e.message;
    EXPECT_TRUE(e.message.starts_with(std::string("config.json: ") + b.path + ": "))
        << b.what << ": " << e.message;
    EXPECT_NE(e.message.find(b.mention), std::string::npos) << b.what << ": " << e.message;
    EXPECT_EQ(e.message.find('\n'), std::string::npos) << b.what << ": " << e.message;
  }
}

// A temporary directory, removed with its contents.
class SeccompFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kapsel-seccomp-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    FILE* f = std::fopen(path.c_str(), "w");
    EXPECT_NE(f, nullptr);
    if (f != nullptr) {
      std::fputs(text.c_str(), f);
      std::fclose(f);
    }
    return path;
  }
  std::string dir_;
};

constexpr const char* kDenyGetppid =
    R"({"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99}]}
)";

TEST_F(SeccompFiles, ErrorsInAFileGiveItsLine) {
  std::string path = write("bad.json", R"({
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
    {
      "names": ["getppid"],
      "action": "SCMP_ACT_FOO"
    }
  ]
})");
  auto program = compile_oci_seccomp_file(path);
  ASSERT_FALSE(program);
  EXPECT_EQ(program.error().kind, ErrorKind::usage);
  EXPECT_TRUE(program.error().message.starts_with(
      path + ": line 7: syscalls[1].action: unknown action 'SCMP_ACT_FOO' (use "))
      << program.error().message;

  // Strings with brackets and quotes, and an escaped key, do not throw the line off.
  std::string tricky = write("tricky.json", R"({
  "comment": "tricky } ] [ { \" chars",
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["a\"b}"], "action": "SCMP_ACT_ALLOW", "args": []},
    {"names": ["getppid"],
     "\u0061ction": "SCMP_ACT_BAD"}
  ]
})");
  auto t = compile_oci_seccomp_file(tricky);
  ASSERT_FALSE(t);
  EXPECT_TRUE(t.error().message.starts_with(tricky + ": line 7: syscalls[1].action: unknown"))
      << t.error().message;

  // A missing field: the line of the object it is missing from.
  std::string missing = write("missing.json", "\n\n  {\"syscalls\": []}\n");
  auto m = compile_oci_seccomp_file(missing);
  ASSERT_FALSE(m);
  EXPECT_TRUE(m.error().message.starts_with(missing + ": line 3: defaultAction: missing"))
      << m.error().message;
}

TEST_F(SeccompFiles, InvalidJsonNamesTheFileAndPosition) {
  std::string path =
      write("broken.json", "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  oops\n}\n");
  auto program = compile_oci_seccomp_file(path);
  ASSERT_FALSE(program);
  EXPECT_EQ(program.error().kind, ErrorKind::usage);
  EXPECT_TRUE(program.error().message.starts_with(path + ": not valid JSON at line 3, column "))
      << program.error().message;
}

TEST_F(SeccompFiles, ParseSeccompOption) {
  auto d = parse_seccomp_option("default");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->mode, SeccompMode::default_profile);
  EXPECT_EQ(to_string(*d), "default");
  auto u = parse_seccomp_option("unconfined");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->mode, SeccompMode::unconfined);
  EXPECT_EQ(to_string(*u), "unconfined");

  std::string path = write("profile.json", kDenyGetppid);
  auto f = parse_seccomp_option(path);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->mode, SeccompMode::file);
  EXPECT_EQ(f->file, path);
  EXPECT_EQ(to_string(*f), path);
  // to_string() reads back as the same spec.
  for (const SeccompSpec& spec : {*d, *u, *f}) {
    auto again = parse_seccomp_option(to_string(spec));
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, spec);
  }
  // The file's program is built at start, from the file as it is then.
  auto program = build_seccomp_program(*f, kDefaultCaps);
  ASSERT_TRUE(program) << program.error().message;
  EXPECT_EQ(filtered(*program, [] { return raw(SYS_getppid); }).err, 99);
}

TEST_F(SeccompFiles, ARelativePathIsMadeAbsolute) {
  write("profile.json", kDenyGetppid);
  ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0755), 0);
  char old_cwd[4096];
  ASSERT_NE(::getcwd(old_cwd, sizeof old_cwd), nullptr);
  ASSERT_EQ(::chdir(dir_.c_str()), 0);
  auto plain = parse_seccomp_option("profile.json");
  auto dotted = parse_seccomp_option("./sub/../profile.json");
  auto missing = parse_seccomp_option("nope.json");
  ASSERT_EQ(::chdir(old_cwd), 0);
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->file, dir_ + "/profile.json");
  ASSERT_TRUE(dotted) << dotted.error().message;
  EXPECT_EQ(dotted->file, dir_ + "/profile.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "--seccomp " + dir_ +
                "/nope.json: No such file or directory (give default, unconfined or the path of "
                "an OCI seccomp JSON file)");
}

TEST_F(SeccompFiles, BadFilesAreUsageErrors) {
  auto missing = parse_seccomp_option("/kapsel-no-such-dir/nope.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::usage);
  EXPECT_TRUE(missing.error().message.starts_with(
      "--seccomp /kapsel-no-such-dir/nope.json: No such file or directory"))
      << missing.error().message;

  auto directory = parse_seccomp_option(dir_);
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().kind, ErrorKind::usage);
  EXPECT_TRUE(directory.error().message.starts_with("--seccomp " + dir_ + ": Is a directory"))
      << directory.error().message;

  std::string bad = write("bad.json", R"({"defaultAction": "SCMP_ACT_FOO"})");
  auto invalid = parse_seccomp_option(bad);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().kind, ErrorKind::usage);
  EXPECT_EQ(invalid.error().message,
            "--seccomp " + bad +
                ": line 1: defaultAction: unknown action 'SCMP_ACT_FOO' (use "
                "SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, "
                "SCMP_ACT_KILL_THREAD, SCMP_ACT_LOG, SCMP_ACT_TRACE or SCMP_ACT_TRAP)");

  std::string broken = write("broken.json", "{");
  auto unparsable = parse_seccomp_option(broken);
  ASSERT_FALSE(unparsable);
  EXPECT_EQ(unparsable.error().kind, ErrorKind::usage);
  EXPECT_TRUE(unparsable.error().message.starts_with("--seccomp " + broken + ": not valid JSON"))
      << unparsable.error().message;

  auto empty = parse_seccomp_option("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().kind, ErrorKind::usage);
}

}  // namespace
}  // namespace kapsel::security
