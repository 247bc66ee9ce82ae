// The remote engine's parts without HTTP: frames to the engine's exact RGB bytes (against the
// engine's own conversion, kernels::frames_to_rgb) and to PNG (decoded back: lossless) or JPEG;
// base64; the request body with every sampling field; the base URL; the event reader on the
// recorded streams of tests/remote/transcripts (whole and cut at every byte); the backoff.
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base_url.h"
#include "chat_body.h"
#include "completion_events.h"
#include "frame_encoding.h"
#include "kernels/frame_preparation.h"
#include "server_backoff.h"
#include "test_util.h"

namespace qwenvl::remote {
namespace {

using nlohmann::json;

std::string transcript(const std::string& name) {
  return test::read_text(std::filesystem::path(QWENVL_TEST_SOURCE_ROOT) / "tests/remote/transcripts" / name);
}

// A frame of `format` with rows padded by `padding` bytes, its planes filled with a pattern.
struct Frame {
  std::vector<uint8_t> bytes;
  FrameView view;
  kernels::FrameLayout layout;
};

Frame make_frame(PixelFormat format, int width, int height, int padding, YuvMatrix matrix = YuvMatrix::kAuto) {
  Frame f;
  const PlaneGeometry g = plane_geometry(format, width, height);
  int64_t offset = 0;
  for (int p = 0; p < g.count; ++p) {
    const int64_t stride = g.row_bytes[p] + padding;
    f.layout.plane_offsets[p] = offset;
    f.layout.strides[p] = stride;
    offset += stride * g.rows[p];
  }
  f.bytes.assign(static_cast<size_t>(offset), 0xEE);
  for (int p = 0; p < g.count; ++p)
    for (int64_t y = 0; y < g.rows[p]; ++y)
      for (int64_t x = 0; x < g.row_bytes[p]; ++x)
        f.bytes[f.layout.plane_offsets[p] + y * f.layout.strides[p] + x] = static_cast<uint8_t>((x * 7 + y * 13 + p * 50 + (x * y) % 37) % 256);
  f.view.format = f.layout.format = format;
  f.view.width = width;
  f.view.height = height;
  f.layout.width = width;
  f.layout.height = height;
  f.view.yuv_matrix = f.layout.yuv_matrix = matrix;
  for (int p = 0; p < g.count; ++p) {
    f.view.planes[p] = f.bytes.data() + f.layout.plane_offsets[p];
    f.view.strides[p] = static_cast<int>(f.layout.strides[p]);
  }
  return f;
}

std::vector<uint8_t> engine_rgb(const Frame& f) {
  at::Tensor bytes = at::from_blob(const_cast<uint8_t*>(f.bytes.data()), {static_cast<int64_t>(f.bytes.size())}, at::kByte);
  at::Tensor rgb = kernels::frames_to_rgb(bytes, {f.layout}).contiguous();
  return std::vector<uint8_t>(rgb.data_ptr<uint8_t>(), rgb.data_ptr<uint8_t>() + rgb.numel());
}

std::vector<uint8_t> decode_png(const std::string& file, int* width, int* height) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, file.data(), file.size())) throw std::runtime_error(image.message);
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> rgb(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, rgb.data(), 0, nullptr)) throw std::runtime_error(image.message);
  *width = static_cast<int>(image.width);
  *height = static_cast<int>(image.height);
  return rgb;
}

TEST(RemoteFrames, EveryFormatBecomesTheEnginesRgbBytes) {
  struct Case {
    PixelFormat format;
    int width, height;
    YuvMatrix matrix;
  };
  // Odd sizes (chroma rounding), above 576 lines (GStreamer's BT.709 and H-cosited NV12 chroma), explicit matrices.
  for (const Case& c : {Case{PixelFormat::kRGB, 33, 17, YuvMatrix::kAuto}, Case{PixelFormat::kBGRx, 20, 9, YuvMatrix::kAuto},
                        Case{PixelFormat::kRGBA, 8, 8, YuvMatrix::kAuto}, Case{PixelFormat::kBGR, 5, 3, YuvMatrix::kAuto},
                        Case{PixelFormat::kNV12, 37, 21, YuvMatrix::kAuto}, Case{PixelFormat::kNV12, 30, 580, YuvMatrix::kAuto},
                        Case{PixelFormat::kI420, 31, 19, YuvMatrix::kAuto}, Case{PixelFormat::kI420, 16, 600, YuvMatrix::kBT2020},
                        Case{PixelFormat::kNV12, 16, 8, YuvMatrix::kBT709}}) {
    SCOPED_TRACE(std::string(pixel_format_name(c.format)) + " " + std::to_string(c.width) + "x" + std::to_string(c.height));
    const Frame f = make_frame(c.format, c.width, c.height, 3, c.matrix);
    const std::vector<uint8_t> rgb = frame_to_rgb(f.view);
    EXPECT_EQ(rgb, engine_rgb(f));
    // Copied out of the caller's memory (rows packed), the same pixels.
    const OwnedFrame owned = copy_frame(f.view);
    EXPECT_EQ(frame_to_rgb(owned.view), rgb);
  }
}

