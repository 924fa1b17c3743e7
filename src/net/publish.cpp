#include "net/publish.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

#include "common/unique_fd.hpp"

namespace kapsel::net {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value == 0 ||
      value > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::string PublishSpec::to_string() const {
  std::string text;
  if (host_ip) {
    // An IPv6 address in brackets, as in URLs: its own colons would run into the ports'.
    text = host_ip->family == AF_INET6 ? "[" + host_ip->to_string() + "]:"
                                       : host_ip->to_string() + ":";
  }
  return text + std::to_string(host_port) + ":" + std::to_string(ve_port) + "/" + protocol;
}

bool PublishSpec::clashes_with(const PublishSpec& other) const {
  return protocol == other.protocol && host_port == other.host_port &&
         (!host_ip || !other.host_ip || *host_ip == *other.host_ip);
}

Result<PublishSpec> parse_publish(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return fail(ErrorKind::usage, "bad --publish '" + std::string(text) + "': " + why +
                                      " (use [HOSTIP:]HOSTPORT:VEPORT[/tcp|/udp])");
  };
  PublishSpec spec;
  std::string_view rest = text;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    spec.protocol = std::string(rest.substr(slash + 1));
    if (spec.protocol != "tcp" && spec.protocol != "udp") return bad("unknown protocol");
    rest = rest.substr(0, slash);
  }
  auto last = rest.rfind(':');
  if (last == std::string_view::npos) return bad("no VE port");
  auto ve_port = parse_port(rest.substr(last + 1));
  rest = rest.substr(0, last);
  auto host_colon = rest.rfind(':');
  auto host_port =
      parse_port(host_colon == std::string_view::npos ? rest : rest.substr(host_colon + 1));
  if (!ve_port || !host_port) return bad("ports are 1-65535");
  spec.ve_port = *ve_port;
  spec.host_port = *host_port;
  if (host_colon != std::string_view::npos) {
    std::string_view host = rest.substr(0, host_colon);
    bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    auto ip = parse_address(host);
    if (!ip) return bad("the host address is not an IP address");
    if (ip->family == AF_INET6 && !bracketed) return bad("an IPv6 host address goes in brackets");
    if (ip->family == AF_INET && bracketed) return bad("only an IPv6 address goes in brackets");
    spec.host_ip = *ip;
  }
  return spec;
}

Status check_port_free(const PublishSpec& spec) {
  bool tcp = spec.protocol == "tcp";
  bool v6 = spec.host_ip && spec.host_ip->family == AF_INET6;
  UniqueFd sock(
      ::socket(v6 ? AF_INET6 : AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0));
  if (!sock) return errno_fail("checking port " + spec.to_string());
  int one = 1;
  // Connections of a finished server in TIME_WAIT do not hold the port.
  ::setsockopt(sock.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Without an address the IPv4 wildcard is tried: a dual-stack listener on [::] holds it too.
  sockaddr_storage at{};
  socklen_t length = sizeof(sockaddr_in);
  if (v6) {
    auto* at6 = reinterpret_cast<sockaddr_in6*>(&at);
    at6->sin6_family = AF_INET6;
    at6->sin6_port = htons(spec.host_port);
    std::memcpy(&at6->sin6_addr, spec.host_ip->bytes.data(), 16);
    length = sizeof(sockaddr_in6);
  } else {
    auto* at4 = reinterpret_cast<sockaddr_in*>(&at);
    at4->sin_family = AF_INET;
    at4->sin_port = htons(spec.host_port);
    if (spec.host_ip) std::memcpy(&at4->sin_addr, spec.host_ip->bytes.data(), 4);
  }
  if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&at), length) == 0) return {};
  if (errno == EADDRINUSE)
    return fail(ErrorKind::exists, "port " + std::to_string(spec.host_port) + "/" + spec.protocol +
                                       " of the host is already in use");
  return errno_fail("checking port " + spec.to_string());
}

}  // namespace kapsel::net
