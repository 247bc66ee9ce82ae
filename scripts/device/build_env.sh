# Sourced (from the repository root, .device carried) by the scripts that build and run on the GPU
# machine: unpacks the carried Debian packages (.device/device-env.sh), points the .pc files that
# name /usr outright at the private prefix, and sets CUDA_PATH (nvcc's toolkit) and torch_dir (the
# machine's torch, whose libtorch the build links).
source .device/device-env.sh .device/debs
find /opt/deps -name '*.pc' -exec sed -i -E 's#^(libdir|includedir)=/usr#\1=/opt/deps/usr#' {} +
export CUDA_PATH=$(dirname "$(dirname "$(command -v nvcc)")")
torch_dir=$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))')

# The random-weight model directories of the benchmarks, one per shape (3b, 7b), shared by every
# script run on the same machine.
bench_models=/tmp/qwenvl-bench-models

# Writes the model of shape $1 under $bench_models unless an earlier script did (it leaves SHAPE.done).
write_bench_model() {
  [ -f "$bench_models/$1.done" ] && return 0
  python3 scripts/bench/write_random_model.py "$bench_models/$1" --shape "$1" --tokenizer-from .device/bench-tok \
    && touch "$bench_models/$1.done"
}
