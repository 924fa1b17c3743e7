// Templates: the read-only root file systems that VEs are made from. A template is stored once
// under <root>/templates/<id>/ and shared by every VE made from it; each VE writes only to its
// own private area, layered over the template with overlayfs.
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace kapsel::image {

// A template as named on the command line: "busybox", "dir:PATH" or "tar:PATH".
struct TemplateSpec {
  enum class Type { builtin, dir, tar };
  Type type = Type::builtin;
  std::string source;  // "busybox" for builtin, otherwise the path as given

  [[nodiscard]] std::string to_string() const;  // back to the command-line form
};

// Parses a template spec; an unknown builtin or an empty path is a usage error that names the
// accepted forms.
[[nodiscard]] Result<TemplateSpec> parse_spec(std::string_view text);

struct Template {
  std::string id;      // directory name under <root>/templates ("busybox", "dir-<hash>", ...)
  std::string spec;    // the spec it was made from, in command-line form
  std::string rootfs;  // absolute path of the read-only tree (overlayfs lowerdir)
  std::string init = "/sbin/init";  // program run as the VE's PID 1
  int halt_signal = SIGTERM;        // asks that init to shut down cleanly
  std::uint64_t size_bytes = 0;     // disk usage of rootfs
  std::int64_t created = 0;         // unix time
};

// Reports progress of long operations (building or importing a template): a phase name and
// done/total units (total 0 when unknown).
using ProgressFn =
    std::function<void(std::string_view phase, std::uint64_t done, std::uint64_t total)>;

class TemplateStore {
 public:
  // `dir` is <root>/templates; created on first use.
  explicit TemplateStore(std::string dir);

  // Returns the template for `spec`, building (busybox) or importing (dir, tar) it into the
  // store the first time. Concurrent callers serialise on a lock; a failed build leaves nothing
  // behind.
  [[nodiscard]] Result<Template> ensure(const TemplateSpec& spec, const ProgressFn& progress = {});

  // A template already in the store, by id.
  [[nodiscard]] Result<Template> load(const std::string& id) const;

  // Every template in the store, sorted by id.
  [[nodiscard]] Result<std::vector<Template>> list() const;

  // Deletes a template from the store (the caller checks that no VE uses it). An unknown id is
  // a not_found error.
  [[nodiscard]] Status remove(const std::string& id);

  // The id that `spec` has in the store, without building anything ("busybox", "dir-<hash>",
  // "tar-<hash>"). Looks at the source (a missing one is a not_found error naming its path),
  // since a dir id depends on its canonical path and a tar id also on the file's size and
  // mtime, so that a changed tarball makes a new template.
  [[nodiscard]] Result<std::string> id_for(const TemplateSpec& spec) const;

  // True for a string that can be a template id: what load() and remove() accept.
  [[nodiscard]] static bool valid_id(std::string_view id);

  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace kapsel::image
