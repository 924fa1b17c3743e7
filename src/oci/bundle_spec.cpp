#include "oci/bundle_spec.hpp"

#include <sched.h>

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "cgroup/resources.hpp"
#include "security/capabilities.hpp"

namespace kapsel::oci {
namespace {

using nlohmann::json;

// A usage error naming the field: "config.json: process.args: must be a non-empty array".
tl::unexpected<Error> invalid(std::string_view field, std::string_view why) {
  return fail(ErrorKind::usage, "config.json: " + std::string(field) + ": " + std::string(why));
}

// Typed access that turns a wrong type into an error naming the field (nlohmann would throw).
template <class T>
Result<T> get(const json& j, std::string_view field) {
  try {
    return j.get<T>();
  } catch (const json::exception&) {
    return invalid(field, "has the wrong type");
  }
}

template <class T>
Result<std::optional<T>> optional_field(const json& obj, const char* key, std::string_view field) {
  if (!obj.is_object() || !obj.contains(key) || obj.at(key).is_null()) return std::optional<T>{};
  auto v = get<T>(obj.at(key), field);
  if (!v) return tl::unexpected(v.error());
  return std::optional<T>(std::move(*v));
}

#define OCI_TRY_ASSIGN(lhs, expr)                       \
  do {                                                  \
    auto oci_r_ = (expr);                               \
    if (!oci_r_) return tl::unexpected(oci_r_.error()); \
    if (*oci_r_) lhs = std::move(**oci_r_);             \
  } while (0)

Result<std::vector<Hook>> parse_hook_list(const json& hooks, const char* key) {
  std::vector<Hook> out;
  if (!hooks.contains(key)) return out;
  const std::string field = std::string("hooks.") + key;
  if (!hooks.at(key).is_array()) return invalid(field, "must be an array");
  for (const auto& h : hooks.at(key)) {
    Hook hook;
    auto path = optional_field<std::string>(h, "path", field + ".path");
    if (!path) return tl::unexpected(path.error());
    if (!*path || (*path)->empty() || (*path)->front() != '/')
      return invalid(field + ".path", "must be an absolute path");
    hook.path = **path;
    OCI_TRY_ASSIGN(hook.args,
                   (optional_field<std::vector<std::string>>(h, "args", field + ".args")));
    OCI_TRY_ASSIGN(hook.env, (optional_field<std::vector<std::string>>(h, "env", field + ".env")));
    std::optional<int> timeout;
    OCI_TRY_ASSIGN(timeout, (optional_field<int>(h, "timeout", field + ".timeout")));
    if (timeout && *timeout <= 0) return invalid(field + ".timeout", "must be greater than zero");
    hook.timeout = timeout;
    if (hook.args.empty()) hook.args.push_back(hook.path);
    out.push_back(std::move(hook));
  }
  return out;
}

Result<std::uint64_t> limit_value(const json& j, std::string_view field) {
  auto v = get<std::int64_t>(j, field);
  if (!v) return tl::unexpected(v.error());
  if (*v < 0) return cgroup::kUnlimited;  // -1: unlimited
  return static_cast<std::uint64_t>(*v);
}

Status parse_resources(const json& r, cgroup::Limits& limits) {
  if (!r.is_object()) return invalid("linux.resources", "must be an object");
  if (auto m = r.find("memory"); m != r.end() && m->is_object()) {
    if (m->contains("limit")) {
      auto v = limit_value(m->at("limit"), "linux.resources.memory.limit");
      if (!v) return tl::unexpected(v.error());
      limits.memory = *v;
    }
    if (m->contains("swap")) {
      auto v = limit_value(m->at("swap"), "linux.resources.memory.swap");
      if (!v) return tl::unexpected(v.error());
      limits.memory_swap = *v;
    }
  }
  if (auto c = r.find("cpu"); c != r.end() && c->is_object()) {
    std::optional<std::int64_t> quota;
    std::optional<std::uint64_t> period, shares;
    std::optional<std::string> cpus;
    OCI_TRY_ASSIGN(quota, (optional_field<std::int64_t>(*c, "quota", "linux.resources.cpu.quota")));
    OCI_TRY_ASSIGN(period,
                   (optional_field<std::uint64_t>(*c, "period", "linux.resources.cpu.period")));
    OCI_TRY_ASSIGN(shares,
                   (optional_field<std::uint64_t>(*c, "shares", "linux.resources.cpu.shares")));
    OCI_TRY_ASSIGN(cpus, (optional_field<std::string>(*c, "cpus", "linux.resources.cpu.cpus")));
    if (quota && *quota > 0) {
      double p = static_cast<double>(period && *period > 0 ? *period : 100000);
      limits.cpus = static_cast<double>(*quota) / p;
    }
    if (shares && *shares > 0) limits.cpu_shares = *shares;
    if (cpus && !cpus->empty()) limits.cpuset = *cpus;
  }
  if (auto p = r.find("pids"); p != r.end() && p->is_object() && p->contains("limit")) {
    auto v = get<std::int64_t>(p->at("limit"), "linux.resources.pids.limit");
    if (!v) return tl::unexpected(v.error());
    limits.pids = *v <= 0 ? cgroup::kUnlimited : static_cast<std::uint64_t>(*v);
  }
  if (auto b = r.find("blockIO"); b != r.end() && b->is_object()) {
    std::optional<std::uint64_t> weight;
    OCI_TRY_ASSIGN(weight,
                   (optional_field<std::uint64_t>(*b, "weight", "linux.resources.blockIO.weight")));
    if (weight && *weight > 0) limits.blkio_weight = *weight;
    auto rates = [&](const char* key, std::vector<cgroup::DeviceRate>& into) -> Status {
      if (!b->contains(key)) return {};
      const std::string field = std::string("linux.resources.blockIO.") + key;
      if (!b->at(key).is_array()) return invalid(field, "must be an array");
      for (const auto& d : b->at(key)) {
        try {
          into.push_back({d.at("major").get<std::uint32_t>(), d.at("minor").get<std::uint32_t>(),
                          d.at("rate").get<std::uint64_t>()});
        } catch (const json::exception&) {
          return invalid(field, "each entry needs major, minor and rate");
        }
      }
      return {};
    };
    KAPSEL_TRY(rates("throttleReadBpsDevice", limits.read_bps), "resources");
    KAPSEL_TRY(rates("throttleWriteBpsDevice", limits.write_bps), "resources");
    KAPSEL_TRY(rates("throttleReadIOPSDevice", limits.read_iops), "resources");
    KAPSEL_TRY(rates("throttleWriteIOPSDevice", limits.write_iops), "resources");
  }
  return {};
}

// linux.resources.devices: the device cgroup's rules, in order.
Result<std::vector<cgroup::DeviceRule>> parse_device_rules(const json& r) {
  std::vector<cgroup::DeviceRule> out;
  constexpr const char* field = "linux.resources.devices";
  if (!r.contains("devices") || r.at("devices").is_null()) return out;
  if (!r.at("devices").is_array()) return invalid(field, "must be an array");
  for (const auto& d : r.at("devices")) {
    cgroup::DeviceRule rule;
    std::optional<std::string> type, access;
    std::optional<std::int64_t> major, minor;
    if (!d.is_object() || !d.contains("allow")) return invalid(field, "each entry needs allow");
    OCI_TRY_ASSIGN(rule.allow, (optional_field<bool>(d, "allow", "linux.resources.devices.allow")));
    OCI_TRY_ASSIGN(type, (optional_field<std::string>(d, "type", "linux.resources.devices.type")));
    OCI_TRY_ASSIGN(major,
                   (optional_field<std::int64_t>(d, "major", "linux.resources.devices.major")));
    OCI_TRY_ASSIGN(minor,
                   (optional_field<std::int64_t>(d, "minor", "linux.resources.devices.minor")));
    OCI_TRY_ASSIGN(access,
                   (optional_field<std::string>(d, "access", "linux.resources.devices.access")));
    if (type && *type != "a" && *type != "c" && *type != "b")
      return invalid("linux.resources.devices.type", "'" + *type + "' is not a, c or b");
    rule.type = type ? (*type)[0] : 'a';
    rule.major = major.value_or(-1);
    rule.minor = minor.value_or(-1);
    if (access) rule.access = *access;
    // As both device cgroup mechanisms can express it (numbers, access within "rwm").
    if (auto st = cgroup::check_rule(rule); !st) return invalid(field, st.error().message);
    out.push_back(rule);
  }
  return out;
}

// process.ioPriority, process.scheduler and process.execCPUAffinity: how the process is
// scheduled, applied by init before it execs the process.
Status parse_process_scheduling(const json& p, store::BundleProcess& proc) {
  if (p.contains("ioPriority") && !p.at("ioPriority").is_null()) {
    const json& io = p.at("ioPriority");
    if (!io.is_object()) return invalid("process.ioPriority", "must be an object");
    std::optional<std::string> cls;
    OCI_TRY_ASSIGN(cls, (optional_field<std::string>(io, "class", "process.ioPriority.class")));
    static const std::map<std::string, int> kClasses = {
        {"IOPRIO_CLASS_RT", 1}, {"IOPRIO_CLASS_BE", 2}, {"IOPRIO_CLASS_IDLE", 3}};
    auto found = cls ? kClasses.find(*cls) : kClasses.end();
    if (found == kClasses.end())
      return invalid("process.ioPriority.class",
                     "must be IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE");
    proc.io_class = found->second;
    OCI_TRY_ASSIGN(proc.io_level,
                   (optional_field<int>(io, "priority", "process.ioPriority.priority")));
    if (proc.io_level < 0 || proc.io_level > 7)
      return invalid("process.ioPriority.priority", "must be between 0 and 7");
  }
  if (p.contains("scheduler") && !p.at("scheduler").is_null()) {
    const json& sc = p.at("scheduler");
    if (!sc.is_object()) return invalid("process.scheduler", "must be an object");
    std::optional<std::string> policy;
    OCI_TRY_ASSIGN(policy, (optional_field<std::string>(sc, "policy", "process.scheduler.policy")));
    static const std::map<std::string, int> kPolicies = {
        {"SCHED_OTHER", SCHED_OTHER}, {"SCHED_FIFO", SCHED_FIFO}, {"SCHED_RR", SCHED_RR},
        {"SCHED_BATCH", SCHED_BATCH}, {"SCHED_IDLE", SCHED_IDLE}, {"SCHED_DEADLINE", 6}};
    auto found = policy ? kPolicies.find(*policy) : kPolicies.end();
    if (found == kPolicies.end())
      return invalid("process.scheduler.policy",
                     "'" + policy.value_or("") + "' is not a Linux scheduling policy");
    proc.sched_policy = found->second;
    OCI_TRY_ASSIGN(proc.sched_nice, (optional_field<int>(sc, "nice", "process.scheduler.nice")));
    if (proc.sched_nice < -20 || proc.sched_nice > 19)
      return invalid("process.scheduler.nice", "must be between -20 and 19");
    int priority = 0;
    OCI_TRY_ASSIGN(priority, (optional_field<int>(sc, "priority", "process.scheduler.priority")));
    if (priority < 0 || priority > 99)
      return invalid("process.scheduler.priority", "must be between 0 and 99");
    proc.sched_priority = static_cast<std::uint32_t>(priority);
    std::vector<std::string> flags;
    OCI_TRY_ASSIGN(
        flags, (optional_field<std::vector<std::string>>(sc, "flags", "process.scheduler.flags")));
    static const std::map<std::string, std::uint64_t> kFlags = {
        {"SCHED_FLAG_RESET_ON_FORK", 0x01}, {"SCHED_FLAG_RECLAIM", 0x02},
        {"SCHED_FLAG_DL_OVERRUN", 0x04},    {"SCHED_FLAG_KEEP_POLICY", 0x08},
        {"SCHED_FLAG_KEEP_PARAMS", 0x10},   {"SCHED_FLAG_UTIL_CLAMP_MIN", 0x20},
        {"SCHED_FLAG_UTIL_CLAMP_MAX", 0x40}};
    for (const auto& f : flags) {
      auto flag = kFlags.find(f);
      if (flag == kFlags.end()) return invalid("process.scheduler.flags", "'" + f + "' is unknown");
      proc.sched_flags |= flag->second;
    }
    OCI_TRY_ASSIGN(proc.sched_runtime,
                   (optional_field<std::uint64_t>(sc, "runtime", "process.scheduler.runtime")));
    OCI_TRY_ASSIGN(proc.sched_deadline,
                   (optional_field<std::uint64_t>(sc, "deadline", "process.scheduler.deadline")));
    OCI_TRY_ASSIGN(proc.sched_period,
                   (optional_field<std::uint64_t>(sc, "period", "process.scheduler.period")));
  }
  if (p.contains("execCPUAffinity") && !p.at("execCPUAffinity").is_null()) {
    const json& aff = p.at("execCPUAffinity");
    if (!aff.is_object()) return invalid("process.execCPUAffinity", "must be an object");
    std::optional<std::string> cpus;
    OCI_TRY_ASSIGN(cpus,
                   (optional_field<std::string>(aff, "final", "process.execCPUAffinity.final")));
    // (`initial` is for the runtime's own process while it joins the container: kapsel's
    // monitor and exec keep the host's affinity until the container's cgroups apply.)
    proc.cpu_affinity = cpus.value_or("");
    if (!cgroup::parse_cpu_list(proc.cpu_affinity))
      return invalid("process.execCPUAffinity.final",
                     "'" + proc.cpu_affinity + "' is not a list of CPUs like 0-3,7");
  }
  return {};
}

const std::vector<std::string> kNamespaceTypes = {"pid", "network", "mount",  "ipc",
                                                  "uts", "user",    "cgroup", "time"};

}  // namespace

Result<ContainerSpec> parse_bundle_config(std::string_view text, const std::string& bundle_dir) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return fail(ErrorKind::usage, "config.json is not a JSON object");
  ContainerSpec spec;
  store::VeConfig& c = spec.config;
  store::BundleConfig b;
  b.bundle = bundle_dir;

