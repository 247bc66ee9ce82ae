#include "tokenizer/utf8.h"

#include <cstdint>

namespace qwenvl::model {
namespace {

struct Unit {
  size_t length;   // bytes consumed: a whole character, or a maximal subpart
  bool valid;      // a whole well-formed character
  bool at_end;     // a subpart cut short by the end of the input (could still be completed)
};

// Reads the unit starting at bytes[i] following Table 3-7 (well-formed byte sequences).
Unit read_unit(std::string_view bytes, size_t i) {
  const auto b0 = static_cast<uint8_t>(bytes[i]);
  if (b0 < 0x80) return {1, true, false};
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {1, false, false};  // 80..C1, F5..FF never start a character
  }
  size_t k = 1;
  for (; k <= need; ++k) {
    if (i + k >= bytes.size()) return {k, false, true};
    const auto b = static_cast<uint8_t>(bytes[i + k]);
    const uint8_t low = k == 1 ? lo : 0x80, high = k == 1 ? hi : 0xBF;
    if (b < low || b > high) return {k, false, false};
  }
  return {need + 1, true, false};
}

}  // namespace

void append_utf8_lossy(std::string_view bytes, std::string& out) {
  size_t i = 0, run = 0;  // [run, i) is valid text not yet copied
  while (i < bytes.size()) {
    const Unit u = read_unit(bytes, i);
    if (u.valid) {
      i += u.length;
      continue;
    }
    out.append(bytes.substr(run, i - run));
    out.append("\xEF\xBF\xBD");
    i += u.length;
    run = i;
  }
  out.append(bytes.substr(run));
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_utf8_lossy(bytes, out);
  return out;
}

size_t utf8_settled_prefix(std::string_view bytes) {
  // Only the last three bytes can hold an unfinished character: start the scan there, at a lead byte.
  size_t i = bytes.size() > 4 ? bytes.size() - 4 : 0;
  while (i < bytes.size()) {
    const Unit u = read_unit(bytes, i);
    if (u.at_end) return i;
    i += u.length;
  }
  return bytes.size();
}

bool utf8_is_valid(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const Unit u = read_unit(bytes, i);
    if (!u.valid) return false;
    i += u.length;
  }
  return true;
}

}  // namespace qwenvl::model
