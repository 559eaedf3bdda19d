#!/usr/bin/env bash
# Installs the Debian 12 packages rguard needs, only those missing. Idempotent and
# non-interactive; a no-op (a dpkg query, well under a second) when all are present.
set -euo pipefail

packages=(
  cmake g++ ninja-build ccache pkg-config zlib1g-dev
  libopenblas0-openmp           # LibTorch's BLAS: ~26x faster than reference BLAS; OpenMP build shares LibTorch's threads
  libtorch-dev libyaml-cpp-dev libhdf5-dev libtbb-dev libfmt-dev
  libboost-dev libboost-filesystem-dev doctest-dev libcli11-dev nlohmann-json3-dev
  libxxhash-dev                 # XXH3-128: cache keys, checksums and fingerprints (core/src/cache/hash.cpp)
  libstb-dev                    # JPEG/PNG decoding of image-folder data sets
  libmatio-dev                  # Cars196 annotations (cars_annos.mat)
  dataset-fashion-mnist         # the embedded default data set
  gnuplot-nox                   # plots in reports
  time                          # GNU time: peak memory in bench/p3_memory.sh
  openmpi-bin                   # mpirun: the 2-rank test of docs/cluster.md (rguard itself does not link MPI)
  python3-torch python3-torchvision python3-h5py python3-numpy   # test fixtures (TorchScript, torchvision ResNet, h5py)
  python3-scipy                 # tests/independent/recompute_radii.py: the independent recomputation of every radius
)
if [[ "${RGUARD_SETUP_EXTRA:-}" != "" ]]; then
  read -r -a extra <<<"$RGUARD_SETUP_EXTRA"; packages+=("${extra[@]}")
fi

# The system BLAS (libblas.so.3, which LibTorch links) must be OpenBLAS's OpenMP build: the
# pthreads build, preferred by Debian when both are installed, keeps threads spinning that
# halve sampling speed (docs/performance.md).
select_openmp_blas() {
  local dir=/usr/lib/x86_64-linux-gnu
  [[ -f $dir/openblas-openmp/libblas.so.3 ]] || return 0
  for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
    local name="$lib-x86_64-linux-gnu"
    if [[ "$(update-alternatives --query "$name" 2>/dev/null | sed -n 's/^Value: //p')" != "$dir/openblas-openmp/$lib" ]]; then
      $SUDO update-alternatives --quiet --set "$name" "$dir/openblas-openmp/$lib"
    fi
  done
}

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then SUDO=sudo; fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  select_openmp_blas
  exit 0
fi

echo "setup: installing ${#missing[@]} missing Debian package(s): ${missing[*]}"
if [[ $(id -u) -ne 0 && -z "$SUDO" ]]; then
  echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
select_openmp_blas
echo "setup: done"
