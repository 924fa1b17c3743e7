// Bad input and faults, through the real binary (the "Bad input and faults"): each bad
// request gets a one-line error naming the problem and a non-zero exit code, and leaves every
// VE as it was; a start that fails half-way rolls back; and when the monitor or the CLI is
// killed with SIGKILL at any point of start or stop, the next command tells the truth and
// stop/destroy clean everything up.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "harness.hpp"

namespace kapsel::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

// The contract for every refused request: the exit code, nothing on stdout, and exactly one
// line on stderr that starts with "kapsel: " and contains `needle`. With `after_progress`, the
// error may follow the progress lines of a template import that got under way ("kapsel:
// extracting"), which are not errors.
void expect_refused(const RunResult& r, int code, const std::string& needle,
                    const std::string& what, bool after_progress = false) {
  SCOPED_TRACE(what);
  EXPECT_EQ(r.exit_code, code) << r;
  EXPECT_EQ(r.out, "") << r;
  std::string err = r.err;
  if (after_progress) {
    for (size_t nl; (nl = err.find('\n')) != std::string::npos && nl + 1 < err.size();) {
      std::string line = err.substr(0, nl);
      EXPECT_TRUE(line.starts_with("kapsel: ") && line.find(": ", 8) == std::string::npos)
          << "not a progress line: " << line;
      err.erase(0, nl + 1);
    }
  }
  EXPECT_TRUE(err.starts_with("kapsel: ")) << r;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << r;
  EXPECT_TRUE(err.ends_with("\n")) << r;
  EXPECT_NE(err.find(needle), std::string::npos) << "expected '" << needle << "' in\n" << r;
}

// Every path under `dir` (relative to it), without descending into templates' root file
// systems: what a refused command must not change. File contents are compared where they are
// small and stable (configs).
void walk(const std::string& dir, const std::string& rel, std::vector<std::string>& out) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (auto* ent = ::readdir(d)) {
    std::string n = ent->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string path = dir + "/" + n;
    std::string r = rel + "/" + n;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (n == "config.json" || n == "template.json") r += " = " + read_text(path);
    out.push_back(r);
    // A template's tree and a running VE's mount point are not what commands change.
    if (S_ISDIR(st.st_mode) && n != "rootfs" && n != "upper" && n != "work") walk(path, r, out);
  }
}

std::vector<std::string> tree(const std::string& dir) {
  std::vector<std::string> out;
  walk(dir, "", out);
  return out;
}

std::string parent_of(const std::string& path) {
  return path.substr(0, path.rfind('/'));
}

