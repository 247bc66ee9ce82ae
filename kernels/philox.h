// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011) shared by the CPU and CUDA
// sampling paths, so that both draw the same numbers for one (seed, step, vocabulary index).
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define QWENVL_HD __host__ __device__ __forceinline__
#else
#define QWENVL_HD inline
#endif

namespace qwenvl::kernels::philox {

struct U4 {
  uint32_t x[4];
};

QWENVL_HD uint32_t mulhi(uint32_t a, uint32_t b) { return static_cast<uint32_t>((uint64_t(a) * b) >> 32); }

// Four 32-bit words for counter (c0..c3) under key (k0, k1).
QWENVL_HD U4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = mulhi(kM0, c0), lo0 = kM0 * c0;
    const uint32_t hi1 = mulhi(kM1, c2), lo1 = kM1 * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

// An Exp(1) variate for vocabulary entry `index` of the draw (seed, step): the exponential race
// argmax_i p_i / E_i picks i with probability p_i / sum(p). The uniform is (word + 0.5) / 2^32, in
// (0, 1); E = -log1p(-u) keeps its precision near 0, where the race is decided.
QWENVL_HD float exponential(uint64_t seed, uint64_t step, uint64_t index) {
  const uint64_t group = index >> 2;
  const U4 r = philox4x32_10(static_cast<uint32_t>(group), static_cast<uint32_t>(group >> 32),
                             static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32),
                             static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const double u = (double(r.x[index & 3]) + 0.5) * 0x1p-32;
  return static_cast<float>(-log1p(-u));
}

}  // namespace qwenvl::kernels::philox
