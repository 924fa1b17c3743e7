// The libarchive side of template import, built as the plugin kapsel-archive.so and loaded
// only when a dir: or tar: template is imported (see archive_importer.cpp for why).
#include "image/archive_importer.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string_view>

#include "common/unique_fd.hpp"
#include "image/progress_reporter.hpp"

namespace kapsel::image {

namespace {

struct ReaderFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriterFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
struct ResolverFree {
  void operator()(archive_entry_linkresolver* r) const { archive_entry_linkresolver_free(r); }
};
using ArchiveReader = std::unique_ptr<archive, ReaderFree>;
using ArchiveWriter = std::unique_ptr<archive, WriterFree>;
using Entry = std::unique_ptr<archive_entry, EntryFree>;
using LinkResolver = std::unique_ptr<archive_entry_linkresolver, ResolverFree>;

// What the disk writer restores. No user/group name lookup is installed on it, so owners are
// restored by number: names in the archive refer to the tree's own /etc/passwd, not the host's
// (tar's --numeric-owner). FFLAGS is left out: an immutable flag would make the template
// impossible to remove. SECURE_NOABSOLUTEPATHS is left out too, because every path handed to
// the writer is `dest` + a name that relative_name() checked, so absolute by construction;
// that check takes its place before the prefix is added. SECURE_SYMLINKS still refuses to write
// through a symlink that an earlier entry planted (as "lib -> /" followed by "lib/x"), and
// SECURE_NODOTDOT backs up relative_name().
constexpr int kExtractFlags = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                              ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR |
                              ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT;

tl::unexpected<Error> archive_fail(archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  int code = archive_errno(a);
  return tl::unexpected<Error>(Error{ErrorKind::failure, code > 0 ? code : 0,
                                     what + ": " + (msg ? msg : "unknown libarchive error")});
}

Result<ArchiveWriter> make_disk_writer() {
  ArchiveWriter writer(archive_write_disk_new());
  if (!writer) return sys_fail(ENOMEM, "creating archive writer");
  if (archive_write_disk_set_options(writer.get(), kExtractFlags) != ARCHIVE_OK)
    return archive_fail(writer.get(), "setting extraction options");
  return writer;
}

// `name` below the tree root with empty and "." components dropped ("" for the root itself);
// an error if it is absolute or contains "..", i.e. could name something outside the tree.
Result<std::string> relative_name(std::string_view name) {
  if (name.starts_with('/')) return fail(ErrorKind::failure, "absolute path");
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return fail(ErrorKind::failure, "'..' leads outside the tree");
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

std::string below(const std::string& dest, const std::string& rel) {
  return rel.empty() ? dest : dest + "/" + rel;
}

// Writes one entry (header, then data read from `in` if `with_data`) to the disk writer.
// `on_block` runs after each data block, for progress.
Status write_entry(archive* in, archive* out, archive_entry* entry, bool with_data,
                   const std::string& name, const std::function<void()>& on_block) {
  // ARCHIVE_WARN means something optional was not restored (an xattr the file system refuses,
  // an owner that a non-root caller cannot set); the object itself exists.
  if (archive_write_header(out, entry) < ARCHIVE_WARN) return archive_fail(out, "writing " + name);
  if (with_data && archive_entry_size(entry) > 0) {
    for (;;) {
      const void* buf = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(in, &buf, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return archive_fail(in, "reading " + name);
      // With the offset, holes in sparse files stay holes.
      if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
        return archive_fail(out, "writing " + name);
      if (on_block) on_block();
    }
  }
  if (archive_write_finish_entry(out) < ARCHIVE_WARN) return archive_fail(out, "writing " + name);
  return {};
}

// Completes the writer: directory modes and times are restored only now (libarchive defers
// them so that extracting a read-only directory's contents works).
Status close_writer(archive* out, const std::string& dest) {
  if (archive_write_close(out) != ARCHIVE_OK) return archive_fail(out, "finishing " + dest);
  return {};
}

}  // namespace

Status copy_directory_impl(const std::string& source, const std::string& dest,
                           const std::string& exclude, const ProgressFn& progress) {
  // The excluded directory as a path relative to `source`, compared with each entry's.
  std::string excluded_rel;
  std::string prefix = source == "/" ? "/" : source + "/";
  if (!exclude.empty() && exclude.starts_with(prefix)) {
    auto rel = relative_name(exclude.substr(prefix.size()));
    if (rel) excluded_rel = *rel;
  }

  ArchiveReader disk(archive_read_disk_new());
  if (!disk) return sys_fail(ENOMEM, "creating directory reader");
  // Physical traversal: a symlink is copied as a symlink, never followed.
  archive_read_disk_set_symlink_physical(disk.get());
  // Mounts below the source (the /proc of a live system) are not part of its tree. File flags
  // are not restored (kExtractFlags), so not read either.
  if (archive_read_disk_set_behavior(disk.get(), ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS |
                                                     ARCHIVE_READDISK_NO_FFLAGS) != ARCHIVE_OK)
    return archive_fail(disk.get(), "setting traversal options");
  if (archive_read_disk_open(disk.get(), source.c_str()) != ARCHIVE_OK)
    return archive_fail(disk.get(), "opening " + source);

  auto writer = make_disk_writer();
  if (!writer) return tl::unexpected<Error>(writer.error());
  LinkResolver links(archive_entry_linkresolver_new());
  if (!links) return sys_fail(ENOMEM, "creating hard link resolver");
  // Tar's strategy: the first name of an inode is written with its data, every later name
  // becomes a hard link to it. With it linkify never swaps the entry it is given for another.
  archive_entry_linkresolver_set_strategy(links.get(), ARCHIVE_FORMAT_TAR_USTAR);
  Entry entry(archive_entry_new());
  if (!entry) return sys_fail(ENOMEM, "creating archive entry");

  ProgressReporter report(progress, "copying");
  std::uint64_t done = 0;
  for (;;) {
    int r = archive_read_next_header2(disk.get(), entry.get());
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return archive_fail(disk.get(), "reading " + source);
    const char* path = archive_entry_pathname(entry.get());
    if (!path) return fail(ErrorKind::failure, "reading " + source + ": entry without a name");
    std::string from = path;
    std::string_view rest = from;
    rest.remove_prefix(std::min(source.size(), rest.size()));
    while (rest.starts_with('/')) rest.remove_prefix(1);
    auto rel = relative_name(rest);
    if (!rel) return tl::unexpected<Error>(rel.error().context("reading " + from));
    if (!excluded_rel.empty() && *rel == excluded_rel) continue;
    auto type = archive_entry_filetype(entry.get());
    // A socket is the live endpoint of some process; a copy of it would be meaningless.
    if (type == AE_IFSOCK) continue;
    if (type == AE_IFDIR && archive_read_disk_can_descend(disk.get()))
      archive_read_disk_descend(disk.get());

    archive_entry_copy_pathname(entry.get(), below(dest, *rel).c_str());
    archive_entry* linked = entry.get();
    archive_entry* spare = nullptr;
    archive_entry_linkify(links.get(), &linked, &spare);
    // A later name of a hard-linked inode carries no data: it is link(2)ed to the first.
    bool with_data = type == AE_IFREG && archive_entry_hardlink(linked) == nullptr;
    KAPSEL_TRY(write_entry(disk.get(), writer->get(), linked, with_data, from, {}),
               "copying " + source);
    report.update(++done);
  }
  KAPSEL_TRY(close_writer(writer->get(), dest), "copying " + source);
  report.finish(done);
  return {};
}

Status extract_tarball_impl(const std::string& tarball, const std::string& dest,
                            const ProgressFn& progress) {
  UniqueFd fd(::open(tarball.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_fail("opening " + tarball);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_fail("inspecting " + tarball);
  auto total = static_cast<std::uint64_t>(st.st_size);

  ArchiveReader in(archive_read_new());
  if (!in) return sys_fail(ENOMEM, "creating archive reader");
  archive_read_support_filter_all(in.get());
  archive_read_support_format_tar(in.get());  // ustar, pax and GNU tar
  if (archive_read_open_fd(in.get(), fd.get(), 64 * 1024) != ARCHIVE_OK)
    return archive_fail(in.get(), "opening " + tarball);

  auto writer = make_disk_writer();
  if (!writer) return tl::unexpected<Error>(writer.error());
  Entry entry(archive_entry_new());
  if (!entry) return sys_fail(ENOMEM, "creating archive entry");

  ProgressReporter report(progress, "extracting", total);
  // Bytes consumed from the file itself (the last filter), comparable with its size whatever
  // the compression.
  auto update = [&] {
    report.update(static_cast<std::uint64_t>(archive_filter_bytes(in.get(), -1)));
  };
  const std::string ctx = "extracting " + tarball;
  for (;;) {
    int r = archive_read_next_header2(in.get(), entry.get());
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return archive_fail(in.get(), ctx);
    const char* raw_name = archive_entry_pathname(entry.get());
    if (!raw_name) return fail(ErrorKind::failure, ctx + ": entry with an unreadable name");
    // A copy: the entry's own string changes with the path rewrite below.
    const std::string name = raw_name;
    const std::string refusing = ctx + ": refusing entry '" + name + "'";
    auto rel = relative_name(name);
    if (!rel) return tl::unexpected<Error>(rel.error().context(refusing));
    archive_entry_copy_pathname(entry.get(), below(dest, *rel).c_str());
    if (const char* target = archive_entry_hardlink(entry.get())) {
      auto target_rel = relative_name(target);
      if (!target_rel)
        return tl::unexpected<Error>(target_rel.error()
                                         .context("hard link to '" + std::string(target) + "'")
                                         .context(refusing));
      archive_entry_copy_hardlink(entry.get(), below(dest, *target_rel).c_str());
    }
    KAPSEL_TRY(write_entry(in.get(), writer->get(), entry.get(), true, name, update), ctx);
    update();
  }
  KAPSEL_TRY(close_writer(writer->get(), dest), ctx);
  report.finish(total);
  return {};
}

}  // namespace kapsel::image

// The plugin's one exported symbol. Plugin and binary are built together from one tree with
// one compiler, so C++ types may cross this boundary.
extern "C" __attribute__((visibility("default"))) const kapsel::image::ArchivePluginApi*
kapsel_archive_plugin() {
  static const kapsel::image::ArchivePluginApi api = {kapsel::image::kArchivePluginVersion,
                                                      kapsel::image::copy_directory_impl,
                                                      kapsel::image::extract_tarball_impl};
  return &api;
}
