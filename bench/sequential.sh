#!/usr/bin/env bash
# Sequential certification against fixed n, side by side in one run (docs/performance.md,
# "Sequential certification"). Two models, 100 queries each: the quickstart's (sigma =
# 0.25) and the sigma = 0.5 model of pipelines/sigma_ablation.yaml, each certified with its
# pipeline's own grid of radii and K = 1, 2, 4, 8:
#   fixed 100k       certifier.n = 100,000 for every query
#   fixed 10k        certifier.n = 10,000 (the quickstart today)
#   seq 100k r=0.1   sampling: sequential, n = 100,000 at most, target_radii [0.1], Recall@1
#   seq 100k grid    sampling: sequential, n = 100,000 at most, the grid, K = 1, 2, 4, 8
# and, for the quickstart's adoption question, sequential over the grid with at most 20,000,
# 12,000, 11,000 and 10,000 samples. For each: main samples drawn in all, wall time of the run (samples
# recomputed, the model reused), certified Recall@1/2/4/8 at every radius, ACR, and where
# the samples went. Usage: bench/sequential.sh [--quick] [--set key=value ...]  (--quick:
# n = 20,000 and only the quickstart model; the --set arguments go to every variant, e.g.
# --set certifier.optimism=0.9)
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/bench-sequential
mkdir -p "$work"
bash bench/machine.sh
source bench/idle.sh
n=100000
models=("quickstart|pipelines/quickstart.yaml|[0,0.02,0.05,0.1,0.2,0.3,0.5]"
        "sigma0.5|pipelines/sigma_ablation.yaml|[0,0.02,0.05,0.1,0.2,0.3,0.5,0.75,1.0]")
if [[ "${1:-}" == "--quick" ]]; then
  n=20000
  models=("${models[0]}")
  shift
fi
extra=("$@")  # e.g. --set certifier.optimism=0.9: passed to every variant
seq="--set certifier.sampling=sequential"
for m in "${models[@]}"; do
  IFS='|' read -r model spec grid <<<"$m"
  # One point: the sigma ablation certified at 0.5 with its model trained at 0.5.
  select=()
  [[ $model == sigma0.5 ]] && select=(--set noise.sigma=0.5 --set 'sweep.include=[]')
  common=(--set "cache=$work/cache" --set "metrics.1.radii=$grid" --set "metrics.1.k=[1,2,4,8]" "${select[@]}" -q)
  variants=(
    "$model-fixed-${n}|--set certifier.n=$n"
    "$model-fixed-10000|--set certifier.n=10000"
    "$model-seq-${n}-r0.1|--set certifier.n=$n $seq --set certifier.target_radii=[0.1] --set certifier.target_ranks=[1]"
    "$model-seq-${n}-grid|--set certifier.n=$n $seq --set certifier.target_radii=$grid --set certifier.target_ranks=[1,2,4,8]"
  )
  if [[ $model == quickstart && $n -gt 20000 ]]; then
    for most in 20000 12000 11000 10000; do
      variants+=("$model-seq-$most-grid|--set certifier.n=$most $seq --set certifier.target_radii=$grid --set certifier.target_ranks=[1,2,4,8]")
    done
  fi
  ./build/rguard run "$spec" --set "output=$work/model-$model" "${common[@]}" --set certifier.queries=1 >/dev/null
  rm -f "$work/times-$model.txt.new"
  for v in "${variants[@]}"; do
    name=${v%%|*}
    start=$(date +%s%N)
    # shellcheck disable=SC2086
    on_idle ./build/rguard run "$spec" --set "output=$work/$name" "${common[@]}" --force samples ${v#*|} \
      "${extra[@]}" >/dev/null
    end=$(date +%s%N)
    echo "$name $(((end - start) / 1000000))e-3" >>"$work/times-$model.txt.new"
  done
  mv "$work/times-$model.txt.new" "$work/times-$model.txt"
  echo "== $model ($spec${select[*]:+, ${select[*]}})"
  /usr/bin/python3 bench/sequential.py "$work" "$work/times-$model.txt" "${variants[@]%%|*}"
done
