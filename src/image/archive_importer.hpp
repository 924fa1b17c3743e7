// Imports a template tree from a host directory or a tarball with libarchive, preserving
// ownership (numerically), modes, symlinks, hard links, device nodes, fifos, timestamps, ACLs
// and extended attributes where the destination file system allows.
#pragma once

#include <string>

#include "common/error.hpp"
#include "image/template.hpp"

namespace kapsel::image {

// Copies the tree at `source` (an absolute, canonical directory path) to `dest` (an existing,
// empty directory whose path is canonical, i.e. has no symlink in it: libarchive's symlink
// check applies to every component). Symlinks are copied, never followed; other mounts below
// `source` appear as empty directories; sockets are skipped. `exclude` names a directory below
// `source` that is not copied (the template store itself, so that importing a parent of the
// store does not copy the copy), or is empty.
[[nodiscard]] Status copy_directory(const std::string& source, const std::string& dest,
                                    const std::string& exclude, const ProgressFn& progress);

// Extracts the tar archive at `tarball` (any compression libarchive detects) into `dest`
// (as for copy_directory). An entry whose name or hard-link target is absolute or contains
// "..", or that would be written through a symlink, fails the whole import: a template must
// not be half of what its archive says, and such an archive is broken or hostile.
[[nodiscard]] Status extract_tarball(const std::string& tarball, const std::string& dest,
                                     const ProgressFn& progress);

// The two functions above live in the plugin kapsel-archive.so, which links libarchive. Loading
// libarchive and what it pulls in (libxml2, ICU, five compressors) costs every kapsel command
// about 9 ms at start-up, while only template imports need it; so the plugin is dlopen'ed on
// first use, as systemd does with its optional libraries.
constexpr int kArchivePluginVersion = 1;
struct ArchivePluginApi {
  int version;
  Status (*copy_directory)(const std::string&, const std::string&, const std::string&,
                           const ProgressFn&);
  Status (*extract_tarball)(const std::string&, const std::string&, const ProgressFn&);
};

}  // namespace kapsel::image
