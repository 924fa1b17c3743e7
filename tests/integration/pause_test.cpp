// pause and resume through the real binary: a paused VE's processes make no progress, exec is
// refused, and stop still ends it cleanly.
#include <algorithm>
#include <chrono>
#include <thread>

#include "common/fs.hpp"
#include "harness.hpp"

namespace kapsel::testing {
namespace {

class PauseTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }

  // Lines the VE's ticker has written so far, read from the host through the VE's private
  // area, so that reading needs nothing from the (maybe frozen) VE.
  std::size_t ticks(const std::string& ve) const {
    auto text = fs::read_file(k.root() + "/ves/" + ve + "/private/upper/tick");
    if (!text) return 0;
    return static_cast<std::size_t>(std::count(text->begin(), text->end(), '\n'));
  }

  static void wait_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

  Kapsel k;
};

TEST_F(PauseTest, PausedVeMakesNoProgressUntilResumed) {
  ASSERT_TRUE(k.create_and_start("p1"));
  // A ticker that outlives the exec: it writes a line every 20 ms.
  auto r = k.sh("p1", "(while :; do echo x >> /tick; usleep 20000; done) >/dev/null 2>&1 &");
  ASSERT_EQ(r.exit_code, 0) << r;
  for (int i = 0; i < 100 && ticks("p1") < 3; ++i) wait_ms(20);
  ASSERT_GE(ticks("p1"), 3u) << "the ticker never ran";

  r = k.run({"pause", "p1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(k.status("p1")["state"], "paused");
  EXPECT_EQ(k.list()[0]["state"], "paused");
  std::size_t frozen_at = ticks("p1");
  wait_ms(300);
  EXPECT_EQ(ticks("p1"), frozen_at) << "the ticker ran while the VE was paused";

  r = k.run({"exec", "p1", "--", "true"});
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("is paused"), std::string::npos) << r;
  r = k.run({"pause", "p1"});
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("already paused"), std::string::npos) << r;

  r = k.run({"resume", "p1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(k.status("p1")["state"], "running");
  for (int i = 0; i < 100 && ticks("p1") <= frozen_at; ++i) wait_ms(20);
  EXPECT_GT(ticks("p1"), frozen_at) << "the ticker did not go on after resume";
  r = k.run({"resume", "p1"});
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("not paused"), std::string::npos) << r;
  EXPECT_EQ(k.sh("p1", "echo alive").out, "alive\n");
}

TEST_F(PauseTest, StopEndsAPausedVeCleanly) {
  ASSERT_TRUE(k.create_and_start("p2"));
  ASSERT_EQ(k.run({"pause", "p2"}).exit_code, 0);
  // A frozen init could not act on its halt signal: stop lets it go first, so the VE halts
  // cleanly instead of being killed at the timeout.
  auto r = k.run({"stop", "--timeout", "20", "p2"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(k.status("p2")["state"], "stopped");
  EXPECT_EQ(k.status("p2")["last_exit"]["reason"], "halted");
  EXPECT_TRUE(k.cgroup_dirs("p2").empty());
}

TEST_F(PauseTest, PauseOfAStoppedOrUnknownVeIsRefused) {
  ASSERT_EQ(k.run({"create", "p3"}).exit_code, 0);
  auto r = k.run({"pause", "p3"});
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("not running"), std::string::npos) << r;
  r = k.run({"resume", "nosuch"});
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("nosuch"), std::string::npos) << r;
}

}  // namespace
}  // namespace kapsel::testing
