#include "agent/guest_network.hpp"

#include <gtest/gtest.h>

#include "driver/uml/uml_driver.hpp"
#include "net/bridge_network.hpp"

namespace kapsel::agent {
namespace {

using Argv = std::vector<std::string>;

TEST(GuestNetwork, ParamsRoundTripThroughTheKernelCommandLine) {
  GuestNetwork net{"10.88.0.5/16", "10.88.0.1", {"192.0.2.53", "198.51.100.53"}};
  auto params = guest_network_params(net);
  EXPECT_EQ(params, (Argv{"kapsel.ip=10.88.0.5/16", "kapsel.gw=10.88.0.1",
                          "kapsel.dns=192.0.2.53,198.51.100.53"}));
  std::string cmdline = "mem=256M root=/dev/ubda rw kapsel.hostname=u1";
  for (const auto& p : params) cmdline += " " + p;
  cmdline += "\n";  // as /proc/cmdline ends
  auto parsed = parse_guest_network(cmdline);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->address, net.address);
  EXPECT_EQ(parsed->gateway, net.gateway);
  EXPECT_EQ(parsed->nameservers, net.nameservers);
  EXPECT_EQ(cmdline_param(cmdline, "kapsel.hostname"), "u1");
}

TEST(GuestNetwork, NoAddressMeansNoNetworkAndNoParams) {
  EXPECT_TRUE(guest_network_params(GuestNetwork{}).empty());
  EXPECT_FALSE(parse_guest_network("root=/dev/ubda kapsel.hostname=u1\n"));
  // Only whole words count: "xkapsel.ip=" is someone else's parameter.
  EXPECT_FALSE(parse_guest_network("xkapsel.ip=10.0.0.2/24"));
  EXPECT_EQ(guest_network_params(GuestNetwork{"10.0.0.2/24", "10.0.0.1", {}}).size(), 2u);
}

TEST(GuestNetwork, CommandsForIpv4AndIpv6) {
  auto v4 = guest_network_commands({"10.88.0.5/16", "10.88.0.1", {}});
  ASSERT_EQ(v4.size(), 3u);
  EXPECT_EQ(v4[0], (Argv{"link", "set", "eth0", "up"}));
  EXPECT_EQ(v4[1], (Argv{"addr", "add", "10.88.0.5/16", "dev", "eth0"}));
  EXPECT_EQ(v4[2], (Argv{"route", "add", "default", "via", "10.88.0.1", "dev", "eth0"}));
  auto v6 = guest_network_commands({"fd00:88::5/64", "fd00:88::1", {}});
  ASSERT_EQ(v6.size(), 3u);
  EXPECT_EQ(v6[2], (Argv{"-6", "route", "add", "default", "via", "fd00:88::1", "dev", "eth0"}));
}

TEST(GuestNetwork, HostsAndResolvConf) {
  EXPECT_EQ(hosts_file("10.88.0.5", "u1"),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.88.0.5\tu1\n");
  EXPECT_EQ(resolv_conf({"10.88.0.5/16", "10.88.0.1", {"192.0.2.53"}}), "nameserver 192.0.2.53\n");
  EXPECT_EQ(resolv_conf({"10.88.0.5/16", "10.88.0.1", {}}), "");
}

TEST(UmlNetworkArgs, ANetworkedUmlVeGetsItsTapMacAndSettings) {
  store::NetworkConfig none;
  EXPECT_TRUE(driver::uml::uml_network_args("u1", none, "nameserver 192.0.2.53\n").empty());
  store::NetworkConfig bridge;
  bridge.mode = "bridge";
  bridge.network = "kapsel0";
  bridge.address = "10.88.0.7/16";
  bridge.gateway = "10.88.0.1";
  bridge.mac = "02:11:22:33:44:55";
  // A loopback resolver is not reachable from the guest; the others are passed on.
  auto args = driver::uml::uml_network_args(
      "u1", bridge, "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n");
  EXPECT_EQ(args, (Argv{"eth0=tuntap," + net::host_veth_name("u1") + ",02:11:22:33:44:55",
                        "kapsel.ip=10.88.0.7/16", "kapsel.gw=10.88.0.1", "kapsel.dns=192.0.2.53"}));
  args = driver::uml::uml_network_args("u1", bridge, "nameserver 127.0.0.53\n");
  EXPECT_EQ(args.size(), 3u);  // no usable nameserver: no kapsel.dns
}

}  // namespace
}  // namespace kapsel::agent
