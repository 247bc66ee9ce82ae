// qwenvl-cli: asks a Qwen2.5-VL model directory one question about images or a video file and prints
// the answer (exactly transformers' decode(new_ids, skip_special_tokens=True), then a newline) on
// stdout, or one JSON object with --json. Errors are one line on stderr; see --help for exit codes.
//   qwenvl-cli --model DIR --image photo.jpg --prompt "Describe this image."
//   qwenvl-cli --model DIR --video clip.mp4 --fps 2 --prompt "What happens?" --json
//   qwenvl-cli --model DIR --devices cuda:0=22GiB,cuda:1=22GiB --plan    (the placement, nothing loaded)
//   qwenvl-cli --remote http://gpu-pool:8000/v1 --image photo.jpg --prompt "..."   (a server answers)
//   qwenvl-cli --model DIR --devices cuda:0=22GiB,cuda:1=22GiB --layers 0-10,11-27 --plan   (a split priced)
// Files are read by media_reader_opencv.cpp, or by media_reader_png.cpp (PNG images only) in a build
// without OpenCV's imgcodecs / videoio.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "engine_flags.h"
#include "media_reader.h"
#include "plan_json.h"
#include "qwenvl/engine.h"
#include "qwenvl/placement.h"
#include "qwenvl/remote_engine.h"

