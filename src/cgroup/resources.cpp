#include "cgroup/resources.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

using json = nlohmann::json;

// The largest limit accepted as a number: v1 takes limits as signed 64-bit values, and anything
// near this is "no limit" in practice.
constexpr std::uint64_t kMaxSize = static_cast<std::uint64_t>(INT64_MAX);

constexpr const char* kSizeForm =
    "use a number with an optional K, M, G or T suffix (e.g. 256M) or \"max\"";
constexpr const char* kRateForm = "use a number with an optional K, M, G or T suffix (e.g. 10M)";
constexpr const char* kCpusForm =
    "use a positive decimal such as 0.5 or 2, or 0 or \"max\" for no limit";
constexpr const char* kCpuListForm = "use CPU numbers and ranges such as 0-2,5";

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

tl::unexpected<Error> usage(std::string_view option, const std::string& message) {
  return fail(ErrorKind::usage, std::string(option) + ": " + message);
}

std::string format_cpus(double cpus) {
  char buf[32];
  (void)std::snprintf(buf, sizeof buf, "%g", cpus);
  return buf;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

// A decimal of digits with at most one '.', such as "12", "0.5", "1."; no sign, no exponent.
bool is_decimal(std::string_view text) {
  if (text.empty() || text == ".") return false;
  size_t dot = text.find('.');
  if (dot == std::string_view::npos) return is_digits(text);
  std::string_view whole = text.substr(0, dot), frac = text.substr(dot + 1);
  return (whole.empty() || is_digits(whole)) && (frac.empty() || is_digits(frac));
}

// Whole digits as a number; nullopt on overflow.
std::optional<std::uint64_t> to_u64(std::string_view digits) {
  std::uint64_t v = 0;
  for (char c : digits) {
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// A size without the "max" forms: digits with an optional fraction and binary suffix. Returns
// nullopt for text that is not of that form; `too_large` is set for one that overflows.
std::optional<std::uint64_t> parse_bytes(std::string_view text, bool& too_large) {
  too_large = false;
  std::string t = lower(text);
  std::string_view v = t;
  if (v.size() > 1 && v.back() == 'b') v.remove_suffix(1);  // "256mb", "256b"
  int shift = 0;
  if (!v.empty()) {
    switch (v.back()) {
      case 'k':
        shift = 10;
        break;
      case 'm':
        shift = 20;
        break;
      case 'g':
        shift = 30;
        break;
      case 't':
        shift = 40;
        break;
      default:
        break;
    }
    if (shift != 0) v.remove_suffix(1);
  }
  if (!is_decimal(v)) return std::nullopt;
  size_t dot = v.find('.');
  if (dot == std::string_view::npos) {
    auto n = to_u64(v);
    if (!n || *n > (kMaxSize >> shift)) {
      too_large = true;
      return 0;
    }
    return *n << shift;
  }
  // A fraction only makes sense with a unit: "1.5G" is bytes, "1.5" bytes is not.
  if (shift == 0) return std::nullopt;
  long double value = std::strtold(std::string(v).c_str(), nullptr);
  long double bytes = std::floor(std::ldexp(value, shift));
  if (!(bytes <= static_cast<long double>(kMaxSize))) {
    too_large = true;
    return 0;
  }
  return static_cast<std::uint64_t>(bytes);
}

void add_device_rates(std::vector<DeviceRate>& base, const std::vector<DeviceRate>& change) {
  for (const auto& c : change) {
    auto it = std::find_if(base.begin(), base.end(), [&](const DeviceRate& d) {
      return d.major == c.major && d.minor == c.minor;
    });
    if (it != base.end()) base.erase(it);
    if (c.rate != 0) base.push_back(c);
  }
  std::sort(base.begin(), base.end(), [](const DeviceRate& a, const DeviceRate& b) {
    return std::tie(a.major, a.minor) < std::tie(b.major, b.minor);
  });
}

// kUnlimited is stored as "max", the word the v2 interface files use.
json limit_to_json(std::uint64_t value) {
  if (value == kUnlimited) return "max";
  return value;
}

std::uint64_t limit_from_json(const json& j, const char* key) {
  if (j.is_string()) {
    if (j.get<std::string>() == "max") return kUnlimited;
    throw json::type_error::create(302,
                                   std::string("limits.") + key + ": \"" + j.get<std::string>() +
                                       "\" is neither a number nor \"max\"",
                                   &j);
  }
  return j.get<std::uint64_t>();
}

json rates_to_json(const std::vector<DeviceRate>& rates) {
  json out = json::array();
  for (const auto& r : rates)
    out.push_back(json{{"major", r.major}, {"minor", r.minor}, {"rate", r.rate}});
  return out;
}

std::vector<DeviceRate> rates_from_json(const json& j) {
  std::vector<DeviceRate> out;
  for (const auto& e : j) {
    out.push_back(DeviceRate{e.at("major").get<std::uint32_t>(), e.at("minor").get<std::uint32_t>(),
                             e.at("rate").get<std::uint64_t>()});
  }
  return out;
}

}  // namespace

bool Limits::empty() const {
  return *this == Limits{};
}

Limits merge(const Limits& base, const Limits& change) {
  Limits out = base;
  if (change.memory) out.memory = change.memory;
  if (change.memory_swap) out.memory_swap = change.memory_swap;
  if (change.cpus) out.cpus = change.cpus;
  // Two spellings of one setting: the one given last wins, the other would contradict it.
  if (change.cpu_shares || change.cpu_weight) {
    out.cpu_shares = change.cpu_shares;
    out.cpu_weight = change.cpu_weight;
  }
  if (change.cpuset) out.cpuset = change.cpuset;
  if (change.pids) out.pids = change.pids;
  if (change.blkio_weight) out.blkio_weight = change.blkio_weight;
  add_device_rates(out.read_bps, change.read_bps);
  add_device_rates(out.write_bps, change.write_bps);
  add_device_rates(out.read_iops, change.read_iops);
  add_device_rates(out.write_iops, change.write_iops);
  return out;
}

void to_json(json& j, const Limits& l) {
  j = json::object();
  if (l.memory) j["memory"] = limit_to_json(*l.memory);
  if (l.memory_swap) j["memory_swap"] = limit_to_json(*l.memory_swap);
  if (l.cpus) j["cpus"] = *l.cpus;
  if (l.cpu_shares) j["cpu_shares"] = *l.cpu_shares;
  if (l.cpu_weight) j["cpu_weight"] = *l.cpu_weight;
  if (l.cpuset) j["cpuset"] = *l.cpuset;
  if (l.pids) j["pids"] = limit_to_json(*l.pids);
  if (l.blkio_weight) j["blkio_weight"] = *l.blkio_weight;
  if (!l.read_bps.empty()) j["read_bps"] = rates_to_json(l.read_bps);
  if (!l.write_bps.empty()) j["write_bps"] = rates_to_json(l.write_bps);
  if (!l.read_iops.empty()) j["read_iops"] = rates_to_json(l.read_iops);
  if (!l.write_iops.empty()) j["write_iops"] = rates_to_json(l.write_iops);
}

void from_json(const json& j, Limits& l) {
  l = Limits{};
  if (!j.is_object()) {
    throw json::type_error::create(
        302, "limits must be an object, not " + std::string(j.type_name()), &j);
  }
  if (j.contains("memory")) l.memory = limit_from_json(j.at("memory"), "memory");
  if (j.contains("memory_swap"))
    l.memory_swap = limit_from_json(j.at("memory_swap"), "memory_swap");
  if (j.contains("cpus")) l.cpus = j.at("cpus").get<double>();
  if (j.contains("cpu_shares")) l.cpu_shares = j.at("cpu_shares").get<std::uint64_t>();
  if (j.contains("cpu_weight")) l.cpu_weight = j.at("cpu_weight").get<std::uint64_t>();
  if (j.contains("cpuset")) l.cpuset = j.at("cpuset").get<std::string>();
  if (j.contains("pids")) l.pids = limit_from_json(j.at("pids"), "pids");
  if (j.contains("blkio_weight")) l.blkio_weight = j.at("blkio_weight").get<std::uint64_t>();
  if (j.contains("read_bps")) l.read_bps = rates_from_json(j.at("read_bps"));
  if (j.contains("write_bps")) l.write_bps = rates_from_json(j.at("write_bps"));
  if (j.contains("read_iops")) l.read_iops = rates_from_json(j.at("read_iops"));
  if (j.contains("write_iops")) l.write_iops = rates_from_json(j.at("write_iops"));
}

Status validate(const Limits& l) {
  if (l.memory && *l.memory == 0) return usage(kMemoryOption, "0 is not a usable limit");
  if (l.memory_swap && *l.memory_swap == 0)
    return usage(kMemorySwapOption, "0 is not a usable limit");
  if (l.memory && l.memory_swap && *l.memory_swap != kUnlimited) {
    if (*l.memory == kUnlimited) {
      return usage(kMemorySwapOption, "a limit on memory plus swap needs a " +
                                          std::string(kMemoryOption) + " limit as well");
    }
    if (*l.memory_swap < *l.memory) {
      return usage(kMemorySwapOption,
                   format_bytes(*l.memory_swap) + " is less than " + std::string(kMemoryOption) +
                       " " + format_bytes(*l.memory) +
                       "; it counts memory plus swap, so it must be at least as large");
    }
  }
  if (l.cpus && (!std::isfinite(*l.cpus) || *l.cpus < 0 || (*l.cpus > 0 && *l.cpus < kMinCpus))) {
    return usage(kCpusOption,
                 format_cpus(*l.cpus) + " is not a CPU limit; " + std::string(kCpusForm));
  }
  if (l.cpu_shares && l.cpu_weight) {
    return usage(kCpuSharesOption, "give either it or " + std::string(kCpuWeightOption) +
                                       ", which are two scales of one setting");
  }
  auto in_range = [](std::string_view option, std::optional<std::uint64_t> v, std::uint64_t min,
                     std::uint64_t max) -> Status {
    if (v && (*v < min || *v > max)) {
      return usage(option, std::to_string(*v) + " is out of range; use a whole number from " +
                               std::to_string(min) + " to " + std::to_string(max));
    }
    return {};
  };
  for (auto st : {in_range(kCpuSharesOption, l.cpu_shares, kMinCpuShares, kMaxCpuShares),
                  in_range(kCpuWeightOption, l.cpu_weight, kMinCpuWeight, kMaxCpuWeight),
                  in_range(kBlkioWeightOption, l.blkio_weight, kMinBlkioWeight, kMaxBlkioWeight)})
    if (!st) return st;
  if (l.pids && *l.pids == 0)
    return usage(kPidsOption, "0 would forbid every process; use at least 1 or \"max\"");
  if (l.cpuset) {
    if (auto cpus = parse_cpu_list(*l.cpuset); !cpus)
      return usage(kCpusetOption, cpus.error().message);
  }
  return {};
}

std::uint64_t shares_to_weight(std::uint64_t shares) {
  shares = std::clamp(shares, kMinCpuShares, kMaxCpuShares);
  return 1 + ((shares - 2) * 9999) / 262142;
}

std::uint64_t weight_to_shares(std::uint64_t weight) {
  weight = std::clamp(weight, kMinCpuWeight, kMaxCpuWeight);
  return 2 + ((weight - 1) * 262142) / 9999;
}

std::uint64_t blkio_weight_to_io_weight(std::uint64_t weight) {
  weight = std::clamp(weight, kMinBlkioWeight, kMaxBlkioWeight);
  return 1 + ((weight - 10) * 9999) / 990;
}

Result<std::uint64_t> parse_size(std::string_view option, std::string_view text) {
  std::string word = lower(text);
  if (word == "max" || word == "unlimited" || word == "-1") return kUnlimited;
  bool too_large = false;
  auto bytes = parse_bytes(text, too_large);
  if (!bytes) return usage(option, quoted(text) + " is not a size; " + kSizeForm);
  if (too_large)
    return usage(option, quoted(text) + " is too large; " + kSizeForm + " for no limit");
  if (*bytes == 0)
    return usage(option, quoted(text) + " is not a usable limit; " + kSizeForm + " for no limit");
  return *bytes;
}

Result<double> parse_cpus(std::string_view option, std::string_view text) {
  std::string word = lower(text);
  if (word == "max" || word == "unlimited") return 0.0;
  if (!is_decimal(text)) {
    if (!text.empty() && text.front() == '-' && is_decimal(text.substr(1)))
      return usage(option, quoted(text) + " is negative; " + kCpusForm);
    return usage(option, quoted(text) + " is not a number of CPUs; " + kCpusForm);
  }
  double cpus = std::strtod(std::string(text).c_str(), nullptr);
  if (cpus == 0) return 0.0;
  // A quota below the kernel's minimum would be refused at start, long after the command that
  // set it returned; one that overflows the kernel's arithmetic is no limit at all.
  if (cpus < kMinCpus) {
    return usage(option, quoted(text) + " is less than the minimum of 0.01 CPUs (1 ms per " +
                             "100 ms period); " + kCpusForm);
  }
  if (!std::isfinite(cpus) || cpus > 1e6)
    return usage(option, quoted(text) + " is too large; " + kCpusForm);
  return cpus;
}

Result<std::vector<unsigned>> parse_cpu_list(std::string_view text) {
  auto bad = [&] {
    return fail(ErrorKind::usage, quoted(text) + " is not a CPU list; " + kCpuListForm);
  };
  std::string_view t = text;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  std::vector<unsigned> cpus;
  if (t.empty()) return cpus;
  auto number = [](std::string_view digits) -> std::optional<unsigned> {
    if (!is_digits(digits)) return std::nullopt;
    auto n = to_u64(digits);
    if (!n || *n > kMaxCpu) return std::nullopt;
    return static_cast<unsigned>(*n);
  };
  size_t pos = 0;
  while (pos <= t.size()) {
    size_t end = t.find(',', pos);
    if (end == std::string_view::npos) end = t.size();
    std::string_view item = t.substr(pos, end - pos);
    size_t dash = item.find('-');
    auto first = number(item.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : number(item.substr(dash + 1));
    if (!first || !last || *last < *first) return bad();
    for (unsigned c = *first; c <= *last; ++c) cpus.push_back(c);
    pos = end + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::string format_cpu_list(const std::vector<unsigned>& cpus) {
  std::vector<unsigned> sorted = cpus;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string out;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(sorted[i]);
    if (j > i) out += "-" + std::to_string(sorted[j]);
    i = j + 1;
  }
  return out;
}

Result<std::vector<unsigned>> host_online_cpus() {
  constexpr const char* kOnline = "/sys/devices/system/cpu/online";
  auto text = fs::read_file(kOnline);
  if (!text) return tl::unexpected(text.error().context("finding the host's CPUs"));
  auto cpus = parse_cpu_list(*text);
  if (!cpus) {
    return fail(ErrorKind::failure,
                std::string("finding the host's CPUs: unexpected contents of ") + kOnline);
  }
  return cpus;
}

Result<std::string> parse_cpuset(std::string_view option, std::string_view text,
                                 const std::vector<unsigned>& host_cpus) {
  auto cpus = parse_cpu_list(text);
  if (!cpus) return usage(option, cpus.error().message);
  std::vector<unsigned> missing;
  for (unsigned c : *cpus) {
    if (std::find(host_cpus.begin(), host_cpus.end(), c) == host_cpus.end()) missing.push_back(c);
  }
  if (!missing.empty()) {
    bool one = missing.size() == 1;
    return usage(option, std::string(one ? "CPU " : "CPUs ") + format_cpu_list(missing) +
                             (one ? " does" : " do") + " not exist on this host (it has " +
                             format_cpu_list(host_cpus) + ")");
  }
  return format_cpu_list(*cpus);
}

Result<std::uint64_t> parse_count(std::string_view option, std::string_view text, std::uint64_t min,
                                  std::uint64_t max, bool unlimited_ok) {
  std::string form = "use a whole number from " + std::to_string(min) + " to " +
                     std::to_string(max) + (unlimited_ok ? " or \"max\"" : "");
  std::string word = lower(text);
  if (unlimited_ok && (word == "max" || word == "unlimited")) return kUnlimited;
  if (!is_digits(text)) return usage(option, quoted(text) + " is not a whole number; " + form);
  auto n = to_u64(text);
  if (!n || *n < min || *n > max) return usage(option, quoted(text) + " is out of range; " + form);
  return *n;
}

Result<DeviceRate> parse_device_rate(std::string_view option, std::string_view text, bool is_iops) {
  std::string example = is_iops ? "/dev/vda:1000" : "/dev/vda:10M";
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    return usage(option, quoted(text) + " is not of the form DEVICE:RATE (e.g. " + example + ")");
  std::string device(text.substr(0, colon));
  std::string_view rate_text = text.substr(colon + 1);

  DeviceRate out;
  if (is_iops) {
    auto n = is_digits(rate_text) ? to_u64(rate_text) : std::nullopt;
    if (!n) {
      return usage(option, quoted(rate_text) +
                               " is not a rate; use a whole number of operations per second "
                               "(e.g. " +
                               example + "), 0 to remove the limit");
    }
    out.rate = *n;
  } else {
    bool too_large = false;
    auto bytes = parse_bytes(rate_text, too_large);
    if (!bytes || too_large) {
      return usage(option, quoted(rate_text) + " is not a rate; " + kRateForm +
                               " per second, 0 to remove the limit");
    }
    out.rate = *bytes;
  }

  struct stat st {};
  if (::stat(device.c_str(), &st) != 0) {
    return usage(option, device + ": " + std::strerror(errno) + "; name a block device (e.g. " +
                             example + ")");
  }
  if (!S_ISBLK(st.st_mode))
    return usage(option, device + " is not a block device; name one (e.g. " + example + ")");
  out.major = ::major(st.st_rdev);
  out.minor = ::minor(st.st_rdev);
  return out;
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes == kUnlimited) return "unlimited";
  if (bytes < 1024) return std::to_string(bytes) + " B";
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  // Round first, so that 1023.96 KiB shows as "1.0 MiB" rather than "1024.0 KiB".
  while (std::round(value * 10) / 10 >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  (void)std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

}  // namespace kapsel::cgroup
