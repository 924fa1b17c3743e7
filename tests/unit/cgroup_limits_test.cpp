// check() and apply() of the v2, v1 and hybrid backends against fake cgroupfs trees: which files
// get which values, in which order, and that a refused write leaves the old limits in force.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "cgroup/cgroupfs.hpp"
#include "cgroup/hybrid_manager.hpp"
#include "cgroup/resources.hpp"
#include "cgroup/v1_manager.hpp"
#include "cgroup/v2_manager.hpp"
#include "cgroup_fake_tree.hpp"

namespace kapsel::cgroup {
namespace {

using testing::get;
using testing::put;

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr const char* kV1Unlimited = "9223372036854771712\n";

// Replaces `path` with something that fails like a file the kernel refuses to write: a symlink
// to /proc/version, which reads fine but whose writes fail (EIO for root, EACCES otherwise).
void make_unwritable(const std::string& path) {
  ASSERT_EQ(::unlink(path.c_str()), 0) << path;
  ASSERT_EQ(::symlink("/proc/version", path.c_str()), 0) << path;
}

// Replaces `path` with a directory, which cannot even be read as a file.
void make_unreadable(const std::string& path) {
  ASSERT_EQ(::unlink(path.c_str()), 0) << path;
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path;
}

// ---- v2 ----

class CgroupV2LimitsTest : public testing::FakeCgroupTree {
 protected:
  void SetUp() override {
    FakeCgroupTree::SetUp();
    fill(root_, {{"cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n"},
                 {"cgroup.subtree_control", "cpuset cpu io memory pids\n"}});
    parent_ = root_ + "/kapsel";
    fill(parent_, {{"cgroup.controllers", "cpuset cpu io memory pids\n"},
                   {"cgroup.subtree_control", "cpuset cpu io memory pids\n"},
                   {"cpuset.cpus.effective", "0-1\n"},
                   {"memory.swap.max", "max\n"}});
    ve_ = parent_ + "/web1";
    // A new cgroup's interface files as the kernel shows them.
    fill(ve_, {{"cgroup.controllers", ""},
               {"memory.max", "max\n"},
               {"memory.swap.max", "max\n"},
               {"cpu.max", "max 100000\n"},
               {"cpu.weight", "100\n"},
               {"cpuset.cpus", "\n"},
               {"pids.max", "max\n"},
               {"io.max", ""},
               {"io.bfq.weight", "default 100\n"},
               {"io.weight", "default 100\n"}});
    m_ = probe_lines(v2_line(70, root_));
    ASSERT_TRUE(m_);
    ASSERT_EQ(m_->layout(), Layout::unified);
  }

