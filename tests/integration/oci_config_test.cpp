// config.json through the real binary, one test per section of runtime-spec config.md and
// config-linux.md that kapsel implements: each sets the field and looks from inside.
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "oci_harness.hpp"

namespace kapsel::testing {
namespace {

class OciConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }

  // Runs the bundle to its end; returns what it wrote.
  std::string run_to_end(const std::string& id, OciBundle& b) {
    b.save();
    auto c = oci.create(id, b);
    EXPECT_EQ(c.exit_code, 0) << c;
    if (c.exit_code != 0) return "<create failed: " + c.err + ">";
    auto s = oci.run({"start", id});
    EXPECT_EQ(s.exit_code, 0) << s;
    EXPECT_TRUE(oci.wait_stopped(id));
    return oci.output(id);
  }

  Oci oci;
};

TEST_F(OciConfigTest, ProcessArgsEnvAndCwd) {
  OciBundle b({"sh", "-c", "echo $GREETING; pwd"});
  b.config["process"]["env"] = {"PATH=/bin:/usr/bin", "GREETING=hello"};
  b.config["process"]["cwd"] = "/tmp";
  EXPECT_EQ(run_to_end("env1", b), "hello\n/tmp\n");
}

TEST_F(OciConfigTest, ProcessUserWithAdditionalGidsAndUmask) {
  OciBundle b({"sh", "-c", "id -u; id -g; id -G; umask"});
  b.config["process"]["user"] = {
      {"uid", 1000}, {"gid", 1001}, {"additionalGids", {5, 6}}, {"umask", 0077}};
  EXPECT_EQ(run_to_end("user1", b), "1000\n1001\n1001 5 6\n0077\n");
}

TEST_F(OciConfigTest, ProcessCapabilitiesAndNoNewPrivileges) {
  OciBundle b({"sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"});
  b.config["process"]["capabilities"] = {
      {"bounding", {"CAP_CHOWN"}}, {"permitted", {"CAP_CHOWN"}}, {"effective", {"CAP_CHOWN"}}};
  b.config["process"]["noNewPrivileges"] = true;
  auto out = run_to_end("caps1", b);
  EXPECT_NE(out.find("CapEff:\t0000000000000001"), std::string::npos) << out;
  EXPECT_NE(out.find("CapBnd:\t0000000000000001"), std::string::npos) << out;
  EXPECT_NE(out.find("NoNewPrivs:\t1"), std::string::npos) << out;
}

