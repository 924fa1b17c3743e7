#include "driver/uml/uml_driver.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <optional>
#include <sstream>

#include "agent/agent_client.hpp"
#include "agent/agent_relay.hpp"
#include "agent/guest_network.hpp"
#include "cgroup/manager.hpp"
#include "common/fs.hpp"
#include "common/unix_socket.hpp"
#include "driver/uml/console_server.hpp"
#include "driver/uml/mconsole_client.hpp"
#include "driver/uml/uml_image.hpp"
#include "monitor/monitor.hpp"
#include "net/bridge_network.hpp"
#include "net/link.hpp"
#include "net/netlink_socket.hpp"
#include "net/ve_network.hpp"

namespace kapsel::driver::uml {
namespace {

// Guest memory when the VE has no --memory.
constexpr std::uint64_t kDefaultGuestMemory = 256ull << 20;
// What the kernel's host processes need beyond the guest's memory (the kernel image, page
// tables, the helper processes' stacks): the cgroup's limit is the guest's plus this, so that
// the host's limit never kills a guest that stays within its own.
constexpr std::uint64_t kHostOverhead = 64ull << 20;
// The guest agent's stream is the guest's second serial line; fd 3 in linux.uml.
constexpr int kAgentFd = 3;

std::uint64_t guest_memory(const cgroup::Limits& limits) {
  if (limits.memory && *limits.memory != cgroup::kUnlimited) return *limits.memory;
  return kDefaultGuestMemory;
}

// The VE's limits as the host's cgroup enforces them on the kernel's processes.
cgroup::Limits host_limits(const cgroup::Limits& limits) {
  cgroup::Limits l = limits;
  if (l.memory && *l.memory != cgroup::kUnlimited) *l.memory += kHostOverhead;
  if (l.memory_swap && *l.memory_swap != cgroup::kUnlimited) *l.memory_swap += kHostOverhead;
  return l;
}

int boot_timeout_ms() {
  if (const char* env = std::getenv("KAPSEL_UML_BOOT_TIMEOUT"); env && *env)
    return std::atoi(env) * 1000;
  return 120000;  // a loaded 2-CPU host boots a busybox guest in ~1-15 s
}

Status check_binary() {
  std::string bin = uml_binary();
  if (::access(bin.c_str(), X_OK) != 0)
    return fail(ErrorKind::not_found,
                bin +
                    " is missing: UML VEs need the User-mode Linux kernel; install the Debian "
                    "package user-mode-linux (apt-get install user-mode-linux)");
  return {};
}

store::ExitRecord classify_uml(int status) {
  store::ExitRecord r = monitor::classify(status);
  // linux.uml exits 0 when the guest halts or powers off (a reboot re-executes it in place).
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    r.reason = "halted";
    r.detail = "the guest kernel halted";
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
    r.detail = "the UML kernel was killed (SIGKILL)";
  }
  return r;
}

}  // namespace

std::vector<std::string> uml_network_args(const std::string& ve,
                                          const store::NetworkConfig& network,
                                          std::string_view host_resolv_conf) {
  if (!network.is_bridge()) return {};
  // The tap the monitor made (net::attach_tap), opened by name by UML's tuntap transport, with
  // the VE's stable MAC; no gateway address after it, so UML runs no uml_net helper.
  std::vector<std::string> args = {"eth0=tuntap," + net::host_veth_name(ve) + "," + network.mac};
  agent::GuestNetwork guest{network.address, network.gateway, {}};
  // The nameservers a container VE on a bridge gets in its resolv.conf.
  std::istringstream lines{net::resolv_conf_for_bridge(host_resolv_conf)};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string key, value;
    if (words >> key >> value && key == "nameserver") guest.nameservers.push_back(value);
  }
  for (auto& p : agent::guest_network_params(guest)) args.push_back(std::move(p));
  return args;
}

std::string uml_binary() {
  if (const char* env = std::getenv("KAPSEL_UML"); env && *env) return env;
  return "/usr/bin/linux.uml";
}

std::string UmlDriver::mconsole_path(const std::string& name) const {
  return ctx_.store().ve_run_dir(name) + "/uml/mconsole";
}

std::string UmlDriver::agent_socket(const std::string& name) const {
  return ctx_.store().ve_run_dir(name) + "/agent.sock";
}

std::string UmlDriver::console_socket(const std::string& name) const {
  return ctx_.store().ve_run_dir(name) + "/console.sock";
}