  std::unique_ptr<Manager> m_;
  std::string parent_, ve_;
};

TEST_F(CgroupV2LimitsTest, ApplyWritesEveryLimitInV2Form) {
  Limits l;
  l.memory = 64 * kMiB;
  l.memory_swap = 128 * kMiB;
  l.cpus = 0.5;
  l.cpu_shares = 1024;  // converted: v2 has only the weight
  l.cpuset = "0";
  l.pids = 50;
  l.blkio_weight = 500;
  l.read_bps = {{8, 0, 10 * kMiB}};
  l.write_iops = {{8, 0, 100}};
  ASSERT_TRUE(m_->check(l));
  auto st = m_->apply("web1", l);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(get(ve_ + "/memory.max"), "67108864");
  EXPECT_EQ(get(ve_ + "/memory.swap.max"), "67108864");  // memory_swap minus memory
  EXPECT_EQ(get(ve_ + "/cpu.max"), "50000 100000");
  EXPECT_EQ(get(ve_ + "/cpu.weight"), "39");
  EXPECT_EQ(get(ve_ + "/cpuset.cpus"), "0");
  EXPECT_EQ(get(ve_ + "/pids.max"), "50");
  EXPECT_EQ(get(ve_ + "/io.bfq.weight"), "default 500");
  EXPECT_EQ(get(ve_ + "/io.weight"), "default 100\n");  // untouched: BFQ's file is preferred
  // One line per device with all its keys.
  EXPECT_EQ(get(ve_ + "/io.max"), "8:0 rbps=10485760 wiops=100");
}

TEST_F(CgroupV2LimitsTest, ApplyWritesNoLimitAsMax) {
  Limits l;
  l.memory = kUnlimited;
  l.memory_swap = kUnlimited;
  l.cpus = 0;
  l.cpu_weight = 250;
  l.cpuset = "";
  l.pids = kUnlimited;
  l.read_bps = {{8, 16, 0}};
  put(ve_ + "/cpuset.cpus", "1\n");
  ASSERT_TRUE(m_->apply("web1", l));
  EXPECT_EQ(get(ve_ + "/memory.max"), "max");
  EXPECT_EQ(get(ve_ + "/memory.swap.max"), "max");
  EXPECT_EQ(get(ve_ + "/cpu.max"), "max 100000");
  EXPECT_EQ(get(ve_ + "/cpu.weight"), "250");
  EXPECT_EQ(get(ve_ + "/cpuset.cpus"), "\n");  // empty: the parent's CPUs again
  EXPECT_EQ(get(ve_ + "/pids.max"), "max");
  EXPECT_EQ(get(ve_ + "/io.max"), "8:16 rbps=max");
}

TEST_F(CgroupV2LimitsTest, BlkioWeightFallsBackToIoWeightOnItsScale) {
  ASSERT_EQ(::unlink((ve_ + "/io.bfq.weight").c_str()), 0);
  Limits l;
  l.blkio_weight = 500;
  ASSERT_TRUE(m_->apply("web1", l));
  EXPECT_EQ(get(ve_ + "/io.weight"), "default 4950");

  ASSERT_EQ(::unlink((ve_ + "/io.weight").c_str()), 0);
  auto st = m_->apply("web1", l);
  ASSERT_FALSE(st);
  EXPECT_TRUE(
      st.error().message.starts_with("--blkio-weight: this host has no io.bfq.weight or "
                                     "io.weight in " +
                                     ve_))
      << st.error().message;
}

TEST_F(CgroupV2LimitsTest, MemoryAloneKeepsMemoryPlusSwap) {
  put(ve_ + "/memory.max", "268435456\n");
  put(ve_ + "/memory.swap.max", "268435456\n");  // 512 MiB of memory plus swap
  Limits l;
  l.memory = 384 * kMiB;
  ASSERT_TRUE(m_->apply("web1", l));
  EXPECT_EQ(get(ve_ + "/memory.max"), "402653184");
  EXPECT_EQ(get(ve_ + "/memory.swap.max"), "134217728");

  l.memory = 1024 * kMiB;
  auto st = m_->apply("web1", l);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message,
            "--memory: the new limit 1.0 GiB is above the memory+swap limit 512.0 MiB in force; "
            "raise --memory-swap as well");
  EXPECT_EQ(get(ve_ + "/memory.max"), "402653184");

  // Swap given alone is computed against the memory limit in force.
  Limits swap;
  swap.memory_swap = 1024 * kMiB;
  ASSERT_TRUE(m_->apply("web1", swap));
  EXPECT_EQ(get(ve_ + "/memory.swap.max"), std::to_string(640 * kMiB));
}

TEST_F(CgroupV2LimitsTest, CheckNamesTheMissingController) {
  put(parent_ + "/cgroup.controllers", "cpu memory\n");
  Limits l;
  l.pids = 10;
  auto st = m_->check(l);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::usage);
  EXPECT_EQ(st.error().message, "--pids: the pids controller is not available in " + parent_ +
                                    " (cgroup.controllers: cpu memory)");
  // apply() checks first and writes nothing.
  ASSERT_FALSE(m_->apply("web1", l));
  EXPECT_EQ(get(ve_ + "/pids.max"), "max\n");

