// stats(), watch_oom() and memory_cgroup_path() of the v2, v1 and hybrid backends against fake
// cgroupfs trees holding what the kernel shows (text copied from 6.x kernels).
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <climits>

#include "cgroup/resources.hpp"
#include "cgroup_fake_tree.hpp"

namespace kapsel::cgroup {
namespace {

using testing::get;
using testing::put;

constexpr std::uint64_t kMiB = 1024 * 1024;

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

std::string fd_target(int fd) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// ---- v2 ----

class CgroupV2StatsTest : public testing::FakeCgroupTree {
 protected:
  void SetUp() override {
    FakeCgroupTree::SetUp();
    fill(root_, {{"cgroup.controllers", "cpuset cpu io memory pids\n"}});
    ve_ = root_ + "/kapsel/web1";
    fill(ve_, {{"cpu.stat",
                "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n"
                "core_sched.force_idle_usec 0\nnr_periods 120\nnr_throttled 7\n"
                "throttled_usec 35000\nnr_bursts 0\nburst_usec 0\n"},
               {"cpu.max", "50000 100000\n"},
               {"cpuset.cpus.effective", "0-1\n"},
               {"memory.current", "83886080\n"},
               {"memory.max", "134217728\n"},
               {"memory.peak", "100663296\n"},
               {"memory.stat",
                "anon 52428800\nfile 26214400\nkernel 4194304\nkernel_stack 65536\n"
                "pagetables 262144\nsec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\n"
                "shmem 1048576\nzswap 0\nzswapped 0\nfile_mapped 0\nfile_dirty 0\n"
                "file_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\n"
                "inactive_anon 52428800\nactive_anon 1048576\ninactive_file 26214400\n"
                "active_file 0\nunevictable 0\nslab_reclaimable 0\nslab_unreclaimable 0\n"
                "slab 0\npgfault 12345\npgmajfault 3\n"},
               {"memory.swap.current", "4096\n"},
               {"memory.swap.max", "max\n"},
               {"memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"},
               {"pids.current", "3\n"},
               {"pids.max", "50\n"},
               {"io.stat",
                "8:0 rbytes=1048576 wbytes=4096 rios=16 wios=1 dbytes=0 dios=0\n"
                "253:0 rbytes=0 wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n"
                "7:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"}});
    m_ = probe_lines(v2_line(70, root_));
    ASSERT_TRUE(m_);
  }

  std::unique_ptr<Manager> m_;
  std::string ve_;
};

TEST_F(CgroupV2StatsTest, StatsParseTheKernelsFiles) {
  auto s = m_->stats("web1");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->cpu_usage_ns, 1234567000u);
  EXPECT_EQ(s->cpu_user_ns, 1000000000u);
  EXPECT_EQ(s->cpu_system_ns, 234567000u);
  EXPECT_TRUE(s->cpu_per_cpu_ns.empty());
  EXPECT_EQ(s->cpu_periods, 120u);
  EXPECT_EQ(s->cpu_throttled_periods, 7u);
  EXPECT_EQ(s->cpu_throttled_ns, 35000000u);
  EXPECT_DOUBLE_EQ(s->cpu_quota, 0.5);
  EXPECT_EQ(s->cpuset, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(s->memory_usage, 80 * kMiB);
  EXPECT_EQ(s->memory_limit, 128 * kMiB);
  EXPECT_EQ(s->memory_max_usage, 96 * kMiB);
  EXPECT_EQ(s->memory_cache, 25 * kMiB);
  EXPECT_EQ(s->memory_rss, 50 * kMiB);
  EXPECT_EQ(s->memory_shmem, kMiB);
  EXPECT_EQ(s->swap_usage, 4096u);
  EXPECT_EQ(s->swap_limit, kUnlimited);
  EXPECT_EQ(s->oom_kills, 2u);
  EXPECT_EQ(s->pids_current, 3u);
  EXPECT_EQ(s->pids_limit, 50u);
  ASSERT_EQ(s->io.size(), 2u);  // sorted; the idle 253:0 left out
  EXPECT_EQ(s->io[0].major, 7u);
  EXPECT_EQ(s->io[0].read_bytes, 512u);
  EXPECT_EQ(s->io[0].read_ios, 1u);
  EXPECT_EQ(s->io[1].major, 8u);
  EXPECT_EQ(s->io[1].minor, 0u);
  EXPECT_EQ(s->io[1].read_bytes, 1048576u);
  EXPECT_EQ(s->io[1].write_bytes, 4096u);
  EXPECT_EQ(s->io[1].read_ios, 16u);
  EXPECT_EQ(s->io[1].write_ios, 1u);
}

TEST_F(CgroupV2StatsTest, NoLimitsAndMissingControllers) {
  put(ve_ + "/cpu.max", "max 100000\n");
  put(ve_ + "/memory.max", "max\n");
  put(ve_ + "/pids.max", "max\n");
  // A cgroup without the memory, pids and io controllers, on a kernel without memory.peak.
  for (const char* f : {"memory.current", "memory.peak", "memory.stat", "memory.swap.current",
                        "memory.swap.max", "memory.events", "pids.current", "io.stat"})
    ASSERT_EQ(::unlink((ve_ + "/" + f).c_str()), 0) << f;
  auto s = m_->stats("web1");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->cpu_quota, 0.0);
  EXPECT_EQ(s->memory_limit, kUnlimited);
  EXPECT_EQ(s->memory_usage, 0u);
  EXPECT_EQ(s->memory_max_usage, 0u);
  EXPECT_EQ(s->swap_limit, kUnlimited);
  EXPECT_EQ(s->oom_kills, 0u);
  EXPECT_EQ(s->pids_limit, kUnlimited);
  EXPECT_TRUE(s->io.empty());
  EXPECT_EQ(s->cpu_usage_ns, 1234567000u);
}

TEST_F(CgroupV2StatsTest, MalformedFilesAndMissingVesAreErrors) {
  put(ve_ + "/memory.current", "lots\n");
  auto s = m_->stats("web1");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("unexpected contents of " + ve_ + "/memory.current: \"lots\""),
            std::string::npos)
      << s.error().message;
  auto missing = m_->stats("nothere");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::not_found);
}

