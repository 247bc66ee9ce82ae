# Shared by the pipelines/*.sh scripts (sourced, not run): finds the build tree, the model and
# qwenvl-launch, and points GStreamer at the build tree's plugin.
#   BUILD  the meson build directory (default: build, relative to the repository root)
#   MODEL  the model directory (default: $BUILD/fixtures/models/tiny-a; the first argument wins)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$REPO/$BUILD" ;; esac
MODEL=${1:-${MODEL:-$BUILD/fixtures/models/tiny-a}}
QWENVL_LAUNCH=${QWENVL_LAUNCH:-$BUILD/tools/qwenvl-launch}
export GST_PLUGIN_PATH="$BUILD/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ ! -d "$MODEL" ]; then echo "$(basename "$0"): model directory '$MODEL' not found (set MODEL or pass it)" >&2; exit 1; fi
if [ ! -x "$QWENVL_LAUNCH" ]; then echo "$(basename "$0"): '$QWENVL_LAUNCH' not built (set BUILD or QWENVL_LAUNCH)" >&2; exit 1; fi
