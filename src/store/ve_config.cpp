#include "store/ve_config.hpp"

#include <nlohmann/json.hpp>

// nlohmann::json 3.11 has no std::optional: unset is null, or left out.
namespace nlohmann {
template <class T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& v) {
    if (v) {
      j = *v;
    } else {
      j = nullptr;
    }
  }
  static void from_json(const json& j, std::optional<T>& v) {
    if (j.is_null()) {
      v.reset();
    } else {
      v = j.get<T>();
    }
  }
};
}  // namespace nlohmann

// A bundle's linux.resources.devices rules, as its stored config holds them.
namespace kapsel::cgroup {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DeviceRule, type, major, minor, access, allow)
}  // namespace kapsel::cgroup

namespace kapsel::store {

using nlohmann::json;

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::starting:
      return "starting";
    case Phase::running:
      return "running";
    case Phase::stopping:
      return "stopping";
  }
  return "unknown";
}

void to_json(json& j, const VeConfig& c) {
  j = json{{"name", c.name},
           {"kind", c.kind},
           {"template", c.template_spec},
           {"template_id", c.template_id},
           {"hostname", c.hostname},
           {"created", c.created},
           {"ephemeral", c.ephemeral}};
  if (!c.limits.empty()) j["limits"] = c.limits;
  if (!c.security.is_default()) j["security"] = c.security;
  if (c.network.mode != "none") j["network"] = c.network;
  if (c.disk_bytes != 0) j["disk_bytes"] = c.disk_bytes;
  if (c.bundle) j["bundle"] = *c.bundle;
}

bool BundleConfig::has_namespace(std::string_view type) const {
  for (const auto& ns : namespaces) {
    if (ns.type == type) return true;
  }
  return false;
}

std::string BundleConfig::namespace_path(std::string_view type) const {
  for (const auto& ns : namespaces) {
    if (ns.type == type) return ns.path;
  }
  return {};
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BundleMount, destination, type, source, options)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BundleRlimit, type, soft, hard)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BundleProcess, args, env, cwd, uid, gid,
                                                additional_gids, umask, terminal, no_new_privileges,
                                                oom_score_adj, rlimits, console_height,
                                                console_width, io_class, io_level, sched_policy,
                                                sched_nice, sched_priority, sched_flags,
                                                sched_runtime, sched_deadline, sched_period,
                                                cpu_affinity)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BundleIdMapping, container_id, host_id, size)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BundleTimeOffset, clock, secs, nanosecs)

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BundleNamespace, type, path)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BundleDevice, path, type, major, minor, mode, uid,
                                                gid)

void to_json(json& j, const BundleConfig& b) {
  j = json{{"bundle", b.bundle},
           {"rootfs", b.rootfs},
           {"readonly", b.readonly},
           {"process", b.process},
           {"mounts", b.mounts},
           {"namespaces", b.namespaces},
           {"devices", b.devices},
           {"uid_mappings", b.uid_mappings},
           {"gid_mappings", b.gid_mappings},
           {"time_offsets", b.time_offsets},
           {"device_rules", b.device_rules},
           {"masked_paths", b.masked_paths},
           {"readonly_paths", b.readonly_paths},
           {"rootfs_propagation", b.rootfs_propagation},
           {"domainname", b.domainname},
           {"sysctl", b.sysctl},
           {"personality", b.personality},
           {"start_fifo", b.start_fifo},
           {"console_socket", b.console_socket},
           {"preserve_fds", b.preserve_fds},
           {"no_pivot", b.no_pivot}};
}

void from_json(const json& j, BundleConfig& b) {
  BundleConfig d;
  b.bundle = j.value("bundle", d.bundle);
  b.rootfs = j.value("rootfs", d.rootfs);
  b.readonly = j.value("readonly", d.readonly);
  b.process = j.value("process", d.process);
  b.mounts = j.value("mounts", d.mounts);
  b.namespaces = j.value("namespaces", d.namespaces);
  b.devices = j.value("devices", d.devices);
  b.uid_mappings = j.value("uid_mappings", d.uid_mappings);
  b.gid_mappings = j.value("gid_mappings", d.gid_mappings);
  b.time_offsets = j.value("time_offsets", d.time_offsets);
  b.device_rules = j.value("device_rules", d.device_rules);
  b.masked_paths = j.value("masked_paths", d.masked_paths);
  b.readonly_paths = j.value("readonly_paths", d.readonly_paths);
  b.rootfs_propagation = j.value("rootfs_propagation", d.rootfs_propagation);
  b.domainname = j.value("domainname", d.domainname);
  b.sysctl = j.value("sysctl", d.sysctl);
  b.personality = j.value("personality", d.personality);
  b.start_fifo = j.value("start_fifo", d.start_fifo);
  b.console_socket = j.value("console_socket", d.console_socket);
  b.preserve_fds = j.value("preserve_fds", d.preserve_fds);
  b.no_pivot = j.value("no_pivot", d.no_pivot);
}

void to_json(json& j, const NetworkConfig& n) {
  j = json{{"mode", n.mode}};
  if (!n.is_bridge()) return;
  j["network"] = n.network;
  j["address"] = n.address;
  j["gateway"] = n.gateway;
  j["mac"] = n.mac;
  j["publish"] = n.publish;
}

