// qwenvl-cli's media reading with OpenCV: any image imread decodes, videos through FFmpeg; PNG and
// JPEG images from memory through imdecode.
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>

#include "media_reader.h"

namespace qwenvl::cli {

const char* const kMediaSupport =
    "Media: read with OpenCV (images in any format it decodes; videos through FFmpeg where it has it).";

namespace {

constexpr double kUnknownFps = 24.0;  // what transformers assumes for a clip without a rate
// A frame count past this is not believed (a week of video at 1000 fps): the frames are counted.
constexpr int64_t kMostFramesSaid = int64_t{1000} * 3600 * 24 * 7;

// The Mat's pixels, shared (no copy): the Image keeps the Mat alive.
Image bgr_image(const cv::Mat& mat) {
  auto owner = std::make_shared<cv::Mat>(mat);
  Image image;
  image.format = PixelFormat::kBGR;
  image.width = mat.cols;
  image.height = mat.rows;
  image.stride = static_cast<int>(mat.step[0]);
  image.pixels = std::shared_ptr<const uint8_t>(owner, owner->data);
  return image;
}

cv::VideoCapture open_video(const std::string& path) {
  cv::VideoCapture capture;
  try {
    // FFmpeg reads every common container. No fall-back to the other back ends where it is built in:
    // GStreamer's would only add its own warnings on stderr for a file FFmpeg cannot read.
    capture.open(path, cv::videoio_registry::hasBackend(cv::CAP_FFMPEG) ? cv::CAP_FFMPEG : cv::CAP_ANY);
  } catch (const cv::Exception&) {
  }
  if (!capture.isOpened()) throw CliError{kUsageError, "video '" + path + "': not a video OpenCV can decode"};
  return capture;
}

int64_t count_frames(const std::string& path) {
  cv::VideoCapture capture = open_video(path);
  int64_t total = 0;
  while (capture.grab()) ++total;
  return total;
}

}  // namespace

void quiet_media_library() {
  // OpenCV logs decoder warnings on stderr; the CLI reports failures itself, in one line.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
}

// OpenCV's 3-channel 8-bit BGR, EXIF orientation applied, alpha dropped.
Image read_image(const std::string& path) {
  check_readable_file("image", path);
  cv::Mat image;
  try {
    image = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    image.release();
  }
  if (image.empty()) throw CliError{kUsageError, "image '" + path + "': not an image OpenCV can decode"};
  return bgr_image(image);
}

// imdecode applies the EXIF orientation as imread does.
Image decode_image(const std::string& what, const std::string& bytes, uint64_t max_pixels) {
  check_image_header(what, bytes, max_pixels);
  cv::Mat image;
  try {
    const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
    image = cv::imdecode(raw, cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    image.release();
  }
  if (image.empty()) throw CliError{kUsageError, what + ": not an image OpenCV can decode"};
  return bgr_image(image);
}

Clip read_video_clip(const std::string& path, int frames, double fps) {
  check_readable_file("video", path);
  cv::VideoCapture capture = open_video(path);
  double video_fps = capture.get(cv::CAP_PROP_FPS);
  if (!(video_fps > 0) || !std::isfinite(video_fps)) {
    std::fprintf(stderr, "qwenvl-cli: warning: video '%s' does not say its frame rate; assuming %g fps\n", path.c_str(),
                 kUnknownFps);
    video_fps = kUnknownFps;
  }
  // The container's word, a double: a damaged file may say NaN or 1e300, which no cast may take.
  const double said = capture.get(cv::CAP_PROP_FRAME_COUNT);
  int64_t total = said >= 1 && said <= static_cast<double>(kMostFramesSaid) ? static_cast<int64_t>(said) : 0;
  if (total <= 0) total = count_frames(path);  // containers without a (believable) frame count
  // The container's count can be wrong; when the stream ends early, sample again from the real count.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (total <= 0) throw CliError{kUsageError, "video '" + path + "': no frames could be decoded"};
    std::vector<int64_t> indices;
    try {
      indices = sample_frame_indices(total, video_fps, frames, fps);
    } catch (const CliError& e) {
      throw CliError{e.code, "video '" + path + "': " + e.message};
    }
    Clip clip;
    int64_t position = 0;
    for (const int64_t index : indices) {
      while (position <= index && capture.grab()) ++position;
      if (position <= index) break;  // the stream ended before this frame
      cv::Mat frame;
      if (!capture.retrieve(frame) || frame.empty())
        throw CliError{kUsageError, "video '" + path + "': frame " + std::to_string(index) + " cannot be decoded"};
      if (frame.type() != CV_8UC3) throw CliError{kUsageError, "video '" + path + "': frames are not 8-bit colour"};
      clip.frames.push_back(bgr_image(frame.clone()));
      clip.timestamps.push_back(static_cast<double>(index) / video_fps);
    }
    if (clip.frames.size() == indices.size()) return clip;
    if (attempt == 0) {
      total = count_frames(path);
      capture = open_video(path);
    }
  }
  throw CliError{kUsageError, "video '" + path + "': the stream ends before the frames its header promises"};
}

}  // namespace qwenvl::cli
