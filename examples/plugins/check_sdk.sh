#!/usr/bin/env bash
# The plugin SDK end to end: install a built rguard into a fresh prefix (cmake --install),
# build both example plugins against it as separate CMake projects, and run a pipeline that
# loads them with the installed binary. Usage: examples/plugins/check_sdk.sh BUILD_DIR WORK_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "$1" && pwd)"
work="$2"
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
# The SDK is self-contained: every quoted include of an installed header is itself installed
# (the core's internal headers, under core/src, are not).
for header in "$work/prefix/include/rguard/"*.hpp; do
  while read -r included; do
    [[ -f "$work/prefix/include/$included" ]] ||
      { echo "check_sdk: $header includes \"$included\", which the SDK does not install" >&2; exit 1; }
  done < <(sed -n 's/^#include "\(.*\)"$/\1/p' "$header")
done
for example in attack_sign_flip backbone_mlp; do
  cmake -S "$here/$example" -B "$work/$example" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$work/$example" -j "${RGUARD_JOBS:-2}" >/dev/null
done
export RGUARD_PLUGIN_PATH="$work/attack_sign_flip:$work/backbone_mlp"
# Capture first: grep -q closing the pipe early would kill rguard with SIGPIPE (pipefail).
listing=$("$work/prefix/bin/rguard" plugins)
for expected in "sign_flip 1.0" "mlp 1.0" "file: $work/prefix/lib/rguard/plugins/rguard_noise_gaussian.so"; do
  grep -qF "$expected" <<<"$listing" || { echo "check_sdk: '$expected' not in the installed rguard's plugin list:" >&2; echo "$listing" >&2; exit 1; }
done
"$work/prefix/bin/rguard" run "$here/pipeline.yaml" --set "output=$work/out" --set threads=1
