#include "image/busybox_builder.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/fs.hpp"

namespace kapsel::image {
namespace {

class BusyboxBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kapsel-busybox-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(dir_)); }

  std::string dir_;
};

TEST_F(BusyboxBuilderTest, MissingBusyboxSaysWhatToInstall) {
  auto st = build_busybox_rootfs(dir_, {}, dir_ + "/no/busybox");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::not_found);
  EXPECT_EQ(st.error().message,
            "busybox template needs " + dir_ + "/no/busybox: apt-get install busybox-static");
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(BusyboxBuilderTest, DynamicBusyboxIsRefused) {
  // Any dynamically linked executable stands in for Debian's non-static "busybox" package.
  const char* dynamic = "/bin/ls";
  if (!fs::exists(dynamic)) GTEST_SKIP() << "no " << dynamic;
  auto st = build_busybox_rootfs(dir_, {}, dynamic);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("busybox-static"), std::string::npos) << st.error().message;
}

TEST_F(BusyboxBuilderTest, NonElfIsRefused) {
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/busybox", "#!/bin/sh\n", 0755));
  ASSERT_TRUE(fs::make_dirs(dir_ + "/rootfs"));
  auto st = build_busybox_rootfs(dir_ + "/rootfs", {}, dir_ + "/busybox");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("not a 64-bit ELF"), std::string::npos) << st.error().message;
}

}  // namespace
}  // namespace kapsel::image
