// qwenvl-cli: asks a Qwen2.5-VL model directory one question about images or a video file and prints
// the answer (exactly transformers' decode(new_ids, skip_special_tokens=True), then a newline) on
// stdout, or one JSON object with --json. Errors are one line on stderr; see --help for exit codes.
//   qwenvl-cli --model DIR --image photo.jpg --prompt "Describe this image."
//   qwenvl-cli --model DIR --video clip.mp4 --fps 2 --prompt "What happens?" --json
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "qwenvl/engine.h"

namespace {

namespace fs = std::filesystem;

enum ExitCode { kAnswered = 0, kUsageError = 1, kModelError = 2, kRequestFailed = 3 };

// An error for the user: one line on stderr and this exit code.
struct CliError {
  int code;
  std::string message;
};

struct Options {
  std::string model;
  std::vector<std::string> images;
  std::string video;
  int frames = 0;  // 0: sample by fps
  double fps = 2.0;
  std::string prompt;
  std::string system;
  std::string device = "cpu";
  std::string dtype = "auto";
  int64_t max_context = 8192;
  int64_t min_pixels = 0, max_pixels = 0;  // 0: the model's processor config
  bool json = false;
  qwenvl::SamplingParams sampling;
};

// Video sampling of transformers 5.17's Qwen2VLVideoProcessor (do_sample_frames=True), whose
// defaults Qwen2.5-VL keeps: frame counts in multiples of the temporal patch, at least 4 frames
// when sampling by rate, at most 768.
constexpr int kTemporalPatch = 2, kMinFrames = 4, kMaxFrames = 768;
constexpr double kUnknownFps = 24.0;  // what transformers assumes for a clip without a rate

void check_readable_file(const std::string& what, const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) throw CliError{kUsageError, what + " '" + path + "': no such file"};
  if (fs::is_directory(status)) throw CliError{kUsageError, what + " '" + path + "' is a directory, not a file"};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw CliError{kUsageError, what + " '" + path + "': cannot be opened (" + std::strerror(errno) + ")"};
  std::fclose(f);
}

