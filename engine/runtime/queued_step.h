// A decode step queued before the host has read the tokens it appends (EngineOptions::
// overlap_decode): the device works on it while the host checks stops and streams text. Rows whose
// sequence turns out to stop are computed anyway and dropped afterwards.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "runtime/model_executor.h"
#include "runtime/sequence.h"

namespace qwenvl::runtime {

// Admitted sequences whose prefill rides in the next decode step (ModelExecutor::mixes_prefill),
// with their prompts' input embeddings; their logits rows follow the decode rows'.
struct RidingPrompts {
  std::vector<Sequence*> sequences;
  std::vector<at::Tensor> embeddings;
  bool empty() const { return sequences.empty(); }
};

// executor.mixed_step for `riding` and one token ([S] int64, host or device) per slot.
at::Tensor run_mixed_step(ModelExecutor& executor, const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots,
                          const RidingPrompts& riding);

// The sequences a queued step appends to, in row order, and its logits.
struct QueuedStep {
  std::vector<Sequence*> rows;
  at::Tensor logits;

  // The rows of the sequences still running (`next`, in the same order), and their logits.
  std::pair<std::vector<Sequence*>, at::Tensor> keep(const std::vector<Sequence*>& next) const;
};

// Queues the decode step that appends `tokens` (one per row of `live`, on executor.device()) for
// every sequence that will still run after taking its token unless that token stops it: a sequence
// reaching max_new_tokens or max_context with this token stops whatever it is, so it is left out
// (its cache has no room for another entry). Stops by EOS, stop strings, cancellation or deadline
// are known only later: those rows are computed and dropped (QueuedStep::keep). `riding` prompts
// are prefilled in the same step; their rows follow.
QueuedStep queue_next_step(ModelExecutor& executor, const at::Tensor& tokens, const std::vector<Sequence*>& live,
                           int64_t max_context, const RidingPrompts& riding = {});

}  // namespace qwenvl::runtime