// Host processes that hold a file open, or have their working directory, under `prefix`: a
// VE's monitor keeps its console log open in the VE's directory, so this finds monitors that
// outlived their VE. (The VE's own processes are found through their mounts.)
std::vector<pid_t> processes_using(const std::string& prefix) {
  std::vector<pid_t> found;
  DIR* proc = ::opendir("/proc");
  while (auto* ent = ::readdir(proc)) {
    pid_t pid = std::atoi(ent->d_name);
    if (pid <= 0 || pid == ::getpid()) continue;
    std::string base = "/proc/" + std::to_string(pid);
    std::vector<std::string> links = {base + "/cwd"};
    if (DIR* fds = ::opendir((base + "/fd").c_str())) {
      while (auto* f = ::readdir(fds)) {
        if (f->d_name[0] != '.') links.push_back(base + "/fd/" + f->d_name);
      }
      ::closedir(fds);
    }
    for (const auto& l : links) {
      char target[4096];
      ssize_t n = ::readlink(l.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      if (std::string(target, static_cast<size_t>(n)).starts_with(prefix) && process_alive(pid)) {
        found.push_back(pid);
        break;
      }
    }
  }
  ::closedir(proc);
  return found;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }

  void create_and_start(const std::string& name, const std::vector<std::string>& extra = {}) {
    ASSERT_TRUE(k.create_and_start(name, extra));
  }

  // `list --json` without the process counts, which change by themselves (init runs its boot
  // script for a moment after start).
  std::string list_json() {
    auto r = k.run({"list", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_array()) << r;
    if (!j.is_array()) return r.out;
    for (auto& ve : j) ve.erase("processes");
    return j.dump(2);
  }

  // The whole of kapsel's state, for before/after comparisons: `list --json` and the files.
  std::string snapshot() { return list_json() + join(tree(parent_of(k.root()))); }

  // A running VE that works: init alive and a command runs in it.
  void expect_running(const std::string& name, pid_t init = 0) {
    auto st = k.status(name);
    EXPECT_EQ(st["state"], "running") << st.dump(2);
    if (init != 0) {
      EXPECT_EQ(st["init_pid"], init) << st.dump(2);
    }
    EXPECT_TRUE(process_alive(st.value("init_pid", 0)));
    auto r = k.run({"exec", name, "--", "echo", "still-here"});
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(r.out, "still-here\n") << r;
  }

  // Nothing of a VE is left on the host: no cgroups, runtime directory, mounts or processes.
  void expect_nothing_left(const std::string& name, ino_t pid_ns = 0) {
    SCOPED_TRACE("leftovers of VE " + name);
    std::string ve_dir = k.root() + "/ves/" + name;
    EXPECT_TRUE(k.cgroup_dirs(name).empty()) << join(k.cgroup_dirs(name));
    struct stat st {};
    EXPECT_NE(::stat((k.run_dir() + "/ves/" + name).c_str(), &st), 0) << "runtime dir remains";
    EXPECT_TRUE(eventually([&] { return mounts_mentioning(ve_dir + "/").empty(); }))
        << join(mounts_mentioning(ve_dir + "/"));
    EXPECT_TRUE(eventually([&] { return processes_using(ve_dir + "/").empty(); }))
        << "processes still use " << ve_dir << ": " << processes_using(ve_dir + "/").size();
    if (pid_ns != 0) {
      EXPECT_TRUE(eventually([&] { return processes_in_pid_namespace(pid_ns).empty(); }))
          << processes_in_pid_namespace(pid_ns).size() << " processes left in the VE";
    }
  }

  // Waits until no command or monitor is half-way through a start or stop of the VE.
  nlohmann::json settled_status(const std::string& name) {
    nlohmann::json st;
    bool settled = eventually(
        [&] {
          st = k.status(name);
          return st["state"] == "running" || st["state"] == "stopped";
        },
        15000);
    EXPECT_TRUE(settled) << st.dump(2);
    return st;
  }

  // Checks that a status is true: a running VE has a live init that runs commands; a stopped
  // one has left nothing behind.
  void expect_truthful(const std::string& name, const nlohmann::json& st) {
    SCOPED_TRACE(st.dump(2));
    if (st["state"] == "running") {
      pid_t init = st["init_pid"];
      EXPECT_TRUE(process_alive(init));
      EXPECT_TRUE(process_alive(st["monitor_pid"]));
      EXPECT_FALSE(processes_in_pid_namespace(pid_namespace_inode(init)).empty());
      auto r = k.run({"exec", name, "--", "true"});
      EXPECT_EQ(r.exit_code, 0) << r;
    } else {
      EXPECT_FALSE(st.contains("init_pid"));
      expect_nothing_left(name);
    }
  }

  Kapsel k;
};

TEST_F(FaultsTest, UnknownVeIsNotFoundForEveryCommand) {
  create_and_start("keep");
  auto before = snapshot();
  const std::string needle = "no VE named 'ghost'";
  for (std::vector<std::string> args : {std::vector<std::string>{"start", "ghost"},
                                        {"stop", "ghost"},
                                        {"stop", "--kill", "ghost"},
                                        {"restart", "ghost"},
                                        {"status", "ghost"},
                                        {"status", "--json", "ghost"},
                                        {"destroy", "ghost"},
                                        {"destroy", "--force", "ghost"}}) {
    expect_refused(k.run(args), 3, needle, args[0] + " " + args[1]);
  }
  // exec and enter exit with the command's status, so kapsel's own failure is 125.
  expect_refused(k.run({"exec", "ghost", "--", "true"}), 125, needle, "exec");
  expect_refused(k.run({"exec", "-t", "ghost", "--", "true"}), 125, needle, "exec -t");
  expect_refused(k.run({"enter", "ghost"}), 125, needle, "enter");
  // Nothing was created for the unknown name, not even a lock file.
  EXPECT_EQ(snapshot(), before);
  expect_running("keep");
}

TEST_F(FaultsTest, DuplicateNameIsRefusedAndTheExistingVeIsUntouched) {
  create_and_start("dup");
  pid_t init = k.status("dup")["init_pid"];
  ASSERT_EQ(k.run({"exec", "dup", "--", "sh", "-c", "echo mine > /root/file"}).exit_code, 0);
  auto before = snapshot();
  expect_refused(k.run({"create", "dup"}), 4, "a VE named 'dup' already exists", "create");
  expect_refused(k.run({"create", "dup", "--hostname", "other"}), 4, "already exists",
                 "create --hostname");
  expect_refused(k.run({"run", "--name", "dup", "--", "true"}), 125, "already exists", "run");
  EXPECT_EQ(snapshot(), before);
  expect_running("dup", init);
  EXPECT_EQ(k.run({"exec", "dup", "--", "cat", "/root/file"}).out, "mine\n");
  EXPECT_EQ(k.run({"exec", "dup", "--", "hostname"}).out, "dup\n");
}

TEST_F(FaultsTest, InvalidNamesAreRefusedByEveryCommandAndTouchNothing) {
  create_and_start("keep");
  const std::string escape = "/tmp/kapsel-escape-" + std::to_string(::getpid());
  const std::vector<std::string> names = {
      "",
      ".",
      "..",
      "a/b",
      "/etc",
      "../escape",
      "../../escape",
      "../../../../../../../.." + escape,
      "x\x01y",
      "x\ny",
      "x\ty",
      "x\x7fy",
      "a b",
      "a*",
      "$(id)",
      "caf\xc3\xa9",
      ".hidden",
      "_under",
      std::string(65, 'a'),
      std::string(300, 'b'),
  };
  auto before = snapshot();
  for (const auto& name : names) {
    SCOPED_TRACE("name '" + printable(name) + "'");
    expect_refused(k.run({"create", name}), 2, "invalid VE name", "create");
    for (const char* cmd : {"start", "stop", "restart", "status", "destroy"})
      expect_refused(k.run({cmd, name}), 2, "invalid VE name", cmd);
    expect_refused(k.run({"destroy", "--force", name}), 2, "invalid VE name", "destroy --force");
    expect_refused(k.run({"exec", name, "--", "true"}), 125, "invalid VE name", "exec");
    expect_refused(k.run({"enter", name}), 125, "invalid VE name", "enter");
    // (`run --name ""` means "generate a name".)
    if (!name.empty())
      expect_refused(k.run({"run", "--name", name, "--", "true"}), 125, "invalid VE name", "run");
  }
  EXPECT_EQ(snapshot(), before);
  struct stat st {};
  EXPECT_NE(::stat((escape + ".lock").c_str(), &st), 0) << "a lock file escaped the run dir";
  EXPECT_NE(::stat(escape.c_str(), &st), 0);
  expect_running("keep");

  // Names that look like options are refused by the parser, with the same one-line contract.
  expect_refused(k.run({"create", "-rf"}), 2, "-rf", "create -rf");
  expect_refused(k.run({"start", "--bogus"}), 2, "--bogus", "start --bogus");
  EXPECT_EQ(snapshot(), before);

  // The longest valid name (64 bytes) works.
  std::string longest(64, 'z');
  auto c = k.run({"create", longest, "--hostname", "long"});
  EXPECT_EQ(c.exit_code, 0) << c;
  auto s = k.run({"start", longest});
  EXPECT_EQ(s.exit_code, 0) << s;
  EXPECT_EQ(k.run({"exec", longest, "--", "hostname"}).out, "long\n");
  EXPECT_EQ(k.run({"destroy", "--force", longest}).exit_code, 0);
}

TEST_F(FaultsTest, InvalidHostnameIsRefusedBeforeAnythingIsCreated) {
  create_and_start("keep");
  auto before = snapshot();
  for (const std::string& host : {std::string("bad host"), std::string("-x"), std::string(65, 'h'),
                                  std::string("a..b"), std::string("x_y")}) {
    expect_refused(k.run({"create", "h1", "--hostname", host}), 2, "invalid hostname",
                   "hostname '" + host + "'");
  }
  // A VE name that is not a valid hostname needs an explicit one.
  expect_refused(k.run({"create", "under_score"}), 2, "invalid hostname", "default hostname");
  EXPECT_EQ(snapshot(), before);
  expect_running("keep");
}

TEST_F(FaultsTest, MissingOrUnreadableTemplateLeavesNoVeAndNoHalfTemplate) {
  create_and_start("keep");
  std::string scratch = parent_of(k.root()) + "/scratch";
  ASSERT_EQ(::mkdir(scratch.c_str(), 0755), 0);
  // A file that is not an archive, an archive cut short, and a directory given as a tarball.
  std::string not_tar = scratch + "/not-a-tarball.tar";
  std::ofstream(not_tar) << "this is not an archive\n";
  std::string src = scratch + "/src";
  std::string cmd = "mkdir -p " + src + "/etc && head -c 2000000 /dev/urandom > " + src +
                    "/big && echo x > " + src + "/etc/motd && tar -C " + src + " -cf " + scratch +
                    "/cut.tar . && truncate -s 600000 " + scratch + "/cut.tar";
  ASSERT_EQ(std::system(cmd.c_str()), 0);

  auto templates_before = k.run({"template", "list", "--json"});
  ASSERT_EQ(templates_before.exit_code, 0) << templates_before;
  auto before = snapshot();
  struct Case {
    std::string spec;
    int code;
    std::string needle;
    bool import_starts = false;
  };
  const std::vector<Case> cases = {
      {"dir:/nonexistent", 3, "/nonexistent"},
      {"tar:/nonexistent", 3, "/nonexistent"},
      {"tar:" + not_tar, 1, not_tar},
      {"tar:" + scratch + "/cut.tar", 1, "Truncated", true},
      {"tar:" + scratch, 2, "not a regular file"},
      {"dir:" + not_tar, 2, "not a directory"},
      {"foo", 2, "unknown template 'foo'"},
      {"dir:", 2, "names no path"},
      {"", 2, "template"},
  };
  for (const auto& c : cases) {
    expect_refused(k.run({"create", "t1", "--template", c.spec}), c.code, c.needle,
                   "template '" + c.spec + "'", c.import_starts);
    expect_refused(k.run({"run", "--rm", "--name", "t2", "--template", c.spec, "--", "true"}), 125,
                   c.needle, "run with template '" + c.spec + "'", c.import_starts);
  }
  // No VE, no half-built template (.tmp-*), not even a lock file for the names.
  EXPECT_EQ(snapshot(), before);
  auto templates_after = k.run({"template", "list", "--json"});
  EXPECT_EQ(templates_after.out, templates_before.out);
  expect_running("keep");
}

// A user who is not root may run rootless VEs in a store of its own (UsernsTest.Rootless*), but
// neither touch root's store nor use the commands that need root.
TEST_F(FaultsTest, NotRootIsRefusedWithExitCodeSix) {
  create_and_start("keep");
  ASSERT_EQ(k.run({"create", "cold"}).exit_code, 0);
  auto before = snapshot();
  RunOptions nobody;
  nobody.uid = 65534;
  const std::vector<std::vector<std::string>> root_only = {
      {"restart", "keep"},
      {"template", "list"},
  };
  for (const auto& args : root_only)
    expect_refused(k.run(args, nobody), 6, "must be run as root", args[0]);
  // The rootless commands, pointed at root's store (KAPSEL_ROOT): its 0700 directories keep
  // them out, with the kernel's word for it.
  const std::vector<std::vector<std::string>> rootless = {
      {"list"},           {"list", "--json"},
      {"create", "new1"}, {"start", "cold"},
      {"stop", "keep"},   {"stop", "--kill", "keep"},
      {"status", "keep"}, {"destroy", "--force", "keep"},
  };
  for (const auto& args : rootless)
    expect_refused(k.run(args, nobody), 6, "Permission denied", args[0]);
  // (These exit with the command's codes: 125, kapsel could not run it.)
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"exec", "keep", "--", "true"},
        {"enter", "keep"},
        {"run", "--rm", "--", "true"}}) {
    auto r = k.run(args, nobody);
    EXPECT_NE(r.exit_code, 0) << args[0] << ": " << r;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << args[0] << ": " << r;
  }
  EXPECT_EQ(snapshot(), before);
  expect_running("keep");
}

