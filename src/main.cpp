#include "cli/cli.hpp"
#include "common/trace.hpp"

int main(int argc, char** argv) {
  kapsel::trace::point("main");
  int code = kapsel::cli::run(argc, argv);
  kapsel::trace::point("exit");
  return code;
}
