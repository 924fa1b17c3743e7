#include "security/userns.hpp"

#include <fcntl.h>
#include <fts.h>
#include <pwd.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <tuple>

#include "common/fs.hpp"

namespace kapsel::security {

namespace {

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

constexpr std::uint64_t kIdSpace = std::uint64_t{1} << 32;

}  // namespace

Result<IdRange> parse_range_option(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return fail(ErrorKind::usage, "--userns-range " + std::string(text) + ": " + why);
  };
  auto colon = text.find(':');
  auto base = parse_number(text.substr(0, colon));
  auto size = colon == std::string_view::npos ? std::optional<std::uint64_t>{kDefaultRangeSize}
                                              : parse_number(text.substr(colon + 1));
  if (!base || !size) return bad("expected BASE[:SIZE], e.g. 200000000:65536");
  if (*base == 0) return bad("the host's root (id 0) is never given to a VE");
  if (*size == 0) return bad("the range is empty");
  if (*base + *size > kIdSpace - 1) return bad("the range ends beyond the 32-bit id space");
  return IdRange{static_cast<std::uint32_t>(*base), static_cast<std::uint32_t>(*size)};
}

std::vector<SubordinateRange> parse_subid(std::string_view text) {
  std::vector<SubordinateRange> out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    auto first = line.find(':');
    auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (line.empty() || line.front() == '#' || second == std::string_view::npos) continue;
    auto start = parse_number(line.substr(first + 1, second - first - 1));
    auto count = parse_number(line.substr(second + 1));
    if (!start || !count || *count == 0 || *start + *count > kIdSpace) continue;
    out.push_back({std::string(line.substr(0, first)),
                   {static_cast<std::uint32_t>(*start), static_cast<std::uint32_t>(*count)}});
  }
  return out;
}

std::optional<IdRange> first_free(std::vector<IdRange> taken, std::uint32_t from,
                                  std::uint32_t size) {
  std::sort(taken.begin(), taken.end(),
            [](const IdRange& a, const IdRange& b) { return a.base < b.base; });
  std::uint64_t candidate = from;
  for (const auto& t : taken) {
    if (t.end() <= candidate) continue;
    if (candidate + size <= t.base) break;
    candidate = t.end();
  }
  // The last id, 2^32-1, is (uid_t)-1, which means "no id" to the kernel.
  if (candidate + size > kIdSpace - 1) return std::nullopt;
  return IdRange{static_cast<std::uint32_t>(candidate), size};
}

Result<UniqueFd> RangeTable::lock() const {
  KAPSEL_TRY(fs::make_dirs(dir_, 0700), "the user-namespace range table");
  std::string path = dir_ + "/ranges.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return errno_fail("opening " + path);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return errno_fail("locking " + path);
  }
  return fd;
}

Result<std::map<std::string, IdRange>> RangeTable::load() const {
  std::map<std::string, IdRange> table;
  std::string path = dir_ + "/ranges.json";
  auto text = fs::read_file(path);
  if (!text) {
    if (text.error().code == ENOENT) return table;
    return tl::unexpected(text.error());
  }
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return fail(ErrorKind::failure, path + " is not valid JSON");
  for (const auto& [ve, r] : j.items()) {
    if (!r.is_object() || !r.value("base", nlohmann::json()).is_number_unsigned() ||
        !r.value("size", nlohmann::json()).is_number_unsigned())
      return fail(ErrorKind::failure, path + ": the range of " + ve + " is damaged");
    table[ve] = IdRange{r.at("base").get<std::uint32_t>(), r.at("size").get<std::uint32_t>()};
  }
  return table;
}

Status RangeTable::save(const std::map<std::string, IdRange>& table) const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [ve, r] : table) j[ve] = {{"base", r.base}, {"size", r.size}};
  return fs::write_file_atomic(dir_ + "/ranges.json", j.dump(2) + "\n", 0600);
}

