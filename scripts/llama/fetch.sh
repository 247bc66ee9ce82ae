#!/usr/bin/env bash
# Downloads the pinned llama-cpp-python sdist from PyPI (once, into the cache) and writes from it the
# trimmed llama.cpp source tarball that build.sh unpacks (and that a machine without network is
# given instead of the sdist).
#   scripts/llama/fetch.sh            prints the source tarball's path
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$llama_cache"
if [ -f "$llama_src_tarball" ]; then echo "$llama_src_tarball"; exit 0; fi
if [ ! -f "$llama_sdist" ]; then
  pip=${PIP:-$(dirname "$0")/../../.venv/bin/pip}
  [ -x "$pip" ] || pip="python3 -m pip"
  echo "fetch: pip download llama-cpp-python==$llama_pkg_version (sdist)" >&2
  $pip download --no-binary :all: --no-deps "llama-cpp-python==$llama_pkg_version" -d "$llama_cache" >&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
top=llama_cpp_python-$llama_pkg_version/vendor/llama.cpp
# Left out: vocabulary test models, docs, tests, benches, the web UI's sources, examples (none is a
# dependency of llama-server, mtmd or the converter).
tar -xzf "$llama_sdist" -C "$tmp" "$top" \
  --exclude="$top/models" --exclude="$top/docs" --exclude="$top/tests" --exclude="$top/benches" \
  --exclude="$top/tools/ui/src" --exclude="$top/tools/server/tests" --exclude="$top/media"
mv "$tmp/$top" "$tmp/llama.cpp-$llama_pkg_version"
tar -czf "$llama_src_tarball.part" -C "$tmp" "llama.cpp-$llama_pkg_version"
mv "$llama_src_tarball.part" "$llama_src_tarball"
echo "fetch: wrote $llama_src_tarball ($(du -h "$llama_src_tarball" | cut -f1))" >&2
echo "$llama_src_tarball"
