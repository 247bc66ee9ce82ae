// alert-when: the condition under which an answer is an alert, parsed from its text and evaluated
// on each answer. Two forms:
//   regex:PATTERN        PCRE2 (UTF-8) searched anywhere in the answer's text; anchor with ^ and $,
//                        (?i) ignores case. Matching runs under a match, depth and heap limit: a
//                        pattern that hits one does not match that answer (the reason is returned).
//   field:PATH OP VALUE  the answer parsed as JSON; PATH names a member, dotted for nested objects
//                        (a number steps into an array: items.0.kind); OP is ==, !=, <, <=, >, >=;
//                        VALUE is a JSON scalar: a number, true, false, null or a "quoted string".
//                        == and != compare JSON values (1 == 1.0; 3 != "3"); the ordering operators
//                        take a number VALUE and match a number field only. An answer that is not
//                        JSON, or has no such field, does not match, whatever OP is.
// Knows nothing of GStreamer.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

namespace qwenvl::gst {

// A condition that cannot be parsed; what() names the fault ("alert-when 'field:n=3': unknown
// operator '=' (use ==)").
class AlertConditionError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct AlertMatch {
  bool matched = false;
  std::string error;  // why evaluation gave up (a regex limit hit); empty otherwise
};

class AlertCondition {
 public:
  // Parses `text` (one of the two forms above); throws AlertConditionError.
  static std::shared_ptr<const AlertCondition> parse(const std::string& text);

  virtual ~AlertCondition() = default;
  // Whether `answer` (the answer's text) is an alert. Safe to call from several threads at once.
  virtual AlertMatch evaluate(const std::string& answer) const = 0;
};

}  // namespace qwenvl::gst
