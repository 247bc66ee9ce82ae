#!/usr/bin/env bash
# Installs what is missing (Debian 12 / Ubuntu packages, the pinned reference Python stack with its
# libtorch), configures and builds. Safe to run again: each step is skipped when already done.
#   scripts/setup.sh [BUILD_DIR]     (default: build)
# Caches that later runs reuse: pip's (~/.cache/pip), ccache's (~/.cache/ccache) and the virtual
# environment itself ($QWENVL_CACHE, default ~/.cache/qwenvl), keyed by scripts/requirements.txt (and
# the OpenAI client's, keyed by scripts/requirements-clients.txt), with xgrammar's unpacked source
# distribution beside it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$root"

# 1. Debian packages: the narrowest that serve.
packages=(
  build-essential meson ninja-build ccache pkg-config python3 python3-venv
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-x python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libopencv-videoio-dev libpng-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libsimdjson-dev libpcre2-dev libutf8proc-dev libfmt-dev
  libspdlog-dev libcli11-dev libcpp-httplib-dev libjpeg-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. The reference stack (torch 2.11.0 with its libtorch, transformers 5.17.0) in a virtual
#    environment owned by the project, outside the checkout so that fresh clones reuse it.
cache=${QWENVL_CACHE:-$HOME/.cache/qwenvl}
python=${QWENVL_PYTHON:-python3}
req_hash=$( (cat scripts/requirements.txt; "$python" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -c1-12)
venv=$cache/venv-$req_hash
mkdir -p "$cache"
exec 9>"$cache/.setup.lock"
flock 9  # one set-up at a time: concurrent builds share this environment
if [ ! -f "$venv/.complete" ]; then
  echo "setup: creating $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r scripts/requirements.txt
  touch "$venv/.complete"
fi
ln -sfn "$venv" "$root/.venv"
# The OpenAI Python client for the server's tests: a venv of its own, keyed by its own pins (about
# 10 s to create from PyPI, once per change of scripts/requirements-clients.txt).
clients_hash=$( (cat scripts/requirements-clients.txt; "$python" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -c1-12)
clients_venv=$cache/clients-$clients_hash
if [ ! -f "$clients_venv/.complete" ]; then
  echo "setup: creating $clients_venv"
  rm -rf "$clients_venv"
  "$python" -m venv "$clients_venv"
  "$clients_venv/bin/python" -m pip install -q --no-deps -r scripts/requirements-clients.txt
  touch "$clients_venv/.complete"
fi
ln -sfn "$clients_venv" "$root/.venv-clients"
torch_dir=$("$venv/bin/python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')

# 3. Qwen2's real BPE ranks (151,643 tokens) ship inside the dashscope SDK wheel; keep the wheel.
wheels=$cache/wheels
if ! ls "$wheels"/dashscope-2.0.2-*.whl >/dev/null 2>&1; then
  "$venv/bin/python" -m pip download -q --no-deps -d "$wheels" dashscope==2.0.2
fi

# 4. xgrammar's C++ core (constrained decoding) from its source distribution on PyPI, unpacked once;
#    meson compiles its sources into a static library (third_party/xgrammar), no Python bindings.
xgrammar_version=0.2.9
xgrammar_dir=$cache/xgrammar-$xgrammar_version
if [ ! -f "$xgrammar_dir/.complete" ]; then
  if ! ls "$wheels/xgrammar-$xgrammar_version.tar.gz" >/dev/null 2>&1; then
    # --no-binary for xgrammar alone: its build tools come as wheels, only to read the metadata.
    "$venv/bin/python" -m pip download -q --no-deps --no-binary xgrammar -d "$wheels" "xgrammar==$xgrammar_version"
  fi
  rm -rf "$xgrammar_dir"
  tar -xzf "$wheels/xgrammar-$xgrammar_version.tar.gz" -C "$cache"
  touch "$xgrammar_dir/.complete"
fi

# 5. Configure and build (ccache, one build for everything).
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
# pch/aten.h is forced into the libraries' sources: ccache hashes the precompiled header and, with these, caches them.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
if [ ! -f "$build/build.ninja" ]; then
  CC="ccache gcc" CXX="ccache g++" meson setup "$build" -Dtorch_dir="$torch_dir" -Dxgrammar_dir="$xgrammar_dir" ${QWENVL_MESON_ARGS:-}
else
  # A build directory from before an option existed needs a reconfigure to learn it.
  meson configure "$build" -Dtorch_dir="$torch_dir" -Dxgrammar_dir="$xgrammar_dir" >/dev/null 2>&1 ||
    meson setup --reconfigure "$build" -Dtorch_dir="$torch_dir" -Dxgrammar_dir="$xgrammar_dir" >/dev/null
fi
flock -u 9
# QWENVL_BUILD_TARGETS names the ninja targets to build (default: everything): scripts/test.sh builds
# only the xgrammar library here when the suites run in the sanitized build.
ninja -C "$build" -j "${QWENVL_JOBS:-$(nproc)}" ${QWENVL_BUILD_TARGETS:-}
