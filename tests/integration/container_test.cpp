// The container driver end to end, through the real binary: what a VE looks like from inside,
// what it leaves behind, and many VEs at once (issue #3, items 2 to 4).
#include <sched.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "harness.hpp"
#include "security/masks.hpp"

namespace kapsel::testing {
namespace {

class ContainerTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }

  void create_and_start(const std::string& name, const std::vector<std::string>& extra = {}) {
    ASSERT_TRUE(k.create_and_start(name, extra));
  }

  RunResult exec(const std::string& name, const std::string& script) { return k.sh(name, script); }

  Kapsel k;
};

TEST_F(ContainerTest, InitIsPidOneAndPsShowsOnlyTheVesProcesses) {
  create_and_start("ps1");
  auto r = exec("ps1", "ps -o pid,comm");
  ASSERT_EQ(r.exit_code, 0) << r;
  // busybox ps: PID 1 is init; the rest are the VE's own (sh, ps and whatever init spawned).
  std::istringstream lines(r.out);
  std::string header, line;
  std::getline(lines, header);
  std::set<std::string> comms;
  bool saw_init = false;
  int count = 0;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    int pid;
    std::string comm;
    f >> pid >> comm;
    if (pid == 1) saw_init = comm == "init";
    comms.insert(comm);
    ++count;
  }
  EXPECT_TRUE(saw_init) << r.out;
  EXPECT_LT(count, 8) << "the host's processes are visible:\n" << r.out;
  EXPECT_FALSE(comms.count("kapsel-monitor")) << r.out;
  EXPECT_FALSE(comms.count("kapsel_integration_tests")) << r.out;
}

TEST_F(ContainerTest, HostnameIsTheVesOwn) {
  create_and_start("named", {"--hostname", "web.example"});
  auto r = k.run({"exec", "named", "--", "hostname"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "web.example\n");
  EXPECT_EQ(exec("named", "cat /etc/hostname").out, "web.example\n");
  char host[256] = {};
  ::gethostname(host, sizeof host);
  EXPECT_NE(std::string(host), "web.example");
}

TEST_F(ContainerTest, HostMountsAreNotVisibleAndTheRootIsAnOverlay) {
  create_and_start("mnt1");
  auto r = exec("mnt1", "cat /proc/self/mountinfo");
  ASSERT_EQ(r.exit_code, 0) << r;
  // Only the VE's own mounts exist (mountinfo field 5 is the mount point); none of the host's.
  // Plus the /proc service's files over the kernel's (issue #4).
  const std::set<std::string> expected = {"/",
                                          "/proc",
                                          "/sys",
                                          "/dev",
                                          "/dev/pts",
                                          "/dev/shm",
                                          "/dev/mqueue",
                                          "/dev/console",
                                          "/proc/meminfo",
                                          "/proc/cpuinfo",
                                          "/proc/stat",
                                          "/proc/uptime",
                                          "/proc/loadavg",
                                          "/proc/swaps",
                                          "/proc/diskstats",
                                          "/sys/devices/system/cpu/online"};
  std::istringstream in(r.out);
  std::string first;
  std::getline(in, first);
  EXPECT_NE(first.find(" / / "), std::string::npos) << first;
  EXPECT_NE(first.find(" - overlay "), std::string::npos) << first;
  in.seekg(0);
  // Besides, the masked and read-only paths that this kernel has (docs/security.md).
  std::set<std::string> protection;
  for (auto p : security::kMaskedPaths) protection.emplace(p);
  for (auto p : security::kReadonlyPaths) protection.emplace(p);
  std::set<std::string> seen;
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, mount_point;
    f >> id >> parent >> dev >> root >> mount_point;
    EXPECT_TRUE(expected.count(mount_point) || protection.count(mount_point))
        << "unexpected mount in the VE: " << line;
    EXPECT_TRUE(seen.insert(mount_point).second) << "mounted twice: " << line;
  }
  for (const auto& m : expected) EXPECT_TRUE(seen.count(m)) << "missing mount " << m;
  EXPECT_TRUE(seen.count("/proc/sys")) << r.out;
  EXPECT_TRUE(seen.count("/proc/keys")) << r.out;
  // The devices, ptys and read-only /sys a VE needs are there.
  auto dev = exec("mnt1",
                  "ls /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty "
                  "/dev/console /dev/ptmx /dev/pts/ptmx /dev/shm && echo x > /dev/null && "
                  "grep ' /sys ' /proc/self/mountinfo | grep -q ' ro,' && "
                  "grep -q ' /dev/pts ' /proc/self/mountinfo && "
                  "! touch /sys/x 2>/dev/null && echo ok");
  EXPECT_EQ(dev.exit_code, 0) << dev;
  EXPECT_NE(dev.out.find("ok"), std::string::npos) << dev;
}

