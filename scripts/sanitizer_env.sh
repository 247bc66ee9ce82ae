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
    # The fast (frame-pointer) unwinder records each allocation's stack: the slow one made the
    # suites about five times slower (element_faults 36 minutes against 5; docs/RELIABILITY.md).
    # GLib has no frame pointers, so a stack through g_malloc ends there: the three programs whose
    # leak suppressions name a frame beyond it run with the slow unwinder (tests/sanitizers/slow-unwind/:
    # gst-inspect-1.0, the plugin scanner, element_leaks' child). A report of ours that ends at g_malloc
    # is read again with ASAN_OPTIONS=fast_unwind_on_malloc=0.
    export ASAN_OPTIONS="abort_on_error=0:halt_on_error=1:detect_odr_violation=0:fast_unwind_on_malloc=1:${ASAN_OPTIONS:-}"
    slow=$here/slow-unwind
    export PATH="$slow:$PATH"
    export QWENVL_PLUGIN_SCANNER_CHECKED="${GST_PLUGIN_SCANNER:-$(pkg-config --variable=pluginscannerdir gstreamer-1.0)/gst-plugin-scanner}"
    export GST_PLUGIN_SCANNER="$slow/gst-plugin-scanner"
    if [ -n "${QWENVL_STATE_CYCLE_CHILD:-}" ]; then
      export QWENVL_STATE_CYCLE_CHILD_CHECKED="$QWENVL_STATE_CYCLE_CHILD" QWENVL_STATE_CYCLE_CHILD="$slow/state-cycle-child"
    fi
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
    # ignore_noninstrumented_modules=1: the malloc, free, memcpy and memset that GLib, GStreamer and
    # libtorch call themselves are not checked; they order their hand-offs with locks TSan cannot
    # see (Debian's GLib takes GMutex with futex calls). Their synchronisation through intercepted
    # calls still counts, and every access our instrumented code makes is checked.
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$here/tsan.supp:${TSAN_OPTIONS:-}"
    ;;
  *) echo "sanitizer_env: QWENVL_SANITIZER must be address or thread" >&2; exit 2 ;;
esac
# libtorch on one thread: its OpenMP pool is not instrumented, and one thread is what the suites need.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# GLib's slice allocator would hide GStreamer's allocations from the sanitizers.
export G_SLICE=always-malloc G_DEBUG=gc-friendly
exec "$@"
