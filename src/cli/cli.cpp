#include "cli/cli.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/limit_flags.hpp"
#include "cli/network_flags.hpp"
#include "cli/output.hpp"
#include "cli/security_flags.hpp"
#include "cli/stats_view.hpp"
#include "common/process.hpp"
#include "common/trace.hpp"
#include "image/template.hpp"
#include "net/bridge_network.hpp"
#include "net/network_store.hpp"
#include "net/ve_network.hpp"
#include "procfs/procfs_service.hpp"
#include "security/userns.hpp"
#include "store/store.hpp"
#include "ve/lifecycle.hpp"

namespace kapsel::cli {
namespace {

using nlohmann::json;

struct Globals {
  std::string root;
  std::string run_dir;
  std::string cgroup_parent;
  bool json = false;
  bool quiet = false;
};

void print_error(const Error& e) {
  std::fprintf(stderr, "kapsel: %s\n", e.message.c_str());
}

// Prints an error, returns its exit code.
int report(const Error& e) {
  print_error(e);
  return exit_code_for(e);
}

int report(const Status& st) {
  return st ? kExitOk : report(st.error());
}

// exec, enter and run exit with the command's own status, or 125 when kapsel could not run it.
int command_status(const Result<int>& code) {
  if (code) return *code;
  print_error(code.error());
  return kExitExecFailed;
}

// The command word of a command line ("list" in `kapsel --json list`) if it names a top-level
// command, else empty: no command, help asked for before it, or an unknown word. Only that
// command is declared; with an empty word every one is, so that help lists them all and an
// error can say what is wrong. A command missing here still works (everything is declared).
std::string_view command_word(int argc, char** argv) {
  static constexpr std::string_view kCommands[] = {
      "create", "start",   "stop",    "restart", "pause",    "resume",        "exec",
      "enter",  "console", "run",     "list",    "status",   "set",           "stats",
      "top",    "destroy", "network", "gc",      "template", "procfs-service"};
  for (int i = 1; i < argc; ++i) {
    std::string_view word = argv[i];
    if (word == "--") break;
    if (word == "--root" || word == "--run-dir" || word == "--cgroup-parent") {
      ++i;  // its value
      continue;
    }
    if (word == "-h" || word == "--help") return {};
    if (word.starts_with("-")) continue;
    if (word == "ls") return "list";
    for (auto c : kCommands)
      if (c == word) return c;
    return {};
  }
  return {};
}

// A non-root user runs rootless VEs in a store of its own (docs/security.md) with the commands
// that need no privilege of the host's; the rest need root.
Status require_root(const CLI::App& app) {
  if (::geteuid() == 0) return {};
  // got_subcommand(NAME) would throw for a command that was not declared (only the one that
  // runs is): look at what was parsed instead.
  for (const CLI::App* parsed : app.get_subcommands()) {
    for (std::string_view rootless :
         {"create", "start", "exec", "enter", "run", "stop", "destroy", "list", "status"}) {
      if (parsed->get_name() == rootless) return {};
    }
  }
  return fail(
      ErrorKind::permission,
      "this command must be run as root (rootless VEs: create, start, exec, enter, run, stop, "
      "destroy, list and status)");
}

// The flags `create` and `run` share, into the new VE's options; warns of --network host, which
// weakens the VE's isolation.
Status fill_options(ve::CreateOptions& options, const LimitFlags& limits,
                    const SecurityFlags& security, const NetworkFlags& network,
                    const std::string& disk) {
  if (!disk.empty()) {
    auto bytes = cgroup::parse_size("--disk", disk);
    if (!bytes) return tl::unexpected(bytes.error());
    options.disk_bytes = *bytes;
  }
  auto parsed_limits = limits.parse();
  if (!parsed_limits) return tl::unexpected(parsed_limits.error());
  options.limits = *parsed_limits;
  auto parsed_security = security.parse();
  if (!parsed_security) return tl::unexpected(parsed_security.error());
  options.security = *parsed_security;
  options.network_mode = network.mode;
  options.ip = network.ip;
  options.publish = network.publish;
  if (network.mode == "host") std::fprintf(stderr, "%s\n", kHostNetworkWarning);
  return {};
}

// Shows template build/import progress on a terminal; a pipe or log gets one line per phase.
image::ProgressFn progress_printer(bool quiet) {
  if (quiet) return {};
  bool tty = ::isatty(STDERR_FILENO);
  auto last_phase = std::make_shared<std::string>();
  auto last_print = std::make_shared<std::chrono::steady_clock::time_point>();
  return [=](std::string_view phase, std::uint64_t done, std::uint64_t total) {
    if (!tty) {
      if (*last_phase != phase)
        std::fprintf(stderr, "kapsel: %.*s\n", int(phase.size()), phase.data());
      *last_phase = std::string(phase);
      return;
    }
    auto now = std::chrono::steady_clock::now();
    bool finished = total > 0 && done >= total;
    if (*last_phase == phase && !finished && now - *last_print < std::chrono::milliseconds(100))
      return;
    *last_phase = std::string(phase);
    *last_print = now;
    if (total > 0) {
      std::fprintf(stderr, "\r\033[K%.*s: %3d%%", int(phase.size()), phase.data(),
                   static_cast<int>(done * 100 / total));
    } else {
      std::fprintf(stderr, "\r\033[K%.*s: %llu", int(phase.size()), phase.data(),
                   static_cast<unsigned long long>(done));
    }
    if (finished) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

std::string uptime_of(const ve::VeInfo& info) {
  if (!info.runtime || info.runtime->started_at == 0) return "-";
  return human_duration(std::time(nullptr) - info.runtime->started_at);
}

// "8080:80/tcp,5353:53/udp", or "-".
std::string published_ports(const store::NetworkConfig& net) {
  std::string ports;
  for (const auto& p : net.publish) ports += (ports.empty() ? "" : ",") + p;
  return ports.empty() ? "-" : ports;
}

int print_list(const std::vector<ve::VeInfo>& infos, bool as_json) {
  if (as_json) {
    std::cout << json(infos).dump(2) << "\n";
    return kExitOk;
  }
  Table t({"NAME", "KIND", "STATE", "PID", "PROCS", "UPTIME", "TEMPLATE", "HOSTNAME", "ADDRESS",
           "PORTS"});
  for (const auto& i : infos) {
    const auto& net = i.config.network;
    t.add({i.config.name, i.config.kind, i.state,
           i.runtime ? std::to_string(i.runtime->init.pid) : "-",
           i.processes ? std::to_string(*i.processes) : "-", uptime_of(i), i.config.template_spec,
           i.config.hostname, net.is_bridge() ? net.address : net.mode, published_ports(net)});
  }
  std::cout << t.render();
  return kExitOk;
}

int print_status(const ve::VeInfo& i, bool as_json) {
  if (as_json) {
    std::cout << json(i).dump(2) << "\n";
    return kExitOk;
  }
  auto line = [](const char* key, const std::string& value) {
    std::printf("%-13s %s\n", key, value.c_str());
  };
  line("name:", i.config.name);
  line("kind:", i.config.kind);
  line("state:", i.state);
  line("template:", i.config.template_spec);
  line("hostname:", i.config.hostname);
  line("created:", human_time(i.config.created));
  if (i.runtime) {
    line("init pid:", std::to_string(i.runtime->init.pid));
    line("monitor:", std::to_string(i.runtime->monitor.pid));
    line("started:", human_time(i.runtime->started_at) + " (up " + uptime_of(i) + ")");
  }
  if (i.processes) line("processes:", std::to_string(*i.processes));
  for (const auto& [key, value] : i.details) line((key + ":").c_str(), value);
  for (const auto& [key, value] : describe(i.config.limits)) line((key + ":").c_str(), value);
  for (const auto& [key, value] : describe(i.config.security)) line((key + ":").c_str(), value);
  for (const auto& [key, value] : describe(i.config.network)) line((key + ":").c_str(), value);
  if (i.config.disk_bytes != 0) line("disk:", human_bytes(i.config.disk_bytes) + " of its own");
  if (i.oom_kills || !i.oom_events.empty()) {
    std::string oom = i.oom_events.empty() && i.oom_kills.value_or(0) == 0
                          ? std::string("0")
                          : std::to_string(i.oom_kills.value_or(0)) + " in this run, " +
                                std::to_string(i.oom_events.size()) + " since created";
    if (!i.oom_events.empty()) {
      const auto& e = i.oom_events.back();
      oom += "; last " + human_time(e.at) + ": killed " + e.comm + " (pid " +
             std::to_string(e.pid) + ")";
    }
    line("oom kills:", oom);
  }
  if (i.last_exit) {
    line("last exit:",
         i.last_exit->reason + " at " + human_time(i.last_exit->at) + ": " + i.last_exit->detail);
  }
  return kExitOk;
}

// Splits "NAME CMD..." (what exec leaves after its options, plus what followed "--").
Status split_name_command(std::vector<std::string> args, std::string& name,
                          std::vector<std::string>& command, bool need_command) {
  if (args.empty())
    return fail(ErrorKind::usage, "exec: missing VE name (see 'kapsel exec --help')");
  name = args.front();
  args.erase(args.begin());
  if (need_command && args.empty())
    return fail(ErrorKind::usage, "exec: missing command to run: kapsel exec NAME -- CMD [ARG...]");
  command = std::move(args);
  return {};
}

// CLI11 builds a usage line from declared options and positionals; exec and run take their
// name and command through prefix_command(), so their usage is spelled out here.
class UsageFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* app, std::string name) const override {
    if (app->get_name() == "exec") return "Usage: " + name + " [OPTIONS] NAME [--] CMD [ARG...]\n";
    if (app->get_name() == "run") return "Usage: " + name + " [OPTIONS] -- CMD [ARG...]\n";
    return CLI::Formatter::make_usage(app, std::move(name));
  }
};

// A parse error as the one line every kapsel error is (CLI11's own message spans two lines and
// does not say which command it is about): "kapsel: start: name is required (see ...)".
Error usage_error(const CLI::App& app, const CLI::ParseError& e) {
  std::string path;
  const CLI::App* at = &app;
  for (auto subs = at->get_subcommands(); !subs.empty(); subs = at->get_subcommands()) {
    at = subs.front();
    path += at->get_name() + " ";
  }
  std::string what = e.what();
  if (e.get_name() == "RequiredError") {
    // What was left over explains a missing argument better: "create -rf" is an unknown option
    // rather than a missing name; "kapsel bogus" an unknown command. (Leftovers fall through
    // to the parent command, so both are looked at.)
    auto left = at->remaining();
    if (at != &app) {
      auto top = app.remaining();
      left.insert(left.end(), top.begin(), top.end());
    }
    bool wants_command = !at->get_subcommands({}).empty() && at->get_subcommands().empty();
    if (wants_command) what = "missing command";
    for (const auto& word : left) {
      if (word.starts_with("-")) {
        what = "unknown option '" + word + "'";
        break;
      }
      if (wants_command) {
        what = "unknown command '" + word + "'";
        break;
      }
    }
  }
  std::string prefix = path.empty() ? "" : path.substr(0, path.size() - 1) + ": ";
  return Error{ErrorKind::usage, 0, prefix + what + " (see 'kapsel " + path + "--help')"};
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{
      "kapsel runs Linux workloads in virtual environments (VEs) and administers them from the "
      "host.",
      "kapsel"};
  // Before the subcommands are added: they inherit the parent's formatter when created.
  app.formatter(std::make_shared<UsageFormatter>());
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", KAPSEL_VERSION);
  app.footer(
      "Examples:\n"
      "  kapsel create web1                      # a VE from the built-in busybox template\n"
      "  kapsel start web1\n"
      "  kapsel exec web1 -- ps                  # run a command inside it\n"
      "  kapsel enter web1                       # an interactive shell inside it\n"
      "  kapsel list\n"
      "  kapsel stop web1 && kapsel destroy web1\n"
      "  kapsel run --rm -- uname -a             # one-shot VE\n\n"
      "Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 already exists, 5 wrong state,\n"
      "6 permission; exec and run exit with the command's status (125: kapsel failed).\n"
      "Run 'kapsel COMMAND --help' for more on a command.");

  Globals g;
  app.add_option("--root", g.root, "Directory for configs, templates and private areas")
      ->envname("KAPSEL_ROOT")
      ->default_str("/var/lib/kapsel");
  app.add_option("--run-dir", g.run_dir, "Directory for runtime state and locks")
      ->envname("KAPSEL_RUN_DIR")
      ->default_str("/run/kapsel");
  app.add_option("--cgroup-parent", g.cgroup_parent,
                 "cgroup directory under each hierarchy that holds the VEs' cgroups")
      ->envname("KAPSEL_CGROUP_PARENT")
      ->default_str("kapsel");
  app.add_flag("--json", g.json, "Print machine-readable JSON");
  app.add_flag("-q,--quiet", g.quiet, "Print nothing but errors");

  std::function<int()> action;
  std::vector<std::string> command_tail;  // after "--"
  bool had_separator = false;
  auto lifecycle = [&]() {
    static store::Store store(store::Paths::resolve(g.root, g.run_dir));
    static ve::Lifecycle lc(store, g.cgroup_parent.empty() ? "kapsel" : g.cgroup_parent);
    return &lc;
  };
  auto say = [&](const std::string& msg) {
    if (!g.quiet && !g.json) std::printf("%s\n", msg.c_str());
  };

  // Every command's variables live here, outside the blocks that declare the commands: the
  // actions run after parsing, and read them.
  ve::CreateOptions create_opts;
  LimitFlags create_limits;
  SecurityFlags create_security;
  NetworkFlags create_network;
  std::string create_disk;
  std::string name;
  driver::StopOptions stop_opts;
  driver::ExecRequest exec_req;
  std::string shell = "/bin/sh";
  ve::CreateOptions run_opts;
  bool run_rm = false;
  LimitFlags run_limits;
  SecurityFlags run_security;
  NetworkFlags run_network;
  std::string run_disk;
  LimitFlags set_limits;
  std::vector<std::string> stats_names;
  double stats_interval = 1.0;
  double top_delay = 2.0;
  int top_iterations = 0;
  bool top_batch = false;
  bool force = false;
  auto networks = [&] { return net::NetworkStore(store::Paths::resolve(g.root, g.run_dir).root); };
  std::string subnet;
  bool procfs_stop = false;
  std::string disk_file;
  bool disk_read_only = false;
  CLI::App* exec = nullptr;
  CLI::App* run_cmd = nullptr;
  auto rows_of = [](const std::vector<ve::VeUsage>& now, const std::vector<ve::VeUsage>* before) {
    std::map<std::string, const ve::VeUsage*> prev;
    if (before)
      for (const auto& u : *before) prev[u.name] = &u;
    std::vector<StatsRow> rows;
    for (const auto& u : now)
      rows.push_back(make_row(u, prev.count(u.name) ? prev[u.name] : nullptr));
    return rows;
  };

  // stats and top: the counters of the named VEs, or of every running one.
  auto sample = [&](const std::vector<std::string>& names) -> Result<std::vector<ve::VeUsage>> {
    if (names.empty()) return lifecycle()->usage_all();
    std::vector<ve::VeUsage> out;
    for (const auto& n : names) {
      auto u = lifecycle()->usage(n);
      if (!u) return tl::unexpected(u.error());
      out.push_back(std::move(*u));
    }
    return out;
  };

  // Only the command being run is declared: CLI11 builds every option, validator and help text
  // as it is declared, over a millisecond for all commands, which every command would pay.
  // Top-level help, and a missing or unknown command, get all of them.
  const std::string_view wanted = command_word(argc, argv);
  auto declares = [&](std::initializer_list<std::string_view> names) {
    return wanted.empty() || std::find(names.begin(), names.end(), wanted) != names.end();
  };

  // create
  if (declares({"create"})) {
    auto* create = app.add_subcommand("create", "Create a VE from a template");
    create->add_option("name", create_opts.name, "Name of the new VE")->required();
    create
        ->add_option("-t,--template", create_opts.template_spec,
                     "busybox (built in), dir:PATH or tar:PATH")
        ->capture_default_str();
    create->add_option("--hostname", create_opts.hostname,
                       "Hostname inside the VE (default: name)");
    create
        ->add_option("-k,--kind", create_opts.kind,
                     "container (OS-level) or uml (a User-mode Linux guest kernel)")
        ->check(CLI::IsMember({"container", "uml"}))
        ->capture_default_str();
    create->add_option("--disk", create_disk,
                       "uml: a disk of the VE's own of this size, e.g. 4G (default: a "
                       "copy-on-write view of the template's shared image)");
    create_limits.add_to(*create);
    create_security.add_to(*create);
    create_network.add_to(*create);
    create->footer(
        "Examples:\n"
        "  kapsel create web1\n"
        "  kapsel create web2 --memory 256M --cpus 1 --pids 200\n"
        "  kapsel create fuse1 --device /dev/fuse --cap-add SYS_ADMIN\n"
        "  kapsel create db --template tar:/srv/images/debian.tar.gz --hostname db.example\n"
        "  kapsel create t1 --template dir:/srv/rootfs\n"
        "  kapsel create web3 --network bridge --ip 10.88.0.10\n"
        "  kapsel create u1 --kind uml --memory 256M\n"
        "  kapsel create u2 --kind uml --disk 4G");
    create->callback([&] {
      action = [&] {
        if (auto st = fill_options(create_opts, create_limits, create_security, create_network,
                                   create_disk);
            !st)
          return report(st.error());
        auto c = lifecycle()->create(create_opts, progress_printer(g.quiet || g.json));
        if (!c) return report(c.error());
        if (g.json) {
          std::cout << json(*c).dump(2) << "\n";
        } else {
          say("created VE " + c->name + " from template " + c->template_spec);
        }
        return int(kExitOk);
      };
    });
  }

  // start
  if (declares({"start"})) {
    auto* start = app.add_subcommand("start", "Start a VE; returns once its init is running");
    start->add_option("name", name, "VE name")->required();
    start->footer("Example:\n  kapsel start web1");
    start->callback([&] {
      action = [&] {
        auto st = lifecycle()->start(name);
        if (st) say("started VE " + name);
        // Said once per start, as it holds for every start (docs/security.md, rootless VEs).
        if (st && ::geteuid() != 0)
          std::fprintf(
              stderr,
              "kapsel: warning: VE %s runs rootless without cgroups (none are delegated to "
              "you): no memory, CPU, pids or I/O limits and no device cgroup apply\n",
              name.c_str());
        if (st && ::geteuid() != 0 &&
            (security::subordinate_ranges_of("/etc/subuid", ::getuid()).empty() ||
             security::subordinate_ranges_of("/etc/subgid", ::getuid()).empty()))
          std::fprintf(
              stderr,
              "kapsel: note: you have no range in /etc/subuid or /etc/subgid, so VE %s maps "
              "only your own ids (as its root); add one with usermod --add-subuids and "
              "--add-subgids\n",
              name.c_str());
        return report(st);
      };
    });
  }

  // stop
  if (declares({"stop"})) {
    auto* stop = app.add_subcommand("stop", "Stop a VE: ask its init to shut down, then kill it");
    stop->add_option("name", name, "VE name")->required();
    stop->add_option("-t,--timeout", stop_opts.timeout_seconds,
                     "Seconds to wait for a clean shutdown before killing")
        ->capture_default_str()
        ->check(CLI::Range(0, 86400));
    stop->add_flag("-k,--kill", stop_opts.kill, "Kill every process at once, no clean shutdown");
    stop->footer(
        "The VE's init gets the template's halt signal (busybox: SIGUSR1); whatever remains after\n"
        "--timeout seconds is killed.\n\n"
        "Examples:\n"
        "  kapsel stop web1\n"
        "  kapsel stop --timeout 30 db\n"
        "  kapsel stop --kill web1");
    stop->callback([&] {
      action = [&] {
        auto st = lifecycle()->stop(name, stop_opts);
        if (st) say("stopped VE " + name);
        return report(st);
      };
    });
  }

  // restart
  if (declares({"restart"})) {
    auto* restart = app.add_subcommand("restart", "Stop a VE (if running), then start it");
    restart->add_option("name", name, "VE name")->required();
    restart->footer("Example:\n  kapsel restart web1");
    restart
        ->add_option("-t,--timeout", stop_opts.timeout_seconds,
                     "Seconds to wait for a clean shutdown before killing")
        ->capture_default_str()
        ->check(CLI::Range(0, 86400));
    restart->callback([&] {
      action = [&] {
        auto st = lifecycle()->restart(name, stop_opts);
        if (st) say("restarted VE " + name);
        return report(st);
      };
    });
  }

  // pause, resume
  if (declares({"pause", "resume"})) {
    auto* pause = app.add_subcommand("pause", "Freeze every process of a running VE");
    pause->add_option("name", name, "VE name")->required();
    pause->footer(
        "The VE's processes stop where they are (the cgroup freezer; for UML guests, the guest\n"
        "kernel) and use no CPU; memory, files and connections are kept. exec is refused until\n"
        "`kapsel resume`; stop and destroy --force resume the VE first.\n\n"
        "Example:\n  kapsel pause web1");
    pause->callback([&] {
      action = [&] {
        auto st = lifecycle()->pause(name);
        if (st) say("paused VE " + name);
        return report(st);
      };
    });
    auto* resume = app.add_subcommand("resume", "Let a paused VE's processes run again");
    resume->add_option("name", name, "VE name")->required();
    resume->footer("Example:\n  kapsel resume web1");
    resume->callback([&] {
      action = [&] {
        auto st = lifecycle()->resume(name);
        if (st) say("resumed VE " + name);
        return report(st);
      };
    });
  }

  // exec
  if (declares({"exec"})) {
    exec = app.add_subcommand("exec",
                              "Run a command in a running VE: kapsel exec NAME [--] CMD [ARG...]");
    exec->prefix_command();
    exec->fallthrough(false);  // the command's own arguments must stay with it
    exec->allow_extras();
    exec->add_flag("-t,--tty", exec_req.tty, "Allocate a pty in the VE for the command");
    exec->add_option("-e,--env", exec_req.env, "Set an environment variable (KEY=VALUE)");
    exec->add_option("-w,--workdir", exec_req.cwd, "Working directory inside the VE")
        ->capture_default_str();
    exec->footer(
        "stdin, stdout and stderr are passed through; the exit status is the command's\n"
        "(125: kapsel could not run it, 126: not executable, 127: not found).\n\n"
        "Examples:\n"
        "  kapsel exec web1 -- ps\n"
        "  kapsel exec web1 -- sh -c 'echo hello > /tmp/x'\n"
        "  kapsel exec -t web1 -- top");
    exec->callback([&] {
      action = [&]() -> int {
        auto args = exec->remaining();
        args.insert(args.end(), command_tail.begin(), command_tail.end());
        if (auto st = split_name_command(args, name, exec_req.argv, true); !st)
          return report(st.error());
        return command_status(lifecycle()->exec(name, exec_req));
      };
    });
  }

  // enter
  if (declares({"enter"})) {
    auto* enter = app.add_subcommand("enter", "Open an interactive shell in a running VE");
    enter->add_option("name", name, "VE name")->required();
    enter->add_option("-s,--shell", shell, "Shell to start")->capture_default_str();
    enter->footer(
        "The shell runs on a pty inside the VE; leave it with 'exit' or Ctrl-D.\n\n"
        "Example:\n  kapsel enter web1");
    enter->callback([&] {
      action = [&]() -> int {
        driver::ExecRequest req;
        req.tty = true;
        req.argv = {shell, "-l"};
        req.cwd = "/root";
        return command_status(lifecycle()->exec(name, req));
      };
    });
  }

  // console
  if (declares({"console"})) {
    auto* console =
        app.add_subcommand("console", "Attach to a running VE's console (Ctrl-] detaches)");
    console->add_option("name", name, "VE name")->required();
    console->footer(
        "The console of a UML VE is its guest kernel's; everything it prints is also kept in\n"
        "<root>/ves/NAME/console.log.\n\n"
        "Example:\n  kapsel console u1");
    console->callback([&] { action = [&] { return report(lifecycle()->console(name)); }; });
  }

  // run
  if (declares({"run"})) {
    run_cmd = app.add_subcommand(
        "run", "Create a VE, start it, run a command in it, then stop it (--rm: destroy it)");
    run_cmd->prefix_command();
    run_cmd->fallthrough(false);
    run_cmd->allow_extras();
    run_cmd->add_flag("--rm", run_rm, "Destroy the VE when the command ends");
    run_cmd->add_option("--name", run_opts.name, "Name of the VE (default: run-XXXXXXXX)");
    run_cmd
        ->add_option("-t,--template", run_opts.template_spec,
                     "busybox (built in), dir:PATH or tar:PATH")
        ->capture_default_str();
    run_cmd->add_option("--hostname", run_opts.hostname, "Hostname inside the VE");
    run_cmd->add_option("-k,--kind", run_opts.kind, "container or uml")
        ->check(CLI::IsMember({"container", "uml"}))
        ->capture_default_str();
    run_cmd->add_option("--disk", run_disk, "uml: a disk of the VE's own of this size, e.g. 4G");
    run_cmd->add_option("-e,--env", exec_req.env, "Set an environment variable (KEY=VALUE)");
    run_limits.add_to(*run_cmd);
    run_security.add_to(*run_cmd);
    run_network.add_to(*run_cmd);
    run_cmd->footer(
        "Examples:\n"
        "  kapsel run --rm -- /bin/true\n"
        "  kapsel run --rm --template tar:rootfs.tar -- sh -c 'cat /etc/os-release'");
    run_cmd->callback([&] {
      action = [&]() -> int {
        auto args = run_cmd->remaining();
        args.insert(args.end(), command_tail.begin(), command_tail.end());
        if (args.empty()) {
          return report(
              fail(ErrorKind::usage, "run: missing command: kapsel run [--rm] -- CMD [ARG...]")
                  .value());
        }
        exec_req.argv = args;
        if (auto st = fill_options(run_opts, run_limits, run_security, run_network, run_disk); !st)
          return report(st.error());
        return command_status(lifecycle()->run(run_opts, exec_req, run_rm));
      };
    });
  }

  // list
  if (declares({"list"})) {
    auto* list = app.add_subcommand("list", "List VEs and their state");
    list->alias("ls");
    list->footer(
        "Examples:\n"
        "  kapsel list\n"
        "  kapsel list --json | jq -r '.[] | select(.state == \"running\") | .name'");
    list->callback([&] {
      action = [&] {
        auto infos = lifecycle()->list();
        if (!infos) return report(infos.error());
        return print_list(*infos, g.json);
      };
    });
  }

  // status
  if (declares({"status"})) {
    auto* status = app.add_subcommand("status", "Show a VE's state, processes and last exit");
    status->add_option("name", name, "VE name")->required();
    status->footer("Examples:\n  kapsel status web1\n  kapsel status --json web1");
    status->callback([&] {
      action = [&] {
        auto info = lifecycle()->status(name);
        if (!info) return report(info.error());
        return print_status(*info, g.json);
      };
    });
  }

  // set
  if (declares({"set"})) {
    auto* set = app.add_subcommand("set", "Change a VE's resource limits, live if it is running");
    set->add_option("name", name, "VE name")->required();
    set_limits.add_to(*set);
    set->footer(
        "A running VE gets the new limits at once; they are stored and hold from every later\n"
        "start on. If the kernel refuses one (e.g. a memory limit below what the VE uses), none\n"
        "changes. 'max' removes a limit.\n\n"
        "Examples:\n"
        "  kapsel set web1 --memory 512M --cpus 1.5\n"
        "  kapsel set web1 --pids max\n"
        "  kapsel set db --device-write-bps /dev/vda:20M");
    set->callback([&] {
      action = [&] {
        auto change = set_limits.parse();
        if (!change) return report(change.error());
        auto limits = lifecycle()->set(name, *change);
        if (!limits) return report(limits.error());
        if (g.json) {
          std::cout << json(*limits).dump(2) << "\n";
        } else {
          say("updated limits of VE " + name);
        }
        return int(kExitOk);
      };
    });
  }

  // stats
  if (declares({"stats"})) {
    auto* stats = app.add_subcommand("stats", "Show running VEs' CPU, memory, process, I/O use");
    stats->add_option("names", stats_names, "VE names (default: every running VE)");
    stats
        ->add_option("-i,--interval", stats_interval,
                     "Seconds between the two samples CPU % is measured over (0: no CPU %)")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 60.0));
    stats->footer(
        "CPU % is of one CPU (200% = two CPUs busy). The figures are the VE's cgroup counters.\n\n"
        "Examples:\n"
        "  kapsel stats web1\n"
        "  kapsel stats --json --interval 0 web1 | jq .[0].memory_usage_bytes");
    stats->callback([&] {
      action = [&] {
        auto first = sample(stats_names);
        if (!first) return report(first.error());
        std::vector<StatsRow> rows;
        if (stats_interval > 0) {
          std::this_thread::sleep_for(std::chrono::duration<double>(stats_interval));
          auto second = sample(stats_names);
          if (!second) return report(second.error());
          rows = rows_of(*second, &*first);
        } else {
          rows = rows_of(*first, nullptr);
        }
        if (g.json) {
          std::cout << json(rows).dump(2) << "\n";
        } else {
          std::cout << render_stats(rows);
        }
        return int(kExitOk);
      };
    });
  }

