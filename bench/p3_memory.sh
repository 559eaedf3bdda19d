#!/usr/bin/env bash
# P3: peak memory (max RSS, GNU time) of the quickstart pipeline's certification at
# n = 1,000 and n = 100,000 samples per query (4 queries, sampling forced, model cached):
# noisy samples are streamed, so the peak must not grow with n. Usage: bench/p3_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/machine.sh
work=build/bench-p3
mkdir -p "$work"
./build/rguard run pipelines/quickstart.yaml --set "output=$work/out" -q >/dev/null  # train once (cached)
peak() {
  /usr/bin/time -f %M ./build/rguard run pipelines/quickstart.yaml --set "output=$work/out" --set certifier.queries=4 \
    --set "certifier.n=$1" --force samples -q 2>&1 >/dev/null | tail -1
}
small=$(peak 1000)
large=$(peak 100000)
awk -v s="$small" -v l="$large" 'BEGIN {
  printf "peak RSS n = 1,000:   %7.1f MiB\npeak RSS n = 100,000: %7.1f MiB (%+.1f%%)\n", s / 1024, l / 1024, 100 * (l - s) / s }'
