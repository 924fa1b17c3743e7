#include "net/network_store.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "common/fs.hpp"

namespace kapsel::net {
namespace {

class NetNetworkStore : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kapsel-net-store-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(root_)); }
  std::string root_;
};

TEST_F(NetNetworkStore, CreateListLoadRemove) {
  NetworkStore store(root_);
  auto n = store.create("blue", "10.201.0.0/24");
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->gateway.to_string(), "10.201.0.1");
  EXPECT_EQ(store.load("blue")->subnet.to_string(), "10.201.0.0/24");
  EXPECT_EQ(store.list()->size(), 1u);
  ASSERT_TRUE(store.remove("blue"));
  EXPECT_TRUE(store.list()->empty());
  EXPECT_EQ(store.load("blue").error().kind, ErrorKind::not_found);
}

TEST_F(NetNetworkStore, RefusesOverlapsDuplicatesAndBadNamesWithNothingWritten) {
  NetworkStore store(root_);
  ASSERT_TRUE(store.create("blue", "10.201.0.0/16"));
  auto overlap = store.create("red", "10.201.5.0/24");
  ASSERT_FALSE(overlap);
  EXPECT_NE(overlap.error().message.find("overlaps network blue"), std::string::npos);
  EXPECT_EQ(store.create("blue", "10.202.0.0/16").error().kind, ErrorKind::exists);
  EXPECT_EQ(store.create("a/b", "10.203.0.0/16").error().kind, ErrorKind::usage);
  EXPECT_EQ(store.create("waytoolongnamexx", "10.203.0.0/16").error().kind, ErrorKind::usage);
  EXPECT_EQ(store.create("green", "10.203.0.0/33").error().kind, ErrorKind::usage);
  EXPECT_EQ(store.list()->size(), 1u);
}

TEST_F(NetNetworkStore, LeasesAreStableDistinctAndReleased) {
  NetworkStore store(root_);
  ASSERT_TRUE(store.create("blue", "10.201.0.0/24"));
  auto a = store.lease("blue", "web1", std::nullopt);
  auto b = store.lease("blue", "web2", std::nullopt);
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*store.lease("blue", "web1", std::nullopt), *a);  // a VE keeps its address
  EXPECT_EQ(store.remove("blue").error().kind, ErrorKind::state);
  ASSERT_TRUE(store.release("blue", "web1"));
  ASSERT_TRUE(store.release("blue", "web2"));
  ASSERT_TRUE(store.release("blue", "web2"));  // twice is fine
  EXPECT_TRUE(store.remove("blue"));
}

TEST_F(NetNetworkStore, ConcurrentLeasesFromManyProcessesNeverCollide) {
  NetworkStore store(root_);
  ASSERT_TRUE(store.create("blue", "10.201.0.0/24"));
  std::vector<pid_t> children;
  for (int i = 0; i < 20; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      NetworkStore mine(root_);
      ::_exit(mine.lease("blue", "ve" + std::to_string(i), std::nullopt) ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  auto n = store.load("blue");
  ASSERT_TRUE(n);
  std::set<IpAddress> distinct;
  for (const auto& [ve, address] : n->leases) distinct.insert(address);
  EXPECT_EQ(n->leases.size(), 20u);
  EXPECT_EQ(distinct.size(), 20u);
}

}  // namespace
}  // namespace kapsel::net
