#include "cli/security_flags.hpp"

#include <CLI/CLI.hpp>

#include "security/capabilities.hpp"
#include "security/devices.hpp"
#include "security/seccomp_policy.hpp"
#include "security/userns.hpp"

namespace kapsel::cli {

namespace {

// "NET_ADMIN,SYS_TIME" and repeated options alike, as Docker takes them.
std::vector<std::string> split_commas(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    std::size_t pos = 0;
    while (pos <= v.size()) {
      auto end = v.find(',', pos);
      if (end == std::string::npos) end = v.size();
      if (end > pos) out.push_back(v.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  return out;
}

}  // namespace

void SecurityFlags::add_to(CLI::App& cmd) {
  const std::string group = "Security";
  cmd.add_option("--cap-add", cap_add,
                 "Give the VE's processes a capability, e.g. NET_ADMIN (ALL: every one)")
      ->group(group)
      ->take_all()
      ->expected(1);
  cmd.add_option("--cap-drop", cap_drop, "Take a capability away, e.g. NET_RAW (ALL: every one)")
      ->group(group)
      ->take_all()
      ->expected(1);
  cmd.add_option("--seccomp", seccomp,
                 "System call filter: default, unconfined, or an OCI seccomp JSON file")
      ->group(group);
  cmd.add_option(
         "--device", devices,
         "Give the VE a host device, HOST[:PATH][:rwm], e.g. /dev/fuse, /dev/sdb:/dev/xvdb:r")
      ->group(group)
      ->take_all()
      ->expected(1);
  cmd.add_flag("--userns", userns,
               "Give the VE a user namespace: its root is an unprivileged range of host ids")
      ->group(group);
  cmd.add_option("--userns-range", userns_range,
                 "With --userns: the host ids to use, BASE[:SIZE] (default: a free block of 65536)")
      ->group(group);
}

Result<store::SecurityConfig> SecurityFlags::parse() const {
  store::SecurityConfig s;
  auto caps = security::resolve_capabilities(split_commas(cap_add), split_commas(cap_drop));
  if (!caps) return tl::unexpected(caps.error());
  s.capabilities = security::capability_names(*caps);
  if (!seccomp.empty()) {
    auto spec = security::parse_seccomp_option(seccomp);
    if (!spec) return tl::unexpected(spec.error());
    s.seccomp = security::to_string(*spec);
  }
  for (const auto& d : devices) {
    auto spec = security::parse_device_option(d);
    if (!spec) return tl::unexpected(spec.error());
    s.devices.push_back(security::to_string(*spec));
  }
  if (userns || !userns_range.empty()) {
    // Without a range the store picks one at create, under its lock.
    s.userns = store::UsernsConfig{};
    if (!userns_range.empty()) {
      auto range = security::parse_range_option(userns_range);
      if (!range) return tl::unexpected(range.error());
      s.userns = store::UsernsConfig{range->base, range->base, range->size};
    }
  }
  return s;
}

std::vector<std::pair<std::string, std::string>> describe(const store::SecurityConfig& s) {
  std::vector<std::pair<std::string, std::string>> lines;
  std::string caps = "default";
  if (s.capabilities) {
    auto set = security::capabilities_from_names(*s.capabilities);
    if (!set || *set != security::default_capabilities()) {
      caps.clear();
      for (const auto& c : *s.capabilities) caps += (caps.empty() ? "" : " ") + c;
      if (caps.empty()) caps = "none";
    }
  }
  lines.emplace_back("capabilities", caps);
  lines.emplace_back("seccomp", s.seccomp);
  if (s.userns && s.userns->rootless) {
    lines.emplace_back("userns", "rootless: uid 0 -> " + std::to_string(s.userns->host_uid) +
                                     ", the others -> its /etc/subuid range");
  } else if (s.userns) {
    auto last = [&](std::uint32_t base) { return std::to_string(base + s.userns->size - 1); };
    lines.emplace_back("userns",
                       "uid 0-" + std::to_string(s.userns->size - 1) + " -> " +
                           std::to_string(s.userns->host_uid) + "-" + last(s.userns->host_uid) +
                           ", gid 0-" + std::to_string(s.userns->size - 1) + " -> " +
                           std::to_string(s.userns->host_gid) + "-" + last(s.userns->host_gid));
  }
  if (!s.devices.empty()) {
    std::string devs;
    for (const auto& d : s.devices) devs += (devs.empty() ? "" : " ") + d;
    lines.emplace_back("devices", devs);
  }
  return lines;
}

}  // namespace kapsel::cli
