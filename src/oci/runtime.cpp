#include "oci/runtime.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "cgroup/manager.hpp"
#include "common/fs.hpp"
#include "common/process.hpp"
#include "driver/container/container_driver.hpp"
#include "driver/driver.hpp"
#include "oci/hooks.hpp"

namespace kapsel::oci {
namespace {

using nlohmann::json;

constexpr const char* kSpecCopy = "bundle-config.json";  // the bundle's config.json as created
constexpr const char* kStartFifo = "exec.fifo";
constexpr const char* kSeccompFile = "seccomp.json";

std::string rfc3339(std::int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A process that has exited but is not yet reaped (a zombie) has stopped for the spec.
bool running(const proc::ProcessRef& p) {
  if (p.pid <= 0 || !p.alive()) return false;
  auto stat = fs::read_file("/proc/" + std::to_string(p.pid) + "/stat");
  if (!stat) return false;
  auto close = stat->rfind(')');
  if (close == std::string::npos || close + 2 >= stat->size()) return false;
  char s = (*stat)[close + 2];
  return s != 'Z' && s != 'X';
}

Status write_pid_file(const std::string& path, pid_t pid) {
  if (path.empty()) return {};
  return with_context(fs::write_file_atomic(path, std::to_string(pid), 0644, false),
                      "writing the pid file " + path);
}

std::string absolute(const std::string& path) {
  if (!path.empty() && path.front() == '/') return path;
  char cwd[4096];
  if (!::getcwd(cwd, sizeof cwd)) return path;
  std::string base = cwd;
  if (path.empty() || path == ".") return base;
  return base + "/" + path;
}

}  // namespace

std::string_view to_string(ContainerStatus s) {
  switch (s) {
    case ContainerStatus::creating:
      return "creating";
    case ContainerStatus::created:
      return "created";
    case ContainerStatus::running:
      return "running";
    case ContainerStatus::stopped:
      return "stopped";
    case ContainerStatus::paused:
      return "paused";
  }
  return "unknown";
}

std::string ContainerState::to_json() const {
  json j = {{"ociVersion", oci_version},
            {"id", id},
            {"status", to_string(status)},
            {"bundle", bundle},
            {"rootfs", ""},
            {"created", rfc3339(created)},
            {"owner", ""}};
  if (status != ContainerStatus::stopped) j["pid"] = pid;
  j["annotations"] = annotations.empty() ? json::object() : json(annotations);
  return j.dump(2);
}

Result<int> parse_signal(const std::string& text) {
  if (text.empty()) return fail(ErrorKind::usage, "no signal given");
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    int n = std::atoi(text.c_str());
    if (n <= 0 || n >= NSIG) return fail(ErrorKind::usage, "invalid signal " + text);
    return n;
  }
  std::string name = text;
  for (auto& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  for (int sig = 1; sig < SIGRTMIN; ++sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    if (abbrev && name == abbrev) return sig;
  }
  if (name == "RTMIN") return SIGRTMIN;
  if (name == "RTMAX") return SIGRTMAX;
  return fail(ErrorKind::usage, "unknown signal " + text);
}

Result<ExecProcess> parse_process(std::string_view text) {
  json p = json::parse(text, nullptr, false);
  if (p.is_discarded() || !p.is_object())
    return fail(ErrorKind::usage, "the process file is not a JSON object");
  json wrapper = {{"ociVersion", "1.0.0"}, {"root", {{"path", "/"}}}, {"process", p}};
  auto spec = parse_bundle_config(wrapper.dump(), "/");
  if (!spec) return tl::unexpected(spec.error());
  ExecProcess exec;
  exec.process = spec->config.bundle->process;
  if (p.contains("capabilities")) exec.capabilities = spec->config.security.capabilities;
  return exec;
}

Runtime::Runtime(const std::string& root) : store_(store::Paths{root, root + "/run"}) {}

Result<Runtime::Loaded> Runtime::load(const std::string& id) {
  KAPSEL_TRY(store::validate_name(id), "container id");
  if (!store_.exists(id)) return fail(ErrorKind::not_found, "container " + id + " does not exist");
  auto config = store_.load_config(id);
  if (!config) return tl::unexpected(config.error());
  if (!config->bundle)
    return fail(ErrorKind::failure, "container " + id + " was not made from a bundle");
  Loaded c;
  c.config = std::move(*config);
  auto text = fs::read_file(store_.ve_dir(id) + "/" + kSpecCopy);
  if (!text) return tl::unexpected(text.error().context("container " + id));
  auto spec = parse_bundle_config(*text, c.config.bundle->bundle);
  if (!spec) return tl::unexpected(spec.error().context("container " + id));
  c.spec = std::move(*spec);
  auto runtime = store_.load_state(id);
  if (!runtime) return tl::unexpected(runtime.error());
  c.runtime = *runtime;
  ContainerState& s = c.state;
  s.oci_version = c.spec.oci_version;
  s.id = id;
  s.bundle = c.config.bundle->bundle;
  s.annotations = c.spec.annotations;
  s.created = c.config.created;
  if (!c.runtime) {
    s.status = ContainerStatus::creating;
  } else if (running(c.runtime->init)) {
    s.pid = c.runtime->init.pid;
    s.status = fs::exists(c.config.bundle->start_fifo) ? ContainerStatus::created
                                                       : ContainerStatus::running;
    if (s.status == ContainerStatus::running) {
      driver::Context ctx(store_, c.runtime->cgroup_parent);
      if (auto drv = driver::make_driver("container", ctx);
          drv && (*drv)->paused(c.config, *c.runtime))
        s.status = ContainerStatus::paused;
    }
  } else {
    s.status = ContainerStatus::stopped;
  }
  return c;
}

Status Runtime::create(const std::string& id, const CreateRequest& request) {
  KAPSEL_TRY(store::validate_name(id), "container id");
  if (request.preserve_fds < 0)
    return fail(ErrorKind::usage, "--preserve-fds must not be negative");
  // Each must be open: the monitor moves them, and a gap would be filled by one of kapsel's.
  for (int fd = 3; fd < 3 + request.preserve_fds; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0)
      return fail(ErrorKind::usage, "--preserve-fds " + std::to_string(request.preserve_fds) +
                                        ": descriptor " + std::to_string(fd) + " is not open");
  }
  std::string bundle = absolute(request.bundle);
  auto text = fs::read_file(bundle + "/config.json");
  if (!text) return tl::unexpected(text.error().context("reading the bundle's config.json"));
  auto spec = parse_bundle_config(*text, bundle);
  if (!spec) return tl::unexpected(spec.error());
  if (spec->config.bundle->process.terminal && request.console_socket.empty())
    return fail(ErrorKind::usage, "process.terminal is set: --console-socket is required");
  if (!fs::exists(spec->config.bundle->rootfs))
    return fail(ErrorKind::not_found,
                "root.path " + spec->config.bundle->rootfs + " does not exist");
  auto where = cgroup_location(spec->cgroups_path, id);
  if (!where) return tl::unexpected(where.error());