TEST_F(FaultsTest, StartOfARunningVeIsAStateError) {
  create_and_start("busy");
  pid_t init = k.status("busy")["init_pid"];
  auto before = snapshot();
  expect_refused(k.run({"start", "busy"}), 5, "VE busy is already running", "start");
  EXPECT_EQ(snapshot(), before);
  expect_running("busy", init);
}

TEST_F(FaultsTest, DestroyOfARunningVeNeedsForce) {
  create_and_start("busy");
  pid_t init = k.status("busy")["init_pid"];
  auto before = snapshot();
  expect_refused(k.run({"destroy", "busy"}), 5, "VE busy is running", "destroy");
  EXPECT_NE(k.run({"destroy", "busy"}).err.find("--force"), std::string::npos);
  EXPECT_EQ(snapshot(), before);
  expect_running("busy", init);
  ino_t ns = pid_namespace_inode(init);
  auto forced = k.run({"destroy", "--force", "busy"});
  EXPECT_EQ(forced.exit_code, 0) << forced;
  expect_nothing_left("busy", ns);
  EXPECT_EQ(k.list().size(), 0u);
  // Nothing at all: the VE's lock file went with it.
  EXPECT_TRUE(tree(k.run_dir() + "/locks").empty()) << join(tree(k.run_dir() + "/locks"));
}

