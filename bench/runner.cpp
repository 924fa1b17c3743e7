#include "runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <sstream>

#include <fmt/format.h>

#include "common/fs.hpp"
#include "common/process.hpp"
#include "common/unique_fd.hpp"

extern char** environ;

namespace kapsel::bench {
namespace {

double now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// The PATH lookup is done once here rather than by posix_spawnp on every run: execvp's walk
// through PATH costs a failed execve per directory, which would be charged to the case.
Result<std::string> resolve(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    if (::access(program.c_str(), X_OK) != 0) return errno_fail(program);
    return program;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return fail(ErrorKind::not_found, program + ": not found in PATH");
}

std::string substitute(const std::string& arg, int n) {
  std::string out = arg;
  const std::string key = "{n}", value = std::to_string(n);
  for (auto pos = out.find(key); pos != std::string::npos; pos = out.find(key, pos + value.size()))
    out.replace(pos, key.size(), value);
  return out;
}

std::string join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// posix_spawn's attributes and file actions, set up once: every run starts its command with
// stdin and stdout on /dev/null, stderr into `stderr_fd`, default signal dispositions, an empty
// signal mask and its own process group (so a timeout can kill whatever it started).
class SpawnSetup {
 public:
  SpawnSetup(int devnull, int stderr_fd) {
    ::posix_spawn_file_actions_init(&actions_);
    ::posix_spawn_file_actions_adddup2(&actions_, devnull, 0);
    ::posix_spawn_file_actions_adddup2(&actions_, devnull, 1);
    ::posix_spawn_file_actions_adddup2(&actions_, stderr_fd, 2);
    ::posix_spawnattr_init(&attr_);
    sigset_t none, all;
    ::sigemptyset(&none);
    ::sigfillset(&all);
    ::posix_spawnattr_setsigmask(&attr_, &none);
    ::posix_spawnattr_setsigdefault(&attr_, &all);
    ::posix_spawnattr_setpgroup(&attr_, 0);
    ::posix_spawnattr_setflags(
        &attr_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  ~SpawnSetup() {
    ::posix_spawn_file_actions_destroy(&actions_);
    ::posix_spawnattr_destroy(&attr_);
  }
  [[nodiscard]] const posix_spawn_file_actions_t* actions() const { return &actions_; }
  [[nodiscard]] const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_{};
  posix_spawnattr_t attr_{};
};

// The last `max` bytes a failed run wrote to stderr: the error is usually at the end.
std::string stderr_tail(int fd, std::size_t max = 4096) {
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return "(no output on stderr)";
  off_t from = size > static_cast<off_t>(max) ? size - static_cast<off_t>(max) : 0;
  std::string out(static_cast<std::size_t>(size - from), '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), from);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return (from > 0 ? "..." : "") + out;
}

struct Runner {
  const SpawnSetup& spawn;
  int stderr_fd;
  double timeout_ms;

  // One timed run of `argv` (already resolved and substituted). Returns milliseconds.
  Result<double> time_once(const std::string& path, const std::vector<std::string>& argv) const {
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    if (::ftruncate(stderr_fd, 0) != 0) return errno_fail("clearing the captured stderr");

    double start = now_ms();
    pid_t pid = 0;
    if (int rc =
            ::posix_spawn(&pid, path.c_str(), spawn.actions(), spawn.attr(), cargv.data(), environ);
        rc != 0)
      return sys_fail(rc, "starting " + path);
    // Killed with its process group, should this run be abandoned.
    proc::Child child(pid, /*whole_group=*/true);
    // A pidfd lets the wait time out without signals or a second thread; it costs one syscall
    // per run, the same for every case.
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) return errno_fail("pidfd_open");
    pollfd p{pidfd.get(), POLLIN, 0};
    for (;;) {
      double left = timeout_ms - (now_ms() - start);
      if (left <= 0) {
        return fail(ErrorKind::failure, fmt::format("timed out after {:.0f} s\n{}",
                                                    timeout_ms / 1e3, stderr_tail(stderr_fd)));
      }
      int r = ::poll(&p, 1, static_cast<int>(std::ceil(left)));
      if (r > 0) break;
      if (r < 0 && errno != EINTR) return errno_fail("waiting for the command");
    }
    auto waited = child.wait();
    if (!waited) return tl::unexpected(waited.error());
    int status = *waited;
    double end = now_ms();

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return end - start;
    std::string how = WIFEXITED(status) ? fmt::format("exited with status {}", WEXITSTATUS(status))
                                        : fmt::format("was killed by signal {}", WTERMSIG(status));
    return fail(ErrorKind::failure, how + ", stderr:\n" + stderr_tail(stderr_fd));
  }
};

double percentile(const std::vector<double>& sorted, double q) {
  double h = (static_cast<double>(sorted.size()) - 1) * q;
  auto lo = static_cast<std::size_t>(std::floor(h));
  std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

std::string ms(double v) {
  return fmt::format("{:.1f}", v);
}

// The three load averages from /proc/loadavg, "" if it cannot be read.
std::string load_average() {
  auto text = fs::read_file("/proc/loadavg");
  if (!text) return "";
  std::istringstream in(*text);
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

}  // namespace

Summary summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const auto n = samples.size();
  const auto dn = static_cast<double>(n);
  Summary s;
  s.median = percentile(samples, 0.5);
  s.p10 = percentile(samples, 0.1);
  s.p90 = percentile(samples, 0.9);
  s.min = samples.front();
  s.max = samples.back();
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / dn;
  double sq = 0;
  for (double v : samples) sq += (v - s.mean) * (v - s.mean);
  s.stddev = n > 1 ? std::sqrt(sq / (dn - 1)) : 0;
  // The median lies between the j-th and k-th smallest of n samples with ~95% probability for
  // j, k = n/2 -+ 1.96*sqrt(n)/2 (normal approximation to the binomial; 1-based ranks).
  double half = 1.96 * std::sqrt(dn) / 2;
  auto rank = [&](double r) {
    return static_cast<std::size_t>(std::clamp(std::round(r), 1.0, dn)) - 1;
  };
  s.ci95_low = samples[rank(dn / 2 - half)];
  s.ci95_high = samples[rank(1 + dn / 2 + half)];
  return s;
}

Result<Report> run(std::string title, std::vector<Case> cases, const Options& options,
                   const Progress& progress) {
  if (cases.empty()) return fail(ErrorKind::usage, "no cases to run");
  if (options.runs < 1 || options.warmup < 0)
    return fail(ErrorKind::usage, "runs must be at least 1 and warm-up runs at least 0");

  Report report;
  report.title = std::move(title);
  report.options = options;
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    if (c.name.empty() || c.argv.empty())
      return fail(ErrorKind::usage, "every case needs a name and a command");
    for (std::size_t j = 0; j < i; ++j)
      if (cases[j].name == c.name) return fail(ErrorKind::usage, "two cases named " + c.name);
    auto path = resolve(c.argv[0]);
    if (!path) return tl::unexpected(path.error().context("case " + c.name));
    paths.push_back(*path);
    report.cases.push_back(CaseResult{.spec = c, .samples_ms = {}, .summary = {}});
  }
  if (!options.reference.empty()) {
    auto it = std::find_if(cases.begin(), cases.end(),
                           [&](const Case& c) { return c.name == options.reference; });
    if (it == cases.end())
      return fail(ErrorKind::usage, "reference case " + options.reference + " is not a case");
    report.reference = static_cast<std::size_t>(it - cases.begin());
  }

  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return errno_fail("opening /dev/null");
  UniqueFd err(::memfd_create("kapsel-bench-stderr", MFD_CLOEXEC));
  if (!err) return errno_fail("memfd_create");
  SpawnSetup spawn(devnull.get(), err.get());
  Runner runner{spawn, err.get(), options.timeout_seconds * 1e3};

  report.load_before = load_average();
  const int rounds = options.warmup + options.runs;
  const auto k = cases.size();
  int seq = 0;
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t i = 0; i < k; ++i) {
      // Each round starts one case further on, so no case always follows the same other case.
      std::size_t c = (static_cast<std::size_t>(round) + i) % k;
      CaseResult& result = report.cases[c];
      if (progress) progress(round + 1, rounds, result.spec.name);
      int n = seq++;
      std::vector<std::string> argv;
      for (const auto& a : result.spec.argv) argv.push_back(substitute(a, n));
      auto t = runner.time_once(paths[c], argv);
      if (!t) {
        bool warm = round < options.warmup;
        return tl::unexpected(t.error().context(
            fmt::format("case {}, {} {} ({})", result.spec.name, warm ? "warm-up run" : "run",
                        warm ? round + 1 : round - options.warmup + 1, join(argv))));
      }
      if (round >= options.warmup) result.samples_ms.push_back(*t);
    }
  }

