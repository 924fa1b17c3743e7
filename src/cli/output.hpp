// Presentation for the CLI: tables for people, exit codes for scripts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace kapsel::cli {

// Exit codes a script can rely on (docs/cli.md). `exec` and `run` instead exit with the
// command's own status, and with 125/126/127 when it could not be run (as docker does).
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,
  kExitUsage = 2,
  kExitNotFound = 3,
  kExitExists = 4,
  kExitState = 5,
  kExitPermission = 6,
  kExitExecFailed = 125,
};

[[nodiscard]] int exit_code_for(const Error& e);

// A left-aligned text table with a header row, columns padded to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  [[nodiscard]] std::string render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "3d4h", "2h05m", "4m12s", "9s".
[[nodiscard]] std::string human_duration(std::int64_t seconds);
// "12.3 MiB".
[[nodiscard]] std::string human_bytes(std::uint64_t bytes);
// "2026-11-24 09:47:37" in local time.
[[nodiscard]] std::string human_time(std::int64_t unix_time);

}  // namespace kapsel::cli