TEST_F(FaultsTest, ExecIntoAStoppedVeFailsWith125) {
  ASSERT_EQ(k.run({"create", "cold"}).exit_code, 0);
  auto before = snapshot();
  expect_refused(k.run({"exec", "cold", "--", "true"}), 125, "VE cold is not running", "exec");
  expect_refused(k.run({"exec", "-t", "cold", "--", "true"}), 125, "not running", "exec -t");
  expect_refused(k.run({"enter", "cold"}), 125, "not running", "enter");
  expect_refused(k.run({"stop", "cold"}), 5, "VE cold is not running", "stop");
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(k.status("cold")["state"], "stopped");
  expect_nothing_left("cold");
  // And it still starts.
  ASSERT_EQ(k.run({"start", "cold"}).exit_code, 0);
  expect_running("cold");
}

// A template without an init: the start fails in the VE's init process, after the monitor,
// cgroups, console and namespaces exist. All of it is rolled back.
TEST_F(FaultsTest, FailedStartRollsBackCompletely) {
  std::string tpl = parent_of(k.root()) + "/no-init";
  std::string cmd = "mkdir -p " + tpl + "/etc " + tpl + "/bin && echo hello > " + tpl +
                    "/etc/motd && cp /bin/true " + tpl + "/bin/";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  // And one whose init exists but cannot be executed.
  std::string tpl2 = parent_of(k.root()) + "/bad-init";
  cmd = "mkdir -p " + tpl2 + "/sbin && echo 'not a program' > " + tpl2 +
        "/sbin/init && chmod 644 " + tpl2 + "/sbin/init";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  create_and_start("keep");

  struct Case {
    std::string name, spec, needle;
  };
  for (const Case& c :
       {Case{"noinit", "dir:" + tpl, "/sbin/init"}, Case{"badinit", "dir:" + tpl2, "/sbin/init"}}) {
    SCOPED_TRACE(c.name);
    auto created = k.run({"create", c.name, "--template", c.spec});
    ASSERT_EQ(created.exit_code, 0) << created;
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto r = k.run({"start", c.name});
      EXPECT_NE(r.exit_code, 0) << r;
      EXPECT_TRUE(r.err.starts_with("kapsel: ")) << r;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
      EXPECT_NE(r.err.find(c.needle), std::string::npos) << r;
      EXPECT_EQ(r.out, "") << r;
      expect_nothing_left(c.name);
      auto st = k.status(c.name);
      EXPECT_EQ(st["state"], "stopped") << st.dump(2);
      EXPECT_EQ(st["last_exit"]["reason"], "start-failed") << st.dump(2);
      EXPECT_NE(st["last_exit"]["detail"].get<std::string>().find(c.needle), std::string::npos)
          << st.dump(2);
    }
    // A failed start is not running: exec and stop say so; destroy needs no --force.
    expect_refused(k.run({"exec", c.name, "--", "true"}), 125, "not running", "exec");
    expect_refused(k.run({"stop", c.name}), 5, "not running", "stop");
    auto destroyed = k.run({"destroy", c.name});
    EXPECT_EQ(destroyed.exit_code, 0) << destroyed;
    expect_nothing_left(c.name);
    struct stat sb {};
    EXPECT_NE(::stat((k.root() + "/ves/" + c.name).c_str(), &sb), 0);
  }
  // `run` with such a template removes its VE again.
  auto r = k.run({"run", "--rm", "--name", "r1", "--template", "dir:" + tpl, "--", "true"});
  EXPECT_EQ(r.exit_code, 125) << r;
  EXPECT_NE(r.err.find("/sbin/init"), std::string::npos) << r;
  expect_nothing_left("r1");
  ASSERT_EQ(k.list().size(), 1u) << k.list().dump(2);
  expect_running("keep");
}

