// --userns as the CLI reads it, the store keeps it and `status` shows it; configs from before
// --userns existed parse as VEs without a user namespace.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli/security_flags.hpp"
#include "store/ve_config.hpp"

namespace kapsel {
namespace {

TEST(UsernsConfig, FlagsAskForARangeOrTakeTheOneGiven) {
  cli::SecurityFlags flags;
  auto none = flags.parse();
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->userns);

  flags.userns = true;
  auto any = flags.parse();
  ASSERT_TRUE(any);
  ASSERT_TRUE(any->userns);
  EXPECT_EQ(any->userns->host_uid, 0u);  // the store picks one at create

  flags.userns = false;
  flags.userns_range = "200000000:1000";  // implies --userns
  auto given = flags.parse();
  ASSERT_TRUE(given);
  ASSERT_TRUE(given->userns);
  EXPECT_EQ(given->userns->host_uid, 200000000u);
  EXPECT_EQ(given->userns->host_gid, 200000000u);
  EXPECT_EQ(given->userns->size, 1000u);

  flags.userns_range = "0:10";
  auto bad = flags.parse();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ErrorKind::usage);
}

TEST(UsernsConfig, StoredAndReadBack) {
  store::VeConfig c;
  c.name = "u";
  c.security.userns = store::UsernsConfig{100000000, 100065536, 65536};
  EXPECT_FALSE(c.security.is_default());
  auto back = store::parse_config(nlohmann::json(c).dump());
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->security.userns);
  EXPECT_EQ(back->security.userns->host_uid, 100000000u);
  EXPECT_EQ(back->security.userns->host_gid, 100065536u);
  EXPECT_EQ(back->security.userns->size, 65536u);
  auto lines = cli::describe(back->security);
  ASSERT_FALSE(lines.empty());
  bool shown = false;
  for (const auto& [key, value] : lines) {
    if (key != "userns") continue;
    shown = true;
    EXPECT_EQ(value, "uid 0-65535 -> 100000000-100065535, gid 0-65535 -> 100065536-100131071");
  }
  EXPECT_TRUE(shown);
}

TEST(UsernsConfig, ConfigsFromBeforeParseWithoutOne) {
  auto old =
      store::parse_config(R"({"name": "old", "security": {"seccomp": "default", "devices": []}})");
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_FALSE(old->security.userns);
  auto older = store::parse_config(R"({"name": "older"})");
  ASSERT_TRUE(older);
  EXPECT_FALSE(older->security.userns);
  // And a VE without one stores no "userns" key.
  store::VeConfig c;
  c.name = "plain";
  EXPECT_FALSE(nlohmann::json(c).contains("security"));
}

}  // namespace
}  // namespace kapsel
