#include "driver/driver.hpp"

#include <unistd.h>

#include "cgroup/manager.hpp"
#include "cgroup/no_cgroups.hpp"
#include "driver/container/container_driver.hpp"
#include "driver/uml/uml_driver.hpp"

namespace kapsel::driver {

Context::Context(store::Store& store, std::string cgroup_parent)
    : store_(store), cgroup_parent_(std::move(cgroup_parent)) {}

Context::~Context() = default;

Result<cgroup::Manager*> Context::cgroups(const std::string& parent) {
  const std::string& p = parent.empty() ? cgroup_parent_ : parent;
  auto& slot = cgroups_[p];
  if (!slot) {
    cgroup::Options options;
    options.parent = p;
    // Rootless: no cgroups to make VEs' in (docs/security.md).
    auto m = ::geteuid() == 0
                 ? cgroup::probe(options)
                 : Result<std::unique_ptr<cgroup::Manager>>(std::make_unique<cgroup::NoCgroups>());
    if (!m) return tl::unexpected(m.error().context("probing the host's cgroups"));
    slot = std::move(*m);
  }
  return slot.get();
}

image::TemplateStore Context::templates() const {
  return image::TemplateStore(store_.templates_dir());
}

Result<image::Template> Context::load_template(const std::string& id) {
  if (auto it = templates_cache_.find(id); it != templates_cache_.end()) return it->second;
  auto t = templates().load(id);
  if (t) remember_template(*t);
  return t;
}

Result<std::unique_ptr<Driver>> make_driver(const std::string& kind, Context& ctx) {
  if (kind == "container") return std::make_unique<container::ContainerDriver>(ctx);
  if (kind == "uml") return std::make_unique<uml::UmlDriver>(ctx);
  return fail(ErrorKind::usage,
              "unknown kind '" + kind + "': this build supports container and uml");
}

Result<int> Driver::start_and_exec(const store::VeConfig& config, const store::VeLock& lock,
                                   const ExecRequest& request,
                                   const std::function<void()>& started) {
  auto state = start(config, lock);
  if (!state) return tl::unexpected(state.error());
  started();
  return exec(config, *state, request);
}

}  // namespace kapsel::driver
