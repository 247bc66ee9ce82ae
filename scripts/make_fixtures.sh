#!/usr/bin/env bash
# Builds the reference fixtures with the pinned reference stack (torch 2.11.0, transformers 5.17.0):
# tiny random-weight Qwen2.5-VL model directories, and the reference outputs every parity test reads.
# The fixtures are not committed: they are regenerated whenever a generator script changes, so a
# reference never goes stale.
#   scripts/make_fixtures.sh OUT_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: make_fixtures.sh OUT_DIR}
py=$root/.venv/bin/python
stamp=$( (cat "$root"/scripts/fixtures/*.py "$root"/scripts/requirements.txt; "$py" --version) | sha256sum | cut -c1-16)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  echo "fixtures: up to date in $out"
  exit 0
fi
rm -rf "$out"
mkdir -p "$out"
export PYTHONHASHSEED=0 CUDA_VISIBLE_DEVICES="" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
"$py" "$root/scripts/fixtures/make_all.py" --out "$out" --wheels "${QWENVL_CACHE:-$HOME/.cache/qwenvl}/wheels"
echo "$stamp" > "$out/.stamp"
echo "fixtures: written to $out"
