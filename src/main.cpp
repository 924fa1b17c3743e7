#include "cli/cli.hpp"

int main(int argc, char** argv) {
  return kapsel::cli::run(argc, argv);
}
