// The OCI surface's lifecycle against the real binary, one test per rule of runtime-spec
// runtime.md ("State", "Lifecycle", "Operations") and per runc flag that engines rely on.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "oci_harness.hpp"

namespace kapsel::testing {
namespace {

class OciLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }

  // Creates `id` with a console socket, starts it, and returns what its process wrote on the
  // pty's master until `marker`.
  std::string run_on_console(const std::string& id, const OciBundle& b, const std::string& marker) {
    std::string path = oci.base() + "/" + id + ".sock";
    ConsoleSocket console(path);
    std::thread creator([&] {
      EXPECT_EQ(oci.create(id, b, {"--console-socket", path}).exit_code, 0);
    });
    int master = console.receive_master();
    creator.join();
    if (master < 0) return "<no pty master received>";
    EXPECT_EQ(oci.run({"start", id}).exit_code, 0);
    return console.read_master(marker);
  }

  Oci oci;
};

TEST_F(OciLifecycleTest, CreateLeavesTheProcessWaitingUntilStart) {
  OciBundle b({"sh", "-c", "echo started"});
  auto c = oci.create("wait1", b);
  ASSERT_EQ(c.exit_code, 0) << c;
  auto s = oci.state("wait1");
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["status"], "created");
  pid_t pid = s["pid"].get<pid_t>();
  EXPECT_TRUE(process_alive(pid));
  // The user's program has not run: nothing written, and still created a while later.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(oci.output("wait1"), "");
  EXPECT_EQ(oci.status("wait1"), "created");
  auto st = oci.run({"start", "wait1"});
  ASSERT_EQ(st.exit_code, 0) << st;
  EXPECT_TRUE(oci.wait_stopped("wait1"));
  EXPECT_EQ(oci.output("wait1"), "started\n");
}

