// The cgroup backends against fake mountinfo files and fake cgroupfs trees in a temporary
// directory: no root and no real cgroup needed. The fakes stand in for the kernel by
// pre-creating the interface files it would create; where the kernel would act (making a
// file vanish with its directory, reporting a cgroup empty) the test does so by hand.
#include "cgroup/manager.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "cgroup/hierarchy.hpp"
#include "cgroup/hybrid_manager.hpp"
#include "cgroup/v1_manager.hpp"
#include "cgroup/v2_manager.hpp"
#include "cgroup_fake_tree.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

// No process can have these pids (the kernel's PID_MAX_LIMIT is 4194304), so a fake
// cgroup.procs that lists them can never make a test signal a real process.
constexpr pid_t kFakePid = 4194400;
constexpr pid_t kFakePid2 = 4194401;

// The mount table of the machines kapsel is built on (hybrid), trimmed to what matters.
constexpr const char* kHybridMountinfo =
    "22 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
    "36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "37 30 0:34 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
    "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// A current systemd host.
constexpr const char* kUnifiedMountinfo =
    "24 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "26 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

// An older host without cgroup2, with the usual co-mounts and their compatibility symlinks
// (which mountinfo does not show).
constexpr const char* kLegacyMountinfo =
    "25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755\n"
    "27 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup "
    "rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd\n"
    "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory\n"
    "32 25 0:28 / /sys/fs/cgroup/pids rw,nosuid shared:13 - cgroup cgroup rw,pids\n"
    "33 25 0:29 / /sys/fs/cgroup/cpuset rw,nosuid shared:14 - cgroup cgroup "
    "rw,cpuset,clone_children\n";

using testing::get;
using testing::put;

bool is_dir(const std::string& path) {
  return fs::is_dir(path);
}

// cgroupfs's files vanish with their directory; the fake's are real files that would make
// rmdir fail with ENOTEMPTY, so the test removes them where the kernel would.
void remove_kernel_files(const std::string& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  for (const auto& f : files) std::filesystem::remove(f);
}

// The fake tree of cgroup_fake_tree.hpp, probed from mountinfo text given whole.
class CgroupTest : public testing::FakeCgroupTree {
 protected:
  Result<std::unique_ptr<Manager>> probe_text(const std::string& text,
                                              const std::string& root = "/sys/fs/cgroup") {
    put(mountinfo_, text);
    Options o;
    o.root = root;
    o.mountinfo = mountinfo_;
    return probe(o);
  }
};

// ---- probe() and mountinfo ----

TEST_F(CgroupTest, ProbeFindsHybridLayoutOfThisKindOfHost) {
  auto m = probe_text(kHybridMountinfo);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ((*m)->layout(), Layout::hybrid);
  std::vector<std::string> want = {
      "/sys/fs/cgroup/unified/kapsel/web1", "/sys/fs/cgroup/cpu/kapsel/web1",
      "/sys/fs/cgroup/cpuacct/kapsel/web1", "/sys/fs/cgroup/cpuset/kapsel/web1",
      "/sys/fs/cgroup/memory/kapsel/web1",  "/sys/fs/cgroup/devices/kapsel/web1",
      "/sys/fs/cgroup/freezer/kapsel/web1", "/sys/fs/cgroup/blkio/kapsel/web1",
      "/sys/fs/cgroup/pids/kapsel/web1"};
  EXPECT_EQ((*m)->paths("web1"), want);  // no name=systemd, no tmpfs
}

TEST_F(CgroupTest, ProbeFindsUnifiedLayout) {
  auto m = probe_text(kUnifiedMountinfo);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ((*m)->layout(), Layout::unified);
  EXPECT_EQ((*m)->paths("web1"), std::vector<std::string>{"/sys/fs/cgroup/kapsel/web1"});
}

TEST_F(CgroupTest, ProbeFindsLegacyLayoutWithCoMountedControllers) {
  auto m = probe_text(kLegacyMountinfo);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ((*m)->layout(), Layout::legacy);
  std::vector<std::string> want = {
      "/sys/fs/cgroup/cpu,cpuacct/kapsel/web1", "/sys/fs/cgroup/memory/kapsel/web1",
      "/sys/fs/cgroup/pids/kapsel/web1", "/sys/fs/cgroup/cpuset/kapsel/web1"};
  EXPECT_EQ((*m)->paths("web1"), want);
}

