#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs the whole test suite with CTest, then the plugin
# route: vitlab installed into a temporary prefix, examples/attention_plugin built against it
# out of tree, tested, and trained through vit_train --plugin and vit_sweep.
# --sanitize: instead, the same suite built with AddressSanitizer (leak checks included) and
# UndefinedBehaviorSanitizer (g++, into build-asan), then the tests of vitlab's own threads
# (the streamed folder loader's workers, the sweep runner and its child runs, data parallel's
# gradient buckets and the run directory lock) built with ThreadSanitizer (build-tsan).
# LibTorch itself is not instrumented; neither needs suppressions and no test is left out of its set.
set -euo pipefail
cd "$(dirname "$0")/.."
# The tests that run vitlab's own threads, for ThreadSanitizer.
VITLAB_TSAN_TESTS='^(Folder|SweepCli|Distributed|Plugins)\.|^Cli\.(KilledRunResumesToTheSameResult|ASecondRunInTheSameDirectoryIsRefused)$'
bash scripts/setup.sh
if [ "${1:-}" != "--sanitize" ]; then
  bash scripts/build.sh
  cd build
  ctest --output-on-failure --parallel "$(nproc)" --timeout 600
  cd ..
  bash examples/attention_plugin/check.sh build
  exit 0
fi
# Configures and builds DIR with the sanitizer FLAGS.
sanitized_build() {
  local generator=()
  command -v ninja >/dev/null && [ ! -f "$1/CMakeCache.txt" ] && generator=(-G Ninja)
  cmake -S . -B "$1" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$2" \
    -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" >/dev/null
  cmake --build "$1" --parallel "$(nproc)"
}
sanitized_build build-asan "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
(
  export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  cd build-asan
  ctest --output-on-failure --parallel "$(nproc)" --timeout 900
)
# ThreadSanitizer sees the accesses of instrumented code; LibTorch's own (its OpenMP threads
# included) are not, and ignore_noninstrumented_modules drops the memcpy/memset LibTorch calls.
sanitized_build build-tsan "-fsanitize=thread -fno-omit-frame-pointer"
export TSAN_OPTIONS="halt_on_error=1:ignore_noninstrumented_modules=1:second_deadlock_stack=1"
cd build-tsan
ctest --output-on-failure --parallel "$(nproc)" --timeout 900 -R "${VITLAB_TSAN_TESTS}"
