// A parsed chat request made into the engine's Request: its images decoded with qwenvl-cli's media
// reader (OpenCV, or libpng in a build without it), after their headers have been checked against the
// pixel limit, so that a small file claiming a huge image is refused before anything is decoded.
#pragma once

#include <cstdint>
#include <vector>

#include "chat_request.h"
#include "media_reader.h"
#include "qwenvl/engine.h"

namespace qwenvl::server {

struct RequestLimits {
  uint64_t max_image_pixels = cli::kMaxImagePixels;  // all the images of one request together
  int64_t min_pixels = 0, max_pixels = 0;            // the engine's resizing; 0: the model's
  // The largest min_pixels a request may ask for (mm_processor_kwargs): an image resized up past it
  // could not fit the context anyway, and the resizing alone would cost memory. 0: no bound.
  int64_t max_request_min_pixels = 0;
};

struct EngineRequest {
  Request request;                 // its frames point into `images`
  std::vector<cli::Image> images;  // keep them until submit() has copied them
};

// Throws ApiError (400, naming the image's field) for an image that is not a PNG or JPEG, that is
// over the limit, or that cannot be decoded; and (naming the mm_processor_kwargs field) for resizing
// bounds past max_request_min_pixels or that cross the server's own.
EngineRequest make_engine_request(ChatRequest chat, const RequestLimits& limits);

}  // namespace qwenvl::server