TEST_F(OciLifecycleTest, StateHasTheSpecsFields) {
  OciBundle b({"sleep", "30"});
  b.config["annotations"] = {{"org.example.key", "value"}};
  b.save();
  ASSERT_EQ(oci.create("st1", b).exit_code, 0);
  auto s = oci.state("st1");
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["ociVersion"], b.config["ociVersion"]);
  EXPECT_EQ(s["id"], "st1");
  EXPECT_EQ(s["status"], "created");
  EXPECT_GT(s["pid"].get<int>(), 0);
  EXPECT_EQ(s["bundle"], b.dir());
  EXPECT_EQ(s["annotations"]["org.example.key"], "value");
  ASSERT_EQ(oci.run({"start", "st1"}).exit_code, 0);
  EXPECT_EQ(oci.status("st1"), "running");
  ASSERT_EQ(oci.run({"kill", "st1", "KILL"}).exit_code, 0);
  ASSERT_TRUE(oci.wait_stopped("st1"));
  // Stopped: no pid (the spec requires it only while created or running).
  EXPECT_FALSE(oci.state("st1").contains("pid"));
  ASSERT_EQ(oci.run({"delete", "st1"}).exit_code, 0);
  auto gone = oci.run({"state", "st1"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_NE(gone.err.find("does not exist"), std::string::npos) << gone;
}

TEST_F(OciLifecycleTest, StartOnlyFromCreated) {
  OciBundle b({"true"});
  ASSERT_EQ(oci.create("once", b).exit_code, 0);
  ASSERT_EQ(oci.run({"start", "once"}).exit_code, 0);
  ASSERT_TRUE(oci.wait_stopped("once"));
  auto again = oci.run({"start", "once"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("stopped"), std::string::npos) << again;
  EXPECT_NE(oci.run({"start", "nosuch"}).exit_code, 0);
}

TEST_F(OciLifecycleTest, CreateRefusesAnIdInUse) {
  OciBundle b({"true"});
  ASSERT_EQ(oci.create("dup", b).exit_code, 0);
  auto again = oci.create("dup", b);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again;
  EXPECT_EQ(oci.status("dup"), "created");
}

TEST_F(OciLifecycleTest, KillSendsSignalsByNameAndNumber) {
  OciBundle b(
      {"sh", "-c", "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.1; done"});
  ASSERT_EQ(oci.create("sig", b).exit_code, 0);
  ASSERT_EQ(oci.run({"start", "sig"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return oci.output("sig") == "ready\n"; }));
  ASSERT_EQ(oci.run({"kill", "sig", "SIGTERM"}).exit_code, 0);
  ASSERT_TRUE(oci.wait_stopped("sig"));
  EXPECT_NE(oci.output("sig").find("got-term"), std::string::npos);
  // A stopped container takes no signal.
  EXPECT_NE(oci.run({"kill", "sig", "9"}).exit_code, 0);
  EXPECT_NE(oci.run({"kill", "sig", "NOSUCHSIG"}).exit_code, 0);

  OciBundle b2({"sleep", "60"});
  ASSERT_EQ(oci.create("sig9", b2).exit_code, 0);
  ASSERT_EQ(oci.run({"start", "sig9"}).exit_code, 0);
  ASSERT_EQ(oci.run({"kill", "--all", "sig9", "9"}).exit_code, 0);
  EXPECT_TRUE(oci.wait_stopped("sig9"));
}

TEST_F(OciLifecycleTest, DeleteOfARunningContainerNeedsForce) {
  OciBundle b({"sleep", "60"});
  ASSERT_EQ(oci.create("del", b).exit_code, 0);
  ASSERT_EQ(oci.run({"start", "del"}).exit_code, 0);
  pid_t pid = oci.state("del")["pid"].get<pid_t>();
  auto refused = oci.run({"delete", "del"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_EQ(oci.status("del"), "running");
  auto forced = oci.run({"delete", "--force", "del"});
  ASSERT_EQ(forced.exit_code, 0) << forced;
  EXPECT_TRUE(eventually([&] { return !process_alive(pid); }));
  EXPECT_EQ(oci.status("del"), "");
  // --force on a container that does not exist is no error (engines clean up twice).
  EXPECT_EQ(oci.run({"delete", "--force", "del"}).exit_code, 0);
  EXPECT_NE(oci.run({"delete", "del"}).exit_code, 0);
}

// As runc: delete --force of an id that does not exist succeeds, and neither form makes the
// --root directory it is given.
TEST_F(OciLifecycleTest, DeleteUnderAMissingRootMakesNothing) {
  ASSERT_FALSE(std::filesystem::exists(oci.root()));
  auto forced = oci.run({"delete", "--force", "nosuch"});
  EXPECT_EQ(forced.exit_code, 0) << forced;
  EXPECT_EQ(forced.out + forced.err, "");
  EXPECT_NE(oci.run({"delete", "nosuch"}).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(oci.root()));
}

// --preserve-fds N: the caller's descriptors 3..3+N-1 are the container process's, at the same
// numbers; the next one is not.
TEST_F(OciLifecycleTest, PreserveFdsPassesTheCallersDescriptors) {
  OciBundle b({"sh", "-c", "cat <&3; cat <&4; cat 2>/dev/null <&5 || echo no-fd-5"});
  const std::string three = oci.base() + "/three", four = oci.base() + "/four";
  { std::ofstream(three) << "from-fd-3\n"; }
  { std::ofstream(four) << "from-fd-4\n"; }
  const std::string out = oci.base() + "/preserve.out";
  std::string line = "exec 3<" + three + " 4<" + four + " 5</dev/null; " + KAPSEL_BINARY +
                     " oci --root " + oci.root() + " create --preserve-fds 2 --bundle " + b.dir() +
                     " pfd >" + out + " 2>&1 </dev/null";
  ASSERT_EQ(std::system(line.c_str()), 0) << read_text(out);
  ASSERT_EQ(oci.run({"start", "pfd"}).exit_code, 0);
  ASSERT_TRUE(oci.wait_stopped("pfd"));
  EXPECT_EQ(read_text(out), "from-fd-3\nfrom-fd-4\nno-fd-5\n");
  // A descriptor that is not open is refused, not replaced by one of kapsel's.
  auto r = oci.run({"create", "--preserve-fds", "40", "--bundle", b.dir(), "pfd2"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--preserve-fds"), std::string::npos) << r;
}

TEST_F(OciLifecycleTest, DeleteRemovesTheContainersCgroups) {
  OciBundle b({"sleep", "60"});
  b.config["linux"]["cgroupsPath"] = "/kapsel-oci-it/cg1";
  b.save();
  ASSERT_EQ(oci.create("cg1", b).exit_code, 0);
  EXPECT_TRUE(std::filesystem::exists("/sys/fs/cgroup/pids/kapsel-oci-it/cg1") ||
              std::filesystem::exists("/sys/fs/cgroup/kapsel-oci-it/cg1"));
  ASSERT_EQ(oci.run({"delete", "--force", "cg1"}).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/pids/kapsel-oci-it/cg1"));
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/kapsel-oci-it/cg1"));
}

TEST_F(OciLifecycleTest, PidFileHoldsTheContainersInitPid) {
  OciBundle b({"sleep", "60"});
  std::string pid_file = oci.base() + "/init.pid";
  ASSERT_EQ(oci.create("pidf", b, {"--pid-file", pid_file}).exit_code, 0);
  EXPECT_EQ(std::stoi(read_text(pid_file)), oci.state("pidf")["pid"].get<int>());
}

// runc's --console-socket: the pty's master arrives over the Unix socket (SCM_RIGHTS), and the
// process's output comes out of it.
TEST_F(OciLifecycleTest, ConsoleSocketReceivesThePtyMaster) {
  OciBundle b({"sh", "-c", "tty; echo on-the-console"});
  b.config["process"]["terminal"] = true;
  b.save();
  // Without a socket, a terminal cannot be given.
  EXPECT_NE(oci.create("tty0", b).exit_code, 0);
  std::string seen = run_on_console("tty1", b, "on-the-console");
  EXPECT_NE(seen.find("/dev/console"), std::string::npos) << seen;
  EXPECT_NE(seen.find("on-the-console"), std::string::npos) << seen;
}

// process.consoleSize is the pty's size (TIOCSWINSZ) before the process runs.
TEST_F(OciLifecycleTest, ConsoleSizeIsThePtysSize) {
  OciBundle b({"sh", "-c", "stty size; echo size-done"});
  b.config["process"]["terminal"] = true;
  b.config["process"]["consoleSize"] = {{"height", 37}, {"width", 113}};
  b.save();
  std::string seen = run_on_console("ttysize", b, "size-done");
  EXPECT_NE(seen.find("37 113"), std::string::npos) << seen;
}

TEST_F(OciLifecycleTest, ErrorsGoToTheLogFileAsJson) {
  std::string log = oci.base() + "/log.json";
  auto r = oci.run({"--log", log, "--log-format", "json", "state", "nosuch"});
  EXPECT_NE(r.exit_code, 0);
  auto line = read_text(log);
  auto j = nlohmann::json::parse(line.substr(0, line.find('\n')), nullptr, false);
  ASSERT_TRUE(j.is_object()) << line;
  EXPECT_EQ(j["level"], "error");
  EXPECT_NE(j["msg"].get<std::string>().find("nosuch"), std::string::npos);
  EXPECT_TRUE(j.contains("time"));
}

TEST_F(OciLifecycleTest, SystemdCgroupIsAClearError) {
  auto r = oci.run({"--systemd-cgroup", "list"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--systemd-cgroup is not supported"), std::string::npos) << r;
}

TEST_F(OciLifecycleTest, TheKapselRuncLinkIsTheSameSurface) {
  std::string link =
      std::string(KAPSEL_BINARY).substr(0, std::string(KAPSEL_BINARY).rfind('/')) + "/kapsel-runc";
  ASSERT_TRUE(std::filesystem::exists(link)) << link;
  OciBundle b({"true"});
  auto c = oci.run({"create", "--bundle", b.dir(), "linked"}, link);
  ASSERT_EQ(c.exit_code, 0) << c;
  auto s = oci.run({"state", "linked"}, link);
  ASSERT_EQ(s.exit_code, 0) << s;
  EXPECT_NE(s.out.find("\"created\""), std::string::npos);
  EXPECT_EQ(oci.run({"--version"}, link).exit_code, 0);
}

TEST_F(OciLifecycleTest, FeaturesAndSpec) {
  auto f = oci.run({"features"});
  ASSERT_EQ(f.exit_code, 0) << f;
  auto j = nlohmann::json::parse(f.out, nullptr, false);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["ociVersionMin"], "1.0.0");
  EXPECT_TRUE(j["linux"]["namespaces"].is_array());
  OciBundle b({"true"});
  auto again = oci.run({"spec", "--bundle", b.dir()});
  EXPECT_NE(again.exit_code, 0) << "spec must not overwrite config.json";
}

TEST_F(OciLifecycleTest, PsListsTheContainersProcesses) {
  OciBundle b({"sh", "-c", "sleep 60 & sleep 60"});
  ASSERT_EQ(oci.create("ps1", b).exit_code, 0);
  ASSERT_EQ(oci.run({"start", "ps1"}).exit_code, 0);
  nlohmann::json pids;
  ASSERT_TRUE(eventually([&] {
    auto r = oci.run({"ps", "--format", "json", "ps1"});
    pids = nlohmann::json::parse(r.out, nullptr, false);
    return pids.is_array() && pids.size() >= 2;
  })) << pids;
}

}  // namespace
}  // namespace kapsel::testing
