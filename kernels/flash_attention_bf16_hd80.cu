// One instantiation of the flash attention kernel (own file: parallel builds, small recompiles).
#include "kernels/flash_attention_kernel.cuh"

namespace qwenvl::kernels::flash {

template <>
void run_flash_fwd<Dtype::kBf16, 80>(const Params& p, cudaStream_t stream) {
  launch_flash_fwd<__nv_bfloat16, 80>(p, stream);
}

}  // namespace qwenvl::kernels::flash
