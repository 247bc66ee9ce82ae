// Byte sizes as people write them ("22GiB", "22.5 GiB", "80GB") and as the plan prints them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace qwenvl::runtime::placement {

// A positive size: a number (digits, optionally one '.' and more digits) and a unit, B, KiB, MiB,
// GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000), case-insensitive, rounded down to
// whole bytes. nullopt with `why` set when the text is not one.
std::optional<int64_t> parse_byte_size(const std::string& text, std::string& why);

// "512 B", "3.0 KiB", "22.5 GiB": the largest binary unit that keeps the number at least 1, one decimal.
std::string format_bytes(int64_t bytes);

// A unit for a column of sizes: the largest binary unit in which `largest` is at least 1 (B to GiB).
struct ByteUnit {
  const char* name;
  int64_t bytes;
};
ByteUnit unit_for(int64_t largest);
// The number alone in that unit, one decimal: "22.5".
std::string format_in(int64_t bytes, ByteUnit unit);

}  // namespace qwenvl::runtime::placement
