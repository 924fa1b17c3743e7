#include "security/seccomp_policy.hpp"

#include <linux/capability.h>
#include <linux/reboot.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <initializer_list>
#include <system_error>

#include "common/unique_fd.hpp"
#include "security/oci_seccomp.hpp"

namespace kapsel::security {
namespace {

// The default profile.
//
// Modelled on moby's default seccomp profile (profiles/seccomp/default.json, the one Docker
// ships): an allowlist for x86-64 and i386 whose default answer is EPERM, a list of calls
// every process may make, groups allowed only to a VE that keeps a capability, and argument
// rules for clone, clone3 and personality. Where kapsel differs, and why:
// - x32 calls are not judged but kill the process (see default_profile()).
// - kexec_load and kexec_file_load are never allowed (moby: with CAP_SYS_BOOT). kapsel keeps
//   CAP_SYS_BOOT by default, because a VE's init halts or reboots with reboot(2), which in a
//   pid namespace ends only that namespace; kexec knows no namespace and replaces the host's
//   kernel.
// - reboot(2), with CAP_SYS_BOOT, only for RESTART, RESTART2, POWER_OFF and HALT: the commands
//   a pid namespace turns into its own end. Outside one, the others (CAD_ON/CAD_OFF, KEXEC,
//   SW_SUSPEND) act on the host, and a VE's processes are never meant to be outside one.
// - adjtimex and clock_adjtime need CAP_SYS_TIME like clock_settime (time is not namespaced);
//   name_to_handle_at needs CAP_DAC_READ_SEARCH like open_by_handle_at (a handle is only of use
//   to open_by_handle_at; systemd falls back when refused).
// Never allowed, whatever the capabilities: userfaultfd, swapon/swapoff, io_uring_*
// (moby dropped it in 2023), keyctl/add_key/request_key (keyrings are not namespaced), vm86,
// and obsolete calls (uselib, ustat, sysfs, _sysctl, nfsservctl, ...).
// Calls newer than this libseccomp's tables (2.5.4 knows Linux 6.7's) are skipped, so they get
// EPERM until libseccomp learns them.
//
// ptrace and process_vm_readv/writev are allowed as in moby: since Linux 4.8 seccomp runs again
// after a tracer changes a call, so ptrace cannot escape the filter, and the pid namespace
// hides every process outside the VE.
constexpr const char* kAllowed[] = {
    "accept",
    "accept4",
    "access",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // x86 only (moby's per-architecture group); names another architecture lacks are skipped.
    "arch_prctl",
    "modify_ldt",
};

constexpr std::uint64_t cap(unsigned n) {
  return std::uint64_t{1} << n;
}

// Calls allowed to a VE that keeps any of `caps`: the kernel checks that capability for them,
// but their attack surface is not worth exposing to a VE that cannot use them anyway.
struct CapGroup {
  std::uint64_t caps;
  std::initializer_list<const char*> names;
};

const CapGroup kCapGroups[] = {
    {cap(CAP_SYS_ADMIN),
     {"fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount",
      "mount_setattr", "move_mount", "open_tree", "pivot_root", "quotactl", "quotactl_fd",
      "setdomainname", "sethostname", "setns", "umount", "umount2", "unshare"}},
    {cap(CAP_SYS_ADMIN) | cap(CAP_BPF), {"bpf"}},
    {cap(CAP_SYS_ADMIN) | cap(CAP_PERFMON), {"perf_event_open"}},
    // The kernel lets CAP_SYS_ADMIN read the log too (with a warning), as moby does.
    {cap(CAP_SYSLOG) | cap(CAP_SYS_ADMIN), {"syslog"}},
    {cap(CAP_DAC_READ_SEARCH), {"open_by_handle_at", "name_to_handle_at"}},
    {cap(CAP_SYS_MODULE), {"init_module", "finit_module", "delete_module"}},
    {cap(CAP_SYS_PACCT), {"acct"}},
    {cap(CAP_SYS_PTRACE), {"kcmp", "pidfd_getfd", "process_madvise"}},
    {cap(CAP_SYS_RAWIO), {"iopl", "ioperm"}},
    {cap(CAP_SYS_TIME),
     {"settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime",
      "clock_adjtime64"}},
    {cap(CAP_SYS_TTY_CONFIG), {"vhangup"}},
    {cap(CAP_SYS_NICE),
     {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node", "move_pages",
      "migrate_pages"}},
    {cap(CAP_SYS_CHROOT), {"chroot"}},
};

// The namespace flags of clone(2): CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID
// | NEWNET. Without CAP_SYS_ADMIN a VE's process forks and starts threads, nothing more.
constexpr std::uint64_t kCloneNamespaceFlags = 0x7E020000;
static_assert(kCloneNamespaceFlags == (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                       CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET));

// personality(2) values moby allows: PER_LINUX, PER_LINUX32, UNAME26 with either, and the query
// 0xffffffff. The others turn on ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC and the like.
constexpr std::uint64_t kPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

// The reboot(2) commands a pid namespace ends itself with. The command is an int, and glibc's
// reboot(int) sign-extends it into the 64-bit register seccomp compares: only the low 32 bits
// count (HALT and RESTART2 are negative ints).
constexpr std::uint32_t kRebootCommands[] = {LINUX_REBOOT_CMD_RESTART, LINUX_REBOOT_CMD_RESTART2,
                                             LINUX_REBOOT_CMD_POWER_OFF, LINUX_REBOOT_CMD_HALT};

}  // namespace

FilterSpec default_profile(std::uint64_t caps, const std::vector<std::string>& notified) {
  FilterSpec spec;
  spec.default_action = SCMP_ACT_ERRNO(EPERM);
  // A call from an ABI the filter does not cover is not one it can judge: the process dies.
  // On x86-64 that is an x32 call: x32 is the one ABI moby's profile has that kapsel leaves
  // out, since Debian's kernels refuse x32 calls unless booted with syscall.x32=y and no Debian
  // userland uses it, while a third section would make the filter longer for every process
  // that loads it.
  spec.other_abi_action = SCMP_ACT_KILL_PROCESS;
  spec.abis = {seccomp_arch_native()};
#if defined(__x86_64__)
  // A 64-bit process can also make i386 calls (int $0x80); they are judged by the same lists,
  // by name.
  spec.abis.push_back(SCMP_ARCH_X86);
#endif
  auto allow = [&](const char* name, std::vector<std::vector<ArgCondition>> when_any = {}) {
    bool is_notified = std::find(notified.begin(), notified.end(), name) != notified.end();
    spec.rules.push_back(
        SyscallRule{name, is_notified ? SCMP_ACT_NOTIFY : SCMP_ACT_ALLOW, std::move(when_any)});
  };
  for (const char* name : kAllowed) allow(name);
  for (const CapGroup& group : kCapGroups) {
    if (!(caps & group.caps)) continue;
    for (const char* name : group.names) allow(name);
  }

  if (caps & cap(CAP_SYS_ADMIN)) {
    allow("clone");
    allow("clone3");
  } else {
    // The flags are clone's first argument on x86 (s390 swaps the first two; kapsel does not
    // run there).
    allow("clone", {{ArgCondition{0, kCloneNamespaceFlags, 0}}});
    // clone3 passes its flags in memory, where seccomp cannot look. ENOSYS makes glibc (2.34
    // and later) fall back to clone, whose flags the rule above checks.
    spec.rules.push_back(SyscallRule{"clone3", SCMP_ACT_ERRNO(ENOSYS), {}});
  }
  std::vector<std::vector<ArgCondition>> personas;
  for (std::uint64_t persona : kPersonalities)
    personas.push_back({ArgCondition{0, ~0ULL, persona}});
  allow("personality", std::move(personas));
  if (caps & cap(CAP_SYS_BOOT)) {
    std::vector<std::vector<ArgCondition>> commands;
    for (std::uint32_t command : kRebootCommands)
      commands.push_back({ArgCondition{2, 0xffffffff, command}});
    allow("reboot", std::move(commands));
  }
  return spec;
}

void SeccompContextRelease::operator()(void* ctx) const {
  seccomp_release(ctx);
}

Result<std::vector<sock_filter>> export_seccomp_program(void* ctx, std::string_view what) {
  std::string context = "exporting " + std::string(what);
  UniqueFd fd(::memfd_create("kapsel-seccomp", MFD_CLOEXEC));
  if (!fd) return errno_fail(context + ": memfd_create");
  if (int rc = seccomp_export_bpf(ctx, fd.get()); rc < 0) return sys_fail(-rc, context);
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0)
    return fail(ErrorKind::failure, context + ": libseccomp wrote no BPF program");
  if (size / static_cast<off_t>(sizeof(sock_filter)) > BPF_MAXINSNS)
    return fail(ErrorKind::usage, context + ": " + std::to_string(size / sizeof(sock_filter)) +
                                      " instructions, more than the kernel's " +
                                      std::to_string(BPF_MAXINSNS) + " (use fewer rules)");
  std::vector<sock_filter> program(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (::pread(fd.get(), program.data(), static_cast<std::size_t>(size), 0) != size)
    return errno_fail(context + ": reading it back");
  return program;
}

Result<SeccompSpec> parse_seccomp_option(std::string_view value) {
  if (value == "default") return SeccompSpec{};
  if (value == "unconfined") return SeccompSpec{SeccompMode::unconfined, {}};
  if (value.empty()) {
    return fail(ErrorKind::usage,
                "--seccomp: empty value (give default, unconfined or the path of an OCI seccomp "
                "JSON file)");
  }
  std::error_code ec;
  std::filesystem::path path = std::filesystem::absolute(std::filesystem::path(value), ec);
  if (ec) {
    return fail(ErrorKind::usage, "--seccomp " + std::string(value) +
                                      ": cannot make the path absolute: " + ec.message() +
                                      " (give an absolute path)");
  }
  SeccompSpec spec{SeccompMode::file, path.lexically_normal().string()};
  auto program = compile_oci_seccomp_file(spec.file);
  if (!program) {
    Error e = program.error();
    e.message = "--seccomp " + e.message;
    // A system error is about the file itself (missing, unreadable): say what may be given.
    if (e.code != 0 && e.kind != ErrorKind::usage)
      e.message += " (give default, unconfined or the path of an OCI seccomp JSON file)";
    e.kind = ErrorKind::usage;
    return tl::unexpected(std::move(e));
  }
  return spec;
}

std::string to_string(const SeccompSpec& spec) {
  switch (spec.mode) {
    case SeccompMode::default_profile:
      return "default";
    case SeccompMode::unconfined:
      return "unconfined";
    case SeccompMode::file:
      return spec.file;
  }
  return "default";
}

Result<std::vector<sock_filter>> build_seccomp_program(const SeccompSpec& spec, std::uint64_t caps,
                                                       const std::vector<std::string>& notified) {
  switch (spec.mode) {
    case SeccompMode::unconfined:
      return std::vector<sock_filter>{};
    case SeccompMode::file:
      return compile_oci_seccomp_file(spec.file);
    case SeccompMode::default_profile: {
      FilterSpec profile = default_profile(caps, notified);
      // libseccomp compiles what the compact form cannot express (nothing, today).
      if (auto compact = compile_compact(profile)) return compact;
      return with_context(compile_with_libseccomp(profile), "building the default seccomp profile");
    }
  }
  return fail(ErrorKind::failure, "building the seccomp filter: unknown mode");
}

int load_seccomp_program(const std::vector<sock_filter>& program, int* listener) noexcept {
  if (program.empty()) return 0;
  if (program.size() > BPF_MAXINSNS) return EINVAL;
  struct sock_fprog fprog = {static_cast<unsigned short>(program.size()),
                             const_cast<sock_filter*>(program.data())};
  int saved = errno;
  long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, &fprog);
  int result = rc < 0 ? errno : 0;
  if (listener && rc >= 0) *listener = static_cast<int>(rc);
  errno = saved;
  return result;
}

}  // namespace kapsel::security
