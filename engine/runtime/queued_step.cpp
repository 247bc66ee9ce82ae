// Queuing a decode step ahead of its tokens' reading, and keeping the rows that still run.
#include "runtime/queued_step.h"

#include "qwenvl/error.h"
#include "runtime/host_upload.h"

namespace qwenvl::runtime {

std::pair<std::vector<Sequence*>, at::Tensor> QueuedStep::keep(const std::vector<Sequence*>& next) const {
  std::vector<int64_t> kept;
  size_t r = 0;
  for (Sequence* s : next) {
    while (r < rows.size() && rows[r] != s) ++r;
    if (r == rows.size()) throw Error("decode: a running sequence missed the queued step");
    kept.push_back(static_cast<int64_t>(r++));
  }
  if (kept.size() == rows.size()) return {next, logits};
  if (kept.empty()) return {next, at::Tensor()};
  return {next, logits.index_select(0, upload(kept, at::kLong, logits.device()))};
}

at::Tensor run_mixed_step(ModelExecutor& executor, const at::Tensor& tokens, const std::vector<SequenceSlot*>& slots,
                          const RidingPrompts& riding) {
  std::vector<const PreparedPrompt*> prompts;
  std::vector<SequenceSlot*> prompt_slots;
  for (Sequence* s : riding.sequences) {
    prompts.push_back(&s->prompt);
    prompt_slots.push_back(&s->slot);
  }
  return executor.mixed_step(tokens, slots, prompts, riding.embeddings, prompt_slots);
}

QueuedStep queue_next_step(ModelExecutor& executor, const at::Tensor& tokens, const std::vector<Sequence*>& live,
                           int64_t max_context, const RidingPrompts& riding) {
  QueuedStep step;
  std::vector<int64_t> rows;
  std::vector<SequenceSlot*> slots;
  for (size_t row = 0; row < live.size(); ++row) {
    const Sequence& s = *live[row];
    const auto after = static_cast<int64_t>(s.generated.size()) + 1;  // tokens generated with this one
    if (after >= s.settings.max_new_tokens || static_cast<int64_t>(s.prompt.ids.size()) + after >= max_context)
      continue;
    rows.push_back(static_cast<int64_t>(row));
    step.rows.push_back(live[row]);
    slots.push_back(&live[row]->slot);
  }
  if (rows.empty() && riding.empty()) return step;
  const at::Tensor ids = rows.size() == live.size() ? tokens
                         : rows.empty()            ? at::empty({0}, tokens.options())
                                                   : tokens.index_select(0, upload(rows, at::kLong, tokens.device()));
  if (riding.empty()) {
    step.logits = executor.decode(ids, slots);
    return step;
  }
  step.logits = run_mixed_step(executor, ids, slots, riding);
  step.rows.insert(step.rows.end(), riding.sequences.begin(), riding.sequences.end());
  return step;
}

}  // namespace qwenvl::runtime
