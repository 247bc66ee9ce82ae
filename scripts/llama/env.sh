# Sourced by the scripts in scripts/llama/ and by scripts/bench/llama_cpp_bench.sh: the pinned
# llama.cpp (the one vendored by the llama-cpp-python source distribution on PyPI) and where its
# sdist, its trimmed source tarball and its builds are kept.
# 0.3.36 vendors ggml-org/llama.cpp@0c1e57098: Qwen2_5_VLForConditionalGeneration in the converter
# (conversion/qwenvl.py, with --mmproj) and PROJECTOR_TYPE_QWEN25VL in tools/mtmd/clip.cpp.
llama_pkg_version=0.3.36
llama_cache=${QWENVL_LLAMA_CACHE:-${QWENVL_CACHE:-$HOME/.cache/qwenvl}/llama}
llama_sdist=$llama_cache/llama_cpp_python-$llama_pkg_version.tar.gz
# The sdist (77 MB) is mostly the vocabulary test models and docs; the source tarball keeps only what
# the build and the converter need, small enough to carry to a machine without network.
llama_src_tarball=$llama_cache/llama.cpp-$llama_pkg_version-src.tar.gz
llama_src=$llama_cache/llama.cpp-$llama_pkg_version
