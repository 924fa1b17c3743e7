// kapsel-bench: times whole commands against each other (see runner.hpp for how). The cases come
// from a JSON file that a suite script writes (bench/run.sh: kapsel against runc, lxc-execute and
// bwrap), or, for a quick comparison, from NAME=COMMAND arguments on the command line.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "runner.hpp"

namespace {

using kapsel::ErrorKind;
using kapsel::Result;
using kapsel::bench::Case;

struct Suite {
  std::string title;
  std::string reference;
  std::vector<Case> cases;
};

// {"title": "...", "reference": "kapsel",
//  "cases": [{"name": "runc", "argv": ["runc", "run", "c{n}"], "description": "..."}, ...]}
Result<Suite> load_suite(const std::string& path) {
  std::ifstream in(path);
  if (!in) return kapsel::errno_fail("opening " + path);
  // nlohmann reports malformed input by exception; it stops here and becomes an error value.
  try {
    auto j = nlohmann::json::parse(in);
    Suite s;
    s.title = j.value("title", "");
    s.reference = j.value("reference", "");
    for (const auto& c : j.at("cases")) {
      s.cases.push_back(Case{.name = c.at("name").get<std::string>(),
                             .argv = c.at("argv").get<std::vector<std::string>>(),
                             .description = c.value("description", "")});
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    return kapsel::fail(ErrorKind::usage, path + ": " + e.what());
  }
}

// "NAME=COMMAND", the command split at spaces (no quoting: use a cases file for anything more).
Result<Case> parse_inline(const std::string& arg) {
  auto eq = arg.find('=');
  if (eq == 0 || eq == std::string::npos)
    return kapsel::fail(ErrorKind::usage, "expected NAME=COMMAND, got '" + arg + "'");
  Case c{.name = arg.substr(0, eq), .argv = {}, .description = arg.substr(eq + 1)};
  std::istringstream words(arg.substr(eq + 1));
  for (std::string w; words >> w;) c.argv.push_back(w);
  if (c.argv.empty()) return kapsel::fail(ErrorKind::usage, "case " + c.name + " has no command");
  return c;
}

// `kapsel-bench read-files [-n N] FILE...`: the cost of reading a whole file (open, read to the
// end, close), N times each, round-robin; prints the median and p90 in microseconds and each
// file's median relative to the first's. For /proc files served by the kernel, by kapsel's
// FUSE service and by lxcfs, whose cost a fork/exec per sample would drown.
int read_files_main(int argc, char** argv) {
  CLI::App app{"kapsel-bench read-files: time whole-file reads of each FILE"};
  int reads = 2000;
  std::vector<std::string> files;
  bool json = false;
  app.add_option("-n,--reads", reads, "Reads of each file")->capture_default_str();
  app.add_option("files", files, "Files to read")->required();
  app.add_flag("--json", json, "Print JSON");
  CLI11_PARSE(app, argc, argv);
  std::vector<std::vector<double>> samples(files.size());
  std::vector<char> buf(1 << 20);
  for (int i = 0; i < reads; ++i) {
    for (size_t f = 0; f < files.size(); ++f) {
      auto t0 = std::chrono::steady_clock::now();
      int fd = ::open(files[f].c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        std::cerr << "kapsel-bench: opening " << files[f] << ": " << std::strerror(errno) << "\n";
        return 1;
      }
      while (::read(fd, buf.data(), buf.size()) > 0) {
      }
      ::close(fd);
      samples[f].push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  auto pct = [](std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
  };
  nlohmann::json out = nlohmann::json::array();
  double base = pct(samples[0], 0.5);
  if (!json)
    std::cout << fmt::format("{:<48} {:>12} {:>10} {:>8}\n", "file", "median µs", "p90 µs",
                             "ratio");
  for (size_t f = 0; f < files.size(); ++f) {
    double med = pct(samples[f], 0.5), p90 = pct(samples[f], 0.9);
    out.push_back({{"file", files[f]}, {"median_us", med}, {"p90_us", p90}, {"ratio", med / base}});
    if (!json)
      std::cout << fmt::format("{:<48} {:>12.1f} {:>10.1f} {:>7.1f}x\n", files[f], med, p90,
                               med / base);
  }
  if (json) std::cout << out.dump(2) << "\n";
  return 0;
}

int run_main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "read-files")
    return read_files_main(argc - 1, argv + 1);
  CLI::App app{
      "kapsel-bench times commands against each other: every case is run --warmup + --runs "
      "times, round-robin, and reported with median, p10/p90, min/max and mean wall time and the "
      "ratio of the reference case's median to each case's."};
  std::string cases_file, reference, title, save;
  std::vector<std::string> inline_cases;
  kapsel::bench::Options options;
  bool json = false;
  app.add_option("--cases", cases_file, "JSON file with the cases (title, reference, cases[])")
      ->check(CLI::ExistingFile);
  app.add_option("-n,--runs", options.runs, "Measured runs of each case")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-w,--warmup", options.warmup, "Warm-up runs of each case, not measured")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--timeout", options.timeout_seconds, "Seconds a single run may take")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--reference", reference,
                 "Case the others are compared with (default: the file's, else the first)");
  app.add_option("--title", title, "Title of the report");
  app.add_flag("--json", json, "Print the report as JSON, samples included");
  app.add_option("--save", save, "Also write the JSON report to this file");
  app.add_option("case", inline_cases,
                 "NAME=COMMAND: a case given inline; COMMAND is split at spaces and \"{n}\" in "
                 "it becomes a number unique to each run");
  app.footer(
      "Examples:\n"
      "  kapsel-bench --cases bench-cases.json --json\n"
      "  kapsel-bench -n 20 'true=/bin/true' 'sh=/bin/sh -c true'");
  CLI11_PARSE(app, argc, argv);