std::string UmlDriver::paused_marker(const std::string& name) const {
  return ctx_.store().ve_run_dir(name) + "/paused";
}

Status UmlDriver::pause(const store::VeConfig& config, const store::RuntimeState&) {
  auto mc = MconsoleClient::open(mconsole_path(config.name));
  if (!mc) return tl::unexpected(mc.error());
  // The marker first: a guest that is stopped but not marked would look running, and exec
  // would hang on it.
  KAPSEL_TRY(fs::write_file_atomic(paused_marker(config.name), "", 0600, false), "pausing");
  if (auto r = mc->command("stop"); !r) {
    ::unlink(paused_marker(config.name).c_str());
    return tl::unexpected(r.error());
  }
  return {};
}

Status UmlDriver::resume(const store::VeConfig& config, const store::RuntimeState&) {
  auto mc = MconsoleClient::open(mconsole_path(config.name));
  if (!mc) return tl::unexpected(mc.error());
  auto r = mc->command("go");
  if (!r) return tl::unexpected(r.error());
  ::unlink(paused_marker(config.name).c_str());
  return {};
}

bool UmlDriver::paused(const store::VeConfig& config, const store::RuntimeState&) {
  return fs::exists(paused_marker(config.name));
}

// Hot-plugged disks are UML's ubd1..ubd15 (ubd0 is the root), which the guest names ubdb..ubdp.
// Which are in use is kept in the run dir (<run>/ves/<name>/disks/ubdN, holding the host path):
// a hot-plugged disk lasts as long as the running guest, and so does the run dir.
namespace {
constexpr int kFirstHotplugDisk = 1;
constexpr int kLastHotplugDisk = 15;
std::string guest_device(int n) {
  return "/dev/ubd" + std::string(1, static_cast<char>('a' + n));
}
}  // namespace

Result<std::string> UmlDriver::attach_disk(const store::VeConfig& config,
                                           const store::RuntimeState&, const std::string& path,
                                           bool read_only) {
  char resolved[PATH_MAX];
  struct stat st {};
  if (::realpath(path.c_str(), resolved) == nullptr || ::stat(resolved, &st) != 0)
    return fail(ErrorKind::not_found, "disk: no file " + path);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return fail(ErrorKind::usage, "disk: " + path + " is neither a file nor a block device");
  std::string dir = ctx_.store().ve_run_dir(config.name) + "/disks";
  KAPSEL_TRY(fs::make_dirs(dir, 0700), "disk");
  for (int n = kFirstHotplugDisk; n <= kLastHotplugDisk; ++n) {
    std::string slot = dir + "/ubd" + std::to_string(n);
    if (fs::exists(slot)) continue;
    auto mc = MconsoleClient::open(mconsole_path(config.name));
    if (!mc) return tl::unexpected(mc.error().context("disk"));
    // The ubd= syntax of the kernel's command line: "ubd1r=FILE" for read-only.
    std::string request =
        "config ubd" + std::to_string(n) + (read_only ? "r" : "") + "=" + std::string(resolved);
    if (auto r = mc->command(request); !r)
      return tl::unexpected(r.error().context("disk: attaching " + path));
    KAPSEL_TRY(fs::write_file_atomic(slot, std::string(resolved), 0600, false), "disk");
    return guest_device(n);
  }
  return fail(ErrorKind::state, "disk: VE " + config.name + " has no free disk slot (ubd" +
                                    std::to_string(kFirstHotplugDisk) + " to ubd" +
                                    std::to_string(kLastHotplugDisk) + " are in use)");
}

Status UmlDriver::detach_disk(const store::VeConfig& config, const store::RuntimeState&,
                              const std::string& device) {
  std::string name = device.starts_with("/dev/") ? device.substr(5) : device;
  int n = -1;
  if (name.size() == 4 && name.starts_with("ubd") && name[3] >= 'b' && name[3] <= 'p')
    n = name[3] - 'a';
  std::string slot = ctx_.store().ve_run_dir(config.name) + "/disks/ubd" + std::to_string(n);
  if (n < 0 || !fs::exists(slot))
    return fail(ErrorKind::not_found,
                "disk: VE " + config.name + " has no hot-plugged disk " + device +
                    " (`kapsel status` does not list the root disk, ubda, which cannot go)");
  auto mc = MconsoleClient::open(mconsole_path(config.name));
  if (!mc) return tl::unexpected(mc.error().context("disk"));
  if (auto r = mc->command("remove ubd" + std::to_string(n)); !r)
    return fail(ErrorKind::state, "disk: the guest of VE " + config.name + " still uses " +
                                      guest_device(n) +
                                      " (unmount it first): " + r.error().message);
  ::unlink(slot.c_str());
  return {};
}

