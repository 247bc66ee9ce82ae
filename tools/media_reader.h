// How qwenvl-cli reads its image and video files. Two implementations, chosen at build time:
// media_reader_opencv.cpp (any image OpenCV decodes, videos through FFmpeg) and media_reader_png.cpp
// (PNG images through libpng, for machines without OpenCV's imgcodecs / videoio; decoded as OpenCV's
// IMREAD_COLOR decodes them). Both throw CliError with a message that names the file. Both also decode
// images held in memory (qwenvl-server's uploads), their header checked against the limits first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli_error.h"
#include "image_header.h"
#include "qwenvl/engine.h"

namespace qwenvl::cli {

// Packed 8-bit RGB or BGR pixels; rows may be padded (stride bytes apart).
struct Image {
  PixelFormat format = PixelFormat::kRGB;  // kRGB or kBGR
  int width = 0;
  int height = 0;
  int stride = 0;
  std::shared_ptr<const uint8_t> pixels;  // keeps the decoder's buffer alive

  // The engine's view of these pixels (no copy).
  FrameView view(double timestamp_s) const;
};

struct Clip {
  std::vector<Image> frames;
  std::vector<double> timestamps;  // seconds: frame index / the video's rate
};

// One line for --help: what this build reads.
extern const char* const kMediaSupport;

// Called once at start: keeps the decoding library's own log lines off stderr.
void quiet_media_library();

// OpenCV's limit on a side (CV_IO_MAX_IMAGE_WIDTH), and PIL's decompression-bomb limit on the pixels
// (2 x Image.MAX_IMAGE_PIXELS, over which transformers' load_image refuses an image).
inline constexpr uint64_t kMaxImageSide = uint64_t{1} << 20, kMaxImagePixels = 2 * uint64_t{89'478'485};

// 3-channel 8-bit colour, EXIF orientation applied (as transformers' load_image does), alpha dropped.
Image read_image(const std::string& path);

// The same from an image file's bytes in memory, PNG or JPEG only: the header is read first (see
// check_image_header), so an image over `max_pixels` costs nothing to refuse. Errors start with `what`.
Image decode_image(const std::string& what, const std::string& bytes, uint64_t max_pixels = kMaxImagePixels);

// The header of `bytes`, or a usage CliError starting with `what`: not a PNG or JPEG, or over
// kMaxImageSide pixels a side or `max_pixels` in all.
ImageHeader check_image_header(const std::string& what, const std::string& bytes, uint64_t max_pixels);

// The frames transformers' Qwen2VLVideoProcessor samples from the clip: `frames` of them evenly
// spread when > 0, else `fps` per second of video.
Clip read_video_clip(const std::string& path, int frames, double fps);

// Throws a usage CliError unless `path` is a file that can be opened for reading; `what` is
// "image" or "video".
void check_readable_file(const std::string& what, const std::string& path);

// Indices of the frames Qwen2VLVideoProcessor.sample_frames takes from a clip of `total` frames at
// `video_fps`, asked for `frames` (> 0) or `fps`. Throws CliError when the clip is too short.
std::vector<int64_t> sample_frame_indices(int64_t total, double video_fps, int frames, double fps);

}  // namespace qwenvl::cli
