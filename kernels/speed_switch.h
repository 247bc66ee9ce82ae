// Measurement switches: NAME=0 in the environment turns one speed feature off, so that a benchmark
// can show what it gives (QWENVL_PDL: dependent launch; QWENVL_GEMV: the decode matrix-vector
// kernel). Anything else, or no variable, leaves it on. Callers read it once.
#pragma once

#include <cstdlib>
#include <cstring>

namespace qwenvl::kernels::detail {

inline bool speed_switch_on(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr || std::strcmp(v, "0") != 0;
}

}  // namespace qwenvl::kernels::detail
