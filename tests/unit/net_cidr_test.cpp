#include "net/cidr.hpp"

#include <gtest/gtest.h>

namespace kapsel::net {
namespace {

TEST(NetCidr, ParsesIpv4AndIpv6AndPrintsThemBack) {
  auto v4 = parse_cidr("10.88.0.0/16");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->address.family, AF_INET);
  EXPECT_EQ(v4->prefix, 16u);
  EXPECT_EQ(v4->to_string(), "10.88.0.0/16");
  auto v6 = parse_cidr("fd00:88::/64");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address.family, AF_INET6);
  EXPECT_EQ(v6->to_string(), "fd00:88::/64");
}

TEST(NetCidr, RefusesMalformedTextWithAUsageErrorNamingIt) {
  for (const char* bad : {"10.88.0.0", "10.88.0.0/33", "10.88.0/16", "10.88.0.0/", "/16",
                          "10.88.0.0/1x", "fd00::/129", "banana/8", ""}) {
    auto r = parse_cidr(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::usage);
    EXPECT_NE(r.error().message.find(std::string("'") + bad + "'"), std::string::npos)
        << r.error().message;
  }
}

TEST(NetCidr, NetworkClearsTheHostBits) {
  EXPECT_EQ(parse_cidr("10.88.3.7/16")->network().to_string(), "10.88.0.0");
  EXPECT_EQ(parse_cidr("192.168.1.129/25")->network().to_string(), "192.168.1.128");
  EXPECT_EQ(parse_cidr("fd00:1:2:3::9/48")->network().to_string(), "fd00:1:2::");
}

TEST(NetCidr, ContainsAndOverlaps) {
  auto wide = *parse_cidr("10.0.0.0/8");
  auto narrow = *parse_cidr("10.88.0.0/16");
  auto other = *parse_cidr("10.89.0.0/16");
  auto v6 = *parse_cidr("fd00::/8");
  EXPECT_TRUE(wide.contains(*parse_address("10.200.1.1")));
  EXPECT_FALSE(narrow.contains(*parse_address("10.89.0.1")));
  EXPECT_TRUE(wide.overlaps(narrow));
  EXPECT_TRUE(narrow.overlaps(wide));
  EXPECT_FALSE(narrow.overlaps(other));
  EXPECT_FALSE(narrow.overlaps(v6));
}

TEST(NetCidr, PlusCarriesAcrossBytes) {
  EXPECT_EQ(parse_address("10.0.0.255")->plus(1).to_string(), "10.0.1.0");
  EXPECT_EQ(parse_address("fd00::ffff")->plus(2).to_string(), "fd00::1:1");
}

TEST(NetCidr, HostCountLeavesOutNetworkAndBroadcast) {
  EXPECT_EQ(parse_cidr("10.0.0.0/24")->host_count(), 254u);
  EXPECT_EQ(parse_cidr("10.0.0.0/30")->host_count(), 2u);
  EXPECT_EQ(parse_cidr("10.0.0.0/31")->host_count(), 0u);
}

}  // namespace
}  // namespace kapsel::net
