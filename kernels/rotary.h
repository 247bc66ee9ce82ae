// Rotary position embeddings in the neox (rotate-half) layout, rotating queries and keys together.
// q [tokens, q_heads, d] and k [tokens, k_heads, d] may be strided views (of a fused projection, say)
// as long as their last dimension is contiguous; k may be undefined (q alone). Frequencies are
// inv_freq = 1 / theta^(arange(0, n, 2) / n) in fp32, computed with libtorch's CPU ops so that every
// device sees the same bits; angles are fp32(position) * inv_freq in fp32.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace qwenvl::kernels {

// Multi-axis rotary (M-RoPE; one section is plain RoPE). positions int64 [axes, tokens]; sections
// (one count per axis) sum to d / 2 and split the d / 2 frequencies in order: frequency j takes its
// angle from the axis whose section holds j. cos/sin are rounded to q's dtype, then
// x * cos + rotate_half(x) * sin is computed in q's dtype (each product and the sum rounded).
void multi_axis_rotary_(at::Tensor& q, at::Tensor& k, const at::Tensor& positions, double theta,
                        const std::vector<int64_t>& sections);
// Out of place: returns new contiguous tensors.
std::pair<at::Tensor, at::Tensor> multi_axis_rotary(const at::Tensor& q, const at::Tensor& k,
                                                    const at::Tensor& positions, double theta,
                                                    const std::vector<int64_t>& sections);
// multi_axis_rotary_(q, k, ...) then write_kv_cache(k, v, k_cache, v_cache, slot_mapping)
// (attention.h), bit for bit; on CUDA one kernel launch does both (a launch fewer per layer).
// Counted as one call of each op (dispatch_counts.h).
void multi_axis_rotary_and_write_kv_(at::Tensor& q, at::Tensor& k, const at::Tensor& v, const at::Tensor& positions,
                                     double theta, const std::vector<int64_t>& sections, at::Tensor& k_cache,
                                     at::Tensor& v_cache, const at::Tensor& slot_mapping);

// 2-D rotary. positions int64 [tokens, 2] (row, column); inv_freq over n = d / 2; dims [0, d/4)
// rotate by row * inv_freq, [d/4, d/2) by column * inv_freq, and the second half repeats the
// first. x is upcast to fp32, rotated with fp32 cos/sin, and cast back.
void rotary_2d_(at::Tensor& q, at::Tensor& k, const at::Tensor& positions, double theta);
std::pair<at::Tensor, at::Tensor> rotary_2d(const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& positions, double theta);

// 1 / theta^(arange(0, n, 2) / n) in fp32 (on the CPU: pow, then reciprocal), [n / 2].
at::Tensor rotary_inv_freq(double theta, int64_t n);

}  // namespace qwenvl::kernels