TEST(RemoteFrames, PngIsLosslessAndJpegIsSmallerAndClose) {
  const Frame f = make_frame(PixelFormat::kNV12, 64, 48, 0);
  const std::vector<uint8_t> rgb = frame_to_rgb(f.view);
  const std::string png = encode_png(rgb.data(), 64, 48);
  int w = 0, h = 0;
  EXPECT_EQ(decode_png(png, &w, &h), rgb);
  EXPECT_EQ(w, 64);
  EXPECT_EQ(h, 48);
  const std::string jpeg = encode_jpeg(rgb.data(), 64, 48, 90);
  ASSERT_GT(jpeg.size(), 4u);
  EXPECT_EQ(static_cast<uint8_t>(jpeg[0]), 0xFF);  // SOI
  EXPECT_EQ(static_cast<uint8_t>(jpeg[1]), 0xD8);
  EXPECT_LT(encode_jpeg(rgb.data(), 64, 48, 20).size(), jpeg.size()) << "a lower quality costs fewer bytes";

  const std::string uri = image_data_uri(f.view, RemoteImageFormat::kPng, 90);
  EXPECT_EQ(uri, "data:image/png;base64," + base64_encode(png));
  EXPECT_EQ(image_data_uri(f.view, RemoteImageFormat::kJpeg, 90).rfind("data:image/jpeg;base64,/9j/", 0), 0u);
}

TEST(RemoteFrames, AFrameWithoutPixelsIsRefused) {
  FrameView empty;
  EXPECT_THROW(frame_to_rgb(empty), Error);
  Frame f = make_frame(PixelFormat::kI420, 8, 8, 0);
  f.view.planes[2] = nullptr;
  EXPECT_THROW(copy_frame(f.view), Error);
}

