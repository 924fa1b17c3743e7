// config.json → the plain structs (oci::parse_bundle_config), and the small parsers of the OCI
// surface: signals, cgroups paths, mount options. No root needed.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mount.h>
#include <tuple>

#include <nlohmann/json.hpp>

#include "driver/container/rootfs.hpp"
#include "oci/bundle_spec.hpp"
#include "oci/runtime.hpp"

namespace kapsel::oci {
namespace {

using nlohmann::json;

json minimal() {
  return json{{"ociVersion", "1.0.2"},
              {"root", {{"path", "rootfs"}}},
              {"process", {{"args", {"sh"}}, {"cwd", "/"}}}};
}

Result<ContainerSpec> parse(const json& j) {
  return parse_bundle_config(j.dump(), "/b");
}

TEST(OciBundleSpec, TheDefaultSpecParses) {
  auto spec = parse_bundle_config(default_spec(false), "/b");
  ASSERT_TRUE(spec) << spec.error().message;
  const auto& b = *spec->config.bundle;
  EXPECT_EQ(b.rootfs, "/b/rootfs");
  EXPECT_TRUE(b.readonly);
  EXPECT_TRUE(b.process.terminal);
  EXPECT_EQ(b.mounts.size(), 7u);
  EXPECT_TRUE(b.has_namespace("pid"));
  EXPECT_TRUE(b.has_namespace("network"));
  EXPECT_EQ(spec->config.hostname, "kapsel");
  ASSERT_TRUE(spec->config.security.capabilities);
  EXPECT_EQ(spec->config.security.capabilities->size(), 3u);
  EXPECT_EQ(spec->config.security.seccomp, "unconfined");
}

TEST(OciBundleSpec, ProcessFields) {
  json j = minimal();
  j["process"]["env"] = {"A=1"};
  j["process"]["user"] = {{"uid", 5}, {"gid", 6}, {"additionalGids", {7}}, {"umask", 18}};
  j["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 10}, {"hard", 20}}};
  j["process"]["oomScoreAdj"] = -5;
  j["process"]["noNewPrivileges"] = true;
  auto spec = parse(j);
  ASSERT_TRUE(spec) << spec.error().message;
  const auto& p = spec->config.bundle->process;
  EXPECT_EQ(p.env, std::vector<std::string>{"A=1"});
  EXPECT_EQ(p.uid, 5u);
  EXPECT_EQ(p.gid, 6u);
  EXPECT_EQ(p.additional_gids, std::vector<std::uint32_t>{7});
  EXPECT_EQ(p.umask, 18u);
  ASSERT_EQ(p.rlimits.size(), 1u);
  EXPECT_EQ(p.rlimits[0].hard, 20u);
  EXPECT_EQ(p.oom_score_adj, -5);
  EXPECT_TRUE(p.no_new_privileges);
}

TEST(OciBundleSpec, SchedulingFields) {
  json j = minimal();
  j["process"]["ioPriority"] = {{"class", "IOPRIO_CLASS_IDLE"}, {"priority", 7}};
  j["process"]["scheduler"] = {{"policy", "SCHED_DEADLINE"},
                               {"flags", {"SCHED_FLAG_RESET_ON_FORK"}},
                               {"runtime", 1000},
                               {"deadline", 2000},
                               {"period", 3000}};
  j["process"]["execCPUAffinity"] = {{"final", "0-1,3"}};
  auto spec = parse(j);
  ASSERT_TRUE(spec) << spec.error().message;
  const auto& p = spec->config.bundle->process;
  EXPECT_EQ(p.io_class, 3);
  EXPECT_EQ(p.io_level, 7);
  EXPECT_EQ(p.sched_policy, 6);
  EXPECT_EQ(p.sched_flags, 1u);
  EXPECT_EQ(p.sched_period, 3000u);
  EXPECT_EQ(p.cpu_affinity, "0-1,3");
  // Each bad value is one error naming its field.
  for (auto [key, value, field] : std::vector<std::tuple<const char*, json, const char*>>{
           {"ioPriority", {{"class", "IOPRIO_CLASS_BE"}, {"priority", 8}}, "process.ioPriority"},
           {"ioPriority", {{"class", "best"}}, "process.ioPriority.class"},
           {"scheduler", {{"policy", "SCHED_OTHER"}, {"nice", 30}}, "process.scheduler.nice"},
           {"scheduler", {{"policy", "SCHED_RR"}, {"flags", {"X"}}}, "process.scheduler.flags"},
           {"execCPUAffinity", {{"final", "all"}}, "process.execCPUAffinity.final"}}) {
    json bad = minimal();
    bad["process"][key] = value;
    auto r = parse(bad);
    ASSERT_FALSE(r) << key;
    EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
  }
}

TEST(OciBundleSpec, ResourcesBecomeLimits) {
  json j = minimal();
  j["linux"]["resources"] = {{"memory", {{"limit", 1048576}, {"swap", -1}}},
                             {"cpu", {{"quota", 20000}, {"period", 100000}, {"shares", 512}}},
                             {"pids", {{"limit", 0}}}};
  auto spec = parse(j);
  ASSERT_TRUE(spec) << spec.error().message;
  const auto& l = spec->config.limits;
  EXPECT_EQ(l.memory, 1048576u);
  EXPECT_EQ(l.memory_swap, cgroup::kUnlimited);
  EXPECT_DOUBLE_EQ(*l.cpus, 0.2);
  EXPECT_EQ(l.cpu_shares, 512u);
  EXPECT_EQ(l.pids, cgroup::kUnlimited);
}

TEST(OciBundleSpec, HooksAndAnnotations) {
  json j = minimal();
  j["hooks"] = {{"poststop", {{{"path", "/bin/true"}, {"timeout", 3}}}}};
  j["annotations"] = {{"a", "b"}};
  auto spec = parse(j);
  ASSERT_TRUE(spec) << spec.error().message;
  ASSERT_EQ(spec->hooks.poststop.size(), 1u);
  EXPECT_EQ(spec->hooks.poststop[0].args, std::vector<std::string>{"/bin/true"});
  EXPECT_EQ(spec->hooks.poststop[0].timeout, 3);
  EXPECT_EQ(spec->annotations.at("a"), "b");
}

TEST(OciBundleSpec, UnknownFieldsAreIgnored) {
  json j = minimal();
  j["vm"] = {{"hypervisor", {{"path", "/x"}}}};
  j["process"]["somethingNew"] = 1;
  EXPECT_TRUE(parse(j));
}

TEST(OciBundleSpec, InvalidValuesNameTheField) {
  auto expect_error = [](json j, const std::string& field) {
    auto spec = parse(j);
    ASSERT_FALSE(spec) << field;
    EXPECT_EQ(spec.error().kind, ErrorKind::usage);
    EXPECT_NE(spec.error().message.find(field), std::string::npos) << spec.error().message;
  };
  json j = minimal();
  j["ociVersion"] = "2.0.0";
  expect_error(j, "ociVersion");
  j = minimal();
  j["process"]["args"] = json::array();
  expect_error(j, "process.args");
  j = minimal();
  j["process"]["args"] = "sh";
  expect_error(j, "process.args");
  j = minimal();
  j["process"]["capabilities"] = {{"bounding", {"CAP_NOPE"}}};
  expect_error(j, "process.capabilities");
  j = minimal();
  j["process"]["oomScoreAdj"] = 5000;
  expect_error(j, "process.oomScoreAdj");
  j = minimal();
  j["mounts"] = {{{"destination", "relative"}}};
  expect_error(j, "mounts.destination");
  j = minimal();
  j["linux"]["namespaces"] = {{{"type", "pid"}}, {{"type", "pid"}}};
  expect_error(j, "linux.namespaces");
  j = minimal();
  j["linux"]["namespaces"] = {{{"type", "bogus"}}};
  expect_error(j, "linux.namespaces");
  j = minimal();
  j["hostname"] = "h";
  expect_error(j, "hostname");
  j = minimal();
  j["hooks"] = {{"prestart", {{{"path", "/x"}, {"timeout", 0}}}}};
  expect_error(j, "hooks.prestart.timeout");
  j = minimal();
  j["linux"]["rootfsPropagation"] = "sideways";
  expect_error(j, "linux.rootfsPropagation");
  j = minimal();
  j["linux"]["devices"] = {{{"path", "/dev/x"}, {"type", "z"}}};
  expect_error(j, "linux.devices");
  EXPECT_FALSE(parse_bundle_config("not json", "/b"));
}

TEST(OciBundleSpec, CgroupLocation) {
  auto at = cgroup_location("/default/abc", "abc");
  ASSERT_TRUE(at);
  EXPECT_EQ(at->first, "default");
  EXPECT_EQ(at->second, "abc");
  at = cgroup_location("", "abc");
  EXPECT_EQ(at->first, "kapsel-runc");
  at = cgroup_location("/libpod_parent/conmon", "abc");
  EXPECT_EQ(at->first, "libpod_parent/conmon");
  EXPECT_FALSE(cgroup_location("system.slice:libpod:abc", "abc"));
}

TEST(OciBundleSpec, Signals) {
  EXPECT_EQ(*parse_signal("KILL"), SIGKILL);
  EXPECT_EQ(*parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(*parse_signal("sigusr1"), SIGUSR1);
  EXPECT_EQ(*parse_signal("9"), 9);
  EXPECT_FALSE(parse_signal("NOPE"));
  EXPECT_FALSE(parse_signal("0"));
}

TEST(OciBundleSpec, ProcessFile) {
  auto p = parse_process(R"({"args":["ls"],"cwd":"/tmp","env":["A=1"],"terminal":true})");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->process.args, std::vector<std::string>{"ls"});
  EXPECT_EQ(p->process.cwd, "/tmp");
  EXPECT_TRUE(p->process.terminal);
  EXPECT_FALSE(p->capabilities);                      // the container's
  EXPECT_FALSE(parse_process(R"({"args":["ls"]})"));  // cwd is required
  auto caps = parse_process(
      R"({"args":["ls"],"cwd":"/","noNewPrivileges":true,"capabilities":{"bounding":["CAP_KILL"]},
          "rlimits":[{"type":"RLIMIT_NOFILE","soft":100,"hard":200}]})");
  ASSERT_TRUE(caps) << caps.error().message;
  ASSERT_TRUE(caps->capabilities);
  EXPECT_EQ(*caps->capabilities, std::vector<std::string>{"CAP_KILL"});
  EXPECT_TRUE(caps->process.no_new_privileges);
  ASSERT_EQ(caps->process.rlimits.size(), 1u);
  EXPECT_EQ(caps->process.rlimits[0].hard, 200u);
}

TEST(OciBundleSpec, UserAndTimeNamespaces) {
  json j = minimal();
  j["linux"]["namespaces"] = {{{"type", "user"}}, {{"type", "time"}}};
  j["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  j["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 200000}, {"size", 10}}};
  j["linux"]["timeOffsets"] = {{"boottime", {{"secs", 86400}, {"nanosecs", 5}}}};
  auto spec = parse(j);
  ASSERT_TRUE(spec) << spec.error().message;
  const auto& b = *spec->config.bundle;
  ASSERT_EQ(b.uid_mappings.size(), 1u);
  EXPECT_EQ(b.uid_mappings[0].host_id, 100000u);
  EXPECT_EQ(b.uid_mappings[0].size, 65536u);
  ASSERT_EQ(b.gid_mappings.size(), 1u);
  EXPECT_EQ(b.gid_mappings[0].host_id, 200000u);
  ASSERT_EQ(b.time_offsets.size(), 1u);
  EXPECT_EQ(b.time_offsets[0].clock, "boottime");
  EXPECT_EQ(b.time_offsets[0].secs, 86400);
  EXPECT_EQ(b.time_offsets[0].nanosecs, 5u);
  // Stored and read back as the driver gets it.
  nlohmann::json stored = b;
  auto back = stored.get<store::BundleConfig>();
  EXPECT_EQ(back.uid_mappings[0].host_id, 100000u);
  EXPECT_EQ(back.time_offsets[0].secs, 86400);