Status UmlDriver::console(const store::VeConfig& config, const store::RuntimeState&) {
  return attach_console(console_socket(config.name), config.name);
}

Status UmlDriver::create(const store::VeConfig& config) {
  // The guest has a kernel of its own, so it cannot share the host's network stack.
  if (config.network.mode == "host")
    return fail(ErrorKind::usage, "UML VEs support --network none or bridge[:NAME], not host (VE " +
                                      config.name + ")");
  if (config.security.userns)
    return fail(ErrorKind::usage,
                "--userns is for container VEs; a UML VE has a kernel of its own");
  auto tmpl = ctx_.load_template(config.template_id);
  if (!tmpl) return tl::unexpected(tmpl.error());
  if (config.disk_bytes != 0) {
    KAPSEL_TRY(fs::make_dirs(ctx_.store().ve_dir(config.name) + "/private", 0700),
               "making the VE's private directory");
    return build_own_image(*tmpl, own_disk(config.name), config.disk_bytes, ctx_.progress());
  }
  // The shared image is made now, once per template, so that start stays quick.
  auto image = ensure_image(*tmpl, ctx_.progress());
  if (!image) return tl::unexpected(image.error());
  return {};
}

std::string UmlDriver::own_disk(const std::string& ve) const {
  return ctx_.store().ve_dir(ve) + "/private/disk.ext4";
}

Result<store::RuntimeState> UmlDriver::start(const store::VeConfig& config,
                                             const store::VeLock& lock) {
  KAPSEL_TRY(check_binary(), "starting VE " + config.name);
  auto tmpl = ctx_.load_template(config.template_id);
  if (!tmpl)
    return tl::unexpected(tmpl.error().context("template " + config.template_spec + " of VE " +
                                               config.name + " is unusable"));
  // A VE with a disk of its own boots from it; the others from a COW view of the shared image.
  auto image =
      config.disk_bytes != 0 ? Result<std::string>(own_disk(config.name)) : ensure_image(*tmpl, {});
  if (!image) return tl::unexpected(image.error().context("starting VE " + config.name));
  auto cg = ctx_.cgroups();
  if (!cg) return tl::unexpected(cg.error());
  KAPSEL_TRY((*cg)->check(host_limits(config.limits)), "starting VE " + config.name);
  KAPSEL_TRY(fs::make_dirs(ctx_.store().ve_run_dir(config.name), 0700),
             "preparing runtime directory");

  auto state =
      monitor::launch(ctx_.store(), config.name, lock, /*keep_stdio=*/false, /*preserved_fds=*/0,
                      [&](UniqueFd report, UniqueFd monitor_lock) {
                        run_monitor(config, *image, std::move(report), std::move(monitor_lock));
                      });
  if (!state) (void)cleanup(config);
  return state;
}

