#include "agent/guest_network.hpp"

namespace kapsel::agent {

std::vector<std::string> guest_network_params(const GuestNetwork& net) {
  if (net.address.empty()) return {};
  std::vector<std::string> params = {"kapsel.ip=" + net.address, "kapsel.gw=" + net.gateway};
  std::string dns;
  for (const auto& ns : net.nameservers) dns += (dns.empty() ? "" : ",") + ns;
  if (!dns.empty()) params.push_back("kapsel.dns=" + dns);
  return params;
}

std::optional<std::string> cmdline_param(std::string_view cmdline, std::string_view key) {
  std::string needle = std::string(key) + "=";
  for (std::size_t at = cmdline.find(needle); at != std::string_view::npos;
       at = cmdline.find(needle, at + 1)) {
    if (at > 0 && cmdline[at - 1] != ' ') continue;
    std::size_t start = at + needle.size();
    std::size_t end = cmdline.find_first_of(" \n", start);
    return std::string(cmdline.substr(start, end == std::string_view::npos ? end : end - start));
  }
  return std::nullopt;
}

std::optional<GuestNetwork> parse_guest_network(std::string_view cmdline) {
  auto address = cmdline_param(cmdline, "kapsel.ip");
  if (!address || address->empty()) return std::nullopt;
  GuestNetwork net;
  net.address = *address;
  net.gateway = cmdline_param(cmdline, "kapsel.gw").value_or("");
  std::string dns = cmdline_param(cmdline, "kapsel.dns").value_or("");
  for (std::size_t start = 0; start < dns.size();) {
    std::size_t comma = dns.find(',', start);
    if (comma == std::string::npos) comma = dns.size();
    if (comma > start) net.nameservers.push_back(dns.substr(start, comma - start));
    start = comma + 1;
  }
  return net;
}

std::vector<std::vector<std::string>> guest_network_commands(const GuestNetwork& net) {
  // busybox ip takes the family from an address but not from "default": say it for IPv6.
  const bool v6 = net.address.find(':') != std::string::npos;
  std::vector<std::vector<std::string>> cmds = {
      {"link", "set", "eth0", "up"},
      {"addr", "add", net.address, "dev", "eth0"},
  };
  if (!net.gateway.empty()) {
    if (v6)
      cmds.push_back({"-6", "route", "add", "default", "via", net.gateway, "dev", "eth0"});
    else
      cmds.push_back({"route", "add", "default", "via", net.gateway, "dev", "eth0"});
  }
  return cmds;
}

std::string hosts_file(std::string_view address, std::string_view hostname) {
  return "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
         std::string(address) + "\t" + std::string(hostname) + "\n";
}

std::string resolv_conf(const GuestNetwork& net) {
  std::string out;
  for (const auto& ns : net.nameservers) out += "nameserver " + ns + "\n";
  return out;
}

}  // namespace kapsel::agent
