#!/usr/bin/env bash
# Here, before scripts/device/cuda_memory.sh runs on the GPU machine: downloads the packages of
# scripts/device/cuda_memory_debs.txt (about 6 MB) into .device/debs-cuda-memory, which the device
# tool carries with .device (see ../shared/device/README.md for .device itself), and puts the
# dashscope wheel that the fixture tokenizers need into .device/wheels unless it is there
# (from ~/.cache/qwenvl/wheels, where scripts/setup.sh keeps it).
#   scripts/device/fetch_cuda_memory_debs.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$root/.device/debs-cuda-memory
mkdir -p "$dir"
cd "$dir"
grep -v '^#' "$root/scripts/device/cuda_memory_debs.txt" | xargs apt-get download -q 2>&1 \
  | grep -v '^W: Download is performed unsandboxed' || true
ls *.deb | wc -l
du -sh "$dir"
if ! ls "$root"/.device/wheels/dashscope-*.whl > /dev/null 2>&1; then
  mkdir -p "$root/.device/wheels"
  cp "${QWENVL_CACHE:-$HOME/.cache/qwenvl}"/wheels/dashscope-*.whl "$root/.device/wheels/" \
    || echo "fetch_cuda_memory_debs: no dashscope wheel in ~/.cache/qwenvl/wheels (run scripts/setup.sh)" >&2
fi
