// The pinned grammar's numbers have at most 16 significant digits, so that every schema whose strings
// and arrays are bounded has documents of bounded length. xgrammar's number grammar without a range
// has no digit bound (and exponents), but its range grammar has one: the digits of the bounds, at most
// 6 decimals (its fixed precision), no exponent. So every integer and number gets a closed range
// before xgrammar sees the schema: integers within +-kIntegerLimit (16 digits), other numbers within
// +-kNumberLimit (10 integer digits and 6 decimals). A schema's own tighter bounds stay as they are.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace qwenvl::structured {

constexpr int64_t kIntegerLimit = 9'999'999'999'999'999;  // 16 digits
constexpr int64_t kNumberLimit = 9'999'999'999;           // 10 digits, and up to 6 decimals

// A minimum or maximum (a JSON number) exactly: long double holds every int64 and uint64 and double.
long double bound_value(const nlohmann::ordered_json& v);

// The schema (already checked by check_schema_features) with every integer's and number's minimum and
// maximum clamped into the limits above; properties keep their order.
std::string bound_number_ranges(const std::string& schema_json);

}  // namespace qwenvl::structured