  // top
  if (declares({"top"})) {
    auto* top = app.add_subcommand("top", "Watch every running VE's resource use, refreshing");
    top->add_option("-d,--delay", top_delay, "Seconds between refreshes")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 3600.0));
    top->add_option("-n,--iterations", top_iterations, "Stop after this many refreshes (0: never)")
        ->check(CLI::Range(0, 1000000));
    top->add_flag("-b,--batch", top_batch, "Do not clear the screen between refreshes");
    top->footer(
        "Like top(1) and vzlist for VEs: one row per running VE, CPU % over the last interval.\n"
        "With --json, one JSON array per refresh, one per line. Stop it with Ctrl-C.\n\n"
        "Examples:\n"
        "  kapsel top\n"
        "  kapsel top -b -n 3 -d 1\n"
        "  kapsel top --json -n 1");
    top->callback([&] {
      action = [&] {
        bool clear = !top_batch && !g.json && ::isatty(STDOUT_FILENO);
        auto before = sample({});
        if (!before) return report(before.error());
        for (int i = 0; top_iterations == 0 || i < top_iterations; ++i) {
          std::this_thread::sleep_for(std::chrono::duration<double>(top_delay));
          auto now = sample({});
          if (!now) return report(now.error());
          auto rows = rows_of(*now, &*before);
          if (g.json) {
            std::cout << json(rows).dump() << std::endl;
          } else {
            if (clear) std::cout << "\033[H\033[2J";
            std::cout << "kapsel top - " << human_time(std::time(nullptr)) << ", " << rows.size()
                      << " running VE" << (rows.size() == 1 ? "" : "s") << "\n\n"
                      << render_stats(rows) << std::endl;
          }
          before = std::move(now);
        }
        return int(kExitOk);
      };
    });
  }

  // destroy
  if (declares({"destroy"})) {
    auto* destroy = app.add_subcommand("destroy", "Delete a stopped VE and its private files");
    destroy->add_option("name", name, "VE name")->required();
    destroy->add_flag("-f,--force", force, "Stop the VE first if it is running");
    destroy->footer("Examples:\n  kapsel destroy web1\n  kapsel destroy --force web1");
    destroy->callback([&] {
      action = [&] {
        auto st = lifecycle()->destroy(name, force);
        if (st) say("destroyed VE " + name);
        return report(st);
      };
    });
  }

  // network
  if (declares({"network"})) {
    auto* network = app.add_subcommand("network", "Manage the bridges VEs are networked on");
    network->require_subcommand(1);
    network->footer(
        "A network is a bridge (named after it) with a subnet; its first address is the VEs'\n"
        "gateway. The bridge is made when the first VE on it starts.\n\n"
        "Examples:\n"
        "  kapsel network create lab --subnet 10.89.0.0/24\n"
        "  kapsel create web1 --network bridge:lab\n"
        "  kapsel network list\n"
        "  kapsel network remove lab");
    auto* network_create =
        network->add_subcommand("create", "Create a network: NAME --subnet CIDR");
    network_create->add_option("name", name, "Network name (also the bridge's name)")->required();
    network_create->add_option("--subnet", subnet, "Its subnet, e.g. 10.89.0.0/24")->required();
    network_create->callback([&] {
      action = [&] {
        auto n = networks().create(name, subnet);
        if (!n) return report(n.error());
        if (g.json) {
          std::cout << json(*n).dump(2) << "\n";
        } else {
          say("created network " + n->name + " (" + n->subnet.to_string() + ", gateway " +
              n->gateway.to_string() + ")");
        }
        return int(kExitOk);
      };
    });
    auto* network_list = network->add_subcommand("list", "List networks");
    network_list->alias("ls");
    network_list->callback([&] {
      action = [&] {
        auto all = networks().list();
        if (!all) return report(all.error());
        if (g.json) {
          std::cout << json(*all).dump(2) << "\n";
          return int(kExitOk);
        }
        Table t({"NAME", "SUBNET", "GATEWAY", "VES"});
        for (const auto& n : *all)
          t.add({n.name, n.subnet.to_string(), n.gateway.to_string(),
                 std::to_string(n.leases.size())});
        std::cout << t.render();
        return int(kExitOk);
      };
    });
    auto* network_remove = network->add_subcommand("remove", "Remove a network no VE is on");
    network_remove->alias("rm");
    network_remove->add_option("name", name, "Network name")->required();
    network_remove->callback([&] {
      action = [&] {
        auto store = networks();
        if (auto st = net::remove_network(store, name); !st) return report(st.error());
        say("removed network " + name);
        return int(kExitOk);
      };
    });
  }

  // disk
  if (declares({"disk"})) {
    auto* disk = app.add_subcommand("disk", "Hot-plug disks into a running UML VE");
    disk->require_subcommand(1);
    auto* disk_attach =
        disk->add_subcommand("attach", "Attach a host file as a disk: NAME FILE [--read-only]");
    disk_attach->add_option("name", name, "VE name")->required();
    disk_attach->add_option("file", disk_file, "Host file (or block device) to attach")->required();
    disk_attach->add_flag("-r,--read-only", disk_read_only, "The guest may only read it");
    disk_attach->footer(
        "Prints the guest's device. The disk stays until detached or the VE stops.\n\n"
        "Examples:\n"
        "  mke2fs -q -t ext4 data.img 1G && kapsel disk attach u1 data.img\n"
        "  kapsel exec u1 -- mount /dev/ubdb /mnt");
    disk_attach->callback([&] {
      action = [&] {
        auto device = lifecycle()->attach_disk(name, disk_file, disk_read_only);
        if (!device) return report(device.error());
        if (g.json) {
          std::cout << json{{"device", *device}}.dump(2) << "\n";
        } else {
          say("attached " + disk_file + " to VE " + name + " as " + *device);
        }
        return int(kExitOk);
      };
    });
    auto* disk_detach =
        disk->add_subcommand("detach", "Detach a hot-plugged disk: NAME DEVICE (e.g. ubdb)");
    disk_detach->add_option("name", name, "VE name")->required();
    disk_detach->add_option("device", disk_file, "The guest's device, as attach printed it")
        ->required();
    disk_detach->footer(
        "The guest must not use it (unmount it first).\n\n"
        "Example:\n  kapsel disk detach u1 /dev/ubdb");
    disk_detach->callback([&] {
      action = [&] {
        auto st = lifecycle()->detach_disk(name, disk_file);
        if (st) say("detached " + disk_file + " from VE " + name);
        return report(st);
      };
    });
  }

  // gc
  if (declares({"gc"})) {
    auto* gc = app.add_subcommand(
        "gc", "Clean up after VEs whose monitor was killed: cgroups, veths, runtime files, leases");
    gc->callback([&] {
      action = [&] {
        auto st = lifecycle()->gc();
        if (st) say("cleaned up");
        return report(st);
      };
    });
  }

  // template
  if (declares({"template"})) {
    auto* tmpl = app.add_subcommand("template", "Manage templates");
    tmpl->require_subcommand(1);
    auto* tmpl_list = tmpl->add_subcommand("list", "List templates in the store");
    tmpl->footer("Example:\n  kapsel template list");
    tmpl_list->footer("Example:\n  kapsel template list --json");
    tmpl_list->callback([&] {
      action = [&]() -> int {
        store::Store store(store::Paths::resolve(g.root, g.run_dir));
        auto templates = image::TemplateStore(store.templates_dir()).list();
        if (!templates) return report(templates.error());
        if (g.json) {
          json out = json::array();
          for (const auto& t : *templates) {
            out.push_back({{"id", t.id},
                           {"spec", t.spec},
                           {"rootfs", t.rootfs},
                           {"init", t.init},
                           {"size_bytes", t.size_bytes},
                           {"created", t.created}});
          }
          std::cout << out.dump(2) << "\n";
          return kExitOk;
        }
        Table t({"ID", "SOURCE", "SIZE", "INIT", "CREATED"});
        for (const auto& x : *templates)
          t.add({x.id, x.spec, human_bytes(x.size_bytes), x.init, human_time(x.created)});
        std::cout << t.render();
        return kExitOk;
      };
    });
  }

  // procfs-service: the /proc service of a run dir, started by `kapsel start` (hidden: not for
  // people to run). It exits by itself a minute after the last VE of its run dir has stopped;
  // --stop ends it at once (for scripts that check for leftover mounts, or before an upgrade).
  if (declares({"procfs-service"})) {
    auto* procfs_cmd = app.add_subcommand("procfs-service", "Serve the VEs' virtual /proc files");
    procfs_cmd->group("");
    procfs_cmd->add_flag("--stop", procfs_stop, "Stop the service of the run dir and unmount it");
    procfs_cmd->callback([&] {
      action = [&] {
        auto paths = store::Paths::resolve(g.root, g.run_dir);
        if (!procfs_stop) return procfs::serve(paths);
        return report(procfs::stop_service(paths));
      };
    });
  }

  // Everything after the first "--" is the command for exec/run, taken before CLI11 sees it:
  // a command's own flags ("sh -c ...") must never be read as kapsel's.
  std::vector<std::string> trailing;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      trailing.assign(argv + i + 1, argv + argc);
      had_separator = true;
      argc = i;
      break;
    }
  }
  trace::point("cli: commands declared");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0 that CLI11 prints itself.
    if (e.get_exit_code() == 0) return app.exit(e);
    return report(usage_error(app, e));
  }
  if (!action)
    return report(fail(ErrorKind::usage, "missing command (see 'kapsel --help')").value());
  if (had_separator && !(exec && exec->parsed()) && !(run_cmd && run_cmd->parsed()))
    return report(fail(ErrorKind::usage, "'--' is only used by exec and run").value());
  command_tail = std::move(trailing);
  if (auto st = require_root(app); !st) return report(st.error());
  trace::point("cli: parsed");
  return action();
}

}  // namespace kapsel::cli
