// sample: entry point, argument checks and the CPU reference path (the reference's processors as
// libtorch ops, row by row, then the same Philox exponential race as the CUDA kernel).
#include "kernels/sampling.h"

#include <algorithm>
#include <limits>

#include "kernels/check.h"
#include "kernels/dispatch_counts.h"
#include "kernels/philox.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/cuda_launchers.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "sample";
constexpr float kFiltered = -std::numeric_limits<float>::infinity();

void penalise(at::Tensor& row, const at::Tensor& ids, double penalty) {
  if (penalty == 1.0 || ids.numel() == 0) return;
  at::Tensor score = row.gather(0, ids);
  score = at::where(score < 0, score * penalty, score / penalty);
  row.scatter_(0, ids, score);
}

void warp(at::Tensor& row, const RowSampling& c, TopPTies ties) {
  const int64_t vocab = row.size(0);
  if (c.temperature != 1.0) row.div_(c.temperature);
  if (c.top_k != 0) {
    const int64_t k = std::min(c.top_k, vocab);
    const at::Tensor kth = std::get<0>(at::topk(row, k)).select(0, k - 1);
    row.masked_fill_(row < kth, kFiltered);
  }
  if (c.top_p < 1.0) {
    // Stable: tied values leave lowest index first; else at::sort's own order of ties.
    const auto [sorted, order] =
        at::sort(row, /*stable=*/ties == TopPTies::kLowestIndexFirst, /*dim=*/0, /*descending=*/false);
    const at::Tensor cumulative = sorted.softmax(0).cumsum(0);
    at::Tensor remove_sorted = cumulative <= (1.0 - c.top_p);
    remove_sorted[-1] = false;
    row.masked_fill_(remove_sorted.scatter(0, order, remove_sorted), kFiltered);
  }
  if (c.min_p > 0.0) {
    const at::Tensor probs = row.softmax(0);
    at::Tensor remove = probs < (c.min_p * probs.max());
    remove.index_put_({probs.argmax()}, false);
    row.masked_fill_(remove, kFiltered);
  }
}

int64_t draw(const at::Tensor& row, const RowSampling& c) {
  const at::Tensor p = at::exp(row - row.max()).contiguous();
  const float* pp = p.data_ptr<float>();
  int64_t best = 0;
  float best_score = -1.f;
  for (int64_t i = 0; i < p.numel(); ++i) {
    const float score = pp[i] / philox::exponential(c.seed, c.step, uint64_t(i));
    if (score > best_score) best_score = score, best = i;
  }
  return best;
}

}  // namespace

void process_logits(at::Tensor& row, const RowSampling& c, const at::Tensor& seen_ids, TopPTies ties) {
  penalise(row, seen_ids, c.repetition_penalty);
  if (c.do_sample) warp(row, c, ties);
}

at::Tensor sample(at::Tensor& logits, const std::vector<RowSampling>& rows, const SeenIds& seen) {
  using namespace detail;
  check_dim(logits, 2, kOp, "logits");
  if (logits.scalar_type() != at::kFloat || !logits.is_contiguous())
    fail(kOp, "logits must be contiguous fp32, got ", logits.scalar_type());
  const int64_t n = logits.size(0), vocab = logits.size(1);
  if (int64_t(rows.size()) != n) fail(kOp, rows.size(), " row settings for ", n, " logits rows");
  if (vocab == 0) fail(kOp, "empty vocabulary");
  for (const RowSampling& r : rows)
    if (r.do_sample && (!(r.temperature > 0.0) || r.top_k < 0 || !(r.top_p > 0.0) || r.top_p > 1.0 || r.min_p < 0.0))
      fail(kOp, "temperature and top_p must be positive, top_p <= 1, top_k and min_p >= 0");
  // Every form becomes (flat ids, start, length) per row.
  at::Tensor flat, starts, lengths;
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong).device(logits.device());
  if (!seen.ids.defined() || seen.ids.numel() == 0) {
    flat = at::zeros({1}, longs);
    starts = at::zeros({n}, longs);
    lengths = at::zeros({n}, longs);
  } else {
    check_same_device(logits, seen.ids, kOp, "seen ids");
    if (seen.ids.scalar_type() != at::kLong) fail(kOp, "seen ids must be int64");
    if (seen.offsets.defined()) {
      if (seen.ids.dim() != 1 || seen.offsets.dim() != 1 || seen.offsets.size(0) != n + 1)
        fail(kOp, "CSR seen ids: ids [n] and offsets [", n + 1, "]");
      const at::Tensor off = seen.offsets.to(longs);
      starts = off.slice(0, 0, n).contiguous();
      lengths = (off.slice(0, 1, n + 1) - off.slice(0, 0, n)).contiguous();
      flat = seen.ids.contiguous();
    } else {
      if (seen.ids.dim() != 2 || seen.ids.size(0) != n || !seen.lengths.defined() || seen.lengths.numel() != n)
        fail(kOp, "padded seen ids: ids [", n, ", L] and lengths [", n, "]");
      starts = at::arange(n, longs) * seen.ids.size(1);
      lengths = seen.lengths.to(longs).reshape({n}).clamp(0, seen.ids.size(1)).contiguous();
      flat = seen.ids.contiguous().view({-1});
    }
  }
  detail::count_dispatch(KernelOp::kSample, logits.is_cuda() ? DispatchPath::kCudaKernel : DispatchPath::kCpuReference);
  if (logits.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    return cuda::sample(logits, rows, flat, starts, lengths);
#else
    fail_no_cuda(kOp);
#endif
  }
  at::Tensor tokens = at::empty({n}, longs);
  for (int64_t s = 0; s < n; ++s) {
    at::Tensor row = logits[s];
    const RowSampling& c = rows[size_t(s)];
    const int64_t start = starts[s].item<int64_t>(), len = lengths[s].item<int64_t>();
    process_logits(row, c, flat.slice(0, start, start + len), TopPTies::kLowestIndexFirst);
    tokens[s] = c.do_sample ? draw(row, c) : row.argmax().item<int64_t>();
  }
  return tokens;
}

}  // namespace qwenvl::kernels
