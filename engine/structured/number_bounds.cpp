#include "structured/number_bounds.h"

#include <nlohmann/json.hpp>

namespace qwenvl::structured {

namespace {

using json = nlohmann::ordered_json;  // the grammar keeps the schema's order of properties

// A bound beyond the limit (or absent) becomes the limit; the feature check has refused ranges that
// lie wholly past it, so the clamped range is never empty.
void clamp_range(json& s, int64_t limit) {
  if (!s.contains("minimum") || bound_value(s["minimum"]) < -limit) s["minimum"] = -limit;
  if (!s.contains("maximum") || bound_value(s["maximum"]) > limit) s["maximum"] = limit;
}

void bound(json& s) {
  if (!s.is_object() || s.contains("enum") || s.contains("const") || !s.contains("type")) return;
  const std::string type = s["type"];
  if (type == "integer") clamp_range(s, kIntegerLimit);
  if (type == "number") clamp_range(s, kNumberLimit);
  if (type == "object" && s.contains("properties"))
    for (auto& [name, sub] : s["properties"].items()) bound(sub);
  if (type == "array" && s.contains("items")) bound(s["items"]);
}

}  // namespace

long double bound_value(const nlohmann::ordered_json& v) { return v.get<long double>(); }

std::string bound_number_ranges(const std::string& schema_json) {
  json schema = json::parse(schema_json);
  bound(schema);
  return schema.dump();
}

}  // namespace qwenvl::structured
