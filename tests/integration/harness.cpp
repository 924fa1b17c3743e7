#include "harness.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace kapsel::testing {

std::ostream& operator<<(std::ostream& os, const RunResult& r) {
  return os << "exit " << r.exit_code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Kapsel::Kapsel() {
  char tmpl[] = "/tmp/kapsel-it.XXXXXX";
  if (!::mkdtemp(tmpl)) std::abort();
  base_ = tmpl;
  root_ = base_ + "/root";
  run_dir_ = base_ + "/run";
  // A cgroup parent of our own: the test never touches real VEs' cgroups.
  cgroup_parent_ = "kapsel-it-" + std::to_string(::getpid());
}

Kapsel::~Kapsel() {
  // Whatever a failed test left running is destroyed, then the directories go.
  if (::geteuid() == 0) {
    auto names = run({"list", "--json"});
    if (names.exit_code == 0) {
      auto j = nlohmann::json::parse(names.out, nullptr, false);
      if (j.is_array()) {
        for (const auto& ve : j) run({"destroy", "--force", ve["name"].get<std::string>()});
      }
    }
    // The /proc service of this run dir (one per run dir, started by the first VE), which
    // would stay for a minute after the last VE.
    run({"procfs-service", "--stop"});
    for (const char* h : {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
                          "pids", "unified", "systemd", ""}) {
      std::string dir = std::string("/sys/fs/cgroup/") + h + "/" + cgroup_parent_;
      ::rmdir(dir.c_str());
    }
  }
  std::string cmd = "rm -rf '" + base_ + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", base_.c_str());
}

std::vector<std::string> Kapsel::env() const {
  return {"KAPSEL_ROOT=" + root_, "KAPSEL_RUN_DIR=" + run_dir_,
          "KAPSEL_CGROUP_PARENT=" + cgroup_parent_, "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
          "TERM=dumb"};
}

void exec_kapsel(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<char*> argv{const_cast<char*>(KAPSEL_BINARY)};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ::execve(KAPSEL_BINARY, argv.data(), envp.data());
  ::_exit(127);
}

void enter_netns(const std::string& path) {
  if (path.empty()) return;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) ::_exit(126);
  ::close(fd);
}

::testing::AssertionResult Kapsel::create_and_start(const std::string& name,
                                                    const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {"create", name};
  args.insert(args.end(), extra.begin(), extra.end());
  if (auto c = run(args); c.exit_code != 0) return ::testing::AssertionFailure() << "create: " << c;
  if (auto s = run({"start", name}); s.exit_code != 0)
    return ::testing::AssertionFailure() << "start: " << s;
  return ::testing::AssertionSuccess();
}

RunResult Kapsel::sh(const std::string& name, const std::string& script,
                     const RunOptions& options) const {
  return run({"exec", name, "--", "sh", "-c", script}, options);
}

RunResult Kapsel::run(const std::vector<std::string>& args, const RunOptions& options) const {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) std::abort();
  auto environment = options.env.empty() ? env() : options.env;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    enter_netns(netns_);  // while still root
    if (options.uid != 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(options.gid ? options.gid : options.uid) != 0 ||
         ::setuid(options.uid) != 0))
      ::_exit(126);
    exec_kapsel(args, environment);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  ::signal(SIGPIPE, SIG_IGN);
  if (!options.input.empty()) (void)!::write(in[1], options.input.data(), options.input.size());
  ::close(in[1]);
  RunResult r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(options.timeout_seconds);
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      r.err += "\n[harness: timed out after " + std::to_string(options.timeout_seconds) + "s]";
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      } else {
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

pid_t Kapsel::spawn(const std::vector<std::string>& args) const {
  auto environment = env();
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    enter_netns(netns_);
    exec_kapsel(args, environment);
  }
  return pid;
}

nlohmann::json Kapsel::list() const {
  auto r = run({"list", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r;
  return nlohmann::json::parse(r.out, nullptr, false);
}

nlohmann::json Kapsel::status(const std::string& name) const {
  auto r = run({"status", "--json", name});
  EXPECT_EQ(r.exit_code, 0) << r;
  return nlohmann::json::parse(r.out, nullptr, false);
}

std::vector<std::string> Kapsel::cgroup_dirs(const std::string& ve) const {
  std::vector<std::string> found;
  DIR* d = ::opendir("/sys/fs/cgroup");
  if (!d) return found;
  while (auto* ent = ::readdir(d)) {
    if (ent->d_name[0] == '.') continue;
    std::string dir =
        std::string("/sys/fs/cgroup/") + ent->d_name + "/" + cgroup_parent_ + "/" + ve;
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) found.push_back(dir);
  }
  ::closedir(d);
  std::string v2 = "/sys/fs/cgroup/" + cgroup_parent_ + "/" + ve;
  struct stat st {};
  if (::stat(v2.c_str(), &st) == 0) found.push_back(v2);
  return found;
}

bool process_alive(pid_t pid) {
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

static std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  DIR* d = ::opendir("/proc");
  while (auto* ent = ::readdir(d)) {
    pid_t pid = std::atoi(ent->d_name);
    if (pid > 0) pids.push_back(pid);
  }
  ::closedir(d);
  return pids;
}

ino_t pid_namespace_inode(pid_t pid) {
  struct stat st {};
  if (::stat(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), &st) != 0) return 0;
  return st.st_ino;
}

std::vector<pid_t> processes_in_pid_namespace(ino_t ns_inode) {
  std::vector<pid_t> found;
  for (pid_t pid : all_pids()) {
    if (pid_namespace_inode(pid) == ns_inode && process_alive(pid)) found.push_back(pid);
  }
  return found;
}

std::vector<std::string> mounts_mentioning(const std::string& needle) {
  std::vector<std::string> lines;
  for (pid_t pid : all_pids()) {
    std::istringstream in(read_text("/proc/" + std::to_string(pid) + "/mountinfo"));
    for (std::string line; std::getline(in, line);) {
      if (line.find(needle) != std::string::npos)
        lines.push_back("pid " + std::to_string(pid) + ": " + line);
    }
  }
  return lines;
}

bool eventually(const std::function<bool()>& pred, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

}  // namespace kapsel::testing
