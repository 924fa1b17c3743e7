// IP addresses and subnets (CIDR) as values, for both families: parsed from what users type,
// printed back the same way, and the arithmetic the address allocator needs.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace kapsel::net {

struct IpAddress {
  int family = AF_INET;                  // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};  // network byte order; only the first 4 for AF_INET

  [[nodiscard]] std::size_t size() const { return family == AF_INET ? 4 : 16; }
  [[nodiscard]] std::size_t bits() const { return size() * 8; }
  [[nodiscard]] std::string to_string() const;
  // This address plus `n` (no carry past the top: callers stay inside a subnet).
  [[nodiscard]] IpAddress plus(std::uint64_t n) const;
  auto operator<=>(const IpAddress&) const = default;
};

// "10.0.0.1" or "fd00::1"; a usage error naming the text otherwise.
[[nodiscard]] Result<IpAddress> parse_address(std::string_view text);

struct Cidr {
  IpAddress address;  // as given: a host address ("10.0.0.5/24") or the network itself
  unsigned prefix = 0;

  [[nodiscard]] std::string to_string() const;
  // The network address: `address` with the host bits cleared.
  [[nodiscard]] IpAddress network() const;
  [[nodiscard]] bool contains(const IpAddress& a) const;
  [[nodiscard]] bool overlaps(const Cidr& other) const;
  // Addresses a host may use: the subnet's size less the network and broadcast addresses for
  // IPv4 (capped, as no bridge holds more VEs than this).
  [[nodiscard]] std::uint64_t host_count() const;
  auto operator<=>(const Cidr&) const = default;
};

// "10.88.0.0/16", "fd00:88::/64"; "10.0.0.5/24" keeps its host part (an interface address).
[[nodiscard]] Result<Cidr> parse_cidr(std::string_view text);

}  // namespace kapsel::net
