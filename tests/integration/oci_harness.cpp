#include "oci_harness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
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

}  // namespace kapsel::testing
