#!/usr/bin/env bash
# Other stopping rules on the cached looks of bench/sequential.sh's grid runs: each rule
# given (an `optimism`, or certifier settings such as optimism=0.5,alpha_at_n=0.5) is replayed on both models with the grid's targets and K = 1, 2, 4, 8,
# without --force, so nothing is drawn where the cached looks suffice (a rule that draws on
# further continues the cached streams; the samples and radii are those of a run from
# scratch, to the bit, as tests/test_pipeline.cpp checks). Prints each against fixed
# n = 100,000 of the same cache (sequential.py). Run bench/sequential.sh first.
# Usage: bench/sequential_replay.sh [OPTIMISM | KEY=VALUE,KEY=VALUE ...]   (default: 0.5 0.6 0.8)
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/bench-sequential
levels=("$@")
[[ ${#levels[@]} -eq 0 ]] && levels=(0.5 0.6 0.8)
for level in "${levels[@]}"; do
  [[ $level =~ ^0\.[0-9]+$ || $level =~ ^[a-z_]+=[0-9.]+(,[a-z_]+=[0-9.]+)*$ ]] || {
    echo "sequential_replay.sh: give an optimism in (0, 1) or certifier settings key=value,key=value, got '$level'" >&2
    exit 2
  }
done
models=("quickstart|pipelines/quickstart.yaml|[0,0.02,0.05,0.1,0.2,0.3,0.5]"
        "sigma0.5|pipelines/sigma_ablation.yaml|[0,0.02,0.05,0.1,0.2,0.3,0.5,0.75,1.0]")
for m in "${models[@]}"; do
  IFS='|' read -r model spec grid <<<"$m"
  if [[ ! -f $work/times-$model.txt ]]; then
    echo "sequential_replay.sh: $work/times-$model.txt is missing: run bash bench/sequential.sh first" >&2
    exit 2
  fi
  select=()
  [[ $model == sigma0.5 ]] && select=(--set noise.sigma=0.5 --set 'sweep.include=[]')
  times=$work/times-$model-replay.txt
  grep -E "^$model-(fixed-100000|seq-100000-grid) " "$work/times-$model.txt" >"$times"
  variants=("$model-fixed-100000" "$model-seq-100000-grid")
  for level in "${levels[@]}"; do
    name=$model-replay-${level//,/+}
    settings=()
    [[ $level =~ ^0\. ]] && level=optimism=$level
    IFS=',' read -ra pairs <<<"$level"
    for pair in "${pairs[@]}"; do settings+=(--set "certifier.$pair"); done
    start=$(date +%s%N)
    ./build/rguard run "$spec" --set "output=$work/$name" --set "cache=$work/cache" --set "metrics.1.radii=$grid" \
      --set "metrics.1.k=[1,2,4,8]" "${select[@]}" -q --set certifier.n=100000 --set certifier.sampling=sequential \
      --set "certifier.target_radii=$grid" --set "certifier.target_ranks=[1,2,4,8]" \
      "${settings[@]}" >/dev/null
    end=$(date +%s%N)
    echo "$name $(((end - start) / 1000000))e-3" >>"$times"
    variants+=("$name")
  done
  echo "== $model: replays of ${levels[*]} (the grid run above them has the defaults)"
  /usr/bin/python3 bench/sequential.py "$work" "$times" "${variants[@]}"
done
