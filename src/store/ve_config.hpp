// The plain structs that describe a VE: what the user configured, what is running now, and how
// it last ended. Flags, stored configs and (later) OCI config.json all fill these; only drivers
// turn them into kernel objects.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cgroup/devices.hpp"
#include "cgroup/resources.hpp"
#include "common/error.hpp"
#include "common/process.hpp"

namespace kapsel::store {

// A VE's user namespace (--userns): its ids 0..size-1 are host ids host_uid.. and host_gid...
// host_uid 0 only in a request not yet given a range by the store (create allocates one).
struct UsernsConfig {
  std::uint32_t host_uid = 0;
  std::uint32_t host_gid = 0;
  std::uint32_t size = 0;
  // A rootless VE (made by a non-root user): its root is the user's own id (host_uid, host_gid)
  // and its other ids the user's /etc/subuid and /etc/subgid ranges, mapped at each start by
  // newuidmap(1) and newgidmap(1); size is unused.
  bool rootless = false;
};

// What a VE's processes may do (src/security turns it into capabilities, a seccomp filter and
// device rules). Plain text, as the user gave it and the security part normalised it.
struct SecurityConfig {
  // The capabilities its processes keep ("CAP_CHOWN", ...), resolved at create from kapsel's
  // default set and --cap-add/--cap-drop; unset (a VE made before there was a choice): the
  // default set.
  std::optional<std::vector<std::string>> capabilities;
  std::string seccomp = "default";     // "default", "unconfined", or an OCI seccomp JSON file
  std::vector<std::string> devices;    // host devices it may use, in --device's syntax
  std::optional<UsernsConfig> userns;  // unset: the VE's root is the host's root

  [[nodiscard]] bool is_default() const {
    return !capabilities && seccomp == "default" && devices.empty() && !userns;
  }
};

// How a VE is networked (src/net makes it so at start). Plain text, resolved at create: the
// address is leased then and kept until destroy, so everything the monitor needs is here.
struct NetworkConfig {
  std::string mode = "none";  // "none" (loopback only), "host" (the host's namespace), "bridge"
  std::string network;        // bridge mode: the kapsel network (= bridge) joined
  std::string address;        // bridge mode: the VE's address with the subnet's prefix
  std::string gateway;        // bridge mode: the bridge's address, the VE's default route
  std::string mac;            // bridge mode: eth0's MAC, stable for the VE's life
  std::vector<std::string> publish;  // bridge mode: published ports, as net::PublishSpec spells

  [[nodiscard]] bool is_bridge() const { return mode == "bridge"; }
};

// A container described by an OCI bundle (src/oci fills it from config.json): instead of a
// template's overlay and kapsel's own init, the bundle's root file system, mounts and process.
// The driver runs it like any container VE, with these differences: only the mounts listed here
// (and the spec's default devices), only the namespaces listed, and init waits until `start`.
struct BundleMount {
  std::string destination;  // absolute, in the container
  std::string type;         // "bind" for binds (or a "bind"/"rbind" option)
  std::string source;
  std::vector<std::string> options;  // fstab-style: ro, nosuid, rbind, rprivate, size=65536k...
};

struct BundleRlimit {
  std::string type;  // "RLIMIT_NOFILE"
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};

struct BundleProcess {
  std::vector<std::string> args;
  std::vector<std::string> env;  // KEY=VALUE, the whole environment
  std::string cwd = "/";
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::uint32_t> additional_gids;
  std::optional<std::uint32_t> umask;
  bool terminal = false;
  bool no_new_privileges = false;
  std::optional<int> oom_score_adj;
  std::vector<BundleRlimit> rlimits;
  // process.consoleSize, given to the pty with process.terminal (0: the pty's default).
  std::uint32_t console_height = 0;
  std::uint32_t console_width = 0;
  // process.ioPriority: an IOPRIO_CLASS_* number and its level (class 0: unchanged).
  int io_class = 0;
  int io_level = 0;
  // process.scheduler, as sched_setattr(2) takes it (policy -1: unchanged).
  int sched_policy = -1;
  int sched_nice = 0;
  std::uint32_t sched_priority = 0;
  std::uint64_t sched_flags = 0;
  std::uint64_t sched_runtime = 0;
  std::uint64_t sched_deadline = 0;
  std::uint64_t sched_period = 0;
  // process.execCPUAffinity.final: the CPUs the process runs on ("0-3,7"; empty: unchanged).
  std::string cpu_affinity;
};

// One line of linux.uidMappings or gidMappings.
struct BundleIdMapping {
  std::uint32_t container_id = 0;
  std::uint32_t host_id = 0;
  std::uint32_t size = 0;
};

// One of linux.timeOffsets: "monotonic" or "boottime".
struct BundleTimeOffset {
  std::string clock;
  std::int64_t secs = 0;
  std::uint32_t nanosecs = 0;
};

// One entry of linux.namespaces: a namespace to make ("pid", "network", "mount", "ipc", "uts",
// "cgroup", "user"), or with `path` one to join.
struct BundleNamespace {
  std::string type;
  std::string path;
};

// A device node made in the container's /dev (linux.devices).
struct BundleDevice {
  std::string path;  // absolute, under /dev
  char type = 'c';   // 'c', 'b', 'u' (= c) or 'p'
  std::int64_t major = 0;
  std::int64_t minor = 0;
  std::uint32_t mode = 0666;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
};

struct BundleConfig {
  std::string bundle;  // the bundle directory, absolute
  std::string rootfs;  // root.path, absolute
  bool readonly = false;
  BundleProcess process;
  std::vector<BundleMount> mounts;
  std::vector<BundleNamespace> namespaces;
  std::vector<BundleDevice> devices;
  std::vector<BundleIdMapping> uid_mappings;  // with a new user namespace
  std::vector<BundleIdMapping> gid_mappings;
  std::vector<BundleTimeOffset> time_offsets;    // with a new time namespace
  std::vector<cgroup::DeviceRule> device_rules;  // linux.resources.devices, in order
  std::vector<std::string> masked_paths;
  std::vector<std::string> readonly_paths;
  std::string rootfs_propagation;  // "", "private", "rprivate", "slave", "rslave", "shared"...
  std::string domainname;
  std::map<std::string, std::string> sysctl;
  std::string personality;  // "", "LINUX" or "LINUX32"
  // init opens this FIFO for writing once everything is ready, which blocks until `start` opens
  // it for reading (the spec's "created" state).
  std::string start_fifo;
  // With process.terminal: where the pty's master is sent (SCM_RIGHTS), as runc does.
  std::string console_socket;
  // The caller's stdin, stdout and stderr are init's (without a terminal), and descriptors
  // 3..3+preserve_fds-1 are passed on too.
  int preserve_fds = 0;
  bool no_pivot = false;