  report.load_after = load_average();
  for (auto& c : report.cases) c.summary = summarize(c.samples_ms);
  const double ref = report.cases[report.reference].summary.median;
  for (auto& c : report.cases) c.reference_ratio = ref / c.summary.median;
  return report;
}

std::string format_table(const Report& report) {
  const auto& ref = report.cases[report.reference].spec.name;
  std::vector<std::vector<std::string>> rows{
      {"case", "median", "95% CI of median", "p10", "p90", "min", "max", "mean", ref + " / case"}};
  for (const auto& c : report.cases) {
    const Summary& s = c.summary;
    rows.push_back({c.spec.name, ms(s.median), ms(s.ci95_low) + " - " + ms(s.ci95_high), ms(s.p10),
                    ms(s.p90), ms(s.min), ms(s.max), ms(s.mean),
                    fmt::format("{:.2f}", c.reference_ratio)});
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());

  std::string out;
  if (!report.title.empty()) out += report.title + "\n";
  out += fmt::format(
      "{} runs of each case after {} warm-up runs, interleaved; wall times in ms; last column: "
      "median of {} divided by the case's median\n",
      report.options.runs, report.options.warmup, ref);
  if (!report.load_before.empty()) {
    out +=
        fmt::format("load average before: {}, after: {}\n", report.load_before, report.load_after);
  }
  out += "\n";
  for (const auto& row : rows) {
    std::string line;
    // The case name is text and left-aligned; the numbers line up on the right.
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += i == 0 ? fmt::format("{:<{}}", row[i], width[i])
                     : fmt::format("  {:>{}}", row[i], width[i]);
    }
    out += line + "\n";
  }
  return out;
}

