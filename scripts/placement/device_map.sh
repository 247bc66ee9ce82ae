#!/usr/bin/env bash
# transformers' device_map="auto" for Qwen2.5-VL on the CPU (scripts/placement/transformers_device_map.py),
# with accelerate 1.15.0 (the GPU machine's) installed beside the project's venv on first use.
#   scripts/placement/device_map.sh (--shape 3b|7b|32b|72b | --config FILE) --max-memory 24GiB,24GiB
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
side=${QWENVL_CACHE:-$HOME/.cache/qwenvl}/accelerate-1.15.0
if [ ! -f "$side/.complete" ]; then
  "$root/.venv/bin/python" -m pip install -q --no-deps --target "$side" accelerate==1.15.0 psutil==7.1.3 pyyaml==6.0.3
  touch "$side/.complete"
fi
PYTHONPATH="$side" exec "$root/.venv/bin/python" "$root/scripts/placement/transformers_device_map.py" "$@"
