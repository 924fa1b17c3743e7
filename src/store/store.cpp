#include "store/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/fs.hpp"

namespace kapsel::store {

using nlohmann::json;

Paths Paths::resolve(const std::string& root_flag, const std::string& run_flag) {
  Paths p = ::geteuid() == 0 ? Paths{} : rootless_defaults();
  if (!root_flag.empty()) {
    p.root = root_flag;
  } else if (const char* env = std::getenv("KAPSEL_ROOT"); env && *env) {
    p.root = env;
  }
  if (!run_flag.empty()) {
    p.run_dir = run_flag;
  } else if (const char* env = std::getenv("KAPSEL_RUN_DIR"); env && *env) {
    p.run_dir = env;
  }
  return p;
}

Paths Paths::rootless_defaults() {
  // The XDG base directories (XDG Base Directory Specification), as podman's rootless mode uses
  // them: data under $XDG_DATA_HOME, runtime state under $XDG_RUNTIME_DIR.
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v && *v == '/' ? v : "";
  };
  Paths p;
  std::string data = env("XDG_DATA_HOME");
  if (data.empty()) data = env("HOME").empty() ? "" : env("HOME") + "/.local/share";
  if (data.empty()) data = "/tmp/kapsel-" + std::to_string(::geteuid()) + "/data";
  p.root = data + "/kapsel";
  std::string runtime = env("XDG_RUNTIME_DIR");
  p.run_dir = runtime.empty() ? "/tmp/kapsel-" + std::to_string(::geteuid()) : runtime + "/kapsel";
  return p;
}

Status validate_name(std::string_view name) {
  auto invalid = [&](std::string_view why) {
    std::string shown;
    for (char c : name.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    return fail(ErrorKind::usage, "invalid VE name '" + shown + "': " + std::string(why) +
                                      " (use 1-64 letters, digits, '-', '_' or '.', starting "
                                      "with a letter or digit)");
  };
  if (name.empty()) return invalid("it is empty");
  if (name.size() > 64) return invalid("it is longer than 64 bytes");
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return invalid("it contains a control character");
    if (c == '/') return invalid("it contains '/'");
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return invalid(std::string("it contains '") + c + "'");
  }
  auto first = name.front();
  if (first == '.' || first == '-' || first == '_')
    return invalid("it must start with a letter or digit");
  return {};
}

Store::Store(Paths paths) : paths_(std::move(paths)) {}

std::string Store::ve_dir(const std::string& name) const {
  return paths_.root + "/ves/" + name;
}
std::string Store::ve_run_dir(const std::string& name) const {
  return paths_.run_dir + "/ves/" + name;
}
std::string Store::templates_dir() const {
  return paths_.root + "/templates";
}

Status Store::init() const {
  for (const auto& dir : {paths_.root + "/ves", templates_dir(), paths_.run_dir + "/ves",
                          paths_.run_dir + "/locks"}) {
    KAPSEL_TRY(fs::make_dirs(dir, 0700), "initialising the store");
  }
  return {};
}

static std::string lock_path(const Paths& paths, const std::string& name) {
  return paths.run_dir + "/locks/" + name + ".lock";
}

Result<VeLock> Store::lock(const std::string& name, bool wait) const {
  KAPSEL_TRY(validate_name(name), "locking VE");
  std::string path = lock_path(paths_, name);
  for (;;) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd && errno == ENOENT) {
      KAPSEL_TRY(init(), "locking VE " + name);
      fd.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    }
    if (!fd) return errno_fail("locking VE " + name);
    int op = LOCK_EX | (wait ? 0 : LOCK_NB);
    while (::flock(fd.get(), op) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK)
        return fail(ErrorKind::state, "VE " + name + " is busy: another kapsel command holds it");
      return errno_fail("locking VE " + name);
    }
    // The holder before us may have deleted the file (remove_lock); a lock on a deleted file
    // excludes nobody who opens the name anew, so take the lock again on the current file.
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_fail("locking VE " + name);
    if (st.st_nlink > 0) return VeLock(std::move(fd));
  }
}

void Store::remove_lock(const std::string& name, const VeLock& lock) const {
  if (!lock.held() || !validate_name(name)) return;
  (void)::unlink(lock_path(paths_, name).c_str());
}

bool Store::exists(const std::string& name) const {
  return fs::exists(ve_dir(name) + "/config.json");
}

Result<VeConfig> Store::load_config(const std::string& name) const {
  KAPSEL_TRY(validate_name(name), "loading VE");
  auto text = fs::read_file(ve_dir(name) + "/config.json");
  if (!text) {
    if (text.error().code == ENOENT)
      return fail(ErrorKind::not_found,
                  "no VE named '" + name + "' (see `kapsel list`, or create it)");
    return tl::unexpected(text.error().context("loading VE " + name));
  }
  return with_context(parse_config(*text), "loading VE " + name);
}

Status Store::save_config(const VeConfig& config) const {
  json j = config;
  return with_context(fs::write_file_atomic(ve_dir(config.name) + "/config.json", j.dump(2) + "\n",
                                            0600, !config.ephemeral),
                      "saving VE " + config.name);
}

