#include "kernels/attention_reference.h"

#include <limits>

namespace qwenvl::kernels::detail {

void attention_segment_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 double scale, bool causal, at::Tensor out) {
  const int64_t lq = q.size(0), lk = k.size(0), heads = q.size(1), kv_heads = k.size(1);
  if (lq == 0) return;
  if (lk == 0) {
    out.zero_();
    return;
  }
  const auto math = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t group = heads / kv_heads;
  const at::Tensor qh = q.permute({1, 0, 2}).to(math);  // [H, Lq, D]
  const at::Tensor kh = k.permute({1, 0, 2}).to(math);  // [Hkv, Lk, D]
  const at::Tensor vh = v.permute({1, 0, 2}).to(math);
  at::Tensor visible;
  if (causal) visible = at::ones({lq, lk}, q.options().dtype(at::kBool)).tril(lk - lq);
  for (int64_t g = 0; g < kv_heads; ++g) {
    at::Tensor scores = at::matmul(qh.slice(0, g * group, (g + 1) * group), kh[g].t()) * scale;
    if (causal) scores.masked_fill_(visible.logical_not(), -std::numeric_limits<double>::infinity());
    at::Tensor p = at::softmax(scores, -1);
    // Rows that see no key are NaN after softmax; FlashAttention returns zeros for them.
    if (causal) p = at::where(visible, p, at::zeros({}, p.options()));
    const at::Tensor o = at::matmul(p, vh[g]);  // [G, Lq, D]
    out.slice(1, g * group, (g + 1) * group).copy_(o.permute({1, 0, 2}));
  }
}

at::Tensor gather_paged(const at::Tensor& cache, const at::Tensor& block_table_row, int64_t len) {
  const int64_t block_size = cache.size(1);
  const int64_t blocks = (len + block_size - 1) / block_size;
  const at::Tensor ids = block_table_row.slice(0, 0, blocks).to(cache.device(), at::kLong);
  return cache.index_select(0, ids)
      .reshape({blocks * block_size, cache.size(2), cache.size(3)})
      .slice(0, 0, len);
}

}  // namespace qwenvl::kernels::detail
