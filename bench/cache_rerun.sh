#!/usr/bin/env bash
# Time of a rerun that hits the cache against the first run, side by side in one go:
# 1. a fresh run of PIPELINE (its own empty cache), 2. the same again (every stage reused),
# 3. again with a changed radius list and alpha (no forward pass). Prints the ratios.
# Usage: bench/cache_rerun.sh [PIPELINE [RGUARD RUN OPTIONS...]] (default pipelines/quickstart.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
pipeline="${1:-pipelines/quickstart.yaml}"
options=("${@:2}")
work=$(mktemp -d /tmp/rguard_bench_cache.XXXXXX)
trap 'rm -rf "$work"' EXIT
run() {
  local start end
  start=$(date +%s.%N)
  ./build/rguard run "$pipeline" --set output="$work" -q "${options[@]}" "$@" >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}
first=$(run)
same=$(run)
changed=$(run --set certifier.alpha=0.01 --set metrics.1.radii=[0,0.01,0.03])
printf 'pipeline %s\n' "$pipeline"
printf 'first run                 %8.2f s\n' "$first"
percent() { awk -v a="$1" -v b="$2" 'BEGIN { print 100 * a / b }'; }
printf 'rerun, all reused         %8.2f s  (%.2f%% of the first)\n' "$same" "$(percent "$same" "$first")"
printf 'rerun, new radii + alpha  %8.2f s  (%.2f%% of the first)\n' "$changed" "$(percent "$changed" "$first")"
