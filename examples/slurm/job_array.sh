#!/usr/bin/env bash
# Certify a pipeline on a Slurm cluster as a job array: task i of N samples slice i/N of
# the query blocks into a cache on a shared file system, then one dependent job writes the
# outputs (it reuses every block). Submit with:  bash examples/slurm/job_array.sh PIPELINE.yaml N
# Resubmitting after failures recomputes only the blocks that are missing.
set -euo pipefail
pipeline="$1"
tasks="${2:-8}"
cache="${RGUARD_CACHE:-$PWD/results/cache}"   # must be visible from every node
array=$(sbatch --parsable --array=0-$((tasks - 1)) --cpus-per-task=8 --time=24:00:00 --job-name=rguard-slice \
  --wrap="./build/rguard run $pipeline --set cache=$cache --set threads=8 --shard \$SLURM_ARRAY_TASK_ID/$tasks")
sbatch --dependency=afterany:"$array" --cpus-per-task=2 --time=1:00:00 --job-name=rguard-combine \
  --wrap="./build/rguard run $pipeline --set cache=$cache"
echo "submitted array $array ($tasks slices) and the combining job"
