// kapsel-agent: the guest side of `kapsel exec` and `kapsel enter` for VEs with a kernel of
// their own (uml now, vm later). A static binary placed in the guest's root file system and
// started by its init (inittab: respawn), it serves the framed protocol of agent/protocol.hpp
// on one byte stream, the device named by its argument (a UML serial line, /dev/ttyS1): it
// runs each session's command with pipes (or a pty), relays their bytes, and reports the exit
// code. Single-threaded: one poll loop over the line and every session's descriptors.
//
// Built outside kapsel_core, statically, from this file and agent/protocol.cpp only.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "agent/guest_network.hpp"
#include "agent/protocol.hpp"

namespace {

using kapsel::agent::ExecSpec;
using kapsel::agent::Frame;
using kapsel::agent::FrameType;

int g_line = -1;

// Writes all of `data` to a blocking descriptor.
bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
      if (errno == EAGAIN) {
        struct pollfd pfd {
          fd, POLLOUT, 0
        };
        (void)::poll(&pfd, 1, 1000);
      }
      continue;
    }
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

void send(std::uint32_t session, FrameType type, std::string payload = {}) {
  std::string bytes = kapsel::agent::encode(Frame{session, type, std::move(payload)});
  (void)write_all(g_line, bytes.data(), bytes.size());
}

struct Session {
  pid_t pid = -1;
  int in = -1;             // the command's stdin (pipe write end, or the pty master)
  int out = -1;            // its stdout (or the pty master)
  int err = -1;            // its stderr; -1 with a pty
  std::string pending_in;  // input not yet taken by the command
  bool in_eof = false;     // the host sent end of input: close `in` once pending_in is written
  bool tty = false;
  bool exited = false;
  int code = 0;
};

std::map<std::uint32_t, Session> g_sessions;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

[[noreturn]] void child_fail(const char* what, int err, int code) {
  std::string msg = std::string("kapsel-agent: ") + what + ": " + std::strerror(err) + "\n";
  (void)!::write(STDERR_FILENO, msg.data(), msg.size());
  ::_exit(code);
}

void start(std::uint32_t id, const ExecSpec& spec) {
  Session s;
  s.tty = spec.tty;
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  int master = -1, slave = -1;
  if (spec.tty) {
    master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
      send(id, FrameType::error, std::string("allocating a pty: ") + std::strerror(errno));
      send(id, FrameType::exit, kapsel::agent::encode_i32(125));
      close_fd(master);
      return;
    }
    struct winsize ws {};
    ws.ws_row = spec.rows;
    ws.ws_col = spec.cols;
    ::ioctl(master, TIOCSWINSZ, &ws);
    slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  } else if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 ||
             ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    send(id, FrameType::error, std::string("creating pipes: ") + std::strerror(errno));
    send(id, FrameType::exit, kapsel::agent::encode_i32(125));
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
      if (fd >= 0) ::close(fd);
    return;
  }
  std::vector<std::string> env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"};
  if (spec.tty) env.emplace_back("TERM=xterm");
  for (const auto& e : spec.env) env.push_back(e);
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec.argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    if (spec.tty) {
      ::ioctl(slave, TIOCSCTTY, 0);
      for (int fd = 0; fd <= 2; ++fd) ::dup2(slave, fd);
    } else {
      ::dup2(in_pipe[0], 0);
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (::chdir(spec.cwd.c_str()) != 0)
      child_fail(("cannot change to " + spec.cwd).c_str(), errno, 125);
    // execvpe searches the PATH of the command's environment.
    for (const auto& e : env)
      if (e.rfind("PATH=", 0) == 0) ::setenv("PATH", e.c_str() + 5, 1);
    ::execvpe(argv[0], argv.data(), envp.data());
    int e = errno;
    child_fail(("cannot run '" + spec.argv[0] + "'").c_str(), e, e == ENOENT ? 127 : 126);
  }
  if (pid < 0) {
    send(id, FrameType::error, std::string("fork: ") + std::strerror(errno));
    send(id, FrameType::exit, kapsel::agent::encode_i32(125));
  }
  if (spec.tty) {
    close_fd(slave);
    s.in = master;
    s.out = ::dup(master);
  } else {
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    s.in = in_pipe[1];
    s.out = out_pipe[0];
    s.err = err_pipe[0];
  }
  if (pid < 0) {
    close_fd(s.in);
    close_fd(s.out);
    close_fd(s.err);
    return;
  }
  ::fcntl(s.in, F_SETFL, ::fcntl(s.in, F_GETFL) | O_NONBLOCK);
  s.pid = pid;
  g_sessions[id] = std::move(s);
}

