// Hopper's asynchronous copy machinery (sm_90), device side: the tensor memory accelerator (TMA)
// loads a box of a tensor described by a tensor map (kernels/tensor_map.h) into shared memory and
// reports the bytes to an mbarrier; threads wait on the mbarrier's phase. With it one thread can feed
// a CTA's tensor-core warps, which then need no CTA-wide barrier per tile. Named barriers let
// groups of warps order their work against each other without stopping the rest of the CTA.
// PTX ISA: "Parallel Synchronization and Communication Instructions: mbarrier", "cp.async.bulk.tensor",
// "bar.sync / bar.arrive".
#pragma once

#include <cuda.h>

#include <cstdint>

namespace qwenvl::kernels::tma {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// An mbarrier in shared memory completes a phase once `count` arrivals and every expected byte have
// come in; phases alternate parity 0, 1, 0, ...
__device__ __forceinline__ void init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_address(bar)), "r"(count) : "memory");
}
// Makes initialised mbarriers visible to the async proxy (TMA) and the other threads; follow it with
// a CTA-wide barrier before any use.
__device__ __forceinline__ void fence_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

// One arrival that also announces `bytes` still to come from TMA loads completing on this barrier.
__device__ __forceinline__ void arrive_expect_bytes(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_address(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_address(bar)) : "memory");
}
// Returns once the phase of the given parity has completed.
__device__ __forceinline__ void wait(uint64_t* bar, uint32_t parity) {
  const uint32_t address = smem_address(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(address), "r"(parity)
        : "memory");
  } while (!done);
}

// Box of a 3-D tensor map at element coordinates (c0 innermost) into shared memory; the bytes are
// reported to `bar`. Coordinates past the tensor's extent read zeros.
__device__ __forceinline__ void load_3d(void* smem, const CUtensorMap* map, int c0, int c1, int c2, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          smem_address(smem)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_address(bar))
      : "memory");
}

// Named barriers 1..15 (0 is __syncthreads): `threads` is the total that meets there, those that
// wait (sync) and those that only signal (arrive); multiples of a warp.
__device__ __forceinline__ void named_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace qwenvl::kernels::tma
