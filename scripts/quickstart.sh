#!/usr/bin/env bash
# README command 1: install what is missing, build, run the quickstart pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/rguard run pipelines/quickstart.yaml "$@"