TEST_F(FaultsTest, MonitorKilledBySigkillIsNoticedAndCleanedUp) {
  for (const char* first_command : {"status", "list", "start", "destroy"}) {
    SCOPED_TRACE(std::string("first command after the kill: ") + first_command);
    const std::string name = "mon";
    create_and_start(name);
    auto st = k.status(name);
    pid_t monitor = st["monitor_pid"];
    pid_t init = st["init_pid"];
    ino_t ns = pid_namespace_inode(init);
    ASSERT_NE(ns, 0u);
    // More than init: a background process and a running exec.
    ASSERT_EQ(k.run({"exec", name, "--", "sh", "-c", "sleep 1000 >/dev/null 2>&1 &"}).exit_code, 0);
    pid_t exec_cli = k.spawn({"exec", name, "--", "sleep", "1000"});
    ASSERT_TRUE(eventually([&] { return processes_in_pid_namespace(ns).size() >= 4; }));
    ASSERT_FALSE(k.cgroup_dirs(name).empty());

    ASSERT_EQ(::kill(monitor, SIGKILL), 0);
    ASSERT_TRUE(eventually([&] { return !process_alive(monitor); }));

    const std::string first = first_command;
    if (first == "status") {
      auto after = k.status(name);
      EXPECT_EQ(after["state"], "stopped") << after.dump(2);
      EXPECT_EQ(after["last_exit"]["reason"], "monitor-lost") << after.dump(2);
      EXPECT_FALSE(after.contains("init_pid")) << after.dump(2);
    } else if (first == "list") {
      auto list = k.list();
      ASSERT_EQ(list.size(), 1u);
      EXPECT_EQ(list[0]["state"], "stopped") << list.dump(2);
      EXPECT_EQ(list[0]["last_exit"]["reason"], "monitor-lost") << list.dump(2);
    } else if (first == "start") {
      // A VE whose monitor died can simply be started again.
      auto r = k.run({"start", name});
      EXPECT_EQ(r.exit_code, 0) << r;
      EXPECT_TRUE(processes_in_pid_namespace(ns).empty());
      expect_running(name);
      ASSERT_EQ(k.run({"stop", "--kill", name}).exit_code, 0);
    } else {
      // Not running any more, so no --force is needed.
      auto d = k.run({"destroy", name});
      EXPECT_EQ(d.exit_code, 0) << d;
    }
    expect_nothing_left(name, ns);
    // The exec'd command died with the VE, and its kapsel exited.
    int status = 0;
    bool reaped = eventually([&] { return ::waitpid(exec_cli, &status, WNOHANG) == exec_cli; });
    EXPECT_TRUE(reaped);
    if (!reaped) {
      ::kill(exec_cli, SIGKILL);
      ::waitpid(exec_cli, &status, 0);
    }
    if (first != "destroy") {
      auto d = k.run({"destroy", name});
      EXPECT_EQ(d.exit_code, 0) << d;
      expect_nothing_left(name, ns);
    }
    EXPECT_EQ(k.list().size(), 0u);
  }
}

