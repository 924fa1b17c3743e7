// Loads kapsel-archive.so on first use and forwards to it (see archive_importer.hpp).
#include "image/archive_importer.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "common/process.hpp"

namespace kapsel::image {
namespace {

constexpr const char* kPluginName = "kapsel-archive.so";

std::string own_directory() {
  std::string path = proc::self_exe();
  if (path.empty()) return {};
  return path.substr(0, path.rfind('/'));
}

// Where the plugin may be, in order: an explicit override, beside the binary (a build tree or a
// relocated install), then the configured install and build directories.
std::vector<std::string> search_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("KAPSEL_PLUGIN_DIR"); env && *env) dirs.emplace_back(env);
  if (auto own = own_directory(); !own.empty()) {
    dirs.push_back(own);
    dirs.push_back(own + "/../lib/kapsel");
  }
  dirs.emplace_back(KAPSEL_PLUGIN_INSTALL_DIR);
  dirs.emplace_back(KAPSEL_PLUGIN_BUILD_DIR);
  return dirs;
}

Result<const ArchivePluginApi*> load() {
  static std::once_flag once;
  static Result<const ArchivePluginApi*> loaded = nullptr;
  std::call_once(once, [] {
    std::string tried;
    for (const auto& dir : search_path()) {
      std::string path = dir + "/" + kPluginName;
      if (::access(path.c_str(), R_OK) != 0) {
        tried += (tried.empty() ? "" : ", ") + dir;
        continue;
      }
      // The handle is never closed: the plugin stays for the life of the process.
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        loaded = fail(ErrorKind::failure, std::string("loading ") + path + ": " + ::dlerror());
        return;
      }
      using Entry = const ArchivePluginApi* (*)();
      auto entry = reinterpret_cast<Entry>(::dlsym(handle, "kapsel_archive_plugin"));
      const ArchivePluginApi* api = entry ? entry() : nullptr;
      if (!api || api->version != kArchivePluginVersion) {
        loaded = fail(ErrorKind::failure, path + " is not the plugin of this kapsel build");
        return;
      }
      loaded = api;
      return;
    }
    loaded = fail(ErrorKind::not_found, std::string("importing dir: and tar: templates needs ") +
                                            kPluginName + ", not found in " + tried +
                                            " (reinstall kapsel, or set KAPSEL_PLUGIN_DIR)");
  });
  return loaded;
}

}  // namespace

Status copy_directory(const std::string& source, const std::string& dest,
                      const std::string& exclude, const ProgressFn& progress) {
  auto api = load();
  if (!api) return tl::unexpected(api.error());
  return (*api)->copy_directory(source, dest, exclude, progress);
}

Status extract_tarball(const std::string& tarball, const std::string& dest,
                       const ProgressFn& progress) {
  auto api = load();
  if (!api) return tl::unexpected(api.error());
  return (*api)->extract_tarball(tarball, dest, progress);
}

}  // namespace kapsel::image
