#include "driver/container/container_driver.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>

#include "agent/guest_network.hpp"
#include "cgroup/manager.hpp"
#include "cgroup/resources.hpp"
#include "common/fs.hpp"
#include "common/terminal.hpp"
#include "common/trace.hpp"
#include "driver/container/rootfs.hpp"
#include "monitor/monitor.hpp"
#include "monitor/oom_watch.hpp"
#include "net/bridge_network.hpp"
#include "net/loopback.hpp"
#include "net/ve_network.hpp"
#include "procfs/procfs_service.hpp"
#include "procfs/syscall_virtualizer.hpp"
#include "procfs/ve_view.hpp"
#include "security/policy.hpp"
#include "security/userns.hpp"

namespace kapsel::driver::container {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Everything the VE's init process needs between clone and exec. Plain data: the child must not
// depend on anything of the monitor's that the clone did not copy.
struct InitArgs {
  RootfsSpec rootfs;
  std::string hostname;
  std::string init;
  bool own_network;   // in a network namespace of its own, whose lo init brings up
  int sync_fd;        // read end: the monitor's GoMessage, once the child is in its cgroups
  int error_fd;       // write end, close-on-exec: silent EOF means init was exec'd
  int console_slave;  // becomes init's stdin, stdout, stderr and controlling terminal
  int notify_sock;    // where init sends the listener of its syscall filter to the monitor
  // The syscall virtualiser's own filter, for a policy whose program does not notify (null
  // when the VE's seccomp setting is the default profile, whose program does).
  const std::vector<sock_filter>* notify_program;
  // A container made from an OCI bundle (null: a VE): init runs bundle_init() instead.
  const store::BundleConfig* bundle = nullptr;
  std::string console_path;  // the pty slave, bound at /dev/console if the process has a terminal
  int fifo_fd = -1;          // O_PATH of the bundle's start FIFO
  int stdio_base = -1;       // the caller's stdin, stdout, stderr at stdio_base..stdio_base+2
};

// The monitor's go to init, followed by `insns` instructions of the VE's seccomp profile: the
// part of the VE's security policy that init enters last, which the monitor makes while init
// builds its root file system.
struct GoMessage {
  security::CapabilityPlan caps;
  std::uint32_t insns = 0;
  bool notifies = false;  // the program sends the virtualised calls to its listener
};

// Reads exactly `size` bytes; false on EOF or error.
bool read_exact(int fd, void* into, std::size_t size) {
  auto* p = static_cast<char*>(into);
  while (size > 0) {
    ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// The monitor's go (GoMessage, then the seccomp program) as init's security policy. EOF means
// the monitor died before the VE was in its cgroups: init ends quietly.
security::VePolicy read_go(int sync_fd) {
  GoMessage go;
  security::VePolicy policy;
  if (!read_exact(sync_fd, &go, sizeof go)) ::_exit(1);
  policy.cap_plan = go.caps;
  policy.seccomp_notifies = go.notifies;
  policy.seccomp.resize(go.insns);
  if (!read_exact(sync_fd, policy.seccomp.data(), go.insns * sizeof(sock_filter))) ::_exit(1);
  return policy;
}

[[noreturn]] void init_fail(int error_fd, const Error& e) {
  std::string msg = std::to_string(e.code) + " " + e.message;
  (void)!::write(error_fd, msg.data(), msg.size());
  ::_exit(1);
}

// After a bundle's init has told the monitor it is ready, nobody reads its error pipe: a failure
// from then on (at start, or exec) is written to its stderr, which is the caller's, as runc does.
[[noreturn]] void late_fail(const std::string& what, int err) {
  std::string msg = "kapsel-runc: " + what + ": " + std::strerror(err) + "\n";
  (void)!::write(STDERR_FILENO, msg.data(), msg.size());
  ::_exit(127);
}

// The process's identity (process.user): supplementary groups, gid, uid. A non-root uid keeps
// its permitted capabilities over setuid (PR_SET_KEEPCAPS) and raises them into the effective
// set again, so that enter_policy() can still shape them. No allocation: runs in vfork children.
// Returns 0 or an errno.
int switch_user(std::uint32_t uid, std::uint32_t gid, const std::uint32_t* groups,
                std::size_t ngroups) noexcept {
  gid_t list[64];
  if (ngroups > 64) return EINVAL;
  for (std::size_t i = 0; i < ngroups; ++i) list[i] = groups[i];
  if (::setgroups(ngroups, list) != 0) return errno;
  if (::setresgid(gid, gid, gid) != 0) return errno;
  if (uid == 0) return ::setresuid(0, 0, 0) == 0 ? 0 : errno;
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return errno;
  if (::setresuid(uid, uid, uid) != 0) return errno;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return errno;
  for (auto& d : data) d.effective = d.permitted;
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  return 0;
}

// process.ioPriority, process.scheduler and process.execCPUAffinity.final of a bundle's
// process, applied by its init (with the host's privileges still: a realtime policy needs
// CAP_SYS_NICE) once it is in the container's cgroups, whose cpuset the CPUs must be in.
Status apply_scheduling(const store::BundleProcess& p) {
  if (p.io_class != 0) {
    constexpr int kWhoProcess = 1, kClassShift = 13;  // IOPRIO_WHO_PROCESS, IOPRIO_CLASS_SHIFT
    if (::syscall(SYS_ioprio_set, kWhoProcess, 0, (p.io_class << kClassShift) | p.io_level) != 0)
      return errno_fail("process.ioPriority");
  }
  if (p.sched_policy >= 0) {
    // sched_setattr(2)'s struct sched_attr, which glibc does not declare.
    struct {
      std::uint32_t size, policy;
      std::uint64_t flags;
      std::int32_t nice;
      std::uint32_t priority;
      std::uint64_t runtime, deadline, period;
    } attr{48,
           static_cast<std::uint32_t>(p.sched_policy),
           p.sched_flags,
           p.sched_nice,
           p.sched_priority,
           p.sched_runtime,
           p.sched_deadline,
           p.sched_period};
    if (::syscall(SYS_sched_setattr, 0, &attr, 0) != 0) return errno_fail("process.scheduler");
  }
  if (!p.cpu_affinity.empty()) {
    auto list = cgroup::parse_cpu_list(p.cpu_affinity);
    if (!list) return tl::unexpected(list.error().context("process.execCPUAffinity.final"));
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    for (unsigned cpu : *list) {
      if (cpu < CPU_SETSIZE) CPU_SET(cpu, &cpus);
    }
    if (::sched_setaffinity(0, sizeof cpus, &cpus) != 0)
      return errno_fail("process.execCPUAffinity.final " + p.cpu_affinity);
  }
  return {};
}

int rlimit_resource(const std::string& name) {
  static const std::array<std::pair<const char*, int>, 16> kNames = {{
      {"RLIMIT_AS", RLIMIT_AS},
      {"RLIMIT_CORE", RLIMIT_CORE},
      {"RLIMIT_CPU", RLIMIT_CPU},
      {"RLIMIT_DATA", RLIMIT_DATA},
      {"RLIMIT_FSIZE", RLIMIT_FSIZE},
      {"RLIMIT_LOCKS", RLIMIT_LOCKS},
      {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
      {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
      {"RLIMIT_NICE", RLIMIT_NICE},
      {"RLIMIT_NOFILE", RLIMIT_NOFILE},
      {"RLIMIT_NPROC", RLIMIT_NPROC},
      {"RLIMIT_RSS", RLIMIT_RSS},
      {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
      {"RLIMIT_RTTIME", RLIMIT_RTTIME},
      {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
      {"RLIMIT_STACK", RLIMIT_STACK},
  }};
  for (const auto& [n, r] : kNames) {
    if (name == n) return r;
  }
  return -1;
}

// execvp's search in the process's own PATH (process.env), not kapsel's.
[[noreturn]] void exec_process(const store::BundleProcess& p) {
  std::vector<char*> argv;
  for (const auto& a : p.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  std::string search = kDefaultPath;
  for (const auto& e : p.env) {
    envp.push_back(const_cast<char*>(e.c_str()));
    if (e.rfind("PATH=", 0) == 0) search = e.substr(5);
  }
  envp.push_back(nullptr);
  const std::string& program = p.args.front();
  int err = ENOENT;
  if (program.find('/') != std::string::npos) {
    ::execve(program.c_str(), argv.data(), envp.data());
    err = errno;
  } else {
    std::size_t pos = 0;
    while (pos <= search.size()) {
      std::size_t end = search.find(':', pos);
      if (end == std::string::npos) end = search.size();
      std::string dir = search.substr(pos, end - pos);
      std::string path = (dir.empty() ? "." : dir) + "/" + program;
      ::execve(path.c_str(), argv.data(), envp.data());
      if (errno == EACCES) {
        err = EACCES;
      } else if (errno != ENOENT && errno != ENOTDIR) {
        err = errno;
        break;
      }
      pos = end + 1;
    }
  }
  late_fail("starting the container process " + program, err);
}

// Init of a container made from an OCI bundle: the bundle's root and mounts, then the spec's
// "created" state (everything done but the user's program, waiting for `start` on the FIFO),
// then the process's identity, limits and security, and its program.
[[noreturn]] void bundle_init(const InitArgs& a) {
  const store::BundleConfig& b = *a.bundle;
  const store::BundleProcess& p = b.process;
  trace::point("init: cloned");
  // The monitor's report pipe and its share of the container's lock (ContainerDriver::start):
  // this init outlives the monitor and waits for `start`, which must see the report end and
  // take the lock meanwhile.
  ::close(monitor::kReportFd);
  ::close(monitor::kLockFd);
  // A mount namespace joined by path (runc's way): the root and mounts are made in it, and
  // pivot_root moves its root, so it should be one made for the container.
  if (std::string mnt = b.namespace_path("mount"); !mnt.empty()) {
    UniqueFd ns(::open(mnt.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns || ::setns(ns.get(), CLONE_NEWNS) != 0)
      init_fail(a.error_fd, errno_fail("linux.namespaces: joining " + mnt).value());
  }
  // A user namespace of its own (once the monitor has written its maps: one byte on the sync
  // pipe) or joined: init is the namespace's root, which owns every other namespace made in it.
  if (b.has_namespace("user")) {
    char mapped = 0;
    if (b.namespace_path("user").empty() && !read_exact(a.sync_fd, &mapped, 1)) ::_exit(1);
    if (int err = security::become_namespace_root(); err != 0)
      init_fail(a.error_fd, sys_fail(err, "becoming root of the user namespace").value());
  }
  if (p.oom_score_adj) {
    if (auto st = fs::write_existing("/proc/self/oom_score_adj", std::to_string(*p.oom_score_adj));
        !st)
      init_fail(a.error_fd, st.error().context("oomScoreAdj"));
  }
  if (auto st = setup_bundle_rootfs(b, p.terminal ? a.console_path : std::string()); !st)
    init_fail(a.error_fd, st.error());
  trace::point("init: pivoted");
  if (b.has_namespace("uts") && b.namespace_path("uts").empty()) {
    if (!a.hostname.empty() && ::sethostname(a.hostname.data(), a.hostname.size()) != 0)
      init_fail(a.error_fd, errno_fail("setting hostname").value());
    if (!b.domainname.empty() && ::setdomainname(b.domainname.data(), b.domainname.size()) != 0)
      init_fail(a.error_fd, errno_fail("setting domainname").value());
  }
  if (a.own_network) {
    if (auto st = net::bring_up_loopback(); !st) init_fail(a.error_fd, st.error());
  }
  ::setsid();
  if (p.terminal) {
    if (::ioctl(a.console_slave, TIOCSCTTY, 0) != 0)
      init_fail(a.error_fd, errno_fail("console: making it the controlling terminal").value());
    for (int fd = 0; fd <= 2; ++fd) ::dup2(a.console_slave, fd);
  } else {
    for (int fd = 0; fd <= 2; ++fd) ::dup2(a.stdio_base + fd, fd);
  }
  security::VePolicy policy = read_go(a.sync_fd);
  policy.no_new_privs = p.no_new_privileges;
  if (b.has_namespace("cgroup") && b.namespace_path("cgroup").empty() &&
      ::unshare(CLONE_NEWCGROUP) != 0)
    init_fail(a.error_fd, errno_fail("cgroup namespace").value());
  for (const auto& r : p.rlimits) {
    struct rlimit lim {
      r.soft, r.hard
    };
    int resource = rlimit_resource(r.type);
    if (resource < 0 || ::setrlimit(resource, &lim) != 0)
      init_fail(a.error_fd, errno_fail("setting " + r.type).value());
  }
  if (auto st = apply_scheduling(p); !st) init_fail(a.error_fd, st.error());
  if (!b.personality.empty()) {
    unsigned long persona = b.personality == "LINUX32" ? PER_LINUX32 : PER_LINUX;
    if (::personality(persona) < 0) init_fail(a.error_fd, errno_fail("personality").value());
  }
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  // --preserve-fds: the caller's descriptors 3.. (kept by the monitor from
  // monitor::kPreservedFdBase on) go back to their numbers, the only ones to survive the exec.
  // Upwards, so that none is overwritten before it is moved: each target is below its source.
  for (int i = 0; i < b.preserve_fds; ++i) {
    if (::dup3(monitor::kPreservedFdBase + i, 3 + i, 0) < 0)
      init_fail(a.error_fd, errno_fail("--preserve-fds").value());
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) (void)::signal(sig, SIG_DFL);
  // Created: tell the monitor, then wait for `start` to open the FIFO for reading. (Through
  // this process's /proc, as runc does: the FIFO's path is the host's.)
  char ready = 'r';
  if (::write(a.notify_sock, &ready, 1) != 1) ::_exit(1);
  ::close(a.notify_sock);
  trace::point("init: created");
  std::string fifo = "/proc/self/fd/" + std::to_string(a.fifo_fd);
  int started = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
  if (started < 0) late_fail("waiting for start", errno);
  if (::write(started, "0", 1) != 1) late_fail("waiting for start", errno);
  ::close(started);
  ::close(a.fifo_fd);
  if (p.umask) ::umask(*p.umask);
  if (int err = switch_user(p.uid, p.gid, p.additional_gids.data(), p.additional_gids.size());
      err != 0)
    late_fail("setting the process's user", err);
  if (::chdir(p.cwd.c_str()) != 0) late_fail("changing to " + p.cwd, errno);
  const char* step = "";
  if (int err = security::enter_policy(policy, &step); err != 0) late_fail(step, err);
  exec_process(p);
}

// Runs as PID 1 of the VE's new pid namespace, in fresh mount, uts, ipc and net namespaces.
[[noreturn]] void container_init(const InitArgs& a) {
  if (a.bundle) bundle_init(a);
  // The VE must not outlive its monitor: without it nobody holds the console or cleans up.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  trace::point("init: cloned");
  RootfsSpec rootfs = a.rootfs;
  std::vector<UniqueFd> pins;
  if (rootfs.userns) {
    // Still with the host's ids, which own kapsel's directories; then, once the monitor has
    // written the maps (one byte on the sync pipe), as the namespace's root. Changing ids
    // clears the parent-death signal.
    if (auto st = pin_host_paths(rootfs, pins); !st) init_fail(a.error_fd, st.error());
    char mapped = 0;
    if (!read_exact(a.sync_fd, &mapped, 1)) ::_exit(1);
    if (int err = security::become_namespace_root(); err != 0)
      init_fail(a.error_fd, sys_fail(err, "becoming root of the VE's user namespace").value());
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  }
  // The root file system is built while the monitor creates the VE's cgroups and moves this
  // process into them: the two take about as long, and run side by side on two CPUs.
  if (auto st = setup_rootfs(rootfs); !st) init_fail(a.error_fd, st.error());
  trace::point("init: pivoted");
  if (::sethostname(a.hostname.data(), a.hostname.size()) != 0)
    init_fail(a.error_fd, errno_fail("setting hostname").value());
  if (a.own_network) {
    if (auto st = net::bring_up_loopback(); !st) init_fail(a.error_fd, st.error());
  }
  if (::setsid() < 0 || ::ioctl(a.console_slave, TIOCSCTTY, 0) != 0)
    init_fail(a.error_fd, errno_fail("console: making it the controlling terminal").value());
  for (int fd = 0; fd <= 2; ++fd) ::dup2(a.console_slave, fd);
  security::VePolicy policy = read_go(a.sync_fd);
  trace::point("init: go read");
  // Only now: the cgroup namespace's root is the cgroup the process is in when it unshares.
  if (::unshare(CLONE_NEWCGROUP) != 0)
    init_fail(a.error_fd, errno_fail("cgroup namespace").value());
  // No descriptor of the monitor's may reach the VE (CVE-2024-21626 class of leaks).
  ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
  // Nor its signal state, which survives execve: the monitor ignores SIGPIPE and blocks the
  // signals it reads from a signalfd, and every process of the VE would inherit both.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) (void)::signal(sig, SIG_DFL);  // some cannot be set
  std::string path = std::string("PATH=") + kDefaultPath;
  const char* envp[] = {path.c_str(), "HOME=/root", "TERM=linux", "container=kapsel", nullptr};
  const char* argv[] = {a.init.c_str(), nullptr};
  // The last step before the exec: from here on init holds only the VE's capabilities, under
  // no_new_privs and its system-call filter, and its sysinfo(2) and sched_getaffinity(2) are
  // answered by the monitor with the VE's own figures (for everything it starts, too).
  const char* step = "";
  int listener = -1;
  if (int err = security::enter_policy(policy, a.notify_program, &listener, &step); err != 0)
    init_fail(a.error_fd, sys_fail(err, std::string("starting init: ") + step).value());
  if (listener >= 0) {
    if (auto st = procfs::send_listener_fd(a.notify_sock, listener); !st)
      init_fail(a.error_fd, st.error().context("virtualising sysinfo"));
    ::close(listener);
  }
  ::close(a.notify_sock);
  trace::point("init: policy entered");
  ::execve(a.init.c_str(), const_cast<char* const*>(argv), const_cast<char* const*>(envp));
  init_fail(a.error_fd,
            errno_fail("starting init " + a.init + " (does the template have an init?)").value());
}

Error init_error_of(const std::string& text) {
  int code = std::atoi(text.c_str());
  std::string msg = text.substr(text.find(' ') + 1);
  return Error{code == ENOENT ? ErrorKind::not_found : ErrorKind::failure, code, msg};
}

// clone(2) with fork semantics into new namespaces. clone3 because glibc's clone() wants a
// separate stack, which a fork-style child does not need.
pid_t clone_into_namespaces(std::uint64_t flags) {
  struct clone_args args {};
  args.flags = flags;
  // (With CLONE_PARENT the child takes its exit signal from the caller, and clone3 wants none.)
  args.exit_signal = (flags & CLONE_PARENT) != 0 ? 0 : SIGCHLD;
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

Result<UniqueFd> open_console(std::string& slave_path, UniqueFd& slave) {
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0)
    return errno_fail("allocating the console pty");
  char name[128];
  if (::ptsname_r(master.get(), name, sizeof name) != 0) return errno_fail("naming console pty");
  slave_path = name;
  slave.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) return errno_fail("opening " + slave_path);
  struct winsize ws {};
  ws.ws_row = 24;
  ws.ws_col = 80;
  ::ioctl(master.get(), TIOCSWINSZ, &ws);
  return master;
}

// exec forwards the signals a user sends to `kapsel exec` to the command, like `docker exec`.
volatile sig_atomic_t g_exec_child = 0;
void forward_signal(int sig) {
  if (g_exec_child > 0) ::kill(g_exec_child, sig);
}

// The namespaces and working directory of the calling kapsel process, saved before it joins a
// VE's so that it can return: a command that execs into a VE goes on to work on the host (`run`
// destroys the VE afterwards), and must see the host's files and cgroups again.
class NamespaceSnapshot {
 public:
  Status save() {
    for (size_t i = 0; i < kKinds.size(); ++i) {
      fds_[i].reset(
          ::open((std::string("/proc/self/ns/") + kKinds[i].first).c_str(), O_RDONLY | O_CLOEXEC));
      if (!fds_[i]) return errno_fail(std::string("saving namespace ") + kKinds[i].first);
    }
    cwd_.reset(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
    return {};
  }
  Status restore() {
    for (size_t i = 0; i < kKinds.size(); ++i) {
      // A time namespace is refused (EUSERS) to a process whose memory another shares. The
      // vfork child that has just exec'd still does for a moment: exec wakes its vfork parent
      // before the child lets go of the parent's memory. So wait for that, briefly.
      int tries = 0;
      while (::setns(fds_[i].get(), kKinds[i].second) != 0) {
        if (errno != EUSERS || kKinds[i].second != CLONE_NEWTIME || ++tries > 10000)
          return errno_fail(std::string("returning to the host's namespace ") + kKinds[i].first);
        ::sched_yield();
      }
    }
    if (cwd_) (void)::fchdir(cwd_.get());
    return {};
  }

 private:
  static constexpr std::array<std::pair<const char*, int>, 6> kKinds = {{{"ipc", CLONE_NEWIPC},
                                                                         {"uts", CLONE_NEWUTS},
                                                                         {"net", CLONE_NEWNET},
                                                                         {"pid", CLONE_NEWPID},
                                                                         {"time", CLONE_NEWTIME},
                                                                         {"mnt", CLONE_NEWNS}}};
  std::array<UniqueFd, 6> fds_;
  UniqueFd cwd_;
};

// The VE's children are born into a new time namespace (time_namespaces(7)) whose boot and
// monotonic clocks start now: uptime(1), sysinfo(2), /proc/uptime and the start times of its
// processes in /proc/<pid>/stat all count from the VE's own boot, as on a real server. The
// monitor itself stays in the host's; only its children (init) enter the new one.
Status new_time_namespace() {
  if (::unshare(CLONE_NEWTIME) != 0) return errno_fail("creating the VE's time namespace");
  struct timespec mono {
  }, boot{};
  ::clock_gettime(CLOCK_MONOTONIC, &mono);
  ::clock_gettime(CLOCK_BOOTTIME, &boot);
  // Whole seconds: the kernel refuses offsets that would make a clock negative, and the
  // fraction of a second left over is of no consequence.
  std::string offsets = "monotonic " + std::to_string(-static_cast<long long>(mono.tv_sec)) +
                        " 0\nboottime " + std::to_string(-static_cast<long long>(boot.tv_sec)) +
                        " 0\n";
  KAPSEL_TRY(fs::write_existing("/proc/self/timens_offsets", offsets), "setting the VE's clocks");
  return {};
}

// A bundle's own time namespace (linux.namespaces "time" without a path), with the clock offsets
// of linux.timeOffsets, made as new_time_namespace() makes a VE's: for the monitor's children.
Status bundle_time_namespace(const store::BundleConfig& bundle) {
  if (!bundle.has_namespace("time") || !bundle.namespace_path("time").empty()) return {};
  if (::unshare(CLONE_NEWTIME) != 0) return errno_fail("linux.namespaces: making a time namespace");
  std::string offsets;
  for (const auto& o : bundle.time_offsets)
    offsets += o.clock + " " + std::to_string(o.secs) + " " + std::to_string(o.nanosecs) + "\n";
  if (offsets.empty()) return {};
  return with_context(fs::write_existing("/proc/self/timens_offsets", offsets),
                      "linux.timeOffsets");
}

// Where a VE's monitor takes the syscall listeners of the processes `kapsel exec` starts in the
// VE: an abstract Unix socket (no path to outgrow sun_path, gone with the monitor) named after
// the monitor, so a new monitor with a recycled pid has another name.
sockaddr_un notify_address(const proc::ProcessRef& monitor, socklen_t& len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name =
      "kapsel-notify-" + std::to_string(monitor.pid) + "-" + std::to_string(monitor.start_time);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return addr;
}

Result<UniqueFd> listen_for_listeners(const proc::ProcessRef& monitor) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno_fail("creating the monitor's socket");
  socklen_t len = 0;
  auto addr = notify_address(monitor, len);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd.get(), 64) != 0)
    return errno_fail("binding the monitor's socket");
  return fd;
}

// The files that make a VE's identity, shadowing the template's copies in its private layer:
// paths relative to the VE's root, and their contents.
// A VE on a bridge is known by its own address in /etc/hosts, and gets the host's nameservers
// that it can reach; one in the host's namespace gets the host's resolv.conf as it is.
std::vector<std::pair<std::string, std::string>> identity_files(const store::VeConfig& config) {
  const auto& network = config.network;
  std::string own_address = "127.0.1.1";
  if (network.is_bridge()) own_address = network.address.substr(0, network.address.find('/'));
  std::vector<std::pair<std::string, std::string>> files = {
      {"etc/hostname", config.hostname + "\n"},
      {"etc/hosts", agent::hosts_file(own_address, config.hostname)}};
  if (network.mode == "none") return files;
  auto host = fs::read_file("/etc/resolv.conf");
  std::string resolv = host ? *host : std::string();
  if (network.is_bridge()) resolv = net::resolv_conf_for_bridge(resolv);
  if (!resolv.empty()) files.emplace_back("etc/resolv.conf", resolv);
  return files;
}

// The monitor's copy of the syscall virtualiser's filter in its VE's run directory, for exec.
constexpr const char* kNotifyProgramFile = "notify.bpf";

// The VE's security filter's program in the run dir, for exec (empty file: unconfined)...
constexpr const char* kSeccompProgramFile = "seccomp.bpf";
// ... or, instead of both, its program that also sends the virtualised calls to the monitor.
constexpr const char* kNotifyingProgramFile = "seccomp-notify.bpf";

// A program the monitor left in the run dir, if it is there and whole.
std::optional<std::vector<sock_filter>> load_program(const std::string& path) {
  auto bytes = fs::read_file(path);
  if (!bytes) return std::nullopt;
  return security::program_from_bytes(*bytes);
}

// The program the monitor left for exec, or a new one if it is missing or damaged.
Result<std::vector<sock_filter>> load_notify_program(const std::string& run_dir) {
  auto program = load_program(run_dir + "/" + kNotifyProgramFile);
  if (!program || program->empty()) return procfs::filter_program();
  return std::move(*program);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// Set in the helper of run_in_user_namespace, which must not start another.
bool g_in_userns_helper = false;

// Runs `body` in a forked helper that has joined the user namespace of the VE whose init is
// `init_pidfd` and become its root. A rootless VE's namespaces belong to that user namespace:
// only from inside it may an unprivileged user join them, and there is no way back to the
// host's, so the calling process stays where it is and waits. Returns body's exit code.
Result<int> run_in_user_namespace(int init_pidfd, const std::function<Result<int>()>& body) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return errno_fail("exec: preparing the helper");
  UniqueFd error_read(pipe_fds[0]), error_write(pipe_fds[1]);
  pid_t helper = ::fork();
  if (helper < 0) return errno_fail("exec: forking the helper");
  if (helper == 0) {
    error_read.reset();
    int err = ::setns(init_pidfd, CLONE_NEWUSER) == 0 ? security::become_namespace_root() : errno;
    if (err != 0)
      init_fail(error_write.get(), sys_fail(err, "joining the VE's user namespace").value());
    g_in_userns_helper = true;
    auto code = body();
    if (!code) init_fail(error_write.get(), code.error());
    ::_exit(*code);
  }
  error_write.reset();
  auto why = proc::read_to_eof(error_read.get());
  int status = 0;
  while (::waitpid(helper, &status, 0) < 0) {
    if (errno != EINTR) return errno_fail("exec: waiting for the helper");
  }
  if (!why.empty()) return tl::unexpected(init_error_of(why));
  return exit_code_of(status);
}

// The namespaces of a bundle's linux.namespaces that the monitor sets up before it clones init:
// clone `flags` for those to make, and setns(2) into those with a path (pid: for its children,
// which init is; time: the monitor returns to the host's after the clone). A mount namespace
// with a path is joined by init itself (the monitor goes on working on the host's files), a
// new time namespace made by bundle_time_namespace(), a user namespace with a path joined by
// clone_in_user_namespace().
Status bundle_namespaces(const store::BundleConfig& bundle, std::uint64_t& flags) {
  static const std::array<std::pair<const char*, int>, 8> kTypes = {{{"pid", CLONE_NEWPID},
                                                                     {"network", CLONE_NEWNET},
                                                                     {"ipc", CLONE_NEWIPC},
                                                                     {"uts", CLONE_NEWUTS},
                                                                     {"mount", CLONE_NEWNS},
                                                                     {"cgroup", CLONE_NEWCGROUP},
                                                                     {"user", CLONE_NEWUSER},
                                                                     {"time", CLONE_NEWTIME}}};
  flags = CLONE_NEWNS;  // always: the bundle's root is mounted in a namespace of its own
  for (const auto& ns : bundle.namespaces) {
    int type = 0;
    for (const auto& [n, t] : kTypes) {
      if (ns.type == n) type = t;
    }
    if (type == 0)
      return fail(ErrorKind::usage, "linux.namespaces: " + ns.type + " is not supported");
    if (type == CLONE_NEWUSER && !ns.path.empty()) continue;
    if (ns.path.empty()) {
      // The cgroup namespace is made by init once it is in its cgroups.
      if (type != CLONE_NEWCGROUP && type != CLONE_NEWTIME)
        flags |= static_cast<std::uint64_t>(type);
      continue;
    }
    if (type == CLONE_NEWNS) {
      flags &= ~static_cast<std::uint64_t>(CLONE_NEWNS);
      continue;
    }
    UniqueFd fd(::open(ns.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return errno_fail("linux.namespaces: opening " + ns.path);
    if (::setns(fd.get(), type) != 0) return errno_fail("linux.namespaces: joining " + ns.path);
  }
  return {};
}

// Clones a bundle's init as bundle_namespaces() and clone_into_namespaces() do, from inside the
// user namespace at linux.namespaces' "user" path, so that the namespaces made belong to it.
// The monitor cannot join it itself: there is no way back to the host's user namespace, whose
// privileges it needs for the container's cgroups. A helper joins it and everything else, and
// clones init with CLONE_PARENT, so that init is the monitor's child as always. (Forked before
// any pid namespace is joined, the helper sees init's pid as the monitor does.) Returns init's
// pid, and 0 in init, as clone does.
Result<pid_t> clone_in_user_namespace(const store::BundleConfig& bundle) {
  UniqueFd ns(::open(bundle.namespace_path("user").c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return errno_fail("linux.namespaces: opening " + bundle.namespace_path("user"));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return errno_fail("linux.namespaces: a pipe");
  UniqueFd result_read(pipe_fds[0]), result_write(pipe_fds[1]);
  pid_t helper = ::fork();
  if (helper < 0) return errno_fail("linux.namespaces: forking");
  if (helper == 0) {
    std::uint64_t flags = 0;
    Status joined =
        ::setns(ns.get(), CLONE_NEWUSER) == 0
            ? bundle_namespaces(bundle, flags)
            : Status(errno_fail("linux.namespaces: joining " + bundle.namespace_path("user")));
    pid_t child = joined ? clone_into_namespaces(flags | CLONE_PARENT) : -1;
    if (child == 0) return 0;
    std::string report = child > 0 ? std::to_string(child)
                         : joined
                             ? errno_fail("creating the container's namespaces").value().message
                             : joined.error().message;
    (void)!::write(result_write.get(), report.data(), report.size());
    ::_exit(0);
  }
  result_write.reset();
  std::string report = proc::read_to_eof(result_read.get());
  while (::waitpid(helper, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (report.empty() || !std::isdigit(static_cast<unsigned char>(report[0])))
    return fail(ErrorKind::failure, report.empty() ? "linux.namespaces: the helper died" : report);
  return static_cast<pid_t>(std::atoi(report.c_str()));
}

// runc's console socket protocol: one message whose data is the pty's name and whose one
// SCM_RIGHTS descriptor is its master.
Status send_console(const std::string& socket_path, int master, const std::string& name) {
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return fail(ErrorKind::usage, "--console-socket " + socket_path + ": path too long");
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (!sock || ::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return errno_fail("connecting to the console socket " + socket_path);
  iovec iov{const_cast<char*>(name.data()), name.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  // The descriptor is copied into the receiver by the kernel; ours stays ours.
  std::memcpy(CMSG_DATA(cmsg), &master, sizeof(int));
  if (::sendmsg(sock.get(), &msg, MSG_NOSIGNAL) < 0)
    return errno_fail("sending the console to " + socket_path);
  return {};
}

}  // namespace

Status send_pty_master(const std::string& socket_path, int master, const std::string& name) {
  return send_console(socket_path, master, name);
}

Status ContainerDriver::create(const store::VeConfig& config) {
  // An ephemeral VE has no private area on disk: its init writes these into its tmpfs.
  if (config.ephemeral) return {};
  // Per-VE identity files go into the private layer, shadowing the template's copies.
  std::string upper = ctx_.store().ve_dir(config.name) + "/private/upper";
  KAPSEL_TRY(fs::make_dirs(upper + "/etc", 0755), "preparing /etc");
  for (const auto& [path, content] : identity_files(config))
    KAPSEL_TRY(fs::write_file_atomic(upper + "/" + path, content, 0644), "writing /" + path);
  // The private area holds the VE's own files as its mapped ids own them on disk (the template
  // is id-mapped instead: see docs/security.md).
  if (config.security.userns && !config.security.userns->rootless)
    KAPSEL_TRY(security::shift_ownership(ctx_.store().ve_dir(config.name) + "/private",
                                         *config.security.userns),
               "giving the private area to the VE's root");
  return {};
}

Result<store::RuntimeState> ContainerDriver::start(const store::VeConfig& config,
                                                   const store::VeLock& lock) {
  return start_with(config, lock, {});
}

Result<store::RuntimeState> ContainerDriver::start_with(
    const store::VeConfig& config, const store::VeLock& lock,
    const std::function<void(pid_t monitor, pid_t init)>& booting) {
  // A bundle's container has its root in the bundle: no template.
  auto tmpl = config.bundle ? Result<image::Template>(image::Template{})
                            : ctx_.load_template(config.template_id);
  if (!tmpl)
    return tl::unexpected(tmpl.error().context("template " + config.template_spec + " of VE " +
                                               config.name + " is unusable"));
  // Probe before forking so a host without usable cgroups fails here, with a plain error.
  auto cg = ctx_.cgroups();
  if (!cg) return tl::unexpected(cg.error());
  KAPSEL_TRY((*cg)->check(config.limits), "starting VE " + config.name);
  // The runtime directory is also where init mounts the VE's root, in its own mount namespace
  // only (a directory less to make and remove on every start).
  KAPSEL_TRY(fs::make_dirs(ctx_.store().ve_run_dir(config.name), 0700),
             "preparing runtime directory");

  // The /proc service of this run dir, started by the first VE. Without it (no FUSE on this
  // host) the VE starts with the kernel's /proc files.
  std::optional<proc::ProcessRef> procfs_service;
  // (A bundle's container sees the kernel's /proc files: its monitor does not stay to keep the
  // service's binds alive.)
  if (config.bundle) {
    trace::point("start: bundle, no /proc service");
  } else if (auto svc = procfs::ensure_service(ctx_.store().paths(), proc::self_exe())) {
    procfs_service = *svc;
    trace::point("start: /proc service ready");
  } else {
    trace::point("start: no /proc service");
  }

  auto state = monitor::launch(
      ctx_.store(), config.name, lock, config.bundle.has_value(),
      config.bundle ? config.bundle->preserve_fds : 0,
      [&](UniqueFd report, UniqueFd monitor_lock) {
        run_monitor(config, *tmpl, std::move(report), std::move(monitor_lock), procfs_service);
      },
      booting);
  if (!state) (void)cleanup(config);
  return state;
}

void ContainerDriver::run_monitor(const store::VeConfig& config, const image::Template& tmpl,
                                  UniqueFd report_fd, UniqueFd lock,
                                  std::optional<proc::ProcessRef> procfs_service) {
  monitor::StartReport report(std::move(report_fd));
  auto& store = ctx_.store();
  const std::string& name = config.name;
  store::RuntimeState state;
  state.halt_signal = tmpl.halt_signal;
  state.cgroup_parent = ctx_.cgroup_parent();
  state.monitor = proc::ref(::getpid()).value_or(proc::ProcessRef{::getpid(), 0});
  pid_t child = -1;
  cgroup::Manager* cg = nullptr;

  // A failed start leaves nothing behind: the child dies, its namespaces and mounts with it.
  auto fail_start = [&](const Error& e) {
    monitor::abandon_start(store, config, child, cg, std::move(lock), report, e);
  };

  auto cgr = ctx_.cgroups();
  if (!cgr) fail_start(cgr.error());
  cg = *cgr;

  // Only what init needs is made before it is cloned; the rest of the monitor's set-up is done
  // while init builds its root file system, which takes longer (see launch).
  std::string slave_path;
  UniqueFd slave;
  auto master = open_console(slave_path, slave);
  if (!master) fail_start(master.error());
  // process.consoleSize: the pty's size before anything runs on it.
  if (config.bundle && config.bundle->process.console_height > 0 &&
      config.bundle->process.console_width > 0) {
    struct winsize ws {};
    ws.ws_row = static_cast<unsigned short>(config.bundle->process.console_height);
    ws.ws_col = static_cast<unsigned short>(config.bundle->process.console_width);
    if (::ioctl(master->get(), TIOCSWINSZ, &ws) != 0)
      fail_start(errno_fail("process.consoleSize").value());
  }
  // The syscall virtualiser's own filter, for a VE whose seccomp program cannot send it the
  // calls it answers (make_policy() below: all but the default profile's).
  std::optional<std::vector<sock_filter>> notify_program;
  const store::BundleConfig* bundle = config.bundle ? &*config.bundle : nullptr;
  if (config.security.seccomp != "default" && !bundle) {
    auto program = security::cached_program(store.paths().run_dir + "/seccomp",
                                            "syscall virtualiser\n", procfs::filter_program);
    if (!program) fail_start(program.error().context("virtualising sysinfo"));
    notify_program = std::move(*program);
  }
  // The host devices given to the VE, made as nodes by init; the rest of the policy comes
  // after the clone.
  std::vector<security::DeviceSpec> devices;
  for (const auto& d : config.security.devices) {
    auto spec = security::parse_device_option(d);
    if (!spec) fail_start(spec.error().context("the VE's devices"));
    devices.push_back(std::move(*spec));
  }

  InitArgs args;
  std::string ve_dir = store.ve_dir(name);
  args.rootfs = RootfsSpec{tmpl.rootfs,
                           ve_dir + "/private/upper",
                           ve_dir + "/private/work",
                           store.ve_run_dir(name),
                           slave_path,
                           config.ephemeral,
                           config.ephemeral ? identity_files(config)
                                            : std::vector<std::pair<std::string, std::string>>{},
                           procfs_service ? procfs::mountpoint(store.paths()) : std::string(),
                           name,
                           devices,
                           config.security.userns.has_value()};
  args.hostname = config.hostname.empty() && !bundle ? name : config.hostname;
  args.init = tmpl.init;
  // The host's namespace weakens the VE's isolation; `create` warned about it.
  args.own_network = config.network.mode != "host";
  UniqueFd start_fifo;
  if (bundle) {
    args.bundle = bundle;
    args.console_path = slave_path;
    args.stdio_base = monitor::kStdioFd;
    args.own_network =
        bundle->has_namespace("network") && bundle->namespace_path("network").empty();
    start_fifo.reset(::open(bundle->start_fifo.c_str(), O_PATH | O_CLOEXEC));
    if (!start_fifo) fail_start(errno_fail("opening the start FIFO " + bundle->start_fifo).value());
    args.fifo_fd = start_fifo.get();
  }
  args.notify_program = notify_program ? &*notify_program : nullptr;

  UniqueFd host_time(::open("/proc/self/ns/time", O_RDONLY | O_CLOEXEC));
  if (!host_time) fail_start(errno_fail("opening the host's time namespace").value());
  // Answers sysinfo(2) and sched_getaffinity(2) for the VE from its cgroups (see
  // procfs/syscall_virtualizer.hpp).
  procfs::SyscallVirtualizer syscalls([&]() -> Result<procfs::VeView> {
    auto stats = cg->stats(name);
    if (!stats) return tl::unexpected(stats.error());
    auto host = procfs::read_host_facts();
    if (!host) return tl::unexpected(host.error());
    auto age = procfs::init_age_seconds(child, host->uptime_s);
    return procfs::make_view(*stats, *host, age.value_or(0));
  });
  // Made at the first boot, while init builds its root file system:
  UniqueFd notify_listen;  // where `kapsel exec` hands over its commands' listeners
  UniqueFd log;            // the console log
  std::optional<security::VePolicy> policy;
  std::optional<monitor::OomWatch> oom;
  bool cgroups_ready = false;
  auto first_boot_setup = [&] {
    // The service knows the VE from its state (saved before init was cloned, below): the names
    // init binds can be looked up now.
    if (procfs_service) procfs::prefetch(procfs::mountpoint(store.paths()), name);
    trace::point("monitor: /proc service files looked up");
    auto listen = listen_for_listeners(state.monitor);
    if (!listen) fail_start(listen.error());
    notify_listen = std::move(*listen);
    auto made_policy =
        security::make_policy(config.security, store.paths().run_dir + "/seccomp", nullptr,
                              bundle ? std::vector<std::string>{} : procfs::virtualised_calls());
    if (!made_policy) fail_start(made_policy.error());
    policy = std::move(*made_policy);
    // A bundle's own device nodes (linux.devices) may be used, besides kapsel's defaults, as
    // linux.resources.devices says.
    if (bundle) policy->device_rules = security::bundle_device_rules(policy->device_rules, *bundle);
    // exec loads the same programs; they need not be built again for every command.
    std::vector<std::pair<const char*, const std::vector<sock_filter>*>> files;
    if (policy->seccomp_notifies) {
      files.emplace_back(kNotifyingProgramFile, &policy->seccomp);
    } else {
      files.emplace_back(kSeccompProgramFile, &policy->seccomp);
      if (notify_program) files.emplace_back(kNotifyProgramFile, &*notify_program);
    }
    for (const auto& [file, program] : files) {
      if (auto st = fs::write_file_atomic(store.ve_run_dir(name) + "/" + file,
                                          security::program_bytes(*program), 0600, false);
          !st)
        fail_start(st.error());
    }
    // An ephemeral VE (run --rm) is gone with its files when it ends: no console log to keep.
    if (!config.ephemeral && !bundle) {
      std::string log_path = store.ve_dir(name) + "/console.log";
      log.reset(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    }
    // The cgroups are made once and kept across reboots; the limits are in force before the
    // first process joins.
    auto made = cg->create(name);
    if (made) made = cg->apply(name, config.limits);
    // Only the VE's own device nodes may be opened or created, whatever its capabilities.
    if (made) made = with_context(cg->set_devices(name, policy->device_rules), "device rules");
    if (!made) return made;
    cgroups_ready = true;
    // OOM kills are recorded with their victim. A host without a memory controller (or
    // without /dev/kmsg) has none to report, which is no reason to fail the VE.
    // (A bundle's monitor leaves once its container is created: nobody to watch.)
    if (bundle) return made;
    if (auto event = cg->watch_oom(name)) {
      auto w = monitor::OomWatch::open(
          std::move(*event), cg->memory_cgroup_path(name),
          [&](const store::OomEvent& e) { (void)store.append_oom_event(name, e); });
      if (w) oom.emplace(std::move(*w));
    }
    return made;
  };
  // Connections from `kapsel exec` that have yet to send their listener: polled, never waited
  // for, so a stuck or killed exec cannot stall the monitor.
  std::vector<UniqueFd> notify_pending;

  // Clones init into fresh namespaces and waits until it has been exec'd. Used for the first
  // boot and again when init asks for a reboot.
  auto launch = [&]() {
    if (!slave) slave.reset(::open(slave_path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
    int sync_pipe[2], error_pipe[2];
    if (!slave || ::pipe2(sync_pipe, O_CLOEXEC) != 0 || ::pipe2(error_pipe, O_CLOEXEC) != 0)
      fail_start(errno_fail("preparing init").value());
    UniqueFd sync_read(sync_pipe[0]), sync_write(sync_pipe[1]);
    UniqueFd error_read(error_pipe[0]), error_write(error_pipe[1]);
    int notify_pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, notify_pair) != 0)
      fail_start(errno_fail("preparing init").value());
    UniqueFd notify_monitor(notify_pair[0]), notify_init(notify_pair[1]);
    args.sync_fd = sync_read.get();
    args.error_fd = error_write.get();
    args.console_slave = slave.get();
    args.notify_sock = notify_init.get();

    // A VE with a user namespace sees the template through an id-mapped copy, made anew for
    // every boot's namespace.
    // (A rootless VE's template is the user's, whose id is the VE's root: nothing to map, and
    // no right to.)
    const bool rootless = args.rootfs.userns && config.security.userns->rootless;
    UniqueFd lower_tree;
    if (args.rootfs.userns && !rootless) {
      auto tree = security::clone_tree(tmpl.rootfs);
      if (!tree) fail_start(tree.error());
      lower_tree = std::move(*tree);
    }
    args.rootfs.lower_tree = lower_tree ? lower_tree.get() : -1;

    trace::point("monitor: cloning init");
    // A fresh time namespace per boot, so that the VE's uptime starts at zero again. Only root
    // may make one with offsets: a rootless VE keeps the host's clocks. (A bundle's container
    // has one only if it asks: the spec's "time" namespace, not supported yet.)
    if (auto st = rootless ? Status{}
                  : bundle ? bundle_time_namespace(*bundle)
                           : new_time_namespace();
        !st)
      fail_start(st.error());
    trace::point("monitor: time namespace made");
    // With CLONE_NEWUSER the new user namespace is made first and owns all the others, so
    // that its root may mount and configure them.
    std::uint64_t flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                          (args.own_network ? CLONE_NEWNET : 0) |
                          (args.rootfs.userns ? CLONE_NEWUSER : 0);
    if (bundle && !bundle->namespace_path("user").empty()) {
      auto cloned = clone_in_user_namespace(*bundle);
      if (!cloned) fail_start(cloned.error());
      child = *cloned;
    } else {
      if (bundle) {
        auto joined = bundle_namespaces(*bundle, flags);
        if (!joined) fail_start(joined.error());
      }
      child = clone_into_namespaces(flags);
    }
    if (child == 0) {
      sync_write.reset();
      error_read.reset();
      notify_monitor.reset();
      container_init(args);
    }
    // Whatever else the monitor starts (the /proc service, if it has to restart it) runs on
    // the host's clocks again.
    if (!rootless && ::setns(host_time.get(), CLONE_NEWTIME) != 0)
      fail_start(errno_fail("returning to the host's time namespace").value());
    if (child < 0) fail_start(errno_fail("creating the VE's namespaces").value());
    trace::point("monitor: init cloned");
    if (args.rootfs.userns) {
      auto mapped = security::map_user_namespace(child, *config.security.userns, lower_tree.get());
      if (mapped) mapped = fs::write_all(sync_write.get(), "u", "init's go");
      if (!mapped) fail_start(mapped.error());
      lower_tree.reset();
    }
    if (bundle && bundle->has_namespace("user") && bundle->namespace_path("user").empty()) {
      auto mapped = security::write_bundle_id_maps(child, *bundle);
      if (mapped) mapped = fs::write_all(sync_write.get(), "u", "init's go");
      if (!mapped) fail_start(mapped.error());
    }
    sync_read.reset();
    error_write.reset();
    notify_init.reset();
    // Only init holds the console now, so the master sees a hangup when init's side closes.
    slave.reset();

    // While the child builds its root file system: the rest of the set-up, and the child
    // into its cgroups.
    Status joined = cgroups_ready ? Status{} : first_boot_setup();
    if (joined) joined = cg->attach(name, child);
    if (!joined) {
      // A child that failed on its own has the better explanation in the error pipe.
      ::kill(child, SIGKILL);
      auto why = proc::read_to_eof(error_read.get());
      fail_start(why.empty() ? joined.error().context("joining cgroups") : init_error_of(why));
    }
    trace::point("monitor: init attached to cgroups");
    // Still while init builds its root: the VE's end of its veth pair appears in its namespace
    // before init is released, so its services find eth0 configured.
    if (config.network.is_bridge()) {
      UniqueFd netns(
          ::open(("/proc/" + std::to_string(child) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC));
      net::NetworkStore networks(store.paths().root);
      Status attached = netns ? net::set_up_ve_network(networks, name, config.network, netns.get())
                              : Status(errno_fail("opening the VE's network namespace"));
      if (!attached) {
        ::kill(child, SIGKILL);
        fail_start(attached.error());
      }
      trace::point("monitor: network attached");
    }
    // The policy goes with init's go, and init enters it once its root file system is ready.
    // A child that has already failed cannot read this (EPIPE); its error pipe says why.
    GoMessage go{policy->cap_plan, static_cast<std::uint32_t>(policy->seccomp.size()),
                 policy->seccomp_notifies};
    std::string message(reinterpret_cast<const char*>(&go), sizeof go);
    message += security::program_bytes(policy->seccomp);
    bool released = static_cast<bool>(fs::write_all(sync_write.get(), message, "init's go"));
    sync_write.reset();
    trace::point("monitor: go sent");
    // (At the first boot, for a caller that prepares work for the VE meanwhile.)
    if (!bundle) report.booting(child);
    if (bundle) {
      // The container is created once init says it is ready and waits on the start FIFO;
      // EOF instead means it failed, and its error pipe says why.
      char ready = 0;
      if (!released || !read_exact(notify_monitor.get(), &ready, 1)) {
        ::kill(child, SIGKILL);
        auto why = proc::read_to_eof(error_read.get());
        fail_start(why.empty() ? Error{ErrorKind::failure, 0, "init ended before it was ready"}
                               : init_error_of(why));
      }
      state.phase = store::Phase::running;
      state.init = proc::ref(child).value_or(proc::ProcessRef{child, 0});
      state.started_at = ::time(nullptr);
      if (auto st = store.save_state(name, state); !st) fail_start(st.error());
      return;
    }
    // Init sends its syscall listener right before it execs; EOF means it failed, and its error
    // pipe says why.
    auto listener = procfs::receive_listener_fd(notify_monitor.get());
    if (!listener) {
      ::kill(child, SIGKILL);
      auto why = proc::read_to_eof(error_read.get());
      fail_start(why.empty() ? listener.error().context("starting init") : init_error_of(why));
    }
    syscalls.add(std::move(*listener));
    trace::point("monitor: listener received");
    auto why = proc::read_to_eof(error_read.get());
    if (!why.empty()) fail_start(init_error_of(why));
    if (!released) fail_start(errno_fail("releasing init").value());
    trace::point("monitor: init exec'd");
    state.phase = store::Phase::running;
    state.init = proc::ref(child).value_or(proc::ProcessRef{child, 0});
    state.started_at = ::time(nullptr);
    if (auto st = store.save_state(name, state); !st) fail_start(st.error());
  };

  // Recorded before init is cloned: the /proc service knows the VE by it when init binds its
  // files (a VE it does not know has none to bind), and whoever finds this monitor dead knows
  // which cgroups to remove.
  if (auto st = store.save_state(name, state); !st) fail_start(st.error());
  launch();
  if (bundle) {
    // The spec's "created": init waits for `start`. With a terminal, its master goes to the
    // console socket before create returns. The monitor's job ends here: the container's init
    // is inherited by the caller's subreaper (containerd's shim, conmon), which reaps it, and
    // `delete` cleans up.
    if (bundle->process.terminal) {
      if (auto st = send_console(bundle->console_socket, master->get(), slave_path); !st) {
        ::kill(child, SIGKILL);
        fail_start(st.error());
      }
    }
    lock.reset();
    report.ok();
    ::_exit(0);
  }
  // The VE is up and its state says so: other commands may see it now.
  lock.reset();
  trace::point("monitor: init running");
  report.ok();
  // A stop request (`kapsel stop` signals the monitor) is recorded in the state file, so that
  // `status` tells the truth while init shuts down, even if the command that asked was killed;
  // and it wins over a reboot that init might do instead.
  bool stop_requested = false;
  auto on_stop_request = [&] {
    stop_requested = true;
    if (state.phase == store::Phase::stopping) return;
    state.phase = store::Phase::stopping;
    (void)store.save_state(name, state);
  };
  // If the /proc service dies, the VE's virtual files fail with ENOTCONN: the monitor puts the
  // kernel's own files back at once, then starts the service again and binds its files anew.
  UniqueFd service_pidfd;
  if (procfs_service) {
    if (auto fd = proc::open_pidfd(*procfs_service)) service_pidfd = std::move(*fd);
  }
  auto on_service_death = [&] {
    service_pidfd.reset();
    auto init_fd = proc::open_pidfd(state.init);
    if (!init_fd) return;
    (void)procfs::unbind_in(init_fd->get());
    auto svc = procfs::ensure_service(store.paths(), proc::self_exe());
    if (!svc) return;
    if (procfs::rebind_in(init_fd->get(), procfs::mountpoint(store.paths()), name)) {
      if (auto fd = proc::open_pidfd(*svc)) service_pidfd = std::move(*fd);
    }
  };
  monitor::Supervision supervision;
  supervision.console_master = master->get();
  supervision.console_log = log.get();
  supervision.halt_signal = tmpl.halt_signal;
  supervision.on_stop_request = on_stop_request;
  supervision.watches = [&] {
    std::vector<monitor::Watch> w;
    for (int fd : syscalls.fds()) w.push_back({fd, [&syscalls, fd] { (void)syscalls.handle(fd); }});
    w.push_back({notify_listen.get(), [&] {
                   UniqueFd conn(::accept4(notify_listen.get(), nullptr, nullptr,
                                           SOCK_CLOEXEC | SOCK_NONBLOCK));
                   struct ucred peer {};
                   socklen_t len = sizeof peer;
                   // Only the kapsel of the monitor's own user (root, or a rootless VE's user)
                   // may hand it a listener: the abstract socket is reachable by anyone in the
                   // host's network namespace.
                   if (conn &&
                       ::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 &&
                       peer.uid == ::geteuid())
                     notify_pending.push_back(std::move(conn));
                 }});
    for (auto& conn : notify_pending) {
      int fd = conn.get();
      w.push_back({fd, [&notify_pending, &syscalls, fd] {
                     if (auto listener = procfs::receive_listener_fd(fd))
                       syscalls.add(std::move(*listener));
                     std::erase_if(notify_pending,
                                   [fd](const UniqueFd& c) { return c.get() == fd; });
                   }});
    }
    if (service_pidfd) w.push_back({service_pidfd.get(), on_service_death});
    if (oom) {
      w.push_back({oom->event_fd(), [&] { oom->on_event(); }});
      if (oom->kmsg_fd() >= 0) w.push_back({oom->kmsg_fd(), [&] { oom->on_kmsg(); }});
    }
    return w;
  };
  supervision.timeout_ms = [&] { return oom ? oom->timeout_ms() : -1; };
  supervision.on_timeout = [&] {
    if (oom) oom->on_timeout();
  };
  store::ExitRecord rec;
  int quick_reboots = 0;
  for (;;) {
    supervision.init = child;
    int status = monitor::supervise(supervision);
    rec = monitor::classify(status);
    // init is gone, so the kernel has killed the rest of its pid namespace, and the mounts
    // vanished with it. A reboot asked for from inside starts the VE again, as on a real
    // server, unless it loops or a stop was asked for.
    if (rec.reason != "rebooted" || stop_requested) break;
    quick_reboots = ::time(nullptr) - state.started_at < 5 ? quick_reboots + 1 : 0;
    if (quick_reboots >= 5) {
      rec.detail = "init rebooted 5 times within seconds; the VE was left stopped";
      break;
    }
    (void)store.save_exit(name, rec);
    if (auto st = cg->kill_all(name, 5000); !st) fail_start(st.error().context("rebooting"));
    launch();
  }
  // Whatever else joined the cgroups goes with them.
  monitor::finish(store, config, *cg, rec);
}

Status ContainerDriver::stop(const store::VeConfig& config, const store::RuntimeState& state,
                             const StopOptions& options) {
  auto monitor = proc::open_pidfd(state.monitor);
  if (!monitor) return cleanup(config);
  // Stop and kill go through the monitor, which records that the VE is stopping before it
  // signals init, so that `status` tells the truth even if this command is killed half-way.
  // The monitor cleans up when init has gone; the cleanup here (under the VE's lock, with the
  // monitor dead) finishes the job if the monitor was killed before it could.
  auto monitor_done = [&](int timeout_ms) { return proc::wait_pidfd(monitor->get(), timeout_ms); };
  // The monitor removes the runtime directory after the cgroups: if it is gone, the monitor
  // finished its cleanup and there is nothing left to do.
  auto finish = [&]() -> Status {
    if (!fs::exists(ctx_.store().ve_run_dir(config.name))) return {};
    return cleanup(config);
  };
  if (!options.kill) {
    KAPSEL_TRY(proc::signal_pidfd(monitor->get(), SIGTERM), "asking the monitor to stop the VE");
    if (monitor_done(options.timeout_seconds * 1000)) return finish();
  }
  // SIGKILL to a pid namespace's init kills every process in the namespace (and every process
  // of the VE is in it: exec joins it too).
  auto init = proc::open_pidfd(state.init);
  KAPSEL_TRY(proc::signal_pidfd(monitor->get(), monitor::kKillRequestSignal),
             "asking the monitor to kill the VE");
  trace::point("stop: kill requested");
  if (options.once_down) {
    // init's pidfd turns readable only after the kernel has killed the rest of its pid
    // namespace and every process of the VE has exited, so its mounts are gone too.
    if (!init || proc::wait_pidfd(init->get(), 10000)) {
      trace::point("stop: the VE's processes are gone");
      options.once_down();
      trace::point("stop: once_down done");
    }
  }
  if (monitor_done(10000)) {
    trace::point("stop: monitor gone");
    return finish();
  }
  // A monitor that does not react in time is stuck: do its job.
  if (init) (void)proc::signal_pidfd(init->get(), SIGKILL);
  (void)proc::signal_pidfd(monitor->get(), SIGKILL);
  (void)monitor_done(2000);
  return cleanup(config);
}

struct ContainerDriver::ExecPlan {
  UniqueFd init;
  std::vector<UniqueFd> procs;
  UniqueFd notify;  // to the monitor, for the command's syscall listener
  security::VePolicy policy;
  std::optional<std::vector<sock_filter>> virtualiser;
  std::vector<std::pair<int, struct rlimit>> rlimits;  // a bundle's process.rlimits
};

Result<int> ContainerDriver::exec(const store::VeConfig& config, const store::RuntimeState& state,
                                  const ExecRequest& request) {
  if (request.argv.empty()) return fail(ErrorKind::usage, "exec: no command given");
  auto init = proc::open_pidfd(state.init);
  if (!init) return fail(ErrorKind::state, "VE " + config.name + " is not running");
  const bool rootless = config.security.userns && config.security.userns->rootless;
  if (rootless && !g_in_userns_helper)
    return run_in_user_namespace(init->get(), [&] { return exec(config, state, request); });
  auto plan = plan_exec(config, state.monitor, std::move(*init), state.cgroup_parent);
  if (!plan) return tl::unexpected(plan.error());
  return run_exec(config, *plan, request);
}

Result<int> ContainerDriver::start_and_exec(const store::VeConfig& config,
                                            const store::VeLock& lock, const ExecRequest& request,
                                            const std::function<void()>& started) {
  const bool rootless = config.security.userns && config.security.userns->rootless;
  if (rootless || config.bundle || request.argv.empty())
    return Driver::start_and_exec(config, lock, request, started);
  // Everything exec needs but the VE's namespaces is ready once init is told to go (its
  // cgroups, the monitor's programs and socket): it is made while init finishes its start.
  std::optional<Result<ExecPlan>> plan;
  auto state = start_with(config, lock, [&](pid_t monitor, pid_t init) {
    auto monitor_ref = proc::ref(monitor);
    auto init_ref = proc::ref(init);
    auto init_fd = init_ref ? proc::open_pidfd(*init_ref) : tl::unexpected(init_ref.error());
    if (monitor_ref && init_fd)
      plan = plan_exec(config, *monitor_ref, std::move(*init_fd), ctx_.cgroup_parent());
  });
  if (!state) return tl::unexpected(state.error());
  started();
  // (A plan that could not be made is made again the usual way, with the VE up.)
  if (!plan || !*plan) return exec(config, *state, request);
  return run_exec(config, **plan, request);
}

Result<ContainerDriver::ExecPlan> ContainerDriver::plan_exec(const store::VeConfig& config,
                                                             const proc::ProcessRef& monitor,
                                                             UniqueFd init,
                                                             const std::string& cgroup_parent) {
  ExecPlan plan;
  plan.init = std::move(init);
  auto cg = ctx_.cgroups(cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  auto procs = (*cg)->open_procs(config.name);
  if (!procs) return tl::unexpected(procs.error().context("joining the VE's cgroups"));
  plan.procs = std::move(*procs);

  // The command's sysinfo(2) and sched_getaffinity(2) are answered by the VE's monitor, as
  // they are for everything its init starts: the child loads the filter and sends the monitor
  // its listener over this connection (made now, from the host's network namespace). Without a
  // monitor to answer, the command sees the host's figures.
  trace::point("exec: cgroups opened");
  const std::string run_dir = ctx_.store().ve_run_dir(config.name);
  UniqueFd& notify = plan.notify;
  notify.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (notify) {
    socklen_t len = 0;
    auto addr = notify_address(monitor, len);
    if (::connect(notify.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) notify.reset();
  }

  // The command gets what init got: the VE's capabilities, no_new_privs and its filters (the
  // monitor's programs; built anew only if they are missing). The default profile's program
  // also sends the virtualised calls to the monitor, which only helps while it can answer.
  const std::string cache_dir = ctx_.store().paths().run_dir + "/seccomp";
  std::optional<std::vector<sock_filter>>& virtualiser = plan.virtualiser;
  Result<security::VePolicy> policy = fail(ErrorKind::failure, "no policy");
  if (auto notifying = notify ? load_program(run_dir + "/" + kNotifyingProgramFile) : std::nullopt;
      notifying && !notifying->empty()) {
    policy =
        security::make_policy(config.security, cache_dir, &*notifying, procfs::virtualised_calls());
  } else {
    if (notify) {
      if (auto program = load_notify_program(run_dir)) virtualiser = std::move(*program);
    }
    auto cached = load_program(run_dir + "/" + kSeccompProgramFile);
    policy = security::make_policy(config.security, cache_dir, cached ? &*cached : nullptr);
  }
  if (!policy) return tl::unexpected(policy.error().context("exec in VE " + config.name));
  // A bundle's container: the OCI front end passes the process to exec as config.bundle->process,
  // whose no_new_privs setting and rlimits apply to it, as runc applies them.
  if (config.bundle) {
    policy->no_new_privs = config.bundle->process.no_new_privileges;
    for (const auto& r : config.bundle->process.rlimits) {
      int resource = rlimit_resource(r.type);
      if (resource < 0) return fail(ErrorKind::usage, "process.rlimits: unknown " + r.type);
      plan.rlimits.push_back({resource, {r.soft, r.hard}});
    }
  }
  plan.policy = std::move(*policy);
  // Until the command has been exec'd, this process (and its vfork child, which shares its
  // memory) is kapsel's binary inside the VE's pid namespace: not dumpable, so the VE's
  // processes can neither open its /proc/<pid>/exe to overwrite kapsel (CVE-2019-5736) nor
  // read its memory.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  trace::point("exec: filter built");
  return plan;
}

Result<int> ContainerDriver::run_exec(const store::VeConfig& config, ExecPlan& plan,
                                      const ExecRequest& request) {
  const bool rootless = config.security.userns && config.security.userns->rootless;
  const int init = plan.init.get();
  const auto& procs = plan.procs;
  const auto& rlimits = plan.rlimits;
  const UniqueFd& notify = plan.notify;
  const security::VePolicy& policy = plan.policy;
  const auto& virtualiser = plan.virtualiser;
  NamespaceSnapshot host;
  KAPSEL_TRY(host.save(), "exec");
  // One atomic setns through the pidfd: no window in which the pid could be reused. The pid
  // namespace applies to our children; the cgroup namespace is joined by the child after it
  // has moved into the VE's cgroups, so that they are the root of its view.
  trace::point("exec: joining namespaces");
  // (A rootless VE has the host's time namespace, which its user namespace may not join.)
  if (::setns(init, CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWPID |
                        (rootless ? 0 : CLONE_NEWTIME) | CLONE_NEWNS) != 0)
    return errno_fail("joining the namespaces of VE " + config.name);

  UniqueFd master, slave;
  if (request.tty) {
    // The pty comes from the VE's own devpts instance, so inside it is an ordinary /dev/pts/N.
    master.reset(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (master && ::unlockpt(master.get()) == 0)
      slave.reset(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave) {
      auto err = errno_fail("allocating a pty in VE " + config.name);
      (void)host.restore();
      return err;
    }
  }

  // Everything the child needs is built before the fork: it runs as a vfork child, sharing
  // this process's memory until it execs, so it must not allocate, and writes only
  // preformatted messages. (vfork spares copying the page tables of this process, the single
  // most expensive step of an exec on a paravirtualised host.)
  std::vector<std::string> env = {std::string("PATH=") + kDefaultPath, "HOME=/root",
                                  "container=kapsel", "HOSTNAME=" + config.hostname};
  if (request.whole_env) env.clear();
  if (request.tty && !request.whole_env) {
    const char* term = std::getenv("TERM");
    env.push_back(std::string("TERM=") + (term && *term ? term : "xterm"));
  }
  std::string search_path = kDefaultPath;
  for (const auto& e : request.env) {
    env.push_back(e);
    if (e.rfind("PATH=", 0) == 0) search_path = e.substr(5);
  }
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (const auto& a : request.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // execvp's search, done here because execvp would read PATH from our own environment and
  // may allocate: the candidate paths in the order the VE's PATH gives them.
  std::vector<std::string> candidates;
  const std::string& program = request.argv.front();
  if (program.find('/') != std::string::npos) {
    candidates.push_back(program);
  } else {
    size_t pos = 0;
    while (pos <= search_path.size()) {
      size_t end = search_path.find(':', pos);
      if (end == std::string::npos) end = search_path.size();
      std::string dir = search_path.substr(pos, end - pos);
      candidates.push_back((dir.empty() ? "." : dir) + "/" + program);
      pos = end + 1;
    }
  }
  const std::string where = "' in VE " + config.name + ": ";
  const std::string cgroup_msg = "kapsel: exec: joining the cgroups of VE " + config.name + ": ";
  const std::string cwd_msg = "kapsel: exec: cannot change to " + request.cwd + where.substr(1);
  const std::string run_msg = "kapsel: exec: cannot run '" + program + where;
  const std::string policy_msg = "kapsel: exec in VE " + config.name + ": ";
  const std::string user_msg = "kapsel: exec: setting the user in VE " + config.name + ": ";
  const std::string userns_msg =
      "kapsel: exec: joining the user namespace of VE " + config.name + ": ";
  // (The helper of a rootless VE is in its user namespace already.)
  const bool userns = (config.security.userns.has_value() && !rootless) ||
                      (config.bundle && config.bundle->has_namespace("user"));
  const std::string rlimit_msg = "kapsel: exec: process.rlimits in VE " + config.name + ": ";
  auto child_fail = [](const std::string& msg, int err, int code) {
    const char* reason = std::strerror(err);
    (void)!::write(STDERR_FILENO, msg.data(), msg.size());
    (void)!::write(STDERR_FILENO, reason, std::strlen(reason));
    (void)!::write(STDERR_FILENO, "\n", 1);
    ::_exit(code);
  };

  trace::point("exec: forking");
  pid_t child = ::vfork();
  if (child == 0) {
    // First, while this process may still raise a hard limit (CAP_SYS_RESOURCE in the host's
    // user namespace).
    for (const auto& [resource, lim] : rlimits) {
      if (::setrlimit(resource, &lim) != 0) child_fail(rlimit_msg, errno, 125);
    }
    for (const auto& fd : procs) {
      if (::write(fd.get(), "0", 1) != 1) child_fail(cgroup_msg, errno, 125);
    }
    if (::setns(init, CLONE_NEWCGROUP) != 0) child_fail(cgroup_msg, errno, 125);
    trace::point("exec child: in the cgroups");
    // Last of the namespaces: the host's root can join the others from the host's user
    // namespace, and the command then runs as the VE's root, a mapped id.
    if (userns) {
      int e = ::setns(init, CLONE_NEWUSER) == 0 ? security::become_namespace_root() : errno;
      if (e != 0) child_fail(userns_msg, e, 125);
    }
    if (request.tty) {
      ::setsid();
      ::ioctl(slave.get(), TIOCSCTTY, 0);
      for (int fd = 0; fd <= 2; ++fd) ::dup2(slave.get(), fd);
    }
    if (request.uid) {
      if (int e =
              switch_user(*request.uid, request.gid, request.groups.data(), request.groups.size());
          e != 0)
        child_fail(user_msg, e, 125);
    }
    if (::chdir(request.cwd.c_str()) != 0) child_fail(cwd_msg, errno, 125);
    // No descriptor of kapsel's may reach the command (CVE-2024-21626 class of leaks).
    ::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    // The programs were built before the fork: a vfork child must not allocate.
    const char* step = "";
    int listener = -1;
    if (int e = security::enter_policy(policy, virtualiser ? &*virtualiser : nullptr,
                                       notify ? &listener : nullptr, &step);
        e != 0) {
      (void)!::write(STDERR_FILENO, policy_msg.data(), policy_msg.size());
      (void)!::write(STDERR_FILENO, step, std::strlen(step));
      child_fail(": ", e, 125);
    }
    if (listener >= 0) {
      (void)procfs::send_listener_fd(notify.get(), listener);
      ::close(listener);
    }
    trace::point("exec child: policy entered");
    int err = ENOENT;
    for (const auto& path : candidates) {
      ::execve(path.c_str(), argv.data(), envp.data());
      // As execvp: keep looking past a missing file, remember a permission problem.
      if (errno == EACCES) {
        err = EACCES;
      } else if (errno != ENOENT && errno != ENOTDIR) {
        err = errno;
        break;
      }
    }
    child_fail(run_msg, err, err == ENOENT ? 127 : 126);
  }
  trace::point("exec: command started");
  {
    int fork_errno = errno;
    // The helper of a rootless VE cannot return, and need not: it ends with the command.
    if (!g_in_userns_helper) KAPSEL_TRY(host.restore(), "exec");
    if (child < 0) return sys_fail(fork_errno, "forking");
  }
  slave.reset();
  if (request.started) request.started(child);
  if (request.tty && request.pty_master) {
    KAPSEL_TRY(request.pty_master(master.get()), "exec");
    master.reset();
  }
  if (request.detach) return 0;
  int status = 0;
  if (request.tty && !request.pty_master) {
    terminal::RawMode raw(STDIN_FILENO);
    auto st = terminal::relay(master.get(), child);
    if (!st) return tl::unexpected(st.error());
    status = *st;
  } else {
    g_exec_child = child;
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
      ::sigaction(sig, &sa, nullptr);
    trace::point("exec: waiting");
    while (::waitpid(child, &status, 0) < 0) {
      if (errno != EINTR) return errno_fail("waiting for the command");
    }
    g_exec_child = 0;
  }
  return exit_code_of(status);
}

Status ContainerDriver::cleanup(const store::VeConfig& config) {
  Status result = net::tear_down_ve_network(config.name, config.network);
  if (auto cg = ctx_.cgroups()) {
    if (auto st = (*cg)->destroy(config.name); !st) result = st;
  }
  if (auto st = ctx_.store().clear_runtime(config.name); !st && result) result = st;
  return result;
}

Result<std::size_t> ContainerDriver::process_count(const store::VeConfig& config,
                                                   const store::RuntimeState& state) {
  auto cg = ctx_.cgroups(state.cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  auto pids = (*cg)->pids(config.name);
  if (!pids) return tl::unexpected(pids.error());
  return pids->size();
}

// The cgroup freezer: every process of the VE, exec'd ones included, is in its cgroup. The
// monitor and the /proc service are not, so they go on answering for a paused VE.
Status ContainerDriver::pause(const store::VeConfig& config, const store::RuntimeState& state) {
  auto cg = ctx_.cgroups(state.cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  return (*cg)->freeze(config.name, true);
}

Status ContainerDriver::resume(const store::VeConfig& config, const store::RuntimeState& state) {
  auto cg = ctx_.cgroups(state.cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  return (*cg)->freeze(config.name, false);
}

bool ContainerDriver::paused(const store::VeConfig& config, const store::RuntimeState& state) {
  auto cg = ctx_.cgroups(state.cgroup_parent);
  return cg && (*cg)->frozen(config.name);
}

Status ContainerDriver::check_limits(const cgroup::Limits& limits) {
  if (limits.empty()) return {};
  auto cg = ctx_.cgroups();
  if (!cg) return tl::unexpected(cg.error());
  return (*cg)->check(limits);
}

Status ContainerDriver::apply_limits(const store::VeConfig& config,
                                     const store::RuntimeState& state,
                                     const cgroup::Limits& change) {
  auto cg = ctx_.cgroups(state.cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  KAPSEL_TRY((*cg)->check(change), "VE " + config.name);
  return with_context((*cg)->apply(config.name, change), "VE " + config.name);
}

// The VE's interfaces are those of init's network namespace, which /proc/<pid>/net shows.
static Status add_net_bytes(pid_t init, Usage& usage) {
  auto text = fs::read_file("/proc/" + std::to_string(init) + "/net/dev");
  if (!text) return tl::unexpected(text.error());
  std::string_view rest = *text;
  // Two header lines, then "  eth0: RX_BYTES RX_PACKETS ... (8 receive fields) TX_BYTES ...".
  for (int line = 0; !rest.empty(); ++line) {
    auto nl = rest.find('\n');
    std::string row(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    auto colon = row.find(':');
    if (line < 2 || colon == std::string::npos) continue;
    std::string ifname = row.substr(0, colon);
    ifname.erase(0, ifname.find_first_not_of(' '));
    if (ifname == "lo") continue;
    unsigned long long f[9] = {};
    if (std::sscanf(row.c_str() + colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &f[0],
                    &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8]) == 9) {
      usage.net_rx_bytes += f[0];
      usage.net_tx_bytes += f[8];
    }
  }
  return {};
}

Result<Usage> ContainerDriver::usage(const store::VeConfig& config,
                                     const store::RuntimeState& state) {
  auto cg = ctx_.cgroups(state.cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  Usage u;
  auto stats = (*cg)->stats(config.name);
  if (!stats)
    return tl::unexpected(stats.error().context("reading the cgroups of VE " + config.name));
  u.cgroup = std::move(*stats);
  if (state.init.alive()) (void)add_net_bytes(state.init.pid, u);
  return u;
}

}  // namespace kapsel::driver::container
