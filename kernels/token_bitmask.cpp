// apply_token_bitmask: entry point, argument checks and the CPU path (a loop over the words: the CPU
// engine's mask, and the reference the CUDA kernel is tested against beside a libtorch unpacking).
#include "kernels/token_bitmask.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/check.h"
#ifdef QWENVL_WITH_CUDA
#include "kernels/token_bitmask_cuda.h"
#endif

namespace qwenvl::kernels {
namespace {

constexpr const char* kOp = "apply_token_bitmask";

void check_args(const at::Tensor& logits, const at::Tensor& bitmask, const at::Tensor& rows) {
  using namespace detail;
  check_dim(logits, 2, kOp, "logits");
  check_dim(bitmask, 2, kOp, "bitmask");
  if (logits.scalar_type() != at::kFloat) fail(kOp, "logits must be fp32, got ", logits.scalar_type());
  if (logits.stride(1) != 1) fail(kOp, "logits rows must be contiguous");
  if (bitmask.scalar_type() != at::kInt || !bitmask.is_contiguous())
    fail(kOp, "bitmask must be a contiguous int32 tensor, got ", bitmask.scalar_type());
  check_int32_vector(rows, kOp, "rows");
  if (rows.size(0) != bitmask.size(0)) fail(kOp, "one row index per mask row: ", rows.size(0), " for ", bitmask.size(0));
  if (bitmask.size(1) * 32 < logits.size(1))
    fail(kOp, "bitmask rows of ", bitmask.size(1), " words cannot cover ", logits.size(1), " ids");
  check_same_device(logits, bitmask, kOp, "bitmask");
  check_same_device(logits, rows, kOp, "rows");
}

void apply_on_host(at::Tensor& logits, const at::Tensor& bitmask, const at::Tensor& rows) {
  const int64_t vocab = logits.size(1), words = bitmask.size(1), count = logits.size(0);
  const int32_t* index = rows.contiguous().data_ptr<int32_t>();
  for (int64_t i = 0; i < rows.size(0); ++i)
    if (index[i] < 0 || index[i] >= count) detail::fail(kOp, "row index ", index[i], " outside [0, ", count, ")");
  float* const first = logits.data_ptr<float>();
  const int64_t stride = logits.stride(0);
  const int32_t* const masks = bitmask.data_ptr<int32_t>();
  constexpr float kForbidden = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < rows.size(0); ++i) {
    float* out = first + index[i] * stride;
    const int32_t* mask = masks + i * words;
    // Word by word: a word that allows all 32 ids (inside a string, most do) or none (between
    // tokens of structure, most do) costs no bit tests.
    for (int64_t w = 0, base = 0; base < vocab; ++w, base += 32) {
      const auto word = static_cast<uint32_t>(mask[w]);
      const int64_t ids = std::min<int64_t>(32, vocab - base);
      if (word == 0xffffffffu) continue;
      if (word == 0) {
        std::fill(out + base, out + base + ids, kForbidden);
        continue;
      }
      for (int64_t b = 0; b < ids; ++b)  // branch-free: the compiler makes it a vector blend
        out[base + b] = ((word >> b) & 1u) != 0 ? out[base + b] : kForbidden;
    }
  }
}

}  // namespace

void apply_token_bitmask(at::Tensor& logits, const at::Tensor& bitmask, const at::Tensor& rows) {
  check_args(logits, bitmask, rows);
  if (bitmask.size(0) == 0 || logits.size(1) == 0) return;
  if (logits.is_cuda()) {
#ifdef QWENVL_WITH_CUDA
    cuda::apply_token_bitmask(logits, bitmask, rows);
    return;
#else
    detail::fail_no_cuda(kOp);
#endif
  }
  apply_on_host(logits, bitmask, rows);
}

}  // namespace qwenvl::kernels