// Writes what the command will take of its pending input, without blocking: a command that
// does not read must not stall the other sessions (or this one's output).
void flush_input(Session& s) {
  while (!s.pending_in.empty() && s.in >= 0) {
    ssize_t w = ::write(s.in, s.pending_in.data(), s.pending_in.size());
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return;
    if (w <= 0) {
      s.pending_in.clear();  // the command closed its input
      break;
    }
    s.pending_in.erase(0, static_cast<std::size_t>(w));
  }
  // With a pty, end of input is the terminal's EOF character; the master stays open.
  if (s.pending_in.empty() && s.in_eof && !s.tty && s.in >= 0) close_fd(s.in);
}

void on_frame(const Frame& f) {
  if (f.type == FrameType::exec) {
    if (g_sessions.count(f.session)) return;
    auto spec = kapsel::agent::decode_exec(f.payload);
    if (!spec) {
      send(f.session, FrameType::error, "malformed exec request");
      send(f.session, FrameType::exit, kapsel::agent::encode_i32(125));
      return;
    }
    start(f.session, *spec);
    return;
  }
  auto it = g_sessions.find(f.session);
  if (it == g_sessions.end()) return;
  Session& s = it->second;
  switch (f.type) {
    case FrameType::stdin_:
      if (f.payload.empty()) {
        s.in_eof = true;
      } else {
        s.pending_in += f.payload;
      }
      flush_input(s);
      break;
    case FrameType::resize: {
      std::uint16_t rows = 0, cols = 0;
      if (s.tty && s.in >= 0 && kapsel::agent::decode_size(f.payload, rows, cols)) {
        struct winsize ws {};
        ws.ws_row = rows;
        ws.ws_col = cols;
        ::ioctl(s.in, TIOCSWINSZ, &ws);
      }
      break;
    }
    case FrameType::signal:
      if (auto sig = kapsel::agent::decode_i32(f.payload); sig && !s.exited) ::kill(-s.pid, *sig);
      break;
    case FrameType::close:
      // The caller has gone: the session's process group is hung up and killed.
      if (!s.exited) {
        ::kill(-s.pid, SIGHUP);
        ::kill(-s.pid, SIGKILL);
        ::kill(s.pid, SIGKILL);
      }
      break;
    default:
      break;
  }
}

// Reads what the command wrote on `fd` and forwards it; closes `fd` at EOF.
void pump(std::uint32_t id, int& fd, FrameType type) {
  char buf[16384];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  // EIO on a pty master: the last holder of its slave has gone.
  if (n <= 0) {
    close_fd(fd);
    return;
  }
  send(id, type, std::string(buf, static_cast<std::size_t>(n)));
}

void reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& [id, s] : g_sessions) {
      if (s.pid == pid) {
        s.exited = true;
        s.code = exit_code_of(status);
      }
    }
  }
}

