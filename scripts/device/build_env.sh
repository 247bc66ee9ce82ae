# Sourced (from the repository root, .device carried) by the scripts that build and run on the GPU
# machine: unpacks the carried Debian packages (.device/device-env.sh), points the .pc files that
# name /usr outright at the private prefix, sets CUDA_PATH (nvcc's toolkit), torch_dir (the
# machine's torch, whose libtorch the build links) and xgrammar_dir (xgrammar's sources, carried in
# .device since that machine reaches no registry: scripts/device/pack_xgrammar.sh puts them there),
# and defines configure_build, the one meson set-up every device script uses.
source .device/device-env.sh .device/debs
find /opt/deps -name '*.pc' -exec sed -i -E 's#^(libdir|includedir)=/usr#\1=/opt/deps/usr#' {} +
export CUDA_PATH=$(dirname "$(dirname "$(command -v nvcc)")")
torch_dir=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')
xgrammar_dir=$PWD/.device/xgrammar-0.2.9
[ -d "$xgrammar_dir/cpp" ] || echo "build_env: $xgrammar_dir is missing: run scripts/device/pack_xgrammar.sh here first" >&2

# configure_build BUILD LOG [MESON_ARGS...]: sets up BUILD for CUDA against this machine's torch,
# unless an earlier script on the machine did; on failure prints the log's tail and returns 1. Run in
# the source tree (an older revision's, for ab_caption.sh, may predate the xgrammar option).
configure_build() {
  local build=$1 log=$2
  shift 2
  [ -f "$build/build.ninja" ] && return 0
  grep -q xgrammar_dir meson_options.txt && set -- -Dxgrammar_dir="$xgrammar_dir" "$@"
  meson setup "$build" -Dtorch_dir="$torch_dir" -Dcuda=enabled "$@" > "$log" 2>&1 \
    || { tail -40 "$log"; echo "configure of $build failed (log: $log)"; return 1; }
}

# The random-weight model directories of the benchmarks, one per shape (3b, 7b), shared by every
# script run on the same machine.
bench_models=/tmp/qwenvl-bench-models

# Writes the model of shape $1 under $bench_models unless an earlier script did (it leaves SHAPE.done).
write_bench_model() {
  [ -f "$bench_models/$1.done" ] && return 0
  python3 scripts/bench/write_random_model.py "$bench_models/$1" --shape "$1" --tokenizer-from .device/bench-tok \
    && touch "$bench_models/$1.done"
}

# GLib's and GStreamer's .pc files name private requirements (libffi, libdw, libunwind, mount, ...)
# whose -dev packages are not carried; only static linking needs them, but pkg-config's --cflags
# refuses to answer without them: stand-in .pc files for the ones this machine lacks, so that meson
# finds GStreamer and builds the element.
gstreamer_pkgconfig_stubs() {
  local stubs=/opt/deps/stub-pkgconfig m
  mkdir -p "$stubs"
  for m in libffi libdw libunwind libselinux mount zlib orc-0.4 libpcre2-8 gmodule-no-export-2.0; do
    pkg-config --exists "$m" 2>/dev/null || printf 'Name: %s\nDescription: stand-in (private requirement)\nVersion: 99\nLibs:\nCflags:\n' "$m" > "$stubs/$m.pc"
  done
  export PKG_CONFIG_PATH=$PKG_CONFIG_PATH:$stubs
}
