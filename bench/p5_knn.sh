#!/usr/bin/env bash
# P5: exact k-NN search (bench/bench_knn.cpp). Usage: bench/p5_knn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/machine.sh
./build/rguard_bench_knn 3
