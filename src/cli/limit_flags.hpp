// The resource-limit options shared by create, run and set (--memory, --cpus, ...). They are
// taken as text and parsed by the cgroup part's parsers, so that a bad value gets kapsel's
// one-line error naming the option and the accepted form.
#pragma once

#include <string>
#include <vector>

#include "cgroup/resources.hpp"
#include "common/error.hpp"

namespace CLI {
class App;
}

namespace kapsel::cli {

struct LimitFlags {
  std::string memory;
  std::string memory_swap;
  std::string cpus;
  std::string cpu_shares;
  std::string cpu_weight;
  std::string cpuset;
  std::string pids;
  std::string blkio_weight;
  std::vector<std::string> read_bps;
  std::vector<std::string> write_bps;
  std::vector<std::string> read_iops;
  std::vector<std::string> write_iops;

  // Declares the options on `cmd`, in an option group of their own in --help.
  void add_to(CLI::App& cmd);
  // The limits the given options set (unset options leave their field unset).
  [[nodiscard]] Result<cgroup::Limits> parse() const;
};

// Lines for `status`: "memory: 256.0 MiB", ... (what is set only).
[[nodiscard]] std::vector<std::pair<std::string, std::string>> describe(const cgroup::Limits& l);

}  // namespace kapsel::cli
