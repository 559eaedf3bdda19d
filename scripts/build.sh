#!/usr/bin/env bash
# Configures and builds rguard in ./build (Release, warnings as errors, -j2 by default).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${RGUARD_JOBS:-2}"
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DRGUARD_WERROR=ON >/dev/null
fi
cmake --build build -j "$jobs"
