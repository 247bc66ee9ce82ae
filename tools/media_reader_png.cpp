// qwenvl-cli's media reading without OpenCV: PNG images through libpng, decoded to exactly the pixels
// OpenCV 4.6's imread(IMREAD_COLOR) gives (the same libpng transforms as its grfmt_png.cpp, then the
// EXIF orientation of an eXIf chunk, as its imread applies it), from a file or from memory. Other
// formats and videos are refused.
#include <png.h>

#include <cstdint>
#include <cstdio>
#include <memory>

#include "media_reader.h"

namespace qwenvl::cli {

const char* const kMediaSupport = "Media: PNG images only (built without OpenCV); --video is refused.";

namespace {

constexpr const char* kWithoutOpenCv = "this qwenvl-cli was built without OpenCV, so only PNG images are read";

// A few MB of PNG can claim 30000 x 30000 pixels, 2.7 GB decoded: the limits (media_reader.h) are
// checked on the header, before anything is allocated.
constexpr uint64_t kMaxSide = kMaxImageSide, kMaxPixels = kMaxImagePixels;

struct Decoded {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // packed rows of width * 3 bytes
  std::vector<png_bytep> rows;
  png_uint_32 exif_size = 0;
  png_bytep exif = nullptr;  // owned by libpng's info structs
  char error[256] = "";
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* out = static_cast<Decoded*>(png_get_error_ptr(png));
  std::snprintf(out->error, sizeof out->error, "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // OpenCV does not report them either

// libpng leaves on errors by longjmp back here: this frame holds no object with a destructor, and all
// it produces goes to *out.
bool decode(std::FILE* file, png_structp png, png_infop info, png_infop end_info, Decoded* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, file);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  png_uint_32 width = 0, height = 0;
  int depth = 0, color_type = 0;
  png_get_IHDR(png, info, &width, &height, &depth, &color_type, nullptr, nullptr, nullptr);
  if (width > kMaxSide || height > kMaxSide || uint64_t{width} * height > kMaxPixels)
    png_error(png, "larger than the limits (2^20 pixels a side, 178956970 in all, as PIL refuses)");
  // OpenCV's transforms for IMREAD_COLOR: 16 bits to 8 by dropping the low byte (png_set_strip_16), alpha
  // and tRNS dropped without compositing, palette and 1/2/4-bit gray expanded, gray copied to 3 channels.
  if (depth == 16) png_set_strip_16(png);
  png_set_strip_alpha(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if ((color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t row_bytes = size_t{width} * 3;
  if (png_get_rowbytes(png, info) != row_bytes) png_error(png, "unexpected decoded row size");
  out->width = static_cast<int>(width);
  out->height = static_cast<int>(height);
  out->rgb.resize(row_bytes * height);
  out->rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y) out->rows[y] = out->rgb.data() + y * row_bytes;
  png_read_image(png, out->rows.data());
  png_read_end(png, end_info);
  // The eXIf chunk may come before the image data or after it (as OpenCV looks for it).
  if (png_get_valid(png, info, PNG_INFO_eXIf))
    png_get_eXIf_1(png, info, &out->exif_size, &out->exif);
  else if (png_get_valid(png, end_info, PNG_INFO_eXIf))
    png_get_eXIf_1(png, end_info, &out->exif_size, &out->exif);
  return true;
}

// The Orientation tag (0x0112) of IFD0 in an eXIf chunk's TIFF structure; 1 (as stored) when absent
// or unreadable.
int exif_orientation(const uint8_t* data, size_t size) {
  if (data == nullptr || size < 8) return 1;
  const bool little = data[0] == 'I' && data[1] == 'I';
  if (!little && !(data[0] == 'M' && data[1] == 'M')) return 1;
  auto u16 = [&](size_t at) -> uint32_t {
    return little ? data[at] | data[at + 1] << 8 : data[at] << 8 | data[at + 1];
  };
  auto u32 = [&](size_t at) -> uint64_t {
    return little ? u16(at) | uint64_t{u16(at + 2)} << 16 : uint64_t{u16(at)} << 16 | u16(at + 2);
  };
  if (u16(2) != 42) return 1;
  const uint64_t ifd = u32(4);
  if (ifd + 2 > size) return 1;
  const uint32_t entries = u16(ifd);
  for (uint32_t i = 0; i < entries; ++i) {
    const uint64_t entry = ifd + 2 + uint64_t{12} * i;
    if (entry + 12 > size) return 1;
    if (u16(entry) == 0x0112) return static_cast<int>(u16(entry + 8));
  }
  return 1;
}

// OpenCV's ApplyExifOrientation: flips (2-4) and transposes (5-8) of the stored pixels.
void apply_orientation(int orientation, Decoded& d) {
  if (orientation < 2 || orientation > 8) return;
  const int w = d.width, h = d.height;
  const bool transposed = orientation >= 5;
  const int out_w = transposed ? h : w, out_h = transposed ? w : h;
  std::vector<uint8_t> out(d.rgb.size());
  for (int y = 0; y < out_h; ++y) {
    for (int x = 0; x < out_w; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                   // flip left-right
        case 3: sx = w - 1 - x, sy = h - 1 - y; break;   // rotate 180
        case 4: sy = h - 1 - y; break;                   // flip top-bottom
        case 5: sx = y, sy = x; break;                   // transpose
        case 6: sx = y, sy = h - 1 - x; break;           // rotate 90 clockwise
        case 7: sx = w - 1 - y, sy = h - 1 - x; break;   // transverse
        case 8: sx = w - 1 - y, sy = x; break;           // rotate 90 counter-clockwise
      }
      const uint8_t* from = d.rgb.data() + (static_cast<size_t>(sy) * w + sx) * 3;
      uint8_t* to = out.data() + (static_cast<size_t>(y) * out_w + x) * 3;
      to[0] = from[0], to[1] = from[1], to[2] = from[2];
    }
  }
  d.rgb = std::move(out);
  d.width = out_w;
  d.height = out_h;
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

// The PNG `file` holds from its start; errors start with `label`.
Image read_png(std::FILE* file, const std::string& label) {
  png_byte signature[8] = {};
  if (std::fread(signature, 1, sizeof signature, file) != sizeof signature ||
      png_sig_cmp(signature, 0, sizeof signature) != 0)
    throw CliError{kUsageError, label + ": not a PNG file; " + kWithoutOpenCv};

  auto decoded = std::make_shared<Decoded>();
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, decoded.get(), &on_png_error, &on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  png_infop end_info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || !end_info) {
    png_destroy_read_struct(&png, &info, &end_info);
    throw CliError{kUsageError, label + ": libpng cannot start (out of memory)"};
  }
  bool ok = false;
  try {
    ok = decode(file, png, info, end_info, decoded.get());
    if (ok) apply_orientation(exif_orientation(decoded->exif, decoded->exif_size), *decoded);
  } catch (...) {  // std::bad_alloc for the pixels
    png_destroy_read_struct(&png, &info, &end_info);
    throw;
  }
  png_destroy_read_struct(&png, &info, &end_info);  // frees the eXIf data too
  decoded->exif = nullptr;
  decoded->rows.clear();
  if (!ok)
    throw CliError{kUsageError, label + ": not a PNG image libpng can decode (" + decoded->error + ")"};

  Image image;
  image.format = PixelFormat::kRGB;
  image.width = decoded->width;
  image.height = decoded->height;
  image.stride = decoded->width * 3;
  image.pixels = std::shared_ptr<const uint8_t>(decoded, decoded->rgb.data());
  return image;
}

}  // namespace

Image read_image(const std::string& path) {
  check_readable_file("image", path);
  File file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw CliError{kUsageError, "image '" + path + "': cannot be opened"};
  return read_png(file.get(), "image '" + path + "'");
}

Image decode_image(const std::string& what, const std::string& bytes, uint64_t max_pixels) {
  if (check_image_header(what, bytes, max_pixels).format != ImageFormat::kPng)
    throw CliError{kUsageError, what + ": a JPEG image, but this build has no OpenCV and decodes PNG images only"};
  File file(fmemopen(const_cast<char*>(bytes.data()), bytes.size(), "rb"), &std::fclose);
  if (!file) throw CliError{kUsageError, what + ": cannot be read from memory"};
  return read_png(file.get(), what);
}

void quiet_media_library() {}  // libpng's warnings are dropped by on_png_warning

Clip read_video_clip(const std::string& path, int, double) {
  throw CliError{kUsageError, "video '" + path + "': " + kWithoutOpenCv + ", no videos"};
}

}  // namespace qwenvl::cli
