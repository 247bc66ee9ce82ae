#!/usr/bin/env bash
# Here, before scripts/device/cuda_memory.sh runs on the GPU machine: downloads the packages of
# scripts/device/cuda_memory_debs.txt (about 6 MB) into .device/debs-cuda-memory, which the device
# tool carries with .device (see ../shared/device/README.md for .device itself).
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
