#include "oci/command.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/fs.hpp"
#include "oci/bundle_spec.hpp"
#include "oci/runtime.hpp"

namespace kapsel::oci {
namespace {

using nlohmann::json;

// One command's parsed flags and positional arguments.
struct Args {
  std::map<std::string, std::vector<std::string>> values;  // by long name
  std::set<std::string> bools;
  std::vector<std::string> positional;

  [[nodiscard]] std::string get(const std::string& name, const std::string& def = {}) const {
    auto it = values.find(name);
    return it == values.end() || it->second.empty() ? def : it->second.back();
  }
  [[nodiscard]] std::vector<std::string> all(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
  [[nodiscard]] bool has(const std::string& name) const { return bools.count(name) != 0; }
};

// A flag: its long name, its one-letter alias (or 0), and whether it takes a value.
struct Flag {
  const char* name;
  char alias;
  bool value;
};

// Parses `args` against `flags`; stops taking flags at "--" or, when `interspersed` is false,
// at the first positional argument (so that `exec ID CMD -l` keeps "-l" for CMD).
Result<Args> parse_flags(const std::vector<std::string>& args, const std::vector<Flag>& flags,
                         bool interspersed, std::size_t* consumed = nullptr) {
  Args out;
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      out.positional.push_back(a);
      if (!interspersed) {
        ++i;
        break;
      }
      continue;
    }
    std::string body = a.substr(a[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (auto eq = body.find('='); eq != std::string::npos) {
      value = body.substr(eq + 1);
      body = body.substr(0, eq);
      has_value = true;
    }
    const Flag* flag = nullptr;
    for (const auto& f : flags) {
      if (body == f.name || (body.size() == 1 && body[0] == f.alias)) flag = &f;
    }
    if (!flag) return fail(ErrorKind::usage, "flag provided but not defined: -" + body);
    if (!flag->value) {
      if (!has_value || value == "true") out.bools.insert(flag->name);
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size())
        return fail(ErrorKind::usage, std::string("flag needs an argument: --") + flag->name);
      value = args[++i];
    }
    out.values[flag->name].push_back(value);
  }
  if (consumed) *consumed = i;
  for (; i < args.size(); ++i) out.positional.push_back(args[i]);
  return out;
}

struct Global {
  std::string root = "/run/kapsel-runc";
  std::string log;
  std::string log_format = "text";
  bool debug = false;
};

// runc writes its errors (and with --debug, more) to --log, one record per line; containerd
// and Podman show the last error from there when a command fails.
void log_line(const Global& g, const char* level, const std::string& msg) {
  if (g.log.empty()) return;
  int fd = ::open(g.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char when[40];
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm {};
  ::gmtime_r(&ts.tv_sec, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string line;
  if (g.log_format == "json") {
    line = json{{"level", level}, {"msg", msg}, {"time", when}}.dump() + "\n";
  } else {
    line = std::string("time=\"") + when + "\" level=" + level + " msg=" + json(msg).dump() + "\n";
  }
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

int report(const Global& g, const Error& e) {
  log_line(g, "error", e.message);
  std::fprintf(stderr, "kapsel-runc: %s\n", e.message.c_str());
  return 1;
}

Result<std::string> need_id(const Args& a, const char* command) {
  if (a.positional.empty())
    return fail(ErrorKind::usage, std::string("\"") + command + "\" requires a container id");
  return a.positional.front();
}

json features() {
  json j = {
      {"ociVersionMin", "1.0.0"},
      {"ociVersionMax", "1.1.0"},
      {"hooks",
       {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}},
      {"mountOptions",
       {"async",  "atime",    "bind",        "dev",    "diratime",    "dirsync",
        "exec",   "mand",     "noatime",     "nodev",  "nodiratime",  "noexec",
        "nomand", "nosuid",   "private",     "rbind",  "relatime",    "remount",
        "ro",     "rprivate", "rshared",     "rslave", "runbindable", "rw",
        "shared", "slave",    "strictatime", "suid",   "sync",        "unbindable"}},
      {"linux",
       {{"namespaces", {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}},
        {"cgroup", {{"v1", true}, {"v2", true}, {"systemd", false}, {"systemdUser", false}}},
        {"seccomp", {{"enabled", true}}},
        {"apparmor", {{"enabled", false}}},
        {"selinux", {{"enabled", false}}}}},
      {"annotations", {{"org.opencontainers.runtime-spec.features.runtime", "kapsel"}}}};
  return j;
}

const char* kUsage =
    "usage: kapsel-runc [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND\n"
    "commands: create start state kill delete exec ps list pause resume features spec\n"
    "(docs/oci.md)\n";

}  // namespace

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Global g;
  static const std::vector<Flag> kGlobal = {{"root", 0, true},
                                            {"log", 0, true},
                                            {"log-format", 0, true},
                                            {"debug", 0, false},
                                            {"systemd-cgroup", 0, false},
                                            {"criu", 0, true},
                                            {"rootless", 0, true},
                                            {"help", 'h', false},
                                            {"version", 'v', false}};
  std::size_t used = 0;
  auto globals = parse_flags(args, kGlobal, /*interspersed=*/false, &used);
  if (!globals) return report(g, globals.error());
  g.root = globals->get("root", g.root);
  g.log = globals->get("log");
  g.log_format = globals->get("log-format", "text");
  g.debug = globals->has("debug");
  if (globals->has("version")) {
    std::printf("kapsel-runc version %s\nspec: 1.1.0\n", KAPSEL_VERSION);
    return 0;
  }
  if (g.log_format != "text" && g.log_format != "json")
    return report(
        g, Error{ErrorKind::usage, 0, "--log-format " + g.log_format + ": must be text or json"});
  if (globals->has("systemd-cgroup"))
    return report(g, Error{ErrorKind::usage, 0,
                           "--systemd-cgroup is not supported: kapsel manages cgroupfs itself "
                           "(configure your engine's cgroupfs cgroup manager)"});
  if (globals->positional.empty() || globals->has("help")) {
    std::fputs(kUsage, globals->has("help") ? stdout : stderr);
    return globals->has("help") ? 0 : 1;
  }
  const std::string command = globals->positional.front();
  std::vector<std::string> rest(args.begin() + static_cast<long>(used), args.end());
  if (g.debug) log_line(g, "debug", "command " + command);
  Runtime rt(g.root);

  auto parse = [&](const std::vector<Flag>& flags, bool interspersed = true) {
    return parse_flags(rest, flags, interspersed);
  };
  auto fail_with = [&](const Error& e) { return report(g, e); };

  if (command == "create" || command == "run") {
    auto a = parse({{"bundle", 'b', true},
                    {"pid-file", 0, true},
                    {"console-socket", 0, true},
                    {"no-pivot", 0, false},
                    {"no-new-keyring", 0, false},
                    {"preserve-fds", 0, true},
                    {"detach", 'd', false},
                    {"keep", 0, false},
                    {"pidfd-socket", 0, true}});
    if (!a) return fail_with(a.error());
    auto id = need_id(*a, command.c_str());
    if (!id) return fail_with(id.error());
    CreateRequest r;
    r.bundle = a->get("bundle", ".");
    r.pid_file = a->get("pid-file");
    r.console_socket = a->get("console-socket");
    r.no_pivot = a->has("no-pivot");
    r.preserve_fds = std::atoi(a->get("preserve-fds", "0").c_str());
    // --no-new-keyring: kapsel never makes a session keyring, so there is nothing to skip.
    if (auto st = rt.create(*id, r); !st) return fail_with(st.error());
    if (command == "create") return 0;
    if (auto st = rt.start(*id); !st) return fail_with(st.error());
    return 0;
  }
  if (command == "start") {
    auto a = parse({});
    if (!a) return fail_with(a.error());
    auto id = need_id(*a, "start");
    if (!id) return fail_with(id.error());
    if (auto st = rt.start(*id); !st) return fail_with(st.error());
    return 0;
  }
  if (command == "state") {
    auto a = parse({});
    if (!a) return fail_with(a.error());
    auto id = need_id(*a, "state");
    if (!id) return fail_with(id.error());
    auto s = rt.state(*id);
    if (!s) return fail_with(s.error());
    std::printf("%s\n", s->to_json().c_str());
    return 0;
  }
  if (command == "kill") {
    auto a = parse({{"all", 'a', false}, {"pid", 'p', true}});
    if (!a) return fail_with(a.error());
    auto id = need_id(*a, "kill");
    if (!id) return fail_with(id.error());
    auto sig = parse_signal(a->positional.size() > 1 ? a->positional[1] : "SIGTERM");
    if (!sig) return fail_with(sig.error());
    if (auto st = rt.kill(*id, *sig, a->has("all")); !st) return fail_with(st.error());
    return 0;
  }
  if (command == "delete") {
    auto a = parse({{"force", 'f', false}});
    if (!a) return fail_with(a.error());
    auto id = need_id(*a, "delete");
    if (!id) return fail_with(id.error());
    if (auto st = rt.remove(*id, a->has("force")); !st) return fail_with(st.error());
    return 0;
  }
  if (command == "exec") {
    auto a = parse({{"process", 'p', true},
                    {"tty", 't', false},
                    {"detach", 'd', false},
                    {"pid-file", 0, true},
                    {"console-socket", 0, true},
                    {"cwd", 0, true},
                    {"env", 'e', true},
                    {"user", 'u', true},
                    {"additional-gids", 'g', true},
                    {"cap", 'c', true},
                    {"no-new-privs", 0, false},
                    {"preserve-fds", 0, true},
                    {"process-label", 0, true},
                    {"apparmor", 0, true},
                    {"ignore-paused", 0, false},
                    {"cgroup", 0, true}},
                   /*interspersed=*/false);
    if (!a) return fail_with(a.error());
    auto id = need_id(*a, "exec");
    if (!id) return fail_with(id.error());
    ExecProcess r;
    if (auto file = a->get("process"); !file.empty()) {
      auto text = fs::read_file(file);
      if (!text) return fail_with(text.error().context("--process"));
      auto p = parse_process(*text);
      if (!p) return fail_with(p.error().context("--process " + file));
      r = std::move(*p);
      r.from_file = true;
    } else {
      r.process.args.assign(a->positional.begin() + 1, a->positional.end());
      if (r.process.args.empty())
        return fail_with(Error{ErrorKind::usage, 0, "exec: no command given (args or --process)"});
      r.process.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
      r.process.terminal = a->has("tty");
    }
    if (a->has("tty")) r.process.terminal = true;
    for (const auto& e : a->all("env")) r.process.env.push_back(e);
    if (auto cwd = a->get("cwd"); !cwd.empty()) r.process.cwd = cwd;
    if (auto user = a->get("user"); !user.empty()) {
      auto colon = user.find(':');
      r.process.uid = static_cast<std::uint32_t>(std::stoul(user.substr(0, colon)));
      if (colon != std::string::npos)
        r.process.gid = static_cast<std::uint32_t>(std::stoul(user.substr(colon + 1)));
    }
    for (const auto& gid : a->all("additional-gids"))
      r.process.additional_gids.push_back(static_cast<std::uint32_t>(std::stoul(gid)));
    r.pid_file = a->get("pid-file");
    r.console_socket = a->get("console-socket");
    r.detach = a->has("detach");
    r.no_new_privs = a->has("no-new-privs");
    auto code = rt.exec(*id, r);
    if (!code) return fail_with(code.error());
    return *code;
  }
  if (command == "ps") {
    auto a = parse({{"format", 'f', true}});
    if (!a) return fail_with(a.error());
    auto id = need_id(*a, "ps");
    if (!id) return fail_with(id.error());
    auto pids = rt.pids(*id);
    if (!pids) return fail_with(pids.error());
    if (a->get("format", "table") == "json") {
      std::printf("%s\n", json(*pids).dump().c_str());
      return 0;
    }
    std::printf("%-8s %s\n", "PID", "CMD");
    for (pid_t pid : *pids) {
      auto cmd = fs::read_file("/proc/" + std::to_string(pid) + "/comm");
      std::string name = cmd ? *cmd : "?";
      if (!name.empty() && name.back() == '\n') name.pop_back();
      std::printf("%-8d %s\n", pid, name.c_str());
    }
    return 0;
  }
  if (command == "list") {
    auto a = parse({{"format", 'f', true}, {"quiet", 'q', false}});
    if (!a) return fail_with(a.error());
    auto all = rt.list();
    if (!all) return fail_with(all.error());
    if (a->get("format") == "json") {
      json out = json::array();
      for (const auto& s : *all) out.push_back(json::parse(s.to_json()));
      std::printf("%s\n", out.dump().c_str());
      return 0;
    }
    if (!a->has("quiet")) std::printf("%-20s %-8s %-10s %s\n", "ID", "PID", "STATUS", "BUNDLE");
    for (const auto& s : *all) {
      if (a->has("quiet")) {
        std::printf("%s\n", s.id.c_str());
      } else {
        std::printf("%-20s %-8d %-10s %s\n", s.id.c_str(), s.pid,
                    std::string(to_string(s.status)).c_str(), s.bundle.c_str());
      }
    }
    return 0;
  }
  if (command == "features") {
    std::printf("%s\n", features().dump(4).c_str());
    return 0;
  }
  if (command == "spec") {
    auto a = parse({{"bundle", 'b', true}, {"rootless", 0, false}});
    if (!a) return fail_with(a.error());
    std::string path = a->get("bundle", ".") + "/config.json";
    if (fs::exists(path))
      return fail_with(Error{ErrorKind::exists, 0, "File " + path + " exists. Remove it first"});
    if (auto st = fs::write_file_atomic(path, default_spec(a->has("rootless")), 0644, false); !st)
      return fail_with(st.error());
    return 0;
  }
  if (command == "pause" || command == "resume") {
    auto a = parse({});
    if (!a) return fail_with(a.error());
    auto id = need_id(*a, command.c_str());
    if (!id) return fail_with(id.error());
    auto st = command == "pause" ? rt.pause(*id) : rt.resume(*id);
    if (!st) return fail_with(st.error());
    return 0;
  }
  if (command == "checkpoint" || command == "restore" || command == "update" || command == "events")
    return fail_with(Error{ErrorKind::usage, 0, command + " is not supported by kapsel-runc"});
  return fail_with(Error{ErrorKind::usage, 0, "unknown command " + command});
}

}  // namespace kapsel::oci