  auto error_of = [](const json& k) {
    auto r = parse(k);
    return r ? std::string() : r.error().message;
  };
  json no_maps = j;
  no_maps["linux"].erase("uidMappings");
  EXPECT_NE(error_of(no_maps).find("linux.uidMappings"), std::string::npos);
  json bad_clock = j;
  bad_clock["linux"]["timeOffsets"] = {{"realtime", {{"secs", 1}}}};
  EXPECT_NE(error_of(bad_clock).find("linux.timeOffsets.realtime"), std::string::npos);
  json no_time = j;
  no_time["linux"]["namespaces"] = {{{"type", "user"}}};
  EXPECT_NE(error_of(no_time).find("linux.timeOffsets"), std::string::npos);
}

TEST(OciBundleSpec, ConsoleSizeAndDeviceRules) {
  json j = minimal();
  j["process"]["consoleSize"] = {{"height", 33}, {"width", 101}};
  j["linux"]["resources"]["devices"] = {
      {{"allow", false}, {"access", "rwm"}},
      {{"allow", false}, {"type", "c"}, {"major", 1}, {"minor", 3}, {"access", "rwm"}}};
  auto spec = parse(j);
  ASSERT_TRUE(spec) << spec.error().message;
  const auto& b = *spec->config.bundle;
  EXPECT_EQ(b.process.console_height, 33u);
  EXPECT_EQ(b.process.console_width, 101u);
  ASSERT_EQ(b.device_rules.size(), 2u);
  EXPECT_EQ(b.device_rules[0].type, 'a');
  EXPECT_EQ(b.device_rules[0].major, -1);
  EXPECT_EQ(b.device_rules[1].type, 'c');
  EXPECT_EQ(b.device_rules[1].minor, 3);
  EXPECT_FALSE(b.device_rules[1].allow);
  json bad = j;
  bad["linux"]["resources"]["devices"] = {{{"allow", true}, {"access", "rwx"}}};
  auto r = parse(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("linux.resources.devices"), std::string::npos);
  EXPECT_NE(r.error().message.find("access"), std::string::npos) << r.error().message;
}

TEST(OciMountOptions, FlagsPropagationAndData) {
  auto o = driver::container::parse_mount_options(
      {"rbind", "ro", "nosuid", "rprivate", "size=1k", "mode=755", "rw", "noexec"});
  EXPECT_TRUE(o.bind);
  EXPECT_TRUE(o.recursive);
  EXPECT_EQ(o.flags & MS_RDONLY, 0u);  // rw after ro
  EXPECT_NE(o.flags & MS_NOSUID, 0u);
  EXPECT_NE(o.flags & MS_NOEXEC, 0u);
  EXPECT_EQ(o.propagation, static_cast<unsigned long>(MS_PRIVATE | MS_REC));
  EXPECT_EQ(o.data, "size=1k,mode=755");
}

}  // namespace
}  // namespace kapsel::oci
