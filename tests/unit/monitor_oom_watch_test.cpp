// The monitor finds its VE's OOM kills in the kernel log (/dev/kmsg records).
#include <gtest/gtest.h>

#include "monitor/oom_watch.hpp"

namespace kapsel::monitor {
namespace {

constexpr std::string_view kRecord =
    "6,48213,913377443,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
    "mems_allowed=0,oom_memcg=/kapsel/web1,task_memcg=/kapsel/web1,task=dd,pid=41233,uid=0\n";

TEST(OomWatchParse, FindsTheVictimOfTheVesOwnCgroup) {
  auto e = parse_oom_kill(kRecord, "/kapsel/web1");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->comm, "dd");
  EXPECT_EQ(e->pid, 41233);
  EXPECT_EQ(e->uid, 0);
  EXPECT_EQ(e->cgroup, "/kapsel/web1");
}

TEST(OomWatchParse, CountsCgroupsNestedInTheVes) {
  std::string nested(kRecord);
  nested.replace(nested.find("oom_memcg=/kapsel/web1"), 22, "oom_memcg=/kapsel/web1/sub");
  auto e = parse_oom_kill(nested, "/kapsel/web1");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->cgroup, "/kapsel/web1/sub");
}

TEST(OomWatchParse, IgnoresOtherVesAndOtherMessages) {
  EXPECT_FALSE(parse_oom_kill(kRecord, "/kapsel/web"));  // a prefix of the name is not it
  EXPECT_FALSE(parse_oom_kill(kRecord, "/kapsel/web10"));
  EXPECT_FALSE(parse_oom_kill("6,1,2,-;Memory cgroup out of memory: Killed process 41233 (dd)",
                              "/kapsel/web1"));
  EXPECT_FALSE(parse_oom_kill("no separator at all", "/kapsel/web1"));
  // A system-wide OOM names no memcg.
  EXPECT_FALSE(parse_oom_kill("6,1,2,-;oom-kill:constraint=CONSTRAINT_NONE,task=x,pid=1,uid=0",
                              "/kapsel/web1"));
}

}  // namespace
}  // namespace kapsel::monitor
