// Reference cases run as one batch through a network's prefill and decode, whatever runs them (the
// model runner on one device, a pipeline's executor): one prefill, then decode steps until each
// case has as many ids as its reference (those done leave the batch). Gives the generated ids and,
// with the repetition penalty off, the worst logits error of each case against its reference steps.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "network_reference.h"
#include "runtime/model_runner.h"
#include "runtime/sampling.h"

namespace qwenvl::test {

struct BatchRun {
  std::vector<std::vector<int64_t>> ids;
  std::vector<double> worst_error;
};

struct BatchNetwork {
  // Gives the slot blocks for `tokens` tokens.
  std::function<void(runtime::SequenceSlot&, int64_t tokens)> reserve;
  std::function<at::Tensor(const std::vector<const runtime::PreparedPrompt*>&, const std::vector<runtime::SequenceSlot*>&)>
      prefill;
  std::function<at::Tensor(const std::vector<int64_t>&, const std::vector<runtime::SequenceSlot*>&)> decode;
};

inline BatchRun run_cases_as_batch(const BatchNetwork& net, const std::vector<const NetworkCase*>& cases, double penalty,
                                   const std::string& reference_ids) {
  std::vector<runtime::PreparedPrompt> prompts;
  std::vector<runtime::SequenceSlot> slots(cases.size());
  std::vector<runtime::SequenceSampler> samplers;
  BatchRun out;
  size_t steps = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    prompts.push_back(prepared_prompt(*cases[i]));
    const size_t n_ref = static_cast<size_t>(cases[i]->t.at(reference_ids).numel());
    steps = std::max(steps, n_ref);
    net.reserve(slots[i], static_cast<int64_t>(prompts[i].ids.size() + n_ref));
    runtime::SamplingConfig sc;
    sc.repetition_penalty = penalty;
    samplers.emplace_back(sc);
  }
  out.ids.resize(cases.size());
  out.worst_error.assign(cases.size(), 0.0);
  std::vector<const runtime::PreparedPrompt*> prompt_ptrs;
  std::vector<runtime::SequenceSlot*> slot_ptrs;
  for (size_t i = 0; i < cases.size(); ++i) {
    prompt_ptrs.push_back(&prompts[i]);
    slot_ptrs.push_back(&slots[i]);
  }
  std::vector<std::vector<int64_t>> seen(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) seen[i] = prompts[i].ids;

  at::Tensor logits = net.prefill(prompt_ptrs, slot_ptrs);
  std::vector<size_t> live(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) live[i] = i;
  for (size_t step = 0; step < steps && !live.empty(); ++step) {
    std::vector<int64_t> next;
    std::vector<runtime::SequenceSlot*> next_slots;
    std::vector<size_t> next_live;
    for (size_t row = 0; row < live.size(); ++row) {
      const size_t i = live[row];
      const auto& c = *cases[i];
      if (penalty == 1.0 && c.has("greedy_step_logits") && step < static_cast<size_t>(c.t.at("greedy_step_logits").size(0)))
        out.worst_error[i] = std::max(out.worst_error[i], relative_error(logits[row], c.t.at("greedy_step_logits")[step]));
      const int64_t token = samplers[i].pick(logits[row].clone(), seen[i]);
      out.ids[i].push_back(token);
      seen[i].push_back(token);
      if (out.ids[i].size() < static_cast<size_t>(c.t.at(reference_ids).numel())) {
        next.push_back(token);
        next_slots.push_back(&slots[i]);
        next_live.push_back(i);
      }
    }
    live = next_live;
    if (!live.empty()) logits = net.decode(next, next_slots);
  }
  return out;
}

}  // namespace qwenvl::test
