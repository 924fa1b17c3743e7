#include "ve/lifecycle.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "common/trace.hpp"
#include "net/ve_network.hpp"
#include "security/userns.hpp"

namespace kapsel::ve {

using nlohmann::json;

void to_json(json& j, const VeInfo& info) {
  j = json{{"name", info.config.name},
           {"kind", info.config.kind},
           {"state", info.state},
           {"template", info.config.template_spec},
           {"hostname", info.config.hostname},
           {"created", info.config.created}};
  if (info.runtime) {
    j["init_pid"] = info.runtime->init.pid;
    j["monitor_pid"] = info.runtime->monitor.pid;
    j["started_at"] = info.runtime->started_at;
  }
  if (info.processes) j["processes"] = *info.processes;
  if (!info.config.limits.empty()) j["limits"] = info.config.limits;
  j["security"] = info.config.security;
  j["network"] = info.config.network;
  if (info.config.disk_bytes != 0) j["disk_bytes"] = info.config.disk_bytes;
  if (info.oom_kills) j["oom_kills"] = *info.oom_kills;
  j["oom_kills_total"] = info.oom_events.size();
  if (!info.oom_events.empty()) j["last_oom"] = info.oom_events.back();
  if (info.last_exit) j["last_exit"] = *info.last_exit;
  for (const auto& [key, value] : info.details) j["details"][key] = value;
}

Status validate_hostname(std::string_view hostname) {
  auto bad = [&](std::string_view why) {
    return fail(ErrorKind::usage, "invalid hostname '" + std::string(hostname) +
                                      "': " + std::string(why) +
                                      " (use letters, digits, '-' and '.', at most 64 bytes)");
  };
  if (hostname.empty()) return bad("it is empty");
  if (hostname.size() > 64) return bad("it is longer than 64 bytes");
  size_t label = 0;
  for (size_t i = 0; i < hostname.size(); ++i) {
    char c = hostname[i];
    if (c == '.') {
      if (label == 0) return bad("it has an empty label");
      label = 0;
      continue;
    }
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return bad(std::string("it contains '") + c + "'");
    if (c == '-' && (label == 0 || i + 1 == hostname.size() || hostname[i + 1] == '.'))
      return bad("a label starts or ends with '-'");
    ++label;
  }
  if (label == 0) return bad("it ends with '.'");
  return {};
}

Lifecycle::Lifecycle(store::Store& store, std::string cgroup_parent)
    : store_(store), ctx_(store, std::move(cgroup_parent)) {}

Result<Lifecycle::LockedVe> Lifecycle::lock_existing(const std::string& name) {
  if (auto c = store_.load_config(name); !c) return tl::unexpected(c.error());
  auto lock = store_.lock(name);
  if (!lock) return tl::unexpected(lock.error());
  auto config = store_.load_config(name);
  if (!config) {
    // Destroyed while we waited: the lock file we took anew must not outlive us.
    if (config.error().kind == ErrorKind::not_found) store_.remove_lock(name, *lock);
    return tl::unexpected(config.error());
  }
  return LockedVe{std::move(*lock), std::move(*config)};
}

Result<Lifecycle::RunningVe> Lifecycle::lock_running(const std::string& name,
                                                     const std::string& what) {
  auto ve = lock_existing(name);
  if (!ve) return tl::unexpected(ve.error());
  auto running = reconcile(ve->config);
  if (!running) return tl::unexpected(running.error());
  if (*running && (*running)->phase == store::Phase::stopping)
    return fail(ErrorKind::state, what + " is stopping");
  if (!*running || (*running)->phase != store::Phase::running)
    return fail(ErrorKind::state,
                what + " is not running (start it with `kapsel start " + name + "`)");
  auto drv = driver_for(ve->config);
  if (!drv) return tl::unexpected(drv.error());
  return RunningVe{std::move(*ve), **running, std::move(*drv)};
}

// The refusal to start a VE that has a live monitor, in the words of its phase.
static tl::unexpected<Error> already_up(const std::string& name, store::Phase phase) {
  if (phase == store::Phase::stopping) {
    return fail(ErrorKind::state,
                "VE " + name + " is still stopping; start it once it has stopped");
  }
  return fail(ErrorKind::state,
              "VE " + name + " is already " + std::string(store::to_string(phase)));
}

Result<std::unique_ptr<driver::Driver>> Lifecycle::driver_for(const store::VeConfig& c) {
  return driver::make_driver(c.kind, ctx_);
}

Result<std::optional<store::RuntimeState>> Lifecycle::reconcile(const store::VeConfig& c) {
  auto state = store_.load_state(c.name);
  if (!state) return tl::unexpected(state.error());
  if (*state && (*state)->monitor.alive()) return *state;
  if (!*state && !fs::exists(store_.ve_run_dir(c.name))) return std::nullopt;
  // The monitor is gone without cleaning up (it was killed, or crashed): its VE died with it
  // (init has PDEATHSIG), so only leftovers remain.
  auto drv = driver_for(c);
  if (!drv) return tl::unexpected(drv.error());
  KAPSEL_TRY((*drv)->cleanup(c), "cleaning up after the lost monitor of VE " + c.name);
  if (*state) {
    auto last = store_.load_exit(c.name);
    bool recorded =
        last && *last && (**last).at >= (*state)->started_at && (*state)->started_at != 0;
    if (!recorded) {
      store::ExitRecord rec{"monitor-lost", -1, 0, ::time(nullptr),
                            "the monitor (pid " + std::to_string((*state)->monitor.pid) +
                                ") died; the VE was stopped and cleaned up"};
      (void)store_.save_exit(c.name, rec);
    }
  }
  return std::nullopt;
}

Result<store::VeConfig> Lifecycle::create(const CreateOptions& options,
                                          const image::ProgressFn& progress) {
  auto ve = create_locked(options, progress);
  if (!ve) return tl::unexpected(ve.error());
  return std::move(ve->config);
}

Result<Lifecycle::LockedVe> Lifecycle::create_locked(const CreateOptions& options,
                                                     const image::ProgressFn& progress) {
  KAPSEL_TRY(store::validate_name(options.name), "create");
  std::string hostname = options.hostname.empty() ? options.name : options.hostname;
  KAPSEL_TRY(validate_hostname(hostname), "create");
  auto spec = image::parse_spec(options.template_spec);
  if (!spec) return tl::unexpected(spec.error());
  KAPSEL_TRY(store_.init(), "create");
  store_.sweep_leftovers();
  auto lock = store_.lock(options.name);
  if (!lock) return tl::unexpected(lock.error());
  if (store_.exists(options.name))
    return fail(ErrorKind::exists, "a VE named '" + options.name + "' already exists");

  // The template and the VE's files, once the config is complete.
  auto make_ve = [&](const store::VeConfig& config,
                     driver::Driver& drv) -> Result<store::VeConfig> {
    store::VeConfig made = config;
    auto tmpl = ctx_.templates().ensure(*spec, progress);
    if (!tmpl) return tl::unexpected(tmpl.error().context("template " + spec->to_string()));
    made.template_spec = spec->to_string();
    made.template_id = tmpl->id;
    ctx_.remember_template(*tmpl);

    if (auto st = store_.create_ve(made); !st) return tl::unexpected(st.error());
    ctx_.set_progress(progress);
    auto created = drv.create(made);
    ctx_.set_progress({});
    if (auto st = created; !st) {
      (void)store_.remove_ve(made.name);
      return tl::unexpected(st.error().context("creating VE " + made.name));
    }
    return made;
  };
  auto build = [&]() -> Result<store::VeConfig> {
    store::VeConfig config;
    config.name = options.name;
    config.kind = options.kind;
    config.hostname = hostname;
    config.ephemeral = options.ephemeral;
    config.created = ::time(nullptr);
    config.limits = options.limits;
    config.security = options.security;
    config.disk_bytes = options.disk_bytes;
    if (config.disk_bytes != 0 && config.kind != "uml")
      return fail(ErrorKind::usage,
                  "--disk is for UML VEs (--kind uml): a " + config.kind +
                      " VE's files live in its private area on the host's file system");
    auto drv = driver_for(config);
    if (!drv) return tl::unexpected(drv.error());
    KAPSEL_TRY((*drv)->check_limits(config.limits), "create");
    // Before the template, which may take a while to build: a range that is not free is a
    // mistake in the command line.
    KAPSEL_TRY(allocate_ids(config), "create");
    auto release_ids = [&] {
      if (config.security.userns && !config.security.userns->rootless)
        (void)userns_ranges().release(config.name);
    };
    // Leased last of the checks, and given back if anything after it fails.
    net::NetworkStore networks(store_.paths().root);
    auto network = net::assign_network(
        networks, config.name, options.network_mode, options.ip, options.publish,
        options.publish.empty() ? std::vector<std::string>{} : published_by_other_ves());
    if (!network) {
      release_ids();
      return tl::unexpected(network.error().context("create"));
    }
    config.network = *network;
    auto made = make_ve(config, **drv);
    if (!made) {
      (void)net::release_network(networks, config.name, config.network);
      release_ids();
    }
    return made;
  };
  auto config = build();
  // A failed create leaves nothing under the name, not even its lock file.
  if (!config) {
    store_.remove_lock(options.name, *lock);
    return tl::unexpected(config.error());
  }
  return LockedVe{std::move(*lock), std::move(*config)};
}

Status Lifecycle::start(const std::string& name) {
  auto ve = lock_existing(name);
  if (!ve) return tl::unexpected(ve.error());
  auto state = start_locked(*ve);
  if (!state) return tl::unexpected(state.error());
  return {};
}

Result<store::RuntimeState> Lifecycle::start_locked(const LockedVe& ve) {
  auto running = reconcile(ve.config);
  if (!running) return tl::unexpected(running.error());
  if (*running) return already_up(ve.config.name, (*running)->phase);
  auto drv = driver_for(ve.config);
  if (!drv) return tl::unexpected(drv.error());
  return (*drv)->start(ve.config, ve.lock);
}

Status Lifecycle::stop_locked(const store::VeConfig& config, const driver::StopOptions& options) {
  auto running = reconcile(config);
  if (!running) return tl::unexpected(running.error());
  if (!*running) return fail(ErrorKind::state, "VE " + config.name + " is not running");
  auto drv = driver_for(config);
  if (!drv) return tl::unexpected(drv.error());
  // A frozen init cannot act on its halt signal, and a frozen task is not killed until it
  // thaws (v1 freezer): a paused VE is let go first, then stopped as any other.
  if ((*drv)->paused(config, **running))
    KAPSEL_TRY((*drv)->resume(config, **running), "stopping paused VE " + config.name);
  return with_context((*drv)->stop(config, **running, options), "stopping VE " + config.name);
}

Status Lifecycle::set_paused(const std::string& name, bool paused) {
  const std::string what = (paused ? "pausing VE " : "resuming VE ") + name;
  auto r = lock_running(name, what + ": VE " + name);
  if (!r) return tl::unexpected(r.error());
  const auto& config = r->ve.config;
  if (r->driver->paused(config, r->state) == paused)
    return fail(ErrorKind::state,
                what + (paused ? ": it is already paused" : ": it is not paused"));
  auto st = paused ? r->driver->pause(config, r->state) : r->driver->resume(config, r->state);
  return with_context(st, what);
}

Status Lifecycle::pause(const std::string& name) {
  return set_paused(name, true);
}

Status Lifecycle::resume(const std::string& name) {
  return set_paused(name, false);
}

Status Lifecycle::stop(const std::string& name, const driver::StopOptions& options) {
  auto ve = lock_existing(name);
  if (!ve) return tl::unexpected(ve.error());
  return stop_locked(ve->config, options);
}

Status Lifecycle::restart(const std::string& name, const driver::StopOptions& options) {
  {
    auto ve = lock_existing(name);
    if (!ve) return tl::unexpected(ve.error());
    auto running = reconcile(ve->config);
    if (!running) return tl::unexpected(running.error());
    // Restarting a stopped VE just starts it, as vzctl and lxc do.
    if (*running) KAPSEL_TRY(stop_locked(ve->config, options), "restarting VE " + name);
  }
  return start(name);
}

Result<int> Lifecycle::exec(const std::string& name, const driver::ExecRequest& request) {
  auto r = lock_running(name, "VE " + name);
  if (!r) return tl::unexpected(r.error());
  // The lock is held only to find the VE running; a long command must not block `stop`.
  r->ve.lock = {};
  // The command would join the frozen VE and hang until someone resumes it.
  if (r->driver->paused(r->ve.config, r->state))
    return fail(ErrorKind::state,
                "VE " + name + " is paused (resume it with `kapsel resume " + name + "`)");
  return r->driver->exec(r->ve.config, r->state, request);
}

Status Lifecycle::console(const std::string& name) {
  auto r = lock_running(name, "VE " + name);
  if (!r) return tl::unexpected(r.error());
  // As exec: an attached console must not block stop.
  r->ve.lock = {};
  return r->driver->console(r->ve.config, r->state);
}

Result<std::string> Lifecycle::attach_disk(const std::string& name, const std::string& path,
                                           bool read_only) {
  auto r = lock_running(name, "disk: VE " + name);
  if (!r) return tl::unexpected(r.error());
  return r->driver->attach_disk(r->ve.config, r->state, path, read_only);
}

Status Lifecycle::detach_disk(const std::string& name, const std::string& device) {
  auto r = lock_running(name, "disk: VE " + name);
  if (!r) return tl::unexpected(r.error());
  return r->driver->detach_disk(r->ve.config, r->state, device);
}

Status Lifecycle::destroy(const std::string& name, bool force) {
  auto ve = lock_existing(name);
  if (!ve) return tl::unexpected(ve.error());
  const store::VeConfig& config = ve->config;
  auto running = reconcile(config);
  if (!running) return tl::unexpected(running.error());
  auto drv = driver_for(config);
  if (!drv) return tl::unexpected(drv.error());
  // A rootless VE's private area also holds files of the user's subordinate ids (written by
  // the VE's other users), which only the root of a namespace mapping them may remove.
  auto remove_files = [&]() -> Status {
    if (config.security.userns && config.security.userns->rootless) {
      if (auto st = security::remove_as_namespace_root(store_.ve_dir(name) + "/private",
                                                       *config.security.userns);
          !st)
        return st;
    }
    return store_.remove_ve(name);
  };
  if (*running) {
    if (!force)
      return fail(ErrorKind::state,
                  "VE " + name + " is running: stop it first, or destroy it with --force");
    // stop returns only once nothing of the VE is left running or mounted. The VE's files are
    // removed as soon as its processes are gone, while its monitor removes the cgroups: on a
    // journalling file system each directory freed costs a fraction of a millisecond.
    std::optional<Status> removed;
    driver::StopOptions kill{.timeout_seconds = 0, .kill = true, .once_down = {}};
    kill.once_down = [&] { removed = remove_files(); };
    KAPSEL_TRY((*drv)->stop(config, **running, kill), "destroying VE " + name);
    if (removed && !*removed)
      return tl::unexpected(removed->error().context("destroying VE " + name));
    if (!removed) KAPSEL_TRY(remove_files(), "destroying VE " + name);
  } else {
    KAPSEL_TRY((*drv)->cleanup(config), "destroying VE " + name);
    KAPSEL_TRY(remove_files(), "destroying VE " + name);
  }
  if (config.security.userns && !config.security.userns->rootless)
    KAPSEL_TRY(userns_ranges().release(name), "destroying VE " + name);
  // The address is the VE's until it is destroyed, so that it is the same at every start.
  net::NetworkStore networks(store_.paths().root);
  KAPSEL_TRY(net::release_network(networks, name, config.network), "destroying VE " + name);
  store_.remove_lock(name, ve->lock);
  return {};
}

security::RangeTable Lifecycle::userns_ranges() const {
  return security::RangeTable(store_.paths().root + "/userns");
}

Status Lifecycle::allocate_ids(store::VeConfig& config) {
  auto& userns = config.security.userns;
  if (::geteuid() != 0 && config.kind == "container") {
    // Rootless: always a user namespace, of the user's own ids (see store::UsernsConfig).
    if (userns && userns->host_uid != 0)
      return fail(ErrorKind::usage,
                  "--userns-range needs root: a rootless VE's ids are your own "
                  "and your /etc/subuid range");
    userns = store::UsernsConfig{static_cast<std::uint32_t>(::getuid()),
                                 static_cast<std::uint32_t>(::getgid()), 0, true};
    return {};
  }
  if (!userns) return {};
  if (config.kind != "container")
    return fail(ErrorKind::usage, "--userns is for container VEs; a " + config.kind +
                                      " VE's root is already confined to its guest kernel");
  std::optional<security::IdRange> wanted;
  if (userns->host_uid != 0) wanted = security::IdRange{userns->host_uid, userns->size};
  auto range = userns_ranges().allocate(config.name, wanted, security::host_subordinate_ranges());
  if (!range) return tl::unexpected(range.error());
  *userns = store::UsernsConfig{range->base, range->base, range->size};
  return {};
}

Result<VeInfo> Lifecycle::status(const std::string& name, bool details) {
  auto config = store_.load_config(name);
  if (!config) return tl::unexpected(config.error());
  VeInfo info;
  info.config = *config;
  // Reconcile only if no other command is working on the VE; otherwise report what its state
  // file says (a start or stop in progress).
  std::optional<store::RuntimeState> runtime;
  if (auto lock = store_.lock(name, /*wait=*/false)) {
    // Destroyed since its config was read: gone, and so is the lock file just made for it.
    if (!store_.exists(name)) {
      store_.remove_lock(name, *lock);
      return fail(ErrorKind::not_found, "no VE named '" + name + "'");
    }
    auto r = reconcile(*config);
    if (!r) return tl::unexpected(r.error());
    runtime = *r;
  } else {
    auto s = store_.load_state(name);
    if (s && *s && (*s)->monitor.alive()) {
      runtime = *s;
    } else if (s && !*s && fs::exists(store_.ve_run_dir(name))) {
      // Another command holds the lock and the runtime directory is there, but no state yet:
      // a start whose monitor has not recorded itself (it does so once init is cloned).
      info.state = std::string(store::to_string(store::Phase::starting));
    }
  }
  if (runtime) {
    // A monitor whose init has gone is tearing the VE down (or rebooting it): not running.
    if (runtime->phase == store::Phase::running && !runtime->init.alive())
      runtime->phase = store::Phase::stopping;
    info.runtime = runtime;
    info.state = std::string(store::to_string(runtime->phase));
    if (auto drv = driver_for(*config)) {
      if (runtime->phase == store::Phase::running && (*drv)->paused(*config, *runtime))
        info.state = "paused";
      if (auto n = (*drv)->process_count(*config, *runtime)) info.processes = *n;
      if (auto u = (*drv)->usage(*config, *runtime)) info.oom_kills = u->cgroup.oom_kills;
      if (details && runtime->phase == store::Phase::running) {
        if (auto d = (*drv)->details(*config, *runtime)) info.details = std::move(*d);
      }
    }
  }
  if (auto last = store_.load_exit(name); last && *last) info.last_exit = **last;
  if (auto events = store_.load_oom_events(name)) info.oom_events = std::move(*events);
  return info;
}

Result<cgroup::Limits> Lifecycle::set(const std::string& name, const cgroup::Limits& change) {
  if (change.empty())
    return fail(ErrorKind::usage, "set: nothing to change (see 'kapsel set --help')");
  auto ve = lock_existing(name);
  if (!ve) return tl::unexpected(ve.error());
  auto drv = driver_for(ve->config);
  if (!drv) return tl::unexpected(drv.error());
  KAPSEL_TRY((*drv)->check_limits(change), "set");
  auto running = reconcile(ve->config);
  if (!running) return tl::unexpected(running.error());
  store::VeConfig updated = ve->config;
  updated.limits = cgroup::merge(ve->config.limits, change);
  if (*running) {
    KAPSEL_TRY((*drv)->apply_limits(ve->config, **running, change), "set");
  }
  if (auto st = store_.save_config(updated); !st) {
    // The running VE has the new limits but its config would not say so: put the old ones
    // back, so that what runs and what is stored agree.
    if (*running) (void)(*drv)->apply_limits(ve->config, **running, ve->config.limits);
    return tl::unexpected(st.error().context("set: saving the config of VE " + name));
  }
  return updated.limits;
}

Result<VeUsage> Lifecycle::usage(const std::string& name) {
  auto config = store_.load_config(name);
  if (!config) return tl::unexpected(config.error());
  // Read-only and often repeated (top): no lock, the state file says where the VE runs.
  auto state = store_.load_state(name);
  if (!state) return tl::unexpected(state.error());
  if (!*state || !(*state)->monitor.alive() || !(*state)->init.alive())
    return fail(ErrorKind::state, "VE " + name + " is not running");
  auto drv = driver_for(*config);
  if (!drv) return tl::unexpected(drv.error());
  auto u = (*drv)->usage(*config, **state);
  if (!u) return tl::unexpected(u.error());
  struct timespec now {};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return VeUsage{name, std::move(*u), now.tv_sec * 1000000000LL + now.tv_nsec};
}

Result<std::vector<VeUsage>> Lifecycle::usage_all() {
  auto names = store_.list();
  if (!names) return tl::unexpected(names.error());
  std::vector<VeUsage> out;
  for (const auto& name : *names) {
    auto u = usage(name);
    if (u) {
      out.push_back(std::move(*u));
    } else if (u.error().kind != ErrorKind::state && u.error().kind != ErrorKind::not_found) {
      return tl::unexpected(u.error());
    }
  }
  return out;
}

Result<std::vector<VeInfo>> Lifecycle::list() {
  auto names = store_.list();
  if (!names) return tl::unexpected(names.error());
  std::vector<VeInfo> out;
  for (const auto& name : *names) {
    auto info = status(name, /*details=*/false);
    // A VE destroyed while we were listing is simply no longer there.
    if (!info && info.error().kind == ErrorKind::not_found) continue;
    if (!info) return tl::unexpected(info.error());
    out.push_back(std::move(*info));
  }
  return out;
}

std::vector<std::string> Lifecycle::published_by_other_ves() const {
  std::vector<std::string> published;
  auto names = store_.list();
  if (!names) return published;
  for (const auto& name : *names) {
    auto config = store_.load_config(name);
    if (!config) continue;
    published.insert(published.end(), config->network.publish.begin(),
                     config->network.publish.end());
  }
  return published;
}

Status Lifecycle::gc() {
  // Listing reconciles every VE that no other command holds: a dead monitor's leftovers go.
  auto infos = list();
  if (!infos) return tl::unexpected(infos.error().context("gc"));
  net::NetworkStore networks(store_.paths().root);
  auto all = networks.list();
  if (!all) return tl::unexpected(all.error().context("gc"));
  for (const auto& network : *all) {
    for (const auto& [ve, address] : network.leases) {
      // A VE being created holds its lease before its config exists, and its lock throughout.
      auto lock = store_.lock(ve, /*wait=*/false);
      if (!lock || store_.exists(ve)) continue;
      KAPSEL_TRY(networks.release(network.name, ve), "gc");
      store_.remove_lock(ve, *lock);
    }
  }
  return {};
}

static std::string generated_name() {
  unsigned char bytes[4] = {};
  if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) {
    auto t = static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(::time(nullptr));
    std::memcpy(bytes, &t, sizeof bytes);
  }
  char name[32];
  std::snprintf(name, sizeof name, "run-%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return name;
}

Result<int> Lifecycle::run(CreateOptions options, const driver::ExecRequest& request, bool remove,
                           std::string* name_out) {
  if (options.name.empty()) options.name = generated_name();
  options.ephemeral = remove;
  if (name_out) *name_out = options.name;
  trace::point("run: creating");
  auto created = create_locked(options, {});
  if (!created) return tl::unexpected(created.error());
  trace::point("run: starting");
  const store::VeConfig config = created->config;
  auto drv = driver_for(config);
  // The new VE stays locked from create to running, so no other command sees it half made;
  // then the lock goes, so that a long command does not block `stop`.
  auto code = drv ? (*drv)->start_and_exec(config, created->lock, request,
                                           [&] {
                                             trace::point("run: exec");
                                             created->lock = {};
                                           })
                  : Result<int>(tl::unexpected(drv.error()));
  created->lock = {};
  trace::point("run: destroying");
  auto finish = [&]() -> Status {
    // The workload has ended, so there is nothing for init to shut down gracefully.
    if (remove) return destroy(options.name, /*force=*/true);
    auto st = stop(options.name, {.timeout_seconds = 0, .kill = true, .once_down = {}});
    if (!st && st.error().kind == ErrorKind::state) return {};  // already stopped
    return st;
  };
  auto st = finish();
  trace::point("run: done");
  if (!code) return code;
  if (!st) return tl::unexpected(st.error());
  return code;
}

}  // namespace kapsel::ve
