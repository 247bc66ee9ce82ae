#include "nn/rotary.h"

#include <numeric>
#include <string>

#include "qwenvl/error.h"

namespace qwenvl::nn {

namespace {

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

at::Tensor rope_inv_freq(double theta, int64_t dim) {
  // transformers: 1.0 / (base ** (arange(0, dim, 2, float) / dim)), i.e. pow then reciprocal.
  auto exponents = at::arange(0, dim, 2, at::kFloat) / static_cast<double>(dim);
  return at::reciprocal(at::pow(theta, exponents));
}

CosSin vision_rotary(const at::Tensor& hw_positions, int64_t head_dim, double theta) {
  auto inv_freq = rope_inv_freq(theta, head_dim / 2);                    // [d/4]
  auto freqs = hw_positions.to(at::kFloat).unsqueeze(-1) * inv_freq;   // [N, 2, d/4]
  auto hw = at::cat({freqs.select(1, 0), freqs.select(1, 1)}, -1);     // [N, d/2]
  auto angles = at::cat({hw, hw}, -1);                                 // [N, d]
  return {angles.cos(), angles.sin()};
}

CosSin mrope_cos_sin(const at::Tensor& positions, int64_t head_dim, double theta,
                     const std::vector<int64_t>& mrope_section, at::ScalarType dtype) {
  const int64_t half = head_dim / 2;
  if (std::accumulate(mrope_section.begin(), mrope_section.end(), int64_t{0}) != half || mrope_section.size() != 3)
    throw Error("text config: mrope_section must have 3 entries summing to head_dim / 2 = " + std::to_string(half));
  auto inv_freq = rope_inv_freq(theta, head_dim);                                    // [d/2]
  auto freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;                  // [3, T, d/2]
  std::vector<at::Tensor> chunks;
  int64_t start = 0;
  for (size_t axis = 0; axis < 3; ++axis) {
    chunks.push_back(freqs[static_cast<int64_t>(axis)].narrow(-1, start, mrope_section[axis]));
    start += mrope_section[axis];
  }
  auto half_angles = at::cat(chunks, -1);                                            // [T, d/2]
  auto angles = at::cat({half_angles, half_angles}, -1);
  return {angles.cos().to(dtype), angles.sin().to(dtype)};
}

at::Tensor apply_rotary_vision(const at::Tensor& x, const CosSin& cs) {
  auto xf = x.to(at::kFloat);
  auto cos = cs.cos.unsqueeze(-2).to(at::kFloat), sin = cs.sin.unsqueeze(-2).to(at::kFloat);
  return (xf * cos + rotate_half(xf) * sin).to(x.scalar_type());
}

at::Tensor apply_rotary_text(const at::Tensor& x, const CosSin& cs) {
  auto cos = cs.cos.unsqueeze(-2), sin = cs.sin.unsqueeze(-2);
  return x * cos + rotate_half(x) * sin;
}

}  // namespace qwenvl::nn
