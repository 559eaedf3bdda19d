#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (tests/fuzz) and runs each for a bounded time
# (default 60 s), first replaying tests/fuzz/regressions (every crash ever found) and the
# seed corpora. A crash fails the script; its input is kept under build-fuzz/crashes/:
# add it to tests/fuzz/regressions/<target>/ when fixing the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
RGUARD_SETUP_EXTRA="clang-14 libclang-rt-14-dev libfuzzer-14-dev" bash scripts/setup.sh
if [[ ! -f build-fuzz/CMakeCache.txt ]]; then
  cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
fi
cmake --build build-fuzz -j "${RGUARD_JOBS:-2}"
mkdir -p build-fuzz/crashes
for target in fuzz_spec fuzz_cache; do
  corpus="build-fuzz/corpus/${target#fuzz_}"
  mkdir -p "$corpus" "tests/fuzz/regressions/${target}"
  cp -n tests/fuzz/corpus/"${target#fuzz_}"/* "$corpus"/ 2>/dev/null || true
  # Regressions: every input must pass.
  if compgen -G "tests/fuzz/regressions/${target}/*" >/dev/null; then
    ./build-fuzz/"$target" -runs=0 tests/fuzz/regressions/"$target"/* >/dev/null 2>&1 ||
      { echo "fuzz: a regression input of $target fails"; exit 1; }
  fi
  echo "fuzz: $target for ${seconds} s"
  ./build-fuzz/"$target" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/crashes/"$target"- -print_final_stats=1 "$corpus" 2>&1 | tail -n 4
done
echo "fuzz: no crash"
