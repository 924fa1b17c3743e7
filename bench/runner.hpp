// A benchmark runner for whole commands: it times a list of cases, each a command line run to
// completion, and compares their medians with one reference case. Suites (start-up against other
// container tools today; UML, VM and workload runs later) only supply the list of cases.
//
// What it measures: the wall time from just before posix_spawn(3) to just after waitpid(2)
// returns, on CLOCK_MONOTONIC, with stdin and stdout on /dev/null and stderr captured (shown only
// if the run fails). The harness's own cost (one vfork-style spawn and a wait) is the same for
// every case and shows in the "host /bin/true" baseline that suites include.
//
// How: all cases are run round-robin, one run of each per round, and each round starts at the
// next case, so slow drift of the machine (other load, caches, thermal state) and any after-effects
// of one tool on the next (a daemon's deferred cleanup) fall on all cases alike instead of on
// whichever ran last. Warm-up rounds are run the same way and discarded.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace kapsel::bench {

// One command to time. Any "{n}" inside an argument is replaced by a number unique to each run
// (warm-up runs included), for tools that need a fresh container name every time.
struct Case {
  std::string name;
  std::vector<std::string> argv;  // argv[0] without a slash is looked up in PATH once, up front
  std::string description;        // what the case does, for the JSON report
};

struct Options {
  int runs = 50;
  int warmup = 5;
  double timeout_seconds = 60;  // a run that takes longer aborts the benchmark
  std::string reference;        // the case the others are compared with; empty: the first
};

// Milliseconds. ci95_low/high bound the median with ~95% confidence, from order statistics, so
// they hold whatever the distribution (start-up times have long right tails).
struct Summary {
  double median = 0, p10 = 0, p90 = 0, min = 0, max = 0, mean = 0, stddev = 0;
  double ci95_low = 0, ci95_high = 0;
};

struct CaseResult {
  Case spec;
  std::vector<double> samples_ms;  // in the order they were taken
  Summary summary;
  double reference_ratio = 0;  // reference median / this median: below 1, the reference is faster
};

struct Report {
  std::string title;
  Options options;
  std::vector<CaseResult> cases;
  std::size_t reference = 0;  // index into cases
  // /proc/loadavg before the first and after the last run: other work on the machine (a build,
  // a test suite) skews every case, and a reader of the report should be able to see that.
  std::string load_before, load_after;
};

// Called before each run, e.g. to show progress: (round, rounds, case name); warm-up rounds
// come first and are counted in `rounds`.
using Progress = std::function<void(int round, int rounds, const std::string& name)>;

// Runs every case options.warmup + options.runs times, interleaved. Fails on the first run that
// cannot be started, exits non-zero, is killed or times out; the error names the case and run
// and carries the run's stderr.
[[nodiscard]] Result<Report> run(std::string title, std::vector<Case> cases, const Options& options,
                                 const Progress& progress = {});

// Median, percentiles (linear interpolation between closest ranks), mean, standard deviation and
// the median's confidence interval of `samples`, which must not be empty.
[[nodiscard]] Summary summarize(std::vector<double> samples);

// A table for people: one row per case with median, p10, p90, min, max, mean and the ratio of
// the reference's median to the case's.
[[nodiscard]] std::string format_table(const Report& report);

// Everything in the report, samples included, for scripts.
[[nodiscard]] nlohmann::ordered_json to_json(const Report& report);

}  // namespace kapsel::bench
