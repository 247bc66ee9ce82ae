// Precompiled for the engine and kernel libraries (their meson.build: cpp_pch). ATen/ATen.h is most
// of each source's compile time: a typical engine source took 10 s at -O2 alone and 2 s with this
// precompiled (2026-12-07, 2 cores), and the two libraries compile about a hundred sources that
// include it. Nothing may rely on it: every source still includes what it uses. (No include guard:
// meson compiles it as its own translation unit and forces it first into each source, once.)
#include <ATen/ATen.h>
