// One instantiation of the flash attention kernel (own file: parallel builds, small recompiles).
#include "kernels/flash_attention_kernel.cuh"

namespace qwenvl::kernels::flash {

template <>
void run_flash_fwd<Dtype::kFp16, 128>(const Params& p, cudaStream_t stream) {
  launch_flash_fwd<__half, 128>(p, stream);
}

}  // namespace qwenvl::kernels::flash