  Limits io;
  io.read_iops = {{8, 0, 5}};
  EXPECT_TRUE(m_->check(io).error().message.starts_with("--device-read-iops: the io controller"));
  Limits mem;
  mem.memory = 64 * kMiB;
  EXPECT_TRUE(m_->check(mem));
}

TEST_F(CgroupV2LimitsTest, CheckLooksAtTheNearestExistingAncestor) {
  ASSERT_TRUE(fs::remove_tree(parent_));
  Limits l;
  l.pids = 10;
  EXPECT_TRUE(m_->check(l));  // the root offers pids
  put(root_ + "/cgroup.controllers", "memory\n");
  auto st = m_->check(l);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message, "--pids: the pids controller is not available in " + root_ +
                                    " (cgroup.controllers: memory)");
}

TEST_F(CgroupV2LimitsTest, CheckRefusesCpusOutsideTheParentAndMissingSwapAccounting) {
  Limits l;
  l.cpuset = "1-3";
  auto st = m_->check(l);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message,
            "--cpuset: CPUs 2-3 are not available in " + parent_ + " (it has 0-1)");

  ASSERT_EQ(::unlink((parent_ + "/memory.swap.max").c_str()), 0);
  Limits swap;
  swap.memory = 64 * kMiB;
  swap.memory_swap = 128 * kMiB;
  st = m_->check(swap);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message,
            "--memory-swap: this host has no swap accounting (memory.swap.max is missing in " +
                parent_ + ")");
  // validate() comes first.
  swap.memory_swap = 32 * kMiB;
  EXPECT_TRUE(m_->check(swap).error().message.starts_with("--memory-swap: 32.0 MiB is less"));
}

TEST_F(CgroupV2LimitsTest, ARefusedWriteRestoresWhatWasWrittenBefore) {
  put(ve_ + "/memory.max", "536870912\n");
  make_unwritable(ve_ + "/pids.max");
  Limits l;
  l.memory = 64 * kMiB;
  l.cpus = 1.5;
  l.pids = 50;
  auto st = m_->apply("web1", l);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::failure);
  EXPECT_TRUE(st.error().code == EIO || st.error().code == EACCES) << st.error().code;
  EXPECT_TRUE(st.error().message.starts_with("--pids: the kernel refused \"50\" for " + ve_ +
                                             "/pids.max: "))
      << st.error().message;
  // Put back, in their first lines' form.
  EXPECT_EQ(get(ve_ + "/memory.max"), "536870912");
  EXPECT_EQ(get(ve_ + "/cpu.max"), "max 100000");
}

TEST_F(CgroupV2LimitsTest, AnUnreadableFileStopsBeforeItIsWrittenAndRestoresTheRest) {
  make_unreadable(ve_ + "/cpuset.cpus");
  Limits l;
  l.memory = 64 * kMiB;
  l.cpuset = "0";
  auto st = m_->apply("web1", l);
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().message.starts_with("--cpuset: reading " + ve_ + "/cpuset.cpus"))
      << st.error().message;
  EXPECT_EQ(get(ve_ + "/memory.max"), "max");
}

TEST_F(CgroupV2LimitsTest, IoMaxIsRestoredPerDevice) {
  auto* v2 = dynamic_cast<V2Manager*>(m_.get());
  ASSERT_NE(v2, nullptr);
  Limits l;
  l.read_bps = {{8, 0, 1000}};
  l.write_bps = {{8, 16, 0}};
  auto writes = v2->plan("web1", l);
  ASSERT_TRUE(writes) << writes.error().message;
  ASSERT_EQ(writes->size(), 2u);
  EXPECT_EQ((*writes)[0].value, "8:0 rbps=1000");
  EXPECT_EQ((*writes)[0].option, "--device-read-bps");
  EXPECT_EQ((*writes)[1].value, "8:16 wbps=max");
  std::string before = "8:0 rbps=2097152 wbps=max riops=max wiops=120\n";
  EXPECT_EQ((*writes)[0].undo(before), "8:0 rbps=2097152 wbps=max riops=max wiops=120");
  EXPECT_EQ((*writes)[1].undo(before), "8:16 rbps=max wbps=max riops=max wiops=max");
}

