// A request's generation settings, resolved as transformers' generate() resolves them: what the
// request sets, else generation_config.json, else transformers' global defaults (greedy, top_k 50,
// top_p 1, temperature 1, repetition_penalty 1). A temperature of 0, or below kGreedyTemperature, means greedy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "qwenvl/engine.h"
#include "runtime/sampling.h"

namespace qwenvl::runtime {

struct GenerationSettings {
  SamplingConfig sampling;
  int64_t max_new_tokens = 0;
  std::vector<int64_t> eos_token_ids;
  std::vector<std::string> stop_strings;
};

// Throws qwenvl::Error for values out of range (negative temperature, top_p outside (0, 1], ...).
GenerationSettings resolve_generation(const SamplingParams& request, const model::GenerationConfig& file,
                                      const model::ModelConfig& model, int64_t default_max_new_tokens);

}  // namespace qwenvl::runtime