TEST_F(ContainerTest, LoopbackIsUpAndNoOtherInterfaceExists) {
  create_and_start("net1");
  auto r = exec("net1",
                "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; "
                "ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping-ok");
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "lo\nping-ok\n");
}

TEST_F(ContainerTest, WritesStayInTheVesPrivateArea) {
  create_and_start("w1");
  create_and_start("w2");
  ASSERT_EQ(exec("w1", "echo secret > /root/note && echo changed > /etc/motd").exit_code, 0);
  EXPECT_EQ(exec("w1", "cat /root/note").out, "secret\n");
  EXPECT_NE(exec("w2", "cat /root/note").exit_code, 0);
  EXPECT_NE(exec("w2", "cat /etc/motd").out, "changed\n");
  // The template itself is untouched.
  auto templates = nlohmann::json::parse(k.run({"template", "list", "--json"}).out);
  ASSERT_EQ(templates.size(), 1u);
  std::string rootfs = templates[0]["rootfs"];
  struct stat st {};
  EXPECT_NE(::stat((rootfs + "/root/note").c_str(), &st), 0);
  // And the write survives a restart of the VE.
  ASSERT_EQ(k.run({"restart", "-t", "5", "w1"}).exit_code, 0);
  EXPECT_EQ(exec("w1", "cat /root/note").out, "secret\n");
}

TEST_F(ContainerTest, StopAndDestroyLeaveNothingBehind) {
  create_and_start("clean1");
  auto st = k.status("clean1");
  pid_t init = st["init_pid"];
  pid_t monitor = st["monitor_pid"];
  ino_t ns = pid_namespace_inode(init);
  ASSERT_NE(ns, 0u);
  // A background process and an exec'd one, to be sure stop takes everything.
  auto bg = exec("clean1", "sleep 1000 >/dev/null 2>&1 &");
  ASSERT_EQ(bg.exit_code, 0) << bg;
  ASSERT_GE(processes_in_pid_namespace(ns).size(), 2u);
  ASSERT_FALSE(k.cgroup_dirs("clean1").empty());
  ASSERT_FALSE(mounts_mentioning(k.root() + "/ves/clean1").empty());

  auto stop = k.run({"stop", "clean1"});
  ASSERT_EQ(stop.exit_code, 0) << stop;
  EXPECT_FALSE(process_alive(init));
  EXPECT_FALSE(process_alive(monitor));
  EXPECT_TRUE(processes_in_pid_namespace(ns).empty());
  EXPECT_TRUE(k.cgroup_dirs("clean1").empty());
  EXPECT_TRUE(eventually([&] { return mounts_mentioning(k.root() + "/ves/clean1").empty(); }))
      << mounts_mentioning(k.root() + "/ves/clean1").front();
  EXPECT_EQ(k.status("clean1")["state"], "stopped");
  // busybox init halts cleanly when asked.
  EXPECT_EQ(k.status("clean1")["last_exit"]["reason"], "halted");

  ASSERT_EQ(k.run({"start", "clean1"}).exit_code, 0);
  init = k.status("clean1")["init_pid"];
  auto destroy = k.run({"destroy", "--force", "clean1"});
  ASSERT_EQ(destroy.exit_code, 0) << destroy;
  EXPECT_FALSE(process_alive(init));
  EXPECT_TRUE(k.cgroup_dirs("clean1").empty());
  EXPECT_TRUE(mounts_mentioning(k.root()).empty());
  struct stat sb {};
  EXPECT_NE(::stat((k.root() + "/ves/clean1").c_str(), &sb), 0);
  EXPECT_NE(::stat((k.run_dir() + "/ves/clean1").c_str(), &sb), 0);
  EXPECT_EQ(k.list().size(), 0u);
}

