#include "oci/hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "common/unique_fd.hpp"

namespace kapsel::oci {
namespace {

// In the forked hook process: joins the container's namespaces (those that differ from ours:
// joining one's own mount namespace is refused). Joining the mount namespace makes the
// container's root this process's root. Returns an errno, or 0.
int join_container(pid_t init) {
  static constexpr std::pair<const char*, int> kNamespaces[] = {{"mnt", CLONE_NEWNS},
                                                                {"uts", CLONE_NEWUTS},
                                                                {"ipc", CLONE_NEWIPC},
                                                                {"net", CLONE_NEWNET},
                                                                {"cgroup", CLONE_NEWCGROUP}};
  int flags = 0;
  for (const auto& [name, flag] : kNamespaces) {
    struct stat theirs {
    }, ours{};
    std::string path = "/proc/" + std::to_string(init) + "/ns/" + name;
    if (::stat(path.c_str(), &theirs) != 0) return errno;
    if (::stat((std::string("/proc/self/ns/") + name).c_str(), &ours) != 0) return errno;
    if (theirs.st_ino != ours.st_ino || theirs.st_dev != ours.st_dev) flags |= flag;
  }
  if (flags == 0) return 0;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, init, 0));
  if (pidfd < 0) return errno;
  // One call for all of them (Linux 5.8): they are entered together or not at all.
  int r = ::setns(pidfd, flags);
  int err = r == 0 ? 0 : errno;
  ::close(pidfd);
  return err;
}

Status run_hook(const Hook& hook, const std::string& state_json, HookPlace place,
                pid_t container_init) {
  int in[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return errno_fail("hook " + hook.path);
  UniqueFd read_end(in[0]), write_end(in[1]);
  std::vector<char*> argv, envp;
  for (const auto& a : hook.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : hook.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return errno_fail("hook " + hook.path + ": forking");
  if (pid == 0) {
    ::dup2(read_end.get(), STDIN_FILENO);
    if (place == HookPlace::runtime) {
      ::execve(hook.path.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    // createContainer's program is the runtime's: opened before the container's root becomes
    // ours, and run from that descriptor.
    int program = -1;
    if (place == HookPlace::container_runtime_path) {
      program = ::open(hook.path.c_str(), O_PATH | O_CLOEXEC);
      if (program < 0) ::_exit(127);
    }
    if (join_container(container_init) != 0) ::_exit(126);
    if (::chdir("/") != 0) ::_exit(126);
    if (program >= 0) {
      ::execveat(program, "", argv.data(), envp.data(), AT_EMPTY_PATH);
    } else {
      ::execve(hook.path.c_str(), argv.data(), envp.data());
    }
    ::_exit(127);
  }
  read_end.reset();
  // A hook that does not read its stdin must not block us: the state is small (far below a
  // pipe's buffer), and a closed pipe (EPIPE) is the hook's business.
  ::signal(SIGPIPE, SIG_IGN);
  (void)!::write(write_end.get(), state_json.data(), state_json.size());
  write_end.reset();
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  int timeout_ms = hook.timeout ? *hook.timeout * 1000 : -1;
  if (pidfd) {
    pollfd p{pidfd.get(), POLLIN, 0};
    int n;
    while ((n = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    if (n == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return fail(ErrorKind::failure,
                  "hook " + hook.path + " timed out after " + std::to_string(*hook.timeout) + " s");
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return errno_fail("hook " + hook.path + ": waiting");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  if (WIFEXITED(status) && WEXITSTATUS(status) == 126 && place != HookPlace::runtime)
    return fail(ErrorKind::failure,
                "hook " + hook.path + ": could not enter the container's namespaces");
  if (WIFEXITED(status))
    return fail(ErrorKind::failure,
                "hook " + hook.path + " exited with " + std::to_string(WEXITSTATUS(status)));
  return fail(ErrorKind::failure,
              "hook " + hook.path + " was killed by signal " + std::to_string(WTERMSIG(status)));
}

}  // namespace

Status run_hooks(const std::vector<Hook>& hooks, const std::string& state_json,
                 const std::string& what, HookPlace place, pid_t container_init) {
  for (const auto& h : hooks) KAPSEL_TRY(run_hook(h, state_json, place, container_init), what);
  return {};
}

}  // namespace kapsel::oci
