#!/usr/bin/env bash
# Here, before a device call that builds: copies the parts of xgrammar's unpacked source
# distribution that third_party/xgrammar/meson.build compiles (cpp/, include/, the vendored dlpack
# and picojson headers; 2.3 MB of its 12) into .device/xgrammar-0.2.9, which the device tool
# carries with .device. scripts/setup.sh unpacks the sdist into ~/.cache/qwenvl first.
#   scripts/device/pack_xgrammar.sh [UNPACKED_SDIST (default ~/.cache/qwenvl/xgrammar-0.2.9)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src=${1:-$HOME/.cache/qwenvl/xgrammar-0.2.9}
dst=$root/.device/xgrammar-0.2.9
[ -d "$src/cpp" ] || { echo "pack_xgrammar: $src is not xgrammar's unpacked sdist (run scripts/setup.sh)" >&2; exit 1; }
rm -rf "$dst"
mkdir -p "$dst/3rdparty"
cp -r "$src/cpp" "$src/include" "$dst/"
cp -r "$src/3rdparty/picojson" "$src/3rdparty/dlpack" "$dst/3rdparty/"
du -sh "$dst"
