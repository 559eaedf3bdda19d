#!/usr/bin/env bash
# Sequential certification against fixed n, side by side in one run (docs/performance.md,
# "Sequential certification"). On the quickstart pipeline's model, 100 queries:
#   fixed 100k       certifier.n = 100,000 for every query
#   fixed 10k        certifier.n = 10,000 (the quickstart today)
#   seq 100k r=0.1   sampling: sequential, n = 100,000 at most, target_radii [0.1], Recall@1
#   seq 100k grid    sampling: sequential, n = 100,000 at most, the quickstart's radii, K = 1, 2, 4, 8
# For each: main samples drawn in all, wall time of the run (samples recomputed, the model
# reused), certified Recall@1/2/4/8 at every radius of the grid, ACR, and where the samples
# went. Usage: bench/sequential.sh [--quick] [--set key=value ...]  (--quick: n = 20,000 for a
# fast look; the --set arguments go to every variant, e.g. --set certifier.optimism=0.9)
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/bench-sequential
mkdir -p "$work"
rm -f "$work/times.txt.new"
bash bench/machine.sh
source bench/idle.sh
n=100000
if [[ "${1:-}" == "--quick" ]]; then
  n=20000
  shift
fi
extra=("$@")  # e.g. --set certifier.optimism=0.9: passed to every variant
grid="[0,0.02,0.05,0.1,0.2,0.3,0.5]"
common=(--set "cache=$work/cache" --set "metrics.1.radii=$grid" --set "metrics.1.k=[1,2,4,8]" -q)
variants=(
  "fixed-${n}|--set certifier.n=$n"
  "fixed-10000|--set certifier.n=10000"
  "seq-${n}-r0.1|--set certifier.n=$n --set certifier.sampling=sequential --set certifier.target_radii=[0.1] --set certifier.target_ranks=[1]"
  "seq-${n}-grid|--set certifier.n=$n --set certifier.sampling=sequential --set certifier.target_radii=$grid --set certifier.target_ranks=[1,2,4,8]"
)
./build/rguard run pipelines/quickstart.yaml --set "output=$work/model" "${common[@]}" --set certifier.queries=1 >/dev/null
for v in "${variants[@]}"; do
  name=${v%%|*}
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  on_idle ./build/rguard run pipelines/quickstart.yaml --set "output=$work/$name" "${common[@]}" --force samples ${v#*|} \
    "${extra[@]}" >/dev/null
  end=$(date +%s%N)
  echo "$name $(((end - start) / 1000000))e-3" >>"$work/times.txt.new"
done
mv "$work/times.txt.new" "$work/times.txt"
/usr/bin/python3 bench/sequential.py "$work" "${variants[@]%%|*}"
