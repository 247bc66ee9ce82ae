#include "runtime/placement/byte_size.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cmath>
#include <utility>

namespace qwenvl::runtime::placement {
namespace {

constexpr double kKiB = 1024.0;

struct Unit {
  const char* name;
  double bytes;
};
constexpr std::array<Unit, 9> kUnits = {{{"B", 1.0},
                                         {"KiB", kKiB},
                                         {"MiB", kKiB* kKiB},
                                         {"GiB", kKiB* kKiB* kKiB},
                                         {"TiB", kKiB* kKiB* kKiB* kKiB},
                                         {"KB", 1e3},
                                         {"MB", 1e6},
                                         {"GB", 1e9},
                                         {"TB", 1e12}}};

// Past this a size is surely a typo (and int64 arithmetic on sums of sizes stays safe).
constexpr double kLargestSize = 1024.0 * 1024 * 1024 * 1024 * 1024;  // 1 PiB

bool equal_ignoring_case(const std::string& a, const char* b) {
  size_t i = 0;
  for (; i < a.size() && b[i] != '\0'; ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return i == a.size() && b[i] == '\0';
}

}  // namespace

std::optional<int64_t> parse_byte_size(const std::string& text, std::string& why) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) {
    why = "a size starts with a number, e.g. 22GiB";
    return std::nullopt;
  }
  if (i < text.size() && text[i] == '.') {
    const size_t fraction = ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == fraction) {
      why = "a decimal point needs digits after it, e.g. 22.5GiB";
      return std::nullopt;
    }
  }
  const std::string number = text.substr(0, i);
  if (number.size() > 20) {  // std::stod would give up past a double's range
    why = "a size above 1 PiB is surely a typo";
    return std::nullopt;
  }
  size_t unit_start = i;
  while (unit_start < text.size() && text[unit_start] == ' ') ++unit_start;  // "22 GiB" as printed
  const std::string unit = text.substr(unit_start);
  if (unit.empty()) {
    why = "a size needs a unit (B, KiB, MiB, GiB, TiB, KB, MB, GB or TB), e.g. 22GiB";
    return std::nullopt;
  }
  for (const Unit& u : kUnits) {
    if (!equal_ignoring_case(unit, u.name)) continue;
    const double bytes = std::floor(std::stod(number) * u.bytes);
    if (!(bytes >= 1)) {
      why = "a size must be at least one byte";
      return std::nullopt;
    }
    if (bytes > kLargestSize) {
      why = "a size above 1 PiB is surely a typo";
      return std::nullopt;
    }
    return static_cast<int64_t>(bytes);
  }
  why = fmt::format("unknown unit '{}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", unit);
  return std::nullopt;
}

std::string format_bytes(int64_t bytes) {
  if (bytes < 1024 && bytes > -1024) return fmt::format("{} B", bytes);
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (unit < 4 && std::fabs(value) >= kKiB) {
    value /= kKiB;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit].name);
}

ByteUnit unit_for(int64_t largest) {
  size_t unit = 0;
  while (unit < 3 && static_cast<double>(largest) >= kUnits[unit + 1].bytes) ++unit;
  return {kUnits[unit].name, static_cast<int64_t>(kUnits[unit].bytes)};
}

std::string format_in(int64_t bytes, ByteUnit unit) {
  return fmt::format("{:.1f}", static_cast<double>(bytes) / static_cast<double>(unit.bytes));
}

}  // namespace qwenvl::runtime::placement