// OpenCV's 3-channel 8-bit BGR, EXIF orientation applied (as transformers' load_image does), alpha dropped.
cv::Mat read_image(const std::string& path) {
  check_readable_file("image", path);
  cv::Mat image;
  try {
    image = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    image.release();
  }
  if (image.empty()) throw CliError{kUsageError, "image '" + path + "': not an image OpenCV can decode"};
  return image;
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

struct Clip {
  std::vector<cv::Mat> frames;     // BGR
  std::vector<double> timestamps;  // seconds: frame index / the video's rate
};

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

Clip read_video(const std::string& path, const Options& options) {
  check_readable_file("video", path);
  cv::VideoCapture capture = open_video(path);
  double video_fps = capture.get(cv::CAP_PROP_FPS);
  if (!(video_fps > 0) || !std::isfinite(video_fps)) {
    std::fprintf(stderr, "qwenvl-cli: warning: video '%s' does not say its frame rate; assuming %g fps\n", path.c_str(),
                 kUnknownFps);
    video_fps = kUnknownFps;
  }
  auto total = static_cast<int64_t>(capture.get(cv::CAP_PROP_FRAME_COUNT));
  if (total <= 0) total = count_frames(path);  // containers without a frame count
  // The container's count can be wrong; when the stream ends early, sample again from the real count.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (total <= 0) throw CliError{kUsageError, "video '" + path + "': no frames could be decoded"};
    std::vector<int64_t> indices;
    try {
      indices = sample_frame_indices(total, video_fps, options.frames, options.fps);
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
      clip.frames.push_back(frame.clone());
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

qwenvl::FrameView bgr_view(const cv::Mat& image, double timestamp_s) {
  // OpenCV rows may be padded: the view carries the Mat's own stride, no copy.
  qwenvl::FrameView view =
      qwenvl::FrameView::packed(qwenvl::PixelFormat::kBGR, image.cols, image.rows, image.data, timestamp_s);
  view.strides[0] = static_cast<int>(image.step[0]);
  return view;
}

void print_json(const qwenvl::Result& result, double load_ms) {
  nlohmann::json out = {
      {"text", result.text},
      {"token_ids", result.token_ids},
      {"prompt_tokens", result.prompt_tokens},
      {"generated_tokens", result.token_ids.size()},
      {"finish_reason", result.finish_reason},
      {"ttft_ms", result.ttft_ms},
      {"total_ms", result.total_ms},
      {"load_ms", load_ms},
  };
  std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

const char* kFooter = R"(
Sampling: options left out take the model's generation_config.json, as transformers does (the
published Qwen2.5-VL-Instruct models sample with temperature 0.1 / 1e-6 and repetition penalty
1.05). --temperature 0 forces greedy decoding.

Video: frames are sampled as transformers' Qwen2VLVideoProcessor samples them (do_sample_frames):
--frames N takes N frames (rounded to an even count) evenly spread over the clip; --fps F takes F
frames per second of video (even count, at least 4, at most 768). Default: --fps 2. Each frame
keeps its time in the video, so the model sees the real rate.

Output: the answer and a newline on stdout, nothing else; --json prints one JSON object instead
(text, token_ids, prompt_tokens, generated_tokens, finish_reason, ttft_ms, total_ms, load_ms).

Exit codes: 0 answered; 1 usage or input error; 2 the model cannot be loaded; 3 the request failed.
Example:
  qwenvl-cli --model ~/models/Qwen2.5-VL-7B-Instruct --image photo.jpg --prompt "Describe this image.")";

// Parses the command line; returns an exit code when the program should end now (--help).
std::optional<int> parse(int argc, char** argv, Options& o) {
  CLI::App app{"Answers a question about images or a video with a Qwen2.5-VL model directory.", "qwenvl-cli"};
  app.footer(kFooter);
  app.get_formatter()->column_width(34);
  // CLI11 2.1 has no std::optional: plain values, "given" is the option's count.
  int max_new_tokens = 0, top_k = 0;
  double temperature = 0, top_p = 0, min_p = 0, repetition_penalty = 0;
  uint64_t seed = 0;
  app.add_option("-m,--model", o.model, "Qwen2.5-VL model directory (config.json, safetensors, tokenizer)")
      ->required()
      ->type_name("DIR");
  auto* image =
      app.add_option("-i,--image", o.images, "image file (repeat for several, in prompt order)")->type_name("FILE");
  auto* video = app.add_option("--video", o.video, "video file (one)")->type_name("FILE")->excludes(image);
  auto* frames = app.add_option("--frames", o.frames, "video: sample N frames evenly over the clip")->type_name("N");
  auto* fps = app.add_option("--fps", o.fps, "video: sample F frames per second of video (default 2)")->type_name("F");
  frames->excludes(fps);
  app.add_option("-p,--prompt", o.prompt, "the question")->required()->type_name("TEXT");
  app.add_option("-s,--system", o.system, "system prompt (default: the chat template's)")->type_name("TEXT");
  auto* max_new_tokens_opt =
      app.add_option("-n,--max-new-tokens", max_new_tokens, "most tokens to generate")->type_name("N");
  auto* temperature_opt =
      app.add_option("-t,--temperature", temperature, "sampling temperature; 0 = greedy")->type_name("T");
  auto* top_k_opt = app.add_option("--top-k", top_k, "sample among the K likeliest tokens (0 = all)")->type_name("K");
  auto* top_p_opt = app.add_option("--top-p", top_p, "nucleus sampling mass, in (0, 1]")->type_name("P");
  auto* min_p_opt =
      app.add_option("--min-p", min_p, "drop tokens below P x the likeliest's probability, in [0, 1]")->type_name("P");
  auto* repetition_penalty_opt =
      app.add_option("--repetition-penalty", repetition_penalty, "transformers' repetition penalty (1 = none)")
          ->type_name("R");
  auto* seed_opt = app.add_option("--seed", seed, "random seed for sampling")->type_name("N");
  app.add_option("--stop", o.sampling.stop_strings, "stop when the answer ends with TEXT (repeatable)")
      ->type_name("TEXT");
  app.add_option("--device", o.device, "cpu, cuda or cuda:N (default cpu)")->type_name("DEV");
  app.add_option("--dtype", o.dtype, "auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")->type_name("TYPE");
  app.add_option("--max-context", o.max_context, "prompt + answer tokens at most (default 8192)")->type_name("N");
  app.add_option("--min-pixels", o.min_pixels, "least pixels per image / frame after resizing (default: the model's)")
      ->type_name("N");
  app.add_option("--max-pixels", o.max_pixels, "most pixels per image / frame after resizing (default: the model's)")
      ->type_name("N");
  app.add_flag("--json", o.json, "print one JSON object instead of the answer");
  (void)video;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    throw CliError{kUsageError, std::string(e.what()) + " (see --help)"};
  }

  auto fail = [](const std::string& m) { throw CliError{kUsageError, m}; };
  if (o.prompt.empty()) fail("--prompt is empty");
  if (frames->count() && o.video.empty()) fail("--frames needs --video");
  if (fps->count() && o.video.empty()) fail("--fps needs --video");
  if (frames->count() && o.frames < 2) fail("--frames must be at least 2 (counts are rounded to even)");
  if (!(o.fps > 0) || !std::isfinite(o.fps)) fail("--fps must be > 0");
  const bool given_max_new_tokens = max_new_tokens_opt->count() > 0, given_temperature = temperature_opt->count() > 0,
             given_top_k = top_k_opt->count() > 0, given_top_p = top_p_opt->count() > 0,
             given_min_p = min_p_opt->count() > 0, given_penalty = repetition_penalty_opt->count() > 0;
  if (given_max_new_tokens && max_new_tokens < 1) fail("--max-new-tokens must be at least 1");
  if (given_temperature && (!(temperature >= 0) || !std::isfinite(temperature))) fail("--temperature must be >= 0");
  if (given_top_k && top_k < 0) fail("--top-k must be >= 0");
  if (given_top_p && !(top_p > 0 && top_p <= 1)) fail("--top-p must be in (0, 1]");
  if (given_min_p && !(min_p >= 0 && min_p <= 1)) fail("--min-p must be in [0, 1]");
  if (given_penalty && (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty)))
    fail("--repetition-penalty must be > 0");
  if (o.max_context < 2) fail("--max-context must be at least 2");
  if (o.min_pixels < 0 || o.max_pixels < 0) fail("--min-pixels and --max-pixels must be positive");
  if (o.min_pixels > 0 && o.max_pixels > 0 && o.min_pixels > o.max_pixels) fail("--min-pixels is above --max-pixels");
  for (const auto& s : o.sampling.stop_strings)
    if (s.empty()) fail("--stop needs a non-empty text");
  const bool cuda = o.device == "cuda" || (o.device.rfind("cuda:", 0) == 0 && o.device.size() > 5 &&
                                           o.device.find_first_not_of("0123456789", 5) == std::string::npos);
  if (o.device != "cpu" && !cuda) fail("--device '" + o.device + "': use cpu, cuda or cuda:N");
  const std::vector<std::string> dtypes = {"auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16"};
  if (std::find(dtypes.begin(), dtypes.end(), o.dtype) == dtypes.end())
    fail("--dtype '" + o.dtype + "': use auto, float32, bfloat16 or float16");

  if (given_max_new_tokens) o.sampling.max_new_tokens = max_new_tokens;
  if (given_temperature) o.sampling.temperature = temperature;
  if (given_top_k) o.sampling.top_k = top_k;
  if (given_top_p) o.sampling.top_p = top_p;
  if (given_min_p) o.sampling.min_p = min_p;
  if (given_penalty) o.sampling.repetition_penalty = repetition_penalty;
  if (seed_opt->count()) o.sampling.seed = seed;
  return std::nullopt;
}