TEST_F(CgroupTest, ProbeWithoutCgroupsIsAClearError) {
  auto m = probe_text(
      "22 1 0:20 / /sys rw - sysfs sysfs rw\n"
      "30 22 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
      "39 30 0:36 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("no cgroup or cgroup2 hierarchy"), std::string::npos)
      << m.error().message;
  EXPECT_NE(m.error().message.find("/sys/fs/cgroup"), std::string::npos);
}

TEST_F(CgroupTest, ProbeIgnoresHierarchiesOutsideRoot) {
  // A cgroup2 hierarchy mounted elsewhere (a container runtime's private mount) is not ours.
  auto m = probe_text(std::string(kLegacyMountinfo) +
                      "90 1 0:90 / /run/other/cgroup2 rw - cgroup2 cgroup2 rw\n");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ((*m)->layout(), Layout::legacy);

  auto none = probe_text(kHybridMountinfo, "/elsewhere");
  EXPECT_FALSE(none);
}

TEST_F(CgroupTest, ProbeRejectsBadParentAndMissingMountinfo) {
  Options o;
  o.mountinfo = base_ + "/missing";
  auto m = probe(o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ENOENT);

  put(mountinfo_, kHybridMountinfo);
  o.mountinfo = mountinfo_;
  for (const char* bad : {"", "/abs", "a/../b", "..", "a//b"}) {
    o.parent = bad;
    auto r = probe(o);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::usage) << bad;
  }
  o.parent = "kapsel/nested";
  EXPECT_TRUE(probe(o));
}

TEST_F(CgroupTest, ParseMountinfoHandlesEscapesDuplicatesAndOptionalFields) {
  auto r = parse_mountinfo(
      // several optional fields before the separator
      "31 30 0:28 / /sys/fs/cgroup/cpu rw shared:1 master:2 propagate_from:3 - cgroup cgroup "
      "rw,cpu\n"
      // the same hierarchy bind-mounted a second time: listed once
      "50 30 0:28 / /sys/fs/cgroup/cpu-again rw - cgroup cgroup rw,cpu\n"
      // a space in the mount point is escaped as \040
      "51 30 0:40 / /sys/fs/cgroup/with\\040space rw - cgroup cgroup rw,nosuid,pids,xattr\n"
      // a named hierarchy that also carries a controller is a controller hierarchy
      "52 30 0:41 / /sys/fs/cgroup/net rw - cgroup cgroup rw,name=net,net_cls,net_prio\n",
      "/sys/fs/cgroup/");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].mount, "/sys/fs/cgroup/cpu");
  EXPECT_EQ((*r)[0].controllers, std::vector<std::string>{"cpu"});
  EXPECT_EQ((*r)[1].mount, "/sys/fs/cgroup/with space");
  EXPECT_EQ((*r)[1].controllers, std::vector<std::string>{"pids"});
  EXPECT_TRUE((*r)[2].has("net_cls"));
  EXPECT_TRUE((*r)[2].has("net_prio"));
  EXPECT_FALSE((*r)[2].v2);
}

TEST_F(CgroupTest, ParseMountinfoRejectsMalformedLines) {
  auto r = parse_mountinfo("this is not mountinfo\n", "/");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("line 1"), std::string::npos);
}

TEST_F(CgroupTest, LayoutNames) {
  EXPECT_EQ(to_string(Layout::unified), "unified");
  EXPECT_EQ(to_string(Layout::legacy), "legacy");
  EXPECT_EQ(to_string(Layout::hybrid), "hybrid");
}

// ---- v2 backend on a fake cgroup2 tree ----

