// kapsel-bench: times whole commands against each other (see runner.hpp for how). The cases come
// from a JSON file that a suite script writes (bench/run.sh: kapsel against runc, lxc-execute and
// bwrap), or, for a quick comparison, from NAME=COMMAND arguments on the command line.
#include <unistd.h>

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

int run_main(int argc, char** argv) {
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
