#include "runtime/generation_settings.h"

#include <cmath>
#include <random>
#include <string>

#include "qwenvl/error.h"

namespace qwenvl::runtime {

GenerationSettings resolve_generation(const SamplingParams& r, const model::GenerationConfig& file,
                                      const model::ModelConfig& model, int64_t default_max_new_tokens) {
  GenerationSettings g;
  SamplingConfig& s = g.sampling;
  s.do_sample = file.do_sample.value_or(false);
  s.temperature = file.temperature.value_or(1.0);
  s.top_k = file.top_k.value_or(50);
  s.top_p = file.top_p.value_or(1.0);
  s.min_p = file.min_p;
  s.repetition_penalty = file.repetition_penalty.value_or(1.0);

  // A request that names a temperature decides between greedy (0) and sampling. Below
  // kGreedyTemperature it is greedy too (qwenvl/engine.h says why).
  if (r.temperature) {
    if (!(*r.temperature >= 0) || std::isinf(*r.temperature))
      throw Error("temperature must be a finite number >= 0, got " + std::to_string(*r.temperature));
    s.do_sample = *r.temperature >= kGreedyTemperature;
    if (s.do_sample) s.temperature = *r.temperature;
  }
  if (r.top_k) {
    if (*r.top_k < 0) throw Error("top_k must be >= 0, got " + std::to_string(*r.top_k));
    s.top_k = *r.top_k;
  }
  if (r.top_p) {
    if (!(*r.top_p > 0 && *r.top_p <= 1)) throw Error("top_p must be in (0, 1], got " + std::to_string(*r.top_p));
    s.top_p = *r.top_p;
  }
  if (r.min_p) {
    if (!(*r.min_p >= 0 && *r.min_p <= 1)) throw Error("min_p must be in [0, 1], got " + std::to_string(*r.min_p));
    s.min_p = *r.min_p;
  }
  if (r.repetition_penalty) {
    if (!(*r.repetition_penalty > 0))
      throw Error("repetition_penalty must be > 0, got " + std::to_string(*r.repetition_penalty));
    s.repetition_penalty = *r.repetition_penalty;
  }
  if (s.do_sample && !(s.temperature > 0)) throw Error("sampling needs a temperature > 0");
  if (s.do_sample && s.temperature < kGreedyTemperature) s.do_sample = false;  // generation_config.json's too
  s.seed = r.seed ? *r.seed : std::random_device{}();

  if (r.max_new_tokens) {
    if (*r.max_new_tokens <= 0) throw Error("max_new_tokens must be > 0, got " + std::to_string(*r.max_new_tokens));
    g.max_new_tokens = *r.max_new_tokens;
  } else {
    g.max_new_tokens = file.max_new_tokens.value_or(default_max_new_tokens);
  }
  g.eos_token_ids = !file.eos_token_ids.empty() ? file.eos_token_ids : model.text.eos_token_ids;
  for (const auto& stop : r.stop_strings)
    if (stop.empty()) throw Error("stop strings must not be empty");
  g.stop_strings = r.stop_strings;
  return g;
}

}  // namespace qwenvl::runtime
