// From the parsed request to the engine's: headers checked, images decoded, fields moved over.
#include "engine_request.h"

#include <optional>
#include <string>

namespace qwenvl::server {

namespace {

std::optional<int64_t> set(int64_t value) { return value > 0 ? std::optional<int64_t>(value) : std::nullopt; }

// The request's own resizing bounds (mm_processor_kwargs) win over the server's.
void set_resizing(const ChatRequest& chat, const RequestLimits& limits, Request& request) {
  const int64_t most = limits.max_request_min_pixels;
  if (chat.min_pixels && most > 0 && *chat.min_pixels > most)
    throw invalid_request("mm_processor_kwargs.min_pixels: " + std::to_string(*chat.min_pixels) +
                              " is over the " + std::to_string(most) + " pixels that the context can hold",
                          "mm_processor_kwargs.min_pixels");
  request.min_pixels = chat.min_pixels ? chat.min_pixels : set(limits.min_pixels);
  request.max_pixels = chat.max_pixels ? chat.max_pixels : set(limits.max_pixels);
  if (request.min_pixels && request.max_pixels && *request.min_pixels > *request.max_pixels) {
    const char* param = chat.min_pixels ? "mm_processor_kwargs.min_pixels" : "mm_processor_kwargs.max_pixels";
    throw invalid_request(std::string(param) + ": min_pixels " + std::to_string(*request.min_pixels) +
                              " would be above max_pixels " + std::to_string(*request.max_pixels) +
                              " (the server's --min-pixels / --max-pixels where the request leaves one out)",
                          param);
  }
}

}  // namespace

EngineRequest make_engine_request(ChatRequest chat, const RequestLimits& limits) {
  EngineRequest out;
  set_resizing(chat, limits, out.request);
  try {
    uint64_t pixels = 0;  // every header first: nothing is decoded for a request over the limit
    for (const EncodedImage& image : chat.images) {
      const cli::ImageHeader h = cli::check_image_header(image.param, image.data, limits.max_image_pixels);
      pixels += uint64_t{h.width} * h.height;
    }
    if (pixels > limits.max_image_pixels)
      throw invalid_request("the request's " + std::to_string(chat.images.size()) + " images hold " +
                                std::to_string(pixels) + " pixels together, over the limit of " +
                                std::to_string(limits.max_image_pixels),
                            "messages", "image_too_large");
    for (const EncodedImage& image : chat.images)
      out.images.push_back(cli::decode_image(image.param, image.data, limits.max_image_pixels));
  } catch (const cli::CliError& e) {
    const std::string param = e.message.substr(0, e.message.find(':'));
    throw invalid_request(e.message, param, "invalid_image");
  }
  for (const cli::Image& image : out.images) out.request.images.push_back(image.view(0.0));
  out.request.prompt = std::move(chat.prompt);
  out.request.system_prompt = std::move(chat.system_prompt);
  out.request.history = std::move(chat.history);
  out.request.sampling = std::move(chat.sampling);
  return out;
}

}  // namespace qwenvl::server
