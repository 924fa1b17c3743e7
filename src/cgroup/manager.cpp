#include "cgroup/manager.hpp"

#include "cgroup/cgroupfs.hpp"
#include "cgroup/hierarchy.hpp"
#include "cgroup/hybrid_manager.hpp"
#include "cgroup/v1_manager.hpp"
#include "cgroup/v2_manager.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup {

std::string_view to_string(Layout layout) {
  switch (layout) {
    case Layout::unified:
      return "unified";
    case Layout::legacy:
      return "legacy";
    case Layout::hybrid:
      return "hybrid";
    case Layout::none:
      return "none";
  }
  return "unknown";
}

// Runs on every command, so it only reads mountinfo once and touches no cgroup file: whatever
// the backends need beyond the mount points they read when they act.
Result<std::unique_ptr<Manager>> probe(const Options& options) {
  KAPSEL_TRY(check_parent(options.parent), "probing cgroups");
  auto text = fs::read_file(options.mountinfo);
  if (!text) return tl::unexpected(text.error().context("probing cgroups"));
  auto found = parse_mountinfo(*text, options.root);
  if (!found) return tl::unexpected(found.error().context("probing cgroups: " + options.mountinfo));

  std::string root = options.root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::vector<Hierarchy> v1;
  const Hierarchy* v2 = nullptr;
  for (const auto& h : *found) {
    if (!h.v2) {
      v1.push_back(h);
    } else if (!v2 || h.mount == root) {
      v2 = &h;  // a cgroup2 mount at the root itself wins over one below it
    }
  }

  if (v1.empty() && !v2)
    return fail(ErrorKind::failure,
                "probing cgroups: no cgroup or cgroup2 hierarchy is mounted at "
                "or below " +
                    options.root + " (according to " + options.mountinfo + ")");
  std::unique_ptr<Manager> manager;
  if (v1.empty()) {
    // Normally cgroup2 sits at the root itself; one mounted below it with no v1 controllers
    // beside it still holds every controller, so it is managed the same way.
    manager = std::make_unique<V2Manager>(v2->mount, options.parent, V2Manager::Controllers::enable,
                                          v2->root);
  } else if (!v2) {
    manager = std::make_unique<V1Manager>(std::move(v1), options.parent);
  } else {
    manager = std::make_unique<HybridManager>(std::move(v1), v2->mount, options.parent);
  }
  return manager;
}

}  // namespace kapsel::cgroup
