// One instantiation of the flash attention kernels (own file: parallel builds, small recompiles):
// contiguous K/V take the Hopper (wgmma, TMA) kernel; K/V read through a block table, and calls
// without a single key (no rows for a tensor map), the portable one.
#include "kernels/flash_attention_hopper.cuh"
#include "kernels/flash_attention_kernel.cuh"

namespace qwenvl::kernels::flash {

template <>
void run_flash_fwd<Dtype::kBf16, 80>(const Params& p, cudaStream_t stream) {
  if (flash_hopper::takes(p)) return flash_hopper::launch_flash_fwd_hopper<__nv_bfloat16, 80>(p, stream);
  launch_flash_fwd<__nv_bfloat16, 80>(p, stream);
}

}  // namespace qwenvl::kernels::flash