TEST_F(CgroupV2LimitsTest, ApplyToAMissingVeIsNotFound) {
  Limits l;
  l.pids = 5;
  auto st = m_->apply("nothere", l);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::not_found);
  EXPECT_FALSE(m_->apply("../escape", l));
  EXPECT_TRUE(m_->apply("web1", Limits{}));  // nothing to do
}

// ---- v1 ----

class CgroupV1LimitsTest : public testing::FakeCgroupTree {
 protected:
  void SetUp() override {
    FakeCgroupTree::SetUp();
    // The layout of this project's hosts: cpu and cpuacct mounted apart.
    std::string mounts = v1_line(31, "cpu", "cpu") + v1_line(32, "cpuacct", "cpuacct") +
                         v1_line(33, "cpuset", "cpuset") + v1_line(34, "memory", "memory") +
                         v1_line(37, "blkio", "blkio") + v1_line(38, "pids", "pids");
    fill(root_ + "/cpuset", {{"cpuset.cpus", "0-1\n"}, {"cpuset.effective_cpus", "0-1\n"}});
    fill(root_ + "/cpuset/kapsel", {{"cpuset.cpus", "0-1\n"}, {"cpuset.effective_cpus", "0-1\n"}});
    fill(root_ + "/memory/kapsel",
         {{"memory.limit_in_bytes", kV1Unlimited}, {"memory.memsw.limit_in_bytes", kV1Unlimited}});
    fill(root_ + "/blkio/kapsel", {{"blkio.bfq.weight", "100\n"},
                                   {"blkio.throttle.read_bps_device", ""},
                                   {"blkio.throttle.write_bps_device", ""},
                                   {"blkio.throttle.read_iops_device", ""},
                                   {"blkio.throttle.write_iops_device", ""}});
    for (const char* c : {"cpu", "cpuacct", "pids"}) fill(root_ + "/" + c + "/kapsel", {});
    fill(dir("memory"), {{"memory.limit_in_bytes", kV1Unlimited},
                         {"memory.memsw.limit_in_bytes", kV1Unlimited},
                         {"memory.usage_in_bytes", "83886080\n"},
                         {"memory.memsw.usage_in_bytes", "83886080\n"}});
    fill(dir("cpu"), {{"cpu.cfs_period_us", "100000\n"},
                      {"cpu.cfs_quota_us", "-1\n"},
                      {"cpu.shares", "1024\n"}});
    fill(dir("cpuset"), {{"cpuset.cpus", "0-1\n"}});
    fill(dir("pids"), {{"pids.max", "max\n"}});
    fill(dir("blkio"), {{"blkio.bfq.weight", "100\n"},
                        {"blkio.throttle.read_bps_device", ""},
                        {"blkio.throttle.write_bps_device", ""},
                        {"blkio.throttle.read_iops_device", ""},
                        {"blkio.throttle.write_iops_device", ""}});
    fill(dir("cpuacct"), {});
    m_ = probe_lines(mounts);
    ASSERT_TRUE(m_);
    ASSERT_EQ(m_->layout(), Layout::legacy);
    v1_ = dynamic_cast<V1Manager*>(m_.get());
    ASSERT_NE(v1_, nullptr);
  }

  std::string dir(const std::string& controller) const {
    return root_ + "/" + controller + "/kapsel/web1";
  }

  std::unique_ptr<Manager> m_;
  V1Manager* v1_ = nullptr;
};

