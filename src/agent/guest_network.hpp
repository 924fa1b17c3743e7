// A guest kernel's network settings, from the host to the guest agent on the kernel's command
// line: the guest's disk image is its template's, shared by all its VEs, so a VE's own address
// cannot be in it. The monitor adds kapsel.ip=ADDR/PREFIX, kapsel.gw=GATEWAY and
// kapsel.dns=NS[,NS...] (dotted parameters: the kernel keeps them in /proc/cmdline and hands
// them to no one); the agent, started by the guest's init before anything that needs the
// network, configures eth0 from them with the guest's `ip` and writes /etc/hosts and
// /etc/resolv.conf as a container VE on a bridge gets them. Pure functions, for both sides and
// the unit tests; nothing here needs more than the C++ library (the agent is a static binary).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kapsel::agent {

// Where a guest image carries the IPv6 module (and the modules it needs) of a kernel that has
// IPv6 only as a module (Debian's linux.uml), for the agent to load on an IPv6 network: every
// file there, in the order of their names ("1-crc-ccitt.ko", "2-ipv6.ko").
inline constexpr const char* kIpv6ModuleDir = "/lib/modules/kapsel";

struct GuestNetwork {
  std::string address;  // with its prefix: 10.88.0.5/16, fd00:88::5/64
  std::string gateway;
  std::vector<std::string> nameservers;
};

// The kernel command line's parameters for `net` (none for an empty address).
[[nodiscard]] std::vector<std::string> guest_network_params(const GuestNetwork& net);

// The value of dotted parameter `key` (e.g. "kapsel.hostname") on `cmdline`, if present as a
// whole word.
[[nodiscard]] std::optional<std::string> cmdline_param(std::string_view cmdline,
                                                       std::string_view key);

// The settings on `cmdline`, or nothing if it has no kapsel.ip (a VE with --network none).
[[nodiscard]] std::optional<GuestNetwork> parse_guest_network(std::string_view cmdline);

// The `ip` commands (argv, without the program) that bring eth0 up with the address and the
// default route via the gateway.
[[nodiscard]] std::vector<std::vector<std::string>> guest_network_commands(const GuestNetwork& net);

// /etc/hosts of a VE whose own address (without prefix) is `address` and name `hostname`: the
// same for a container VE and a guest.
[[nodiscard]] std::string hosts_file(std::string_view address, std::string_view hostname);

// /etc/resolv.conf of the guest: its nameservers; empty if it has none.
[[nodiscard]] std::string resolv_conf(const GuestNetwork& net);

}  // namespace kapsel::agent
