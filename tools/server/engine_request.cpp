// From the parsed request to the engine's: headers checked, images decoded, fields moved over.
#include "engine_request.h"

#include <string>

namespace qwenvl::server {

EngineRequest make_engine_request(ChatRequest chat, const RequestLimits& limits) {
  EngineRequest out;
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
  if (limits.min_pixels > 0) out.request.min_pixels = limits.min_pixels;
  if (limits.max_pixels > 0) out.request.max_pixels = limits.max_pixels;
  return out;
}

}  // namespace qwenvl::server
