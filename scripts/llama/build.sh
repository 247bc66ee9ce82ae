#!/usr/bin/env bash
# Builds llama-server (with the mtmd library it links for images) from the pinned llama.cpp source
# tarball (fetch.sh writes it; or pass one carried to a machine without network), static, only the
# targets the server needs. CPU by default; --cuda builds the CUDA backend for sm_90 only.
#   scripts/llama/build.sh [--cuda] [--src TARBALL] [--jobs N] [--build-dir DIR]
# Prints the path of the llama-server binary on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh"
cuda=0 tarball="" jobs=${QWENVL_JOBS:-$(nproc)} build=""
while [ $# -gt 0 ]; do
  case $1 in
    --cuda) cuda=1 ;;
    --src) tarball=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --build-dir) build=$2; shift ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$tarball" ] || tarball=$("$here/fetch.sh")
src=$llama_src
if [ ! -f "$src/CMakeLists.txt" ]; then
  mkdir -p "$(dirname "$src")"
  tar -xzf "$tarball" -C "$(dirname "$src")"
fi
if [ $cuda = 1 ]; then
  build=${build:-$llama_cache/build-cuda-sm90}
  # Only sm_90, and only the flash-attention kernels of the f16/bf16 KV cache (FA_ALL_QUANTS off):
  # the CUDA build's time is mostly its template instances.
  backend=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA_ALL_QUANTS=OFF -DGGML_NATIVE=OFF)
else
  build=${build:-$llama_cache/build-cpu}
  backend=(-DGGML_CUDA=OFF -DGGML_NATIVE=ON)
fi
t0=$(date +%s)
if [ ! -f "$build/CMakeCache.txt" ]; then
  # No network at build time: no web UI (neither npm nor its download), no OpenSSL/HTTPS client.
  cmake -S "$src" -B "$build" -G "$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF "${backend[@]}" \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=ON >&2
fi
cmake --build "$build" --target llama-server -j "$jobs" >&2
echo "build: llama-server ($([ $cuda = 1 ] && echo CUDA sm_90 || echo CPU)) in $(( $(date +%s) - t0 )) s" >&2
echo "$build/bin/llama-server"
