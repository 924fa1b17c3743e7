// Published ports: --publish [HOSTIP:]HOSTPORT:VEPORT[/tcp|/udp], as Docker spells them; an
// IPv6 HOSTIP in brackets ([fd00::1]:8080:80).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "net/cidr.hpp"

namespace kapsel::net {

struct PublishSpec {
  std::optional<IpAddress> host_ip;  // none: every local address of the host, loopback too
  std::uint16_t host_port = 0;
  std::uint16_t ve_port = 0;
  std::string protocol = "tcp";  // "tcp" or "udp"

  // The canonical spelling, which parse_publish reads back.
  [[nodiscard]] std::string to_string() const;
  // Whether the two would take the same packets.
  [[nodiscard]] bool clashes_with(const PublishSpec& other) const;
};

// A usage error naming `text` when it is malformed.
[[nodiscard]] Result<PublishSpec> parse_publish(std::string_view text);

// Refuses (ErrorKind::exists) a host port that a socket on this host already holds.
[[nodiscard]] Status check_port_free(const PublishSpec& spec);

}  // namespace kapsel::net
