#include "cli/limit_flags.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

namespace kapsel::cli {

void LimitFlags::add_to(CLI::App& cmd) {
  const std::string group = "Resource limits";
  auto opt = [&](const char* name, std::string& into, const char* help) {
    cmd.add_option(name, into, help)->group(group);
  };
  auto multi = [&](const char* name, std::vector<std::string>& into, const char* help) {
    cmd.add_option(name, into, help)->group(group)->take_all()->expected(1);
  };
  opt("-m,--memory", memory, "Memory limit, e.g. 256M, 2G (max: none)");
  opt("--memory-swap", memory_swap, "Memory plus swap limit, e.g. 512M (max: none)");
  opt("--cpus", cpus, "CPU bandwidth in CPUs, e.g. 0.5, 2 (0 or max: none)");
  opt("--cpu-shares", cpu_shares, "Relative CPU weight, cgroup v1 scale 2-262144 (default 1024)");
  opt("--cpu-weight", cpu_weight, "Relative CPU weight, cgroup v2 scale 1-10000 (default 100)");
  opt("--cpuset", cpuset, "Host CPUs the VE may run on, e.g. 0-1,3");
  opt("--pids", pids, "Maximum number of processes and threads (max: none)");
  opt("--blkio-weight", blkio_weight, "Relative block I/O weight, 10-1000");
  multi("--device-read-bps", read_bps, "Read rate limit of a device, DEV:RATE e.g. /dev/vda:10M");
  multi("--device-write-bps", write_bps, "Write rate limit of a device, DEV:RATE");
  multi("--device-read-iops", read_iops, "Read operations per second of a device, DEV:N");
  multi("--device-write-iops", write_iops, "Write operations per second of a device, DEV:N");
}

Result<cgroup::Limits> LimitFlags::parse() const {
  cgroup::Limits l;
  if (!memory.empty()) {
    auto v = cgroup::parse_size("--memory", memory);
    if (!v) return tl::unexpected(v.error());
    l.memory = *v;
  }
  if (!memory_swap.empty()) {
    auto v = cgroup::parse_size("--memory-swap", memory_swap);
    if (!v) return tl::unexpected(v.error());
    l.memory_swap = *v;
  }
  if (!cpus.empty()) {
    auto v = cgroup::parse_cpus("--cpus", cpus);
    if (!v) return tl::unexpected(v.error());
    l.cpus = *v;
  }
  if (!cpu_shares.empty() && !cpu_weight.empty())
    return fail(ErrorKind::usage, "--cpu-shares and --cpu-weight set the same thing; use one");
  if (!cpu_shares.empty()) {
    auto v = cgroup::parse_count("--cpu-shares", cpu_shares, 2, 262144);
    if (!v) return tl::unexpected(v.error());
    l.cpu_shares = *v;
  }
  if (!cpu_weight.empty()) {
    auto v = cgroup::parse_count("--cpu-weight", cpu_weight, 1, 10000);
    if (!v) return tl::unexpected(v.error());
    l.cpu_weight = *v;
  }
  if (!cpuset.empty()) {
    auto host = cgroup::host_online_cpus();
    if (!host) return tl::unexpected(host.error().context("--cpuset"));
    auto v = cgroup::parse_cpuset("--cpuset", cpuset, *host);
    if (!v) return tl::unexpected(v.error());
    l.cpuset = *v;
  }
  if (!pids.empty()) {
    auto v = cgroup::parse_count("--pids", pids, 1, 4194304, /*unlimited_ok=*/true);
    if (!v) return tl::unexpected(v.error());
    l.pids = *v;
  }
  if (!blkio_weight.empty()) {
    auto v = cgroup::parse_count("--blkio-weight", blkio_weight, 10, 1000);
    if (!v) return tl::unexpected(v.error());
    l.blkio_weight = *v;
  }
  auto rates = [](const char* option, const std::vector<std::string>& specs, bool iops,
                  std::vector<cgroup::DeviceRate>& into) -> Status {
    for (const auto& spec : specs) {
      auto r = cgroup::parse_device_rate(option, spec, iops);
      if (!r) return tl::unexpected(r.error());
      into.push_back(*r);
    }
    return {};
  };
  KAPSEL_TRY(rates("--device-read-bps", read_bps, false, l.read_bps), "limits");
  KAPSEL_TRY(rates("--device-write-bps", write_bps, false, l.write_bps), "limits");
  KAPSEL_TRY(rates("--device-read-iops", read_iops, true, l.read_iops), "limits");
  KAPSEL_TRY(rates("--device-write-iops", write_iops, true, l.write_iops), "limits");
  return l;
}

std::vector<std::pair<std::string, std::string>> describe(const cgroup::Limits& l) {
  std::vector<std::pair<std::string, std::string>> out;
  auto bytes = [](std::uint64_t v) {
    return v == cgroup::kUnlimited ? std::string("unlimited") : cgroup::format_bytes(v);
  };
  if (l.memory) out.emplace_back("memory", bytes(*l.memory));
  if (l.memory_swap) out.emplace_back("memory+swap", bytes(*l.memory_swap));
  if (l.cpus) out.emplace_back("cpus", *l.cpus > 0 ? fmt::format("{:g}", *l.cpus) : "unlimited");
  if (l.cpu_shares) out.emplace_back("cpu shares", std::to_string(*l.cpu_shares));
  if (l.cpu_weight) out.emplace_back("cpu weight", std::to_string(*l.cpu_weight));
  if (l.cpuset) out.emplace_back("cpuset", l.cpuset->empty() ? "all" : *l.cpuset);
  if (l.pids)
    out.emplace_back("pids", *l.pids == cgroup::kUnlimited ? "unlimited" : std::to_string(*l.pids));
  if (l.blkio_weight) out.emplace_back("blkio weight", std::to_string(*l.blkio_weight));
  auto rates = [&](const char* what, const std::vector<cgroup::DeviceRate>& rs, bool iops) {
    for (const auto& r : rs) {
      out.emplace_back(what, fmt::format("{}:{} {}", r.major, r.minor,
                                         iops ? std::to_string(r.rate) + "/s"
                                              : cgroup::format_bytes(r.rate) + "/s"));
    }
  };
  rates("read bps", l.read_bps, false);
  rates("write bps", l.write_bps, false);
  rates("read iops", l.read_iops, true);
  rates("write iops", l.write_iops, true);
  return out;
}

}  // namespace kapsel::cli
