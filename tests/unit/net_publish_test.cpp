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
  EXPECT_NE(rules.find("add rule ip kapsel " + chain +
                       "-pre fib daddr type local tcp dport 8080 dnat to 10.88.0.2:80"),
            std::string::npos)
      << rules;
  EXPECT_NE(rules.find("add rule ip kapsel " + chain +
                       "-out fib daddr type local tcp dport 8080 dnat to 10.88.0.2:80"),
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