  KAPSEL_TRY(store_.init(), "create");
  auto lock = store_.lock(id);
  if (!lock) return tl::unexpected(lock.error());
  if (store_.exists(id)) return fail(ErrorKind::exists, "container " + id + " already exists");

  store::VeConfig config = spec->config;
  config.name = id;
  config.kind = "container";
  config.template_spec = "oci-bundle:" + bundle;
  config.created = ::time(nullptr);
  store::BundleConfig& b = *config.bundle;
  const std::string dir = store_.ve_dir(id);
  b.start_fifo = dir + "/" + kStartFifo;
  b.console_socket = absolute(request.console_socket);
  if (request.console_socket.empty()) b.console_socket.clear();
  b.no_pivot = request.no_pivot;
  b.preserve_fds = request.preserve_fds;
  if (spec->seccomp_json) config.security.seccomp = dir + "/" + kSeccompFile;

  driver::Context ctx(store_, where->first);
  auto drv = driver::make_driver("container", ctx);
  if (!drv) return tl::unexpected(drv.error());
  KAPSEL_TRY((*drv)->check_limits(config.limits), "linux.resources");
  KAPSEL_TRY(store_.create_ve(config), "create");
  auto undo = [&](const Error& e) -> Status {
    (void)(*drv)->cleanup(config);
    (void)store_.remove_ve(id);
    store_.remove_lock(id, *lock);
    return tl::unexpected(e);
  };
  if (auto st = fs::write_file_atomic(dir + "/" + kSpecCopy, *text, 0600, false); !st)
    return undo(st.error());
  if (spec->seccomp_json) {
    if (auto st = fs::write_file_atomic(dir + "/" + kSeccompFile, *spec->seccomp_json, 0600, false);
        !st)
      return undo(st.error());
  }
  if (::mkfifo(b.start_fifo.c_str(), 0600) != 0)
    return undo(errno_fail("making the start FIFO").value());
  // In a user namespace init is no longer the host's root when it opens the FIFO (through its
  // descriptor, so the state directory stays closed to others): as runc's, writable by anyone.
  if (b.has_namespace("user") && ::chmod(b.start_fifo.c_str(), 0622) != 0)
    return undo(errno_fail("making the start FIFO").value());
  auto started = (*drv)->start(config, *lock);
  if (!started) return undo(started.error().context("creating container " + id));
  if (auto st = write_pid_file(request.pid_file, started->init.pid); !st) {
    (void)::kill(started->init.pid, SIGKILL);
    return undo(st.error());
  }
  // createRuntime (and the deprecated prestart) run in the runtime's namespaces once the
  // container's exist; createContainer in the container's (its program found in the
  // runtime's). A failure stops the container.
  ContainerState s;
  s.oci_version = spec->oci_version;
  s.id = id;
  s.pid = started->init.pid;
  s.bundle = bundle;
  s.annotations = spec->annotations;
  s.created = config.created;
  s.status = ContainerStatus::creating;
  Status hooks = run_hooks(spec->hooks.prestart, s.to_json(), "prestart hook");
  if (hooks) hooks = run_hooks(spec->hooks.create_runtime, s.to_json(), "createRuntime hook");
  if (hooks)
    hooks = run_hooks(spec->hooks.create_container, s.to_json(), "createContainer hook",
                      HookPlace::container_runtime_path, started->init.pid);
  if (!hooks) {
    (void)::kill(started->init.pid, SIGKILL);
    return undo(hooks.error());
  }
  return {};
}

Status Runtime::start(const std::string& id) {
  auto lock = store_.lock(id);
  if (!lock) return tl::unexpected(lock.error());
  auto c = load(id);
  if (!c) return tl::unexpected(c.error());
  if (c->state.status != ContainerStatus::created)
    return fail(ErrorKind::state, "container " + id + " is " +
                                      std::string(to_string(c->state.status)) +
                                      ", not created: cannot start it");
  // startContainer: in the container, before the user's process runs (which is when init
  // reads the FIFO). A failure stops the container, as the spec says.
  if (auto st = run_hooks(c->spec.hooks.start_container, c->state.to_json(), "startContainer hook",
                          HookPlace::container, c->runtime->init.pid);
      !st) {
    (void)::kill(c->runtime->init.pid, SIGKILL);
    return st;
  }
  const std::string& fifo = c->config.bundle->start_fifo;
  UniqueFd fd(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return errno_fail("opening the start FIFO");
  // init is blocked opening the FIFO for writing, or about to: it writes one byte.
  char byte = 0;
  for (int waited = 0;; waited += 100) {
    pollfd p{fd.get(), POLLIN, 0};
    int n = ::poll(&p, 1, 100);
    if (n > 0 && ::read(fd.get(), &byte, 1) == 1) break;
    if (!running(c->runtime->init) || waited > 30000)
      return fail(ErrorKind::failure, "container " + id + " did not start (its init is gone)");
  }
  (void)::unlink(fifo.c_str());
  c->state.status = ContainerStatus::running;
  // The spec: a poststart hook's failure is logged, and the operation goes on.
  if (auto st = run_hooks(c->spec.hooks.poststart, c->state.to_json(), "poststart hook"); !st)
    std::fprintf(stderr, "kapsel-runc: warning: %s\n", st.error().message.c_str());
  return {};
}

Result<ContainerState> Runtime::state(const std::string& id) {
  auto c = load(id);
  if (!c) return tl::unexpected(c.error());
  return c->state;
}

Status Runtime::kill(const std::string& id, int signal, bool all) {
  auto c = load(id);
  if (!c) return tl::unexpected(c.error());
  if (c->state.status == ContainerStatus::stopped || c->state.status == ContainerStatus::creating)
    return fail(ErrorKind::state, "container " + id + " is " +
                                      std::string(to_string(c->state.status)) +
                                      ": cannot send it a signal");
  if (all) {
    driver::Context ctx(store_, c->runtime->cgroup_parent);
    auto cg = ctx.cgroups();
    if (!cg) return tl::unexpected(cg.error());
    auto pids = (*cg)->pids(id);
    if (!pids) return tl::unexpected(pids.error());
    for (pid_t pid : *pids) (void)::kill(pid, signal);
    return {};
  }
  auto fd = proc::open_pidfd(c->runtime->init);
  if (!fd) return fail(ErrorKind::state, "container " + id + " is not running");
  return with_context(proc::signal_pidfd(fd->get(), signal), "container " + id);
}

Status Runtime::destroy(Loaded& c) {
  const std::string& id = c.state.id;
  driver::Context ctx(store_, c.runtime ? c.runtime->cgroup_parent : std::string("kapsel-runc"));
  if (c.runtime && c.state.status == ContainerStatus::paused) {
    // A frozen process dies of SIGKILL only once thawed.
    if (auto drv = driver::make_driver("container", ctx))
      (void)(*drv)->resume(c.config, *c.runtime);
  }
  if (c.runtime) {
    if (auto fd = proc::open_pidfd(c.runtime->init)) {
      (void)proc::signal_pidfd(fd->get(), SIGKILL);
      // Killing a pid namespace's init kills the whole namespace; a container that shares the
      // host's goes through its cgroups instead.
      (void)proc::wait_pidfd(fd->get(), 10000);
    }
    if (auto cg = ctx.cgroups()) (void)(*cg)->kill_all(id, 5000);
  }
  auto drv = driver::make_driver("container", ctx);
  if (!drv) return tl::unexpected(drv.error());
  KAPSEL_TRY((*drv)->cleanup(c.config), "deleting container " + id);
  c.state.status = ContainerStatus::stopped;
  c.state.pid = 0;
  Status hooks = run_hooks(c.spec.hooks.poststop, c.state.to_json(), "poststop hook");
  KAPSEL_TRY(store_.remove_ve(id), "deleting container " + id);
  if (!hooks) std::fprintf(stderr, "kapsel-runc: warning: %s\n", hooks.error().message.c_str());
  return {};
}

Status Runtime::pause(const std::string& id) {
  auto lock = store_.lock(id);
  if (!lock) return tl::unexpected(lock.error());
  auto c = load(id);
  if (!c) return tl::unexpected(c.error());
  if (c->state.status != ContainerStatus::running)
    return fail(ErrorKind::state, "container " + id + " is " +
                                      std::string(to_string(c->state.status)) +
                                      ", not running: cannot pause it");
  driver::Context ctx(store_, c->runtime->cgroup_parent);
  auto drv = driver::make_driver("container", ctx);
  if (!drv) return tl::unexpected(drv.error());
  return with_context((*drv)->pause(c->config, *c->runtime), "pausing container " + id);
}

Status Runtime::resume(const std::string& id) {
  auto lock = store_.lock(id);
  if (!lock) return tl::unexpected(lock.error());
  auto c = load(id);
  if (!c) return tl::unexpected(c.error());
  if (c->state.status != ContainerStatus::paused)
    return fail(ErrorKind::state, "container " + id + " is " +
                                      std::string(to_string(c->state.status)) +
                                      ", not paused: cannot resume it");
  driver::Context ctx(store_, c->runtime->cgroup_parent);
  auto drv = driver::make_driver("container", ctx);
  if (!drv) return tl::unexpected(drv.error());
  return with_context((*drv)->resume(c->config, *c->runtime), "resuming container " + id);
}

Status Runtime::remove(const std::string& id, bool force) {
  KAPSEL_TRY(store::validate_name(id), "container id");
  // Nothing to lock, and nothing to make, for a container that does not exist: runc's delete
  // --force of a missing id (or under a --root that does not exist) succeeds and leaves no trace.
  if (!store_.exists(id)) {
    if (force) return {};
    return fail(ErrorKind::not_found, "container " + id + " does not exist");
  }
  auto lock = store_.lock(id);
  if (!lock) return tl::unexpected(lock.error());
  auto c = load(id);
  if (!c) {
    if (force && c.error().kind == ErrorKind::not_found) {
      store_.remove_lock(id, *lock);
      return {};
    }
    return tl::unexpected(c.error());
  }
  if ((c->state.status == ContainerStatus::running || c->state.status == ContainerStatus::paused) &&
      !force)
    return fail(ErrorKind::state,
                "container " + id + " is running: stop it first, or use delete --force");
  KAPSEL_TRY(destroy(*c), "delete");
  store_.remove_lock(id, *lock);
  return {};
}

Result<int> Runtime::exec(const std::string& id, const ExecProcess& request) {
  auto c = load(id);
  if (!c) return tl::unexpected(c.error());
  if (c->state.status != ContainerStatus::running && c->state.status != ContainerStatus::created)
    return fail(ErrorKind::state, "container " + id + " is " +
                                      std::string(to_string(c->state.status)) +
                                      ": cannot exec in it");
  if (request.process.terminal && request.detach && request.console_socket.empty())
    return fail(ErrorKind::usage, "--tty with --detach needs --console-socket");
  driver::Context ctx(store_, c->runtime->cgroup_parent);
  auto drv = driver::make_driver("container", ctx);
  if (!drv) return tl::unexpected(drv.error());
  driver::ExecRequest r;
  r.argv = request.process.args;
  r.env = request.process.env;
  r.whole_env = true;
  r.cwd = request.process.cwd;
  r.tty = request.process.terminal;
  r.uid = request.process.uid;
  r.gid = request.process.gid;
  r.groups = request.process.additional_gids;
  r.detach = request.detach;
  Status pid_written;
  r.started = [&](pid_t pid) { pid_written = write_pid_file(request.pid_file, pid); };
  if (r.tty && !request.console_socket.empty()) {
    std::string socket = absolute(request.console_socket);
    r.pty_master = [socket](int master) {
      char name[64] = "/dev/pts/ptmx";
      return driver::container::send_pty_master(socket, master, name);
    };
  }
  // The process to exec goes to the driver as the bundle's (config.bundle->process: its rlimits
  // and noNewPrivileges), with its own capabilities if the process file gives them.
  store::VeConfig config = c->config;
  store::BundleProcess& run = config.bundle->process;
  std::vector<store::BundleRlimit> rlimits = std::move(run.rlimits);
  bool no_new_privs = run.no_new_privileges;
  run = request.process;
  if (!request.from_file) {
    run.rlimits = std::move(rlimits);
    run.no_new_privileges = no_new_privs;
  }
  if (request.no_new_privs) run.no_new_privileges = true;
  if (request.capabilities) config.security.capabilities = request.capabilities;
  auto code = (*drv)->exec(config, *c->runtime, r);
  if (!code) return code;
  if (!pid_written) return tl::unexpected(pid_written.error());
  return code;
}

Result<std::vector<pid_t>> Runtime::pids(const std::string& id) {
  auto c = load(id);
  if (!c) return tl::unexpected(c.error());
  if (!c->runtime) return std::vector<pid_t>{};
  driver::Context ctx(store_, c->runtime->cgroup_parent);
  auto cg = ctx.cgroups();
  if (!cg) return tl::unexpected(cg.error());
  return (*cg)->pids(id);
}

Result<std::vector<ContainerState>> Runtime::list() {
  std::vector<ContainerState> out;
  if (!fs::exists(store_.paths().root + "/ves")) return out;
  auto names = store_.list();
  if (!names) return tl::unexpected(names.error());
  for (const auto& n : *names) {
    if (auto c = load(n)) out.push_back(c->state);
  }
  return out;
}

}  // namespace kapsel::oci
