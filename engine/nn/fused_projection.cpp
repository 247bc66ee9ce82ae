#include "nn/fused_projection.h"

#include "kernels/linear.h"
#include "qwenvl/error.h"

namespace qwenvl::nn {

FusedProjection::FusedProjection(const model::Weights& weights, const std::vector<std::string>& weight_names,
                                 const std::vector<std::string>& bias_names, at::ScalarType dtype,
                                 at::Device device, int64_t row_multiple) {
  if (!bias_names.empty() && bias_names.size() != weight_names.size())
    throw Error("fused projection: " + std::to_string(bias_names.size()) + " biases for " +
                std::to_string(weight_names.size()) + " weights");
  auto gather = [&](const std::vector<std::string>& names) {
    std::vector<at::Tensor> parts;
    for (const auto& n : names) parts.push_back(weights.get(n));
    return parts;
  };
  std::vector<at::Tensor> w = gather(weight_names), b = gather(bias_names);
  for (const auto& t : w) sizes_.push_back(t.size(0));
  if (device.is_cuda()) {
    if (row_multiple > 1) {
      for (size_t i = 0; i < w.size(); ++i) {
        const int64_t padded = (sizes_[i] + row_multiple - 1) / row_multiple * row_multiple;
        if (padded == sizes_[i]) continue;
        w[i] = at::constant_pad_nd(w[i], {0, 0, 0, padded - sizes_[i]});
        if (!b.empty()) b[i] = at::constant_pad_nd(b[i], {0, padded - sizes_[i]});
        sizes_[i] = padded;
      }
    }
    // Concatenated on the host before the one copy to the device.
    weights_.push_back(at::cat(w).to(device, dtype));
    if (!b.empty()) biases_.push_back(at::cat(b).to(device, dtype));
    return;
  }
  // On the CPU .to() keeps a tensor already in dtype: the mapped view itself.
  for (const auto& t : w) weights_.push_back(t.to(device, dtype));
  for (const auto& t : b) biases_.push_back(t.to(device, dtype));
}

std::vector<at::Tensor> FusedProjection::operator()(const at::Tensor& x) const {
  std::vector<at::Tensor> out;
  auto bias = [&](size_t i) { return biases_.empty() ? at::Tensor() : biases_[i]; };
  if (weights_.size() == sizes_.size()) {
    for (size_t i = 0; i < weights_.size(); ++i) out.push_back(kernels::linear(x, weights_[i], bias(i)));
    return out;
  }
  const at::Tensor y = kernels::linear(x, weights_.front(), bias(0));
  int64_t start = 0;
  for (int64_t n : sizes_) {
    out.push_back(y.narrow(-1, start, n));
    start += n;
  }
  return out;
}

}  // namespace qwenvl::nn
