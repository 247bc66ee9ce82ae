#!/usr/bin/env bash
# The test command: installs what is missing, builds, writes the reference fixtures with the pinned
# transformers (only when their generator changed), runs every test suite, then each fuzzer briefly,
# then the CPU suites under AddressSanitizer + UndefinedBehaviorSanitizer (QWENVL_SANITIZERS).
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
python3 scripts/test_summary.py "$build/meson-logs/testlog.json" || status=1
# Every parser's fuzzer for a short time (tests/fuzz/README.md); QWENVL_FUZZ_SECONDS=0 replays the
# seed corpora only, "skip" leaves the fuzzers out.
fuzz_seconds=${QWENVL_FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" != skip ]; then
  FUZZ_BUILD="$build/fuzz" scripts/fuzz.sh "$fuzz_seconds" || status=1
fi
# The sanitizer builds (scripts/sanitize.sh; what ran, what it costs and each suppression in
# docs/RELIABILITY.md): QWENVL_SANITIZERS lists the kinds. By default "address": ASan + UBSan with
# LeakSanitizer over every CPU suite (a lean second build; its tests took 637 s on 2 cores,
# 2026-12-07). "address thread" adds ThreadSanitizer over the engine's concurrency suites and the
# element's (a third build, about 15 minutes cold on 2 cores, and 13 minutes of tests: opt-in).
# "skip" leaves them out (a quick local run). QWENVL_SANITIZE_SKIP="TEST..." leaves suites out.
# Both link this build's xgrammar.
sanitizers=${QWENVL_SANITIZERS:-address}
if [ "$sanitizers" != skip ]; then
  for kind in $sanitizers; do
    QWENVL_FIXTURES_DIR="$build/fixtures" \
      QWENVL_XGRAMMAR_PREBUILT="$build/third_party/xgrammar/libxgrammar.a" \
      scripts/sanitize.sh "$kind" "$build/sanitize-$kind" || status=1
  done
fi
# llama.cpp's llama-server on the tiny fixture, the element against it (issue 16 item 5): opt-in,
# QWENVL_LLAMA_SERVER=1; its build is kept in ~/.cache/qwenvl/llama (about 10 CPU-minutes cold).
if [ "${QWENVL_LLAMA_SERVER:-0}" = 1 ]; then
  BUILD="$(cd "$build" && pwd)" QWENVL_JOBS="${QWENVL_JOBS:-$(nproc)}" scripts/llama/serve_fixture.sh || status=1
fi
exit $status
