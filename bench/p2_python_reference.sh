#!/usr/bin/env bash
# P2: rguard against a straightforward Python/PyTorch implementation of the same Monte-Carlo
# loop (bench/reference/certify_reference.py, Debian's python3-torch), on the same
# TorchScript model with the same n, queries, batch and thread count, side by side.
# The Python loop runs as written, with rguard's malloc settings (glibc tunables: a plain
# loop's rate depends on page faults of its per-batch allocations), and with
# torch.jit.freeze + optimize_for_inference (what rguard's torchscript backbone does), to
# show where the gain comes from. The variants alternate for ROUNDS rounds (median each);
# a measurement during which other processes used more than 0.2 cores is repeated
# (bench/on_idle.py says why: 2 threads on 2 cores collapse when a core is taken).
# Usage: bench/p2_python_reference.sh [threads] [rounds]   (from a built tree: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
rounds="${2:-3}"
work=build/bench-p2
mkdir -p "$work"
python=/usr/bin/python3
$python bench/reference/export_models.py "$work"
bash bench/machine.sh
source bench/idle.sh
malloc_like_rguard=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824

rguard_rate() {  # model -> samples/s of rguard's sampling stage (from its manifest)
  on_idle ./build/rguard run "bench/pipelines/p2_$1.yaml" --set "backbone.file=$work/$1.pt" \
    --set "cache=$work/cache" --set "output=$work/out" --set "threads=$threads" --force samples -q >/dev/null
  $python bench/sampling_rate.py "$work/out/p2-${1//_/-}/manifest.json"
}
python_rate() {  # model, [env assignment,] extra args -> "samples/s mean||F||" of the Python loop
  local model=$1
  shift
  local env=()
  [[ "${1:-}" == *=* ]] && env=("$1") && shift
  idle env "${env[@]}" $python bench/reference/certify_reference.py --model "$work/$model.pt" --threads "$threads" \
    --strict "$@" | $python -c 'import json,sys; d=json.load(sys.stdin); print(d["samples_per_s"], d["mean_f_norm"])'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ratio() { $python -c "print(f'{$1 / $2:.2f}')"; }

printf '%-10s %9s %9s %13s %11s %10s | %9s %12s %12s %11s\n' model rguard python python+malloc python+jit raw-forward \
  rguard/py rguard/py+mal rguard/py+jit rguard/raw
for model in small_cnn resnet18; do
  if [[ $model == small_cnn ]]; then
    rguard_rate small_cnn >/dev/null  # the queries' ids come from rguard's certificates
    args=(--n 4000 --batch 256 --fashion-ids "$work/out/p2-small-cnn/certificates.csv")
  else
    args=(--n 256 --batch 32 --random-shape 3,224,224 --queries 2)
  fi
  r=() p=() m=() o=() raw=()
  for ((round = 0; round < rounds; ++round)); do
    r+=("$(rguard_rate $model)")
    read -r rate p_norm < <(python_rate $model "${args[@]}") && p+=("$rate")
    read -r rate _ < <(python_rate $model "GLIBC_TUNABLES=$malloc_like_rguard" "${args[@]}") && m+=("$rate")
    read -r rate _ < <(python_rate $model "${args[@]}" --optimize) && o+=("$rate")
    read -r rate _ < <(python_rate $model "${args[@]}" --optimize --forward-only) && raw+=("$rate")
  done
  R=$(median "${r[@]}") P=$(median "${p[@]}") M=$(median "${m[@]}") O=$(median "${o[@]}") RAW=$(median "${raw[@]}")
  printf '%-10s %9.0f %9.0f %13.0f %11.0f %10.0f | %9s %12s %12s %10s%%\n' $model "$R" "$P" "$M" "$O" "$RAW" \
    "$(ratio "$R" "$P")" "$(ratio "$R" "$M")" "$(ratio "$R" "$O")" "$($python -c "print(round(100 * $R / $RAW, 1))")"
  echo "  rounds: rguard ${r[*]}; python ${p[*]}; +malloc ${m[*]}; +jit ${o[*]}; raw ${raw[*]}" | $python -c \
    'import re,sys; print(re.sub(r"(\d+)\.\d+", r"\1", sys.stdin.read()), end="")'
  if [[ $model == small_cnn ]]; then
    echo "  same computation: mean ||F-hat|| rguard $(
      $python -c "import csv; r=list(csv.DictReader(open('$work/out/p2-small-cnn/certificates.csv'))); print(round(sum(float(x['f_norm']) for x in r)/len(r), 4))"
    ), python $($python -c "print(round($p_norm, 4))") (different noise streams, 50 queries x 4000 samples)"
  fi
done
echo "samples/s (raw-forward: images/s of the optimised model on one fixed batch, no noise); medians of $rounds" \
  "alternating rounds; threads $threads; python: $($python -c 'import torch; print("torch", torch.__version__)')"
