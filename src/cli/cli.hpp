// The kapsel command line: parses, validates, calls ve::Lifecycle, prints tables or JSON.
#pragma once

namespace kapsel::cli {

// Runs one kapsel command; returns the process exit code.
[[nodiscard]] int run(int argc, char** argv);

}  // namespace kapsel::cli
