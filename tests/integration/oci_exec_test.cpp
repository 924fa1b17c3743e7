// runc's exec through the real binary: a command by args or by a process file (config.md
// "Process"), with its env, cwd and user, detached with a pid file, as engines run it.
#include <algorithm>
#include <fstream>
#include <memory>

#include "oci_harness.hpp"

namespace kapsel::testing {
namespace {

class OciExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KAPSEL_REQUIRE_ROOT();
    bundle = std::make_unique<OciBundle>(std::vector<std::string>{"sleep", "60"});
    bundle->config["hostname"] = "exec-host";
    bundle->save();
    ASSERT_EQ(oci.create("ex", *bundle).exit_code, 0);
    ASSERT_EQ(oci.run({"start", "ex"}).exit_code, 0);
  }
  Oci oci;
  std::unique_ptr<OciBundle> bundle;
};

TEST_F(OciExecTest, ArgsRunInTheContainer) {
  auto r = oci.run({"exec", "ex", "sh", "-c", "hostname; echo $FOO; pwd; exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r;
  EXPECT_EQ(r.out, "exec-host\n\n/\n");
  r = oci.run({"exec", "--env", "FOO=bar", "--cwd", "/tmp", "ex", "sh", "-c", "echo $FOO; pwd"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "bar\n/tmp\n");
  r = oci.run({"exec", "--user", "1000:1000", "ex", "id", "-u"});
  EXPECT_EQ(r.out, "1000\n") << r;
}

TEST_F(OciExecTest, AProcessFile) {
  std::string file = oci.base() + "/process.json";
  std::ofstream(file) << nlohmann::json{{"args", {"sh", "-c", "echo $A; id -g"}},
                                        {"env", {"PATH=/bin", "A=from-file"}},
                                        {"cwd", "/"},
                                        {"user", {{"uid", 0}, {"gid", 12}}}}
                             .dump();
  auto r = oci.run({"exec", "--process", file, "ex"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "from-file\n12\n");
}

// A process file's capabilities, rlimits and noNewPrivileges are the exec'd process's.
TEST_F(OciExecTest, AProcessFilesCapabilitiesRlimitsAndNoNewPrivileges) {
  std::string file = oci.base() + "/limited.json";
  const nlohmann::json caps = {"CAP_KILL"};
  std::ofstream(file) << nlohmann::json{
      {"args",
       {"sh", "-c",
        "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; ulimit -n; ulimit -Hn"}},
      {"env", {"PATH=/bin"}},
      {"cwd", "/"},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"soft", 111}, {"hard", 222}}}},
      {"noNewPrivileges",
       false}}.dump();
  auto r = oci.run({"exec", "--process", file, "ex"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out,
            "CapEff:\t0000000000000020\nCapBnd:\t0000000000000020\nNoNewPrivs:\t0\n111\n222\n");
  // By args: the container's process settings (runc's default spec: no_new_privs, nofile 1024).
  r = oci.run({"exec", "ex", "sh", "-c", "grep NoNewPrivs /proc/self/status; ulimit -n"});
  EXPECT_EQ(r.out, "NoNewPrivs:\t1\n1024\n") << r;
}

// --tty without a console socket: as runc, the pty is relayed to the caller's stdio.
TEST_F(OciExecTest, TtyWithoutAConsoleSocketIsRelayed) {
  auto r = oci.run({"exec", "--tty", "ex", "sh", "-c", "tty; echo relayed"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_NE(r.out.find("/dev/pts/"), std::string::npos) << r;
  EXPECT_NE(r.out.find("relayed"), std::string::npos) << r;
  // Detached, nobody could hold the pty: an error, as runc's.
  r = oci.run({"exec", "--tty", "--detach", "ex", "true"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("console-socket"), std::string::npos) << r;
}

TEST_F(OciExecTest, DetachedWithAPidFile) {
  std::string pid_file = oci.base() + "/exec.pid";
  auto r = oci.run({"exec", "--detach", "--pid-file", pid_file, "ex", "sleep", "30"});
  ASSERT_EQ(r.exit_code, 0) << r;
  int pid = std::stoi(read_text(pid_file));
  EXPECT_TRUE(process_alive(pid));
  auto ps = nlohmann::json::parse(oci.run({"ps", "--format", "json", "ex"}).out);
  EXPECT_NE(std::find(ps.begin(), ps.end(), pid), ps.end()) << ps;
}

TEST_F(OciExecTest, NotInAStoppedContainer) {
  ASSERT_EQ(oci.run({"kill", "ex", "KILL"}).exit_code, 0);
  ASSERT_TRUE(oci.wait_stopped("ex"));
  auto r = oci.run({"exec", "ex", "true"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("stopped"), std::string::npos) << r;
}

}  // namespace
}  // namespace kapsel::testing
