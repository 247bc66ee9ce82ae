// libFuzzer harness: a POST /v1/chat/completions body as qwenvl-server parses it
// (tools/server/chat_request.cpp, data URIs and base64 with it), then the headers of its images as the
// server reads them before decoding (tools/image_header.cpp) and the answer's JSON built around its
// text. Every refusal must be an ApiError with a 4xx and a message; nothing else may escape.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"
#include "image_header.h"
#include "server/chat_request.h"
#include "server/chat_response.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qwenvl;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    const server::ChatRequest request = server::parse_chat_request(body);
    fuzz::require(request.sampling.max_new_tokens.value_or(1) >= 1, "max_new_tokens below 1");
    for (const auto& stop : request.sampling.stop_strings) fuzz::require(!stop.empty(), "an empty stop string");
    for (const auto& image : request.images) {
      fuzz::require(
          image.media_type == "image/png" || image.media_type == "image/jpeg" || image.media_type == "image/jpg",
          "an image of media type " + image.media_type);
      const auto header =
          cli::read_image_header(reinterpret_cast<const uint8_t*>(image.data.data()), image.data.size());
      if (header) fuzz::require(header->width > 0 && header->height > 0, "a header with a zero side");
    }
    Result result;
    result.status = Status::kAnswered;
    result.text = request.prompt;  // text from the request, whatever its bytes, into the answer's JSON
    result.finish_reason = "eos";
    const std::string out = server::dump(server::completion({"chatcmpl-x", 0, request.model}, result, true));
    fuzz::require(!out.empty(), "an empty answer");
  } catch (const server::ApiError& e) {
    fuzz::require(e.status >= 400 && e.status < 500, "an error status " + std::to_string(e.status));
    fuzz::require(!e.message.empty(), "an error without a message");
  }
  return 0;
}
