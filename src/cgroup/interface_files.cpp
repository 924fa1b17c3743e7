#include "cgroup/interface_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::cgroup {
namespace {

// v1 shows "no limit" as PAGE_COUNTER_MAX pages (0x7ffffffffffff000 with 4 KiB pages); anything
// this large is no limit on any machine that exists.
constexpr std::uint64_t kV1UnlimitedFrom = std::uint64_t{1} << 62;

std::string default_explain(const FileWrite& w, int code) {
  return "the kernel refused \"" + w.value + "\" for " + w.path + ": " + std::strerror(code);
}

// The message of a failed step, on the option's behalf.
Error step_error(const FileWrite& w, const Error& e, bool wrote) {
  std::string what;
  if (wrote && e.code != 0) {
    if (w.explain) what = w.explain(e.code);
    if (what.empty()) what = default_explain(w, e.code);
  } else {
    what = e.message;
  }
  return Error{ErrorKind::failure, e.code, w.option + ": " + what};
}

}  // namespace

Result<std::optional<std::string>> read_optional(const std::string& path) {
  auto text = fs::read_file(path);
  if (text) return std::optional<std::string>(std::move(*text));
  if (text.error().code == ENOENT || text.error().code == ENODEV)
    return std::optional<std::string>();
  return tl::unexpected(text.error());
}

Status write_value(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return errno_fail("opening " + path);
  std::string_view data = value.empty() ? std::string_view("\n") : value;
  ssize_t n;
  do {
    n = ::write(fd.get(), data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_fail("writing '" + std::string(value) + "' to " + path);
  return {};
}

std::string_view trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\n");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\n");
  return text.substr(begin, end - begin + 1);
}

std::string_view first_line(std::string_view text) {
  return trim(text.substr(0, text.find('\n')));
}

std::optional<std::uint64_t> to_number(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<std::uint64_t> v1_limit(std::string_view text) {
  if (trim(text) == "-1") return kUnlimited;
  auto v = to_number(text);
  if (v && *v >= kV1UnlimitedFrom) return kUnlimited;
  return v;
}

std::optional<std::uint64_t> v2_limit(std::string_view text) {
  if (trim(text) == "max") return kUnlimited;
  return to_number(text);
}

Status unexpected_contents(const std::string& path, std::string_view text) {
  return fail(ErrorKind::failure,
              "unexpected contents of " + path + ": \"" + std::string(first_line(text)) + "\"");
}

Status read_number(const std::string& dir, const char* file, std::uint64_t& out,
                   std::optional<std::uint64_t> (*parse)(std::string_view)) {
  std::string path = dir + "/" + file;
  auto text = read_optional(path);
  if (!text) return tl::unexpected(text.error());
  if (!*text) return {};
  auto v = parse(**text);
  if (!v) return unexpected_contents(path, **text);
  out = *v;
  return {};
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(pos, end - pos));
    if (!line.empty()) out.push_back(line);
    pos = end + 1;
  }
  return out;
}

std::optional<std::uint64_t> keyed_value(std::string_view text, std::string_view key) {
  for (std::string_view line : lines(text)) {
    if (line.size() > key.size() && line.starts_with(key) &&
        (line[key.size()] == ' ' || line[key.size()] == '\t'))
      return to_number(line.substr(key.size()));
  }
  return std::nullopt;
}

std::optional<DeviceNumber> to_device(std::string_view word) {
  size_t colon = word.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto major = to_number(word.substr(0, colon));
  auto minor = to_number(word.substr(colon + 1));
  if (!major || !minor || *major > UINT32_MAX || *minor > UINT32_MAX) return std::nullopt;
  return DeviceNumber{static_cast<std::uint32_t>(*major), static_cast<std::uint32_t>(*minor)};
}

std::string to_string(DeviceNumber device) {
  return std::to_string(device.major) + ":" + std::to_string(device.minor);
}

Status write_all_or_restore(const std::vector<FileWrite>& writes) {
  struct Done {
    const FileWrite* write;
    std::string undo;
  };
  std::vector<Done> done;
  Status failed;
  for (const auto& w : writes) {
    auto before = fs::read_file(w.path);
    if (!before) {
      failed = tl::unexpected(step_error(w, before.error(), false));
      break;
    }
    std::string undo = w.undo ? w.undo(*before) : std::string(first_line(*before));
    if (auto st = write_value(w.path, w.value); !st) {
      failed = tl::unexpected(step_error(w, st.error(), true));
      break;
    }
    done.push_back({&w, std::move(undo)});
  }
  if (failed) return {};

  // Reverse order: every write was valid against the state before it, so undoing them
  // backwards passes through states the kernel accepted (v1's memsw >= memory).
  std::string restore_errors;
  for (auto it = done.rbegin(); it != done.rend(); ++it) {
    if (auto st = write_value(it->write->path, it->undo); !st)
      restore_errors += "; restoring " + it->write->path + " failed too: " + st.error().message;
  }
  Error e = failed.error();
  e.message += restore_errors;
  return tl::unexpected(std::move(e));
}

std::array<Throttle, 4> throttles(const Limits& l) {
  return {Throttle{kReadBpsOption, &l.read_bps, "blkio.throttle.read_bps_device", "rbps"},
          Throttle{kWriteBpsOption, &l.write_bps, "blkio.throttle.write_bps_device", "wbps"},
          Throttle{kReadIopsOption, &l.read_iops, "blkio.throttle.read_iops_device", "riops"},
          Throttle{kWriteIopsOption, &l.write_iops, "blkio.throttle.write_iops_device", "wiops"}};
}

Status check_cpuset_within(std::string_view cpuset, std::string_view offered,
                           const std::string& dir) {
  auto wanted = parse_cpu_list(cpuset);
  auto have = parse_cpu_list(offered);
  if (!wanted || !have) return {};
  std::vector<unsigned> missing;
  for (unsigned c : *wanted)
    if (!std::binary_search(have->begin(), have->end(), c)) missing.push_back(c);
  if (missing.empty()) return {};
  bool one = missing.size() == 1;
  return fail(ErrorKind::usage, std::string(kCpusetOption) + ": " + (one ? "CPU " : "CPUs ") +
                                    format_cpu_list(missing) + (one ? " is" : " are") +
                                    " not available in " + dir + " (it has " +
                                    format_cpu_list(*have) + ")");
}

std::string nearest_existing(const std::string& mount, std::string_view rel) {
  std::string dir = mount + "/" + std::string(rel);
  while (dir.size() > mount.size() && !fs::is_dir(dir)) dir.resize(dir.rfind('/'));
  return dir;
}

}  // namespace kapsel::cgroup
