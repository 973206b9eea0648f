#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs the whole test suite with CTest.
# --sanitize: instead, the same suite built with AddressSanitizer (leak checks included) and
# UndefinedBehaviorSanitizer (g++, into build-asan; LibTorch itself is not instrumented). It
# needs no suppressions and leaves no test out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" != "--sanitize" ]; then
  bash scripts/build.sh
  cd build
  ctest --output-on-failure --parallel "$(nproc)" --timeout 600
  exit 0
fi
generator=()
command -v ninja >/dev/null && [ ! -f build-asan/CMakeCache.txt ] && generator=(-G Ninja)
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B build-asan "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" >/dev/null
cmake --build build-asan --parallel "$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build-asan
ctest --output-on-failure --parallel "$(nproc)" --timeout 900
