// One lane of the scheduler's batch (model_executor.h, ModelExecutor::lanes): the sequences whose
// decode steps run together, the logits of their next tokens or the step in flight that gives them,
// and the sequences prefilled since, which join at the lane's next turn. Touched only by the
// scheduler's thread; the step's future is the only hand-back from the executor.
#pragma once

#include <ATen/ATen.h>

#include <future>
#include <vector>

#include "runtime/sequence.h"

namespace qwenvl::runtime {

struct Lane {
  std::vector<Sequence*> live;      // one per row of `logits` (or of the step in flight)
  at::Tensor logits;                // ready: on executor.device(), one row per live sequence
  std::future<at::Tensor> pending;  // the step in flight (valid while it runs): gives `logits`
  std::vector<Sequence*> joined;    // prefilled since the lane's last turn, rows of joined_logits
  at::Tensor joined_logits;

  size_t rows() const { return live.size() + joined.size(); }
  // Prefilled sequences with their logits rows join (after those already waiting to).
  void join(const std::vector<Sequence*>& sequences, const at::Tensor& rows);
  // Waits for the step in flight, if any (what failed it is rethrown, `live` left as it was), then
  // the joined sequences' rows follow the live ones' in `logits`.
  void collect();
  // Waits for the step in flight, if any, ignoring how it ended: no work of it is left anywhere.
  void drain();
};

}  // namespace qwenvl::runtime
