// The JSON-schema features constrained decoding supports, checked before anything is compiled so
// that a request using any other is refused at submit with the keyword and where it is: objects
// (properties, required, additionalProperties false), arrays (items, minItems, maxItems), strings
// (minLength, maxLength, enum), integers and numbers (minimum, maximum), booleans, null, enum and
// const, and the annotations title, description and $schema.
#pragma once

#include <string>

namespace qwenvl::structured {

// Throws qwenvl::Error naming the first unsupported feature (or the JSON syntax error).
void check_schema_features(const std::string& schema_json);

}  // namespace qwenvl::structured
