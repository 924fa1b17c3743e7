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
