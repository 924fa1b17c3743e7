#include "net/ipam.hpp"

#include <gtest/gtest.h>

namespace kapsel::net {
namespace {

IpAddress ip(const char* text) {
  return *parse_address(text);
}

TEST(NetIpam, GatewayIsTheFirstHostAddress) {
  EXPECT_EQ(gateway_of(*parse_cidr("10.88.0.0/16")).to_string(), "10.88.0.1");
}

TEST(NetIpam, AllocatesTheLowestFreeAddressAfterTheGateway) {
  auto subnet = *parse_cidr("10.88.0.0/24");
  EXPECT_EQ(allocate(subnet, {}, std::nullopt)->to_string(), "10.88.0.2");
  EXPECT_EQ(allocate(subnet, {ip("10.88.0.2"), ip("10.88.0.4")}, std::nullopt)->to_string(),
            "10.88.0.3");
}

TEST(NetIpam, FiftyAllocationsAreDistinct) {
  auto subnet = *parse_cidr("10.88.0.0/16");
  std::set<IpAddress> taken;
  for (int i = 0; i < 50; ++i) {
    auto a = allocate(subnet, taken, std::nullopt);
    ASSERT_TRUE(a);
    EXPECT_TRUE(taken.insert(*a).second) << a->to_string();
  }
}

TEST(NetIpam, FullSubnetIsAnError) {
  auto subnet = *parse_cidr("10.0.0.0/30");  // .1 gateway, .2 the only VE address
  auto r = allocate(subnet, {ip("10.0.0.2")}, std::nullopt);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no free address"), std::string::npos);
}

TEST(NetIpam, RequestedAddressMustBeAFreeHostAddressOfTheSubnet) {
  auto subnet = *parse_cidr("10.88.0.0/24");
  EXPECT_EQ(allocate(subnet, {}, ip("10.88.0.77"))->to_string(), "10.88.0.77");
  for (const char* bad : {"10.89.0.5", "10.88.0.0", "10.88.0.255", "10.88.0.1", "fd00::5"}) {
    auto r = allocate(subnet, {}, ip(bad));
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
  }
  auto taken = allocate(subnet, {ip("10.88.0.9")}, ip("10.88.0.9"));
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().kind, ErrorKind::exists);
  EXPECT_NE(taken.error().message.find("already in use"), std::string::npos);
}

TEST(NetIpam, Ipv6SubnetsAllocateToo) {
  auto subnet = *parse_cidr("fd00:88::/64");
  EXPECT_EQ(gateway_of(subnet).to_string(), "fd00:88::1");
  EXPECT_EQ(allocate(subnet, {}, std::nullopt)->to_string(), "fd00:88::2");
}

}  // namespace
}  // namespace kapsel::net
