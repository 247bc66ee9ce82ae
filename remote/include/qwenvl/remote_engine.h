// The remote engine: qwenvl::Engine answered by a server of OpenAI's chat-completions API (vLLM,
// SGLang, llama-server, qwenvl-server, ...) at a base URL ending in /v1. Its own library,
// libqwenvl-remote.so, which needs neither libtorch nor a model directory; clients load it at run
// time (dlopen + dlsym of kRemoteEngineCreateSymbol) as they load the local engine, or link it.
//
// Each request becomes one POST {base}/chat/completions, streamed (server-sent events): images (a
// clip: its frames, in order) as PNG (lossless: the server sees the frame's exact RGB bytes) or JPEG
// data URIs; every SamplingParams field travels, the extensions as vLLM names them (top_k, min_p,
// repetition_penalty, ignore_eos, return_token_ids). Up to max_inflight requests run at once, each
// worker on its own kept-alive connection. A timeout, a refused connection or a 5xx fails that
// request with the reason; later requests are then paced by a backoff (one attempt at a time, the
// wait doubling up to backoff_max) until one gets through, so a server that comes back is used again.
#pragma once

#include <chrono>
#include <string>

#include "qwenvl/engine.h"

namespace qwenvl {

enum class RemoteImageFormat { kPng, kJpeg };

struct RemoteEngineOptions {
  std::string base_url;   // "http://host:port/v1" (https where the library has TLS)
  std::string model;      // the served model's name; empty: the first of GET {base}/models
  std::string api_key;    // sent as "Authorization: Bearer KEY" when not empty
  RemoteImageFormat image_format = RemoteImageFormat::kPng;
  int jpeg_quality = 90;  // 1-100, for kJpeg
  int max_inflight = 4;   // requests on the wire at once (one connection each)
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds timeout{60000};       // longest silence of the server within a request
  std::chrono::milliseconds backoff_min{100};     // the first wait after a failure of the server
  std::chrono::milliseconds backoff_max{5000};
};

// "png" / "jpeg" (also "jpg"); nullopt-like false for anything else.
inline bool remote_image_format_from_name(const std::string& name, RemoteImageFormat* format) {
  if (name == "png") return *format = RemoteImageFormat::kPng, true;
  if (name == "jpeg" || name == "jpg") return *format = RemoteImageFormat::kJpeg, true;
  return false;
}

using RemoteEngineCreateFunction = Engine* (*)(const RemoteEngineOptions* options, std::string* error);
inline constexpr const char kRemoteEngineCreateSymbol[] = "qwenvl_remote_engine_create";

}  // namespace qwenvl

// Returns nullptr and sets *error (when given) for options that cannot work (a URL that does not
// parse, no model and a server that does not list one).
extern "C" __attribute__((visibility("default"))) qwenvl::Engine* qwenvl_remote_engine_create(
    const qwenvl::RemoteEngineOptions* options, std::string* error);
