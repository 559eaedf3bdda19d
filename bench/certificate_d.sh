#!/usr/bin/env bash
# Certificate D against A/B/C at equal n, and what it costs, side by side in one run
# (docs/performance.md, "Certificate D"). On the quickstart pipeline (its model, n, queries):
#   mean-only  certifier.selection = 0: A, B, C at the full alpha (what rguard certified before D)
#   D          the default: max(A, B, C, D), level sets of the margin, every 2nd sample counted
#   D every=1  level_every = 1: every sample counted
#   pairs      level sets of single pairs, the 32 / 256 negatives most at risk (the others keep R_B)
# then pipelines/sigma_ablation.yaml with and without D. The variants alternate and are run
# twice; samples/s is the median of the two (noisy images through the backbone per second,
# selection samples included); a run during which another process used a core is repeated.
# Usage: bench/certificate_d.sh [--quick]  (--quick: quickstart only)
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/bench-d
mkdir -p "$work"
python=/usr/bin/python3
bash bench/machine.sh
source bench/idle.sh
variants=(
  "mean-only|--set certifier.selection=0"
  "D|"
  "D every=1|--set certifier.level_every=1"
  "pairs M=32|--set certifier.level_statistic=pairs --set certifier.candidates=32"
  "pairs M=256|--set certifier.level_statistic=pairs --set certifier.candidates=256"
)
# The models of plain noise augmentation, as measured for docs/performance.md (before the
# pipelines adopted certified-margin training, docs/training.md): the certificates' gain
# is measured on the model the mean-only numbers were first reported for.
plain="--set backbone.train.objective=noise --set backbone.train.draws=1 --set backbone.train.weight=1"
run() {  # spec, name, extra args -> runs it with its own output folder, samples recomputed
  local spec=$1 name=$2
  shift 2
  # shellcheck disable=SC2086
  on_idle ./build/rguard run "$spec" --set "output=$work/$name" --set "cache=$work/cache" --force samples -q $plain $@ >/dev/null
}
for repeat in 1 2; do
  for v in "${variants[@]}"; do
    name=${v%%|*}
    run pipelines/quickstart.yaml "qs-${name// /}-$repeat" ${v#*|}
  done
done
$python bench/certificate_d.py quickstart "$work" "${variants[@]%%|*}"
[[ "${1:-}" == "--quick" ]] && exit 0
for repeat in 1 2; do
  run pipelines/sigma_ablation.yaml "sa-mean-only-$repeat" --set certifier.selection=0
  run pipelines/sigma_ablation.yaml "sa-D-$repeat"
done
$python bench/certificate_d.py sigma_ablation "$work" "mean-only" "D"