// The monitor ignores SIGPIPE and blocks the signals it reads from a signalfd; none of that may
// reach the VE's processes (both survive fork and execve), neither at the first start nor when
// the monitor starts init again after a reboot inside the VE.
TEST_F(FaultsTest, TheVesInitStartsWithACleanSignalState) {
  create_and_start("sig");
  // busybox init blocks the signals it handles for moments of its own, so its mask must be
  // seen empty once, not every time; nothing may be ignored at all.
  std::string last;
  auto clean = [&] {
    auto r = k.run({"exec", "sig", "--", "sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/1/status"});
    EXPECT_EQ(r.exit_code, 0) << r;
    last = r.out;
    return r.out == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n";
  };
  EXPECT_TRUE(eventually(clean, 3000)) << last;
  pid_t first_init = k.status("sig")["init_pid"];
  (void)k.run({"exec", "sig", "--", "reboot"});
  ASSERT_TRUE(eventually(
      [&] {
        auto st = k.status("sig");
        return st["state"] == "running" && st["init_pid"] != first_init;
      },
      10000))
      << k.status("sig").dump(2);
  EXPECT_TRUE(eventually(clean, 3000)) << last;
  // And a stop still works after the reboot.
  auto stop = k.run({"stop", "sig"});
  EXPECT_EQ(stop.exit_code, 0) << stop;
  EXPECT_EQ(k.status("sig")["last_exit"]["reason"], "halted");
  expect_nothing_left("sig");
}