class CgroupV2FakeTest : public CgroupTest {
 protected:
  void SetUp() override {
    CgroupTest::SetUp();
    // What the kernel shows at the root of a cgroup2 mount, and in the parent directory as an
    // earlier kapsel run left it.
    put(root_ + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put(root_ + "/cgroup.subtree_control", "");
    put(root_ + "/cgroup.procs", "1\n");
    ASSERT_TRUE(fs::make_dirs(root_ + "/kapsel"));
    put(root_ + "/kapsel/cgroup.controllers", "cpu io memory pids\n");
    put(root_ + "/kapsel/cgroup.subtree_control", "");
    auto m = probe_text(v2_line(70, root_), root_);
    ASSERT_TRUE(m) << m.error().message;
    m_ = std::move(*m);
    ASSERT_EQ(m_->layout(), Layout::unified);
    ve_ = root_ + "/kapsel/web1";
  }

  // The interface files the kernel creates in a new cgroup.
  void add_kernel_files(const std::string& dir, const std::string& populated = "0") {
    put(dir + "/cgroup.procs", "");
    put(dir + "/cgroup.events", "populated " + populated + "\nfrozen 0\n");
    put(dir + "/cgroup.kill", "");
    put(dir + "/cgroup.freeze", "0\n");
  }

  std::unique_ptr<Manager> m_;
  std::string ve_;
};

TEST_F(CgroupV2FakeTest, CreateMakesTheCgroupAndEnablesControllersInItsParents) {
  EXPECT_FALSE(m_->exists("web1"));
  ASSERT_TRUE(m_->create("web1"));
  EXPECT_TRUE(is_dir(ve_));
  EXPECT_TRUE(m_->exists("web1"));
  // Only the controllers kapsel uses, and only those the parent offers.
  EXPECT_EQ(get(root_ + "/cgroup.subtree_control"), "+cpu +cpuset +io +memory +pids");
  EXPECT_EQ(get(root_ + "/kapsel/cgroup.subtree_control"), "+cpu +io +memory +pids");
  // Idempotent.
  ASSERT_TRUE(m_->create("web1"));
}

TEST_F(CgroupV2FakeTest, ControllersAlreadyEnabledAreNotWrittenAgain) {
  put(root_ + "/cgroup.subtree_control", "cpuset cpu io memory pids\n");
  ASSERT_TRUE(m_->create("web1"));
  EXPECT_EQ(get(root_ + "/cgroup.subtree_control"), "cpuset cpu io memory pids\n");
}

TEST_F(CgroupV2FakeTest, InvalidVeNamesAreRejected) {
  for (const char* bad : {"", ".", "..", "../escape", "a/b"}) {
    auto st = m_->create(bad);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().kind, ErrorKind::usage);
    EXPECT_FALSE(m_->exists(bad));
    EXPECT_TRUE(m_->paths(bad).empty());
  }
  EXPECT_FALSE(is_dir(root_ + "/escape"));
}

TEST_F(CgroupV2FakeTest, AttachWritesThePidAndPidsReadsNestedCgroups) {
  ASSERT_TRUE(m_->create("web1"));
  add_kernel_files(ve_);
  ASSERT_TRUE(m_->attach("web1", kFakePid));
  EXPECT_EQ(get(ve_ + "/cgroup.procs"), std::to_string(kFakePid));

  ASSERT_TRUE(fs::make_dirs(ve_ + "/inner/deeper"));
  put(ve_ + "/inner/cgroup.procs", "");
  put(ve_ + "/inner/deeper/cgroup.procs", std::to_string(kFakePid2) + "\n");
  auto pids = m_->pids("web1");
  ASSERT_TRUE(pids) << pids.error().message;
  EXPECT_EQ(*pids, (std::vector<pid_t>{kFakePid, kFakePid2}));

  auto fds = m_->open_procs("web1");
  ASSERT_TRUE(fds) << fds.error().message;
  ASSERT_EQ(fds->size(), 1u);
  EXPECT_TRUE((*fds)[0].valid());
}

TEST_F(CgroupV2FakeTest, OperationsOnAMissingCgroup) {
  auto st = m_->attach("nothere", kFakePid);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ENOENT);
  EXPECT_FALSE(m_->open_procs("nothere"));
  // Reading and cleaning up a VE that is not there is not an error: cleanup can be re-run.
  auto pids = m_->pids("nothere");
  ASSERT_TRUE(pids);
  EXPECT_TRUE(pids->empty());
  EXPECT_TRUE(m_->kill_all("nothere", 0));
  EXPECT_TRUE(m_->destroy("nothere"));
}

