#include "cli/stats_view.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/output.hpp"

namespace kapsel::cli {

StatsRow make_row(const ve::VeUsage& now, const ve::VeUsage* before) {
  const auto& c = now.usage.cgroup;
  StatsRow r;
  r.name = now.name;
  r.cpu_usage_ns = c.cpu_usage_ns;
  r.cpu_limit = c.cpu_quota;
  r.mem_usage = c.memory_usage;
  r.mem_limit = c.memory_limit;
  r.mem_cache = c.memory_cache;
  r.pids = c.pids_current;
  r.pids_limit = c.pids_limit;
  r.net_rx = now.usage.net_rx_bytes;
  r.net_tx = now.usage.net_tx_bytes;
  for (const auto& d : c.io) {
    r.blk_read += d.read_bytes;
    r.blk_write += d.write_bytes;
  }
  r.oom_kills = c.oom_kills;
  if (before && now.sampled_ns > before->sampled_ns &&
      c.cpu_usage_ns >= before->usage.cgroup.cpu_usage_ns) {
    r.cpu_percent = 100.0 *
                    static_cast<double>(c.cpu_usage_ns - before->usage.cgroup.cpu_usage_ns) /
                    static_cast<double>(now.sampled_ns - before->sampled_ns);
  }
  return r;
}

static std::string limit_of(std::uint64_t v, std::string (*show)(std::uint64_t)) {
  return v == cgroup::kUnlimited ? "-" : show(v);
}

std::string render_stats(const std::vector<StatsRow>& rows) {
  Table t({"NAME", "CPU %", "CPU LIMIT", "MEM USAGE / LIMIT", "MEM %", "PIDS", "NET RX / TX",
           "BLOCK READ / WRITE", "OOM"});
  for (const auto& r : rows) {
    std::string mem_pct = "-";
    if (r.mem_limit != cgroup::kUnlimited && r.mem_limit > 0)
      mem_pct = fmt::format(
          "{:.1f}%", 100.0 * static_cast<double>(r.mem_usage) / static_cast<double>(r.mem_limit));
    t.add({r.name, r.cpu_percent ? fmt::format("{:.1f}%", *r.cpu_percent) : "-",
           r.cpu_limit > 0 ? fmt::format("{:g}", r.cpu_limit) : "-",
           human_bytes(r.mem_usage) + " / " + limit_of(r.mem_limit, human_bytes), mem_pct,
           std::to_string(r.pids) + " / " +
               limit_of(r.pids_limit, [](std::uint64_t v) { return std::to_string(v); }),
           human_bytes(r.net_rx) + " / " + human_bytes(r.net_tx),
           human_bytes(r.blk_read) + " / " + human_bytes(r.blk_write),
           std::to_string(r.oom_kills)});
  }
  return t.render();
}

void to_json(nlohmann::json& j, const StatsRow& r) {
  auto limit = [](std::uint64_t v) {
    return v == cgroup::kUnlimited ? nlohmann::json(nullptr) : nlohmann::json(v);
  };
  j = nlohmann::json{{"name", r.name},
                     {"cpu_percent", r.cpu_percent ? nlohmann::json(*r.cpu_percent) : nullptr},
                     {"cpu_usage_ns", r.cpu_usage_ns},
                     {"cpu_limit", r.cpu_limit > 0 ? nlohmann::json(r.cpu_limit) : nullptr},
                     {"memory_usage_bytes", r.mem_usage},
                     {"memory_limit_bytes", limit(r.mem_limit)},
                     {"memory_cache_bytes", r.mem_cache},
                     {"pids", r.pids},
                     {"pids_limit", limit(r.pids_limit)},
                     {"net_rx_bytes", r.net_rx},
                     {"net_tx_bytes", r.net_tx},
                     {"block_read_bytes", r.blk_read},
                     {"block_write_bytes", r.blk_write},
                     {"oom_kills", r.oom_kills}};
}

}  // namespace kapsel::cli