  Suite suite;
  if (!cases_file.empty()) {
    auto s = load_suite(cases_file);
    if (!s) {
      std::cerr << "kapsel-bench: " << s.error().message << "\n";
      return 2;
    }
    suite = std::move(*s);
  }
  for (const auto& arg : inline_cases) {
    auto c = parse_inline(arg);
    if (!c) {
      std::cerr << "kapsel-bench: " << c.error().message << "\n";
      return 2;
    }
    suite.cases.push_back(std::move(*c));
  }
  if (!title.empty()) suite.title = title;
  options.reference = reference.empty() ? suite.reference : reference;

  // Progress only for a person watching; a log or a pipe gets the report alone.
  const bool show_progress = ::isatty(STDERR_FILENO) == 1;
  auto progress = [&](int round, int rounds, const std::string& name) {
    if (show_progress) {
      std::cerr << fmt::format("\r\033[Kround {}/{}{}: {}", round, rounds,
                               round <= options.warmup ? " (warm-up)" : "", name)
                << std::flush;
    }
  };
  auto report = kapsel::bench::run(suite.title, suite.cases, options, progress);
  if (show_progress) std::cerr << "\r\033[K" << std::flush;
  if (!report) {
    std::cerr << "kapsel-bench: " << report.error().message << "\n";
    return report.error().kind == ErrorKind::usage ? 2 : 1;
  }
  if (!save.empty()) {
    std::ofstream out(save);
    out << kapsel::bench::to_json(*report).dump(2) << "\n";
    if (!out.flush()) {
      std::cerr << "kapsel-bench: writing " << save << " failed\n";
      return 1;
    }
  }
  if (json) {
    std::cout << kapsel::bench::to_json(*report).dump(2) << "\n";
  } else {
    std::cout << kapsel::bench::format_table(*report);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Errors are values below; only a failed allocation or a broken stream can throw.
  try {
    return run_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kapsel-bench: " << e.what() << "\n";
    return 1;
  }
}
