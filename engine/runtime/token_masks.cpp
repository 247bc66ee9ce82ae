// Filling the constrained rows' masks on the host and applying them where the logits are.
#include "runtime/token_masks.h"

#include <algorithm>
#include <string>

#include "kernels/token_bitmask.h"
#include "qwenvl/error.h"
#include "runtime/host_upload.h"
#include "runtime/parallel_rows.h"

namespace qwenvl::runtime {

TokenMasks fill_token_masks(const std::vector<structured::TokenConstraint*>& constraints, int64_t vocab, bool pinned) {
  std::vector<int32_t> constrained;
  for (size_t row = 0; row < constraints.size(); ++row)
    if (constraints[row] != nullptr) constrained.push_back(static_cast<int32_t>(row));
  TokenMasks masks;
  masks.rows = static_cast<int64_t>(constrained.size());
  if (masks.rows == 0) return masks;
  masks.words = structured::mask_words(vocab);
  masks.block = at::empty({masks.rows * masks.words + masks.rows}, at::TensorOptions().dtype(at::kInt).pinned_memory(pinned));
  int32_t* const first = masks.block.data_ptr<int32_t>();
  std::copy(constrained.begin(), constrained.end(), first + masks.rows * masks.words);
  // Each row's matcher is its own (xgrammar's batch matcher fills matchers side by side the same way).
  parallel_rows(masks.rows, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      constraints[static_cast<size_t>(constrained[static_cast<size_t>(i)])]->fill_mask(first + i * masks.words);
  });
  return masks;
}

void apply_token_masks(at::Tensor& logits, const TokenMasks& masks) {
  if (masks.rows == 0) return;
  const at::Tensor block = upload(masks.block, logits.device());
  const int64_t bits = masks.rows * masks.words;
  kernels::apply_token_bitmask(logits, block.narrow(0, 0, bits).view({masks.rows, masks.words}),
                               block.narrow(0, bits, masks.rows));
}

void accept_constrained_tokens(const std::vector<structured::TokenConstraint*>& constraints,
                               const std::vector<int64_t>& tokens) {
  std::vector<size_t> constrained;
  for (size_t row = 0; row < constraints.size(); ++row)
    if (constraints[row] != nullptr) constrained.push_back(row);
  parallel_rows(static_cast<int64_t>(constrained.size()), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t row = constrained[static_cast<size_t>(i)];
      const auto token = static_cast<int32_t>(tokens.at(row));
      if (!constraints[row]->accept(token))
        throw Error("the grammar refused token " + std::to_string(token) + ", which its own mask allowed");
    }
  });
}

}  // namespace qwenvl::runtime
