#include "cgroup/hierarchy.hpp"

#include <algorithm>
#include <array>

namespace kapsel::cgroup {
namespace {

// The v1 controllers the kernel knows. cgroup v1 is frozen, so this list does not grow; an
// allow-list is what tells controllers apart from the mount options that share the super
// options field ("rw", "xattr", "name=...", "release_agent=...", "clone_children", ...).
constexpr std::array<std::string_view, 14> kV1Controllers = {
    "cpuset",  "cpu",      "cpuacct",    "blkio",   "memory", "devices", "freezer",
    "net_cls", "net_prio", "perf_event", "hugetlb", "pids",   "rdma",    "misc"};

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(sep, pos);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo (octal).
std::string unescape(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  auto is_octal = [](char c) { return c >= '0' && c <= '7'; };
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) &&
        is_octal(field[i + 2]) && is_octal(field[i + 3])) {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                      (field[i + 3] - '0')));
      i += 3;
      continue;
    }
    out.push_back(field[i]);
  }
  return out;
}

std::string_view strip_trailing_slashes(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  return path;
}

bool at_or_below(std::string_view path, std::string_view root) {
  if (root == "/") return true;
  if (!path.starts_with(root)) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

}  // namespace

bool Hierarchy::has(std::string_view controller) const {
  return std::find(controllers.begin(), controllers.end(), controller) != controllers.end();
}

Result<std::vector<Hierarchy>> parse_mountinfo(std::string_view text, std::string_view root) {
  root = strip_trailing_slashes(root);
  std::vector<Hierarchy> out;
  std::vector<std::string_view> devices;  // major:minor of the hierarchies already listed
  int line_no = 0;
  for (std::string_view line : split(text, '\n')) {
    ++line_no;
    if (line.empty()) continue;
    // id parent major:minor root mount-point mount-options [optional fields...] - fstype
    // source super-options
    auto fields = split(line, ' ');
    auto sep = std::find(fields.begin() + std::min<size_t>(6, fields.size()), fields.end(), "-");
    if (fields.size() < 10 || sep == fields.end() || fields.end() - sep < 4)
      return fail(ErrorKind::failure, "mountinfo line " + std::to_string(line_no) +
                                          " is malformed: " + std::string(line));
    std::string_view fstype = sep[1];
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    std::string mount = unescape(fields[4]);
    if (!at_or_below(strip_trailing_slashes(mount), root)) continue;
    std::string_view device = fields[2];
    if (std::find(devices.begin(), devices.end(), device) != devices.end()) continue;

    Hierarchy h{std::move(mount), fstype == "cgroup2", {}, unescape(fields[3])};
    if (!h.v2) {
      for (std::string_view opt : split(sep[3], ',')) {
        if (std::find(kV1Controllers.begin(), kV1Controllers.end(), opt) != kV1Controllers.end())
          h.controllers.emplace_back(opt);
      }
      if (h.controllers.empty()) continue;  // a named hierarchy such as name=systemd
    }
    devices.push_back(device);
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace kapsel::cgroup
