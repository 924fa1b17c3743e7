// Debian's containerd and Podman running images through kapsel-runc (issue 7, items 2 and 3):
// an image made locally from the busybox template (oci_image.sh; no registry), run, exec'd
// into, stopped and removed. Each engine runs with private state directories; the test skips
// with its reason only where the engine is not installed (scripts/setup.sh installs both).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "oci_harness.hpp"

namespace kapsel::testing {
namespace {

std::string runc_link() {
  std::string bin = KAPSEL_BINARY;
  return bin.substr(0, bin.rfind('/')) + "/kapsel-runc";
}

// Runs a shell command line; stdout and stderr together.
RunResult shell(const std::string& command, int timeout_seconds = 120) {
  std::string out = "/tmp/kapsel-oci-engine-" + std::to_string(::getpid()) + ".out";
  std::string line = "timeout " + std::to_string(timeout_seconds) + " sh -c '" + command + "' >" +
                     out + " 2>&1 </dev/null";
  int status = std::system(line.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  ::unlink(out.c_str());
  return r;
}

bool installed(const char* program) {
  return shell(std::string("command -v ") + program).exit_code == 0;
}

class OciEnginesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KAPSEL_REQUIRE_ROOT();
    char tmpl[] = "/tmp/kapsel-oci-engine.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
  }
  void TearDown() override {
    if (containerd > 0) {
      ::kill(containerd, SIGTERM);
      ::waitpid(containerd, nullptr, 0);
    }
    // The shim gives its runtime a --root of /run/containerd/runc/NAMESPACE, whatever
    // containerd's own state directory: the test's namespace is its own, and removed with it.
    if (!ctr_namespace.empty()) (void)shell("rm -rf /run/containerd/runc/" + ctr_namespace);
    if (!dir.empty()) {
      // containerd's and Podman's overlay mounts are under dir.
      (void)shell("grep -o \" " + dir +
                  "[^ ]*\" /proc/self/mounts | sort -r | xargs -r -n1 umount -l");
      (void)shell("rm -rf " + dir);
    }
  }
  std::string dir;
  pid_t containerd = 0;
  std::string ctr_namespace;
};

TEST_F(OciEnginesTest, ContainerdRunsExecsAndDeletesAnImage) {
  if (!installed("containerd") || !installed("ctr"))
    GTEST_SKIP() << "containerd is not installed (apt-get install containerd)";
  const std::string sock = dir + "/containerd.sock";
  std::ofstream(dir + "/config.toml")
      << "version = 2\nroot = \"" << dir << "/root\"\nstate = \"" << dir << "/state\"\n"
      << "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"" << sock
      << "\"\n[ttrpc]\n  address = \"" << sock << ".ttrpc\"\n";
  containerd = ::fork();
  if (containerd == 0) {
    std::string log = dir + "/containerd.log";
    std::freopen(log.c_str(), "w", stdout);
    std::freopen(log.c_str(), "a", stderr);
    ::execlp("containerd", "containerd", "--config", (dir + "/config.toml").c_str(), nullptr);
    ::_exit(127);
  }
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(sock); }, 20000));
  ctr_namespace = "kapsel-it-" + std::to_string(::getpid());
  const std::string ctr = "ctr -a " + sock + " -n " + ctr_namespace + " ";
  const std::string image = "docker.io/library/kapsel-busybox:latest";
  auto made = shell(std::string(KAPSEL_SOURCE_DIR) + "/tests/integration/oci_image.sh " +
                    busybox_rootfs() + " " + image + " " + dir + "/image.tar");
  ASSERT_EQ(made.exit_code, 0) << made;
  auto imported = shell(ctr + "images import " + dir + "/image.tar");
  ASSERT_EQ(imported.exit_code, 0) << imported;

  auto run = shell(ctr + "run --rm --runc-binary " + runc_link() + " " + image +
                   " once sh -c \"echo hello from kapsel; cat /proc/1/cmdline\"");
  ASSERT_EQ(run.exit_code, 0) << run << read_text(dir + "/containerd.log");
  EXPECT_NE(run.out.find("hello from kapsel"), std::string::npos) << run;

  auto detached =
      shell(ctr + "run -d --runc-binary " + runc_link() + " " + image + " long sleep 300");
  ASSERT_EQ(detached.exit_code, 0) << detached;
  auto exec = shell(ctr + "task exec --exec-id e1 long sh -c \"echo in-exec; hostname\"");
  EXPECT_EQ(exec.exit_code, 0) << exec;
  EXPECT_NE(exec.out.find("in-exec"), std::string::npos) << exec;
  auto tasks = shell(ctr + "task ls");
  EXPECT_NE(tasks.out.find("RUNNING"), std::string::npos) << tasks;
  EXPECT_EQ(shell(ctr + "task kill -s KILL long").exit_code, 0);
  EXPECT_TRUE(eventually(
      [&] { return shell(ctr + "task ls").out.find("STOPPED") != std::string::npos; }, 10000));
  EXPECT_EQ(shell(ctr + "task delete long").exit_code, 0);
  EXPECT_EQ(shell(ctr + "container delete long").exit_code, 0);
  EXPECT_EQ(shell(ctr + "container ls -q").out, "");
}

TEST_F(OciEnginesTest, PodmanRunsExecsStopsAndRemovesAContainer) {
  if (!installed("podman")) GTEST_SKIP() << "podman is not installed (apt-get install podman)";
  // Private storage and state; cgroupfs (kapsel does not drive systemd); no network (the test
  // must not touch the host's). These machines cap RLIMIT_NOFILE below Podman's default and
  // lack CAP_SYS_RESOURCE to raise RLIMIT_NPROC to it (runc fails alike), so both are given.
  const std::string podman = "podman --root " + dir + "/storage --runroot " + dir +
                             "/runroot --tmpdir " + dir + "/tmp --runtime " + runc_link() +
                             " --cgroup-manager cgroupfs --events-backend file ";
  auto tar = shell("tar -C " + busybox_rootfs() + " -cf " + dir + "/rootfs.tar .");
  ASSERT_EQ(tar.exit_code, 0) << tar;
  auto imported = shell(podman + "import " + dir + "/rootfs.tar localhost/kapsel-busybox:latest");
  ASSERT_EQ(imported.exit_code, 0) << imported;
  const std::string flags = "--network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 ";

  auto run = shell(podman + "run --rm " + flags +
                   "localhost/kapsel-busybox:latest sh -c \"echo hello from podman\"");
  ASSERT_EQ(run.exit_code, 0) << run;
  EXPECT_NE(run.out.find("hello from podman"), std::string::npos) << run;

  auto started =
      shell(podman + "run -d --name long " + flags + "localhost/kapsel-busybox:latest sleep 300");
  ASSERT_EQ(started.exit_code, 0) << started;
  auto exec = shell(podman + "exec long sh -c \"echo in-exec\"");
  EXPECT_EQ(exec.exit_code, 0) << exec;
  EXPECT_NE(exec.out.find("in-exec"), std::string::npos) << exec;
  auto stopped = shell(podman + "stop -t 2 long");
  EXPECT_EQ(stopped.exit_code, 0) << stopped;
  auto ps = shell(podman + "ps -a --format \"{{.Names}} {{.Status}}\"");
  EXPECT_NE(ps.out.find("Exited"), std::string::npos) << ps;
  auto removed = shell(podman + "rm long");
  EXPECT_EQ(removed.exit_code, 0) << removed;
  EXPECT_EQ(shell(podman + "ps -a -q").out, "");
}

}  // namespace
}  // namespace kapsel::testing
