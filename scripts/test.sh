#!/usr/bin/env bash
# Builds dog and runs the whole test suite. Installs missing Debian packages first.
#   scripts/test.sh            Release build in build/, all tests
#   scripts/test.sh --sanitize ASan+UBSan build in build-asan/, all tests
# Extra arguments after `--` go to ctest (e.g. `-- -R http`).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=release
if [[ "${1:-}" == "--sanitize" ]]; then mode=sanitize; shift; fi
if [[ "${1:-}" == "--" ]]; then shift; fi

scripts/setup.sh
jobs=$(nproc)
layers="-DDOG_WITH_ROUTING=ON -DDOG_WITH_MEMBERSHIP=ON"  # the full suite, whatever a build dir cached
if [[ $mode == sanitize ]]; then
  dir=build-asan
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDOG_SANITIZE=ON $layers >/dev/null
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  dir=build
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release $layers >/dev/null
fi
cmake --build "$dir" -j "$jobs"
ctest --test-dir "$dir" -j "$jobs" --output-on-failure --timeout 300 "$@"
