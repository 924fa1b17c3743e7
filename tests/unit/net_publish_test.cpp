#include "net/publish.hpp"

#include <gtest/gtest.h>

#include "net/bridge_network.hpp"
#include "net/nat.hpp"

namespace kapsel::net {
namespace {

TEST(NetPublish, ParsesEveryFormAndSpellsItCanonically) {
  EXPECT_EQ(parse_publish("8080:80")->to_string(), "8080:80/tcp");
  EXPECT_EQ(parse_publish("5353:53/udp")->to_string(), "5353:53/udp");
  auto full = parse_publish("127.0.0.1:8443:443/tcp");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->host_ip->to_string(), "127.0.0.1");
  EXPECT_EQ(full->host_port, 8443);
  EXPECT_EQ(full->ve_port, 443);
  EXPECT_EQ(full->to_string(), "127.0.0.1:8443:443/tcp");
}

TEST(NetPublish, RefusesMalformedSpecsNamingThem) {
  for (const char* bad : {"80", "0:80", "80:0", "65536:80", "80:80/sctp", "x:80", "80:y",
                          "1.2.3:80:80", "::1:80:80", "80:80/", ""}) {
    auto r = parse_publish(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::usage);
    EXPECT_NE(r.error().message.find(std::string("'") + bad + "'"), std::string::npos);
  }
}

TEST(NetPublish, ClashesOnSamePortAndProtocolUnlessHostAddressesDiffer) {
  auto any = *parse_publish("8080:80");
  EXPECT_TRUE(any.clashes_with(*parse_publish("8080:81")));
  EXPECT_TRUE(any.clashes_with(*parse_publish("127.0.0.1:8080:80")));
  EXPECT_FALSE(any.clashes_with(*parse_publish("8080:80/udp")));
  EXPECT_FALSE(
      parse_publish("127.0.0.1:8080:80")->clashes_with(*parse_publish("10.0.0.1:8080:80")));
}

TEST(NetPublish, Ipv6HostAddressesGoInBrackets) {
  auto spec = parse_publish("[fd00::1]:8080:80/udp");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->host_ip->to_string(), "fd00::1");
  EXPECT_EQ(spec->host_port, 8080);
  EXPECT_EQ(spec->ve_port, 80);
  EXPECT_EQ(spec->to_string(), "[fd00::1]:8080:80/udp");
  EXPECT_EQ(parse_publish(spec->to_string())->to_string(), spec->to_string());
  for (const char* bad : {"fd00::1:8080:80", "[10.0.0.1]:8080:80", "[fd00::zz]:8080:80"}) {
    auto r = parse_publish(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
  }
}

TEST(NetNat, Ipv6VesGetIp6RulesInTheSameInetTable) {
  VeNat nat{"web6",
            "lab6",
            *parse_cidr("fd00:88::2/64"),
            {*parse_publish("8080:80"), *parse_publish("[fd00:99::1]:9090:80")},
            {*parse_cidr("10.89.0.0/24"), *parse_cidr("fd00:89::/64")}};
  std::string rules = ve_nat_rules(nat);
  std::string chain = "add rule inet kapsel " + host_veth_name("web6");
  EXPECT_NE(rules.find(chain + "-pre meta nfproto ipv6 fib daddr type local tcp dport 8080 "
                               "dnat ip6 to [fd00:88::2]:80"),
            std::string::npos)
      << rules;
  EXPECT_NE(rules.find(chain + "-out ip6 daddr fd00:99::1 tcp dport 9090 dnat ip6 to "
                               "[fd00:88::2]:80"),
            std::string::npos)
      << rules;
  EXPECT_NE(rules.find(chain + "-post ip6 saddr fd00:88::2 ip6 daddr != fd00:88::/64 masquerade"),
            std::string::npos);
  // No loopback masquerade (::1 never leaves the host), and only IPv6 networks to isolate from.
  EXPECT_EQ(rules.find("127.0.0.0/8"), std::string::npos) << rules;
  EXPECT_NE(rules.find(chain + "-fwd ip6 saddr fd00:88::2 ip6 daddr { fd00:89::/64 } drop"),
            std::string::npos)
      << rules;
  EXPECT_EQ(rules.find("10.89.0.0/24"), std::string::npos) << rules;
}

TEST(NetNat, RulesLiveInTheVesOwnChainsOfKapselsTable) {
  VeNat nat{"web1",
            "kapsel0",
            *parse_cidr("10.88.0.2/16"),
            {*parse_publish("8080:80")},
            {*parse_cidr("10.89.0.0/24"), *parse_cidr("10.90.0.0/24")}};
  std::string rules = ve_nat_rules(nat);
  std::string chain = host_veth_name("web1");
  // Whatever was there is replaced in the same transaction.
  EXPECT_EQ(rules.rfind(ve_nat_removal("web1"), 0), 0u);
  EXPECT_NE(
      rules.find(
          "add rule inet kapsel " + chain +
          "-pre meta nfproto ipv4 fib daddr type local tcp dport 8080 dnat ip to 10.88.0.2:80"),
      std::string::npos)
      << rules;
  EXPECT_NE(
      rules.find(
          "add rule inet kapsel " + chain +
          "-out meta nfproto ipv4 fib daddr type local tcp dport 8080 dnat ip to 10.88.0.2:80"),
      std::string::npos);
  EXPECT_NE(rules.find(chain + "-post ip saddr 10.88.0.2 ip daddr != 10.88.0.0/16 masquerade"),
            std::string::npos);
  EXPECT_NE(rules.find(chain + "-post ip saddr 127.0.0.0/8 ip daddr 10.88.0.2 masquerade"),
            std::string::npos);
  EXPECT_NE(rules.find(chain + "-fwd ip saddr 10.88.0.2 ip daddr { 10.89.0.0/24, 10.90.0.0/24 } "
                               "drop"),
            std::string::npos)
      << rules;
}

}  // namespace
}  // namespace kapsel::net
