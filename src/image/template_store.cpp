// The template store. Layout under its directory:
//   <id>/rootfs/          the tree, an overlayfs lowerdir shared by every VE made from it
//   <id>/template.json    metadata (id, spec, init, halt_signal, size_bytes, created)
//   .lock                 flock'ed by every build and removal
//   .tmp-<id>-<pid>/      a build in progress, or the leftovers of a killed one
// A template is built in a .tmp-* directory and renamed into place only when complete, so a
// template directory with metadata is always whole and reading it needs no lock.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"
#include "image/archive_importer.hpp"
#include "image/busybox_builder.hpp"
#include "image/rootfs_probe.hpp"
#include "image/template.hpp"

namespace kapsel::image {

namespace {

using json = nlohmann::json;

constexpr std::string_view kTmpPrefix = ".tmp-";
constexpr const char* kMetadataFile = "template.json";
constexpr const char* kLockFile = ".lock";

// FNV-1a, 64 bit: stable across runs, builds and compilers (unlike std::hash), as an id that is
// stored on disk must be.
std::uint64_t fnv1a64(std::string_view data) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hash_id(std::string_view prefix, std::string_view key) {
  return fmt::format("{}-{:016x}", prefix, fnv1a64(key));
}

Result<std::string> canonical(const std::string& path, const std::string& what) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), std::free);
  if (!real) return errno_fail(what + " " + path);
  return std::string(real.get());
}

// What ensure() needs to know about a spec's source before it can look in the store.
struct Source {
  TemplateSpec::Type type = TemplateSpec::Type::builtin;
  std::string id;
  std::string path;  // canonical path of a dir or tar source
  std::string spec;  // command-line form, with the canonical path
};

