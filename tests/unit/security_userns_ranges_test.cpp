// Host id ranges for --userns VEs: the option's syntax, the search for a free block and the
// store's range table (allocation, overlap refusal, release), in a temporary directory.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "common/fs.hpp"
#include "security/userns.hpp"

namespace kapsel::security {
namespace {

TEST(UsernsRangeOption, BaseAndSize) {
  auto r = parse_range_option("200000000:1000");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, (IdRange{200000000, 1000}));
  auto only_base = parse_range_option("300000000");
  ASSERT_TRUE(only_base);
  EXPECT_EQ(*only_base, (IdRange{300000000, kDefaultRangeSize}));
}

TEST(UsernsRangeOption, BadValuesAreUsageErrorsNamingTheOption) {
  for (const char* bad : {"", "x", "0:65536", "100:", "100:0", "4294967000:65536", "1:2:3", "-5"}) {
    auto r = parse_range_option(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::usage) << bad;
    EXPECT_NE(r.error().message.find("--userns-range"), std::string::npos) << bad;
  }
}

TEST(UsernsRanges, OverlapIsHalfOpen) {
  IdRange a{100, 10};
  EXPECT_TRUE(a.overlaps({109, 1}));
  EXPECT_TRUE(a.overlaps({50, 51}));
  EXPECT_FALSE(a.overlaps({110, 5}));
  EXPECT_FALSE(a.overlaps({90, 10}));
}

TEST(UsernsRanges, FirstFreeSkipsTakenRangesInAnyOrder) {
  EXPECT_EQ(first_free({}, 1000, 100), (IdRange{1000, 100}));
  // Below the start, or leaving a gap too small: skipped.
  EXPECT_EQ(first_free({{1150, 10}, {500, 600}, {1000, 100}}, 1000, 100), (IdRange{1160, 100}));
  // A gap that fits exactly is used.
  EXPECT_EQ(first_free({{1000, 100}, {1200, 10}}, 1000, 100), (IdRange{1100, 100}));
  // Nothing left before the 32-bit end (the last id, (uid_t)-1, is never handed out).
  EXPECT_EQ(first_free({{4294900000u, 67295}}, 4294900000u, 10), std::nullopt);
}

TEST(Subid, ParsesLinesAndSkipsWhatShadowSkips) {
  auto all = parse_subid(
      "# comment\n"
      "alice:100000:65536\n"
      "\n"
      "1001:165536:65536\n"
      "broken line\n"
      "bob:notanumber:5\n"
      "carol:5:0\n"
      "alice:300000:10");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].owner, "alice");
  EXPECT_EQ(all[0].range, (IdRange{100000, 65536}));
  EXPECT_EQ(all[1].owner, "1001");
  EXPECT_EQ(all[2].range, (IdRange{300000, 10}));
}

TEST(UsernsMaps, WhichIdsAMapHolds) {
  const std::string rootless =
      "         0       1001          1\n         1     100000      65536\n";
  EXPECT_TRUE(maps_id(rootless, 0));
  EXPECT_TRUE(maps_id(rootless, 5));
  EXPECT_TRUE(maps_id(rootless, 65536));
  EXPECT_FALSE(maps_id(rootless, 65537));
  const std::string own_only = "0 1001 1";
  EXPECT_TRUE(maps_id(own_only, 0));
  EXPECT_FALSE(maps_id(own_only, 5));
  EXPECT_TRUE(maps_id("0 0 4294967295\n", 5));  // the host's own
  EXPECT_FALSE(maps_id("", 0));
}

class RangeTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kapsel-userns-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)fs::remove_tree(dir_); }
  std::string dir_;
};

TEST_F(RangeTableTest, VesGetDisjointBlocksAndDestroyFreesThem) {
  RangeTable table(dir_ + "/userns");
  // A host user's subordinate range where kapsel would start: skipped.
  std::vector<IdRange> host = {{kDefaultRangeBase, 10}};
  auto a = table.allocate("a", std::nullopt, host);
  auto b = table.allocate("b", std::nullopt, host);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, (IdRange{kDefaultRangeBase + 10, kDefaultRangeSize}));
  EXPECT_EQ(b->base, a->end());
  EXPECT_FALSE(a->overlaps(*b));
  // Stored, under the VEs' names.
  auto stored = table.load();
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->size(), 2u);
  EXPECT_EQ(stored->at("b"), *b);
  // a's block is given to the next VE once a is gone.
  ASSERT_TRUE(table.release("a"));
  ASSERT_TRUE(table.release("nobody"));  // nothing to release is no error
  auto c = table.allocate("c", std::nullopt, host);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, *a);
}

TEST_F(RangeTableTest, AnExplicitRangeOverlappingAnotherVesIsRefused) {
  RangeTable table(dir_ + "/userns");
  ASSERT_TRUE(table.allocate("a", IdRange{200000000, 65536}, {}));
  auto clash = table.allocate("b", IdRange{200065535, 10}, {});
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().kind, ErrorKind::usage);
  EXPECT_NE(clash.error().message.find("VE a"), std::string::npos) << clash.error().message;
  // Nothing recorded for b; the range just after a's is free.
  EXPECT_EQ(table.load()->count("b"), 0u);
  EXPECT_TRUE(table.allocate("b", IdRange{200065536, 10}, {}));
  // A host user's subordinate range is refused too.
  auto host = table.allocate("c", IdRange{100000, 65536}, {{100000, 65536}});
  ASSERT_FALSE(host);
  EXPECT_NE(host.error().message.find("/etc/subuid"), std::string::npos);
}

TEST_F(RangeTableTest, ADamagedTableIsAnErrorNotAReset) {
  ASSERT_TRUE(fs::make_dirs(dir_ + "/userns", 0700));
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/userns/ranges.json", "{\"a\": 5}", 0600));
  RangeTable table(dir_ + "/userns");
  EXPECT_FALSE(table.allocate("b", std::nullopt, {}));
}

}  // namespace
}  // namespace kapsel::security
