#!/usr/bin/env bash
# The CPU test suites under the sanitizers (issue 15): a lean second build of the project (no CUDA,
# -O1, line tables only) instrumented with
#   address   AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included): every CPU suite;
#   thread    ThreadSanitizer: the engine's concurrency suites and the element's, libtorch on one thread.
# and runs them. Every test process starts with the sanitizer runtime preloaded (scripts/sanitizer_env.sh
# is the test wrapper), so the processes a test starts (gst-launch-1.0, GStreamer's plugin scanner,
# python) load our instrumented plugin instead of blacklisting it. Suppressions live in
# tests/sanitizers/, each for code of GLib/GStreamer, libtorch or Python, each explained.
#   scripts/sanitize.sh address|thread [BUILD_DIR]     (default BUILD_DIR: build-asan / build-tsan)
# Needs scripts/setup.sh to have run (the venv with libtorch) and the fixtures (QWENVL_FIXTURES_DIR,
# default build/fixtures, as scripts/test.sh writes them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kind=${1:?usage: scripts/sanitize.sh address|thread [BUILD_DIR]}
# xgrammar's unpacked source distribution, where scripts/setup.sh left it.
xgrammar_dir=${QWENVL_XGRAMMAR_DIR:-${QWENVL_CACHE:-$HOME/.cache/qwenvl}/xgrammar-0.2.9}
fixtures=$(readlink -f "${QWENVL_FIXTURES_DIR:-build/fixtures}")
torch_dir=$(readlink -f .venv)/lib/$(basename "$(ls -d .venv/lib/python3*)")/site-packages/torch  # outside the tree: .venv is a link into the cache
case "$kind" in
  address)
    build=${2:-build-asan}
    sanitize=address,undefined
    # Every CPU suite: the GPU suites only skip on a machine without CUDA, so they are left out.
    suites=(--no-suite gpu)
    ;;
  thread)
    build=${2:-build-tsan}
    sanitize=thread
    # Where threads meet: the engine's public API and its overlap of host and device work, the
    # element (streaming threads, the engine's callbacks, the bus) and the server.
    suites=(engine engine_overlap qwenvl_element element_ask element_clip element_history element_change
            element_alert element_leaks qwenvl_server)
    ;;
  *) echo "sanitize: unknown kind '$kind' (address or thread)" >&2; exit 2 ;;
esac

export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
if [ ! -f "$build/build.ninja" ]; then
  # b_lundef=false: the shared libraries leave the sanitizer runtime's symbols to the executable.
  CC="ccache gcc" CXX="ccache g++" meson setup "$build" -Dtorch_dir="$torch_dir" -Dfixtures_dir="$fixtures" -Dxgrammar_dir="$xgrammar_dir" \
    -Dcuda=disabled -Dbuildtype=plain -Dc_args="-O1 -g1 -fno-omit-frame-pointer" \
    -Dcpp_args="-O1 -g1 -fno-omit-frame-pointer" -Db_sanitize="$sanitize" -Db_lundef=false >/dev/null
fi
start=$(date +%s)
targets=()
if [ "$kind" = thread ]; then
  # Only what the thread suites run: their executables and what they depend on.
  mapfile -t targets < <(python3 scripts/test_targets.py "$build" "${suites[@]}")
fi
ninja -C "$build" -j "${QWENVL_JOBS:-$(nproc)}" "${targets[@]}"
built=$(date +%s)

status=0
QWENVL_SANITIZER=$kind meson test -C "$build" --no-rebuild --print-errorlogs \
  --wrapper "$root/scripts/sanitizer_env.sh" --timeout-multiplier 4 \
  --num-processes "${QWENVL_JOBS:-$(nproc)}" "${suites[@]}" || status=$?
python3 scripts/test_summary.py "$build/meson-logs/testlog.json" || status=1
echo "sanitize ($kind): build $((built - start)) s, tests $(($(date +%s) - built)) s"
exit $status
