#!/usr/bin/env bash
# The README's second command, and what CI runs: set up, build, and run the whole test suite:
# a format check, unit tests (also under AddressSanitizer and UndefinedBehaviorSanitizer), and
# integration tests that run the real kapsel binary as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)

echo "== format check"
find src tests bench -name '*.cpp' -o -name '*.hpp' | xargs clang-format --dry-run --Werror

echo "== unit tests under ASan/UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKAPSEL_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" --target kapsel_unit_tests
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build-asan/tests/kapsel_unit_tests

echo "== unit and integration tests"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 300
