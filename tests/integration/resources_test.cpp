// Resource management end to end, through the real binary on this host's cgroups (issue #4):
// limits enforced by the kernel, changed live by `set`, reported by `stats`, `top` and `status`,
// and a VE that sees its own size in /proc and through sysinfo(2).
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <thread>

#include "harness.hpp"

namespace kapsel::testing {
namespace {

class ResourcesTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }

  void create_and_start(const std::string& name, const std::vector<std::string>& extra = {}) {
    ASSERT_TRUE(k.create_and_start(name, extra));
  }

  RunResult exec(const std::string& name, const std::string& script) { return k.sh(name, script); }

  // The VE's cgroup directory in the v1 hierarchy of `controller` (this host is hybrid), or in
  // the unified tree.
  std::string cgroup_dir(const std::string& ve, const std::string& controller) {
    for (const auto& dir : k.cgroup_dirs(ve)) {
      if (dir.find("/sys/fs/cgroup/" + controller + "/") == 0) return dir;
    }
    for (const auto& dir : k.cgroup_dirs(ve)) {
      if (::access((dir + "/" + controller + ".max").c_str(), F_OK) == 0) return dir;
    }
    return {};
  }

  std::string cgroup_file(const std::string& ve, const std::string& controller,
                          const std::string& file) {
    std::string text = read_text(cgroup_dir(ve, controller) + "/" + file);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }

  std::uint64_t cpu_usage_ns(const std::string& ve) {
    return std::stoull(cgroup_file(ve, "cpuacct", "cpuacct.usage"));
  }

  nlohmann::json stats(const std::string& ve) {
    auto r = k.run({"stats", "--json", "--interval", "0", ve});
    EXPECT_EQ(r.exit_code, 0) << r;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_array() && j.size() == 1) << r.out;
    return j.is_array() && !j.empty() ? j[0] : nlohmann::json::object();
  }

  Kapsel k;
};

// Done-when 1: the allocation is killed inside the VE, the VE and its neighbour live on, and
// status reports the kill with its victim.
TEST_F(ResourcesTest, AllocationPastMemoryLimitIsOomKilledAndReported) {
  create_and_start("oom1", {"--memory", "64M"});
  create_and_start("oom2");
  EXPECT_EQ(cgroup_file("oom1", "memory", "memory.limit_in_bytes"), std::to_string(64 << 20));
  // busybox dd allocates its block and fills it from /dev/zero: 128 MiB of anonymous memory.
  auto r = exec("oom1", "dd if=/dev/zero of=/dev/null bs=128M count=1");
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r;

  auto status = k.status("oom1");
  EXPECT_EQ(status["state"], "running") << status;
  EXPECT_GE(status.value("oom_kills", 0), 1) << status;
  ASSERT_TRUE(eventually([&] { return k.status("oom1").contains("last_oom"); }, 5000))
      << k.status("oom1");
  auto last = k.status("oom1")["last_oom"];
  EXPECT_EQ(last["comm"], "dd") << last;
  EXPECT_GT(last["pid"].get<int>(), 0) << last;
  EXPECT_NEAR(last["at"].get<double>(), static_cast<double>(::time(nullptr)), 30) << last;

  // The neighbour and the host are untouched; the VE itself still works.
  auto other = k.status("oom2");
  EXPECT_EQ(other["state"], "running");
  EXPECT_EQ(other.value("oom_kills", 0), 0) << other;
  EXPECT_EQ(exec("oom1", "echo alive").out, "alive\n");
  auto human = k.run({"status", "oom1"});
  EXPECT_NE(human.out.find("killed dd"), std::string::npos) << human;
}

