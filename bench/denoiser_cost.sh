#!/usr/bin/env bash
# What a denoiser costs certification (docs/performance.md, "Denoised smoothing"): noisy
# images per second through the quickstart's small CNN alone and behind each built-in
# denoiser size, side by side in one run, each measured `rounds` times interleaved (the
# best round is kept). Untrained denoisers (train.epochs: 0): the cost does not depend on
# the weights. Usage: bench/denoiser_cost.sh [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/bench-denoiser
rounds=${1:-3}
mkdir -p "$work"
bash bench/machine.sh
source bench/idle.sh
variants=("base alone|"
          "dncnn depth 4, 16 features (the default)|--set denoiser.plugin=dncnn --set denoiser.train.epochs=0"
          "dncnn depth 6, 32 features|--set denoiser.plugin=dncnn --set denoiser.depth=6 --set denoiser.features=32 --set denoiser.train.epochs=0")
common=(--set "cache=$work/cache" --set certifier.queries=20 -q)
./build/rguard run pipelines/quickstart.yaml --set "output=$work/warm" "${common[@]}" >/dev/null  # trains the base once
declare -A best
for ((round = 1; round <= rounds; round++)); do
  for i in "${!variants[@]}"; do
    # shellcheck disable=SC2086
    on_idle ./build/rguard run pipelines/quickstart.yaml --set "output=$work/v$i" "${common[@]}" --force samples \
      ${variants[$i]#*|} >/dev/null
    rate=$(/usr/bin/python3 bench/sampling_rate.py "$work/v$i/quickstart/manifest.json")
    best[$i]=$(/usr/bin/python3 -c "print(max(${best[$i]:-0}, $rate))")
  done
done
printf '%-42s %14s %10s\n' variant "samples/s" "cost"
for i in "${!variants[@]}"; do
  printf '%-42s %14.0f %9.2fx\n' "${variants[$i]%%|*}" "${best[$i]}" "$(/usr/bin/python3 -c "print(${best[0]} / ${best[$i]})")"
done