TEST_F(CgroupV2StatsTest, WatchOomWakesWhenMemoryEventsChanges) {
  auto fd = m_->watch_oom("web1");
  ASSERT_TRUE(fd) << fd.error().message;
  EXPECT_EQ(fd_target(fd->get()), "anon_inode:inotify");
  EXPECT_FALSE(readable(fd->get(), 0));
  put(ve_ + "/memory.events", "low 0\nhigh 0\nmax 13\noom 3\noom_kill 3\noom_group_kill 0\n");
  EXPECT_TRUE(readable(fd->get(), 1000));
  EXPECT_EQ(m_->stats("web1")->oom_kills, 3u);
  EXPECT_FALSE(m_->watch_oom("nothere"));
}

TEST_F(CgroupV2StatsTest, MemoryCgroupPathIsRelativeToTheHierarchy) {
  EXPECT_EQ(m_->memory_cgroup_path("web1"), "/kapsel/web1");
  // Mounted from a cgroup below the hierarchy's root, as in a container without a cgroup
  // namespace: the kernel's name for the VE's cgroup has that cgroup in front.
  auto m = probe_lines(v2_line(71, root_, "/lxc/c1"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->memory_cgroup_path("web1"), "/lxc/c1/kapsel/web1");
  EXPECT_EQ(m->memory_cgroup_path("../x"), "");
}

// ---- v1 ----

class CgroupV1StatsTest : public testing::FakeCgroupTree {
 protected:
  void SetUp() override {
    FakeCgroupTree::SetUp();
    mounts_ = v1_line(31, "cpu", "cpu") + v1_line(32, "cpuacct", "cpuacct") +
              v1_line(33, "cpuset", "cpuset") + v1_line(34, "memory", "memory") +
              v1_line(37, "blkio", "blkio") + v1_line(38, "pids", "pids");
    fill(dir("cpuacct"), {{"cpuacct.usage", "1234567890\n"},
                          {"cpuacct.usage_user", "1000000000\n"},
                          {"cpuacct.usage_sys", "234567890\n"},
                          {"cpuacct.usage_percpu", "600000000 634567890 \n"}});
    fill(dir("cpu"),
         {{"cpu.stat",
           "nr_periods 120\nnr_throttled 7\nthrottled_time 35000000\nnr_bursts 0\nburst_time 0\n"},
          {"cpu.cfs_quota_us", "150000\n"},
          {"cpu.cfs_period_us", "100000\n"}});
    fill(dir("cpuset"), {{"cpuset.cpus", "0-1\n"}, {"cpuset.effective_cpus", "1\n"}});
    fill(dir("memory"),
         {{"memory.usage_in_bytes", "83886080\n"},
          {"memory.limit_in_bytes", "134217728\n"},
          {"memory.max_usage_in_bytes", "100663296\n"},
          {"memory.memsw.usage_in_bytes", "88080384\n"},
          {"memory.memsw.limit_in_bytes", "268435456\n"},
          {"memory.stat",
           "cache 1048576\nrss 2097152\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 0\n"
           "writeback 0\nswap 0\npgpgin 100\npgpgout 50\npgfault 200\npgmajfault 0\n"
           "inactive_anon 0\nactive_anon 2097152\ninactive_file 1048576\nactive_file 0\n"
           "unevictable 0\nhierarchical_memory_limit 134217728\n"
           "hierarchical_memsw_limit 268435456\ntotal_cache 26214400\ntotal_rss 52428800\n"
           "total_rss_huge 0\ntotal_shmem 1048576\ntotal_mapped_file 0\ntotal_dirty 0\n"
           "total_writeback 0\ntotal_swap 4194304\n"},
          {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"}});
    fill(dir("pids"), {{"pids.current", "3\n"}, {"pids.max", "max\n"}});
    fill(dir("blkio"),
         {{"blkio.throttle.io_service_bytes_recursive",
           "8:0 Read 1048576\n8:0 Write 4096\n8:0 Sync 1052672\n8:0 Async 0\n8:0 Discard 0\n"
           "8:0 Total 1052672\n253:0 Read 0\n253:0 Write 0\n253:0 Sync 0\n253:0 Async 0\n"
           "253:0 Discard 0\n253:0 Total 0\nTotal 1052672\n"},
          {"blkio.throttle.io_serviced_recursive",
           "8:0 Read 16\n8:0 Write 1\n8:0 Sync 17\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 17\n"
           "253:0 Read 0\n253:0 Write 0\n253:0 Sync 0\n253:0 Async 0\n253:0 Discard 0\n"
           "253:0 Total 0\nTotal 17\n"},
          // The flat files hold less (no nested cgroups): the _recursive ones win.
          {"blkio.throttle.io_service_bytes", "Total 0\n"},
          {"blkio.throttle.io_serviced", "Total 0\n"}});
    m_ = probe_lines(mounts_);
    ASSERT_TRUE(m_);
  }

  std::string dir(const std::string& controller) const {
    return root_ + "/" + controller + "/kapsel/web1";
  }

  std::string mounts_;
  std::unique_ptr<Manager> m_;
};

TEST_F(CgroupV1StatsTest, StatsParseTheKernelsFiles) {
  auto s = m_->stats("web1");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->cpu_usage_ns, 1234567890u);
  EXPECT_EQ(s->cpu_user_ns, 1000000000u);
  EXPECT_EQ(s->cpu_system_ns, 234567890u);
  EXPECT_EQ(s->cpu_per_cpu_ns, (std::vector<std::uint64_t>{600000000, 634567890}));
  EXPECT_EQ(s->cpu_periods, 120u);
  EXPECT_EQ(s->cpu_throttled_periods, 7u);
  EXPECT_EQ(s->cpu_throttled_ns, 35000000u);
  EXPECT_DOUBLE_EQ(s->cpu_quota, 1.5);
  EXPECT_EQ(s->cpuset, std::vector<unsigned>{1});  // effective, not configured
  EXPECT_EQ(s->memory_usage, 80 * kMiB);
  EXPECT_EQ(s->memory_limit, 128 * kMiB);
  EXPECT_EQ(s->memory_max_usage, 96 * kMiB);
  EXPECT_EQ(s->memory_cache, 25 * kMiB);  // the total_ (hierarchical) lines
  EXPECT_EQ(s->memory_rss, 50 * kMiB);
  EXPECT_EQ(s->memory_shmem, kMiB);
  EXPECT_EQ(s->swap_usage, 4 * kMiB);    // memsw minus memory
  EXPECT_EQ(s->swap_limit, 128 * kMiB);  // likewise
  EXPECT_EQ(s->oom_kills, 2u);
  EXPECT_EQ(s->pids_current, 3u);
  EXPECT_EQ(s->pids_limit, kUnlimited);
  ASSERT_EQ(s->io.size(), 1u);
  EXPECT_EQ(s->io[0].major, 8u);
  EXPECT_EQ(s->io[0].read_bytes, 1048576u);
  EXPECT_EQ(s->io[0].write_bytes, 4096u);
  EXPECT_EQ(s->io[0].read_ios, 16u);
  EXPECT_EQ(s->io[0].write_ios, 1u);
}

TEST_F(CgroupV1StatsTest, V1NoLimitIsUnlimited) {
  put(dir("memory") + "/memory.limit_in_bytes", "9223372036854771712\n");
  put(dir("memory") + "/memory.memsw.limit_in_bytes", "9223372036854771712\n");
  put(dir("memory") + "/memory.memsw.usage_in_bytes", "83881984\n");  // sampled a bit earlier
  put(dir("cpu") + "/cpu.cfs_quota_us", "-1\n");
  ASSERT_EQ(::unlink((dir("cpuset") + "/cpuset.effective_cpus").c_str()), 0);
  auto s = m_->stats("web1");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->memory_limit, kUnlimited);
  EXPECT_EQ(s->swap_limit, kUnlimited);
  EXPECT_EQ(s->swap_usage, 0u);  // never negative
  EXPECT_EQ(s->cpu_quota, 0.0);
  EXPECT_EQ(s->cpuset, (std::vector<unsigned>{0, 1}));  // cpuset.cpus as the fallback
}

TEST_F(CgroupV1StatsTest, MissingHierarchiesLeaveZeros) {
  auto m = probe_lines(v1_line(38, "pids", "pids"));
  ASSERT_TRUE(m);
  auto s = m->stats("web1");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->pids_current, 3u);
  EXPECT_EQ(s->cpu_usage_ns, 0u);
  EXPECT_EQ(s->memory_limit, kUnlimited);
  EXPECT_TRUE(s->io.empty());
  EXPECT_EQ(m->stats("nothere").error().kind, ErrorKind::not_found);

  put(dir("blkio") + "/blkio.throttle.io_serviced_recursive", "8:0 Read\n");
  auto bad = m_->stats("web1");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("blkio.throttle.io_serviced_recursive: \"8:0 Read\""),
            std::string::npos)
      << bad.error().message;
}