TEST(RemoteBase64, MatchesRfc4648) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(RemoteChatBody, EverySamplingFieldTravelsUnderVllmsNames) {
  Request r;
  r.prompt = "What moves?";
  r.system_prompt = "Be brief.";
  r.history = {{"First?", "A car."}};
  r.sampling.max_new_tokens = 12;
  r.sampling.temperature = 0.7;
  r.sampling.top_k = 5;
  r.sampling.top_p = 0.9;
  r.sampling.min_p = 0.05;
  r.sampling.repetition_penalty = 1.05;
  r.sampling.seed = 0xFFFFFFFFFFFFFFFFull;  // OpenAI's seeds are signed: the same 64 bits
  r.sampling.stop_strings = {"STOP", "\n\n"};
  r.sampling.ignore_eos = true;
  r.max_pixels = 200704;
  const json body = chat_body(r, "qwen", {"data:image/png;base64,AAAA", "data:image/png;base64,BBBB"});
  EXPECT_EQ(body["model"], "qwen");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["return_token_ids"], true);
  EXPECT_EQ(body["max_tokens"], 12);
  EXPECT_EQ(body["temperature"], 0.7);
  EXPECT_EQ(body["top_k"], 5);
  EXPECT_EQ(body["top_p"], 0.9);
  EXPECT_EQ(body["min_p"], 0.05);
  EXPECT_EQ(body["repetition_penalty"], 1.05);
  EXPECT_EQ(body["seed"], -1);
  EXPECT_EQ(body["stop"], json::array({"STOP", "\n\n"}));
  EXPECT_EQ(body["ignore_eos"], true);
  EXPECT_EQ(body["mm_processor_kwargs"], json({{"max_pixels", 200704}}));
  const json& m = body["messages"];
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0], json({{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(m[1], json({{"role", "user"}, {"content", "First?"}}));
  EXPECT_EQ(m[2], json({{"role", "assistant"}, {"content", "A car."}}));
  EXPECT_EQ(m[3]["role"], "user");
  const json& content = m[3]["content"];  // the images first, in order, then the question
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[0]["image_url"]["url"], "data:image/png;base64,AAAA");
  EXPECT_EQ(content[1]["image_url"]["url"], "data:image/png;base64,BBBB");
  EXPECT_EQ(content[2], json({{"type", "text"}, {"text", "What moves?"}}));
}

TEST(RemoteChatBody, UnsetFieldsStayOutForTheServersDefaults) {
  Request r;
  r.prompt = "Hi";
  const json body = chat_body(r, "m", {});
  for (const char* field : {"max_tokens", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed", "stop",
                            "ignore_eos", "mm_processor_kwargs"})
    EXPECT_FALSE(body.contains(field)) << field;
  ASSERT_EQ(body["messages"].size(), 1u) << "no system message: the chat template's default";
}

// Constrained answers go in the forms servers read (the server issue's qwenvl-server reads both).
TEST(RemoteChatBody, ASchemaGoesAsResponseFormatAndChoicesAsStructuredOutputs) {
  Request r;
  r.prompt = "How many?";
  r.sampling.json_schema = R"({"type":"object","properties":{"people":{"type":"integer"}},"required":["people"]})";
  json body = chat_body(r, "m", {});
  EXPECT_EQ(body["response_format"]["type"], "json_schema");
  EXPECT_EQ(body["response_format"]["json_schema"]["schema"], json::parse(r.sampling.json_schema));
  EXPECT_FALSE(body.contains("structured_outputs"));
  r.sampling.json_schema.clear();
  r.sampling.choices = {"yes", "no, never"};
  body = chat_body(r, "m", {});
  EXPECT_EQ(body["structured_outputs"], json({{"choice", {"yes", "no, never"}}}));
  EXPECT_FALSE(body.contains("response_format"));
  r.sampling.json_schema = "{";
  EXPECT_THROW(chat_body(r, "m", {}), std::invalid_argument) << "both set";
  r.sampling.choices.clear();
  EXPECT_THROW(chat_body(r, "m", {}), std::invalid_argument) << "not JSON";
}

TEST(RemoteBaseUrl, SplitsOriginAndPath) {
  EXPECT_EQ(parse_base_url("http://127.0.0.1:8000/v1").origin, "http://127.0.0.1:8000");
  EXPECT_EQ(parse_base_url("http://127.0.0.1:8000/v1/").path, "/v1");
  EXPECT_EQ(parse_base_url("https://gpu-pool.example/openai/v1").path, "/openai/v1");
  EXPECT_EQ(parse_base_url("http://host").path, "");
  EXPECT_THROW(parse_base_url("127.0.0.1:8000/v1"), Error);
  EXPECT_THROW(parse_base_url("ftp://host/v1"), Error);
  EXPECT_THROW(parse_base_url("http:///v1"), Error);
  EXPECT_THROW(parse_base_url("http://host/v1?x=1"), Error);
}

// A transcript read whole and cut into pieces of every size: the same completion, the partial
// texts adding up to the text.
CompletionSoFar read_in_pieces(const std::string& body, size_t piece) {
  std::string partials;
  CompletionEvents events([&](std::string_view text) { partials += text; });
  for (size_t i = 0; i < body.size(); i += piece) events.feed(std::string_view(body).substr(i, piece));
  events.finish();
  EXPECT_EQ(partials, events.so_far().text) << "piece " << piece;
  return events.so_far();
}

void expect_same(const CompletionSoFar& a, const CompletionSoFar& b) {
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.token_ids, b.token_ids);
  EXPECT_EQ(a.prompt_tokens, b.prompt_tokens);
  EXPECT_EQ(a.finish_reason, b.finish_reason);
  EXPECT_EQ(a.stop_string, b.stop_string);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.done, b.done);
}

TEST(RemoteEvents, VllmStreamWithTokenIdsAndUsage) {
  const std::string body = transcript("vllm_stream.sse");
  const CompletionSoFar whole = read_in_pieces(body, body.size());
  EXPECT_EQ(whole.text, "The image shows a cat on a sofa.");
  EXPECT_EQ(whole.token_ids, (std::vector<int32_t>{785, 2168, 4933, 264, 8251, 389, 264, 31851, 13, 151645}));
  EXPECT_EQ(whole.prompt_tokens, 94);
  EXPECT_EQ(whole.finish_reason, "eos");
  EXPECT_TRUE(whole.done);
  EXPECT_EQ(whole.error, "");
  for (size_t piece = 1; piece < 64; ++piece) expect_same(read_in_pieces(body, piece), whole);
}

