#!/usr/bin/env bash
# Configures and builds vitlab into build/ (Release, Ninja, ccache when present).
# Extra arguments go to CMake, e.g. -DCMAKE_PREFIX_PATH=... for a pip LibTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f build/CMakeCache.txt ] && generator=()  # keep whatever generator the build dir has
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
jobs=$(nproc)
cmake --build build --parallel "$jobs"
