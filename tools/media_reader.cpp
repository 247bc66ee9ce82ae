// The parts of qwenvl-cli's media reading that do not depend on the decoder: file checks, the
// header check of images in memory, the engine's view of an image and transformers' video frame
// sampling.
#include "media_reader.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace qwenvl::cli {

namespace fs = std::filesystem;

// Video sampling of transformers 5.17's Qwen2VLVideoProcessor (do_sample_frames=True), whose
// defaults Qwen2.5-VL keeps: frame counts in multiples of the temporal patch, at least 4 frames
// when sampling by rate, at most 768.
constexpr int kTemporalPatch = 2, kMinFrames = 4, kMaxFrames = 768;

FrameView Image::view(double timestamp_s) const {
  // Decoders may pad rows: the view carries the image's own stride.
  FrameView v = FrameView::packed(format, width, height, pixels.get(), timestamp_s);
  v.strides[0] = stride;
  return v;
}

ImageHeader check_image_header(const std::string& what, const std::string& bytes, uint64_t max_pixels) {
  const std::optional<ImageHeader> header =
      read_image_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!header) throw CliError{kUsageError, what + ": not a PNG or JPEG image"};
  const uint64_t pixels = uint64_t{header->width} * header->height;
  if (header->width > kMaxImageSide || header->height > kMaxImageSide || pixels > max_pixels)
    throw CliError{kUsageError, what + ": the " + format_name(header->format) + " header says " +
                                    std::to_string(header->width) + " x " + std::to_string(header->height) +
                                    " pixels, over the limit of " + std::to_string(max_pixels) + " pixels (" +
                                    std::to_string(kMaxImageSide) + " a side)"};
  return *header;
}

void check_readable_file(const std::string& what, const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) throw CliError{kUsageError, what + " '" + path + "': no such file"};
  if (fs::is_directory(status)) throw CliError{kUsageError, what + " '" + path + "' is a directory, not a file"};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw CliError{kUsageError, what + " '" + path + "': cannot be opened (" + std::strerror(errno) + ")"};
  std::fclose(f);
}

// Qwen2VLVideoProcessor.sample_frames: torch.arange(0, total, total / n).int(), with torch's length
// ceil(total / step) and its float32 values start + step * i rounded from double (torch's scalar path;
// its vectorised path, from the 9th frame on, starts each vector from a float base, which can differ
// only where step * i is within float rounding of an integer).
std::vector<int64_t> sample_frame_indices(int64_t total, double video_fps, int frames, double fps) {
  int64_t n = 0;
  if (frames > 0) {
    n = static_cast<int64_t>(std::nearbyint(frames / static_cast<double>(kTemporalPatch))) *
        kTemporalPatch;  // Python's round
  } else {
    const int64_t max_frames = std::min<int64_t>(kMaxFrames, total) / kTemporalPatch * kTemporalPatch;
    double wanted = static_cast<double>(total) / video_fps * fps;
    wanted = std::min({std::max(wanted, static_cast<double>(kMinFrames)), static_cast<double>(max_frames),
                       static_cast<double>(total)});
    n = static_cast<int64_t>(std::floor(wanted / kTemporalPatch)) * kTemporalPatch;
  }
  if (n > total)
    throw CliError{kUsageError, "the video has " + std::to_string(total) + " frames, fewer than the " +
                                    std::to_string(n) + " asked for"};
  if (n <= 0) {  // a clip shorter than one temporal patch: every frame (the processor repeats the last)
    std::vector<int64_t> all(static_cast<size_t>(total));
    for (int64_t i = 0; i < total; ++i) all[static_cast<size_t>(i)] = i;
    return all;
  }
  const double step = static_cast<double>(total) / static_cast<double>(n);
  const auto length = static_cast<int64_t>(std::ceil(static_cast<double>(total) / step));
  std::vector<int64_t> indices;
  for (int64_t i = 0; i < length; ++i) indices.push_back(static_cast<int64_t>(static_cast<float>(i * step)));
  return indices;
}

}  // namespace qwenvl::cli
