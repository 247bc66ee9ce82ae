// What a template can call without defining it: jinja2's filters and tests, the Python methods of
// str / dict that templates use, attribute and item lookup with jinja2's fallbacks, and the globals
// transformers adds (raise_exception, strftime_now). Faults throw TemplateFault.
#pragma once

#include <string>

#include "chat/jinja/value.h"

namespace qwenvl::model::jinja {

// Filters get their subject as args.positional[0].
Value apply_filter(const std::string& name, CallArgs& args);
bool apply_test(const std::string& name, CallArgs& args);

// obj.name: Python attribute first (methods), then obj["name"]; undefined when neither exists.
Value get_attribute(const Value& obj, const std::string& name);
// obj[key]: the item first, then the attribute of that name.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] with Python's rules (absent bounds are undefined values).
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
bool contains(const Value& container, const Value& item);
// The items a for-loop visits: a list's items, a dict's keys, a string's characters.
List iterate(const Value& v);
// A global function (range, namespace, dict, raise_exception, strftime_now) or undefined.
Value global_function(const std::string& name);

}  // namespace qwenvl::model::jinja
