#include "oci_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace kapsel::testing {

const std::string& busybox_rootfs() {
  static std::string path = [] {
    static Kapsel k;  // kept: its root holds the template
    auto r = k.run({"create", "oci-template-source"});
    EXPECT_EQ(r.exit_code, 0) << r;
    return k.root() + "/templates/busybox/rootfs";
  }();
  return path;
}

OciBundle::OciBundle(const std::vector<std::string>& args) {
  char tmpl[] = "/tmp/kapsel-oci-bundle.XXXXXX";
  if (!::mkdtemp(tmpl)) std::abort();
  dir_ = tmpl;
  std::string cmd = "cp -a '" + busybox_rootfs() + "' '" + dir_ + "/rootfs'";
  if (std::system(cmd.c_str()) != 0) std::abort();
  Oci oci;
  auto r = oci.run({"spec", "--bundle", dir_});
  EXPECT_EQ(r.exit_code, 0) << r;
  config = nlohmann::json::parse(read_text(dir_ + "/config.json"));
  config["process"]["terminal"] = false;
  config["process"]["args"] = args;
  config["root"]["readonly"] = false;
  save();
}

OciBundle::~OciBundle() {
  std::string cmd = "rm -rf '" + dir_ + "'";
  (void)std::system(cmd.c_str());
}

void OciBundle::save() const {
  std::ofstream(dir_ + "/config.json") << config.dump(2);
}

Oci::Oci() {
  char tmpl[] = "/tmp/kapsel-oci-it.XXXXXX";
  if (!::mkdtemp(tmpl)) std::abort();
  base_ = tmpl;
  root_ = base_ + "/state";
}

Oci::~Oci() {
  auto list = run({"list", "-q"});
  std::istringstream ids(list.out);
  std::string id;
  while (std::getline(ids, id)) {
    if (!id.empty()) run({"delete", "--force", id});
  }
  std::string cmd = "rm -rf '" + base_ + "'";
  (void)std::system(cmd.c_str());
}

RunResult Oci::run_with_output(const std::vector<std::string>& args, const std::string& out,
                               const std::string& err, const std::string& program) const {
  pid_t pid = ::fork();
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int n = ::open("/dev/null", O_RDONLY);
    ::dup2(n, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<std::string> full;
    if (program.empty()) full.push_back("oci");
    full.push_back("--root");
    full.push_back(root_);
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    std::string bin = program.empty() ? KAPSEL_BINARY : program;
    argv.push_back(const_cast<char*>(bin.c_str()));
    for (auto& a : full) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  RunResult r;
  int status = 0;
  for (int waited = 0;; waited += 10) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (waited > 60000) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

RunResult Oci::run(const std::vector<std::string>& args, const std::string& program) const {
  static int counter = 0;
  std::string out = base_ + "/cmd" + std::to_string(++counter) + ".out";
  std::string err = base_ + "/cmd" + std::to_string(counter) + ".err";
  RunResult r = run_with_output(args, out, err, program);
  r.out = read_text(out);
  r.err = read_text(err);
  ::unlink(out.c_str());
  ::unlink(err.c_str());
  return r;
}

RunResult Oci::create(const std::string& id, const OciBundle& bundle,
                      const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {"create", "--bundle", bundle.dir()};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(id);
  std::string err = base_ + "/" + id + ".create.err";
  RunResult r = run_with_output(args, out_path(id), err, {});
  r.err = read_text(err);
  return r;
}

nlohmann::json Oci::state(const std::string& id) const {
  auto r = run({"state", id});
  if (r.exit_code != 0) return nullptr;
  return nlohmann::json::parse(r.out, nullptr, false);
}

std::string Oci::status(const std::string& id) const {
  auto s = state(id);
  return s.is_object() ? s.value("status", "") : "";
}

std::string Oci::output(const std::string& id) const {
  return read_text(out_path(id));
}

bool Oci::wait_stopped(const std::string& id, int timeout_ms) const {
  return eventually([&] { return status(id) == "stopped"; }, timeout_ms);
}

ConsoleSocket::ConsoleSocket(const std::string& path) {
  listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(listener_, 1), 0);
}

ConsoleSocket::~ConsoleSocket() {
  if (master_ >= 0) ::close(master_);
  ::close(listener_);
}

int ConsoleSocket::receive_master() {
  int conn = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
  if (conn < 0) return -1;
  char data[256];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  iovec iov{data, sizeof data};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (::recvmsg(conn, &msg, 0) > 0) {
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg && cmsg->cmsg_type == SCM_RIGHTS) std::memcpy(&master_, CMSG_DATA(cmsg), sizeof(int));
  }
  ::close(conn);
  return master_;
}

std::string ConsoleSocket::read_master(const std::string& marker) {
  std::string seen;
  for (int i = 0; i < 50 && seen.find(marker) == std::string::npos; ++i) {
    pollfd p{master_, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char buf[256];
      ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) break;
      seen.append(buf, static_cast<size_t>(n));
    }
  }
  return seen;
}

}  // namespace kapsel::testing
