// The devices a VE may use: the nodes of kapsel's minimal /dev, the host devices given with
// --device, and the cgroup rules that let its processes open those and nothing else.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/devices.hpp"
#include "common/error.hpp"
#include "store/ve_config.hpp"

namespace kapsel::security {

// A node that every VE's /dev gets. `mode` holds the permission bits only.
struct DeviceNode {
  const char* name;  // under /dev
  char type;         // 'c' or 'b'
  unsigned major;
  unsigned minor;
  mode_t mode;
};

// null 1:3, zero 1:5, full 1:7, random 1:8, urandom 1:9 and tty 5:0, each 0666: the set of runc
// and LXC. The driver makes /dev from this table, and device_rules() allows the same nodes, so
// the two cannot drift apart.
[[nodiscard]] std::span<const DeviceNode> minimal_devices();

// A host device given to a VE: --device HOST[:VE_PATH][:PERMS].
struct DeviceSpec {
  std::string host_path;  // absolute, as given
  std::string ve_path;    // absolute, under /dev
  char type = 'c';        // 'c' or 'b'
  unsigned major = 0;
  unsigned minor = 0;
  mode_t mode = 0;             // the host node's permission bits
  std::string access = "rwm";  // a subset of "rwm", in that order

  bool operator==(const DeviceSpec&) const = default;
};

// Docker's syntax: "/dev/fuse", "/dev/sdb:/dev/xvdb", "/dev/sdb:/dev/xvdb:r", "/dev/net/tun:rwm"
// (a second field that is a subset of "rwm" is the permissions, anything else the VE's path).
// HOST is stat(2)ed, following symlinks, and must be a character or block device; VE_PATH
// defaults to HOST and must be absolute, under /dev and without "." or ".." components; PERMS
// defaults to "rwm". Errors are ErrorKind::usage and name the option:
// "--device /etc/passwd: not a device node (give a character or block device such as /dev/fuse)",
// "--device /nope: No such file or directory".
[[nodiscard]] Result<DeviceSpec> parse_device_option(std::string_view value);

// "HOST:VE_PATH:PERMS", which parse_device_option() reads back to the same spec (as long as the
// host's node is unchanged): the form stored in a VE's configuration.
[[nodiscard]] std::string to_string(const DeviceSpec& spec);

// The VE's whole allow list: mknod of any character or block device ("c *:* m", "b *:* m", as
// runc's default: making a node is harmless while opening it is denied), the minimal devices,
// /dev/console 5:1, /dev/ptmx 5:2 and the VE's ptys 136:*, then one rule per device of `extra`.
[[nodiscard]] std::vector<cgroup::DeviceRule> device_rules(const std::vector<DeviceSpec>& extra);

// The rules of an OCI bundle's container: `base` (device_rules()), an allow for each of its own
// nodes (linux.devices), then linux.resources.devices in order, so that a deny rule takes back
// even a default device ("c 1:3 rwm" and /dev/null cannot be opened). A rule that denies
// everything, which engines and runc's default spec put first, goes back to `base` and the
// bundle's nodes: the spec's default devices must stay usable, and runc adds them after the
// bundle's rules for that reason.
[[nodiscard]] std::vector<cgroup::DeviceRule> bundle_device_rules(
    const std::vector<cgroup::DeviceRule>& base, const store::BundleConfig& bundle);

}  // namespace kapsel::security