  auto version = optional_field<std::string>(j, "ociVersion", "ociVersion");
  if (!version) return tl::unexpected(version.error());
  if (!*version) return invalid("ociVersion", "is missing");
  spec.oci_version = **version;
  if (spec.oci_version.rfind("1.", 0) != 0)
    return invalid("ociVersion", "'" + spec.oci_version + "' is not a 1.x version");

  // root
  if (!j.contains("root") || !j.at("root").is_object()) return invalid("root", "is missing");
  auto root_path = optional_field<std::string>(j.at("root"), "path", "root.path");
  if (!root_path) return tl::unexpected(root_path.error());
  if (!*root_path || (*root_path)->empty()) return invalid("root.path", "is missing");
  b.rootfs = (*root_path)->front() == '/' ? **root_path : bundle_dir + "/" + **root_path;
  OCI_TRY_ASSIGN(b.readonly, (optional_field<bool>(j.at("root"), "readonly", "root.readonly")));

  // process (optional at create for the spec, but nothing can start without it)
  if (!j.contains("process") || !j.at("process").is_object())
    return invalid("process", "is missing");
  const json& p = j.at("process");
  store::BundleProcess& proc = b.process;
  OCI_TRY_ASSIGN(proc.args, (optional_field<std::vector<std::string>>(p, "args", "process.args")));
  if (proc.args.empty()) return invalid("process.args", "must hold at least the program");
  OCI_TRY_ASSIGN(proc.env, (optional_field<std::vector<std::string>>(p, "env", "process.env")));
  for (const auto& e : proc.env) {
    if (e.find('=') == std::string::npos || e.front() == '=')
      return invalid("process.env", "'" + e + "' is not KEY=VALUE");
  }
  std::optional<std::string> cwd;
  OCI_TRY_ASSIGN(cwd, (optional_field<std::string>(p, "cwd", "process.cwd")));
  if (!cwd || cwd->empty() || cwd->front() != '/')
    return invalid("process.cwd", "must be an absolute path");
  proc.cwd = *cwd;
  OCI_TRY_ASSIGN(proc.terminal, (optional_field<bool>(p, "terminal", "process.terminal")));
  if (p.contains("consoleSize") && !p.at("consoleSize").is_null()) {
    const json& size = p.at("consoleSize");
    if (!size.is_object()) return invalid("process.consoleSize", "must be an object");
    OCI_TRY_ASSIGN(proc.console_height,
                   (optional_field<std::uint32_t>(size, "height", "process.consoleSize.height")));
    OCI_TRY_ASSIGN(proc.console_width,
                   (optional_field<std::uint32_t>(size, "width", "process.consoleSize.width")));
    if (proc.console_height > 0xffff || proc.console_width > 0xffff)
      return invalid("process.consoleSize", "must be at most 65535 rows and columns");
  }
  OCI_TRY_ASSIGN(proc.no_new_privileges,
                 (optional_field<bool>(p, "noNewPrivileges", "process.noNewPrivileges")));
  std::optional<int> oom;
  OCI_TRY_ASSIGN(oom, (optional_field<int>(p, "oomScoreAdj", "process.oomScoreAdj")));
  if (oom && (*oom < -1000 || *oom > 1000))
    return invalid("process.oomScoreAdj", "must be between -1000 and 1000");
  proc.oom_score_adj = oom;
  if (auto st = parse_process_scheduling(p, proc); !st) return tl::unexpected(st.error());
  if (p.contains("user")) {
    const json& u = p.at("user");
    if (!u.is_object()) return invalid("process.user", "must be an object");
    OCI_TRY_ASSIGN(proc.uid, (optional_field<std::uint32_t>(u, "uid", "process.user.uid")));
    OCI_TRY_ASSIGN(proc.gid, (optional_field<std::uint32_t>(u, "gid", "process.user.gid")));
    OCI_TRY_ASSIGN(proc.additional_gids, (optional_field<std::vector<std::uint32_t>>(
                                             u, "additionalGids", "process.user.additionalGids")));
    std::optional<std::uint32_t> umask;
    OCI_TRY_ASSIGN(umask, (optional_field<std::uint32_t>(u, "umask", "process.user.umask")));
    if (umask && *umask > 0777) return invalid("process.user.umask", "must be at most 0777");
    proc.umask = umask;
  }
  if (p.contains("rlimits")) {
    if (!p.at("rlimits").is_array()) return invalid("process.rlimits", "must be an array");
    for (const auto& r : p.at("rlimits")) {
      store::BundleRlimit lim;
      try {
        lim.type = r.at("type").get<std::string>();
        lim.soft = r.at("soft").get<std::uint64_t>();
        lim.hard = r.at("hard").get<std::uint64_t>();
      } catch (const json::exception&) {
        return invalid("process.rlimits", "each entry needs type, soft and hard");
      }
      if (lim.type.rfind("RLIMIT_", 0) != 0)
        return invalid("process.rlimits", "'" + lim.type + "' is not an RLIMIT_ name");
      if (lim.soft > lim.hard) return invalid("process.rlimits", lim.type + ": soft is above hard");
      for (const auto& other : proc.rlimits) {
        if (other.type == lim.type) return invalid("process.rlimits", lim.type + " given twice");
      }
      proc.rlimits.push_back(lim);
    }
  }
  if (p.contains("capabilities")) {
    const json& caps = p.at("capabilities");
    if (!caps.is_object()) return invalid("process.capabilities", "must be an object");
    // kapsel gives a process one set (bounding = permitted = effective): the permitted set,
    // or the bounding set where that is not given.
    const char* which = caps.contains("permitted") ? "permitted" : "bounding";
    std::vector<std::string> names;
    OCI_TRY_ASSIGN(names, (optional_field<std::vector<std::string>>(
                              caps, which, std::string("process.capabilities.") + which)));
    for (const auto& n : names) {
      if (!security::capability_from_name(n))
        return invalid(std::string("process.capabilities.") + which,
                       "'" + n + "' is not a capability");
    }
    c.security.capabilities = names;
  } else {
    c.security.capabilities = std::vector<std::string>{};
  }