TEST_F(CgroupV2FakeTest, KillAllWritesCgroupKillAndWaitsForPopulated0) {
  ASSERT_TRUE(m_->create("web1"));
  add_kernel_files(ve_, "0");
  ASSERT_TRUE(m_->kill_all("web1", 1000));
  EXPECT_EQ(get(ve_ + "/cgroup.kill"), "1");
}

TEST_F(CgroupV2FakeTest, KillAllTimesOutWhileStillPopulated) {
  ASSERT_TRUE(m_->create("web1"));
  add_kernel_files(ve_, "1");
  auto st = m_->kill_all("web1", 50);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ETIMEDOUT);
  EXPECT_EQ(get(ve_ + "/cgroup.kill"), "1");
}

TEST_F(CgroupV2FakeTest, KillAllWithoutCgroupKillFreezesKillsAndThaws) {
  ASSERT_TRUE(m_->create("web1"));
  add_kernel_files(ve_, "0");
  ASSERT_TRUE(fs::remove_tree(ve_ + "/cgroup.kill"));  // a kernel before 5.14
  put(ve_ + "/cgroup.procs", std::to_string(kFakePid) + "\n");
  put(ve_ + "/cgroup.freeze", "");
  ASSERT_TRUE(m_->kill_all("web1", 1000));
  // Frozen ("1") and then thawed again ("0"), each written as one value.
  EXPECT_EQ(get(ve_ + "/cgroup.freeze"), "0");
}

TEST_F(CgroupV2FakeTest, FreezeWritesCgroupFreezeAndReadsTheStateFromCgroupEvents) {
  ASSERT_TRUE(m_->create("web1"));
  add_kernel_files(ve_, "1");
  EXPECT_FALSE(m_->frozen("web1"));
  // Written without truncation, as the kernel's files need: start empty to see each value.
  put(ve_ + "/cgroup.freeze", "");
  // The fake kernel reports the freeze done at once.
  put(ve_ + "/cgroup.events", "populated 1\nfrozen 1\n");
  ASSERT_TRUE(m_->freeze("web1", true));
  EXPECT_EQ(get(ve_ + "/cgroup.freeze"), "1");
  EXPECT_TRUE(m_->frozen("web1"));
  put(ve_ + "/cgroup.events", "populated 1\nfrozen 0\n");
  ASSERT_TRUE(m_->freeze("web1", false));
  EXPECT_EQ(get(ve_ + "/cgroup.freeze"), "0");
  EXPECT_FALSE(m_->frozen("web1"));
  EXPECT_FALSE(m_->frozen("../web1"));
}

TEST_F(CgroupV2FakeTest, DestroyRemovesTheCgroupAndNestedOnesButKeepsTheParent) {
  ASSERT_TRUE(m_->create("web1"));
  ASSERT_TRUE(fs::make_dirs(ve_ + "/inner/deeper"));
  ASSERT_TRUE(fs::make_dirs(ve_ + "/other"));
  add_kernel_files(ve_);
  add_kernel_files(ve_ + "/inner/deeper");
  remove_kernel_files(ve_);  // as if the kernel had removed them with their directories
  ASSERT_TRUE(m_->destroy("web1"));
  EXPECT_FALSE(fs::exists(ve_));
  EXPECT_FALSE(m_->exists("web1"));
  EXPECT_TRUE(is_dir(root_ + "/kapsel"));
  // Again, as cleanup after a crash would.
  EXPECT_TRUE(m_->destroy("web1"));
}

TEST_F(CgroupV2FakeTest, DestroyReportsACgroupThatCannotBeRemoved) {
  ASSERT_TRUE(m_->create("web1"));
  put(ve_ + "/stray", "a regular file makes rmdir fail with ENOTEMPTY");
  auto st = m_->destroy("web1");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ENOTEMPTY);
  EXPECT_NE(st.error().message.find(ve_), std::string::npos) << st.error().message;
}

// ---- v1 backend on a fake legacy tree ----

