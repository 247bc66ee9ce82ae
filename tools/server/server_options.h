// qwenvl-server's own options, besides the engine's (engine_flags.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "media_reader.h"

namespace qwenvl::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                // 0: any free port (the one taken is printed)
  std::string served_model_name;  // default: the model directory's name
  std::string api_key;            // empty: no key asked
  std::string ssl_cert, ssl_key;  // both or neither: HTTPS
  size_t max_body_bytes = size_t{64} << 20;
  uint64_t max_image_pixels = cli::kMaxImagePixels;  // the images of one request together
  int http_threads = 64;                             // connections served at once (each answer or stream holds one)
  bool quiet = false;                                // no line per request on stderr
};

}  // namespace qwenvl::server
