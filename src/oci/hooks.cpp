#include "oci/hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/unique_fd.hpp"

namespace kapsel::oci {
namespace {

Status run_hook(const Hook& hook, const std::string& state_json) {
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
    ::execve(hook.path.c_str(), argv.data(), envp.data());
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
  if (WIFEXITED(status))
    return fail(ErrorKind::failure,
                "hook " + hook.path + " exited with " + std::to_string(WEXITSTATUS(status)));
  return fail(ErrorKind::failure,
              "hook " + hook.path + " was killed by signal " + std::to_string(WTERMSIG(status)));
}

}  // namespace

Status run_hooks(const std::vector<Hook>& hooks, const std::string& state_json,
                 const std::string& what) {
  for (const auto& h : hooks) KAPSEL_TRY(run_hook(h, state_json), what);
  return {};
}

}  // namespace kapsel::oci
