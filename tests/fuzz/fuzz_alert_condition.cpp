// libFuzzer harness: the qwenvl element's alert-when (the first part, as a user sets the property)
// against an answer (the second part, as a model writes it). Parsing either succeeds or throws
// AlertConditionError naming the condition; evaluation never throws, stays within the regex limits,
// and never reports a match together with the reason it gave up.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "gst-plugin/alert_condition.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  const std::vector<std::string> parts = fuzz::split_parts(data, size, 2);
  const std::string text = parts[0].c_str();  // a property value is a C string: no NUL inside
  std::shared_ptr<const gst::AlertCondition> condition;
  try {
    condition = gst::AlertCondition::parse(text);
  } catch (const gst::AlertConditionError& e) {
    const std::string message = e.what();
    fuzz::require(message.rfind("alert-when '" + text + "': ", 0) == 0, "the error does not name the condition: " + message);
    return 0;
  }
  fuzz::require(condition != nullptr, "parse returned no condition");
  const gst::AlertMatch match = condition->evaluate(parts.size() > 1 ? parts[1] : "");
  fuzz::require(!(match.matched && !match.error.empty()), "a match that also gave up: " + match.error);
  return 0;
}
