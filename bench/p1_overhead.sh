#!/usr/bin/env bash
# P1: the certification pipeline's samples/s against raw forward passes of the same
# backbone (quickstart small_cnn, batch 256, all cores), side by side: the raw rates
# (bench_forward.cpp, best of 3 rounds), then `rguard run pipelines/quickstart.yaml --force
# samples` (400k noisy samples; its manifest gives the sampling stage's rate), then the raw
# rates again. Usage: bench/p1_overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/machine.sh
work=build/bench-p1
mkdir -p "$work"
./build/rguard_bench_forward 256 1 3 | tee "$work/raw1.txt"
./build/rguard run pipelines/quickstart.yaml --set "output=$work/out" -q >/dev/null  # train once (cached)
./build/rguard run pipelines/quickstart.yaml --set "output=$work/out" --force samples -q >/dev/null
pipeline=$(/usr/bin/python3 bench/sampling_rate.py "$work/out/quickstart/manifest.json")
# The directional bound also sums f f^T per sample (certifier.bound: directional).
./build/rguard run pipelines/quickstart.yaml --set "output=$work/out" --set certifier.bound=directional \
  --force samples -q >/dev/null
directional=$(/usr/bin/python3 bench/sampling_rate.py "$work/out/quickstart/manifest.json")
./build/rguard_bench_forward 256 1 3 | tee "$work/raw2.txt"
/usr/bin/python3 - "$pipeline" "$directional" "$work/raw1.txt" "$work/raw2.txt" <<'PY'
import sys
pipeline, directional = float(sys.argv[1]), float(sys.argv[2])
raw = {}
for path in sys.argv[3:]:
    for line in open(path):
        parts = line.split()
        if len(parts) == 2 and parts[1].replace(".", "").isdigit():
            raw.setdefault(parts[0], []).append(float(parts[1]))
mean = {k: sum(v) / len(v) for k, v in raw.items()}
print(f"pipeline (rguard run, sampling stage)       {pipeline:10.0f} samples/s")
print(f"raw backbone forward (oneDNN path)          {mean['backbone']:10.0f} images/s -> pipeline overhead "
      f"{100 * (1 - pipeline / mean['backbone']):.1f}%")
print(f"raw noise + forward, one after the other    {mean['both']:10.0f} images/s -> pipeline overhead "
      f"{100 * (1 - pipeline / mean['both']):.1f}%")
print(f"raw plain LibTorch modules (torch::nn)      {mean['eager']:10.0f} images/s -> pipeline is "
      f"{pipeline / mean['eager']:.2f}x faster")
print(f"pipeline with second moments (directional) {directional:10.0f} samples/s -> "
      f"{100 * (1 - directional / pipeline):.1f}% slower than the default")
PY