// Kills `kapsel ARGS` with SIGKILL `delay` after starting it, and reaps it.
void kill_after(const Kapsel& k, const std::vector<std::string>& args, milliseconds delay) {
  pid_t pid = k.spawn(args);
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(delay);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

const std::vector<int> kKillDelaysMs = {0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50};

TEST_F(FaultsTest, CliKilledDuringStartLeavesATruthfulState) {
  const std::string name = "ks";
  ASSERT_EQ(k.run({"create", name}).exit_code, 0);
  // Other commands look at the VE all the while, as a monitoring script would: one of them
  // arriving just after the kill must not mistake a start that its monitor is still carrying
  // out for the leftovers of a dead one.
  std::atomic<bool> done = false;
  auto watcher = std::async(std::launch::async, [&] {
    while (!done) (void)k.run({"status", name});
  });
  int ran = 0, stopped = 0;
  for (int delay : kKillDelaysMs) {
    for (int round = 0; round < 2; ++round) {
      SCOPED_TRACE("start killed after " + std::to_string(delay) + " ms, round " +
                   std::to_string(round));
      kill_after(k, {"start", name}, milliseconds(delay));
      auto st = settled_status(name);
      expect_truthful(name, st);
      bool running = st["state"] == "running";
      (running ? ran : stopped)++;
      ino_t ns = running ? pid_namespace_inode(st["init_pid"]) : 0;
      if (round == 0) {
        // Stop cleans up whatever the start left; a start that never began is "not running".
        auto r = k.run({"stop", "--kill", name});
        EXPECT_EQ(r.exit_code, running ? 0 : 5) << r;
        expect_nothing_left(name, ns);
        EXPECT_EQ(k.status(name)["state"], "stopped");
      } else {
        auto r = k.run({"destroy", "--force", name});
        EXPECT_EQ(r.exit_code, 0) << r;
        expect_nothing_left(name, ns);
        EXPECT_EQ(k.list().size(), 0u);
        ASSERT_EQ(k.run({"create", name}).exit_code, 0);
      }
    }
  }
  done = true;
  watcher.get();
  // Both outcomes should have been seen; if not, the delays no longer straddle a start.
  RecordProperty("killed_before_running", stopped);
  RecordProperty("killed_after_running", ran);
  // A start after all that works normally.
  ASSERT_EQ(k.run({"start", name}).exit_code, 0);
  expect_running(name);
}

TEST_F(FaultsTest, CliKilledDuringStopLeavesATruthfulState) {
  const std::string name = "kt";
  ASSERT_EQ(k.run({"create", name}).exit_code, 0);
  std::vector<int> delays = kKillDelaysMs;
  delays.push_back(300);
  delays.push_back(1000);
  for (int delay : delays) {
    for (const char* mode : {"graceful", "kill"}) {
      SCOPED_TRACE(std::string(mode) + " stop killed after " + std::to_string(delay) + " ms");
      auto s = k.run({"start", name});
      ASSERT_EQ(s.exit_code, 0) << s;
      ino_t ns = pid_namespace_inode(k.status(name)["init_pid"]);
      std::vector<std::string> args = {"stop", name};
      if (std::string(mode) == "kill") args.insert(args.begin() + 1, "--kill");
      kill_after(k, args, milliseconds(delay));
      // The VE may still be on its way down (init was asked to halt), so a "running" answer
      // must become "stopped" by itself or stay true.
      auto st = settled_status(name);
      if (st["state"] == "running" && !process_alive(st["init_pid"])) st = settled_status(name);
      expect_truthful(name, st);
      auto r = k.run({"destroy", "--force", name});
      EXPECT_EQ(r.exit_code, 0) << r;
      expect_nothing_left(name, ns);
      ASSERT_EQ(k.run({"create", name}).exit_code, 0);
    }
  }
}

TEST_F(FaultsTest, ConcurrentStartsOfOneVeAreSerialised) {
  ASSERT_EQ(k.run({"create", "race"}).exit_code, 0);
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto a = std::async(std::launch::async, [&] { return k.run({"start", "race"}); });
    auto b = std::async(std::launch::async, [&] { return k.run({"start", "race"}); });
    auto ra = a.get();
    auto rb = b.get();
    int ok = (ra.exit_code == 0) + (rb.exit_code == 0);
    EXPECT_EQ(ok, 1) << ra << rb;
    const RunResult& loser = ra.exit_code == 0 ? rb : ra;
    expect_refused(loser, 5, "VE race is already running", "the second start");
    expect_running("race");
    // One monitor (it holds the console log open in the VE's directory).
    EXPECT_EQ(processes_using(k.root() + "/ves/race/").size(), 1u);
    auto stop = k.run({"stop", "--kill", "race"});
    ASSERT_EQ(stop.exit_code, 0) << stop;
    expect_nothing_left("race");
  }
}

