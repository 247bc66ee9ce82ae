// Joining, collecting and draining a lane (lane.h).
#include "runtime/lane.h"

namespace qwenvl::runtime {

void Lane::join(const std::vector<Sequence*>& sequences, const at::Tensor& rows) {
  if (sequences.empty()) return;
  joined_logits = joined.empty() ? rows : at::cat({joined_logits, rows});
  joined.insert(joined.end(), sequences.begin(), sequences.end());
}

void Lane::collect() {
  if (pending.valid()) logits = pending.get();  // get() leaves it invalid, even when it throws
  if (joined.empty()) return;
  // A copy either way: decode logits may live in graph memory that the next step overwrites.
  logits = live.empty() ? joined_logits : at::cat({logits, joined_logits});
  live.insert(live.end(), joined.begin(), joined.end());
  joined.clear();
  joined_logits = at::Tensor();
}

void Lane::drain() {
  if (!pending.valid()) return;
  try {
    pending.get();
  } catch (...) {
    // Its sequences fail with the reason the caller already has.
  }
}

}  // namespace qwenvl::runtime