  // hostname, domainname
  OCI_TRY_ASSIGN(c.hostname, (optional_field<std::string>(j, "hostname", "hostname")));
  OCI_TRY_ASSIGN(b.domainname, (optional_field<std::string>(j, "domainname", "domainname")));

  // mounts
  if (j.contains("mounts")) {
    if (!j.at("mounts").is_array()) return invalid("mounts", "must be an array");
    for (const auto& m : j.at("mounts")) {
      store::BundleMount mount;
      OCI_TRY_ASSIGN(mount.destination,
                     (optional_field<std::string>(m, "destination", "mounts.destination")));
      if (mount.destination.empty() || mount.destination.front() != '/')
        return invalid("mounts.destination", "'" + mount.destination + "' is not absolute");
      OCI_TRY_ASSIGN(mount.type, (optional_field<std::string>(m, "type", "mounts.type")));
      OCI_TRY_ASSIGN(mount.source, (optional_field<std::string>(m, "source", "mounts.source")));
      OCI_TRY_ASSIGN(mount.options,
                     (optional_field<std::vector<std::string>>(m, "options", "mounts.options")));
      b.mounts.push_back(std::move(mount));
    }
  }

  // hooks
  if (j.contains("hooks")) {
    const json& h = j.at("hooks");
    if (!h.is_object()) return invalid("hooks", "must be an object");
    std::pair<const char*, std::vector<Hook>*> lists[] = {
        {"prestart", &spec.hooks.prestart},
        {"createRuntime", &spec.hooks.create_runtime},
        {"createContainer", &spec.hooks.create_container},
        {"startContainer", &spec.hooks.start_container},
        {"poststart", &spec.hooks.poststart},
        {"poststop", &spec.hooks.poststop}};
    for (auto& [key, into] : lists) {
      auto list = parse_hook_list(h, key);
      if (!list) return tl::unexpected(list.error());
      *into = std::move(*list);
    }
  }
  OCI_TRY_ASSIGN(spec.annotations, (optional_field<std::map<std::string, std::string>>(
                                       j, "annotations", "annotations")));

