#include "common/plugin.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "common/process.hpp"

namespace kapsel::plugin {
namespace {

std::string own_directory() {
  std::string path = proc::self_exe();
  if (path.empty()) return {};
  return path.substr(0, path.rfind('/'));
}

// Where a plugin may be, in order: an explicit override, beside the binary (a build tree or a
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

// The version is the first member of every plugin's API table.
struct ApiHeader {
  int version;
};

Result<const void*> load_uncached(const std::string& file, const char* entry_name, int version,
                                  const std::string& needed_for) {
  std::string tried;
  for (const auto& dir : search_path()) {
    std::string path = dir + "/" + file;
    if (::access(path.c_str(), R_OK) != 0) {
      tried += (tried.empty() ? "" : ", ") + dir;
      continue;
    }
    // The handle is never closed: the plugin stays for the life of the process.
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) return fail(ErrorKind::failure, "loading " + path + ": " + ::dlerror());
    using Entry = const void* (*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(handle, entry_name));
    const void* api = entry ? entry() : nullptr;
    if (!api || static_cast<const ApiHeader*>(api)->version != version)
      return fail(ErrorKind::failure, path + " is not the plugin of this kapsel build");
    return api;
  }
  return fail(ErrorKind::not_found, needed_for + " needs " + file + ", not found in " + tried +
                                        " (reinstall kapsel, or set KAPSEL_PLUGIN_DIR)");
}

}  // namespace

Result<const void*> load(const std::string& file, const char* entry, int version,
                         const std::string& needed_for) {
  static std::mutex mutex;
  static std::map<std::string, Result<const void*>> loaded;
  std::lock_guard<std::mutex> hold(mutex);
  auto it = loaded.find(file);
  if (it == loaded.end())
    it = loaded.emplace(file, load_uncached(file, entry, version, needed_for)).first;
  return it->second;
}

}  // namespace kapsel::plugin
