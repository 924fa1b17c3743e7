#include "common/fs.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace kapsel::fs {
namespace {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kapsel-fs-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ASSERT_TRUE(remove_tree(dir_)); }
  std::string dir_;
};

TEST_F(FsTest, AtomicWriteReplacesContentsAndLeavesNoTemporary) {
  std::string path = dir_ + "/config.json";
  ASSERT_TRUE(write_file_atomic(path, "old"));
  ASSERT_TRUE(write_file_atomic(path, "new contents"));
  EXPECT_EQ(*read_file(path), "new contents");
  EXPECT_FALSE(exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST_F(FsTest, ReadMissingFileIsNotFound) {
  auto r = read_file(dir_ + "/missing");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::not_found);
  EXPECT_NE(r.error().message.find("missing"), std::string::npos);
}

TEST_F(FsTest, MakeDirsCreatesParentsAndAcceptsExisting) {
  ASSERT_TRUE(make_dirs(dir_ + "/a/b/c"));
  ASSERT_TRUE(make_dirs(dir_ + "/a/b/c"));
  EXPECT_TRUE(is_dir(dir_ + "/a/b/c"));
}

TEST_F(FsTest, MakeDirsOverFileFails) {
  ASSERT_TRUE(write_file_atomic(dir_ + "/file", "x"));
  EXPECT_FALSE(make_dirs(dir_ + "/file"));
}

TEST_F(FsTest, RemoveTreeDoesNotFollowSymlinksOutOfTheTree) {
  std::string outside = dir_ + "/outside";
  ASSERT_TRUE(make_dirs(outside));
  ASSERT_TRUE(write_file_atomic(outside + "/keep", "precious"));
  ASSERT_TRUE(make_dirs(dir_ + "/tree/sub"));
  ASSERT_EQ(::symlink(outside.c_str(), (dir_ + "/tree/sub/link").c_str()), 0);
  ASSERT_TRUE(remove_tree(dir_ + "/tree"));
  EXPECT_FALSE(exists(dir_ + "/tree"));
  EXPECT_EQ(*read_file(outside + "/keep"), "precious");
}

TEST_F(FsTest, RemoveTreeOfMissingPathSucceeds) {
  EXPECT_TRUE(remove_tree(dir_ + "/nothing"));
}

}  // namespace
}  // namespace kapsel::fs
