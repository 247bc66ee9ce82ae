// The one exception type qwenvl-kernels throws: an argument an operation cannot take, or a CUDA
// fault, its message naming the operation. The kernels know nothing of the engine, which turns it into
// its own qwenvl::Error where it calls them (frame preparation, loading) or fails the batch with it.
#pragma once

#include <stdexcept>
#include <string>

namespace qwenvl::kernels {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace qwenvl::kernels
