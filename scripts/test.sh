#!/usr/bin/env bash
# The test command: installs what is missing, builds, writes the reference fixtures with the pinned
# transformers (only when their generator changed), then runs every test suite.
#   scripts/test.sh [BUILD_DIR]      (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$root"
scripts/setup.sh "$build"
scripts/make_fixtures.sh "$build/fixtures"
status=0
meson test -C "$build" --print-errorlogs --num-processes "${QWENVL_JOBS:-$(nproc)}" ${QWENVL_TEST_ARGS:-} || status=$?
# The closing line counts GoogleTest cases (skipped ones are the CUDA cases on a machine without a GPU).
python3 scripts/test_summary.py "$build/meson-logs/testlog.json"
exit $status