// destroy deletes the VE's lock file while it holds the lock; commands that were waiting for
// it must not end up holding a lock on the deleted file beside one on a new file.
TEST_F(FaultsTest, DestroyRacingWithCreateAndStartLeavesOneConsistentVe) {
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    create_and_start("rc");
    std::vector<std::future<RunResult>> runs;
    runs.push_back(std::async(std::launch::async, [&] {
      return k.run({"destroy", "--force", "rc"});
    }));
    for (int i = 0; i < 3; ++i) {
      runs.push_back(std::async(std::launch::async, [&] {
        auto c = k.run({"create", "rc"});
        return c.exit_code == 0 || c.exit_code == 4 ? k.run({"start", "rc"}) : c;
      }));
    }
    int started = 0;
    for (auto& f : runs) {
      auto r = f.get();
      if (r.out.starts_with("started")) ++started;
      EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 3 || r.exit_code == 4 || r.exit_code == 5)
          << r;
    }
    auto list = k.list();
    ASSERT_LE(list.size(), 1u) << list.dump(2);
    // However the commands interleaved: one VE at most, with one monitor, and the truth told.
    EXPECT_LE(processes_using(k.root() + "/ves/rc/").size(), 1u);
    if (list.size() == 1) expect_truthful("rc", settled_status("rc"));
    auto d = k.run({"destroy", "--force", "rc"});
    EXPECT_TRUE(d.exit_code == 0 || d.exit_code == 3) << d;
    expect_nothing_left("rc");
    EXPECT_TRUE(tree(k.run_dir() + "/locks").empty()) << join(tree(k.run_dir() + "/locks"));
    RecordProperty("round_" + std::to_string(round) + "_starts", started);
  }
}

TEST_F(FaultsTest, CommandsOnDifferentVesProceedInParallel) {
  create_and_start("a");
  ASSERT_EQ(k.run({"create", "b"}).exit_code, 0);
  auto slow = std::async(std::launch::async, [&] {
    return k.run({"exec", "a", "--", "sh", "-c", "sleep 2; echo slept"});
  });
  std::this_thread::sleep_for(milliseconds(300));
  auto t0 = steady_clock::now();
  auto start_b = k.run({"start", "b"});
  auto status_a = k.run({"status", "a"});
  auto exec_b = k.run({"exec", "b", "--", "true"});
  auto stop_b = k.run({"stop", "--kill", "b"});
  auto elapsed = steady_clock::now() - t0;
  EXPECT_EQ(start_b.exit_code, 0) << start_b;
  EXPECT_EQ(status_a.exit_code, 0) << status_a;
  EXPECT_EQ(exec_b.exit_code, 0) << exec_b;
  EXPECT_EQ(stop_b.exit_code, 0) << stop_b;
  EXPECT_LT(elapsed, milliseconds(1200)) << "commands on b waited for the exec in a";
  EXPECT_EQ(slow.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "the exec in a ended too early for this test to mean anything";
  auto r = slow.get();
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "slept\n");
}

}  // namespace
}  // namespace kapsel::testing