namespace {

// A number as a person wrote it in an error message: "inf", "-1", "1e-45".
std::string shortest(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

using namespace qwenvl::cli;

struct Options {
  EngineFlags engine;  // model, device(s), dtype, context, image sizes
  std::vector<std::string> images;
  std::string video;
  int frames = 0;  // 0: sample by fps
  double fps = 2.0;
  std::string prompt;
  std::string system;
  bool plan = false;
  int max_batch = 16;                // --plan only: the CLI itself answers one request
  int images_per_step = 0;           // --plan only; 0: max_batch
  int64_t prefill_chunk_tokens = 0;  // --plan only; 0: max_context
  std::string layers;                // --plan only: a layer split to price instead of searching
  int vision_on = 0;                 // with --layers: the position in the device list of the vision tower's device
  bool json = false;
  qwenvl::SamplingParams sampling;
  qwenvl::RemoteEngineOptions remote;  // base_url set: --remote, the remote engine instead of a model
};

void print_json(const qwenvl::Result& result, double load_ms) {
  nlohmann::json out = {
      {"text", result.text},
      {"token_ids", result.token_ids},
      {"prompt_tokens", result.prompt_tokens},
      {"generated_tokens", result.generated_tokens},
      {"finish_reason", result.finish_reason},
      {"stop_string", result.finish_reason == "stop_string" ? nlohmann::json(result.stop_string) : nullptr},
      {"incomplete", result.incomplete},
      {"ttft_ms", result.ttft_ms},
      {"total_ms", result.total_ms},
      {"load_ms", load_ms},
  };
  std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

// Around the line that says which media reader this build has.
const char* kFooterStart = R"(
Sampling: options left out take the model's generation_config.json, as transformers does (the
published Qwen2.5-VL-Instruct models sample with temperature 0.1 / 1e-6 and repetition penalty
1.05). --temperature 0 forces greedy decoding.

Video: frames are sampled as transformers' Qwen2VLVideoProcessor samples them (do_sample_frames):
--frames N takes N frames (rounded to an even count) evenly spread over the clip; --fps F takes F
frames per second of video (even count, at least 4, at most 768). Default: --fps 2. Each frame
keeps its time in the video, so the model sees the real rate.

)";
const char* kFooterEnd = R"(

Placement: --plan prints where the model's parts would go over --devices (or --device) and exits 0,
reading config.json and preprocessor_config.json only: no weights, no GPU, no --prompt. It shows,
per device, the decoder layers it holds, where the vision tower runs, the predicted bytes (weights,
KV cache, activations, workspace, margin) against its budget, and predicted step times. The plan
holds --max-batch sequences of --max-context tokens with images of up to --max-pixels (default:
the model's), --images-per-step images in one vision forward (default: one per sequence) and
--prefill-chunk tokens in one prefill forward (default: --max-context), in --dtype. --json prints
the plan as one JSON object (exact bytes) instead of the map.
--layers prices a split given by hand instead of searching (as vLLM's VLLM_PP_LAYER_PARTITION): one
  item per entry of --devices, in order, an inclusive range A-B, one layer A, or - (none: that
  entry runs the vision tower alone), e.g. --layers 0-10,11-27. The embeddings go with layer 0, the
  LM head with the last layer; --vision-on N puts the vision tower on the entry at position N of
  --devices (default 0). The plan is printed even where a device is over its budget: the map says
  which and by how much, and the exit code is 2. A split that is not a pipeline of the model over
  the list (a layer on no device or two, a count of items other than the list's) is a usage error.
--devices: entries DEVICE[@PROFILE][=CAP] separated by commas, e.g. cuda:0=22GiB,cuda:1@h200,cpu=8GiB.
  DEVICE is cpu, cuda or cuda:N (may repeat: entries sharing a card); PROFILE the rates and memory
  assumed for it (h100, the default for cuda, or h200; cpu for cpu); CAP the most it may use, with
  a unit B, KiB, MiB, GiB, TiB or KB, MB, GB, TB (decimals allowed). Without a cap a cuda entry gets
  its profile's memory less 1 GiB for the CUDA context (no GPU is queried), cpu the host's available
  memory less 2 GiB. --placement auto picks replicas (a whole model per device) where every device
  holds one and that is faster, else a pipeline (contiguous layer ranges, one stage per device).
  Without --plan the engine plans the same way before loading (several entries, or a cap) and runs
  it: replicas, a pipeline, or one device within its cap. --devices wins over --device.

Remote: --remote URL sends the question to an OpenAI-compatible server (vLLM, SGLang, llama-server,
qwenvl-server) at its base URL ending in /v1, through libqwenvl-remote, instead of loading a model:
no --model then (nor --device, --devices, --dtype, --max-context, --plan). Images (and a video's
sampled frames, in order, as images) travel as PNG; every sampling option travels; --remote-model
names the served model (default: the first of GET URL/models); --remote-api-key is sent as a
bearer token. Exit code 2 when the server cannot be asked, 3 when it fails the request.

Output: the answer and a newline on stdout, nothing else; --json prints one JSON object instead
(text, token_ids, prompt_tokens, generated_tokens, finish_reason, stop_string, incomplete, ttft_ms, total_ms, load_ms).

Constrained answers: --json-schema makes the answer one compact JSON document valid against the
schema (given inline, or as a file); --choice (repeatable) makes it exactly one of the texts. An
answer cut by --max-new-tokens is incomplete ("incomplete": true with --json).

Exit codes: 0 answered (or planned); 1 usage or input error; 2 the model cannot be loaded (or no
placement fits: the message says what is missing where and what would fit); 3 the request failed.
Example:
  qwenvl-cli --model ~/models/Qwen2.5-VL-7B-Instruct --image photo.jpg --prompt "Describe this image.")";

// Parses the command line; returns an exit code when the program should end now (--help).
std::optional<int> parse(int argc, char** argv, Options& o) {
  CLI::App app{"Answers a question about images or a video with a Qwen2.5-VL model directory.", "qwenvl-cli"};
  app.footer(std::string(kFooterStart) + kMediaSupport + kFooterEnd);
  app.get_formatter()->column_width(34);
  // CLI11 2.1 has no std::optional: plain values, "given" is the option's count.
  int max_new_tokens = 0, top_k = 0;
  double temperature = 0, top_p = 0, min_p = 0, repetition_penalty = 0;
  uint64_t seed = 0;
  add_engine_flags(app, o.engine, "device list with caps, e.g. cuda:0=22GiB,cuda:1 (see below)");
  auto* image =
      app.add_option("-i,--image", o.images, "image file (repeat for several, in prompt order)")->type_name("FILE");
  auto* video = app.add_option("--video", o.video, "video file (one)")->type_name("FILE")->excludes(image);
  auto* frames = app.add_option("--frames", o.frames, "video: sample N frames evenly over the clip")->type_name("N");
  auto* fps = app.add_option("--fps", o.fps, "video: sample F frames per second of video (default 2)")->type_name("F");
  frames->excludes(fps);
  auto* prompt = app.add_option("-p,--prompt", o.prompt, "the question (not needed with --plan)")->type_name("TEXT");
  app.add_option("-s,--system", o.system, "system prompt (default: the chat template's)")->type_name("TEXT");
  auto* max_new_tokens_opt =
      app.add_option("-n,--max-new-tokens", max_new_tokens, "most tokens to generate")->type_name("N");
  auto* temperature_opt =
      app.add_option("-t,--temperature", temperature, "sampling temperature; 0 (or below 1e-8) = greedy")->type_name("T");
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
  std::string json_schema;
  auto* json_schema_opt =
      app.add_option("--json-schema", json_schema, "answer with one JSON document valid against this schema")
          ->type_name("FILE|JSON");
  app.add_option("--choice", o.sampling.choices, "answer with exactly one of these texts (repeatable)")
      ->type_name("TEXT")
      ->excludes(json_schema_opt);
  app.add_flag("--plan", o.plan, "print the placement over --devices and exit (reads no weights, no GPU)");
  auto* max_batch = app.add_option("--max-batch", o.max_batch, "with --plan: sequences decoded together (default 16)")
                        ->type_name("N");
  auto* images_per_step =
      app.add_option("--images-per-step", o.images_per_step, "with --plan: images one vision forward takes")
          ->type_name("N");
  auto* prefill_chunk =
      app.add_option("--prefill-chunk", o.prefill_chunk_tokens, "with --plan: tokens one prefill forward takes")
          ->type_name("N");
  auto* layers = app.add_option("--layers", o.layers, "with --plan: price this layer split, e.g. 0-10,11-27 (below)")
                     ->type_name("LIST");
  auto* vision_on =
      app.add_option("--vision-on", o.vision_on, "with --layers: position in --devices of the vision tower's device")
          ->type_name("N");
  app.add_flag("--json", o.json, "print one JSON object instead of the answer (with --plan: the plan)");
  auto* remote = app.add_option("--remote", o.remote.base_url, "ask the server at this base URL instead of a model (below)")
                     ->type_name("URL");
  auto* remote_model =
      app.add_option("--remote-model", o.remote.model, "with --remote: the served model's name")->type_name("NAME");
  auto* remote_key =
      app.add_option("--remote-api-key", o.remote.api_key, "with --remote: bearer API key")->type_name("KEY");
  (void)video;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    throw CliError{kUsageError, std::string(e.what()) + " (see --help)"};
  }

  auto fail = [](const std::string& m) { throw CliError{kUsageError, m}; };
  if (remote->count()) {
    for (const CLI::Option* local_only :
         {o.engine.model_option, o.engine.device_option, o.engine.devices_option, app.get_option("--dtype"),
          app.get_option("--max-context")})
      if (local_only->count()) fail(local_only->get_name() + " is for a local model, not --remote");
    if (o.plan) fail("--plan is for a local model, not --remote");
  } else {
    if (o.engine.model_option->count() == 0) fail("--model is required (or --remote URL)");
    for (const CLI::Option* remote_only : {remote_model, remote_key})
      if (remote_only->count()) fail(remote_only->get_name() + " goes with --remote");
  }
  if (!o.plan && prompt->count() == 0) fail("--prompt is required (unless --plan)");
  if (!o.plan && o.prompt.empty()) fail("--prompt is empty");
  if (max_batch->count() && !o.plan) fail("--max-batch is for --plan (qwenvl-cli answers one request)");
  if (o.max_batch < 1) fail("--max-batch must be at least 1");
  for (const CLI::Option* plan_only : {images_per_step, prefill_chunk, layers})
    if (plan_only->count() && !o.plan) fail(plan_only->get_name() + " is for --plan");
  if (vision_on->count() && !layers->count()) fail("--vision-on goes with --layers");
  if (o.images_per_step < 0) fail("--images-per-step must be at least 1");
  if (o.prefill_chunk_tokens < 0) fail("--prefill-chunk must be at least 1");
  if (layers->count()) {
    try {
      qwenvl::parse_layer_split(o.layers, o.vision_on);
    } catch (const qwenvl::Error& e) {
      fail(std::string("--layers / --vision-on: ") + e.what());
    }
  }
  if (!remote->count()) check_engine_flags(o.engine, "qwenvl-cli");
  if (frames->count() && o.video.empty()) fail("--frames needs --video");
  if (fps->count() && o.video.empty()) fail("--fps needs --video");
  if (frames->count() && o.frames < 2) fail("--frames must be at least 2 (counts are rounded to even)");
  if (!(o.fps > 0) || !std::isfinite(o.fps)) fail("--fps must be a finite number > 0, got " + shortest(o.fps));
  const bool given_max_new_tokens = max_new_tokens_opt->count() > 0, given_temperature = temperature_opt->count() > 0,
             given_top_k = top_k_opt->count() > 0, given_top_p = top_p_opt->count() > 0,
             given_min_p = min_p_opt->count() > 0, given_penalty = repetition_penalty_opt->count() > 0;
  if (given_max_new_tokens && max_new_tokens < 1) fail("--max-new-tokens must be at least 1");
  if (given_temperature && (!(temperature >= 0) || !std::isfinite(temperature)))
    fail("--temperature must be a finite number >= 0, got " + shortest(temperature));
  if (given_top_k && top_k < 0) fail("--top-k must be >= 0");
  if (given_top_p && !(top_p > 0 && top_p <= 1)) fail("--top-p must be in (0, 1]");
  if (given_min_p && !(min_p >= 0 && min_p <= 1)) fail("--min-p must be in [0, 1]");
  if (given_penalty && (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty)))
    fail("--repetition-penalty must be > 0");
  for (const auto& s : o.sampling.stop_strings)
    if (s.empty()) fail("--stop needs a non-empty text");
  for (const auto& c : o.sampling.choices)
    if (c.empty()) fail("--choice needs a non-empty text");
  if (json_schema_opt->count()) {
    // Inline when it looks like JSON, else the name of a file holding it.
    const size_t first = json_schema.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && json_schema[first] == '{') {
      o.sampling.json_schema = json_schema;
    } else {
      std::ifstream in(json_schema, std::ios::binary);
      if (!in) fail("--json-schema: cannot read " + json_schema);
      o.sampling.json_schema.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }

  if (given_max_new_tokens) o.sampling.max_new_tokens = max_new_tokens;
  if (given_temperature) o.sampling.temperature = temperature;
  if (given_top_k) o.sampling.top_k = top_k;
  if (given_top_p) o.sampling.top_p = top_p;
  if (given_min_p) o.sampling.min_p = min_p;
  if (given_penalty) o.sampling.repetition_penalty = repetition_penalty;
  if (seed_opt->count()) o.sampling.seed = seed;
  return std::nullopt;
}

// --plan: the device map, from the configuration files alone.
int print_plan(const Options& o) {
  qwenvl::PlanRequest request;
  request.model_dir = o.engine.model;
  request.devices = o.engine.devices.empty() ? o.engine.device : o.engine.devices;
  request.placement = qwenvl::parse_placement(o.engine.placement);
  request.dtype = o.engine.dtype;
  request.max_batch = o.max_batch;
  request.max_context = o.engine.max_context;
  request.max_pixels = o.engine.max_pixels;
  request.images_per_step = o.images_per_step;
  request.prefill_chunk_tokens = o.prefill_chunk_tokens;
  if (!o.layers.empty()) request.split = qwenvl::parse_layer_split(o.layers, o.vision_on);
  qwenvl::Plan plan;
  try {
    plan = qwenvl::plan(request);
  } catch (const qwenvl::Error& e) {
    // A split that is not a pipeline of this model over these devices is the user's to fix.
    if (request.split && std::string(e.what()).rfind("layer split: ", 0) == 0)
      throw CliError{kUsageError, "--layers / --vision-on: " + std::string(e.what())};
    throw CliError{kModelError, "cannot place the model: " + std::string(e.what())};
  }
  const std::string text = o.json ? plan_json(plan).dump() + "\n" : qwenvl::to_text(plan);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  if (!plan.fits()) {
    std::string over;
    for (const qwenvl::DevicePlan& d : plan.devices) {
      if (d.over_budget_bytes() == 0) continue;
      char gib[32];
      std::snprintf(gib, sizeof gib, "%.1f GiB", static_cast<double>(d.over_budget_bytes()) / (1 << 30));
      over += (over.empty() ? " " : ", ") + d.device + " is " + gib + " over its budget";
    }
    throw CliError{kModelError, "the split given does not fit:" + over + " (the plan on stdout says what each needs)"};
  }
  return kAnswered;
}

int run(int argc, char** argv) {
  Options o;
  if (auto code = parse(argc, argv, o)) return *code;
  if (o.plan) return print_plan(o);

  // The inputs first: a bad file should not wait for a model to load.
  std::vector<Image> images;
  for (const auto& path : o.images) images.push_back(read_image(path));
  Clip clip;
  if (!o.video.empty()) clip = read_video_clip(o.video, o.frames, o.fps);

  const auto load_start = std::chrono::steady_clock::now();
  std::unique_ptr<qwenvl::Engine> engine;
  if (!o.remote.base_url.empty()) {
    std::string error;
    o.remote.max_inflight = 1;
#ifdef QWENVL_NO_REMOTE_ENGINE
    error = "this build has no remote engine (libqwenvl-remote needs cpp-httplib, libpng and libjpeg)";
#else
    engine.reset(qwenvl_remote_engine_create(&o.remote, &error));
#endif
    if (!engine) throw CliError{kModelError, "cannot use the server: " + error};
  } else {
    qwenvl::EngineOptions options = engine_options(o.engine);
    options.max_batch = 1;  // one request: KV cache for one sequence
    try {
      engine = qwenvl::Engine::create(options);
    } catch (const std::exception& e) {
      throw CliError{kModelError, "cannot load the model: " + std::string(e.what())};
    }
  }
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count();

  qwenvl::Request request;
  for (const auto& image : images) request.images.push_back(image.view(0.0));
  for (size_t i = 0; i < clip.frames.size(); ++i) request.clip.push_back(clip.frames[i].view(clip.timestamps[i]));
  request.prompt = o.prompt;
  request.system_prompt = o.system;
  request.sampling = o.sampling;
  if (o.engine.min_pixels > 0) request.min_pixels = o.engine.min_pixels;
  if (o.engine.max_pixels > 0) request.max_pixels = o.engine.max_pixels;

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
  quiet_media_library();
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