TEST_F(CgroupV1LimitsTest, ApplyWritesEveryLimitInV1Form) {
  Limits l;
  l.memory = 64 * kMiB;
  l.memory_swap = 128 * kMiB;
  l.cpus = 0.5;
  l.cpu_weight = 100;  // converted: v1 has only shares
  l.cpuset = "0";
  l.pids = 50;
  l.blkio_weight = 500;
  l.read_bps = {{8, 0, 10 * kMiB}};
  l.write_iops = {{8, 16, 200}};
  ASSERT_TRUE(m_->check(l));
  auto st = m_->apply("web1", l);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(get(dir("memory") + "/memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(get(dir("memory") + "/memory.memsw.limit_in_bytes"), "134217728");
  EXPECT_EQ(get(dir("cpu") + "/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(get(dir("cpu") + "/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(get(dir("cpu") + "/cpu.shares"), "2597");
  EXPECT_EQ(get(dir("cpuset") + "/cpuset.cpus"), "0");
  EXPECT_EQ(get(dir("pids") + "/pids.max"), "50");
  EXPECT_EQ(get(dir("blkio") + "/blkio.bfq.weight"), "500");
  EXPECT_EQ(get(dir("blkio") + "/blkio.throttle.read_bps_device"), "8:0 10485760");
  EXPECT_EQ(get(dir("blkio") + "/blkio.throttle.write_iops_device"), "8:16 200");
  EXPECT_EQ(get(dir("blkio") + "/blkio.throttle.write_bps_device"), "");
}

TEST_F(CgroupV1LimitsTest, ApplyWritesNoLimitInV1Form) {
  Limits l;
  l.memory = kUnlimited;
  l.memory_swap = kUnlimited;
  l.cpus = 0;
  l.cpu_shares = 512;
  l.cpuset = "";  // the parent's CPUs, copied: v1 cannot inherit
  l.pids = kUnlimited;
  put(dir("cpuset") + "/cpuset.cpus", "1\n");
  put(dir("cpu") + "/cpu.cfs_quota_us", "50000\n");
  ASSERT_TRUE(m_->apply("web1", l));
  EXPECT_EQ(get(dir("memory") + "/memory.limit_in_bytes"), "-1");
  EXPECT_EQ(get(dir("memory") + "/memory.memsw.limit_in_bytes"), "-1");
  EXPECT_EQ(get(dir("cpu") + "/cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(get(dir("cpu") + "/cpu.shares"), "512");
  EXPECT_EQ(get(dir("cpuset") + "/cpuset.cpus"), "0-1");
  EXPECT_EQ(get(dir("pids") + "/pids.max"), "max");
}

// The kernel keeps memory.memsw.limit_in_bytes >= memory.limit_in_bytes at every moment.
TEST_F(CgroupV1LimitsTest, MemswIsRaisedBeforeAndLoweredAfterMemory) {
  auto order = [&](std::uint64_t memory, std::uint64_t swap) {
    Limits l;
    l.memory = memory;
    l.memory_swap = swap;
    auto writes = v1_->plan("web1", l);
    EXPECT_TRUE(writes) << writes.error().message;
    std::vector<std::string> files;
    for (const auto& w : *writes) files.push_back(w.path.substr(w.path.rfind('/') + 1));
    return files;
  };
  const std::vector<std::string> memory_first = {"memory.limit_in_bytes",
                                                 "memory.memsw.limit_in_bytes"};
  const std::vector<std::string> memsw_first = {"memory.memsw.limit_in_bytes",
                                                "memory.limit_in_bytes"};
  // From no limit down to limits: memory first, or memsw would go below it.
  EXPECT_EQ(order(64 * kMiB, 128 * kMiB), memory_first);
  put(dir("memory") + "/memory.limit_in_bytes", "67108864\n");
  put(dir("memory") + "/memory.memsw.limit_in_bytes", "134217728\n");
  // Up from 64/128 MiB to 256/512 MiB: memsw first, or memory would go above it.
  EXPECT_EQ(order(256 * kMiB, 512 * kMiB), memsw_first);
  // Up to no limit at all.
  EXPECT_EQ(order(kUnlimited, kUnlimited), memsw_first);
  // Down below the current memory limit: memory first.
  EXPECT_EQ(order(16 * kMiB, 32 * kMiB), memory_first);
  // memsw still above the current memory limit: memsw first is safe whatever memory becomes.
  EXPECT_EQ(order(32 * kMiB, 96 * kMiB), memsw_first);
}

TEST_F(CgroupV1LimitsTest, RefusalsAreExplainedWithTheVesUsage) {
  Limits l;
  l.memory = 64 * kMiB;
  auto writes = v1_->plan("web1", l);
  ASSERT_TRUE(writes);
  ASSERT_EQ(writes->size(), 1u);
  // As the kernel answers when it cannot reclaim enough (usage_in_bytes: 80 MiB).
  EXPECT_EQ((*writes)[0].explain(EBUSY),
            "the VE already uses 80.0 MiB, more than the new limit 64.0 MiB (the kernel "
            "refused: Device or resource busy)");
  put(dir("memory") + "/memory.memsw.limit_in_bytes", "33554432\n");
  EXPECT_EQ((*writes)[0].explain(EINVAL),
            "the new limit 64.0 MiB is above the memory+swap limit 32.0 MiB in force; raise "
            "--memory-swap as well (the kernel refused: Invalid argument)");
  // No better reason to give: write_all_or_restore() names value, file and errno.
  EXPECT_EQ((*writes)[0].explain(EPERM), "");

  Limits swap;
  swap.memory_swap = 16 * kMiB;
  put(dir("memory") + "/memory.limit_in_bytes", "67108864\n");
  auto sw = v1_->plan("web1", swap);
  ASSERT_TRUE(sw);
  EXPECT_EQ((*sw)[0].explain(EINVAL),
            "the new limit 16.0 MiB is below the memory limit 64.0 MiB in force; it counts "
            "memory plus swap (the kernel refused: Invalid argument)");
  EXPECT_EQ((*sw)[0].explain(EBUSY),
            "the VE already uses 80.0 MiB of memory and swap, more than the new limit 16.0 MiB "
            "(the kernel refused: Device or resource busy)");
}

TEST_F(CgroupV1LimitsTest, ARefusedWriteRestoresMemoryAndMemsw) {
  make_unwritable(dir("pids") + "/pids.max");
  Limits l;
  l.memory = 64 * kMiB;
  l.memory_swap = 128 * kMiB;
  l.cpus = 2;
  l.pids = 50;
  auto st = m_->apply("web1", l);
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().message.starts_with("--pids: the kernel refused \"50\""))
      << st.error().message;
  EXPECT_EQ(get(dir("memory") + "/memory.limit_in_bytes"), "9223372036854771712");
  EXPECT_EQ(get(dir("memory") + "/memory.memsw.limit_in_bytes"), "9223372036854771712");
  EXPECT_EQ(get(dir("cpu") + "/cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(get(dir("cpu") + "/cpu.cfs_period_us"), "100000");
}

TEST_F(CgroupV1LimitsTest, ThrottlesAreRestoredPerDevice) {
  Limits l;
  l.read_bps = {{8, 0, 1048576}};
  auto writes = v1_->plan("web1", l);
  ASSERT_TRUE(writes);
  ASSERT_EQ(writes->size(), 1u);
  EXPECT_EQ((*writes)[0].undo("8:16 100\n8:0 2097152\n"), "8:0 2097152");
  EXPECT_EQ((*writes)[0].undo(""), "8:0 0");  // no throttle before: rate 0 removes it

  put(dir("blkio") + "/blkio.throttle.read_bps_device", "8:0 2097152\n");
  make_unwritable(dir("blkio") + "/blkio.throttle.write_iops_device");
  l.write_iops = {{8, 0, 10}};
  auto st = m_->apply("web1", l);
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().message.starts_with("--device-write-iops: the kernel refused \"8:0 10\""))
      << st.error().message;
  EXPECT_EQ(get(dir("blkio") + "/blkio.throttle.read_bps_device"), "8:0 2097152");
}

TEST_F(CgroupV1LimitsTest, BlkioWeightUsesCfqsFileWithoutBfq) {
  ASSERT_EQ(::unlink((dir("blkio") + "/blkio.bfq.weight").c_str()), 0);
  put(dir("blkio") + "/blkio.weight", "500\n");
  Limits l;
  l.blkio_weight = 300;
  ASSERT_TRUE(m_->apply("web1", l));
  EXPECT_EQ(get(dir("blkio") + "/blkio.weight"), "300");
}

TEST_F(CgroupV1LimitsTest, CheckNamesWhatTheHostLacks) {
  ASSERT_EQ(::unlink((root_ + "/blkio/kapsel/blkio.bfq.weight").c_str()), 0);
  Limits l;
  l.blkio_weight = 300;
  auto st = m_->check(l);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::usage);
  EXPECT_EQ(st.error().message,
            "--blkio-weight: this host has no BFQ or CFQ weight file (blkio.bfq.weight or "
            "blkio.weight) in " +
                root_ + "/blkio/kapsel; the BFQ I/O scheduler must be available");

  ASSERT_EQ(::unlink((root_ + "/memory/kapsel/memory.memsw.limit_in_bytes").c_str()), 0);
  Limits swap;
  swap.memory_swap = kUnlimited;
  EXPECT_EQ(m_->check(swap).error().message,
            "--memory-swap: this host has no swap accounting (memory.memsw.limit_in_bytes is "
            "missing in " +
                root_ + "/memory/kapsel)");

  Limits cpus;
  cpus.cpuset = "1-2";
  EXPECT_EQ(m_->check(cpus).error().message,
            "--cpuset: CPU 2 is not available in " + root_ + "/cpuset/kapsel (it has 0-1)");

  Limits ok;
  ok.cpus = 1;
  ok.pids = 3;
  ok.read_bps = {{8, 0, 1}};
  EXPECT_TRUE(m_->check(ok));
  ok.write_bps = {{8, 0, 1}};
  ASSERT_EQ(::unlink((root_ + "/blkio/kapsel/blkio.throttle.write_bps_device").c_str()), 0);
  EXPECT_TRUE(m_->check(ok).error().message.starts_with(
      "--device-write-bps: this host has no I/O throttling"));
}

TEST_F(CgroupV1LimitsTest, CheckWithoutAHierarchyNamesTheController) {
  auto m = probe_lines(v1_line(40, "memonly", "memory"));
  ASSERT_TRUE(m);
  Limits l;
  l.pids = 10;
  EXPECT_EQ(m->check(l).error().message,
            "--pids: this host has no pids controller (no cgroup v1 hierarchy of it is mounted)");
  l = Limits{};
  l.cpu_shares = 100;
  EXPECT_TRUE(m->check(l).error().message.starts_with("--cpu-shares: this host has no cpu"));
}

// ---- hybrid ----

TEST_F(CgroupV1LimitsTest, HybridAppliesThroughItsV1Part) {
  std::string unified = root_ + "/unified";
  auto m = probe_lines(v1_line(34, "memory", "memory") + v1_line(38, "pids", "pids") +
                       v2_line(40, unified));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->layout(), Layout::hybrid);
  Limits l;
  l.memory = 64 * kMiB;
  l.pids = 7;
  ASSERT_TRUE(m->check(l));
  ASSERT_TRUE(m->apply("web1", l));
  EXPECT_EQ(get(dir("memory") + "/memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(get(dir("pids") + "/pids.max"), "7");
  l.cpus = 1;  // no cpu hierarchy in this one, and the v2 part does not count
  EXPECT_TRUE(m->check(l).error().message.starts_with("--cpus: this host has no cpu controller"));
}

}  // namespace
}  // namespace kapsel::cgroup
