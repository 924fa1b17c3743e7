#include "net/bridge_network.hpp"

#include <cstdio>
#include <sstream>

#include "net/address.hpp"
#include "net/cidr.hpp"
#include "net/link.hpp"
#include "net/netlink_socket.hpp"
#include "net/route.hpp"
#include "net/tap.hpp"

namespace kapsel::net {
namespace {

constexpr const char* kVeInterface = "eth0";

Result<MacAddress> parse_mac(const std::string& text) {
  MacAddress mac{};
  unsigned b[6];
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4],
                  &b[5]) != 6)
    return fail(ErrorKind::failure, "bad MAC address '" + text + "' in the VE's config");
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<std::uint8_t>(b[i]);
  return mac;
}

// Inside the VE's namespace: eth0 comes up with its address and the default route.
Status configure_ve_side(const Cidr& address, const IpAddress& gateway) {
  auto sock = NetlinkSocket::open();
  if (!sock) return tl::unexpected(sock.error());
  auto eth0 = link_index(*sock, kVeInterface);
  if (!eth0) return tl::unexpected(eth0.error());
  KAPSEL_TRY(set_link_up(*sock, *eth0), "eth0");
  KAPSEL_TRY(add_address(*sock, *eth0, address), "eth0");
  KAPSEL_TRY(add_default_route(*sock, *eth0, gateway), "eth0");
  return {};
}

}  // namespace

std::string host_veth_name(std::string_view ve) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a, as stable_mac
  for (char c : ve) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  char name[16];
  std::snprintf(name, sizeof name, "kv%012llx",
                static_cast<unsigned long long>(h & 0xffffffffffffull));
  return name;
}

namespace {

// What a VE on a bridge needs from its stored config, parsed.
struct VeAddressing {
  Cidr address;
  IpAddress gateway;
  MacAddress mac;
};

Result<VeAddressing> addressing_of(const store::NetworkConfig& config) {
  auto address = parse_cidr(config.address);
  auto gateway = parse_address(config.gateway);
  auto mac = parse_mac(config.mac);
  if (!address || !gateway) return fail(ErrorKind::failure, "the VE's network config is damaged");
  if (!mac) return tl::unexpected(mac.error());
  return VeAddressing{*address, *gateway, *mac};
}

// The bridge with the gateway address, up; what already exists is kept. Returns whether it was
// made now, and its index in `bridge_index`. Then whatever is left of the VE's host link from
// a monitor that was killed goes.
Result<bool> prepare_bridge(NetlinkSocket& sock, const std::string& ve,
                            const store::NetworkConfig& config, const VeAddressing& a,
                            int& bridge_index) {
  // The bridge is made here rather than by `network create`: a host reboot removes it, and
  // the first VE to start brings it back.
  auto made = ensure_bridge(sock, config.network);
  if (!made) return tl::unexpected(made.error().context("bridge " + config.network));
  auto bridge = link_index(sock, config.network);
  if (!bridge) return tl::unexpected(bridge.error());
  KAPSEL_TRY(add_address(sock, *bridge, Cidr{a.gateway, a.address.prefix}),
             "bridge " + config.network);
  (void)delete_link(sock, host_veth_name(ve));
  bridge_index = *bridge;
  return *made;
}

}  // namespace

Result<bool> attach_ve(const std::string& ve, const store::NetworkConfig& config, int netns_fd) {
  auto a = addressing_of(config);
  if (!a) return tl::unexpected(a.error());
  auto sock = NetlinkSocket::open();
  if (!sock) return tl::unexpected(sock.error());
  int bridge = -1;
  auto made = prepare_bridge(*sock, ve, config, *a, bridge);
  if (!made) return tl::unexpected(made.error());
  VethPair pair{host_veth_name(ve), config.network, kVeInterface, netns_fd, a->mac};
  KAPSEL_TRY(create_veth(*sock, pair), "network " + config.network);
  auto configured =
      run_in_netns(netns_fd, [&] { return configure_ve_side(a->address, a->gateway); });
  if (!configured) {
    (void)delete_link(*sock, pair.host_name);
    return tl::unexpected(configured.error().context("configuring the VE's eth0"));
  }
  return *made;
}

Result<bool> attach_tap(const std::string& ve, const store::NetworkConfig& config) {
  auto a = addressing_of(config);
  if (!a) return tl::unexpected(a.error());
  auto sock = NetlinkSocket::open();
  if (!sock) return tl::unexpected(sock.error());
  int bridge = -1;
  auto made = prepare_bridge(*sock, ve, config, *a, bridge);
  if (!made) return tl::unexpected(made.error());
  const std::string tap = host_veth_name(ve);
  KAPSEL_TRY(create_tap(tap), "network " + config.network);
  auto index = link_index(*sock, tap);
  Status attached =
      index ? set_link_master_up(*sock, *index, bridge) : Status(tl::unexpected(index.error()));
  if (!attached) {
    (void)delete_link(*sock, tap);
    return tl::unexpected(attached.error().context("network " + config.network));
  }
  return *made;
}

Status detach_ve(const std::string& ve) {
  auto sock = NetlinkSocket::open();
  if (!sock) return tl::unexpected(sock.error());
  return delete_link(*sock, host_veth_name(ve));
}

Status remove_bridge(const std::string& name) {
  auto sock = NetlinkSocket::open();
  if (!sock) return tl::unexpected(sock.error());
  return delete_link(*sock, name);
}

std::string resolv_conf_for_bridge(std::string_view host_resolv_conf) {
  std::istringstream lines{std::string(host_resolv_conf)};
  std::string line, kept;
  bool any_nameserver = false;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string key, value;
    words >> key >> value;
    if (key == "nameserver") {
      auto a = parse_address(value);
      bool loopback = a && ((a->family == AF_INET && a->bytes[0] == 127) ||
                            (a->family == AF_INET6 && value == "::1"));
      if (!a || loopback) continue;
      any_nameserver = true;
    }
    kept += line + "\n";
  }
  return any_nameserver ? kept : std::string();
}

}  // namespace kapsel::net
