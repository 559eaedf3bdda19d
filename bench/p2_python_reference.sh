#!/usr/bin/env bash
# P2: rguard against a straightforward Python/PyTorch implementation of the same Monte-Carlo
# loop (bench/reference/certify_reference.py, Debian's python3-torch), on the same
# TorchScript model with the same n, queries, batch and thread count, side by side.
# The Python loop runs twice: as written, and with torch.jit.freeze + optimize_for_inference
# (what rguard's torchscript backbone does by default), to show where the gain comes from.
# Usage: bench/p2_python_reference.sh [threads]   (from a built tree: scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
work=build/bench-p2
mkdir -p "$work"
python=/usr/bin/python3
$python bench/reference/export_models.py "$work"
bash bench/machine.sh

rguard_rate() {  # pipeline -> samples/s of rguard's sampling stage (from its manifest)
  ./build/rguard run "bench/pipelines/p2_$1.yaml" --set "backbone.file=$work/$1.pt" --set "cache=$work/cache" \
    --set "output=$work/out" --set "threads=$threads" --force samples -q >/dev/null
  $python bench/sampling_rate.py "$work/out/p2-${1//_/-}/manifest.json"
}
python_rate() {  # model, extra args -> samples/s of the Python loop
  local model=$1
  shift
  $python bench/reference/certify_reference.py --model "$work/$model.pt" --threads "$threads" "$@" |
    $python -c 'import json,sys; d=json.load(sys.stdin); print(d["samples_per_s"], d["mean_f_norm"])'
}

raws=()
printf '%-10s %12s %14s %14s %10s %10s\n' model rguard python python+jit rguard/py rguard/py+jit
for model in small_cnn resnet18; do
  if [[ $model == small_cnn ]]; then
    r=$(rguard_rate small_cnn)
    args=(--n 4000 --batch 256 --fashion-ids "$work/out/p2-small-cnn/certificates.csv")
  else
    r=$(rguard_rate resnet18)
    args=(--n 256 --batch 32 --random-shape 3,224,224 --queries 2)
  fi
  read -r p p_norm < <(python_rate $model "${args[@]}")
  read -r o _ < <(python_rate $model "${args[@]}" --optimize)
  read -r raw _ < <(python_rate $model "${args[@]}" --optimize --forward-only)
  raws+=("$model $raw $r")
  printf '%-10s %12.0f %14.0f %14.0f %10.2f %10.2f\n' $model "$r" "$p" "$o" \
    "$($python -c "print($r / $p)")" "$($python -c "print($r / $o)")"
  if [[ $model == small_cnn ]]; then
    echo "  same computation: mean ||F-hat|| rguard $(
      $python -c "import csv; r=list(csv.DictReader(open('$work/out/p2-small-cnn/certificates.csv'))); print(round(sum(float(x['f_norm']) for x in r)/len(r), 4))"
    ), python $($python -c "print(round($p_norm, 4))") (different noise streams, 50 queries x 4000 samples)"
  fi
done
for line in "${raws[@]}"; do
  read -r model raw r <<<"$line"
  echo "P1 $model: raw forward of the optimised TorchScript model (one fixed batch, no noise) $(printf %.0f "$raw")" \
    "images/s; rguard's pipeline reaches $($python -c "print(round(100 * $r / $raw, 1))")% of it"
done
echo "samples/s; threads $threads; python: $($python -c 'import torch; print("torch", torch.__version__)')"
