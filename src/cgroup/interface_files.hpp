// Reading and writing the values in cgroup interface files, shared by the backends' limits and
// statistics: the number formats of v1 and v2, flat-keyed files ("key value" lines), per-device
// files, and a group of writes that is undone as a whole when the kernel refuses one of them.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup/resources.hpp"
#include "common/error.hpp"

namespace kapsel::cgroup {

// The contents of `path`, or nullopt if it does not exist: a controller that is not mounted or
// not enabled, a kernel too old for the file, or a cgroup being removed (ENODEV).
[[nodiscard]] Result<std::optional<std::string>> read_optional(const std::string& path);

// Replaces the value of an existing interface file with one write(2). Opened with O_TRUNC like
// a shell's `echo v > file`: cgroupfs ignores the truncation, and a regular file standing in for
// one in a test then holds exactly the value written. An empty value is written as "\n",
// because a write of zero bytes would never reach the kernel.
[[nodiscard]] Status write_value(const std::string& path, std::string_view value);

// `text` without leading and trailing white space.
[[nodiscard]] std::string_view trim(std::string_view text);

// The first line of `text`, trimmed.
[[nodiscard]] std::string_view first_line(std::string_view text);

// `text` (trimmed) as a whole number; nullopt if it is not one.
[[nodiscard]] std::optional<std::uint64_t> to_number(std::string_view text);

// A v1 limit: "-1" or any value of 2^62 or more (v1 shows "no limit" as the largest multiple of
// the page size below 2^63) is kUnlimited.
[[nodiscard]] std::optional<std::uint64_t> v1_limit(std::string_view text);

// A v2 limit: "max" is kUnlimited.
[[nodiscard]] std::optional<std::uint64_t> v2_limit(std::string_view text);

// The value of the line "`key` N" of a flat-keyed file (cpu.stat, memory.stat, memory.events,
// memory.oom_control); nullopt if there is no such line.
[[nodiscard]] std::optional<std::uint64_t> keyed_value(std::string_view text, std::string_view key);

// The error for a file whose contents are not what the kernel writes there: the wrong file.
[[nodiscard]] Status unexpected_contents(const std::string& path, std::string_view text);

// Reads the number in `dir`/`file` into `out` with `parse`; a missing file leaves `out` as it
// is, as read_optional() explains.
[[nodiscard]] Status read_number(
    const std::string& dir, const char* file, std::uint64_t& out,
    std::optional<std::uint64_t> (*parse)(std::string_view) = to_number);

// The lines of `text`, without empty ones.
[[nodiscard]] std::vector<std::string_view> lines(std::string_view text);

// "MAJ:MIN" of a per-device line, or nullopt if `word` is not one.
struct DeviceNumber {
  std::uint32_t major = 0;
  std::uint32_t minor = 0;
  bool operator==(const DeviceNumber&) const = default;
  auto operator<=>(const DeviceNumber&) const = default;
};
[[nodiscard]] std::optional<DeviceNumber> to_device(std::string_view word);
[[nodiscard]] std::string to_string(DeviceNumber device);

// One value that apply() writes to one interface file.
struct FileWrite {
  std::string option;  // the command-line option the value comes from ("--memory")
  std::string path;
  std::string value;
  // The value that undoes this write, given the file's contents before it. Unset: the first
  // line of those contents. Per-device files (blkio.throttle.*, io.max) set it to pick out the
  // device's old line, or to remove the device's limit if it had none.
  std::function<std::string(std::string_view before)> undo;
  // What to say when the kernel refuses the value with errno `code`, after "<option>: ". Unset,
  // or returning "": "the kernel refused "<value>" for <path>: <strerror>". Set where a reason
  // can be named (the VE using more memory than the new limit).
  std::function<std::string(int code)> explain;
};

// Writes `writes` in order, reading each file just before writing it. If a read or a write
// fails, the files already written get their previous values back in reverse order, so the
// limits in force before stay in force, and the error (ErrorKind::failure with the errno) names
// the option: "--memory: the VE already uses 80.0 MiB, ...". A restore that fails too is added
// to the message.
[[nodiscard]] Status write_all_or_restore(const std::vector<FileWrite>& writes);

// Limits' four device throttles, each with its option, its v1 file and its key in v2's io.max.
struct Throttle {
  std::string_view option;
  const std::vector<DeviceRate>* rates;
  const char* v1_file;
  const char* v2_key;
};
[[nodiscard]] std::array<Throttle, 4> throttles(const Limits& limits);

// Refuses a cpuset with CPUs that `offered` (the text of the effective cpuset file of `dir`, the
// VE's parent) lacks: "--cpuset: CPU 3 is not available in <dir> (it has 0-1)". A `cpuset` or
// `offered` that is no CPU list is left to other checks.
[[nodiscard]] Status check_cpuset_within(std::string_view cpuset, std::string_view offered,
                                         const std::string& dir);

// `mount`/`rel`, or the nearest of its ancestors down to `mount` that exists: what check() looks
// at before the VE's parent cgroup has been created.
[[nodiscard]] std::string nearest_existing(const std::string& mount, std::string_view rel);

}  // namespace kapsel::cgroup
