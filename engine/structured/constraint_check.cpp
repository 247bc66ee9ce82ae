// qwenvl/constraint_check.h: the engine's own checks, reached from the public API.
#include "qwenvl/constraint_check.h"

#include "structured/constraint_grammar.h"

namespace qwenvl {

std::string constraint_error(const SamplingParams& params) {
  try {
    structured::check_constraint_grammar(params);
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

}  // namespace qwenvl

extern "C" bool qwenvl_check_constraint(const qwenvl::SamplingParams* params, std::string* error) {
  std::string why = params == nullptr ? std::string("qwenvl_check_constraint: no parameters given")
                                      : qwenvl::constraint_error(*params);
  if (why.empty()) return true;
  if (error != nullptr) *error = std::move(why);
  return false;
}
