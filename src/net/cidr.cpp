#include "net/cidr.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace kapsel::net {

std::string IpAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes.data(), text, sizeof text);
  return text;
}

IpAddress IpAddress::plus(std::uint64_t n) const {
  IpAddress sum = *this;
  unsigned carry = 0;
  for (std::size_t i = size(); i-- > 0;) {
    unsigned v = sum.bytes[i] + static_cast<unsigned>(n & 0xff) + carry;
    sum.bytes[i] = static_cast<std::uint8_t>(v);
    carry = v >> 8;
    n >>= 8;
  }
  return sum;
}

Result<IpAddress> parse_address(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  a.family = AF_INET6;
  if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) return a;
  return fail(ErrorKind::usage, "'" + s + "' is not an IPv4 or IPv6 address");
}

std::string Cidr::to_string() const {
  return address.to_string() + "/" + std::to_string(prefix);
}

IpAddress Cidr::network() const {
  IpAddress n = address;
  for (std::size_t bit = prefix; bit < n.bits(); ++bit)
    n.bytes[bit / 8] = static_cast<std::uint8_t>(n.bytes[bit / 8] & ~(0x80u >> (bit % 8)));
  return n;
}

bool Cidr::contains(const IpAddress& a) const {
  return a.family == address.family && Cidr{a, prefix}.network() == network();
}

bool Cidr::overlaps(const Cidr& other) const {
  if (other.address.family != address.family) return false;
  // Two prefixes overlap exactly when the shorter one contains the other's network.
  const Cidr& wider = prefix <= other.prefix ? *this : other;
  const Cidr& narrower = prefix <= other.prefix ? other : *this;
  return wider.contains(narrower.network());
}

std::uint64_t Cidr::host_count() const {
  std::size_t host_bits = address.bits() - prefix;
  if (host_bits >= 24) return std::uint64_t{1} << 24;  // the cap: more than any bridge holds
  std::uint64_t total = std::uint64_t{1} << host_bits;
  if (address.family == AF_INET6) return total - 1;  // no broadcast; the network is the anycast
  return total > 2 ? total - 2 : 0;
}

Result<Cidr> parse_cidr(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return fail(ErrorKind::usage, "bad subnet '" + std::string(text) + "': " + why);
  };
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return bad("expected ADDRESS/PREFIX, as in 10.89.0.0/24");
  auto address = parse_address(text.substr(0, slash));
  if (!address) return bad("not an IPv4 or IPv6 address");
  std::string_view digits = text.substr(slash + 1);
  unsigned prefix = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
      prefix > address->bits())
    return bad("the prefix length must be 0-" + std::to_string(address->bits()));
  return Cidr{*address, prefix};
}

}  // namespace kapsel::net
