#include "structured/schema_features.h"

#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "qwenvl/error.h"
#include "structured/number_bounds.h"

namespace qwenvl::structured {

namespace {

using json = nlohmann::ordered_json;

const std::set<std::string>& keywords_of(const std::string& type) {
  static const std::map<std::string, std::set<std::string>> allowed = {
      {"object", {"properties", "required", "additionalProperties"}},
      {"array", {"items", "minItems", "maxItems"}},
      {"string", {"minLength", "maxLength", "enum"}},
      {"integer", {"minimum", "maximum", "enum"}},
      {"number", {"minimum", "maximum", "enum"}},
      {"boolean", {"enum"}},
      {"null", {}},
  };
  static const std::set<std::string> none;
  auto it = allowed.find(type);
  return it == allowed.end() ? none : it->second;
}

bool annotation(const std::string& key) { return key == "title" || key == "description" || key == "$schema"; }

[[noreturn]] void refuse(const std::string& where, const std::string& why) {
  throw Error("json_schema: " + why + " at " + (where.empty() ? "/" : where) + " (supported: " +
              "type object/array/string/integer/number/boolean/null, properties, required, additionalProperties false, "
              "items, minItems, maxItems, minLength, maxLength, minimum, maximum, enum, const)");
}

// minimum and maximum are numbers, and the range meets the digit bound (number_bounds.h).
void check_range(const json& s, const std::string& type, const std::string& where) {
  const int64_t limit = type == "integer" ? kIntegerLimit : kNumberLimit;
  for (const char* key : {"minimum", "maximum"})
    if (s.contains(key) && !s[key].is_number()) refuse(where, std::string(key) + " must be a number");
  const bool past = (s.contains("minimum") && bound_value(s["minimum"]) > limit) ||
                    (s.contains("maximum") && bound_value(s["maximum"]) < -limit);
  if (past)
    refuse(where, "the range lies past the pinned grammar's bound for " + type + "s, |x| <= " +
                      std::to_string(limit) + (type == "integer" ? " (16 digits)" : " (10 digits and 6 decimals)"));
}

void check(const json& s, const std::string& where) {
  if (!s.is_object()) refuse(where, "a schema must be an object");
  if (s.contains("enum") || s.contains("const")) {
    for (const auto& [key, value] : s.items())
      if (key != "enum" && key != "const" && key != "type" && !annotation(key)) refuse(where, "'" + key + "' beside enum/const");
    if (s.contains("enum") && (!s["enum"].is_array() || s["enum"].empty())) refuse(where, "enum must be a non-empty array");
    return;
  }
  if (!s.contains("type") || !s["type"].is_string()) refuse(where, "every schema needs one 'type' (a string)");
  const std::string type = s["type"];
  if (keywords_of(type).empty() && type != "null") refuse(where, "unsupported type '" + type + "'");
  for (const auto& [key, value] : s.items()) {
    if (key == "type" || annotation(key)) continue;
    if (!keywords_of(type).count(key)) refuse(where, "unsupported keyword '" + key + "' for type " + type);
  }
  if (type == "integer" || type == "number") check_range(s, type, where);
  if (type == "object") {
    if (s.contains("additionalProperties") && s["additionalProperties"] != false)
      refuse(where, "additionalProperties must be false");
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) refuse(where, "properties must be an object");
      for (const auto& [name, sub] : s["properties"].items()) check(sub, where + "/properties/" + name);
    }
    if (s.contains("required"))
      for (const auto& name : s["required"])
        if (!name.is_string() || !s.contains("properties") || !s["properties"].contains(name.get<std::string>()))
          refuse(where, "required names a property the schema does not define");
  } else if (type == "array") {
    if (!s.contains("items")) refuse(where, "an array needs 'items'");
    check(s["items"], where + "/items");
  }
}

}  // namespace

void check_schema_features(const std::string& schema_json) {
  json schema;
  try {
    schema = json::parse(schema_json);
  } catch (const json::exception& e) {
    throw Error(std::string("json_schema is not JSON: ") + e.what());
  }
  check(schema, "");
}

}  // namespace qwenvl::structured