void UmlDriver::run_monitor(const store::VeConfig& config, const std::string& image,
                            UniqueFd report_fd, UniqueFd lock) {
  monitor::StartReport report(std::move(report_fd));
  auto& store = ctx_.store();
  const std::string& name = config.name;
  const std::string run_dir = store.ve_run_dir(name);
  store::RuntimeState state;
  state.halt_signal = 0;  // the guest is stopped through its mconsole, not by a signal
  state.cgroup_parent = ctx_.cgroup_parent();
  state.monitor = proc::ref(::getpid()).value_or(proc::ProcessRef{::getpid(), 0});
  pid_t child = -1;
  cgroup::Manager* cg = nullptr;

  auto fail_start = [&](const Error& e) {
    monitor::abandon_start(store, config, child, cg, std::move(lock), report, e);
  };

  auto cgr = ctx_.cgroups();
  if (!cgr) fail_start(cgr.error());
  cg = *cgr;
  // Recorded before the cgroup is made, so that whoever finds this monitor dead knows it.
  if (auto st = store.save_state(name, state); !st) fail_start(st.error());
  if (auto st = cg->create(name); !st) fail_start(st.error());
  if (auto st = cg->apply(name, host_limits(config.limits)); !st) fail_start(st.error());

  // The guest's console: a pty whose slave is linux.uml's stdin and stdout (con0=fd:0,fd:1).
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0)
    fail_start(errno_fail("allocating the console pty").value());
  UniqueFd slave(::open(::ptsname(master.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) fail_start(errno_fail("opening the console pty").value());
  UniqueFd log;
  if (!config.ephemeral) {
    std::string log_path = store.ve_dir(name) + "/console.log";
    log.reset(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  }
  // The agent's stream: one end becomes the guest's ttyS1 (ssl1=fd:3), the other the relay's.
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    fail_start(errno_fail("creating the agent's stream").value());
  UniqueFd line(pair[0]), guest_line(pair[1]);
  auto listener = unix_socket::listen(agent_socket(name));
  if (!listener) fail_start(listener.error().context("the agent socket"));
  agent::AgentRelay relay(std::move(line), std::move(*listener));
  auto console_listener = unix_socket::listen(console_socket(name));
  if (!console_listener) fail_start(console_listener.error().context("the console socket"));
  ConsoleServer console(master.get(), log.get(), std::move(*console_listener));

  const std::string uml_dir = run_dir;
  const std::string cow = store.ve_dir(name) + "/private/disk.cow";
  if (auto st = fs::make_dirs(store.ve_dir(name) + "/private", 0700); !st) fail_start(st.error());
  std::vector<std::string> args = {
      uml_binary(), "umid=uml", "uml_dir=" + uml_dir,
      "mem=" + std::to_string(guest_memory(config.limits) >> 20) + "M",
      config.disk_bytes != 0 ? "ubd0=" + image : "ubd0=" + cow + "," + image, "root=/dev/ubda",
      "rw", "con0=fd:0,fd:1", "con=null", "ssl=null",
      "ssl1=fd:" + std::to_string(kAgentFd) + ",fd:" + std::to_string(kAgentFd),
      // Set by the agent (see agent_main.cpp); the name was validated as a hostname.
      "kapsel.hostname=" + (config.hostname.empty() ? name : config.hostname)};
  if (config.network.is_bridge()) {
    // The tap is on the bridge before the kernel opens it: the guest's first frames go out.
    net::NetworkStore networks(store.paths().root);
    if (auto st = net::set_up_ve_tap(networks, name, config.network); !st) fail_start(st.error());
    auto host_resolv = fs::read_file("/etc/resolv.conf");
    for (auto& a : uml_network_args(name, config.network, host_resolv ? *host_resolv : ""))
      args.push_back(std::move(a));
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // UML maps its guest memory from a file in TMPDIR, which must allow exec: /dev/shm does.
  const char* envp[] = {"TMPDIR=/dev/shm", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", nullptr};

  int sync_pipe[2];
  if (::pipe2(sync_pipe, O_CLOEXEC) != 0) fail_start(errno_fail("preparing the kernel").value());
  UniqueFd sync_read(sync_pipe[0]), sync_write(sync_pipe[1]);
  child = ::fork();
  if (child == 0) {
    // The kernel must not outlive its monitor, which holds its console and cleans up.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    ::setsid();
    for (int fd = 0; fd <= 2; ++fd) ::dup2(slave.get(), fd);
    // The guest's end of the agent's stream at its fixed number (not close-on-exec: it is
    // handed to linux.uml on purpose), the go pipe above it until the exec closes it.
    ::dup2(guest_line.get(), kAgentFd);
    ::dup3(sync_read.get(), kAgentFd + 1, O_CLOEXEC);
    ::syscall(SYS_close_range, kAgentFd + 2, ~0U, 0);
    char go = 0;
    if (::read(kAgentFd + 1, &go, 1) != 1) ::_exit(1);  // the monitor failed: no go
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) (void)::signal(sig, SIG_DFL);
    ::execve(argv[0], argv.data(), const_cast<char* const*>(envp));
    ::_exit(127);
  }
  if (child < 0) fail_start(errno_fail("forking the kernel").value());
  sync_read.reset();
  slave.reset();
  guest_line.reset();
  // Every host process of the kernel starts in the VE's cgroup: its limits and stats apply.
  if (auto st = cg->attach(name, child); !st) fail_start(st.error().context("joining cgroups"));
  if (!fs::write_all(sync_write.get(), "g", "the kernel's go"))
    fail_start(Error{ErrorKind::failure, 0, "the kernel process died before it was started"});
  sync_write.reset();

  // Up means the agent has said hello: then exec works the moment start returns.
  struct timespec t0 {};
  ::clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!relay.agent_ready()) {
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) {
      child = -1;
      fail_start(Error{ErrorKind::failure, 0,
                       "the UML kernel ended while booting (" + classify_uml(status).detail +
                           "); its console is in " + store.ve_dir(name) + "/console.log"});
    }
    struct timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    long waited = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
    if (waited > boot_timeout_ms())
      fail_start(Error{ErrorKind::failure, ETIMEDOUT,
                       "the guest agent did not start within " +
                           std::to_string(boot_timeout_ms() / 1000) + " s; the console is in " +
                           store.ve_dir(name) + "/console.log"});
    struct pollfd fds[2] = {{master.get(), POLLIN, 0}, {relay.line_fd(), POLLIN, 0}};
    if (::poll(fds, 2, 200) <= 0) continue;
    if (fds[0].revents & POLLIN) console.on_console();
    if (fds[1].revents & POLLIN) relay.on_line();
  }
  state.phase = store::Phase::running;
  state.init = proc::ref(child).value_or(proc::ProcessRef{child, 0});
  state.started_at = ::time(nullptr);
  if (auto st = store.save_state(name, state); !st) fail_start(st.error());
  lock.reset();
  report.ok();

  const std::string mconsole = mconsole_path(name);
  monitor::Supervision s;
  s.init = child;
  // The console is the server's to read (for the log and attached clients), not supervise's.
  s.console_master = -1;
  s.console_log = -1;
  s.halt_signal = 0;  // kill(pid, 0) sends nothing: on_stop_request asks the guest instead
  s.on_stop_request = [&] {
    if (state.phase != store::Phase::stopping) {
      state.phase = store::Phase::stopping;
      (void)store.save_state(name, state);
    }
    // Ctrl-Alt-Del: the guest's init shuts down cleanly and powers off (uml_inittab). After
    // a kill request the kernel is gone already and this fails, which is fine.
    if (auto mc = MconsoleClient::open(mconsole, 1000)) (void)mc->command("cad");
  };
  s.watches = [&] {
    std::vector<monitor::Watch> w;
    for (auto& r : relay.watches()) w.push_back({r.fd, r.on_ready});
    for (auto& c : console.watches()) w.push_back(std::move(c));
    return w;
  };
  int status = monitor::supervise(s);
  store::ExitRecord rec = classify_uml(status);
  // The kernel's helper processes outlive its main one.
  (void)cg->kill_all(name, 5000);
  monitor::finish(store, config, *cg, rec);
}

Status UmlDriver::stop(const store::VeConfig& config, const store::RuntimeState& state,
                       const StopOptions& options) {
  auto monitor = proc::open_pidfd(state.monitor);
  if (!monitor) return cleanup(config);
  auto monitor_done = [&](int timeout_ms) { return proc::wait_pidfd(monitor->get(), timeout_ms); };
  auto finish = [&]() -> Status {
    if (!fs::exists(ctx_.store().ve_run_dir(config.name))) return {};
    return cleanup(config);
  };
  if (!options.kill) {
    // The monitor records "stopping" and sends the guest Ctrl-Alt-Del.
    KAPSEL_TRY(proc::signal_pidfd(monitor->get(), SIGTERM), "asking the monitor to stop the VE");
    if (monitor_done(options.timeout_seconds * 1000)) return finish();
    // A guest that ignores it (hung, or paused) is halted by its kernel: no clean shutdown of
    // its processes, but its file systems are synced.
    if (auto mc = MconsoleClient::open(mconsole_path(config.name), 1000)) {
      (void)mc->command("go");  // a paused kernel would not halt
      (void)mc->command("halt");
    }
    if (monitor_done(3000)) return finish();
  }
  KAPSEL_TRY(proc::signal_pidfd(monitor->get(), monitor::kKillRequestSignal),
             "asking the monitor to kill the VE");
  if (monitor_done(10000)) {
    if (options.once_down) options.once_down();
    return finish();
  }
  if (auto init = proc::open_pidfd(state.init)) (void)proc::signal_pidfd(init->get(), SIGKILL);
  (void)proc::signal_pidfd(monitor->get(), SIGKILL);
  (void)monitor_done(2000);
  if (options.once_down) options.once_down();
  return cleanup(config);
}

Result<int> UmlDriver::exec(const store::VeConfig& config, const store::RuntimeState& state,
                            const ExecRequest& request) {
  if (request.argv.empty()) return fail(ErrorKind::usage, "exec: no command given");
  if (!state.init.alive()) return fail(ErrorKind::state, "VE " + config.name + " is not running");
  agent::ExecSpec spec;
  spec.argv = request.argv;
  spec.env = request.env;
  spec.cwd = request.cwd;
  spec.tty = request.tty;
  return with_context(agent::run_session(agent_socket(config.name), spec),
                      "exec in VE " + config.name);
}

Status UmlDriver::cleanup(const store::VeConfig& config) {
  // The tap and the published ports' rules of a monitor that did not get to remove them.
  Status result = net::tear_down_ve_network(config.name, config.network);
  if (auto cg = ctx_.cgroups()) {
    if (auto st = (*cg)->destroy(config.name); !st) result = st;
  }
  if (auto st = ctx_.store().clear_runtime(config.name); !st && result) result = st;
  return result;
}

Result<std::size_t> UmlDriver::process_count(const store::VeConfig& config,
                                             const store::RuntimeState& state) {
  auto cg = ctx_.cgroups(state.cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  auto pids = (*cg)->pids(config.name);
  if (!pids) return tl::unexpected(pids.error());
  return pids->size();
}

Status UmlDriver::check_limits(const cgroup::Limits& limits) {
  if (limits.memory && *limits.memory != cgroup::kUnlimited && *limits.memory < (32ull << 20))
    return fail(ErrorKind::usage, "--memory: a UML guest needs at least 32 MiB");
  if (limits.empty()) return {};
  auto cg = ctx_.cgroups();
  if (!cg) return tl::unexpected(cg.error());
  return (*cg)->check(host_limits(limits));
}

Status UmlDriver::apply_limits(const store::VeConfig& config, const store::RuntimeState& state,
                               const cgroup::Limits& change) {
  // The guest kernel's memory is fixed at boot (mem=); a new --memory reaches the host's
  // limit now and the guest at its next start.
  auto cg = ctx_.cgroups(state.cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  KAPSEL_TRY(check_limits(change), "VE " + config.name);
  return with_context((*cg)->apply(config.name, host_limits(change)), "VE " + config.name);
}

Result<Usage> UmlDriver::usage(const store::VeConfig& config, const store::RuntimeState& state) {
  auto cg = ctx_.cgroups(state.cgroup_parent);
  if (!cg) return tl::unexpected(cg.error());
  Usage u;
  auto stats = (*cg)->stats(config.name);
  if (!stats)
    return tl::unexpected(stats.error().context("reading the cgroups of VE " + config.name));
  u.cgroup = std::move(*stats);
  // What the tap receives the guest sent, and the other way round.
  if (config.network.is_bridge()) {
    if (auto sock = net::NetlinkSocket::open()) {
      if (auto bytes = net::link_bytes(*sock, net::host_veth_name(config.name))) {
        u.net_rx_bytes = bytes->tx;
        u.net_tx_bytes = bytes->rx;
      }
    }
  }
  return u;
}

Result<std::vector<std::pair<std::string, std::string>>> UmlDriver::details(
    const store::VeConfig& config, const store::RuntimeState&) {
  std::vector<std::pair<std::string, std::string>> out;
  // A stopped kernel answers only a few mconsole commands itself; `proc` needs it running.
  if (fs::exists(paused_marker(config.name))) return out;
  auto mc = MconsoleClient::open(mconsole_path(config.name), 2000);
  if (!mc) return tl::unexpected(mc.error());
  if (auto v = mc->command("version")) out.emplace_back("kernel", *v);
  if (auto mem = mc->command("proc meminfo")) {
    // "MemTotal:  39540 kB" and "MemAvailable: ..." as the guest's kernel counts them.
    auto field = [&](const std::string& key) -> std::string {
      auto at = mem->find(key + ":");
      if (at == std::string::npos) return {};
      auto end = mem->find('\n', at);
      std::string v = mem->substr(at + key.size() + 1, end - at - key.size() - 1);
      v.erase(0, v.find_first_not_of(' '));
      return v;
    };
    out.emplace_back("guest memory",
                     field("MemTotal") + " total, " + field("MemAvailable") + " available");
  }
  return out;
}

}  // namespace kapsel::driver::uml