  // linux
  c.security.seccomp = "unconfined";  // runc applies no filter unless linux.seccomp says so
  if (j.contains("linux")) {
    const json& l = j.at("linux");
    if (!l.is_object()) return invalid("linux", "must be an object");
    if (l.contains("namespaces")) {
      if (!l.at("namespaces").is_array()) return invalid("linux.namespaces", "must be an array");
      for (const auto& n : l.at("namespaces")) {
        store::BundleNamespace ns;
        OCI_TRY_ASSIGN(ns.type, (optional_field<std::string>(n, "type", "linux.namespaces.type")));
        OCI_TRY_ASSIGN(ns.path, (optional_field<std::string>(n, "path", "linux.namespaces.path")));
        if (std::find(kNamespaceTypes.begin(), kNamespaceTypes.end(), ns.type) ==
            kNamespaceTypes.end())
          return invalid("linux.namespaces", "'" + ns.type + "' is not a namespace type");
        if (b.has_namespace(ns.type))
          return invalid("linux.namespaces", "'" + ns.type + "' is given twice");
        b.namespaces.push_back(std::move(ns));
      }
    }
    for (const char* key : {"uidMappings", "gidMappings"}) {
      const std::string field = std::string("linux.") + key;
      if (!l.contains(key) || l.at(key).is_null()) continue;
      if (!b.has_namespace("user")) return invalid(field, "given without a user namespace");
      auto& into = key[0] == 'u' ? b.uid_mappings : b.gid_mappings;
      if (!l.at(key).is_array()) return invalid(field, "must be an array");
      for (const auto& m : l.at(key)) {
        store::BundleIdMapping mapping;
        try {
          mapping.container_id = m.at("containerID").get<std::uint32_t>();
          mapping.host_id = m.at("hostID").get<std::uint32_t>();
          mapping.size = m.at("size").get<std::uint32_t>();
        } catch (const json::exception&) {
          return invalid(field, "each entry needs containerID, hostID and size");
        }
        if (mapping.size == 0) return invalid(field, "a mapping's size must be above 0");
        into.push_back(mapping);
      }
    }
    // A user namespace made for the container maps its ids as these say; without them nobody
    // in it would have an id (runc refuses such a config too).
    if (b.has_namespace("user") && b.namespace_path("user").empty() &&
        (b.uid_mappings.empty() || b.gid_mappings.empty()))
      return invalid("linux.uidMappings", "a new user namespace needs uid and gid mappings");
    if (l.contains("timeOffsets") && !l.at("timeOffsets").is_null()) {
      if (!b.has_namespace("time") || !b.namespace_path("time").empty())
        return invalid("linux.timeOffsets", "given without a new time namespace");
      const json& offsets = l.at("timeOffsets");
      if (!offsets.is_object()) return invalid("linux.timeOffsets", "must be an object");
      for (const auto& [clock, value] : offsets.items()) {
        const std::string field = "linux.timeOffsets." + clock;
        if (clock != "monotonic" && clock != "boottime")
          return invalid(field, "is not a clock with an offset (monotonic, boottime)");
        store::BundleTimeOffset offset;
        offset.clock = clock;
        OCI_TRY_ASSIGN(offset.secs, (optional_field<std::int64_t>(value, "secs", field + ".secs")));
        OCI_TRY_ASSIGN(offset.nanosecs,
                       (optional_field<std::uint32_t>(value, "nanosecs", field + ".nanosecs")));
        if (offset.nanosecs >= 1000000000) return invalid(field, "nanosecs must be below 1e9");
        b.time_offsets.push_back(offset);
      }
    }
    OCI_TRY_ASSIGN(spec.cgroups_path,
                   (optional_field<std::string>(l, "cgroupsPath", "linux.cgroupsPath")));
    if (l.contains("resources")) {
      KAPSEL_TRY(parse_resources(l.at("resources"), c.limits), "linux");
      auto rules = parse_device_rules(l.at("resources"));
      if (!rules) return tl::unexpected(rules.error());
      b.device_rules = std::move(*rules);
    }
    if (l.contains("devices")) {
      if (!l.at("devices").is_array()) return invalid("linux.devices", "must be an array");
      for (const auto& d : l.at("devices")) {
        store::BundleDevice dev;
        std::string type;
        try {
          dev.path = d.at("path").get<std::string>();
          type = d.at("type").get<std::string>();
          dev.major = d.value("major", std::int64_t{0});
          dev.minor = d.value("minor", std::int64_t{0});
          dev.mode = d.value("fileMode", 0666u);
          dev.uid = d.value("uid", 0u);
          dev.gid = d.value("gid", 0u);
        } catch (const json::exception&) {
          return invalid("linux.devices", "each entry needs path and type");
        }
        if (type != "c" && type != "b" && type != "u" && type != "p")
          return invalid("linux.devices", dev.path + ": type '" + type + "' is not c, b, u or p");
        dev.type = type == "u" ? 'c' : type[0];
        b.devices.push_back(std::move(dev));
      }
    }
    OCI_TRY_ASSIGN(b.sysctl, (optional_field<std::map<std::string, std::string>>(l, "sysctl",
                                                                                 "linux.sysctl")));
    OCI_TRY_ASSIGN(b.masked_paths, (optional_field<std::vector<std::string>>(l, "maskedPaths",
                                                                             "linux.maskedPaths")));
    OCI_TRY_ASSIGN(b.readonly_paths, (optional_field<std::vector<std::string>>(
                                         l, "readonlyPaths", "linux.readonlyPaths")));
    OCI_TRY_ASSIGN(b.rootfs_propagation, (optional_field<std::string>(l, "rootfsPropagation",
                                                                      "linux.rootfsPropagation")));
    static const std::vector<std::string> kPropagation = {"",       "private",    "rprivate",
                                                          "shared", "rshared",    "slave",
                                                          "rslave", "unbindable", "runbindable"};
    if (std::find(kPropagation.begin(), kPropagation.end(), b.rootfs_propagation) ==
        kPropagation.end())
      return invalid("linux.rootfsPropagation", "'" + b.rootfs_propagation + "' is unknown");
    // Fields whose MUST kapsel cannot meet on its hosts: an error, never a silent ignore.
    for (const char* field : {"intelRdt", "netDevices"}) {
      if (l.contains(field) && !l.at(field).is_null() && !l.at(field).empty())
        return invalid(std::string("linux.") + field, "is not supported by kapsel");
    }
    if (l.contains("personality")) {
      std::optional<std::string> domain;
      OCI_TRY_ASSIGN(domain, (optional_field<std::string>(l.at("personality"), "domain",
                                                          "linux.personality.domain")));
      if (domain && *domain != "LINUX" && *domain != "LINUX32")
        return invalid("linux.personality.domain", "must be LINUX or LINUX32");
      if (domain) b.personality = *domain;
    }
    if (l.contains("seccomp") && !l.at("seccomp").is_null())
      spec.seccomp_json = l.at("seccomp").dump();
  }
  for (const auto& m : b.masked_paths) {
    if (m.empty() || m.front() != '/') return invalid("linux.maskedPaths", m + " is not absolute");
  }
  for (const auto& m : b.readonly_paths) {
    if (m.empty() || m.front() != '/')
      return invalid("linux.readonlyPaths", m + " is not absolute");
  }
  if (!c.hostname.empty() && !b.has_namespace("uts"))
    return invalid("hostname", "needs a uts namespace of the container's own");
  c.bundle = std::move(b);
  return spec;
}

