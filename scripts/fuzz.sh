#!/usr/bin/env bash
# Fuzzes every parser of outside bytes (tests/fuzz/targets.h) with libFuzzer: builds the fuzz
# executables with Debian's clang 14, AddressSanitizer and UndefinedBehaviorSanitizer into
# build-fuzz, runs each target for SECONDS on its committed corpus (tests/fuzz/corpus/TARGET),
# and merges what it found back into that corpus (minimised: only inputs that add coverage).
# A crash, hang (over 10 s), leak or allocation over 1 GiB stops a target: its input is left
# in build-fuzz/artifacts/TARGET/ and the script exits non-zero. Each target's last status line
# (executions, coverage, corpus) and final statistics go to build-fuzz/fuzz_TARGET.summary.
# Usage: bash scripts/fuzz.sh [--seconds N (default 600)] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(safetensors idx cifar run_config sweep_spec checkpoint_config results image)
bash scripts/setup.sh --fuzz
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
generator=()
command -v ninja >/dev/null && [ ! -f build-fuzz/CMakeCache.txt ] && generator=(-G Ninja)
cmake -S . -B build-fuzz "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1" -DVITLAB_FUZZ=ON >/dev/null
cmake --build build-fuzz --parallel "$(nproc)" --target "${targets[@]/#/fuzz_}"
export ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/$t found=build-fuzz/found/$t merged=build-fuzz/merged/$t
  mkdir -p "$found" "build-fuzz/artifacts/$t"
  rm -rf "$merged" && mkdir -p "$merged"
  echo "fuzz: $t for $seconds s"
  rc=0
  OMP_NUM_THREADS=1 "build-fuzz/tests/fuzz/fuzz_$t" "$found" "$corpus" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$t/" > "build-fuzz/fuzz_$t.log" 2>&1 || rc=$?
  # The last status line (#runs, coverage, corpus) and the final statistics.
  { echo "## $t (exit $rc)"; grep -E "^#[0-9]+" "build-fuzz/fuzz_$t.log" | tail -n 1
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "build-fuzz/fuzz_$t.log" | tail -n 2; } \
    | tee "build-fuzz/fuzz_$t.summary"
  if [ $rc -ne 0 ]; then
    status=1
    grep -E "ERROR|SUMMARY|==[0-9]+==" "build-fuzz/fuzz_$t.log" | head -n 5
    continue
  fi
  OMP_NUM_THREADS=1 "build-fuzz/tests/fuzz/fuzz_$t" -merge=1 "$merged" "$corpus" "$found" > /dev/null 2>&1
  rm -rf "$corpus" && mv "$merged" "$corpus"
  echo "  corpus: $(ls "$corpus" | wc -l) files"
done
exit $status
