// An OCI bundle's config.json (runtime-spec 1.x, Linux) turned into the plain structs the
// container driver runs (store::VeConfig with its BundleConfig), plus what only the OCI surface
// uses: hooks, annotations and the cgroups path. Unknown fields are ignored, as the spec says;
// an invalid value is a usage error naming the field.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "store/ve_config.hpp"

namespace kapsel::oci {

// config.md "POSIX-platform Hooks".
struct Hook {
  std::string path;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::optional<int> timeout;  // seconds, > 0
};

struct Hooks {
  std::vector<Hook> prestart;  // deprecated by the spec, still run (after createRuntime)
  std::vector<Hook> create_runtime;
  std::vector<Hook> create_container;
  std::vector<Hook> start_container;
  std::vector<Hook> poststart;
  std::vector<Hook> poststop;
};

struct ContainerSpec {
  store::VeConfig config;  // the container as the driver runs it (config.bundle is set)
  std::string oci_version;
  std::map<std::string, std::string> annotations;
  Hooks hooks;
  std::string cgroups_path;  // linux.cgroupsPath as given
  // linux.seccomp, as JSON in the spec's own format (security/oci_seccomp reads it), to be
  // written to a file that config.security.seccomp then names.
  std::optional<std::string> seccomp_json;
};

// `bundle_dir` is absolute; a relative root.path is taken from it. Names (capabilities, rlimits,
// namespaces) and shapes are checked here; the driver checks what only the kernel can (a
// mount's options, a namespace's path).
[[nodiscard]] Result<ContainerSpec> parse_bundle_config(std::string_view text,
                                                        const std::string& bundle_dir);

// The cgroup parent and name for linux.cgroupsPath: "/default/ID" → ("default", ID); a path
// whose last part is not the id is the parent of a cgroup named after the id; empty:
// ("kapsel-runc", ID). A systemd path ("slice:prefix:name") is a usage error.
[[nodiscard]] Result<std::pair<std::string, std::string>> cgroup_location(
    const std::string& cgroups_path, const std::string& id);

// runc's default config.json (`spec`), with `rootless` its rootless variant.
[[nodiscard]] std::string default_spec(bool rootless);

}  // namespace kapsel::oci
