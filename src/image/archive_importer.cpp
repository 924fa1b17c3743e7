// Loads kapsel-archive.so on first use and forwards to it (see archive_importer.hpp).
#include "image/archive_importer.hpp"

#include "common/plugin.hpp"

namespace kapsel::image {
namespace {

Result<const ArchivePluginApi*> load() {
  auto api = plugin::load("kapsel-archive.so", "kapsel_archive_plugin", kArchivePluginVersion,
                          "importing dir: and tar: templates");
  if (!api) return tl::unexpected(api.error());
  return static_cast<const ArchivePluginApi*>(*api);
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