Result<Source> resolve_source(const TemplateSpec& spec) {
  using Type = TemplateSpec::Type;
  if (spec.type == Type::builtin) {
    if (spec.source != "busybox")
      return fail(ErrorKind::usage,
                  "unknown template '" + spec.source + "': use busybox, dir:PATH or tar:PATH");
    return Source{Type::builtin, "busybox", "", "busybox"};
  }
  if (spec.source.empty())
    return fail(ErrorKind::usage,
                "template '" + spec.to_string() + "' names no path: use dir:PATH or tar:PATH");
  auto real = canonical(spec.source, "template source");
  if (!real) return tl::unexpected<Error>(real.error());

  if (spec.type == Type::dir) {
    UniqueFd fd(::open(real->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd && errno == ENOTDIR)
      return fail(ErrorKind::usage, "template source " + spec.source + " is not a directory");
    if (!fd) return errno_fail("template source " + spec.source);
    // The id depends on the path only: a dir template is a snapshot of the directory taken at
    // its first use, and later changes to the directory do not reach it (remove the template
    // to take a new snapshot).
    return Source{Type::dir, hash_id("dir", *real), *real, "dir:" + *real};
  }

  UniqueFd fd(::open(real->c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_fail("template source " + spec.source);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_fail("template source " + spec.source);
  if (!S_ISREG(st.st_mode))
    return fail(ErrorKind::usage, "template source " + spec.source + " is not a regular file");
  // Size and mtime are part of the id, so a tarball replaced under the same name makes a new
  // template instead of silently reusing the old one.
  std::string key =
      fmt::format("{}\n{}\n{}.{:09}", *real, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  return Source{Type::tar, hash_id("tar", key), *real, "tar:" + *real};
}

std::string to_json(const Template& t) {
  json j = {{"id", t.id},
            {"spec", t.spec},
            {"init", t.init},
            {"halt_signal", t.halt_signal},
            {"size_bytes", t.size_bytes},
            {"created", t.created}};
  // A source path need not be UTF-8; JSON must be. "replace" never throws and touches only the
  // informational spec (the id is computed from the path's bytes).
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<Template> from_json(const std::string& text, const std::string& path) {
  // nlohmann reports malformed or mistyped input by exception; it stops here.
  try {
    json j = json::parse(text);
    Template t;
    t.id = j.at("id").get<std::string>();
    t.spec = j.at("spec").get<std::string>();
    t.init = j.at("init").get<std::string>();
    t.halt_signal = j.at("halt_signal").get<int>();
    t.size_bytes = j.at("size_bytes").get<std::uint64_t>();
    t.created = j.at("created").get<std::int64_t>();
    return t;
  } catch (const json::exception& e) {
    return fail(ErrorKind::failure, path + " is corrupt: " + e.what());
  }
}

// Names in directory `dir` other than "." and ".."; an empty list if it does not exist.
Result<std::vector<std::string>> list_names(const std::string& dir) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT) return std::vector<std::string>{};
    return errno_fail("listing " + dir);
  }
  std::vector<std::string> names;
  while (struct dirent* ent = ::readdir(d.get())) {
    std::string_view name = ent->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  return names;
}

// The store-wide lock, held by builds and removals for their whole duration; released when
// dropped (or when the process dies, so a killed build never wedges the store).
class StoreLock {
 public:
  static Result<StoreLock> acquire(const std::string& dir, const ProgressFn& progress) {
    std::string path = dir + "/" + kLockFile;
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return errno_fail("opening " + path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return errno_fail("locking " + path);
      if (progress) progress("waiting for another build", 0, 0);
      while (::flock(fd.get(), LOCK_EX) != 0) {
        if (errno != EINTR) return errno_fail("locking " + path);
      }
    }
    return StoreLock(std::move(fd));
  }

 private:
  explicit StoreLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// A build's temporary directory: removed with its contents when dropped unless committed, so a
// failed build leaves nothing behind. (A killed build leaves it for the next build to remove.)
class BuildDir {
 public:
  explicit BuildDir(std::string path) : path_(std::move(path)) {}
  BuildDir(const BuildDir&) = delete;
  BuildDir& operator=(const BuildDir&) = delete;
  ~BuildDir() {
    if (!path_.empty()) (void)fs::remove_tree(path_);
  }
  [[nodiscard]] const std::string& path() const { return path_; }
  void commit() { path_.clear(); }

 private:
  std::string path_;
};

// Removes the .tmp-* directories of builds that were killed. Only called with the store lock
// held, and every build holds it while its directory exists, so all of them are stale.
Status remove_stale_builds(const std::string& dir) {
  auto names = list_names(dir);
  if (!names) return tl::unexpected<Error>(names.error());
  for (const auto& name : *names) {
    if (!name.starts_with(kTmpPrefix)) continue;
    if (auto st = fs::remove_tree(dir + "/" + name); !st) return st;
  }
  return {};
}

Status sync_dir(const std::string& path, bool whole_fs) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_fail("opening " + path);
  if ((whole_fs ? ::syncfs(fd.get()) : ::fsync(fd.get())) != 0)
    return errno_fail("syncing " + path);
  return {};
}

// Builds the template for `src` under the store lock. Called when the fast path found nothing.
Result<Template> build_template(const TemplateStore& store, const Source& src,
                                const ProgressFn& progress) {
  const std::string& dir = store.dir();
  KAPSEL_TRY(fs::make_dirs(dir), "creating the template store");
  auto lock = StoreLock::acquire(dir, progress);
  if (!lock) return tl::unexpected<Error>(lock.error());
  // Another caller may have built it while this one waited for the lock.
  if (auto t = store.load(src.id); t || t.error().kind != ErrorKind::not_found) return t;
  KAPSEL_TRY(remove_stale_builds(dir), "removing stale builds");
  const std::string final_dir = dir + "/" + src.id;
  // A directory without metadata is no template (one never appears that way, as builds are
  // renamed into place whole); clear it so that the rename below can take its place.
  KAPSEL_TRY(fs::remove_tree(final_dir), "clearing " + final_dir);

  BuildDir build(dir + "/" + std::string(kTmpPrefix) + src.id + "-" + std::to_string(::getpid()));
  if (::mkdir(build.path().c_str(), 0755) != 0) return errno_fail("creating " + build.path());
  // libarchive refuses to write through a symlink anywhere in a path, including the store's
  // own location (/var/lib may be a link), so the tree is addressed by its canonical path.
  auto real_build = canonical(build.path(), "resolving");
  if (!real_build) return tl::unexpected<Error>(real_build.error());
  const std::string rootfs = *real_build + "/rootfs";
  if (::mkdir(rootfs.c_str(), 0755) != 0 || ::chmod(rootfs.c_str(), 0755) != 0)
    return errno_fail("creating " + rootfs);

  InitInfo init;
  switch (src.type) {
    case TemplateSpec::Type::builtin:
      if (auto st = build_busybox_rootfs(rootfs, progress); !st)
        return tl::unexpected<Error>(st.error());
      init.halt_signal = SIGUSR1;  // busybox init: USR1 halts, USR2 powers off, TERM reboots
      break;
    case TemplateSpec::Type::dir: {
      auto real_store = canonical(dir, "resolving");
      if (!real_store) return tl::unexpected<Error>(real_store.error());
      if (auto st = copy_directory(src.path, rootfs, *real_store, progress); !st)
        return tl::unexpected<Error>(st.error());
      init = detect_init(rootfs);
      break;
    }
    case TemplateSpec::Type::tar:
      if (auto st = extract_tarball(src.path, rootfs, progress); !st)
        return tl::unexpected<Error>(st.error());
      init = detect_init(rootfs);
      break;
  }

  auto size = disk_usage(rootfs);
  if (!size) return tl::unexpected<Error>(size.error());
  Template t;
  t.id = src.id;
  t.spec = src.spec;
  t.rootfs = final_dir + "/rootfs";
  t.init = init.init;
  t.halt_signal = init.halt_signal;
  t.size_bytes = *size;
  t.created = static_cast<std::int64_t>(std::time(nullptr));
  KAPSEL_TRY(fs::write_file_atomic(build.path() + "/" + kMetadataFile, to_json(t)),
             "recording the template");
  // One syncfs for the whole tree instead of an fsync per file: once renamed into place the
  // template is trusted to be complete, so its data must be on disk first.
  KAPSEL_TRY(sync_dir(build.path(), true), "syncing the template");
  if (::rename(build.path().c_str(), final_dir.c_str()) != 0)
    return errno_fail("renaming " + build.path() + " to " + final_dir);
  build.commit();
  KAPSEL_TRY(sync_dir(dir, false), "syncing the template store");
  return t;
}

}  // namespace

TemplateStore::TemplateStore(std::string dir) : dir_(std::move(dir)) {
  // Template::rootfs must be absolute (it becomes an overlayfs lowerdir, used from another
  // working directory), so a relative store directory is anchored here, once.
  std::error_code ec;
  auto abs = std::filesystem::absolute(dir_, ec);
  if (!ec) dir_ = abs.lexically_normal().string();
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
}

bool TemplateStore::valid_id(std::string_view id) {
  // A leading dot is reserved for the store's own entries (.lock, .tmp-*), and also rules out
  // "." and "..".
  return !id.empty() && id.size() <= 255 && id.front() != '.' &&
         id.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

Result<std::string> TemplateStore::id_for(const TemplateSpec& spec) const {
  auto src = resolve_source(spec);
  if (!src) return tl::unexpected<Error>(src.error());
  return src->id;
}

Result<Template> TemplateStore::ensure(const TemplateSpec& spec, const ProgressFn& progress) {
  auto src = resolve_source(spec);
  if (!src) return tl::unexpected<Error>(src.error());
  // The fast path, taken by every create and run: a template in the store is complete, so
  // reading its metadata is enough, without the lock.
  auto existing = load(src->id);
  if (existing || existing.error().kind != ErrorKind::not_found) return existing;
  return with_context(build_template(*this, *src, progress), "building template " + src->spec);
}

Result<Template> TemplateStore::load(const std::string& id) const {
  if (!valid_id(id)) return fail(ErrorKind::usage, "invalid template id '" + id + "'");
  const std::string path = dir_ + "/" + id + "/" + kMetadataFile;
  auto text = fs::read_file(path);
  if (!text) {
    if (text.error().code == ENOENT)
      return fail(ErrorKind::not_found, "template '" + id + "' not found in " + dir_);
    return tl::unexpected<Error>(text.error().context("loading template " + id));
  }
  auto t = from_json(*text, path);
  if (!t) return t;
  if (t->id != id)
    return fail(ErrorKind::failure, path + " describes template '" + t->id + "', not '" + id + "'");
  t->rootfs = dir_ + "/" + id + "/rootfs";
  return t;
}

Result<std::vector<Template>> TemplateStore::list() const {
  auto names = list_names(dir_);
  if (!names) return tl::unexpected<Error>(names.error().context("listing templates"));
  std::vector<Template> out;
  for (const auto& name : *names) {
    if (!valid_id(name) || !fs::is_dir(dir_ + "/" + name)) continue;
    auto t = load(name);
    if (!t && t.error().kind == ErrorKind::not_found) continue;  // not a template
    if (!t) return tl::unexpected<Error>(t.error().context("listing templates"));
    out.push_back(std::move(*t));
  }
  std::sort(out.begin(), out.end(),
            [](const Template& a, const Template& b) { return a.id < b.id; });
  return out;
}

Status TemplateStore::remove(const std::string& id) {
  if (!valid_id(id)) return fail(ErrorKind::usage, "invalid template id '" + id + "'");
  const std::string final_dir = dir_ + "/" + id;
  auto not_found = [&] {
    return fail(ErrorKind::not_found, "template '" + id + "' not found in " + dir_);
  };
  if (!fs::is_dir(final_dir)) return not_found();
  auto lock = StoreLock::acquire(dir_, {});
  if (!lock) return tl::unexpected<Error>(lock.error().context("removing template " + id));
  if (!fs::is_dir(final_dir)) return not_found();
  // Renamed out of sight first, so that a removal interrupted half-way never leaves a template
  // that looks whole but lacks files; the next build removes the .tmp-* leftovers.
  const std::string doomed =
      dir_ + "/" + std::string(kTmpPrefix) + id + "-" + std::to_string(::getpid()) + "-removed";
  if (::rename(final_dir.c_str(), doomed.c_str()) != 0)
    return errno_fail("removing template " + id + ": renaming " + final_dir);
  return with_context(fs::remove_tree(doomed), "removing template " + id);
}

}  // namespace kapsel::image