int run(int argc, char** argv) {
  Options o;
  if (auto code = parse(argc, argv, o)) return *code;

  // The inputs first: a bad file should not wait for a model to load.
  std::vector<cv::Mat> images;
  for (const auto& path : o.images) images.push_back(read_image(path));
  Clip clip;
  if (!o.video.empty()) clip = read_video(o.video, o);

  qwenvl::EngineOptions engine_options;
  engine_options.model_dir = o.model;
  engine_options.device = o.device;
  engine_options.dtype = o.dtype;
  engine_options.max_context = o.max_context;
  engine_options.max_batch = 1;  // one request: KV cache for one sequence
  const auto load_start = std::chrono::steady_clock::now();
  std::unique_ptr<qwenvl::Engine> engine;
  try {
    engine = qwenvl::Engine::create(engine_options);
  } catch (const std::exception& e) {
    throw CliError{kModelError, "cannot load the model: " + std::string(e.what())};
  }
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count();

  qwenvl::Request request;
  for (const auto& image : images) request.images.push_back(bgr_view(image, 0.0));
  for (size_t i = 0; i < clip.frames.size(); ++i) request.clip.push_back(bgr_view(clip.frames[i], clip.timestamps[i]));
  request.prompt = o.prompt;
  request.system_prompt = o.system;
  request.sampling = o.sampling;
  if (o.min_pixels > 0) request.min_pixels = o.min_pixels;
  if (o.max_pixels > 0) request.max_pixels = o.max_pixels;

  const qwenvl::Result result = engine->submit(std::move(request)).result.get();
  if (result.status != qwenvl::Status::kAnswered)
    throw CliError{kRequestFailed,
                   std::string("the request ") + qwenvl::status_name(result.status) + ": " + result.error};
  if (o.json) {
    print_json(result, load_ms);
  } else {
    std::fwrite(result.text.data(), 1, result.text.size(), stdout);  // the text may hold NUL bytes
    std::fputc('\n', stdout);
  }
  std::fflush(stdout);
  return kAnswered;
}

// One line: messages from libraries may carry newlines.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenCV logs decoder warnings on stderr; the CLI reports failures itself, in one line.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  try {
    return run(argc, argv);
  } catch (const CliError& e) {
    std::fprintf(stderr, "qwenvl-cli: %s\n", one_line(e.message).c_str());
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwenvl-cli: %s\n", one_line(e.what()).c_str());
    return kRequestFailed;
  }
}
