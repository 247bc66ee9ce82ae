// The message of the error a call throws, for the tests that check what an error says.
#pragma once

#include <functional>
#include <string>

#include "qwenvl/error.h"

namespace qwenvl::test {

// The message of the qwenvl::Error that `f` throws, or "<no error>".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace qwenvl::test
