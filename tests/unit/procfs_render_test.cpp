// The virtual files' texts (procfs/render.hpp) against host texts copied from the machine
// kapsel is built on (AMD EPYC, 2 CPUs, 24 GiB, no swap) and hand-made cgroup counters: no root,
// no cgroup, no FUSE. Where a tool parses a file, the test parses it the way the tool does.
#include "procfs/render.hpp"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "common/process.hpp"
#include "procfs/load_average.hpp"

namespace kapsel::procfs {
namespace {

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;

constexpr const char* kHostMeminfo =
    "MemTotal:       24683620 kB\n"
    "MemFree:        22495920 kB\n"
    "MemAvailable:   23561932 kB\n"
    "Buffers:            2992 kB\n"
    "Cached:          1239412 kB\n"
    "SwapCached:            0 kB\n"
    "Active:           630516 kB\n"
    "Inactive:        1197860 kB\n"
    "Active(anon):       1620 kB\n"
    "Inactive(anon):   593304 kB\n"
    "Active(file):     628896 kB\n"
    "Inactive(file):   604556 kB\n"
    "Unevictable:       12004 kB\n"
    "Mlocked:           11032 kB\n"
    "SwapTotal:             0 kB\n"
    "SwapFree:              0 kB\n"
    "Zswap:                 0 kB\n"
    "Zswapped:              0 kB\n"
    "Dirty:             21228 kB\n"
    "Writeback:             0 kB\n"
    "AnonPages:        596916 kB\n"
    "Mapped:            55952 kB\n"
    "Shmem:              8952 kB\n"
    "KReclaimable:     101116 kB\n"
    "Slab:             129860 kB\n"
    "SReclaimable:     101116 kB\n"
    "SUnreclaim:        28744 kB\n"
    "KernelStack:        1840 kB\n"
    "PageTables:         4728 kB\n"
    "SecPageTables:         0 kB\n"
    "NFS_Unstable:          0 kB\n"
    "Bounce:                0 kB\n"
    "WritebackTmp:          0 kB\n"
    "CommitLimit:    12341808 kB\n"
    "Committed_AS:    1008260 kB\n"
    "VmallocTotal:   34359738367 kB\n"
    "VmallocUsed:       14636 kB\n"
    "VmallocChunk:          0 kB\n"
    "Percpu:             1440 kB\n"
    "AnonHugePages:         0 kB\n"
    "ShmemHugePages:        0 kB\n"
    "ShmemPmdMapped:        0 kB\n"
    "FileHugePages:     20480 kB\n"
    "FilePmdMapped:         0 kB\n"
    "Balloon:               0 kB\n"
    "HugePages_Total:       0\n"
    "HugePages_Free:        0\n"
    "HugePages_Rsvd:        0\n"
    "HugePages_Surp:        0\n"
    "Hugepagesize:       2048 kB\n"
    "Hugetlb:               0 kB\n"
    "DirectMap4k:       26624 kB\n"
    "DirectMap2M:    25139200 kB\n";

constexpr const char* kHostCpuinfo =
    "processor\t: 0\n"
    "vendor_id\t: AuthenticAMD\n"
    "cpu family\t: 26\n"
    "model\t\t: 2\n"
    "model name\t: AMD EPYC\n"
    "stepping\t: 1\n"
    "cpu MHz\t\t: 2096.000\n"
    "cache size\t: 1024 KB\n"
    "physical id\t: 0\n"
    "siblings\t: 2\n"
    "core id\t\t: 0\n"
    "cpu cores\t: 2\n"
    "apicid\t\t: 0\n"
    "initial apicid\t: 0\n"
    "fpu\t\t: yes\n"
    "fpu_exception\t: yes\n"
    "cpuid level\t: 13\n"
    "wp\t\t: yes\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep pge mca cmov pat pse36 clflush mmx "
    "fxsr sse sse2 ht syscall nx lm constant_tsc\n"
    "bugs\t\t: cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass srso\n"
    "bogomips\t: 4192.00\n"
    "TLB size\t: 192 4K pages\n"
    "clflush size\t: 64\n"
    "cache_alignment\t: 64\n"
    "address sizes\t: 48 bits physical, 48 bits virtual\n"
    "power management:\n"
    "\n"
    "processor\t: 1\n"
    "vendor_id\t: AuthenticAMD\n"
    "cpu family\t: 26\n"
    "model\t\t: 2\n"
    "model name\t: AMD EPYC\n"
    "stepping\t: 1\n"
    "cpu MHz\t\t: 2096.000\n"
    "cache size\t: 1024 KB\n"
    "physical id\t: 0\n"
    "siblings\t: 2\n"
    "core id\t\t: 1\n"
    "cpu cores\t: 2\n"
    "apicid\t\t: 1\n"
    "initial apicid\t: 1\n"
    "fpu\t\t: yes\n"
    "fpu_exception\t: yes\n"
    "cpuid level\t: 13\n"
    "wp\t\t: yes\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep pge mca cmov pat pse36 clflush mmx "
    "fxsr sse sse2 ht syscall nx lm constant_tsc\n"
    "bugs\t\t: cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass srso\n"
    "bogomips\t: 4192.00\n"
    "TLB size\t: 192 4K pages\n"
    "clflush size\t: 64\n"
    "cache_alignment\t: 64\n"
    "address sizes\t: 48 bits physical, 48 bits virtual\n"
    "power management:\n"
    "\n";

constexpr const char* kHostStat =
    "cpu  722747 16819 190917 1236020 5230 0 1941 0 0 0\n"
    "cpu0 344992 6319 90326 643264 1160 0 722 0 0 0\n"
    "cpu1 377754 10500 100590 592756 4069 0 1219 0 0 0\n"
    "intr 4251691 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 7 0 0 0 0 2183 647\n"
    "ctxt 5133771\n"
    "btime 1795512044\n"
    "processes 150026\n"
    "procs_running 2\n"
    "procs_blocked 0\n"
    "softirq 3150743 0 437425 5749 2418 398988 0 7 769224 0 1536932\n";

// A host with a swap partition (the machine above has none).
constexpr const char* kHostSwaps =
    "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    "/dev/vda3                               partition\t8388604\t\t0\t\t-2\n";

// The text after "Key:" of a meminfo line, parsed as busybox and procps do (sscanf "%lu").
std::uint64_t meminfo_kb(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kb = 0;
    if (line.rfind(key + ":", 0) == 0 &&
        std::sscanf(line.c_str() + key.size() + 1, "%llu", &kb) == 1)
      return kb;
  }
  return ~0ull;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A VE with --memory 256M --cpus 1 on host CPU 1, 100 MiB used of which 30 MiB cache.
struct Ve256 {
  cgroup::Stats stats;
  VeView view;
  Ve256() {
    stats.memory_limit = 256 * kMiB;
    stats.memory_usage = 100 * kMiB;
    stats.memory_cache = 30 * kMiB;
    stats.memory_rss = 60 * kMiB;
    stats.memory_shmem = 1 * kMiB;
    stats.cpu_quota = 1;
    stats.cpuset = {1};
    stats.cpu_usage_ns = 4'000'000'000;
    stats.cpu_user_ns = 3'000'000'000;
    stats.cpu_system_ns = 1'000'000'000;
    stats.cpu_per_cpu_ns = {0, 4'000'000'000};
    stats.pids_current = 3;
    view = make_view(stats, HostFacts{kHostMeminfo, {0, 1}, 12000}, 10.5);
  }
};

TEST(ProcfsRender, MeminfoShowsTheMemoryLimit) {
  Ve256 ve;
  auto text = render_meminfo(ve.view, ve.stats, kHostMeminfo);
  EXPECT_NE(text.find("MemTotal:         262144 kB\n"), std::string::npos) << text;
  EXPECT_EQ(meminfo_kb(text, "MemTotal"), 262144u);
  EXPECT_EQ(meminfo_kb(text, "MemFree"), 156u * 1024);
  EXPECT_EQ(meminfo_kb(text, "MemAvailable"), 186u * 1024);
  EXPECT_EQ(meminfo_kb(text, "Cached"), 30u * 1024);
  EXPECT_EQ(meminfo_kb(text, "Buffers"), 0u);
  EXPECT_EQ(meminfo_kb(text, "Shmem"), 1024u);
  EXPECT_EQ(meminfo_kb(text, "AnonPages"), 60u * 1024);
  EXPECT_EQ(meminfo_kb(text, "SwapTotal"), 0u);
  // Amounts not known per VE are 0, not the host's (SReclaimable would make free's "used"
  // negative).
  EXPECT_EQ(meminfo_kb(text, "SReclaimable"), 0u);
  EXPECT_EQ(meminfo_kb(text, "Active"), 0u);
  EXPECT_EQ(meminfo_kb(text, "Committed_AS"), 0u);
  // The host's overcommit ratio (50 %) applied to the VE.
  EXPECT_EQ(meminfo_kb(text, "CommitLimit"), 131071u);
  // The machine's shape is kept.
  EXPECT_NE(text.find("VmallocTotal:   34359738367 kB\n"), std::string::npos);
  EXPECT_NE(text.find("HugePages_Total:       0\n"), std::string::npos);
  EXPECT_NE(text.find("Hugepagesize:       2048 kB\n"), std::string::npos);
  // Every host line, in the host's order.
  auto host = lines_of(kHostMeminfo), ve_lines = lines_of(text);
  ASSERT_EQ(host.size(), ve_lines.size());
  for (std::size_t i = 0; i < host.size(); ++i)
    EXPECT_EQ(host[i].substr(0, host[i].find(':')), ve_lines[i].substr(0, ve_lines[i].find(':')));
}

TEST(ProcfsRender, MeminfoAddsUpForFree) {
  // busybox free: used = total - free - buffers - (cached + SReclaimable), never below zero.
  Ve256 ve;
  auto text = render_meminfo(ve.view, ve.stats, kHostMeminfo);
  auto total = meminfo_kb(text, "MemTotal"), free = meminfo_kb(text, "MemFree");
  auto cache =
      meminfo_kb(text, "Buffers") + meminfo_kb(text, "Cached") + meminfo_kb(text, "SReclaimable");
  ASSERT_GE(total, free + cache);
  EXPECT_EQ(total - free - cache, 70u * 1024);  // 100 MiB used minus 30 MiB cache
  EXPECT_LE(meminfo_kb(text, "MemAvailable"), total);
}

TEST(ProcfsRender, MeminfoWithoutLimitIsTheHosts) {
  cgroup::Stats s;
  auto view = make_view(s, HostFacts{kHostMeminfo, {0, 1}, 12000}, 3);
  EXPECT_EQ(render_meminfo(view, s, kHostMeminfo), kHostMeminfo);
}

TEST(ProcfsRender, CpuinfoShowsOnlyTheVesCpusRenumbered) {
  Ve256 ve;
  ASSERT_EQ(ve.view.cpus, (std::vector<unsigned>{1}));
  auto text = render_cpuinfo(ve.view, kHostCpuinfo);
  EXPECT_EQ(text.find("processor\t: 1"), std::string::npos) << text;
  EXPECT_EQ(text.rfind("processor\t: 0\n"), 0u);
  EXPECT_NE(text.find("siblings\t: 1\n"), std::string::npos);
  EXPECT_NE(text.find("cpu cores\t: 1\n"), std::string::npos);
  EXPECT_NE(text.find("core id\t\t: 0\n"), std::string::npos);
  EXPECT_NE(text.find("apicid\t\t: 0\n"), std::string::npos);
  EXPECT_NE(text.find("initial apicid\t: 0\n"), std::string::npos);
  EXPECT_NE(text.find("physical id\t: 0\n"), std::string::npos);
  EXPECT_NE(text.find("model name\t: AMD EPYC\n"), std::string::npos);
  // One block, ended by an empty line as in the kernel's file.
  ASSERT_GE(text.size(), 3u);
  EXPECT_EQ(text.substr(text.size() - 3), ":\n\n");
  EXPECT_EQ(text.find("\n\n"), text.size() - 2);
}

TEST(ProcfsRender, CpuinfoCountsLikeNproc) {
  // What `grep -c ^processor /proc/cpuinfo` (and glibc's get_nprocs_conf fallback) count.
  HostFacts host{kHostMeminfo, {0, 1}, 100};
  cgroup::Stats s;
  auto two = render_cpuinfo(make_view(s, host, 1), kHostCpuinfo);
  std::size_t count = 0;
  for (const auto& l : lines_of(two)) count += l.rfind("processor", 0) == 0;
  EXPECT_EQ(count, 2u);
  EXPECT_NE(two.find("processor\t: 1\n"), std::string::npos);
  EXPECT_NE(two.find("apicid\t\t: 1\n"), std::string::npos);
  EXPECT_NE(two.find("siblings\t: 2\n"), std::string::npos);
}

TEST(ProcfsRender, CpuinfoOfAnUnknownFormatIsKept) {
  VeView v;
  v.cpus = {0};
  EXPECT_EQ(render_cpuinfo(v, "cpu\t\t: POWER9\nclock\t\t: 2.2GHz\n"),
            "cpu\t\t: POWER9\nclock\t\t: 2.2GHz\n");
}

TEST(ProcfsRender, StatHasTheVesCpusAndBootTime) {
  Ve256 ve;
  const auto hz = static_cast<std::uint64_t>(proc::clock_ticks());
  auto text = render_stat(ve.view, ve.stats, kHostStat, TaskCounts{2, 1, 9, 57}, 1'800'000'000);
  auto lines = lines_of(text);
  ASSERT_GE(lines.size(), 3u) << text;
  // 4 s of CPU: 3 user, 1 system; idle = 10.5 s uptime - 4 s.
  auto cpu = fmt::format("cpu  {} 0 {} {} 0 0 0 0 0 0", 3 * hz, 1 * hz, 65 * hz / 10);
  EXPECT_EQ(lines[0], cpu);
  EXPECT_EQ(lines[1], fmt::format("cpu0 {} 0 {} {} 0 0 0 0 0 0", 3 * hz, 1 * hz, 65 * hz / 10));
  EXPECT_EQ(lines[2].rfind("intr ", 0), 0u);  // no cpu1
  EXPECT_NE(text.find("\nctxt 5133771\n"), std::string::npos);
  EXPECT_NE(text.find("\nbtime 1799999990\n"), std::string::npos);
  EXPECT_NE(text.find("\nprocesses 57\n"), std::string::npos);
  EXPECT_NE(text.find("\nprocs_running 2\n"), std::string::npos);
  EXPECT_NE(text.find("\nprocs_blocked 1\n"), std::string::npos);
  EXPECT_NE(text.find("\nsoftirq 3150743 "), std::string::npos);
  // Parsed the way busybox top reads the cpu line.
  unsigned long long u, n, s, i, io, irq, sirq, st;
  ASSERT_EQ(std::sscanf(text.c_str(), "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &n, &s, &i,
                        &io, &irq, &sirq, &st),
            8);
}

TEST(ProcfsRender, StatWithoutTaskCountsKeepsTheHostsLines) {
  Ve256 ve;
  auto text = render_stat(ve.view, ve.stats, kHostStat, std::nullopt, 1'800'000'000);
  EXPECT_NE(text.find("\nprocesses 150026\n"), std::string::npos);
  EXPECT_NE(text.find("\nprocs_running 2\n"), std::string::npos);
}

TEST(ProcfsRender, StatSpreadsTimeOnHiddenCpusAndWithoutPerCpuCounters) {
  const auto hz = static_cast<std::uint64_t>(proc::clock_ticks());
  HostFacts host{kHostMeminfo, {0, 1, 2, 3}, 100};
  cgroup::Stats s;
  s.cpuset = {0, 1, 2, 3};
  s.cpu_quota = 2;  // shown: host CPUs 0 and 1
  s.cpu_per_cpu_ns = {1'000'000'000, 1'000'000'000, 2'000'000'000, 0};
  s.cpu_usage_ns = 4'000'000'000;
  auto view = make_view(s, host, 100);
  auto lines = lines_of(render_stat(view, s, "", std::nullopt, 0));
  ASSERT_EQ(lines.size(), 3u);
  // 2 s ran on CPU 2, which is not shown: 1 s more on each shown CPU. No user/system split
  // known: all user.
  EXPECT_EQ(lines[1], fmt::format("cpu0 {} 0 0 {} 0 0 0 0 0 0", 2 * hz, 98 * hz));
  EXPECT_EQ(lines[2], fmt::format("cpu1 {} 0 0 {} 0 0 0 0 0 0", 2 * hz, 98 * hz));
  EXPECT_EQ(lines[0], fmt::format("cpu  {} 0 0 {} 0 0 0 0 0 0", 4 * hz, 196 * hz));
  // cgroup v2 has no per-CPU counters: even shares.
  s.cpu_per_cpu_ns.clear();
  lines = lines_of(render_stat(view, s, "", std::nullopt, 0));
  EXPECT_EQ(lines[1], fmt::format("cpu0 {} 0 0 {} 0 0 0 0 0 0", 2 * hz, 98 * hz));
}

TEST(ProcfsRender, Uptime) {
  VeView v;
  v.uptime_s = 10.559;
  v.idle_s = 3.2;
  EXPECT_EQ(render_uptime(v), "10.55 3.20\n");
  v.uptime_s = 0;
  v.idle_s = 0;
  EXPECT_EQ(render_uptime(v), "0.00 0.00\n");
  // Parsed as busybox and procps uptime do.
  v.uptime_s = 86400.5;
  double up = 0, idle = 0;
  ASSERT_EQ(std::sscanf(render_uptime(v).c_str(), "%lf %lf", &up, &idle), 2);
  EXPECT_DOUBLE_EQ(up, 86400.5);
}

TEST(ProcfsRender, Loadavg) {
  EXPECT_EQ(render_loadavg({0.5, 0.254, 0.1}, TaskCounts{1, 0, 5, 42}), "0.50 0.25 0.10 1/5 42\n");
  EXPECT_EQ(render_loadavg({0.005, 12.346, 0}, TaskCounts{0, 0, 0, 0}), "0.01 12.35 0.00 1/1 0\n");
}

TEST(ProcfsRender, LoadAverageDecaysLikeTheKernel) {
  LoadAverage la;
  EXPECT_FALSE(la.seeded());
  la.sample(0);
  EXPECT_TRUE(la.seeded());
  // One busy task for a minute (12 samples): the 1-minute average reaches 1 - 1/e.
  for (int i = 0; i < 12; ++i) la.sample(1);
  EXPECT_NEAR(la.values()[0], 1 - std::exp(-1.0), 1e-9);
  EXPECT_NEAR(la.values()[1], 1 - std::exp(-0.2), 1e-9);
  EXPECT_NEAR(la.values()[2], 1 - std::exp(-1.0 / 15), 1e-9);
  LoadAverage seeded;
  seeded.sample(3);
  EXPECT_EQ(seeded.values(), (std::array<double, 3>{3, 3, 3}));
}

TEST(ProcfsRender, SwapsOnlyWhenTheVeHasSwap) {
  VeView v;
  const std::string header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
  EXPECT_EQ(render_swaps(v, kHostSwaps), header);
  v.swap_total = 512 * kMiB;
  v.swap_free = 500 * kMiB;
  EXPECT_EQ(render_swaps(v, kHostSwaps),
            header + "/dev/vda3                               partition\t524288\t\t12288\t\t-2\n");
  EXPECT_EQ(render_swaps(v,
                         "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
                         "/swapfile                               file\t\t1048572\t\t0\t\t-2\n"),
            header + "/swapfile                               file\t\t524288\t\t12288\t\t-2\n");
}

TEST(ProcfsRender, DiskstatsOfTheVesDevices) {
  cgroup::Stats s;
  s.io = {{254, 0, 4096 * 512, 1024 * 512, 100, 20}, {8, 16, 1, 1, 1, 1}};
  DeviceNames names{{{254, 0}, "vda"}};
  // The kernel's columns; the device without a name (gone) is left out.
  EXPECT_EQ(render_diskstats(s, names),
            " 254       0 vda 100 0 4096 0 20 0 1024 0 0 0 0 0 0 0 0 0 0\n");
  EXPECT_EQ(render_diskstats(cgroup::Stats{}, names), "");
}

TEST(ProcfsRender, CpuOnline) {
  VeView v;
  v.cpus = {1};
  EXPECT_EQ(render_cpu_online(v), "0\n");
  v.cpus = {0, 2, 3};
  EXPECT_EQ(render_cpu_online(v), "0-2\n");
}

}  // namespace
}  // namespace kapsel::procfs
