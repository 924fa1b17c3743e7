// What a VE's processes must look like by default (docs/security.md), shared by the security
// tests of VEs with and without a user namespace.
#pragma once

#include <cstdint>
#include <map>
#include <sstream>
#include <string>

namespace kapsel::testing {

// Capability numbers of linux/capability.h.
constexpr std::uint64_t bit(int cap) {
  return std::uint64_t{1} << cap;
}
// The common container default (Docker, runc) plus SYS_BOOT (docs/security.md).
constexpr std::uint64_t kDefaultCaps =
    bit(0) /*CHOWN*/ | bit(1) /*DAC_OVERRIDE*/ | bit(3) /*FOWNER*/ | bit(4) /*FSETID*/ |
    bit(5) /*KILL*/ | bit(6) /*SETGID*/ | bit(7) /*SETUID*/ | bit(8) /*SETPCAP*/ |
    bit(10) /*NET_BIND_SERVICE*/ | bit(13) /*NET_RAW*/ | bit(18) /*SYS_CHROOT*/ |
    bit(22) /*SYS_BOOT*/ | bit(27) /*MKNOD*/ | bit(29) /*AUDIT_WRITE*/ | bit(31) /*SETFCAP*/;

// "Key:\tvalue" fields of a /proc/<pid>/status text.
inline std::map<std::string, std::string> status_fields(const std::string& text) {
  std::map<std::string, std::string> f;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    f[line.substr(0, colon)] = value;
  }
  return f;
}

inline std::uint64_t hex(const std::string& s) {
  return std::stoull(s, nullptr, 16);
}

}  // namespace kapsel::testing
