#!/usr/bin/env bash
# Here, once per machine (and again when scripts/device/engine_debs.txt changes): makes .device, the
# folder every device call carries: ../shared/device (its Debian package tool and GStreamer's
# packages), the engine's further packages (engine_debs.txt), xgrammar's sources
# (pack_xgrammar.sh), the packages of the CUDA memory test (fetch_cuda_memory_debs.sh) and the
# tokenizer files the benchmarks' random-weight models take (.device/bench-tok, from the tiny-a
# fixture; scripts/make_fixtures.sh writes it). Needs scripts/setup.sh to have run.
#   scripts/device/prepare.sh [FIXTURES_DIR (default build/fixtures)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
fixtures=${1:-build/fixtures}
[ -d .device ] || cp -r ../shared/device .device
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo /.device/ >> .git/info/exclude
while read -r package; do
  case $package in ''|'#'*) continue ;; esac
  grep -qx "$package" .device/debs.txt || echo "$package" >> .device/debs.txt
done < scripts/device/engine_debs.txt
.device/fetch-debs.sh .device/debs
bash scripts/device/pack_xgrammar.sh
bash scripts/device/fetch_cuda_memory_debs.sh
[ -f "$fixtures/models/tiny-a/tokenizer.json" ] || scripts/make_fixtures.sh "$fixtures"
mkdir -p .device/bench-tok
for f in chat_template.json config.json generation_config.json preprocessor_config.json tokenizer.json tokenizer_config.json; do
  cp "$fixtures/models/tiny-a/$f" .device/bench-tok/
done
du -sh .device
