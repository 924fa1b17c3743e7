// Network interfaces (links) through rtnetlink: kapsel's bridges, and the veth pairs that join a
// VE to one. Names are kernel interface names (at most 15 bytes).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "net/netlink_socket.hpp"

namespace kapsel::net {

using MacAddress = std::array<std::uint8_t, 6>;

// Creates bridge `name`, up. A bridge of that name that already exists is left as it is.
// True if it was made now (the first VE on the network since the host booted).
[[nodiscard]] Result<bool> ensure_bridge(NetlinkSocket& sock, const std::string& name);

// A veth pair: `host_name` stays in the socket's namespace, enslaved to bridge `bridge` and up;
// its peer is created directly in the network namespace open as `peer_netns_fd`, named
// `peer_name`, with MAC `peer_mac`, down (see set_link_up). (Made there rather than moved and
// renamed: one request instead of three, and no moment at which the VE's end exists under a
// temporary name.)
struct VethPair {
  std::string host_name;
  std::string bridge;
  std::string peer_name;
  int peer_netns_fd = -1;
  MacAddress peer_mac{};
};
[[nodiscard]] Status create_veth(NetlinkSocket& sock, const VethPair& pair);

// Brings link `ifindex` up.
[[nodiscard]] Status set_link_up(NetlinkSocket& sock, int ifindex);

// Enslaves link `ifindex` to bridge `bridge_index` and brings it up, in one request.
[[nodiscard]] Status set_link_master_up(NetlinkSocket& sock, int ifindex, int bridge_index);

// Deletes link `name` (a veth takes its peer with it); a link that does not exist is success.
[[nodiscard]] Status delete_link(NetlinkSocket& sock, const std::string& name);

// The index of link `name` in the socket's namespace (ErrorKind::not_found if none).
[[nodiscard]] Result<int> link_index(NetlinkSocket& sock, const std::string& name);

// The byte counters of link `name` (IFLA_STATS64) as its own side counts them: received, sent.
struct LinkBytes {
  std::uint64_t rx = 0;
  std::uint64_t tx = 0;
};
[[nodiscard]] Result<LinkBytes> link_bytes(NetlinkSocket& sock, const std::string& name);

// A locally administered unicast MAC derived from `seed`: the same seed, the same MAC.
[[nodiscard]] MacAddress stable_mac(std::string_view seed);
[[nodiscard]] std::string to_string(const MacAddress& mac);

// The message that create_veth sends, exposed for the unit tests.
[[nodiscard]] NetlinkMessage veth_message(const VethPair& pair, int bridge_index);

}  // namespace kapsel::net
