#!/usr/bin/env bash
# Samples the variance-adaptive bounds need for the certified Recall@1 that McDiarmid's
# bound reaches with n = 100,000, at each radius and sigma (bench/pipelines/
# sample_efficiency.yaml: 100 Fashion-MNIST queries, quickstart models). About 50 minutes on
# 2 cores the first time; rerunning only re-reads the cache. Usage: bench/sample_efficiency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/machine.sh
./build/rguard run bench/pipelines/sample_efficiency.yaml -q "$@" >/dev/null
/usr/bin/python3 bench/sample_efficiency.py results/sample_efficiency/metrics.csv