TEST(RemoteEvents, VllmStopReasonNamesTheStopString) {
  const CompletionSoFar c = read_in_pieces(transcript("vllm_stream_stop_string.sse"), 7);
  EXPECT_EQ(c.text, "The image shows a cat");
  EXPECT_EQ(c.finish_reason, "stop_string");
  EXPECT_EQ(c.stop_string, "STOP");
  EXPECT_EQ(c.prompt_tokens, 94);
}

// vLLM names a stop token by its id: one of the model's end ids from generation_config.json, which
// the engine counts as end of sequence.
TEST(RemoteEvents, VllmStopTokenIdIsTheEndOfSequence) {
  CompletionEvents events;
  events.feed("data: {\"choices\": [{\"index\": 0, \"delta\": {}, \"finish_reason\": \"stop\", \"stop_reason\": 151643}]}\n\n");
  EXPECT_EQ(events.so_far().finish_reason, "eos");
  EXPECT_EQ(events.so_far().stop_string, "");
}

// llama-server --verbose: its stop_type and stopping_word, a chunk before the finish reason.
TEST(RemoteEvents, LlamaServerVerboseNamesTheStopWord) {
  const std::string body = transcript("llama_server_stream_verbose_stop_word.sse");
  const CompletionSoFar whole = read_in_pieces(body, body.size());
  EXPECT_EQ(whole.text, "A red car parked");
  EXPECT_EQ(whole.finish_reason, "stop_string");
  EXPECT_EQ(whole.stop_string, " END");
  EXPECT_EQ(whole.prompt_tokens, 287);
  for (size_t piece = 1; piece < 64; ++piece) expect_same(read_in_pieces(body, piece), whole);

  json completion = json::parse(R"({"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
      "message": {"role": "assistant", "content": "A red car"}}], "__verbose": {"stop_type": "word", "stopping_word": "!"}})");
  EXPECT_EQ(read_completion(completion).finish_reason, "stop_string");
  EXPECT_EQ(read_completion(completion).stop_string, "!");
  completion["__verbose"]["stop_type"] = "eos";
  EXPECT_EQ(read_completion(completion).finish_reason, "eos");
  EXPECT_EQ(read_completion(completion).stop_string, "");
}

// The same, recorded from a live llama-server --verbose (RECORDED.md): a stop string cut from the
// fixture's answer, "ren", ends it; only __verbose says which.
TEST(RemoteEvents, LiveLlamaServerVerboseNamesTheStopWord) {
  const std::string body = transcript("llama_server_recorded_stream_verbose_stop.sse");
  const CompletionSoFar whole = read_in_pieces(body, body.size());
  EXPECT_EQ(whole.text, " Jason goalie/',孵化 _('-empty(nombre Prefe");
  EXPECT_EQ(whole.finish_reason, "stop_string");
  EXPECT_EQ(whole.stop_string, "ren");
  EXPECT_EQ(whole.prompt_tokens, 124);
  EXPECT_EQ(whole.completion_tokens, 8);
  EXPECT_TRUE(whole.token_ids.empty());
  EXPECT_TRUE(whole.done);
  for (size_t piece = 1; piece < 64; ++piece) expect_same(read_in_pieces(body, piece), whole);
}

TEST(RemoteEvents, LlamaServerStreamWithTimingsAndCrlf) {
  const std::string body = transcript("llama_server_stream.sse");
  const CompletionSoFar whole = read_in_pieces(body, body.size());
  EXPECT_EQ(whole.text, "A red car parked by the kerb — なかなか.");
  EXPECT_TRUE(whole.token_ids.empty()) << "llama-server's chat stream carries no ids";
  EXPECT_EQ(whole.prompt_tokens, 287) << "the usage beside the finish reason";
  EXPECT_EQ(whole.finish_reason, "eos");
  EXPECT_TRUE(whole.done);
  for (size_t piece = 1; piece < 64; ++piece) expect_same(read_in_pieces(body, piece), whole);
}

