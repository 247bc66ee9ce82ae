// Rotary position embeddings of both towers, computed as transformers 5.17 computes them (spec
// §3.2, §4.2): angles in fp32 from fp32 positions; the vision rotation runs in fp32, the language
// model's in the activation dtype.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace qwenvl::nn {

struct CosSin {
  at::Tensor cos;  // [tokens, head_dim]
  at::Tensor sin;
};

// 1 / theta^(arange(0, dim, 2) / dim) in fp32, with the reference's op order.
at::Tensor rope_inv_freq(double theta, int64_t dim);

// Vision 2D rotary: hw_positions int64 [N, 2] -> cos/sin fp32 [N, head_dim]; dims [0, d/4) take
// h angles, [d/4, d/2) w angles, and the second half repeats the first.
CosSin vision_rotary(const at::Tensor& hw_positions, int64_t head_dim, double theta);

// M-RoPE: positions int64 [3, T] (t, h, w) -> cos/sin [T, head_dim] in `dtype`; frequency j takes
// its angle from axis a where j falls in the a-th chunk of mrope_section (sums to head_dim / 2).
CosSin mrope_cos_sin(const at::Tensor& positions, int64_t head_dim, double theta,
                     const std::vector<int64_t>& mrope_section, at::ScalarType dtype);

// x [T, heads, head_dim]: x * cos + rotate_half(x) * sin, cos/sin broadcast over heads.
// The vision variant upcasts x to fp32 and casts the result back; the text variant computes in
// x's dtype (cos/sin already in it).
at::Tensor apply_rotary_vision(const at::Tensor& x, const CosSin& cs);
at::Tensor apply_rotary_text(const at::Tensor& x, const CosSin& cs);

}  // namespace qwenvl::nn
