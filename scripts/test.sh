#!/usr/bin/env bash
# README command 2 (and CI): install what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# Every TEST_CASE must be one ctest test: a name that CMake or doctest splits (';' or ',')
# would silently run nothing.
cases=$(grep -ho 'TEST_CASE("' tests/*.cpp | wc -l)
registered=$(ctest --test-dir build -N | sed -n 's/^Total Tests: //p')
if [[ "$cases" != "$registered" ]]; then
  echo "test.sh: $cases TEST_CASEs in tests/ but ctest registered $registered; rename cases without ';' or ','" >&2
  exit 1
fi
ctest --test-dir build --output-on-failure -j2 "$@"
bash scripts/fuzz.sh "${RGUARD_FUZZ_SECONDS:-60}"