TEST(RemoteEvents, AnErrorObjectInTheStreamIsKept) {
  const CompletionSoFar c = read_in_pieces(transcript("vllm_stream_error.sse"), 5);
  EXPECT_EQ(c.text, "The image shows");
  EXPECT_EQ(c.error, "The engine is dead (EngineDeadError)");
  EXPECT_EQ(c.finish_reason, "");
}

TEST(RemoteEvents, MultiLineDataAndALastEventWithoutItsBlankLine) {
  CompletionEvents events;
  events.feed("event: message\nid: 1\ndata: {\"choices\": [{\"index\": 0,\ndata: \"delta\": {\"content\": \"x\"}}]}\n\n");
  events.feed("data: {\"choices\": [{\"index\": 0, \"delta\": {}, \"finish_reason\": \"length\"}]}");
  events.finish();
  EXPECT_EQ(events.so_far().text, "x");
  EXPECT_EQ(events.so_far().finish_reason, "length");
  EXPECT_FALSE(events.so_far().done);
}

// Found by fuzz_completion_events (2026-12-06, corpus regression-aa5df26c): a body whose root is
// not an object, or whose "object" is not a string, threw nlohmann's type_error out of the reader.
TEST(RemoteEvents, ABodyOfTheWrongShapeReadsAsNoCompletion) {
  for (const char* body : {"8", R"({"object": 5})", R"(["choices"])", R"({"choices": 3})", "null"}) {
    CompletionSoFar c;
    EXPECT_NO_THROW(c = read_completion(json::parse(body))) << body;
    EXPECT_EQ(c.text, "") << body;
    EXPECT_TRUE(c.token_ids.empty()) << body;
  }
}

TEST(RemoteEvents, AWholeCompletionObject) {
  const json body = json::parse(R"({"id": "c", "object": "chat.completion", "choices": [{"index": 0,
      "message": {"role": "assistant", "content": "Two cats."}, "finish_reason": "length", "token_ids": [1, 2]}],
      "usage": {"prompt_tokens": 50, "completion_tokens": 2, "total_tokens": 52}})");
  const CompletionSoFar c = read_completion(body);
  EXPECT_EQ(c.text, "Two cats.");
  EXPECT_EQ(c.token_ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(c.prompt_tokens, 50);
  EXPECT_EQ(c.finish_reason, "length");
  EXPECT_EQ(read_completion(json::parse(R"({"error": {"message": "bad model", "type": "invalid_request_error"}})")).error,
            "bad model");
  EXPECT_EQ(read_completion(json::parse(R"({"object": "error", "message": "vLLM says no", "code": 400})")).error,
            "vLLM says no");
}

TEST(RemoteBackoff, UpGoesAtOnceDownPacesOneProbeAtATime) {
  using namespace std::chrono_literals;
  ServerBackoff backoff(50ms, 200ms);
  auto never = [] { return false; };
  bool probe = true;
  ASSERT_TRUE(backoff.wait_turn(never, &probe));
  EXPECT_FALSE(probe);

  backoff.failed(false);  // the server went down under a request
  EXPECT_TRUE(backoff.down());
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(backoff.wait_turn(never, &probe));
  EXPECT_TRUE(probe);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 45ms);

  // While the probe is out, others wait; a failed probe doubles the wait.
  bool second_probe = false;
  std::thread other([&] { backoff.wait_turn(never, &second_probe); });
  std::this_thread::sleep_for(30ms);
  start = std::chrono::steady_clock::now();
  backoff.failed(true);
  other.join();
  EXPECT_TRUE(second_probe);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 90ms) << "the wait doubled to 100 ms";
  EXPECT_EQ(backoff.next_wait(), 100ms);

  // A probe that gets through puts everyone back at once.
  backoff.succeeded();
  EXPECT_FALSE(backoff.down());
  ASSERT_TRUE(backoff.wait_turn(never, &probe));
  EXPECT_FALSE(probe);
  EXPECT_EQ(backoff.next_wait(), 50ms);

  // A caller that gives up stops waiting.
  backoff.failed(false);
  bool probe_taken = false;
  ASSERT_TRUE(backoff.wait_turn(never, &probe_taken));
  EXPECT_FALSE(backoff.wait_turn([] { return true; }, &probe));
  backoff.abandoned(probe_taken);
}

}  // namespace
}  // namespace qwenvl::remote