nlohmann::ordered_json to_json(const Report& report) {
  nlohmann::ordered_json host;
  if (utsname u{}; ::uname(&u) == 0) {
    host["kernel"] = u.release;
    host["machine"] = u.machine;
  }
  host["cpus"] = ::sysconf(_SC_NPROCESSORS_ONLN);

  host["load_before"] = report.load_before;
  host["load_after"] = report.load_after;

  nlohmann::ordered_json cases = nlohmann::ordered_json::array();
  for (const auto& c : report.cases) {
    const Summary& s = c.summary;
    cases.push_back({{"name", c.spec.name},
                     {"description", c.spec.description},
                     {"argv", c.spec.argv},
                     {"median_ms", s.median},
                     {"median_ci95_ms", {s.ci95_low, s.ci95_high}},
                     {"p10_ms", s.p10},
                     {"p90_ms", s.p90},
                     {"min_ms", s.min},
                     {"max_ms", s.max},
                     {"mean_ms", s.mean},
                     {"stddev_ms", s.stddev},
                     {"reference_over_case", c.reference_ratio},
                     {"samples_ms", c.samples_ms}});
  }
  return {{"title", report.title},
          {"runs", report.options.runs},
          {"warmup", report.options.warmup},
          {"reference", report.cases[report.reference].spec.name},
          {"host", host},
          {"cases", cases}};
}

}  // namespace kapsel::bench
