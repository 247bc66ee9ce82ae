// Data URIs and base64, as image_url carries images.
#include "data_uri.h"

#include <cctype>
#include <cstdint>

namespace qwenvl::server {

namespace {

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t bits = 0;
  int count = 0;  // sextets in `bits`
  size_t padding = 0;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_space(c)) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return std::nullopt;  // data after padding
    const int v = base64_value(c);
    if (v < 0) return std::nullopt;
    bits = bits << 6 | static_cast<uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>(bits >> 16 & 0xFF));
      out.push_back(static_cast<char>(bits >> 8 & 0xFF));
      out.push_back(static_cast<char>(bits & 0xFF));
      bits = 0;
      count = 0;
    }
  }
  // A last group of 2 or 3 sextets carries 1 or 2 bytes; its unused low bits must be zero.
  if (count == 1) return std::nullopt;
  if (count == 2) {
    if ((bits & 0xF) != 0) return std::nullopt;
    out.push_back(static_cast<char>(bits >> 4 & 0xFF));
  } else if (count == 3) {
    if ((bits & 0x3) != 0) return std::nullopt;
    out.push_back(static_cast<char>(bits >> 10 & 0xFF));
    out.push_back(static_cast<char>(bits >> 2 & 0xFF));
  }
  if (padding > 0 && (count == 0 || count + padding != 4)) return std::nullopt;
  return out;
}

std::optional<DataUri> parse_data_uri(std::string_view uri, std::string* why) {
  auto fail = [&](const std::string& reason) -> std::optional<DataUri> {
    if (why != nullptr) *why = reason;
    return std::nullopt;
  };
  if (lower(uri.substr(0, 5)) != "data:") return fail("not a data URI");
  const size_t comma = uri.find(',');
  if (comma == std::string_view::npos) return fail("a data URI without a comma before its data");
  const std::string_view header = uri.substr(5, comma - 5);
  const size_t semicolon = header.find(';');
  DataUri out;
  out.media_type = lower(header.substr(0, semicolon));
  bool base64 = false;
  for (size_t at = semicolon; at != std::string_view::npos;) {
    const size_t next = header.find(';', at + 1);
    const std::string parameter = lower(header.substr(at + 1, next == std::string_view::npos ? next : next - at - 1));
    if (parameter == "base64") base64 = true;
    at = next;
  }
  if (!base64) return fail("a data URI that is not base64 (';base64,' is missing)");
  std::optional<std::string> data = decode_base64(uri.substr(comma + 1));
  if (!data) return fail("a data URI whose data is not valid base64");
  out.data = std::move(*data);
  return out;
}

}  // namespace qwenvl::server
