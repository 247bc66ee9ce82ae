// The format and size an image file's header declares (PNG's IHDR, JPEG's frame header), read
// without decoding anything: uploads are checked against the pixel limits before a decoder
// allocates for them (a few hundred bytes of PNG can claim 30000 x 30000 pixels).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace qwenvl::cli {

enum class ImageFormat { kPng, kJpeg };

struct ImageHeader {
  ImageFormat format = ImageFormat::kPng;
  uint32_t width = 0;
  uint32_t height = 0;
};

// The header of a PNG (signature, then IHDR) or a baseline / progressive JPEG (SOI, then the first
// SOFn marker); nullopt for anything else, a header cut short, or a zero side.
std::optional<ImageHeader> read_image_header(const uint8_t* data, size_t size);

const char* format_name(ImageFormat format);

}  // namespace qwenvl::cli
