// The one exception type qwenvl-kernels throws: an argument an operation cannot take, or a CUDA
// fault, its message naming the operation. The kernels know nothing of the engine; the engine turns
// this into its own qwenvl::Error where it calls them (engine/runtime/kernel_errors.h).
#pragma once

#include <stdexcept>
#include <string>

namespace qwenvl::kernels {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace qwenvl::kernels