TEST_F(ContainerTest, RebootInsideTheVeStartsItAgain) {
  create_and_start("boot1");
  pid_t first_init = k.status("boot1")["init_pid"];
  ASSERT_EQ(exec("boot1", "echo kept > /root/f").exit_code, 0);
  // busybox `reboot` runs the shutdown actions, then reboot(2), which ends the pid namespace.
  (void)k.run({"exec", "boot1", "--", "reboot"});
  ASSERT_TRUE(eventually(
      [&] {
        auto st = k.status("boot1");
        return st["state"] == "running" && st["init_pid"] != first_init;
      },
      10000))
      << k.status("boot1").dump(2);
  EXPECT_EQ(k.status("boot1")["last_exit"]["reason"], "rebooted");
  EXPECT_FALSE(process_alive(first_init));
  EXPECT_EQ(exec("boot1", "cat /root/f").out, "kept\n");
}

// Started from a realtime context (chrt, a realtime service), kapsel passes the policy on to
// nothing of the VE's: the VE's cpu cgroup has no realtime budget, and the kernel would refuse
// init and exec'd commands their cgroups. The test itself is the realtime caller for a while.
TEST_F(ContainerTest, ARealtimeCallerStartsAndExecsOrdinaryProcesses) {
  struct Realtime {
    Realtime() {
      sched_param p{};
      p.sched_priority = 1;
      ok = ::sched_setscheduler(0, SCHED_RR, &p) == 0;
    }
    ~Realtime() {
      sched_param p{};
      (void)::sched_setscheduler(0, SCHED_OTHER, &p);
    }
    bool ok = false;
  } realtime;
  ASSERT_TRUE(realtime.ok) << "cannot make the test realtime: " << std::strerror(errno);
  // Field 41 of /proc/<pid>/stat is the scheduling policy: 0 is SCHED_OTHER, 2 SCHED_RR.
  const std::string policies = "cut -d' ' -f41 /proc/1/stat /proc/self/stat";
  create_and_start("rt1");
  auto r = exec("rt1", policies);
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "0\n0\n") << r;
  r = k.run({"run", "--rm", "--", "sh", "-c", policies});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "0\n0\n") << r;
}

TEST_F(ContainerTest, TwentyVesRunAtOnceAndAreListed) {
  constexpr int kCount = 20;
  for (int i = 0; i < kCount; ++i) create_and_start("many" + std::to_string(i));
  auto list = k.list();
  ASSERT_EQ(list.size(), static_cast<size_t>(kCount)) << list.dump(2);
  std::set<int> pids;
  for (const auto& ve : list) {
    EXPECT_EQ(ve["state"], "running") << ve.dump();
    EXPECT_EQ(ve["kind"], "container");
    EXPECT_GE(ve["processes"].get<int>(), 1) << ve.dump();
    pids.insert(ve["init_pid"].get<int>());
    EXPECT_TRUE(process_alive(ve["init_pid"]));
  }
  EXPECT_EQ(pids.size(), static_cast<size_t>(kCount));
  // Every VE answers with its own hostname.
  for (int i = 0; i < kCount; i += 7) {
    auto name = "many" + std::to_string(i);
    EXPECT_EQ(k.run({"exec", name, "--", "hostname"}).out, name + "\n");
  }
  // The human table lists them all too.
  auto table = k.run({"list"});
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), kCount + 1) << table.out;
  for (int i = 0; i < kCount; ++i)
    ASSERT_EQ(k.run({"stop", "--kill", "many" + std::to_string(i)}).exit_code, 0);
  for (const auto& ve : k.list()) EXPECT_EQ(ve["state"], "stopped");
}

}  // namespace
}  // namespace kapsel::testing