// Done-when 2: the bomb stops at the limit and the VE can still be inspected and stopped.
TEST_F(ResourcesTest, ForkBombStopsAtPidsLimitAndVeStaysAdministrable) {
  create_and_start("bomb", {"--pids", "50"});
  pid_t bomb = k.spawn({"exec", "bomb", "--", "sh", "-c", "b() { b | b & }; b; sleep 60"});
  ASSERT_TRUE(
      eventually([&] { return cgroup_file("bomb", "pids", "pids.current") == "50"; }, 10000))
      << cgroup_file("bomb", "pids", "pids.current");
  for (int i = 0; i < 10; ++i) {
    EXPECT_LE(std::stoi(cgroup_file("bomb", "pids", "pids.current")), 50);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(cgroup_file("bomb", "pids", "pids.events"), "max 0");
  // Administrable: status, stats, a command that needs no fork, and stop.
  EXPECT_EQ(k.status("bomb")["state"], "running");
  // The bomb's shells die when a fork fails and others take their places: the count moves
  // just under the limit.
  int pids = stats("bomb")["pids"];
  EXPECT_LE(pids, 50);
  EXPECT_GE(pids, 40);
  auto r = k.run({"exec", "bomb", "--", "cat", "/proc/1/comm"});
  EXPECT_EQ(r.out, "init\n") << r;
  auto stop = k.run({"stop", "--timeout", "1", "bomb"});
  EXPECT_EQ(stop.exit_code, 0) << stop;
  EXPECT_EQ(k.status("bomb")["state"], "stopped");
  int st = 0;
  ::waitpid(bomb, &st, 0);
}

// Done-when 3: CPU bandwidth over a few seconds, measured from the cgroup's CPU accounting.
TEST_F(ResourcesTest, CpusHoldsBusyLoopsToHalfACpu) {
  create_and_start("cpu1", {"--cpus", "0.5"});
  EXPECT_EQ(cgroup_file("cpu1", "cpu", "cpu.cfs_quota_us"), "50000");
  // Two busy loops: together they could use both CPUs of this host.
  pid_t loop =
      k.spawn({"exec", "cpu1", "--", "sh", "-c", "while :; do :; done & while :; do :; done"});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto t0 = std::chrono::steady_clock::now();
  auto u0 = cpu_usage_ns("cpu1");
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto u1 = cpu_usage_ns("cpu1");
  auto t1 = std::chrono::steady_clock::now();
  double share = static_cast<double>(u1 - u0) /
                 std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
  EXPECT_NEAR(share, 0.5, 0.1) << "the VE used " << share * 100 << "% of one CPU";
  (void)k.run({"stop", "--kill", "cpu1"});
  ::waitpid(loop, nullptr, 0);
}

TEST_F(ResourcesTest, CpusetKeepsProcessesOnCpuZero) {
  create_and_start("set0", {"--cpuset", "0"});
  EXPECT_EQ(cgroup_file("set0", "cpuset", "cpuset.cpus"), "0");
  auto r = exec("set0", "grep Cpus_allowed_list /proc/self/status /proc/1/status");
  ASSERT_EQ(r.exit_code, 0) << r;
  std::istringstream lines(r.out);
  std::string line;
  int seen = 0;
  while (std::getline(lines, line)) {
    EXPECT_NE(line.find("Cpus_allowed_list:\t0"), std::string::npos) << line;
    EXPECT_EQ(line.back(), '0') << line;
    ++seen;
  }
  EXPECT_EQ(seen, 2) << r.out;
}

// Done-when 4: each limit changed live is enforced at once and survives a restart.
TEST_F(ResourcesTest, SetChangesLimitsLiveAndTheySurviveRestart) {
  create_and_start("live", {"--memory", "128M", "--pids", "100"});
  auto r = k.run({"set", "live", "--memory", "96M", "--pids", "20", "--cpus", "0.25", "--cpuset",
                  "0", "--cpu-shares", "512"});
  ASSERT_EQ(r.exit_code, 0) << r;
  auto check_files = [&] {
    EXPECT_EQ(cgroup_file("live", "memory", "memory.limit_in_bytes"), std::to_string(96 << 20));
    EXPECT_EQ(cgroup_file("live", "pids", "pids.max"), "20");
    EXPECT_EQ(cgroup_file("live", "cpu", "cpu.cfs_quota_us"), "25000");
    EXPECT_EQ(cgroup_file("live", "cpu", "cpu.shares"), "512");
    EXPECT_EQ(cgroup_file("live", "cpuset", "cpuset.cpus"), "0");
  };
  check_files();
  // Enforced: 30 background sleeps cannot all start under --pids 20.
  auto forks = exec("live",
                    "n=0; for i in $(seq 30); do sleep 5 & n=$((n+1)); done 2>/dev/null; "
                    "echo $(cat /sys/fs/cgroup/pids.current 2>/dev/null)");
  EXPECT_LE(std::stoi(cgroup_file("live", "pids", "pids.current")), 20);
  (void)forks;

  // Block I/O throttles go to the first block device the host has (vda here).
  std::string disk;
  for (const char* d : {"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"}) {
    struct stat st {};
    if (::stat(d, &st) == 0 && S_ISBLK(st.st_mode)) {
      disk = d;
      break;
    }
  }
  std::string throttle;
  if (!disk.empty()) {
    auto io = k.run(
        {"set", "live", "--device-read-bps", disk + ":1M", "--device-write-iops", disk + ":100"});
    ASSERT_EQ(io.exit_code, 0) << io;
    struct stat st {};
    ::stat(disk.c_str(), &st);
    throttle = std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
    EXPECT_EQ(cgroup_file("live", "blkio", "blkio.throttle.read_bps_device"),
              throttle + " 1048576");
    EXPECT_EQ(cgroup_file("live", "blkio", "blkio.throttle.write_iops_device"), throttle + " 100");
  }

  auto restart = k.run({"restart", "--timeout", "1", "live"});
  ASSERT_EQ(restart.exit_code, 0) << restart;
  check_files();
  if (!throttle.empty()) {
    EXPECT_EQ(cgroup_file("live", "blkio", "blkio.throttle.read_bps_device"),
              throttle + " 1048576");
  }
  auto status = k.status("live");
  EXPECT_EQ(status["limits"]["memory"], 96 << 20) << status;
  EXPECT_EQ(status["limits"]["pids"], 20) << status;
}

TEST_F(ResourcesTest, SetOnAStoppedVeIsAppliedAtStart) {
  ASSERT_EQ(k.run({"create", "later"}).exit_code, 0);
  auto r = k.run({"set", "later", "--memory", "200M"});
  ASSERT_EQ(r.exit_code, 0) << r;
  ASSERT_EQ(k.run({"start", "later"}).exit_code, 0);
  EXPECT_EQ(cgroup_file("later", "memory", "memory.limit_in_bytes"), std::to_string(200 << 20));
}

// Bad input: one line naming the option and the form, a usage exit code, nothing changed.
TEST_F(ResourcesTest, BadLimitsAreRefusedAndPreviousLimitsStay) {
  create_and_start("bad", {"--memory", "128M", "--cpus", "1"});
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string mention;
  };
  std::vector<Case> cases = {
      {{"--memory", "12X"}, 2, "--memory"},
      {{"--memory", "-5M"}, 2, "--memory"},
      {{"--cpus", "0.0.1"}, 2, "--cpus"},
      {{"--cpus", "-1"}, 2, "--cpus"},
      {{"--cpuset", "0-63"}, 2, "--cpuset"},
      {{"--pids", "many"}, 2, "--pids"},
      {{"--device-read-bps", "/dev/null:1M"}, 2, "--device-read-bps"},
      {{"--cpu-weight", "20000"}, 2, "--cpu-weight"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"set", "bad"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = k.run(args);
    EXPECT_EQ(r.exit_code, c.code) << c.args[0] << " " << c.args[1] << ": " << r;
    EXPECT_NE(r.err.find(c.mention), std::string::npos) << r;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
  }
  // A memory limit below what the VE uses: this kernel (v1) cannot reclaim anonymous memory
  // without swap and refuses.
  pid_t hog =
      k.spawn({"exec", "bad", "--", "sh", "-c", "dd if=/dev/zero bs=40M count=1 | sleep 30"});
  ASSERT_TRUE(eventually(
      [&] {
        return std::stoull(cgroup_file("bad", "memory", "memory.usage_in_bytes")) > (40u << 20);
      },
      10000));
  auto r = k.run({"set", "bad", "--memory", "8M", "--cpus", "0.5"});
  EXPECT_EQ(r.exit_code, 1) << r;
  EXPECT_NE(r.err.find("--memory"), std::string::npos) << r;
  EXPECT_EQ(cgroup_file("bad", "memory", "memory.limit_in_bytes"), std::to_string(128 << 20));
  EXPECT_EQ(cgroup_file("bad", "cpu", "cpu.cfs_quota_us"), "100000");
  auto status = k.status("bad");
  EXPECT_EQ(status["limits"]["memory"], 128 << 20) << status;
  EXPECT_DOUBLE_EQ(status["limits"]["cpus"].get<double>(), 1.0) << status;
  (void)k.run({"stop", "--kill", "bad"});
  ::waitpid(hog, nullptr, 0);

  // At create: nothing is made.
  auto c = k.run({"create", "bad2", "--memory", "lots"});
  EXPECT_EQ(c.exit_code, 2) << c;
  EXPECT_EQ(k.run({"status", "bad2"}).exit_code, 3);
}

// Done-when 5: the VE sees its own size through /proc and sysinfo(2).
TEST_F(ResourcesTest, VeSeesItsOwnMemoryCpusAndUptime) {
  create_and_start("view", {"--memory", "256M", "--cpus", "1"});
  auto free = exec("view", "free -m");
  ASSERT_EQ(free.exit_code, 0) << free;
  std::istringstream f(free.out);
  std::string header, label;
  long total = 0;
  std::getline(f, header);
  f >> label >> total;
  EXPECT_EQ(label, "Mem:") << free.out;
  EXPECT_NEAR(total, 256, 2) << free.out;

  EXPECT_EQ(exec("view", "nproc").out, "1\n");
  EXPECT_EQ(exec("view", "cat /sys/devices/system/cpu/online").out, "0\n");
  auto meminfo = exec("view", "grep MemTotal /proc/meminfo");
  EXPECT_NE(meminfo.out.find(" 262144 kB"), std::string::npos) << meminfo;
  auto cpuinfo = exec("view", "grep -c ^processor /proc/cpuinfo");
  EXPECT_EQ(cpuinfo.out, "1\n") << cpuinfo;

  auto uptime = exec("view", "cat /proc/uptime");
  ASSERT_EQ(uptime.exit_code, 0) << uptime;
  EXPECT_LT(std::stod(uptime.out), 30.0) << uptime.out;
  auto busybox_uptime = exec("view", "uptime");
  EXPECT_NE(busybox_uptime.out.find("up 0 min"), std::string::npos) << busybox_uptime;
}

// If the /proc service dies, the VE keeps running, its readers never hang, and its monitor
// brings the VE's own figures back with a new service.
TEST_F(ResourcesTest, VeSurvivesTheDeathOfTheProcService) {
  create_and_start("svc", {"--memory", "256M"});
  EXPECT_NE(exec("svc", "head -1 /proc/meminfo").out.find(" 262144 kB"), std::string::npos);
  pid_t service = std::atoi(read_text(k.run_dir() + "/procfs.pid").c_str());
  ASSERT_GT(service, 0);
  ASSERT_EQ(::kill(service, SIGKILL), 0);
  // Every read answers at once: the VE's figures, or the kernel's while the service is away.
  for (int i = 0; i < 5; ++i) {
    RunOptions quick;
    quick.timeout_seconds = 10;
    auto r = k.run({"exec", "svc", "--", "head", "-1", "/proc/meminfo"}, quick);
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_NE(r.out.find("MemTotal:"), std::string::npos) << r;
  }
  EXPECT_TRUE(eventually(
      [&] {
        return exec("svc", "head -1 /proc/meminfo").out.find(" 262144 kB") != std::string::npos;
      },
      10000));
  pid_t restarted = std::atoi(read_text(k.run_dir() + "/procfs.pid").c_str());
  EXPECT_NE(restarted, service);
  EXPECT_TRUE(process_alive(restarted));
  EXPECT_EQ(k.status("svc")["state"], "running");
}

// Done-when 6: stats come from the cgroup counters; top lists every running VE.
TEST_F(ResourcesTest, StatsMatchCgroupCountersAndTopShowsEveryVe) {
  create_and_start("st1", {"--memory", "100M", "--pids", "64", "--cpus", "1.5"});
  create_and_start("st2");
  auto s = stats("st1");
  EXPECT_EQ(s["name"], "st1");
  EXPECT_EQ(s["memory_limit_bytes"], 100 << 20);
  EXPECT_EQ(s["pids_limit"], 64);
  EXPECT_DOUBLE_EQ(s["cpu_limit"].get<double>(), 1.5);
  EXPECT_EQ(s["pids"].get<std::uint64_t>(),
            std::stoull(cgroup_file("st1", "pids", "pids.current")));
  // Counters move between two reads; they must agree to within what an idle VE changes.
  double mem = std::stod(cgroup_file("st1", "memory", "memory.usage_in_bytes"));
  EXPECT_NEAR(s["memory_usage_bytes"].get<double>(), mem, mem * 0.05 + 65536);
  double cpu = std::stod(cgroup_file("st1", "cpuacct", "cpuacct.usage"));
  EXPECT_LE(s["cpu_usage_ns"].get<double>(), cpu);
  EXPECT_GT(s["cpu_usage_ns"].get<double>(), 0);

  // CPU % over an interval: a busy loop in a 1.5-CPU VE shows what the cgroup counted over
  // the same second (how much that is depends on what else the host runs: at most one CPU).
  pid_t loop = k.spawn({"exec", "st1", "--", "sh", "-c", "while :; do :; done"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto t0 = std::chrono::steady_clock::now();
  double before = std::stod(cgroup_file("st1", "cpuacct", "cpuacct.usage"));
  auto r = k.run({"stats", "--json", "--interval", "1", "st1"});
  double after = std::stod(cgroup_file("st1", "cpuacct", "cpuacct.usage"));
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_EQ(r.exit_code, 0) << r;
  auto busy = nlohmann::json::parse(r.out)[0];
  double around = 100 * (after - before) /
                  std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
  EXPECT_GT(busy["cpu_percent"].get<double>(), 10) << busy;
  EXPECT_LE(busy["cpu_percent"].get<double>(), 105) << busy;
  // The command's own start-up is in the outer interval but not in the inner one.
  EXPECT_NEAR(busy["cpu_percent"].get<double>(), around, 25) << busy << " vs " << around;

  auto top = k.run({"top", "-b", "-n", "1", "-d", "0.2"});
  ASSERT_EQ(top.exit_code, 0) << top;
  EXPECT_NE(top.out.find("st1"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("st2"), std::string::npos) << top.out;
  auto top_json = k.run({"top", "--json", "-n", "1", "-d", "0.2"});
  ASSERT_EQ(top_json.exit_code, 0) << top_json;
  auto rows = nlohmann::json::parse(top_json.out);
  EXPECT_EQ(rows.size(), 2u) << rows;
  (void)k.run({"stop", "--kill", "st1"});
  ::waitpid(loop, nullptr, 0);

  auto stopped = k.run({"stats", "st1"});
  EXPECT_EQ(stopped.exit_code, 5) << stopped;
}

}  // namespace
}  // namespace kapsel::testing