class CgroupV1FakeTest : public CgroupTest {
 protected:
  void SetUp() override {
    CgroupTest::SetUp();
    std::string mounts = v1_line(81, "cpuset", "cpuset") + v1_line(82, "pids", "pids") +
                         v1_line(83, "memory", "memory") + v1_line(84, "freezer", "freezer") +
                         v1_line(85, "systemd", "name=systemd");
    put(root_ + "/cpuset/cpuset.cpus", "0-3\n");
    put(root_ + "/cpuset/cpuset.mems", "0\n");
    // A new cpuset cgroup comes with empty cpus and mems; the fake pre-creates the
    // directories with those empty files, standing in for the kernel's mkdir.
    for (const char* d : {"/cpuset/kapsel", "/cpuset/kapsel/web1"}) {
      ASSERT_TRUE(fs::make_dirs(root_ + d));
      put(root_ + d + "/cpuset.cpus", "");
      put(root_ + d + "/cpuset.mems", "");
    }
    auto m = probe_text(mounts, root_);
    ASSERT_TRUE(m) << m.error().message;
    m_ = std::move(*m);
  }

  std::unique_ptr<Manager> m_;
};

TEST_F(CgroupV1FakeTest, ProbeSkipsNamedHierarchies) {
  EXPECT_EQ(m_->layout(), Layout::legacy);
  std::vector<std::string> want = {root_ + "/cpuset/kapsel/web1", root_ + "/pids/kapsel/web1",
                                   root_ + "/memory/kapsel/web1", root_ + "/freezer/kapsel/web1"};
  EXPECT_EQ(m_->paths("web1"), want);
}

TEST_F(CgroupV1FakeTest, CreateCopiesCpusetFromParentTopDown) {
  ASSERT_TRUE(m_->create("web1"));
  EXPECT_EQ(get(root_ + "/cpuset/kapsel/cpuset.cpus"), "0-3");
  EXPECT_EQ(get(root_ + "/cpuset/kapsel/cpuset.mems"), "0");
  EXPECT_EQ(get(root_ + "/cpuset/kapsel/web1/cpuset.cpus"), "0-3");
  EXPECT_EQ(get(root_ + "/cpuset/kapsel/web1/cpuset.mems"), "0");
  for (const auto& p : m_->paths("web1")) EXPECT_TRUE(is_dir(p)) << p;
  EXPECT_FALSE(fs::exists(root_ + "/systemd/kapsel"));
  EXPECT_TRUE(m_->create("web1"));
}

TEST_F(CgroupV1FakeTest, CreateKeepsARestrictionOnTheParent) {
  put(root_ + "/cpuset/kapsel/cpuset.cpus", "1\n");
  ASSERT_TRUE(m_->create("web1"));
  EXPECT_EQ(get(root_ + "/cpuset/kapsel/cpuset.cpus"), "1\n");
  EXPECT_EQ(get(root_ + "/cpuset/kapsel/web1/cpuset.cpus"), "1");
}

TEST_F(CgroupV1FakeTest, AttachWritesThePidToEveryHierarchy) {
  ASSERT_TRUE(m_->create("web1"));
  for (const auto& p : m_->paths("web1")) put(p + "/cgroup.procs", "");
  ASSERT_TRUE(m_->attach("web1", kFakePid));
  for (const auto& p : m_->paths("web1"))
    EXPECT_EQ(get(p + "/cgroup.procs"), std::to_string(kFakePid)) << p;
  auto pids = m_->pids("web1");
  ASSERT_TRUE(pids);
  EXPECT_EQ(*pids, std::vector<pid_t>{kFakePid});
  auto fds = m_->open_procs("web1");
  ASSERT_TRUE(fds);
  EXPECT_EQ(fds->size(), 4u);
}

TEST_F(CgroupV1FakeTest, KillAllFreezesAndAlwaysThaws) {
  ASSERT_TRUE(m_->create("web1"));
  for (const auto& p : m_->paths("web1")) put(p + "/cgroup.procs", "");
  std::string freezer = root_ + "/freezer/kapsel/web1";
  put(freezer + "/freezer.state", "THAWED\n");
  // Listed only in the memory hierarchy, as after a crash half-way through attach(): still
  // found. The fake never empties, so the kill times out.
  put(root_ + "/memory/kapsel/web1/cgroup.procs", std::to_string(kFakePid) + "\n");
  auto st = m_->kill_all("web1", 50);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ETIMEDOUT);
  EXPECT_EQ(get(freezer + "/freezer.state"), "THAWED\n");

  put(root_ + "/memory/kapsel/web1/cgroup.procs", "");
  EXPECT_TRUE(m_->kill_all("web1", 50));
}

