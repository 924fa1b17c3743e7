// The VE's view of itself (procfs::make_view) from hand-made cgroup counters and a host text
// copied from a real machine: no root, no cgroup, no FUSE.
#include "procfs/ve_view.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/fs.hpp"
#include "common/process.hpp"
#include "procfs/ve_files.hpp"

namespace kapsel::procfs {
namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;

// /proc/meminfo of the machine kapsel is built on (24 GiB, no swap), trimmed.
constexpr const char* kHostMeminfo =
    "MemTotal:       24683620 kB\n"
    "MemFree:        23270520 kB\n"
    "MemAvailable:   24299280 kB\n"
    "Buffers:            4064 kB\n"
    "Cached:          1201700 kB\n"
    "SwapCached:            0 kB\n"
    "SwapTotal:             0 kB\n"
    "SwapFree:              0 kB\n"
    "Shmem:              8952 kB\n"
    "HugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n";

// The same host with 8 GiB of swap, 1 GiB of it in use.
constexpr const char* kHostMeminfoSwap =
    "MemTotal:       24683620 kB\n"
    "MemFree:        23270520 kB\n"
    "MemAvailable:   24299280 kB\n"
    "SwapTotal:       8388604 kB\n"
    "SwapFree:        7340028 kB\n";

HostFacts host(const char* meminfo = kHostMeminfo) {
  return HostFacts{meminfo, {0, 1}, 12000.0};
}

cgroup::Stats limited(std::uint64_t limit, std::uint64_t usage) {
  cgroup::Stats s;
  s.memory_limit = limit;
  s.memory_usage = usage;
  return s;
}

TEST(ProcfsView, MeminfoBytesReadsKilobytesAndCounts) {
  EXPECT_EQ(meminfo_bytes(kHostMeminfo, "MemTotal"), 24683620 * kKiB);
  EXPECT_EQ(meminfo_bytes(kHostMeminfo, "Buffers"), 4064 * kKiB);
  EXPECT_EQ(meminfo_bytes(kHostMeminfo, "Hugepagesize"), 2048 * kKiB);
  EXPECT_EQ(meminfo_bytes(kHostMeminfo, "HugePages_Total"), 0u);
  EXPECT_EQ(meminfo_bytes(kHostMeminfo, "NoSuchKey"), 0u);
  // A key is matched whole: "Cached" is not "SwapCached", "Mem" is no key at all.
  EXPECT_EQ(meminfo_bytes(kHostMeminfo, "Cached"), 1201700 * kKiB);
  EXPECT_EQ(meminfo_bytes(kHostMeminfo, "Mem"), 0u);
  EXPECT_EQ(meminfo_bytes("", "MemTotal"), 0u);
  EXPECT_EQ(meminfo_bytes("MemTotal:", "MemTotal"), 0u);
}

TEST(ProcfsView, MemoryLimitIsTheVesTotal) {
  auto s = limited(256 * kMiB, 100 * kMiB);
  s.memory_cache = 30 * kMiB;
  s.memory_shmem = 2 * kMiB;
  auto v = make_view(s, host(), 10);
  EXPECT_EQ(v.mem_total, 256 * kMiB);
  EXPECT_EQ(v.mem_free, 156 * kMiB);
  EXPECT_EQ(v.mem_cached, 30 * kMiB);
  EXPECT_EQ(v.mem_available, 186 * kMiB);
  EXPECT_EQ(v.mem_shared, 2 * kMiB);
  EXPECT_EQ(v.mem_buffers, 0u);
}

TEST(ProcfsView, UsageAboveTheLimitLeavesNothingFree) {
  // Usage can pass the limit briefly (reclaim lags, or the limit was just lowered).
  auto s = limited(64 * kMiB, 80 * kMiB);
  s.memory_cache = 200 * kMiB;  // a counter read a moment apart from the others
  auto v = make_view(s, host(), 10);
  EXPECT_EQ(v.mem_total, 64 * kMiB);
  EXPECT_EQ(v.mem_free, 0u);
  EXPECT_LE(v.mem_cached, v.mem_total);
  EXPECT_LE(v.mem_available, v.mem_total);
}

TEST(ProcfsView, LimitAboveTheHostShowsTheHost) {
  auto v = make_view(limited(1024 * 1024 * kMiB, 10 * kMiB), host(), 10);
  EXPECT_EQ(v.mem_total, 24683620 * kKiB);
  EXPECT_EQ(v.mem_free, 24683620 * kKiB - 10 * kMiB);
}

TEST(ProcfsView, NoLimitShowsTheHostsFigures) {
  cgroup::Stats s;  // memory_limit defaults to kUnlimited
  s.memory_usage = 5 * kMiB;
  auto v = make_view(s, host(), 10);
  EXPECT_EQ(v.mem_total, 24683620 * kKiB);
  EXPECT_EQ(v.mem_free, 23270520 * kKiB);
  EXPECT_EQ(v.mem_available, 24299280 * kKiB);
  EXPECT_EQ(v.mem_cached, 1201700 * kKiB);
  EXPECT_EQ(v.mem_buffers, 4064 * kKiB);
  EXPECT_EQ(v.mem_shared, 8952 * kKiB);
}

TEST(ProcfsView, SwapFollowsTheVesLimitWhereTheHostHasSwap) {
  auto s = limited(256 * kMiB, 0);
  // No swap on the host: none for the VE, whatever its limit says.
  s.swap_limit = 512 * kMiB;
  EXPECT_EQ(make_view(s, host(), 1).swap_total, 0u);
  // The VE's own limit, and what it uses of it.
  s.swap_usage = 12 * kMiB;
  auto v = make_view(s, host(kHostMeminfoSwap), 1);
  EXPECT_EQ(v.swap_total, 512 * kMiB);
  EXPECT_EQ(v.swap_free, 500 * kMiB);
  // No limit, or one the host cannot back: the host's swap.
  s.swap_limit = cgroup::kUnlimited;
  EXPECT_EQ(make_view(s, host(kHostMeminfoSwap), 1).swap_total, 8388604 * kKiB);
  s.swap_limit = 100 * 1024 * kMiB;
  EXPECT_EQ(make_view(s, host(kHostMeminfoSwap), 1).swap_total, 8388604 * kKiB);
}

TEST(ProcfsView, CpusAreTheCpusetOfTheOnlineCpus) {
  HostFacts h{kHostMeminfo, {0, 1, 2, 3}, 100};
  cgroup::Stats s;
  EXPECT_EQ(make_view(s, h, 1).cpus, (std::vector<unsigned>{0, 1, 2, 3}));
  s.cpuset = {3, 1, 7};  // 7 is offline (or gone)
  EXPECT_EQ(make_view(s, h, 1).cpus, (std::vector<unsigned>{1, 3}));
  s.cpuset = {9};  // nothing online left: never an empty machine
  EXPECT_EQ(make_view(s, h, 1).cpus, (std::vector<unsigned>{0, 1, 2, 3}));
}

TEST(ProcfsView, QuotaCutsTheCpusToItsCeiling) {
  HostFacts h{kHostMeminfo, {0, 1, 2, 3}, 100};
  cgroup::Stats s;
  s.cpu_quota = 1;
  EXPECT_EQ(make_view(s, h, 1).cpus, (std::vector<unsigned>{0}));
  s.cpu_quota = 1.5;
  EXPECT_EQ(make_view(s, h, 1).cpus, (std::vector<unsigned>{0, 1}));
  s.cpu_quota = 0.25;
  EXPECT_EQ(make_view(s, h, 1).cpus, (std::vector<unsigned>{0}));
  s.cpu_quota = 8;
  EXPECT_EQ(make_view(s, h, 1).cpus.size(), 4u);
  s.cpu_quota = 1;
  s.cpuset = {2, 3};
  EXPECT_EQ(make_view(s, h, 1).cpus, (std::vector<unsigned>{2}));
}

TEST(ProcfsView, UptimeAndIdle) {
  cgroup::Stats s;
  s.cpuset = {0};
  s.cpu_usage_ns = 4'000'000'000;  // 4 s of CPU
  auto v = make_view(s, host(), 10);
  EXPECT_DOUBLE_EQ(v.uptime_s, 10);
  EXPECT_DOUBLE_EQ(v.idle_s, 6);
  // More CPU time than wall time on one CPU (it ran elsewhere before a cpuset change).
  s.cpu_usage_ns = 50'000'000'000;
  EXPECT_DOUBLE_EQ(make_view(s, host(), 10).idle_s, 0);
  s.pids_current = 7;
  EXPECT_EQ(make_view(s, host(), 10).procs, 7u);
}

TEST(ProcfsView, InitAgeOfThisProcess) {
  double host_uptime = proc::uptime_seconds();
  auto age = init_age_seconds(::getpid(), host_uptime);
  ASSERT_TRUE(age) << age.error().message;
  // This test process started before now and after the machine booted.
  EXPECT_GE(*age, 0);
  EXPECT_LT(*age, host_uptime);
  EXPECT_FALSE(init_age_seconds(4194400, host_uptime));  // above PID_MAX_LIMIT: no process
}

TEST(ProcfsView, HostFactsOfThisMachine) {
  auto h = read_host_facts();
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_GT(meminfo_bytes(h->meminfo, "MemTotal"), 0u);
  EXPECT_FALSE(h->online.empty());
  EXPECT_GT(h->uptime_s, 0);
}

TEST(ProcfsView, CountsTheTasksOfProcesses) {
  // This process: at least this thread, running now; in the host's pid namespace its
  // innermost pid is its pid.
  auto counts = count_tasks({::getpid()}, true);
  EXPECT_GE(counts.total, 1u);
  EXPECT_GE(counts.running, 1u);
  EXPECT_EQ(counts.last_pid, static_cast<std::uint64_t>(::getpid()));
  auto cheap = count_tasks({::getpid()}, false);
  EXPECT_EQ(cheap.total, counts.total);
  EXPECT_EQ(cheap.last_pid, 0u);
  // Processes that are gone are not counted.
  EXPECT_EQ(count_tasks({4194400}, true).total, 0u);
}

TEST(ProcfsView, BlockDeviceNamesFromSysfs) {
  char dir[] = "/tmp/kapsel-sys-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string sys = dir;
  ASSERT_TRUE(fs::make_dirs(sys + "/dev/block/254:0"));
  ASSERT_TRUE(fs::write_file_atomic(sys + "/dev/block/254:0/uevent",
                                    "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n"));
  EXPECT_EQ(block_device_name(254, 0, sys), "vda");
  EXPECT_EQ(block_device_name(8, 0, sys), std::nullopt);
  ASSERT_TRUE(fs::remove_tree(sys));
}

}  // namespace
}  // namespace kapsel::procfs
