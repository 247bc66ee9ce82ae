#!/usr/bin/env bash
# The test command: installs what is missing, builds, writes the reference fixtures with the pinned
# transformers (only when their generator changed), runs every test suite once, then each fuzzer
# briefly.
#   scripts/test.sh [BUILD_DIR]      (default: build)
# QWENVL_SANITIZERS lists the sanitizer passes (scripts/sanitize.sh; what each costs and every
# suppression in docs/RELIABILITY.md). By default "address thread":
#   address   every suite runs in the ASan + UBSan + LeakSanitizer build (BUILD_DIR/sanitize-address,
#             lean: no CUDA, -O1, test code at -O0), and only there: of the plain build, only the
#             xgrammar library it links is built. One build and one run instead of two is what keeps
#             CI inside its time on 2 cores.
#   thread    ThreadSanitizer over the engine's concurrency suites and the element's (BUILD_DIR/sanitize-thread).
#   skip      the plain build, every suite in it: the quick local run. Without "address" in the list
#             the suites run in the plain build.
# QWENVL_SANITIZE_SKIP="TEST..." leaves suites out of the sanitized runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$root"
sanitizers=${QWENVL_SANITIZERS:-address thread}
[ "$sanitizers" = skip ] && sanitizers=""
plain_suites=1
[[ " $sanitizers " == *" address "* ]] && plain_suites=0
# llama.cpp's llama-server on the tiny fixture, the element against it (issue 16 item 5): opt-in,
# QWENVL_LLAMA_SERVER=1; it runs the plain build's element and CLI. Its build is kept in
# ~/.cache/qwenvl/llama (about 10 CPU-minutes cold).
llama=${QWENVL_LLAMA_SERVER:-0}
if [ "$plain_suites" = 1 ] || [ "$llama" = 1 ]; then
  scripts/setup.sh "$build"
else
  QWENVL_BUILD_TARGETS=third_party/xgrammar/libxgrammar.a scripts/setup.sh "$build"
fi
scripts/make_fixtures.sh "$build/fixtures"
status=0
if [ "$plain_suites" = 1 ]; then
  meson test -C "$build" --print-errorlogs --num-processes "${QWENVL_JOBS:-$(nproc)}" ${QWENVL_TEST_ARGS:-} || status=$?
  # The closing line counts GoogleTest cases (skipped ones are the CUDA cases on a machine without a GPU).
  python3 scripts/test_summary.py "$build/meson-logs/testlog.json" || status=1
fi
# Every parser's fuzzer for a short time (tests/fuzz/README.md); QWENVL_FUZZ_SECONDS=0 replays the
# seed corpora only, "skip" leaves the fuzzers out.
fuzz_seconds=${QWENVL_FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" != skip ]; then
  FUZZ_BUILD="$build/fuzz" scripts/fuzz.sh "$fuzz_seconds" || status=1
fi
# The sanitized builds link the plain build's xgrammar (uninstrumented; fuzz_json_schema fuzzes its
# schema parsing under ASan + UBSan).
for kind in $sanitizers; do
  QWENVL_FIXTURES_DIR="$build/fixtures" \
    QWENVL_XGRAMMAR_PREBUILT="$build/third_party/xgrammar/libxgrammar.a" \
    scripts/sanitize.sh "$kind" "$build/sanitize-$kind" || status=1
done
if [ "$llama" = 1 ]; then
  BUILD="$(cd "$build" && pwd)" QWENVL_JOBS="${QWENVL_JOBS:-$(nproc)}" scripts/llama/serve_fixture.sh || status=1
fi
exit $status
