// PNG and JPEG headers read by hand: libpng and OpenCV only say the size once they decode.
#include "image_header.h"

namespace qwenvl::cli {

namespace {

uint32_t be32(const uint8_t* p) { return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]; }
uint32_t be16(const uint8_t* p) { return uint32_t{p[0]} << 8 | p[1]; }

std::optional<ImageHeader> png_header(const uint8_t* data, size_t size) {
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  // signature, then the IHDR chunk: length (13), type, width, height
  if (size < 24) return std::nullopt;
  for (int i = 0; i < 8; ++i)
    if (data[i] != kSignature[i]) return std::nullopt;
  if (be32(data + 8) != 13 || data[12] != 'I' || data[13] != 'H' || data[14] != 'D' || data[15] != 'R')
    return std::nullopt;
  return ImageHeader{ImageFormat::kPng, be32(data + 16), be32(data + 20)};
}

// Start-of-frame markers: SOF0-SOF15 less DHT (C4), JPG (C8) and DAC (CC).
bool is_start_of_frame(uint8_t marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

std::optional<ImageHeader> jpeg_header(const uint8_t* data, size_t size) {
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return std::nullopt;
  size_t at = 2;
  while (at + 4 <= size) {
    if (data[at] != 0xFF) return std::nullopt;
    const uint8_t marker = data[at + 1];
    if (marker == 0xFF) {  // fill byte before a marker
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // TEM, RSTn: no length
      at += 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return std::nullopt;  // EOI or scan data before any frame header
    const uint32_t length = be16(data + at + 2);
    if (length < 2) return std::nullopt;
    if (is_start_of_frame(marker)) {
      // length, precision, height, width
      if (length < 7 || at + 2 + 7 > size) return std::nullopt;
      return ImageHeader{ImageFormat::kJpeg, be16(data + at + 7), be16(data + at + 5)};
    }
    at += 2 + length;
  }
  return std::nullopt;
}

}  // namespace

std::optional<ImageHeader> read_image_header(const uint8_t* data, size_t size) {
  std::optional<ImageHeader> header = png_header(data, size);
  if (!header) header = jpeg_header(data, size);
  if (header && (header->width == 0 || header->height == 0)) return std::nullopt;
  return header;
}

const char* format_name(ImageFormat format) { return format == ImageFormat::kPng ? "PNG" : "JPEG"; }

}  // namespace qwenvl::cli