void to_json(json& j, const SecurityConfig& s) {
  j = json{{"seccomp", s.seccomp}, {"devices", s.devices}};
  if (s.capabilities) j["capabilities"] = *s.capabilities;
  if (s.userns)
    j["userns"] = {{"host_uid", s.userns->host_uid},
                   {"host_gid", s.userns->host_gid},
                   {"size", s.userns->size},
                   {"rootless", s.userns->rootless}};
}

void to_json(json& j, const RuntimeState& s) {
  j = json{{"phase", to_string(s.phase)},           {"monitor_pid", s.monitor.pid},
           {"monitor_start", s.monitor.start_time}, {"init_pid", s.init.pid},
           {"init_start", s.init.start_time},       {"started_at", s.started_at},
           {"halt_signal", s.halt_signal},          {"cgroup_parent", s.cgroup_parent}};
}

void to_json(json& j, const ExitRecord& r) {
  j = json{{"reason", r.reason},
           {"exit_code", r.exit_code},
           {"signal", r.signal},
           {"at", r.at},
           {"detail", r.detail}};
}

// Stored files are ours, but may be damaged or from another version: any JSON error becomes an
// error value here rather than an exception further up.
template <class T, class Fill>
static Result<T> parse_json(std::string_view text, std::string_view what, Fill fill) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return fail(ErrorKind::failure, std::string(what) + " is not valid JSON");
  try {
    T value;
    fill(j, value);
    return value;
  } catch (const json::exception& e) {
    return fail(ErrorKind::failure, std::string(what) + ": " + e.what());
  }
}

Result<VeConfig> parse_config(std::string_view text) {
  return parse_json<VeConfig>(text, "VE config", [](const json& j, VeConfig& c) {
    c.name = j.at("name").get<std::string>();
    c.kind = j.value("kind", "container");
    c.template_spec = j.value("template", "");
    c.template_id = j.value("template_id", "");
    c.hostname = j.value("hostname", c.name);
    c.created = j.value("created", std::int64_t{0});
    c.ephemeral = j.value("ephemeral", false);
    c.disk_bytes = j.value("disk_bytes", std::uint64_t{0});
    if (j.contains("limits")) c.limits = j.at("limits").get<cgroup::Limits>();
    if (j.contains("security")) {
      const json& sec = j.at("security");
      if (sec.contains("capabilities"))
        c.security.capabilities = sec.at("capabilities").get<std::vector<std::string>>();
      c.security.seccomp = sec.value("seccomp", "default");
      c.security.devices = sec.value("devices", std::vector<std::string>{});
      if (sec.contains("userns")) {
        const json& u = sec.at("userns");
        c.security.userns = UsernsConfig{
            u.at("host_uid").get<std::uint32_t>(), u.at("host_gid").get<std::uint32_t>(),
            u.at("size").get<std::uint32_t>(), u.value("rootless", false)};
      }
    }
    if (j.contains("network")) {
      const json& net = j.at("network");
      c.network.mode = net.value("mode", "none");
      c.network.network = net.value("network", "");
      c.network.address = net.value("address", "");
      c.network.gateway = net.value("gateway", "");
      c.network.mac = net.value("mac", "");
      c.network.publish = net.value("publish", std::vector<std::string>{});
    }
    if (j.contains("bundle")) c.bundle = j.at("bundle").get<BundleConfig>();
  });
}

Result<RuntimeState> parse_state(std::string_view text) {
  return parse_json<RuntimeState>(text, "VE state", [](const json& j, RuntimeState& s) {
    auto phase = j.value("phase", "starting");
    s.phase = phase == "running"    ? Phase::running
              : phase == "stopping" ? Phase::stopping
                                    : Phase::starting;
    s.monitor = {j.value("monitor_pid", 0), j.value("monitor_start", std::uint64_t{0})};
    s.init = {j.value("init_pid", 0), j.value("init_start", std::uint64_t{0})};
    s.started_at = j.value("started_at", std::int64_t{0});
    s.halt_signal = j.value("halt_signal", 15);
    s.cgroup_parent = j.value("cgroup_parent", "");
  });
}

void to_json(json& j, const OomEvent& e) {
  j = json{{"at", e.at}, {"pid", e.pid}, {"comm", e.comm}, {"uid", e.uid}, {"cgroup", e.cgroup}};
}

Result<OomEvent> parse_oom_event(std::string_view line) {
  return parse_json<OomEvent>(line, "OOM record", [](const json& j, OomEvent& e) {
    e.at = j.value("at", std::int64_t{0});
    e.pid = j.value("pid", 0);
    e.comm = j.value("comm", "");
    e.uid = j.value("uid", 0);
    e.cgroup = j.value("cgroup", "");
  });
}

Result<ExitRecord> parse_exit(std::string_view text) {
  return parse_json<ExitRecord>(text, "exit record", [](const json& j, ExitRecord& r) {
    r.reason = j.value("reason", "");
    r.exit_code = j.value("exit_code", -1);
    r.signal = j.value("signal", 0);
    r.at = j.value("at", std::int64_t{0});
    r.detail = j.value("detail", "");
  });
}

}  // namespace kapsel::store
