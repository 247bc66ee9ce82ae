// Several linear projections of one input (q, k and v; gate and up), as one GEMM where that is
// free. On a CUDA device the weights are copied there anyway, so they are concatenated into one
// matrix (the same products, as rows of one weight) and run as one launch; on the CPU they stay
// views of the file's mapping, one matrix each, since concatenating them would copy every weight.
// Either way the parts come back in order, each [rows, n_i] with its last dimension contiguous.
// On a CUDA device each part may be padded with zero rows to a multiple of `row_multiple` (its
// output then has zero columns past n_i): bf16 outputs 8 elements wide keep every row 16-byte
// aligned, for the vectorised elementwise kernels and cuBLAS's aligned GEMM kernels.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "model/weights.h"

namespace qwenvl::nn {

class FusedProjection {
 public:
  FusedProjection() = default;
  // weight_names: [n_i, in] each; bias_names: one per weight, or empty when the projections have none.
  FusedProjection(const model::Weights& weights, const std::vector<std::string>& weight_names,
                  const std::vector<std::string>& bias_names, at::ScalarType dtype, at::Device device,
                  int64_t row_multiple = 1);

  // x [rows, in] -> one tensor [rows, n_i] per projection, in the order named.
  std::vector<at::Tensor> operator()(const at::Tensor& x) const;

 private:
  std::vector<at::Tensor> weights_, biases_;  // one matrix when fused, else one per projection
  std::vector<int64_t> sizes_;                // n_i of each projection (padded where asked)
};

}  // namespace qwenvl::nn
