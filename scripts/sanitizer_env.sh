#!/usr/bin/env bash
# Test wrapper of scripts/sanitize.sh: runs one test with the sanitizer runtime preloaded, so every
# process it starts (gst-launch-1.0, the plugin scanner, python) has the runtime before our
# instrumented plugin loads, and with the options and suppressions of tests/sanitizers/.
#   QWENVL_SANITIZER=address|thread scripts/sanitizer_env.sh COMMAND...
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)/tests/sanitizers
case "${QWENVL_SANITIZER:?}" in
  address)
    export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)${LD_PRELOAD:+:$LD_PRELOAD}"
    # fast_unwind_on_malloc=0: GLib has no frame pointers, so the fast unwinder stops at g_malloc;
    # the slow one gives the whole stack that a leak report and a suppression need.
    export ASAN_OPTIONS="abort_on_error=0:halt_on_error=1:detect_odr_violation=0:fast_unwind_on_malloc=0:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$here/ubsan.supp:${UBSAN_OPTIONS:-}"
    export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
    # CPython frees nothing at exit (its objects and PyGObject's stay reachable only from freed
    # interpreter state), so a Python process is checked for memory errors, not leaks: the test
    # itself when it is Python, and the system python3 the tests start (QWENVL_SYSTEM_PYTHON).
    case "$(basename "$1")" in
      python3*) export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" ;;
    esac
    if [ -n "${QWENVL_SYSTEM_PYTHON:-}" ]; then
      export QWENVL_PYTHON_CHECKED="$QWENVL_SYSTEM_PYTHON" QWENVL_SYSTEM_PYTHON="$here/python-without-leak-check"
    fi
    ;;
  thread)
    export LD_PRELOAD="$(gcc -print-file-name=libtsan.so)${LD_PRELOAD:+:$LD_PRELOAD}"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$here/tsan.supp:${TSAN_OPTIONS:-}"
    ;;
  *) echo "sanitizer_env: QWENVL_SANITIZER must be address or thread" >&2; exit 2 ;;
esac
# libtorch on one thread: its OpenMP pool is not instrumented, and one thread is what the suites need.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# GLib's slice allocator would hide GStreamer's allocations from the sanitizers.
export G_SLICE=always-malloc G_DEBUG=gc-friendly
exec "$@"