TEST_F(CgroupV1StatsTest, WatchOomRegistersAnEventfdOnOomControl) {
  put(dir("memory") + "/cgroup.event_control", "");
  auto fd = m_->watch_oom("web1");
  ASSERT_TRUE(fd) << fd.error().message;
  EXPECT_EQ(fd_target(fd->get()), "anon_inode:[eventfd]");
  // "<eventfd> <memory.oom_control fd>": the second descriptor was closed again on return.
  auto line = get(dir("memory") + "/cgroup.event_control");
  auto space = line.find(' ');
  ASSERT_NE(space, std::string::npos) << line;
  EXPECT_EQ(line.substr(0, space), std::to_string(fd->get()));
  int control_fd = std::stoi(line.substr(space + 1));
  EXPECT_NE(control_fd, fd->get());
  EXPECT_NE(fd_target(control_fd), dir("memory") + "/memory.oom_control");
  EXPECT_FALSE(readable(fd->get(), 0));
  EXPECT_FALSE(m_->watch_oom("nothere"));
}

TEST_F(CgroupV1StatsTest, MemoryCgroupPathIsInTheMemoryHierarchy) {
  EXPECT_EQ(m_->memory_cgroup_path("web1"), "/kapsel/web1");
  auto m = probe_lines(v1_line(34, "memory", "memory", "/lxc/c1"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->memory_cgroup_path("web1"), "/lxc/c1/kapsel/web1");
  auto no_memory = probe_lines(v1_line(38, "pids", "pids"));
  ASSERT_TRUE(no_memory);
  EXPECT_EQ(no_memory->memory_cgroup_path("web1"), "");
}

// ---- hybrid ----

TEST_F(CgroupV1StatsTest, HybridReadsItsV1Part) {
  std::string unified = root_ + "/unified";
  auto m = probe_lines(mounts_ + v2_line(40, unified));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->layout(), Layout::hybrid);
  fill(unified + "/kapsel/web1", {{"memory.events", "oom_kill 9\n"}});
  auto s = m->stats("web1");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->oom_kills, 2u);
  EXPECT_EQ(s->memory_usage, 80 * kMiB);
  EXPECT_EQ(m->memory_cgroup_path("web1"), "/kapsel/web1");
  put(dir("memory") + "/cgroup.event_control", "");
  auto fd = m->watch_oom("web1");
  ASSERT_TRUE(fd) << fd.error().message;
  EXPECT_EQ(fd_target(fd->get()), "anon_inode:[eventfd]");
}

}  // namespace
}  // namespace kapsel::cgroup
