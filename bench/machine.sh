#!/usr/bin/env bash
# Prints the machine a benchmark ran on (every bench/ script starts with it).
echo "machine: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)," \
  "BLAS $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 | sed 's|.*/\(openblas-[a-z]*\)/.*|\1|'), $(date -u +%Y-%m-%d)"