TEST_F(OciConfigTest, ProcessRlimitsAndOomScoreAdj) {
  OciBundle b({"sh", "-c", "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj"});
  b.config["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 321}, {"hard", 654}}};
  b.config["process"]["oomScoreAdj"] = 123;
  EXPECT_EQ(run_to_end("rlim1", b), "321\n654\n123\n");
}

TEST_F(OciConfigTest, RootReadonlyAndHostname) {
  OciBundle b({"sh", "-c", "hostname; touch /x 2>/dev/null && echo writable || echo readonly"});
  b.config["root"]["readonly"] = true;
  b.config["hostname"] = "oci-host";
  EXPECT_EQ(run_to_end("ro1", b), "oci-host\nreadonly\n");
}

TEST_F(OciConfigTest, MountsWithOptions) {
  std::string host_dir = oci.base() + "/shared";
  std::filesystem::create_directories(host_dir);
  { std::ofstream(host_dir + "/file") << "from-host\n"; }
  OciBundle b({"sh", "-c",
               "cat /data/file; touch /data/new 2>/dev/null || echo bind-ro; "
               "grep ' /scratch ' /proc/mounts | grep -c 'size=1024k'; "
               "grep ' /scratch ' /proc/mounts | grep -c noexec"});
  auto& mounts = b.config["mounts"];
  mounts.push_back({{"destination", "/data"},
                    {"type", "bind"},
                    {"source", host_dir},
                    {"options", {"rbind", "ro"}}});
  mounts.push_back({{"destination", "/scratch"},
                    {"type", "tmpfs"},
                    {"source", "tmpfs"},
                    {"options", {"nosuid", "noexec", "size=1024k"}}});
  EXPECT_EQ(run_to_end("mnt1", b), "from-host\nbind-ro\n1\n1\n");
}

TEST_F(OciConfigTest, NamespacesAreThoseListed) {
  // Without a network namespace of its own the container sees the host's interfaces.
  OciBundle b({"sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/pid"});
  b.config.erase("hostname");  // needs a uts namespace
  auto& ns = b.config["linux"]["namespaces"];
  ns = nlohmann::json::array({{{"type", "pid"}}, {{"type", "mount"}}});
  auto out = run_to_end("ns1", b);
  char host_net[64] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", host_net, sizeof host_net - 1), 0);
  char host_pid[64] = {};
  ASSERT_GT(::readlink("/proc/self/ns/pid", host_pid, sizeof host_pid - 1), 0);
  EXPECT_NE(out.find(host_net), std::string::npos) << out;
  EXPECT_EQ(out.find(host_pid), std::string::npos) << out;
}

TEST_F(OciConfigTest, NamespacePathsAreJoined) {
  OciBundle first({"sleep", "60"});
  first.config["hostname"] = "first";
  first.save();
  ASSERT_EQ(oci.create("nsa", first).exit_code, 0);
  ASSERT_EQ(oci.run({"start", "nsa"}).exit_code, 0);
  int pid = oci.state("nsa")["pid"].get<int>();
  OciBundle b({"sh", "-c", "hostname; readlink /proc/self/ns/net"});
  b.config.erase("hostname");
  auto& ns = b.config["linux"]["namespaces"];
  for (auto& n : ns) {
    if (n["type"] == "uts" || n["type"] == "network")
      n["path"] = "/proc/" + std::to_string(pid) + "/ns/" + (n["type"] == "uts" ? "uts" : "net");
  }
  char theirs[64] = {};
  std::string link = "/proc/" + std::to_string(pid) + "/ns/net";
  ASSERT_GT(::readlink(link.c_str(), theirs, sizeof theirs - 1), 0);
  EXPECT_EQ(run_to_end("nsb", b), "first\n" + std::string(theirs) + "\n");
}

// A user namespace of the container's own (config-linux.md "User namespace mappings"): its
// root is host uid 100000, which owns what it makes in the root file system; exec joins it.
TEST_F(OciConfigTest, UserNamespaceWithMappings) {
  OciBundle b({"sh", "-c", "id -u; cat /proc/self/uid_map; touch /made-inside; sleep 60"});
  b.config["linux"]["namespaces"].push_back({{"type", "user"}});
  b.config["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  b.config["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  b.save();
  // The container's root must be able to reach the bundle and write in its root, as with runc.
  ASSERT_EQ(std::system(("chown -R 100000:100000 '" + b.rootfs() + "'").c_str()), 0);
  ASSERT_EQ(::chmod(b.dir().c_str(), 0755), 0);
  auto c = oci.create("userns1", b);
  ASSERT_EQ(c.exit_code, 0) << c;
  ASSERT_EQ(oci.run({"start", "userns1"}).exit_code, 0);
  const std::string made = b.rootfs() + "/made-inside";
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(made); })) << oci.output("userns1");
  struct stat st {};
  ASSERT_EQ(::stat(made.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100000u);
  EXPECT_EQ(st.st_gid, 100000u);
  auto out = oci.output("userns1");
  EXPECT_EQ(out.substr(0, 2), "0\n") << out;
  EXPECT_NE(out.find("100000"), std::string::npos) << out;
  EXPECT_NE(out.find("65536"), std::string::npos) << out;
  int pid = oci.state("userns1")["pid"].get<int>();
  char theirs[64] = {};
  std::string link = "/proc/" + std::to_string(pid) + "/ns/user";
  ASSERT_GT(::readlink(link.c_str(), theirs, sizeof theirs - 1), 0);
  auto exec = oci.run({"exec", "userns1", "sh", "-c", "id -u; readlink /proc/self/ns/user"});
  EXPECT_EQ(exec.exit_code, 0) << exec;
  EXPECT_EQ(exec.out, "0\n" + std::string(theirs) + "\n");
  // Its host id is 100000 for the host, too.
  auto status = read_text("/proc/" + std::to_string(pid) + "/status");
  EXPECT_NE(status.find("Uid:\t100000"), std::string::npos) << status;

  // Joined by path: another container's namespaces are made in that user namespace.
  OciBundle joined({"sh", "-c", "id -u; readlink /proc/self/ns/user; touch /joined"});
  joined.config["linux"]["namespaces"].push_back({{"type", "user"}, {"path", link}});
  ASSERT_EQ(std::system(("chown -R 100000:100000 '" + joined.rootfs() + "'").c_str()), 0);
  ASSERT_EQ(::chmod(joined.dir().c_str(), 0755), 0);
  EXPECT_EQ(run_to_end("userns2", joined), "0\n" + std::string(theirs) + "\n");
  ASSERT_EQ(::stat((joined.rootfs() + "/joined").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100000u);
}

// A time namespace of the container's own with linux.timeOffsets, and one joined by path.
TEST_F(OciConfigTest, TimeNamespaceWithOffsets) {
  constexpr double kOffset = 10 * 86400;
  OciBundle first({"sleep", "60"});
  first.config["linux"]["namespaces"].push_back({{"type", "time"}});
  first.config["linux"]["timeOffsets"] = {{"boottime", {{"secs", 864000}, {"nanosecs", 0}}},
                                          {"monotonic", {{"secs", 864000}, {"nanosecs", 0}}}};
  first.save();
  ASSERT_EQ(oci.create("time1", first).exit_code, 0);
  ASSERT_EQ(oci.run({"start", "time1"}).exit_code, 0);
  auto uptime = [](const std::string& text) { return std::atof(text.c_str()); };
  double host = uptime(read_text("/proc/uptime"));
  auto inside = oci.run({"exec", "time1", "cat", "/proc/uptime"});
  ASSERT_EQ(inside.exit_code, 0) << inside;
  EXPECT_NEAR(uptime(inside.out), host + kOffset, 30) << inside.out;

  int pid = oci.state("time1")["pid"].get<int>();
  OciBundle joined({"cat", "/proc/uptime"});
  joined.config["linux"]["namespaces"].push_back(
      {{"type", "time"}, {"path", "/proc/" + std::to_string(pid) + "/ns/time"}});
  EXPECT_NEAR(uptime(run_to_end("time2", joined)), host + kOffset, 30);
  OciBundle plain({"cat", "/proc/uptime"});
  EXPECT_NEAR(uptime(run_to_end("time3", plain)), host, 30);
}

// A mount namespace joined by path: the container's root is made in it, so what is mounted
// there alone is in the container.
TEST_F(OciConfigTest, MountNamespacePathIsJoined) {
  OciBundle b({"cat", "/mnt/only-there/marker"});
  const std::string where = b.rootfs() + "/mnt/only-there";
  std::filesystem::create_directories(where);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t holder = ::fork();
  if (holder == 0) {
    // A mount namespace of its own, with a tmpfs the host does not see.
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) ||
        ::mount("tmpfs", where.c_str(), "tmpfs", 0, nullptr) != 0)
      ::_exit(1);
    std::ofstream(where + "/marker") << "in-the-joined-namespace\n";
    (void)!::write(ready[1], "r", 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  for (auto& n : b.config["linux"]["namespaces"]) {
    if (n["type"] == "mount") n["path"] = "/proc/" + std::to_string(holder) + "/ns/mnt";
  }
  EXPECT_FALSE(std::filesystem::exists(where + "/marker"));
  EXPECT_EQ(run_to_end("mntns1", b), "in-the-joined-namespace\n");
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
}

// noNewPrivileges false (or left out): the process may gain privileges through exec.
TEST_F(OciConfigTest, NoNewPrivilegesFalseIsHonoured) {
  OciBundle b({"grep", "NoNewPrivs", "/proc/self/status"});
  b.config["process"]["noNewPrivileges"] = false;
  EXPECT_EQ(run_to_end("nnp0", b), "NoNewPrivs:\t0\n");
}

// linux.resources.devices on top of the default devices: a deny rule takes /dev/null away,
// /dev/zero stays.
TEST_F(OciConfigTest, ResourcesDevicesRulesApply) {
  OciBundle b({"sh", "-c",
               "(echo x >/dev/null) 2>/dev/zero && echo null-open || echo null-denied; "
               "echo x >/dev/zero && echo zero-open"});
  b.config["linux"]["resources"]["devices"].push_back(
      {{"allow", false}, {"type", "c"}, {"major", 1}, {"minor", 3}, {"access", "rwm"}});
  EXPECT_EQ(run_to_end("devrule1", b), "null-denied\nzero-open\n");
  OciBundle open({"sh", "-c", "echo x >/dev/null && echo null-open"});
  EXPECT_EQ(run_to_end("devrule2", open), "null-open\n");
}

TEST_F(OciConfigTest, ResourcesBecomeCgroupLimits) {
  OciBundle b({"sleep", "60"});
  b.config["linux"]["cgroupsPath"] = "/kapsel-oci-it/res1";
  b.config["linux"]["resources"] = {{"memory", {{"limit", 64 << 20}}},
                                    {"pids", {{"limit", 42}}},
                                    {"cpu", {{"quota", 50000}, {"period", 100000}}}};
  b.save();
  ASSERT_EQ(oci.create("res1", b).exit_code, 0);
  EXPECT_EQ(read_text("/sys/fs/cgroup/memory/kapsel-oci-it/res1/memory.limit_in_bytes"),
            std::to_string(64 << 20) + "\n");
  EXPECT_EQ(read_text("/sys/fs/cgroup/pids/kapsel-oci-it/res1/pids.max"), "42\n");
  EXPECT_EQ(read_text("/sys/fs/cgroup/cpu/kapsel-oci-it/res1/cpu.cfs_quota_us"), "50000\n");
}

TEST_F(OciConfigTest, MaskedAndReadonlyPaths) {
  OciBundle b({"sh", "-c",
               "cat /proc/cpuinfo | wc -c; ls /sys/kernel | wc -l; "
               "echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro"});
  b.config["linux"]["maskedPaths"] = {"/proc/cpuinfo", "/sys/kernel", "/proc/no-such-file"};
  b.config["linux"]["readonlyPaths"] = {"/proc/sys"};
  EXPECT_EQ(run_to_end("mask1", b), "0\n0\nro\n");
}

TEST_F(OciConfigTest, SysctlIsSetInTheContainersNamespace) {
  OciBundle b({"cat", "/proc/sys/net/ipv4/ip_forward"});
  b.config["linux"]["sysctl"] = {{"net.ipv4.ip_forward", "1"}};
  b.config["linux"]["readonlyPaths"] = nlohmann::json::array();
  EXPECT_EQ(run_to_end("sysctl1", b), "1\n");
}

TEST_F(OciConfigTest, DevicesAreMadeAndMayBeOpened) {
  // /dev/fuse's numbers, which kapsel's default device rules do not allow.
  OciBundle b({"sh", "-c",
               "ls -ln /dev/myfuse | cut -c1; exec 3<>/dev/myfuse && echo opened; "
               "(exec 4<>/dev/other) 2>/dev/null || echo refused"});
  b.config["linux"]["devices"] = {
      {{"path", "/dev/myfuse"}, {"type", "c"}, {"major", 10}, {"minor", 229}, {"fileMode", 0666}},
      {{"path", "/dev/other"}, {"type", "c"}, {"major", 10}, {"minor", 229}, {"fileMode", 0}}};
  b.config["process"]["user"] = {{"uid", 1000}, {"gid", 1000}};
  EXPECT_EQ(run_to_end("dev1", b), "c\nopened\nrefused\n");
}

TEST_F(OciConfigTest, SeccompInTheSpecsFormat) {
  OciBundle b({"sh", "-c", "mkdir /tmp/d 2>/dev/null && echo made || echo refused"});
  b.config["linux"]["seccomp"] = {
      {"defaultAction", "SCMP_ACT_ALLOW"},
      {"architectures", {"SCMP_ARCH_X86_64"}},
      {"syscalls", {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_ERRNO"}}}}};
  EXPECT_EQ(run_to_end("sec1", b), "refused\n");
}

TEST_F(OciConfigTest, HooksGetTheStateOnStdin) {
  std::string dir = oci.base() + "/hooks";
  std::filesystem::create_directories(dir);
  OciBundle b({"true"});
  auto hook = [&](const std::string& name) {
    return nlohmann::json{{"path", "/bin/sh"}, {"args", {"sh", "-c", "cat > " + dir + "/" + name}}};
  };
  b.config["hooks"] = {{"createRuntime", {hook("createRuntime")}},
                       {"poststart", {hook("poststart")}},
                       {"poststop", {hook("poststop")}}};
  run_to_end("hook1", b);
  ASSERT_EQ(oci.run({"delete", "hook1"}).exit_code, 0);
  for (const char* name : {"createRuntime", "poststart", "poststop"}) {
    auto j = nlohmann::json::parse(read_text(dir + "/" + name), nullptr, false);
    ASSERT_TRUE(j.is_object()) << name;
    EXPECT_EQ(j["id"], "hook1") << name;
    EXPECT_EQ(j["bundle"], b.dir()) << name;
  }
}

TEST_F(OciConfigTest, ContainerHooksRunInTheContainersNamespaces) {
  OciBundle b({"true"});
  b.config["hostname"] = "hooked";
  // Both write what they see into "/": the container's root, once its namespaces are joined.
  // createContainer's program is the runtime's (the host's static busybox: a dynamically linked
  // one would look for its loader in the container); startContainer's is the container's sh.
  auto hook = [](const std::string& path, const std::string& file) {
    return nlohmann::json{
        {"path", path},
        {"args", {"sh", "-c", "cat > /" + file + ".state && hostname > /" + file + ".host"}}};
  };
  b.config["hooks"] = {{"createContainer", {hook("/bin/busybox", "created")}},
                       {"startContainer", {hook("/bin/sh", "started")}}};
  run_to_end("hook3", b);
  ASSERT_EQ(oci.run({"delete", "hook3"}).exit_code, 0);
  // The state as the spec has it at each point: create is still running for createContainer.
  for (auto [file, status] : {std::pair{"created", "creating"}, std::pair{"started", "created"}}) {
    auto state =
        nlohmann::json::parse(read_text(b.rootfs() + "/" + file + ".state"), nullptr, false);
    ASSERT_TRUE(state.is_object()) << file;
    EXPECT_EQ(state["id"], "hook3") << file;
    EXPECT_EQ(state["status"], status) << file;
    EXPECT_EQ(read_text(b.rootfs() + "/" + file + ".host"), "hooked\n") << file;
  }
}

TEST_F(OciConfigTest, AFailingStartContainerHookStopsTheContainer) {
  OciBundle b({"sleep", "30"});
  b.config["hooks"] = {{"startContainer", {{{"path", "/bin/false"}, {"args", {"false"}}}}}};
  b.save();
  ASSERT_EQ(oci.create("hook4", b).exit_code, 0);
  auto s = oci.run({"start", "hook4"});
  EXPECT_NE(s.exit_code, 0) << s;
  EXPECT_NE(s.err.find("startContainer hook"), std::string::npos) << s;
  EXPECT_TRUE(oci.wait_stopped("hook4"));
  EXPECT_EQ(oci.run({"delete", "hook4"}).exit_code, 0);
}

TEST_F(OciConfigTest, AHookThatTimesOutFailsCreate) {
  OciBundle b({"true"});
  b.config["hooks"] = {
      {"createRuntime", {{{"path", "/bin/sleep"}, {"args", {"sleep", "10"}}, {"timeout", 1}}}}};
  b.save();
  auto c = oci.create("hook2", b);
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.err.find("timed out"), std::string::npos) << c;
  EXPECT_EQ(oci.status("hook2"), "");
}

TEST_F(OciConfigTest, InvalidValuesAreOneClearError) {
  OciBundle b({"true"});
  b.config["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 10}, {"hard", 5}}};
  b.config["someFutureField"] = {{"x", 1}};  // unknown: ignored
  b.save();
  auto c = oci.create("bad1", b);
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.err.find("process.rlimits"), std::string::npos) << c;
  EXPECT_EQ(std::count(c.err.begin(), c.err.end(), '\n'), 1) << c;
  b.config["process"].erase("rlimits");
  b.config["process"]["cwd"] = "relative";
  b.save();
  c = oci.create("bad2", b);
  EXPECT_NE(c.err.find("process.cwd"), std::string::npos) << c;
  // Fields with a MUST kapsel cannot meet here are refused, not ignored.
  b.config["process"]["cwd"] = "/";
  b.config["linux"]["intelRdt"] = {{"closID", "guaranteed"}};
  b.save();
  c = oci.create("bad3", b);
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.err.find("linux.intelRdt: is not supported"), std::string::npos) << c;
  b.config["linux"].erase("intelRdt");
  b.config["process"]["scheduler"] = {{"policy", "SCHED_ISO"}};
  b.save();
  c = oci.create("bad4", b);
  EXPECT_NE(c.err.find("process.scheduler.policy"), std::string::npos) << c;
}

// process.scheduler, ioPriority and execCPUAffinity.final: what the process runs with, and
// its children inherit. (Field 19 of /proc/<pid>/stat is the nice value, 41 the policy: 3 is
// SCHED_BATCH.)
TEST_F(OciConfigTest, SchedulerIoPriorityAndCpuAffinityApply) {
  OciBundle b(
      {"sh", "-c",
       "cut -d' ' -f19,41 /proc/self/stat; ionice; grep Cpus_allowed_list /proc/self/status"});
  b.config["process"]["scheduler"] = {{"policy", "SCHED_BATCH"}, {"nice", 5}};
  b.config["process"]["ioPriority"] = {{"class", "IOPRIO_CLASS_BE"}, {"priority", 6}};
  b.config["process"]["execCPUAffinity"] = {{"initial", "0-1"}, {"final", "0"}};
  EXPECT_EQ(run_to_end("sched1", b), "5 3\nbest-effort: prio 6\nCpus_allowed_list:\t0\n");
}

}  // namespace
}  // namespace kapsel::testing
