#include "security/devices.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace kapsel::security {
namespace {

constexpr std::array<DeviceNode, 6> kDevices = {{{"null", 'c', 1, 3, 0666},
                                                 {"zero", 'c', 1, 5, 0666},
                                                 {"full", 'c', 1, 7, 0666},
                                                 {"random", 'c', 1, 8, 0666},
                                                 {"urandom", 'c', 1, 9, 0666},
                                                 {"tty", 'c', 5, 0, 0666}}};

// What kapsel's /dev holds besides kDevices (src/driver/container/rootfs.cpp): a --device node
// there would collide with it when the VE starts.
constexpr std::array<std::string_view, 9> kReservedNames = {
    "console", "ptmx", "pts", "shm", "mqueue", "fd", "stdin", "stdout", "stderr"};

// "rwm" in that order if `perms` is one or more of r, w and m, each once; "" otherwise.
std::string normal_access(std::string_view perms) {
  bool r = false, w = false, m = false;
  for (char c : perms) {
    bool* seen = c == 'r' ? &r : c == 'w' ? &w : c == 'm' ? &m : nullptr;
    if (seen == nullptr || *seen) return {};
    *seen = true;
  }
  return std::string(r ? "r" : "") + (w ? "w" : "") + (m ? "m" : "");
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    std::size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

// Empty if `path` is a path under /dev the VE may have; otherwise why not.
std::string check_ve_path(std::string_view path) {
  constexpr std::string_view kDev = "/dev/";
  std::string bad = "the VE path '" + std::string(path) +
                    "' must be absolute, under /dev, and without '.' or '..' (e.g. /dev/xvdb)";
  if (!path.starts_with(kDev) || path.size() == kDev.size()) return bad;
  auto parts = split(path.substr(kDev.size()), '/');
  for (std::string_view part : parts) {
    if (part.empty() || part == "." || part == "..") return bad;
  }
  bool standard =
      std::any_of(kDevices.begin(), kDevices.end(),
                  [&](const DeviceNode& d) { return parts[0] == d.name; }) ||
      std::find(kReservedNames.begin(), kReservedNames.end(), parts[0]) != kReservedNames.end();
  if (standard) {
    return "/dev/" + std::string(parts[0]) +
           " is part of every VE's /dev; give the device another path (HOST:/dev/NAME)";
  }
  return {};
}

}  // namespace

std::span<const DeviceNode> minimal_devices() {
  return kDevices;
}

Result<DeviceSpec> parse_device_option(std::string_view value) {
  std::string option = "--device " + std::string(value);
  auto usage = [&](const std::string& why) { return fail(ErrorKind::usage, option + ": " + why); };
  auto fields = split(value, ':');
  if (fields.size() > 3)
    return usage("too many ':' (the form is HOST[:VE_PATH][:PERMS], e.g. /dev/sdb:/dev/xvdb:r)");

  DeviceSpec spec;
  spec.host_path = std::string(fields[0]);
  spec.ve_path = spec.host_path;
  std::string_view perms = "rwm";
  if (fields.size() == 3) {
    spec.ve_path = std::string(fields[1]);
    perms = fields[2];
  } else if (fields.size() == 2) {
    // Docker's reading: a second field that is permissions is permissions, else a path.
    if (!normal_access(fields[1]).empty()) {
      perms = fields[1];
    } else if (fields[1].find('/') != std::string_view::npos) {
      spec.ve_path = std::string(fields[1]);
    } else {
      return usage("'" + std::string(fields[1]) +
                   "' is neither permissions (one or more of r, w and m) nor a path under /dev");
    }
  }
  spec.access = normal_access(perms);
  if (spec.access.empty()) {
    return usage("the permissions '" + std::string(perms) +
                 "' must be one or more of r (read), w (write) and m (mknod)");
  }
  if (spec.host_path.empty() || spec.host_path[0] != '/')
    return usage("the host device must be an absolute path (e.g. /dev/fuse)");

  // The host device before the VE path: "--device /etc/passwd" is not a device, whatever path
  // it would have had.
  struct stat st {};
  if (::stat(spec.host_path.c_str(), &st) != 0) {
    int err = errno;
    return tl::unexpected(Error{ErrorKind::usage, err, option + ": " + std::strerror(err)});
  }
  if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
    return usage("not a device node (give a character or block device such as /dev/fuse)");
  spec.type = S_ISBLK(st.st_mode) ? 'b' : 'c';
  spec.major = ::major(st.st_rdev);
  spec.minor = ::minor(st.st_rdev);
  spec.mode = st.st_mode & 07777;
  if (auto why = check_ve_path(spec.ve_path); !why.empty()) return usage(why);
  return spec;
}

std::string to_string(const DeviceSpec& spec) {
  return spec.host_path + ":" + spec.ve_path + ":" + spec.access;
}

std::vector<cgroup::DeviceRule> device_rules(const std::vector<DeviceSpec>& extra) {
  std::vector<cgroup::DeviceRule> rules = {
      {'c', -1, -1, "m", true},
      {'b', -1, -1, "m", true},
  };
  for (const auto& d : kDevices) rules.push_back({d.type, d.major, d.minor, "rwm", true});
  rules.push_back({'c', 5, 1, "rwm", true});     // /dev/console
  rules.push_back({'c', 5, 2, "rwm", true});     // /dev/ptmx
  rules.push_back({'c', 136, -1, "rwm", true});  // the VE's ptys, /dev/pts/N
  for (const auto& d : extra) rules.push_back({d.type, d.major, d.minor, d.access, true});
  return rules;
}

std::vector<cgroup::DeviceRule> bundle_device_rules(const std::vector<cgroup::DeviceRule>& base,
                                                    const store::BundleConfig& bundle) {
  std::vector<cgroup::DeviceRule> floor = base;
  for (const auto& d : bundle.devices) {
    if (d.type == 'c' || d.type == 'b') floor.push_back({d.type, d.major, d.minor, "rwm", true});
  }
  std::vector<cgroup::DeviceRule> rules = floor;
  for (const auto& r : bundle.device_rules) {
    bool everything = r.type == 'a' && r.major == -1 && r.minor == -1 &&
                      r.access.find('r') != std::string::npos &&
                      r.access.find('w') != std::string::npos &&
                      r.access.find('m') != std::string::npos;
    if (!r.allow && everything) {
      rules = floor;
      continue;
    }
    rules.push_back(r);
  }
  return rules;
}

}  // namespace kapsel::security
