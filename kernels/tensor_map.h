// Host side of TMA loads (kernels/tma.cuh): the tensor map of a [rows, heads, dim] tensor of 16-bit
// elements, read in boxes of `box_rows` rows of one head and `box_cols` columns. The driver entry
// point is looked up through the runtime, so nothing links against libcuda.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/error.h"

namespace qwenvl::kernels::tma {

enum class Swizzle { k32B, k128B };

inline CUtensorMap rows_heads_dim_map(const void* base, bool bf16, int64_t rows, int64_t heads, int64_t dim,
                                      int64_t row_stride, int64_t head_stride, int box_rows, int box_cols,
                                      Swizzle swizzle) {
  using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                              const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                              CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  static const Encode encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found);
    if (e != cudaSuccess || found != cudaDriverEntryPointSuccess || fn == nullptr)
      throw Error("flash_attention: the CUDA driver has no cuTensorMapEncodeTiled (TMA needs CUDA 12 and sm_90)");
    return reinterpret_cast<Encode>(fn);
  }();
  CUtensorMap map{};
  const cuuint64_t dims[3] = {cuuint64_t(dim), cuuint64_t(heads), cuuint64_t(rows)};
  const cuuint64_t strides[2] = {cuuint64_t(head_stride) * 2, cuuint64_t(row_stride) * 2};  // bytes
  const cuuint32_t box[3] = {cuuint32_t(box_cols), 1, cuuint32_t(box_rows)};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult r = encode(&map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 3,
                            const_cast<void*>(base), dims, strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            swizzle == Swizzle::k128B ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_32B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw Error("flash_attention: cannot describe a [" + std::to_string(rows) + ", " + std::to_string(heads) + ", " +
                std::to_string(dim) + "] tensor with row stride " + std::to_string(row_stride) + " and head stride " +
                std::to_string(head_stride) + " for TMA (CUresult " + std::to_string(int(r)) + ")");
  return map;
}

}  // namespace qwenvl::kernels::tma
