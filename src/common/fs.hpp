// File-system helpers shared by the store, the image builder and the drivers.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::fs {

// Reads a whole file.
[[nodiscard]] Result<std::string> read_file(const std::string& path);

// Writes `data` to `path` atomically: a temporary file in the same directory is written,
// fsync'ed and renamed over `path`, then the directory is fsync'ed, so a reader (or a crash)
// sees either the old or the new contents, never a mix. With `durable` false the fsyncs are
// skipped: still atomic for readers, but not across a power loss (runtime state on tmpfs, or
// an ephemeral VE that would not outlive a reboot anyway).
[[nodiscard]] Status write_file_atomic(const std::string& path, std::string_view data,
                                       mode_t mode = 0644, bool durable = true);

// Writes all of `data` to `fd`, retrying short writes and EINTR; `path` names it in errors.
[[nodiscard]] Status write_all(int fd, std::string_view data, const std::string& path);

// Names of the entries of the directory open as `dfd`, without "." and ".."; `dfd` stays open
// and its offset is untouched (the listing reads through a duplicate).
[[nodiscard]] Result<std::vector<std::string>> list_dir(int dfd, const std::string& path);

// Writes `data` to an existing file (cgroup, /proc files) in one write(2) call: such files
// take one value per write and must not be truncated or renamed.
[[nodiscard]] Status write_existing(const std::string& path, std::string_view data);

// mkdir -p; existing directories are fine.
[[nodiscard]] Status make_dirs(const std::string& path, mode_t mode = 0755);

// rm -rf that never follows symlinks and never crosses into another mount, so a tree that a VE
// could have written cannot steer it outside itself. A missing path is success.
[[nodiscard]] Status remove_tree(const std::string& path);

[[nodiscard]] bool exists(const std::string& path);
[[nodiscard]] bool is_dir(const std::string& path);

}  // namespace kapsel::fs
