#!/usr/bin/env bash
# Installs the Debian 12 packages rguard needs, only those missing. Idempotent and
# non-interactive; a no-op (a dpkg query, well under a second) when all are present.
set -euo pipefail

packages=(
  cmake g++ ninja-build ccache pkg-config zlib1g-dev
  libopenblas0-pthread          # LibTorch's BLAS: ~26x faster matrix products than reference BLAS
  libtorch-dev libyaml-cpp-dev libhdf5-dev libtbb-dev libfmt-dev
  libboost-dev libboost-filesystem-dev doctest-dev libcli11-dev nlohmann-json3-dev
  libstb-dev                    # JPEG/PNG decoding of image-folder data sets
  libmatio-dev                  # Cars196 annotations (cars_annos.mat)
  dataset-fashion-mnist         # the embedded default data set
  gnuplot-nox                   # plots in reports
  python3-torch python3-torchvision python3-h5py python3-numpy   # test fixtures (TorchScript, torchvision ResNet, h5py)
)
if [[ "${RGUARD_SETUP_EXTRA:-}" != "" ]]; then
  read -r -a extra <<<"$RGUARD_SETUP_EXTRA"; packages+=("${extra[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == installed ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${#missing[@]} missing Debian package(s): ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
