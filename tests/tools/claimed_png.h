// PNGs written by hand for the tests of image limits: a valid header that claims any size, with a
// token of image data (a few dozen bytes that say "30000 x 30000").
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>

namespace qwenvl::test {

inline void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

inline void png_chunk(std::string& out, const char* type, const std::string& data) {
  put32(out, static_cast<uint32_t>(data.size()));
  const std::string body = type + data;
  out += body;
  put32(out,
        static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

// A PNG whose header claims width x height RGB pixels, with a token of image data.
inline std::string claimed_png(uint32_t width, uint32_t height) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put32(ihdr, width);
  put32(ihdr, height);
  ihdr += std::string{8, 2, 0, 0, 0};  // 8 bits, RGB, deflate, no filter, no interlace
  png_chunk(png, "IHDR", ihdr);
  png_chunk(png, "IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8));
  png_chunk(png, "IEND", "");
  return png;
}

}  // namespace qwenvl::test