// A session is over once its command has exited and its output has been drained.
void finish_sessions() {
  for (auto it = g_sessions.begin(); it != g_sessions.end();) {
    Session& s = it->second;
    if (s.exited && s.tty && s.out >= 0) {
      // The pty master gives EIO once the command's side has closed; until then drain it.
      struct pollfd p {
        s.out, POLLIN, 0
      };
      while (s.out >= 0 && ::poll(&p, 1, 0) > 0) pump(it->first, s.out, FrameType::stdout_);
      close_fd(s.out);
    }
    if (s.exited && s.out < 0 && s.err < 0) {
      close_fd(s.in);
      send(it->first, FrameType::exit, kapsel::agent::encode_i32(s.code));
      it = g_sessions.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

std::string read_cmdline() {
  int fd = ::open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// The host names the guest on the kernel's command line (kapsel.hostname=NAME: a dotted
// parameter, which the kernel keeps in /proc/cmdline and passes to no one), since the guest's
// files are the template's; the agent, started early by init, sets it.
std::string set_hostname_from_cmdline(const std::string& cmdline) {
  std::string name = kapsel::agent::cmdline_param(cmdline, "kapsel.hostname").value_or("");
  if (!name.empty()) (void)::sethostname(name.data(), name.size());
  return name;
}

void write_text(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  (void)write_all(fd, text.data(), text.size());
  ::close(fd);
}

// Runs the guest's `ip` with `args`, its output on the agent's stderr (the console).
void run_ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("PATH", "/sbin:/usr/sbin:/bin:/usr/bin", 1);
    ::execvp("ip", cargv.data());
    ::_exit(127);
  }
  if (pid > 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

// A VE on a bridge: eth0, the default route and the name files, from the command line (see
// guest_network.hpp). Done before the agent says hello, so that the host's `start` returns
// with the guest on its network. Run again when init respawns the agent: `ip` then finds
// everything in place and says so, which changes nothing.
void configure_network_from_cmdline(const std::string& cmdline, const std::string& hostname) {
  auto net = kapsel::agent::parse_guest_network(cmdline);
  if (!net) return;
  if (net->address.find(':') != std::string::npos) {
    // An IPv6 network: Debian's UML kernel has IPv6 as a module, which the image carries (see
    // uml_image.cpp). Already loaded (EEXIST) when init respawns the agent.
    std::vector<std::string> modules;
    if (DIR* d = ::opendir(kapsel::agent::kIpv6ModuleDir)) {
      while (auto* e = ::readdir(d))
        if (e->d_name[0] != '.')
          modules.push_back(std::string(kapsel::agent::kIpv6ModuleDir) + "/" + e->d_name);
      ::closedir(d);
    }
    std::sort(modules.begin(), modules.end());
    for (const auto& path : modules) {
      int module = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (module < 0) continue;
      (void)::syscall(SYS_finit_module, module, "", 0);
      ::close(module);
    }
    // Duplicate address detection would keep the address tentative, unusable as a source, for
    // a second or two after `start` returns; the host leases each address once, so there is
    // nothing to detect (container VEs add theirs with IFA_F_NODAD for the same reason).
    write_text("/proc/sys/net/ipv6/conf/default/accept_dad", "0\n");
    write_text("/proc/sys/net/ipv6/conf/eth0/accept_dad", "0\n");
  }
  for (const auto& cmd : kapsel::agent::guest_network_commands(*net)) run_ip(cmd);
  std::string own = net->address.substr(0, net->address.find('/'));
  write_text("/etc/hosts",
             kapsel::agent::hosts_file(own, hostname.empty() ? "localhost" : hostname));
  if (std::string resolv = kapsel::agent::resolv_conf(*net); !resolv.empty())
    write_text("/etc/resolv.conf", resolv);
}

int main(int argc, char** argv) {
  const char* device = argc > 1 ? argv[1] : "/dev/ttyS1";
  const std::string cmdline = read_cmdline();
  configure_network_from_cmdline(cmdline, set_hostname_from_cmdline(cmdline));
  g_line = ::open(device, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (g_line < 0) {
    std::string msg = std::string("kapsel-agent: ") + device + ": " + std::strerror(errno) + "\n";
    (void)!::write(STDERR_FILENO, msg.data(), msg.size());
    return 1;
  }
  // A serial line: raw, so that every byte passes as it is, no echo, no line discipline.
  struct termios t {};
  if (::tcgetattr(g_line, &t) == 0) {
    ::cfmakeraw(&t);
    ::tcsetattr(g_line, TCSANOW, &t);
  }
  ::tcflush(g_line, TCIFLUSH);
  ::signal(SIGPIPE, SIG_IGN);
  // SIGCHLD only interrupts poll; reaping is done after each wake-up.
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  ::sigaction(SIGCHLD, &sa, nullptr);

  struct utsname u {};
  ::uname(&u);
  send(0, FrameType::hello, std::string("kapsel-agent 1\n") + u.release);

  kapsel::agent::FrameDecoder decoder;
  char buf[16384];
  for (;;) {
    std::vector<struct pollfd> fds = {{g_line, POLLIN, 0}};
    struct Ref {
      std::uint32_t id;
      int which;  // 0 out, 1 err, 2 in (writable)
    };
    std::vector<Ref> refs;
    for (auto& [id, s] : g_sessions) {
      if (s.out >= 0) fds.push_back({s.out, POLLIN, 0}), refs.push_back({id, 0});
      if (s.err >= 0) fds.push_back({s.err, POLLIN, 0}), refs.push_back({id, 1});
      if (s.in >= 0 && !s.pending_in.empty())
        fds.push_back({s.in, POLLOUT, 0}), refs.push_back({id, 2});
    }
    int n = ::poll(fds.data(), fds.size(), 1000);
    reap();
    if (n > 0) {
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t r = ::read(g_line, buf, sizeof buf);
        if (r > 0) {
          decoder.feed(std::string_view(buf, static_cast<std::size_t>(r)));
          while (auto f = decoder.next()) on_frame(*f);
        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
          ::usleep(100000);  // a line that hangs up comes back; do not spin
        }
      }
      for (std::size_t i = 0; i < refs.size(); ++i) {
        if (!fds[i + 1].revents) continue;
        auto it = g_sessions.find(refs[i].id);
        if (it == g_sessions.end()) continue;
        Session& s = it->second;
        if (refs[i].which == 0 && s.out >= 0) pump(it->first, s.out, FrameType::stdout_);
        if (refs[i].which == 1 && s.err >= 0) pump(it->first, s.err, FrameType::stderr_);
        if (refs[i].which == 2) flush_input(s);
      }
    }
    finish_sessions();
  }
}
