#!/usr/bin/env bash
# transformers' device_map="auto" against our planner, per GPU, as Markdown tables
# (scripts/placement/compare.py; docs/PLACEMENT.md holds its output). Needs a build (scripts/setup.sh);
# runs on the CPU: nothing is loaded, no GPU is touched.
#   scripts/placement/compare.sh [--build DIR] [--only 3B|7B|32B|72B]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/.venv/bin/python" "$root/scripts/placement/compare.py" "$@"