Result<IdRange> RangeTable::allocate(const std::string& ve, std::optional<IdRange> wanted,
                                     const std::vector<IdRange>& reserved) {
  auto held = lock();
  if (!held) return tl::unexpected(held.error());
  auto table = load();
  if (!table) return tl::unexpected(table.error());
  std::vector<IdRange> taken = reserved;
  for (const auto& [other, r] : *table) {
    if (other == ve) continue;  // left by a create that failed half-way: reused
    if (wanted && wanted->overlaps(r))
      return fail(ErrorKind::usage, "--userns-range " + std::to_string(wanted->base) + ":" +
                                        std::to_string(wanted->size) + " overlaps the ids of VE " +
                                        other + " (" + std::to_string(r.base) + ":" +
                                        std::to_string(r.size) + ")");
    taken.push_back(r);
  }
  IdRange range;
  if (wanted) {
    for (const auto& r : reserved) {
      if (wanted->overlaps(r))
        return fail(ErrorKind::usage, "--userns-range " + std::to_string(wanted->base) + ":" +
                                          std::to_string(wanted->size) +
                                          " overlaps a host user's range in /etc/subuid or "
                                          "/etc/subgid (" +
                                          std::to_string(r.base) + ":" + std::to_string(r.size) +
                                          ")");
    }
    range = *wanted;
  } else {
    auto free = first_free(taken, kDefaultRangeBase, kDefaultRangeSize);
    if (!free) return fail(ErrorKind::failure, "no free range of host ids is left for VE " + ve);
    range = *free;
  }
  (*table)[ve] = range;
  KAPSEL_TRY(save(*table), "recording the ids of VE " + ve);
  return range;
}

Status RangeTable::release(const std::string& ve) {
  auto held = lock();
  if (!held) return tl::unexpected(held.error());
  auto table = load();
  if (!table) return tl::unexpected(table.error());
  if (table->erase(ve) == 0) return {};
  return with_context(save(*table), "releasing the ids of VE " + ve);
}

std::vector<IdRange> subordinate_ranges_of(const char* file, uid_t uid) {
  std::vector<IdRange> out;
  auto text = fs::read_file(file);
  if (!text) return out;
  struct passwd* pw = ::getpwuid(uid);
  const std::string name = pw ? pw->pw_name : "";
  for (const auto& r : parse_subid(*text)) {
    if (r.owner == name || r.owner == std::to_string(uid)) out.push_back(r.range);
  }
  return out;
}

std::vector<IdRange> host_subordinate_ranges() {
  std::vector<IdRange> out;
  for (const char* file : {"/etc/subuid", "/etc/subgid"}) {
    auto text = fs::read_file(file);
    if (!text) continue;
    for (const auto& r : parse_subid(*text)) out.push_back(r.range);
  }
  return out;
}

