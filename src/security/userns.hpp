// User namespaces for VEs (--userns): which host ids a VE's ids map to, how kapsel hands out
// those ranges so that no two VEs share one, and the steps that put a VE's processes into its
// user namespace. The design and why it is so: docs/security.md, "User namespaces".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "store/ve_config.hpp"

namespace kapsel::security {

// A block of host ids [base, base + size).
struct IdRange {
  std::uint32_t base = 0;
  std::uint32_t size = 0;

  [[nodiscard]] std::uint64_t end() const { return std::uint64_t{base} + size; }
  [[nodiscard]] bool overlaps(const IdRange& o) const { return base < o.end() && o.base < end(); }
  bool operator==(const IdRange&) const = default;
};

// The size of a VE's range unless --userns-range says otherwise: the 16-bit id space that
// Debian's tools (and most distributions' packages) expect to exist.
constexpr std::uint32_t kDefaultRangeSize = 65536;
// Where kapsel starts looking for free ranges: far above the ranges useradd(8) hands out
// (100000 + 65536 * users), so that kapsel's VEs and the host's users do not meet.
constexpr std::uint32_t kDefaultRangeBase = 100'000'000;

// "BASE[:SIZE]", as --userns-range takes it. BASE must be above 0 (the host's root is never
// given to a VE) and the range must end within 32 bits.
[[nodiscard]] Result<IdRange> parse_range_option(std::string_view text);

// One line of /etc/subuid or /etc/subgid: "user:start:count" (subuid(5)).
struct SubordinateRange {
  std::string owner;  // a user name or a numeric uid
  IdRange range;
};
// Every well-formed line of a subuid(5) file; comments, blank and malformed lines are skipped,
// as shadow's own tools do.
[[nodiscard]] std::vector<SubordinateRange> parse_subid(std::string_view text);

// The lowest range of `size` ids at or above `from` that overlaps none of `taken`; none if the
// 32-bit id space has no such gap.
[[nodiscard]] std::optional<IdRange> first_free(std::vector<IdRange> taken, std::uint32_t from,
                                                std::uint32_t size);

// kapsel's table of the ranges its VEs hold: <root>/userns/ranges.json, a JSON object of VE
// name -> {"base", "size"}. Every change is made under <root>/userns/ranges.lock (flock) and
// written atomically, so two creates never hand out the same range.
class RangeTable {
 public:
  explicit RangeTable(std::string dir) : dir_(std::move(dir)) {}

  // Gives VE `ve` a range: `wanted` if it overlaps no other VE's range (and no host user's
  // subordinate range), else the first free block of kDefaultRangeSize ids from
  // kDefaultRangeBase. `reserved` are ranges to avoid besides the table's (the host's
  // /etc/subuid and /etc/subgid).
  [[nodiscard]] Result<IdRange> allocate(const std::string& ve, std::optional<IdRange> wanted,
                                         const std::vector<IdRange>& reserved);
  // Gives `ve`'s range back; a VE without one is no error.
  [[nodiscard]] Status release(const std::string& ve);
  // The table as it is on disk.
  [[nodiscard]] Result<std::map<std::string, IdRange>> load() const;

 private:
  [[nodiscard]] Result<UniqueFd> lock() const;
  [[nodiscard]] Status save(const std::map<std::string, IdRange>& table) const;
  std::string dir_;
};

// The ranges of user `uid` (by name or number, as newuidmap(1) matches them) in `file`,
// /etc/subuid or /etc/subgid; none if it is missing.
[[nodiscard]] std::vector<IdRange> subordinate_ranges_of(const char* file, uid_t uid);

// The subordinate ranges of every user in /etc/subuid and /etc/subgid, which kapsel must not
// give to a VE. Missing files hold none.
[[nodiscard]] std::vector<IdRange> host_subordinate_ranges();

// Writes the uid and gid maps of `pid`, a process just cloned into a new user namespace, as a
// process that is root in the parent namespace may: the VE's ids 0..size-1 are host ids
// map.host_uid.. and map.host_gid... setgroups(2) stays allowed, so that login and su in the VE
// work (only an unprivileged writer of gid_map must deny it).
[[nodiscard]] Status write_id_maps(pid_t pid, const store::UsernsConfig& map);

// The same for an OCI bundle's container: its linux.uidMappings and gidMappings, line by line.
[[nodiscard]] Status write_bundle_id_maps(pid_t pid, const store::BundleConfig& bundle);

// A copy of the mount tree at `path`, attached nowhere, to be id-mapped once the VE's user
// namespace exists (made before, so that the VE's init inherits the descriptor at its clone).
[[nodiscard]] Result<UniqueFd> clone_tree(const std::string& path);
// Shifts the ids of such a copy through the user namespace `userns_fd` (an id-mapped mount,
// mount_setattr(2) MOUNT_ATTR_IDMAP): host id 0 is seen as the namespace's root. The
// template's files stay owned by host root on disk and look owned by root in every VE that uses
// the template. Needs CAP_SYS_ADMIN over the file system's user namespace: the monitor's job.
[[nodiscard]] Status idmap_tree(int tree, int userns_fd);

// The monitor's part of a VE's user namespace, for `pid` just cloned into it: its id maps, and
// the template's tree (from clone_tree; -1 for none) id-mapped through it.
[[nodiscard]] Status map_user_namespace(pid_t pid, const store::UsernsConfig& map, int lower_tree);

// Whether a uid_map or gid_map text (user_namespaces(7): "inside outside count" lines) maps the
// namespace's id `id`.
[[nodiscard]] bool maps_id(std::string_view map_text, std::uint32_t id);

// Makes the calling process root of the user namespace it has just entered: real, effective and
// saved ids 0 and no supplementary groups. Until it does, it carries the host ids it had before
// (which the namespace may not even map). Async-signal-safe, for vfork and clone children;
// returns 0 or an errno.
[[nodiscard]] int become_namespace_root() noexcept;

// Removes the tree at `path` from inside a new user namespace mapped as a rootless VE's is
// (`map.rootless`): there the user's subordinate ids, which own the files the VE's non-root
// users wrote, are the namespace root's to remove, while the user itself may not.
[[nodiscard]] Status remove_as_namespace_root(const std::string& path,
                                              const store::UsernsConfig& map);

// Changes the owner of everything under `path` (not following symlinks) from host ids to the
// VE's mapped ids: host uid u becomes map.host_uid + u when u is within the map's size.
[[nodiscard]] Status shift_ownership(const std::string& path, const store::UsernsConfig& map);

}  // namespace kapsel::security
