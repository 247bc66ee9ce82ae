# Writes kernels/wgmma.cuh: the Hopper warpgroup MMA (wgmma) wrappers (long operand lists). The output
# is checked in; run again after changing the shapes or types: python3 scripts/gen_wgmma.py
shapes = [80, 128]
types = [("__nv_bfloat16", "bf16"), ("__half", "f16")]
out = []
out.append('''// Hopper warpgroup matrix multiply-accumulate (wgmma, sm_90a) for the flash attention kernel:
// shared-memory matrix descriptors and the m64nNk16 instructions it issues, with f32 accumulators.
// A warpgroup is 4 consecutive warps (128 threads); each wgmma is issued by all of them.
// Accumulator layout (per thread, N/2 floats): for n8 block j, d[4j + 0, 1] are row 16·warp + lane/4,
// columns 8j + 2·(lane%4) + {0, 1}; d[4j + 2, 3] the same columns 8 rows further down: mma.sync's
// m16n8 C fragment repeated along N. A from registers has mma.sync m16n8k16's A fragment layout.
// PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate" and its matrix descriptor format.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace qwenvl::kernels::wgmma {

// Shared-memory layouts wgmma reads (the descriptor's swizzle mode): 16-byte chunks XOR-swizzled
// within rows of 128, 64 or 32 bytes.
enum class Swizzle : uint64_t { k128B = 1, k64B = 2, k32B = 3 };

// Matrix descriptor: start address, leading- and stride-dimension byte offsets (all in 16-byte
// units), swizzle mode in bits 62-63. Base offset 0: every swizzle pattern starts 1024-byte aligned.
__device__ __forceinline__ uint64_t descriptor(const void* smem, uint32_t leading_bytes, uint32_t stride_bytes,
                                               Swizzle swizzle) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  return uint64_t((address & 0x3FFFF) >> 4) | (uint64_t((leading_bytes >> 4) & 0x3FFF) << 16) |
         (uint64_t((stride_bytes >> 4) & 0x3FFF) << 32) | (static_cast<uint64_t>(swizzle) << 62);
}

// Orders this thread's register accesses before the wgmma that follow (accumulators, A fragments).
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory"); }
__device__ __forceinline__ void commit_group() { asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\\n" ::"n"(N) : "memory");
}
// Makes this thread's ordinary shared-memory writes (cp.async included) visible to wgmma's reads.
__device__ __forceinline__ void fence_shared_for_async_proxy() {
  asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");
}
// Keeps the compiler from moving accumulator reads or writes across an in-flight wgmma.
template <int N>
__device__ __forceinline__ void pin(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// D (64 x N) = A Bᵀ + (accumulate ? D : 0), A (64 x 16) and B (N x 16) both K-major in shared memory.
template <int N, typename E>
__device__ void mma_ss(float (&d)[N / 2], uint64_t a, uint64_t b, int accumulate);
// D (64 x N) = A B + (accumulate ? D : 0), A (64 x 16) in registers, B (16 x N) N-major in shared memory.
template <int N, typename E>
__device__ void mma_rs_nmajor(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b, int accumulate);
''')
for n in shapes:
    for ctype, ptype in types:
        nd = n // 2
        dl = ", ".join(f"%{i}" for i in range(nd))
        douts = ", ".join(f'"+f"(d[{i}])' for i in range(nd))
        # SS
        out.append(f'''
template <>
__device__ __forceinline__ void mma_ss<{n}, {ctype}>(float (&d)[{nd}], uint64_t a, uint64_t b, int accumulate) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nd+2}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ptype}.{ptype} "
      "{{{dl}}}, %{nd}, %{nd+1}, p, 1, 1, 0, 0;\\n}}\\n"
      : {douts}
      : "l"(a), "l"(b), "r"(accumulate));
}}
''')
        out.append(f'''
template <>
__device__ __forceinline__ void mma_rs_nmajor<{n}, {ctype}>(float (&d)[{nd}], const uint32_t (&a)[4], uint64_t b,
                                                         int accumulate) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{nd+5}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ptype}.{ptype} "
      "{{{dl}}}, {{%{nd}, %{nd+1}, %{nd+2}, %{nd+3}}}, %{nd+4}, p, 1, 1, 1;\\n}}\\n"
      : {douts}
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}}
''')
out.append("\n}  // namespace qwenvl::kernels::wgmma\n")
open(__import__("pathlib").Path(__file__).resolve().parent.parent / "kernels" / "wgmma.cuh", "w").write("".join(out))