Status Store::create_ve(const VeConfig& config) const {
  // The caller (Lifecycle::create) has run init() and holds the VE's lock.
  std::string final_dir = ve_dir(config.name);
  if (fs::exists(final_dir))
    return fail(ErrorKind::exists, "a VE named '" + config.name + "' already exists");
  std::string tmp = paths_.root + "/ves/.new-" + config.name + "-" + std::to_string(::getpid());
  auto build = [&]() -> Status {
    if (config.ephemeral) {
      // Its writable layer is a tmpfs in its own mount namespace (see the container driver).
      KAPSEL_TRY(fs::make_dirs(tmp, 0700), "making the VE's directory");
    } else {
      KAPSEL_TRY(fs::make_dirs(tmp + "/private/upper", 0755), "making private area");
      KAPSEL_TRY(fs::make_dirs(tmp + "/private/work", 0700), "making private area");
    }
    json j = config;
    KAPSEL_TRY(
        fs::write_file_atomic(tmp + "/config.json", j.dump(2) + "\n", 0600, !config.ephemeral),
        "writing config");
    // rename(2) of a directory onto an existing non-empty one fails, which is what makes two
    // concurrent creates of one name safe even without the lock.
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
      if (errno == EEXIST || errno == ENOTEMPTY)
        return fail(ErrorKind::exists, "a VE named '" + config.name + "' already exists");
      return errno_fail("moving the new VE into place");
    }
    return {};
  };
  auto st = build();
  if (!st) {
    (void)fs::remove_tree(tmp);
    if (st.error().kind == ErrorKind::exists) return st;
    return tl::unexpected(st.error().context("creating VE " + config.name));
  }
  return {};
}

Status Store::remove_ve(const std::string& name) const {
  std::string dir = ve_dir(name);
  if (!fs::exists(dir)) return {};
  // Rename first so that a destroy killed half-way leaves no half VE behind under its name;
  // sweep_leftovers() finishes the job.
  std::string trash = paths_.root + "/ves/.trash-" + name + "-" + std::to_string(::getpid());
  if (::rename(dir.c_str(), trash.c_str()) != 0) return errno_fail("removing VE " + name);
  return with_context(fs::remove_tree(trash), "removing VE " + name);
}

Result<std::vector<std::string>> Store::list() const {
  std::vector<std::string> names;
  std::string dir = paths_.root + "/ves";
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return names;
    return errno_fail("listing " + dir);
  }
  while (struct dirent* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    if (name.empty() || name[0] == '.') continue;
    if (fs::exists(dir + "/" + name + "/config.json")) names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::optional<RuntimeState>> Store::load_state(const std::string& name) const {
  auto text = fs::read_file(ve_run_dir(name) + "/state.json");
  if (!text) {
    if (text.error().code == ENOENT) return std::optional<RuntimeState>{};
    return tl::unexpected(text.error().context("reading state of VE " + name));
  }
  auto state = parse_state(*text);
  if (!state) return tl::unexpected(state.error().context("reading state of VE " + name));
  return std::optional<RuntimeState>(*state);
}

Status Store::save_state(const std::string& name, const RuntimeState& state) const {
  KAPSEL_TRY(fs::make_dirs(ve_run_dir(name), 0700), "saving state of VE " + name);
  json j = state;
  // Runtime state lives on tmpfs and means nothing after a reboot: no fsync.
  return with_context(
      fs::write_file_atomic(ve_run_dir(name) + "/state.json", j.dump() + "\n", 0600, false),
      "saving state of VE " + name);
}

Status Store::clear_runtime(const std::string& name) const {
  return with_context(fs::remove_tree(ve_run_dir(name)), "clearing runtime state of " + name);
}

Result<std::optional<ExitRecord>> Store::load_exit(const std::string& name) const {
  auto text = fs::read_file(ve_dir(name) + "/last-exit.json");
  if (!text) {
    if (text.error().code == ENOENT) return std::optional<ExitRecord>{};
    return tl::unexpected(text.error());
  }
  auto rec = parse_exit(*text);
  if (!rec) return tl::unexpected(rec.error());
  return std::optional<ExitRecord>(*rec);
}

Status Store::save_exit(const std::string& name, const ExitRecord& record) const {
  json j = record;
  std::string dir = ve_dir(name);
  if (!fs::is_dir(dir)) return {};  // destroyed meanwhile: nothing to record against
  // Not synced: it is a note for the operator, and a VE's stop (which waits for it) should not
  // pay a journal commit for it. The rename keeps it whole for readers.
  return with_context(fs::write_file_atomic(dir + "/last-exit.json", j.dump(2) + "\n", 0600,
                                            /*durable=*/false),
                      "recording how VE " + name + " ended");
}

Result<std::vector<OomEvent>> Store::load_oom_events(const std::string& name) const {
  std::vector<OomEvent> events;
  auto text = fs::read_file(ve_dir(name) + "/oom.log");
  if (!text) {
    if (text.error().code == ENOENT) return events;
    return tl::unexpected(text.error());
  }
  std::string_view rest = *text;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    auto line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (auto e = parse_oom_event(line)) events.push_back(std::move(*e));
  }
  return events;
}

Status Store::append_oom_event(const std::string& name, const OomEvent& event) const {
  std::string path = ve_dir(name) + "/oom.log";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return errno_fail("opening " + path);
  json j = event;
  return fs::write_all(fd.get(), j.dump() + "\n", path);
}

void Store::sweep_leftovers() const {
  std::string dir = paths_.root + "/ves";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (struct dirent* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    // .new-NAME-PID and .trash-NAME-PID belong to a create/destroy that may still be running:
    // only those whose process is gone are stale.
    if (name.rfind(".new-", 0) != 0 && name.rfind(".trash-", 0) != 0) continue;
    auto dash = name.rfind('-');
    pid_t pid = std::atoi(name.c_str() + dash + 1);
    if (pid > 0 && ::kill(pid, 0) == 0) continue;
    stale.push_back(dir + "/" + name);
  }
  ::closedir(d);
  for (const auto& path : stale) (void)fs::remove_tree(path);
}

}  // namespace kapsel::store
