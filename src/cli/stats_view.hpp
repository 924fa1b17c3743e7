// Presentation of VE counters for `stats` and `top`: rates between two samples (CPU %), a table
// for people and JSON for scripts. CPU % is of one CPU, as in docker stats and top: a VE that
// keeps two CPUs busy shows 200%.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ve/lifecycle.hpp"

namespace kapsel::cli {

struct StatsRow {
  std::string name;
  std::optional<double> cpu_percent;  // none without an earlier sample
  std::uint64_t cpu_usage_ns = 0;
  double cpu_limit = 0;  // CPUs of bandwidth, 0 = none
  std::uint64_t mem_usage = 0;
  std::uint64_t mem_limit = 0;  // kUnlimited = none
  std::uint64_t mem_cache = 0;
  std::uint64_t pids = 0;
  std::uint64_t pids_limit = 0;
  std::uint64_t net_rx = 0;
  std::uint64_t net_tx = 0;
  std::uint64_t blk_read = 0;
  std::uint64_t blk_write = 0;
  std::uint64_t oom_kills = 0;
};

// `before`: the same VE's earlier sample, if any.
[[nodiscard]] StatsRow make_row(const ve::VeUsage& now, const ve::VeUsage* before);
[[nodiscard]] std::string render_stats(const std::vector<StatsRow>& rows);
void to_json(nlohmann::json& j, const StatsRow& row);

}  // namespace kapsel::cli
