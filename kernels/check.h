// Argument checks shared by the kernels' entry points: every fault becomes a kernels::Error that
// names the operation and the argument.
#pragma once

#include <ATen/ATen.h>

#include <sstream>
#include <string>

#include "kernels/error.h"

namespace qwenvl::kernels::detail {

template <typename... Parts>
[[noreturn]] void fail(const char* op, const Parts&... parts) {
  std::ostringstream s;
  s << op << ": ";
  (s << ... << parts);
  throw Error(s.str());
}

inline void check(bool ok, const char* op, const std::string& what) {
  if (!ok) fail(op, what);
}

inline void check_dim(const at::Tensor& t, int64_t dim, const char* op, const char* name) {
  if (t.dim() != dim) fail(op, name, " must have ", dim, " dimensions, got shape ", t.sizes());
}

inline void check_int32_vector(const at::Tensor& t, const char* op, const char* name) {
  if (t.scalar_type() != at::kInt || t.dim() != 1)
    fail(op, name, " must be a 1-d int32 tensor, got ", t.scalar_type(), " of shape ", t.sizes());
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* op, const char* name) {
  if (a.device() != b.device())
    fail(op, name, " is on ", b.device(), " but the queries are on ", a.device());
}

// A CUDA tensor reached a library built without the CUDA kernels.
[[noreturn]] inline void fail_no_cuda(const char* op) {
  fail(op, "the tensors are on a CUDA device but qwenvl-kernels was built without CUDA "
           "(configure with -Dcuda=enabled where nvcc is installed)");
}

}  // namespace qwenvl::kernels::detail
