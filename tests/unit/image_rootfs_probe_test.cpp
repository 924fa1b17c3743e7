#include "image/rootfs_probe.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.hpp"

namespace kapsel::image {
namespace {

class RootfsProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kapsel-probe-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ + "/root";
    ASSERT_TRUE(fs::make_dirs(root_));
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(base_)); }

  void file(const std::string& path, const std::string& data) {
    auto slash = path.rfind('/');
    if (slash != std::string::npos) {
      ASSERT_TRUE(fs::make_dirs(root_ + "/" + path.substr(0, slash)));
    }
    ASSERT_TRUE(fs::write_file_atomic(root_ + "/" + path, data, 0755));
  }
  void link(const std::string& path, const std::string& target) {
    auto slash = path.rfind('/');
    if (slash != std::string::npos) {
      ASSERT_TRUE(fs::make_dirs(root_ + "/" + path.substr(0, slash)));
    }
    ASSERT_EQ(::symlink(target.c_str(), (root_ + "/" + path).c_str()), 0);
  }

  std::string base_;
  std::string root_;
};

TEST_F(RootfsProbeTest, BusyboxInitHaltsOnUsr1) {
  file("bin/busybox", "whatever");
  link("sbin/init", "/bin/busybox");
  auto info = detect_init(root_);
  EXPECT_EQ(info.init, "/sbin/init");
  EXPECT_EQ(info.halt_signal, SIGUSR1);
}

TEST_F(RootfsProbeTest, BusyboxIsRecognisedByContentsToo) {
  file("sbin/init", std::string("\x7f"
                                "ELF") +
                        std::string(1000, '\0') + "BusyBox v1.36.1 x");
  EXPECT_EQ(detect_init(root_).halt_signal, SIGUSR1);
}

TEST_F(RootfsProbeTest, SystemdThroughUsrMergeLinksHaltsOnRtmin3) {
  file("usr/lib/systemd/systemd", "elf");
  link("usr/sbin/init", "../lib/systemd/systemd");
  link("sbin", "usr/sbin");
  link("lib", "usr/lib");
  EXPECT_EQ(detect_init(root_).halt_signal, SIGRTMIN + 3);
}

TEST_F(RootfsProbeTest, OtherInitsGetSigterm) {
  file("sbin/init", "#!/bin/sh\nexec sleep infinity\n");
  auto info = detect_init(root_);
  EXPECT_EQ(info.halt_signal, SIGTERM);
  EXPECT_EQ(info.init, "/sbin/init");
}

TEST_F(RootfsProbeTest, MissingInitKeepsTheDefault) {
  auto info = detect_init(root_);
  EXPECT_EQ(info.init, "/sbin/init");
  EXPECT_EQ(info.halt_signal, SIGTERM);
}

TEST_F(RootfsProbeTest, SymlinksNeverLeaveTheTree) {
  // Outside the tree, a file that must never be looked at.
  ASSERT_TRUE(fs::make_dirs(base_ + "/lib/systemd"));
  ASSERT_TRUE(fs::write_file_atomic(base_ + "/lib/systemd/systemd", "outside"));
  link("sbin/init", "../../../../../lib/systemd/systemd");
  auto resolved = resolve_in_tree(root_, "/sbin/init");
  ASSERT_FALSE(resolved);
  EXPECT_EQ(resolved.error().kind, ErrorKind::not_found);
  EXPECT_EQ(detect_init(root_).halt_signal, SIGTERM);

  // The same link with the target inside the tree: ".." stops at the tree's root.
  file("lib/systemd/systemd", "inside");
  resolved = resolve_in_tree(root_, "/sbin/init");
  ASSERT_TRUE(resolved) << resolved.error().message;
  EXPECT_EQ(*resolved, root_ + "/lib/systemd/systemd");
  EXPECT_EQ(detect_init(root_).halt_signal, SIGRTMIN + 3);
}

TEST_F(RootfsProbeTest, AbsoluteLinksRestartAtTheTreeRoot) {
  file("bin/busybox", "x");
  link("usr/bin/sh", "/bin/busybox");
  link("bin/sh", "../usr/bin/sh");
  auto resolved = resolve_in_tree(root_, "/bin/sh");
  ASSERT_TRUE(resolved) << resolved.error().message;
  EXPECT_EQ(*resolved, root_ + "/bin/busybox");
}

TEST_F(RootfsProbeTest, SymlinkLoopsEnd) {
  link("sbin/init", "/sbin/init2");
  link("sbin/init2", "init");
  auto resolved = resolve_in_tree(root_, "/sbin/init");
  ASSERT_FALSE(resolved);
  EXPECT_EQ(resolved.error().code, ELOOP);
  EXPECT_EQ(detect_init(root_).halt_signal, SIGTERM);
}

TEST_F(RootfsProbeTest, DiskUsageCountsHardLinksOnce) {
  file("data", std::string(256 * 1024, 'x'));
  auto before = disk_usage(root_);
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_GE(*before, 256u * 1024u);
  ASSERT_EQ(::link((root_ + "/data").c_str(), (root_ + "/data2").c_str()), 0);
  auto after = disk_usage(root_);
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, *before);
  file("sub/more", std::string(128 * 1024, 'y'));
  auto more = disk_usage(root_);
  ASSERT_TRUE(more);
  EXPECT_GE(*more, *before + 128u * 1024u);
}

TEST_F(RootfsProbeTest, DiskUsageOfMissingTreeFails) {
  auto usage = disk_usage(base_ + "/missing");
  ASSERT_FALSE(usage);
  EXPECT_EQ(usage.error().kind, ErrorKind::not_found);
}

}  // namespace
}  // namespace kapsel::image
