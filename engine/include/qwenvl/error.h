// The one exception type the engine throws. Messages are for the user: they name the file or the
// input at fault and say what is wrong with it.
#pragma once

#include <stdexcept>
#include <string>

namespace qwenvl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace qwenvl
