// One request in flight inside the engine: what the user asked, its prepared prompt, its place in
// the KV cache, its sampler, the text streamed so far, and how it ends. Finishing goes through
// finish(), which makes sure the request ends exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qwenvl/engine.h"
#include "runtime/generation_settings.h"
#include "runtime/model_runner.h"
#include "runtime/request_preparation.h"
#include "structured/token_constraint.h"
#include "tokenizer/incremental_decoder.h"

namespace qwenvl::runtime {

using Clock = std::chrono::steady_clock;

struct Sequence {
  RequestId id = 0;
  Request request;
  RequestMedia media;
  Clock::time_point submitted;
  std::promise<Result> promise;
  std::atomic<bool> cancel_requested{false};

  // Filled by preparation.
  PreparedPrompt prompt;
  GenerationSettings settings;
  std::unique_ptr<SequenceSampler> sampler;
  std::unique_ptr<structured::TokenConstraint> constraint;  // null unless json_schema / choices
  std::unique_ptr<model::IncrementalDecoder> decoder;

  // Generation state.
  SequenceSlot slot;
  std::vector<int64_t> seen;       // prompt + generated ids (the repetition penalty's input)
  std::vector<int32_t> generated;
  std::string text;                // decoded so far (whole characters)
  size_t streamed = 0;             // bytes of `text` already given to on_partial
  std::string matched_stop;        // the stop string that ended generation, if one did
  std::optional<Clock::time_point> first_token;
  bool done = false;

  bool expired(Clock::time_point now) const { return request.deadline && now >= *request.deadline; }
};

// Builds the Result and delivers it to the callback and the future, once.
void finish(Sequence& s, Status status, std::string finish_reason, std::string error = {});

}  // namespace qwenvl::runtime