Result<std::pair<std::string, std::string>> cgroup_location(const std::string& cgroups_path,
                                                            const std::string& id) {
  if (cgroups_path.empty()) return std::pair<std::string, std::string>{"kapsel-runc", id};
  if (cgroups_path.find(':') != std::string::npos)
    return fail(ErrorKind::usage, "linux.cgroupsPath " + cgroups_path +
                                      ": systemd cgroup paths are not supported (kapsel manages "
                                      "cgroupfs directly; use the cgroupfs cgroup manager)");
  std::string path = cgroups_path;
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  while (!path.empty() && path.back() == '/') path.pop_back();
  auto slash = path.rfind('/');
  std::string last = slash == std::string::npos ? path : path.substr(slash + 1);
  if (last == id) {
    std::string parent = slash == std::string::npos ? std::string() : path.substr(0, slash);
    return std::pair<std::string, std::string>{parent.empty() ? "kapsel-runc" : parent, id};
  }
  return std::pair<std::string, std::string>{path.empty() ? "kapsel-runc" : path, id};
}

std::string default_spec(bool rootless) {
  const std::vector<std::string> caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  json spec = {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", true},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"sh"}},
        {"env",
         {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}},
        {"cwd", "/"},
        {"capabilities",
         {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"ambient", caps}}},
        {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
        {"noNewPrivileges", true}}},
      {"root", {{"path", "rootfs"}, {"readonly", true}}},
      {"hostname", "kapsel"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
        {{"destination", "/dev/pts"},
         {"type", "devpts"},
         {"source", "devpts"},
         {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}},
        {{"destination", "/dev/shm"},
         {"type", "tmpfs"},
         {"source", "shm"},
         {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
        {{"destination", "/dev/mqueue"},
         {"type", "mqueue"},
         {"source", "mqueue"},
         {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/sys"},
         {"type", "sysfs"},
         {"source", "sysfs"},
         {"options", {"nosuid", "noexec", "nodev", "ro"}}},
        {{"destination", "/sys/fs/cgroup"},
         {"type", "cgroup"},
         {"source", "cgroup"},
         {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
      {"linux",
       {{"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"namespaces",
         {{{"type", "pid"}},
          {{"type", "network"}},
          {{"type", "ipc"}},
          {{"type", "uts"}},
          {{"type", "mount"}},
          {{"type", "cgroup"}}}},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/proc/scsi"}},
        {"readonlyPaths",
         {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}}};
  if (rootless) {
    spec["linux"]["namespaces"].push_back({{"type", "user"}});
    spec["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 1000}, {"size", 1}}};
    spec["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 1000}, {"size", 1}}};
  }
  return spec.dump(1, '\t') + "\n";
}

}  // namespace kapsel::oci