TEST_F(CgroupV1FakeTest, FreezeUsesTheFreezerHierarchy) {
  ASSERT_TRUE(m_->create("web1"));
  std::string state = root_ + "/freezer/kapsel/web1/freezer.state";
  put(state, "");
  EXPECT_FALSE(m_->frozen("web1"));
  ASSERT_TRUE(m_->freeze("web1", true));
  EXPECT_EQ(get(state), "FROZEN");
  EXPECT_TRUE(m_->frozen("web1"));
  ASSERT_TRUE(m_->freeze("web1", false));
  EXPECT_EQ(get(state), "THAWED");
  EXPECT_FALSE(m_->frozen("web1"));
}

TEST_F(CgroupTest, FreezeWithoutAFreezerHierarchyIsAStateError) {
  auto m = probe_text(v1_line(82, "pids", "pids"), root_);
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_TRUE((*m)->create("web1"));
  auto st = (*m)->freeze("web1", true);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::state);
  EXPECT_NE(st.error().message.find("no cgroup freezer"), std::string::npos) << st.error().message;
  EXPECT_FALSE((*m)->frozen("web1"));
}

TEST_F(CgroupV1FakeTest, DestroyRemovesEveryHierarchysCgroup) {
  ASSERT_TRUE(m_->create("web1"));
  ASSERT_TRUE(fs::make_dirs(root_ + "/pids/kapsel/web1/nested"));
  for (const auto& p : m_->paths("web1")) remove_kernel_files(p);
  ASSERT_TRUE(m_->destroy("web1"));
  for (const auto& p : m_->paths("web1")) EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_TRUE(is_dir(root_ + "/pids/kapsel"));
  EXPECT_FALSE(m_->exists("web1"));
  EXPECT_TRUE(m_->destroy("web1"));
}

// ---- hybrid backend on a fake tree ----

TEST_F(CgroupTest, HybridUsesV1ForControllersAndV2ForTracking) {
  std::string unified = root_ + "/unified";
  auto m = probe_text(
      v1_line(81, "pids", "pids") + v1_line(82, "freezer", "freezer") + v2_line(83, unified),
      root_);
  ASSERT_TRUE(m) << m.error().message;
  auto& mgr = **m;
  ASSERT_EQ(mgr.layout(), Layout::hybrid);
  put(unified + "/cgroup.controllers", "hugetlb\n");
  put(unified + "/cgroup.subtree_control", "");

  ASSERT_TRUE(mgr.create("web1"));
  auto paths = mgr.paths("web1");
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(paths[0], unified + "/kapsel/web1");
  for (const auto& p : paths) {
    EXPECT_TRUE(is_dir(p)) << p;
    put(p + "/cgroup.procs", "");
  }
  // The v2 tree only tracks processes: no controllers are enabled in it.
  EXPECT_EQ(get(unified + "/cgroup.subtree_control"), "");

  ASSERT_TRUE(mgr.attach("web1", kFakePid));
  for (const auto& p : paths) EXPECT_EQ(get(p + "/cgroup.procs"), std::to_string(kFakePid)) << p;
  // pids() come from the v2 tree.
  put(paths[0] + "/cgroup.procs", std::to_string(kFakePid2) + "\n");
  auto pids = mgr.pids("web1");
  ASSERT_TRUE(pids);
  EXPECT_EQ(*pids, std::vector<pid_t>{kFakePid2});
  auto fds = mgr.open_procs("web1");
  ASSERT_TRUE(fds);
  EXPECT_EQ(fds->size(), 3u);

  put(paths[0] + "/cgroup.kill", "");
  put(paths[0] + "/cgroup.events", "populated 0\n");
  for (const auto& p : paths) put(p + "/cgroup.procs", "");
  ASSERT_TRUE(mgr.kill_all("web1", 1000));
  EXPECT_EQ(get(paths[0] + "/cgroup.kill"), "1");

  for (const auto& p : paths) remove_kernel_files(p);
  ASSERT_TRUE(mgr.destroy("web1"));
  for (const auto& p : paths) EXPECT_FALSE(fs::exists(p)) << p;
  EXPECT_FALSE(mgr.exists("web1"));
  EXPECT_TRUE(mgr.destroy("web1"));
}

}  // namespace
}  // namespace kapsel::cgroup