namespace {

// Runs newuidmap(1) or newgidmap(1) (Debian's uidmap package): the set-uid helpers that write
// a user's /etc/subuid and /etc/subgid ranges into a namespace's maps, which the user may not.
Status run_id_helper(const char* helper, pid_t pid, const std::vector<std::string>& triples) {
  std::vector<std::string> args = {helper, std::to_string(pid)};
  args.insert(args.end(), triples.begin(), triples.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = ::fork();
  if (child < 0) return errno_fail(std::string("running ") + helper);
  if (child == 0) {
    ::execvp(helper, argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return errno_fail(std::string("waiting for ") + helper);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fail(
        ErrorKind::failure,
        std::string(helper) + " failed" +
            (WIFEXITED(status) && WEXITSTATUS(status) == 127 ? " (is uidmap installed?)" : ""));
  return {};
}

// A rootless VE's maps: the user's own id as root, then its subordinate ranges; with none, the
// user's own id alone, which it may map itself (after denying setgroups(2), as the kernel asks
// of an unprivileged writer of gid_map).
Status write_rootless_maps(pid_t pid, const store::UsernsConfig& map) {
  const std::string proc = "/proc/" + std::to_string(pid) + "/";
  for (auto [file, helper, own] : {std::tuple{"/etc/subuid", "newuidmap", map.host_uid},
                                   std::tuple{"/etc/subgid", "newgidmap", map.host_gid}}) {
    std::vector<std::string> triples = {"0", std::to_string(own), "1"};
    std::uint64_t next = 1;
    for (const auto& r : subordinate_ranges_of(file, map.host_uid)) {
      for (auto v : {next, std::uint64_t{r.base}, std::uint64_t{r.size}})
        triples.push_back(std::to_string(v));
      next += r.size;
    }
    if (next > 1) {
      KAPSEL_TRY(run_id_helper(helper, pid, triples), "mapping the VE's ids");
    } else {
      const bool uid = std::string_view(helper) == "newuidmap";
      if (!uid) KAPSEL_TRY(fs::write_existing(proc + "setgroups", "deny"), "mapping the VE's ids");
      KAPSEL_TRY(fs::write_existing(proc + (uid ? "uid_map" : "gid_map"),
                                    "0 " + std::to_string(own) + " 1\n"),
                 "mapping the VE's ids");
    }
  }
  return {};
}

// uid_map then gid_map of `pid`, each written whole (the kernel takes one write per file).
Status write_map_files(pid_t pid, const std::string& uid_map, const std::string& gid_map) {
  const std::string proc = "/proc/" + std::to_string(pid) + "/";
  KAPSEL_TRY(fs::write_existing(proc + "uid_map", uid_map), "writing the uid map");
  KAPSEL_TRY(fs::write_existing(proc + "gid_map", gid_map), "writing the gid map");
  return {};
}

std::string map_text(const std::vector<store::BundleIdMapping>& mappings) {
  std::string text;
  for (const auto& m : mappings) {
    text += std::to_string(m.container_id) + " " + std::to_string(m.host_id) + " " +
            std::to_string(m.size) + "\n";
  }
  return text;
}

}  // namespace

Status write_id_maps(pid_t pid, const store::UsernsConfig& map) {
  if (map.rootless) return write_rootless_maps(pid, map);
  const std::string size = " " + std::to_string(map.size) + "\n";
  return with_context(write_map_files(pid, "0 " + std::to_string(map.host_uid) + size,
                                      "0 " + std::to_string(map.host_gid) + size),
                      "the VE's user namespace");
}

Status write_bundle_id_maps(pid_t pid, const store::BundleConfig& bundle) {
  return with_context(
      write_map_files(pid, map_text(bundle.uid_mappings), map_text(bundle.gid_mappings)),
      "linux.uidMappings, gidMappings");
}

Result<UniqueFd> clone_tree(const std::string& path) {
  UniqueFd tree(
      ::open_tree(AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
  if (!tree) return errno_fail("copying the mount of " + path);
  return tree;
}

Status idmap_tree(int tree, int userns_fd) {
  struct mount_attr attr {};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<std::uint64_t>(userns_fd);
  if (::mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
    return errno_fail("id-mapping the template's files for the VE's user namespace");
  return {};
}

bool maps_id(std::string_view map_text, std::uint32_t id) {
  while (!map_text.empty()) {
    auto nl = map_text.find('\n');
    std::string line(map_text.substr(0, nl));
    map_text = nl == std::string_view::npos ? std::string_view{} : map_text.substr(nl + 1);
    unsigned long long inside = 0, outside = 0, count = 0;
    if (std::sscanf(line.c_str(), "%llu %llu %llu", &inside, &outside, &count) == 3 &&
        id >= inside && id - inside < count)
      return true;
  }
  return false;
}

int become_namespace_root() noexcept {
  // The system calls themselves, not glibc's wrappers: those change the ids of every thread of
  // the process by signalling them, which in a vfork child would reach the parent's threads.
  // setgroups(2) fails with EPERM only where it is denied (a rootless VE without subordinate
  // ids, whose gid map its user wrote): its supplementary groups then stay the user's.
  if (::syscall(SYS_setresgid, 0, 0, 0) != 0 ||
      (::syscall(SYS_setgroups, 0, nullptr) != 0 && errno != EPERM) ||
      ::syscall(SYS_setresuid, 0, 0, 0) != 0)
    return errno;
  return 0;
}

Status remove_as_namespace_root(const std::string& path, const store::UsernsConfig& map) {
  const std::string what = "removing " + path + " in a user namespace of the VE's ids";
  if (!fs::exists(path)) return {};
  int ready_pipe[2], go_pipe[2];
  if (::pipe2(ready_pipe, O_CLOEXEC) != 0) return errno_fail(what);
  UniqueFd ready_read(ready_pipe[0]), ready_write(ready_pipe[1]);
  if (::pipe2(go_pipe, O_CLOEXEC) != 0) return errno_fail(what);
  UniqueFd go_read(go_pipe[0]), go_write(go_pipe[1]);
  // A child makes the namespace, the parent has it mapped (newuidmap wants another process to
  // do it), then the child removes the tree as its root. kapsel is single-threaded, so the
  // forked child may allocate.
  pid_t child = ::fork();
  if (child < 0) return errno_fail(what + ": forking");
  if (child == 0) {
    ready_read.reset();
    go_write.reset();
    char byte = ::unshare(CLONE_NEWUSER) == 0 ? 'u' : 'e';
    int err = errno;
    (void)!::write(ready_write.get(), &byte, 1);
    if (byte != 'u') ::_exit(err);
    if (::read(go_read.get(), &byte, 1) != 1) ::_exit(ECANCELED);
    if (int e = become_namespace_root(); e != 0) ::_exit(e);
    auto removed = fs::remove_tree(path);
    ::_exit(removed ? 0 : (removed.error().code ? removed.error().code : EIO));
  }
  ready_write.reset();
  go_read.reset();
  char byte = 0;
  Status mapped = ::read(ready_read.get(), &byte, 1) == 1 && byte == 'u'
                      ? write_id_maps(child, map)
                      : fail(ErrorKind::failure, what + ": the child made no user namespace");
  if (mapped) (void)!::write(go_write.get(), "g", 1);
  go_write.reset();
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return errno_fail(what + ": waiting for the child");
  }
  if (!mapped) return tl::unexpected(mapped.error().context(what));
  if (!WIFEXITED(status)) return fail(ErrorKind::failure, what + ": the child was killed");
  if (int code = WEXITSTATUS(status); code != 0) return sys_fail(code, what);
  return {};
}

Status map_user_namespace(pid_t pid, const store::UsernsConfig& map, int lower_tree) {
  KAPSEL_TRY(write_id_maps(pid, map), "the VE's user namespace");
  if (lower_tree < 0) return {};
  UniqueFd userns(
      ::open(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
  if (!userns) return errno_fail("opening the VE's user namespace");
  return idmap_tree(lower_tree, userns.get());
}

Status shift_ownership(const std::string& path, const store::UsernsConfig& map) {
  char* roots[] = {const_cast<char*>(path.c_str()), nullptr};
  FTS* fts = ::fts_open(roots, FTS_PHYSICAL | FTS_NOCHDIR | FTS_XDEV, nullptr);
  if (!fts) return errno_fail("opening " + path);
  Status result;
  while (FTSENT* e = ::fts_read(fts)) {
    if (e->fts_info == FTS_DP) continue;  // a directory, again on the way out
    if (e->fts_info == FTS_NS || e->fts_info == FTS_ERR || e->fts_info == FTS_DNR) {
      result = sys_fail(e->fts_errno, "reading " + std::string(e->fts_path));
      break;
    }
    const struct stat* st = e->fts_statp;
    if (st->st_uid >= map.size || st->st_gid >= map.size) continue;  // not a host id we map
    if (::lchown(e->fts_accpath, map.host_uid + st->st_uid, map.host_gid + st->st_gid) != 0) {
      result = errno_fail("giving " + std::string(e->fts_path) + " to the VE's root");
      break;
    }
    // chown clears set-id bits; they are the VE's to keep.
    if (!S_ISLNK(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID)) &&
        ::chmod(e->fts_accpath, st->st_mode & 07777) != 0) {
      result = errno_fail("restoring the mode of " + std::string(e->fts_path));
      break;
    }
  }
  ::fts_close(fts);
  return result;
}

}  // namespace kapsel::security