  [[nodiscard]] bool has_namespace(std::string_view type) const;
  // The path of a namespace to join, or "" (made new, or not at all).
  [[nodiscard]] std::string namespace_path(std::string_view type) const;
};

struct VeConfig {
  std::string name;
  std::string kind = "container";
  std::string template_spec;  // as given: "busybox", "dir:/srv/rootfs", ...
  std::string template_id;    // the stored template it uses
  std::string hostname;
  std::int64_t created = 0;  // unix time
  // An ephemeral VE (`run --rm`) is destroyed when its command ends; its files are not synced.
  bool ephemeral = false;
  // Resource limits, applied at start and changed live by `kapsel set`.
  cgroup::Limits limits;
  SecurityConfig security;
  // Configs from before networking parse as "none", as those VEs were made.
  NetworkConfig network;
  // A UML VE's disk of its own of this size (--disk); 0: a copy-on-write view of the template's
  // shared image.
  std::uint64_t disk_bytes = 0;
  // Set for a container made from an OCI bundle (`kapsel oci create`).
  std::optional<BundleConfig> bundle;
};

// The phase a running monitor reports for its VE.
enum class Phase { starting, running, stopping };
[[nodiscard]] std::string_view to_string(Phase phase);

// Written by the monitor to <run>/ves/<name>/state.json while it runs.
struct RuntimeState {
  Phase phase = Phase::starting;
  proc::ProcessRef monitor;
  proc::ProcessRef init;        // the VE's PID 1, as a host pid
  std::int64_t started_at = 0;  // unix time at which init was started
  int halt_signal = 15;         // asks init to shut down (from the template; SIGTERM default)
  // The cgroup parent the VE's cgroups were made under (--cgroup-parent when it started), so
  // later commands and the /proc service find them whatever their own setting.
  std::string cgroup_parent;
};

// How a VE ended, written when its monitor finishes (or when a dead monitor is cleaned up).
struct ExitRecord {
  std::string reason;   // "halted", "rebooted", "exited", "killed", "start-failed", "monitor-lost"
  int exit_code = -1;   // init's exit code, if it exited
  int signal = 0;       // the signal that ended init, if any
  std::int64_t at = 0;  // unix time
  std::string detail;   // human-readable explanation
};

// One OOM kill inside the VE, as the kernel reported it, appended by the monitor to
// <root>/ves/<name>/oom.log (one JSON object per line).
struct OomEvent {
  std::int64_t at = 0;  // unix time
  int pid = 0;          // host pid of the victim
  std::string comm;     // its command name
  int uid = 0;
  std::string cgroup;  // the memory cgroup that ran out (the VE's or one nested in it)
};

void to_json(nlohmann::json& j, const VeConfig& c);
void to_json(nlohmann::json& j, const SecurityConfig& s);
void to_json(nlohmann::json& j, const NetworkConfig& n);
void to_json(nlohmann::json& j, const BundleConfig& b);
void from_json(const nlohmann::json& j, BundleConfig& b);
void to_json(nlohmann::json& j, const OomEvent& e);
[[nodiscard]] Result<OomEvent> parse_oom_event(std::string_view line);
void to_json(nlohmann::json& j, const RuntimeState& s);
void to_json(nlohmann::json& j, const ExitRecord& r);

[[nodiscard]] Result<VeConfig> parse_config(std::string_view text);
[[nodiscard]] Result<RuntimeState> parse_state(std::string_view text);
[[nodiscard]] Result<ExitRecord> parse_exit(std::string_view text);

}  // namespace kapsel::store
