// The kernel harness (llama.cpp's test-backend-ops, FlashAttention's tolerances): every op of
// kernels/ on fresh random inputs, outputs poisoned with NaN before each run, compared with a
// float64 reference computed with libtorch ops from the same rounded inputs. The tolerance is
// earned: our relative error ‖out − ref‖/‖ref‖ may be at most twice libtorch's own error for the
// same op on the same low-precision inputs (plus 1e-6 for fp32, where libtorch's error is ~1e-7).
// Each op has two tests: its CPU reference path (runs everywhere, CI included) and its CUDA kernel
// (skipped, with a message, where no GPU is present). Adding a case is adding one line to a table.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/attention.h"
#include "kernels/dispatch_counts.h"
#include "kernels/error.h"
#include "kernels/frame_preparation.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary.h"
#include "kernels/sampling.h"
#include "kernels/silu_and_mul.h"
#include "kernels/token_bitmask.h"

namespace qk = qwenvl::kernels;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool cuda_present() { return at::hasCUDA(); }

// QWENVL_KERNEL_TESTS_SMALL=1 runs the CUDA kernels on the small (CPU) case tables: for
// compute-sanitizer, which slows every kernel, the float64 references included, many times over.
bool small_cases() {
  const char* v = std::getenv("QWENVL_KERNEL_TESTS_SMALL");
  return v != nullptr && std::string(v) == "1";
}

#define REQUIRE_CUDA()                                                                        \
  do {                                                                                        \
    if (!cuda_present()) {                                                                    \
      GTEST_SKIP() << "CUDA absent: no GPU visible (or libtorch without CUDA); the CUDA kernel " \
                      "cases were not run";                                                     \
    }                                                                                         \
  } while (0)

// Fresh inputs for every run; the seed is printed so that a failure can be replayed.
uint64_t fresh_seed() {
  static std::random_device rd;
  const uint64_t seed = (uint64_t(rd()) << 32) ^ rd();
  at::manual_seed(seed);
  return seed;
}

at::Tensor randn(at::IntArrayRef shape, at::ScalarType dtype, at::Device device) {
  return at::randn(shape, at::TensorOptions().dtype(at::kFloat)).to(device, dtype);
}

at::Tensor poisoned(at::IntArrayRef shape, at::ScalarType dtype, at::Device device) {
  return at::full(shape, kNaN, at::TensorOptions().dtype(dtype).device(device));
}

double rel_err(const at::Tensor& out, const at::Tensor& ref) {
  const at::Tensor r = ref.to(at::kDouble);
  return (out.to(at::kDouble) - r).norm().item<double>() / r.norm().item<double>();
}

// Our error against libtorch's own, printed as a table row for the report.
void expect_earned(const std::string& what, const at::Tensor& out, double ours, double libtorch,
                   at::ScalarType dtype) {
  const double floor = dtype == at::kFloat ? 1e-6 : 0.0;
  const long long unwritten = at::isnan(out).sum().item<int64_t>();
  std::printf("  %-58s ours %.3e  libtorch %.3e  ratio %.2f\n", what.c_str(), ours, libtorch,
              libtorch > 0 ? ours / libtorch : 0.0);
  EXPECT_EQ(unwritten, 0) << what << ": elements left unwritten (still NaN) or NaN produced";
  EXPECT_TRUE(std::isfinite(ours)) << what;
  EXPECT_LE(ours, 2.0 * libtorch + floor) << what;
}

const char* dtype_name(at::ScalarType t) {
  return t == at::kBFloat16 ? "bf16" : t == at::kHalf ? "fp16" : t == at::kFloat ? "fp32" : "?";
}

// `call` must throw kernels::Error whose message names the operation `op` and holds `words`.
void expect_fault(const std::string& op, const std::function<void()>& call, const std::string& words) {
  try {
    call();
    ADD_FAILURE() << op << ": expected a fault naming '" << words << "'";
  } catch (const qwenvl::kernels::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(op), std::string::npos) << what;
    EXPECT_NE(what.find(words), std::string::npos) << what;
  }
}

// ---------------------------------------------------------------------------------------------
// Attention references. q [Lq, H, D], k/v [Lk, Hkv, D]; causal is bottom-right aligned.

at::Tensor visible_mask(int64_t lq, int64_t lk, at::Device device) {
  return at::ones({lq, lk}, at::TensorOptions().dtype(at::kBool).device(device)).tril(lk - lq);
}

// float64 truth: GQA by repeating kv heads, the score matrix in full.
at::Tensor attention_f64(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                         bool causal) {
  const int64_t group = q.size(1) / k.size(1);
  const at::Tensor q64 = q.to(at::kDouble).permute({1, 0, 2});
  const at::Tensor k64 = k.to(at::kDouble).permute({1, 0, 2}).repeat_interleave(group, 0);
  const at::Tensor v64 = v.to(at::kDouble).permute({1, 0, 2}).repeat_interleave(group, 0);
  at::Tensor s = at::matmul(q64, k64.transpose(1, 2)) * scale;
  if (causal) s.masked_fill_(visible_mask(q.size(0), k.size(0), q.device()).logical_not(), -INFINITY);
  return at::matmul(at::softmax(s, -1), v64).permute({1, 0, 2});
}

// libtorch's own low-precision attention on the same inputs: scaled_dot_product_attention.
at::Tensor attention_libtorch(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              double scale, bool causal) {
  const int64_t group = q.size(1) / k.size(1);
  const at::Tensor qb = q.permute({1, 0, 2}).unsqueeze(0);
  const at::Tensor kb = k.permute({1, 0, 2}).repeat_interleave(group, 0).unsqueeze(0);
  const at::Tensor vb = v.permute({1, 0, 2}).repeat_interleave(group, 0).unsqueeze(0);
  std::optional<at::Tensor> mask;
  bool is_causal = false;
  if (causal && q.size(0) == k.size(0)) is_causal = true;
  else if (causal) mask = visible_mask(q.size(0), k.size(0), q.device());
  return at::scaled_dot_product_attention(qb, kb, vb, mask, 0.0, is_causal, scale).squeeze(0).permute({1, 0, 2});
}

at::Tensor cu_seqlens(const std::vector<int64_t>& lens, at::Device device) {
  std::vector<int32_t> cu{0};
  for (int64_t l : lens) cu.push_back(cu.back() + static_cast<int32_t>(l));
  return at::tensor(cu, at::TensorOptions().dtype(at::kInt)).to(device);
}

// ---------------------------------------------------------------------------------------------
// flash_attention_varlen

struct FlashCase {
  std::vector<int64_t> lens_q, lens_k;
  int64_t heads, kv_heads, head_dim;
  bool causal;
  bool fused_qkv;  // q, k, v as strided views of one [tokens, H + 2 Hkv, D] projection
};

void run_flash(const FlashCase& c, at::ScalarType dtype, at::Device device) {
  const uint64_t seed = fresh_seed();
  int64_t tq = 0, tk = 0, max_q = 0, max_k = 0;
  for (size_t b = 0; b < c.lens_q.size(); ++b) {
    tq += c.lens_q[b];
    tk += c.lens_k[b];
    max_q = std::max(max_q, c.lens_q[b]);
    max_k = std::max(max_k, c.lens_k[b]);
  }
  at::Tensor q, k, v;
  if (c.fused_qkv) {  // self-attention: one projection of the same tokens
    const at::Tensor qkv = randn({tq, c.heads + 2 * c.kv_heads, c.head_dim}, dtype, device);
    q = qkv.slice(1, 0, c.heads);
    k = qkv.slice(1, c.heads, c.heads + c.kv_heads);
    v = qkv.slice(1, c.heads + c.kv_heads, c.heads + 2 * c.kv_heads);
  } else {
    q = randn({tq, c.heads, c.head_dim}, dtype, device);
    k = randn({tk, c.kv_heads, c.head_dim}, dtype, device);
    v = randn({tk, c.kv_heads, c.head_dim}, dtype, device);
  }
  const double scale = 1.0 / std::sqrt(double(c.head_dim));
  at::Tensor out = poisoned(q.sizes(), dtype, device);
  qk::flash_attention_varlen_out(q, k, v, cu_seqlens(c.lens_q, device), cu_seqlens(c.lens_k, device),
                                 max_q, max_k, scale, c.causal, out);
  at::Tensor ref = at::empty(q.sizes(), q.options().dtype(at::kDouble));
  at::Tensor lib = at::empty(q.sizes(), q.options());
  for (size_t b = 0, oq = 0, ok = 0; b < c.lens_q.size(); oq += c.lens_q[b], ok += c.lens_k[b], ++b) {
    const at::Tensor qs = q.slice(0, oq, oq + c.lens_q[b]);
    const at::Tensor ks = k.slice(0, ok, ok + c.lens_k[b]), vs = v.slice(0, ok, ok + c.lens_k[b]);
    ref.slice(0, oq, oq + c.lens_q[b]).copy_(attention_f64(qs, ks, vs, scale, c.causal));
    lib.slice(0, oq, oq + c.lens_q[b]).copy_(attention_libtorch(qs, ks, vs, scale, c.causal));
  }
  std::string what = "flash " + std::string(dtype_name(dtype)) + " hd" + std::to_string(c.head_dim) + " " +
                     std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + (c.causal ? " causal" : "") +
                     (c.fused_qkv ? " qkv-view" : "") + " segs " + std::to_string(c.lens_q.size()) + " max " +
                     std::to_string(max_q) + "x" + std::to_string(max_k);
  SCOPED_TRACE(what + " seed " + std::to_string(seed));
  expect_earned(what, out, rel_err(out, ref), rel_err(lib, ref), dtype);
}

// CPU: sizes for a 2-core CI machine. CUDA: the odd and long lengths as well.
const std::vector<FlashCase> kFlashCpuCases = {
    {{1, 7, 64, 33}, {1, 7, 64, 33}, 16, 16, 80, false, true},
    {{7, 130}, {7, 130}, 28, 4, 128, true, false},
    {{5, 20}, {9, 90}, 16, 2, 128, true, false},
    {{17}, {40}, 4, 2, 80, false, false},
    {{300}, {300}, 16, 2, 128, true, false},  // 3 key tiles of the Hopper kernel: every stage in use
};
const std::vector<FlashCase> kFlashCudaCases = {
    {{1, 7, 64, 4097, 300}, {1, 7, 64, 4097, 300}, 16, 16, 80, false, true},
    {{1, 7, 1000, 65}, {1, 7, 1000, 65}, 28, 4, 128, true, false},
    {{4097}, {4097}, 16, 2, 128, true, true},
    {{3, 70, 129}, {10, 200, 129}, 16, 2, 128, true, false},
    {{33, 1}, {100, 7}, 16, 16, 80, false, false},
    {{256, 1024}, {256, 1024}, 16, 16, 80, true, false},
};

TEST(FlashAttentionVarlen, CpuReferenceWithinLibtorchError) {
  for (const auto& c : kFlashCpuCases)
    for (auto dtype : {at::kBFloat16, at::kFloat}) run_flash(c, dtype, at::kCPU);
}

TEST(FlashAttentionVarlen, CudaKernelWithinLibtorchError) {
  REQUIRE_CUDA();
  for (const auto& c : small_cases() ? kFlashCpuCases : kFlashCudaCases)
    for (auto dtype : {at::kBFloat16, at::kHalf}) run_flash(c, dtype, at::kCUDA);
}

// Segments without keys give zeros, as FlashAttention writes them; with no key in the whole call
// there are no K/V rows for the Hopper kernel's tensor maps, and the call must still answer.
void expect_keyless_segments_are_zero(at::Device device) {
  const at::ScalarType dtype = device.is_cuda() ? at::kBFloat16 : at::kFloat;
  for (const bool any_keys : {false, true}) {
    const std::vector<int64_t> lens_q = {3, 130}, lens_k = {0, any_keys ? 7 : 0};
    const int64_t tk = lens_k[0] + lens_k[1];
    const at::Tensor q = randn({133, 4, 80}, dtype, device);
    const at::Tensor k = randn({tk, 2, 80}, dtype, device), v = randn({tk, 2, 80}, dtype, device);
    at::Tensor out = poisoned(q.sizes(), dtype, device);
    qk::flash_attention_varlen_out(q, k, v, cu_seqlens(lens_q, device), cu_seqlens(lens_k, device), 130, 7, 0.1,
                                   false, out);
    SCOPED_TRACE(std::string(device.is_cuda() ? "cuda" : "cpu") + (any_keys ? ", second segment with keys" : ", no key"));
    EXPECT_TRUE(out.slice(0, 0, 3).eq(0).all().item<bool>());
    if (!any_keys) {
      EXPECT_TRUE(out.eq(0).all().item<bool>());
    } else {
      const at::Tensor ref = attention_f64(q.slice(0, 3), k, v, 0.1, false);
      EXPECT_LT(rel_err(out.slice(0, 3), ref), 2e-2);
    }
  }
}

// q, k, v (and out) as token-major views of head-major tensors: the answer is the one the same
// values give laid out contiguously.
void expect_head_major_views_as_contiguous(at::Device device) {
  const at::ScalarType dtype = device.is_cuda() ? at::kBFloat16 : at::kFloat;
  const std::vector<int64_t> lens = {5, 200};
  const auto view = [&](int64_t heads) { return randn({heads, 205, 80}, dtype, device).permute({1, 0, 2}); };
  const at::Tensor q = view(4), k = view(2), v = view(2);
  at::Tensor out = at::full({4, 205, 80}, kNaN, q.options()).permute({1, 0, 2});
  const at::Tensor cu = cu_seqlens(lens, device);
  qk::flash_attention_varlen_out(q, k, v, cu, cu, 200, 200, 0.1, true, out);
  const at::Tensor want = qk::flash_attention_varlen(q.contiguous(), k.contiguous(), v.contiguous(), cu, cu, 200, 200,
                                                     0.1, true);
  SCOPED_TRACE(device.is_cuda() ? "cuda" : "cpu");
  EXPECT_FALSE(at::isnan(out).any().item<bool>());
  EXPECT_TRUE(at::allclose(out, want, 0.0, device.is_cuda() ? 0.0 : 1e-6));
}

TEST(FlashAttentionVarlen, CpuHeadMajorViewsAnswerAsContiguous) { expect_head_major_views_as_contiguous(at::kCPU); }

TEST(FlashAttentionVarlen, CudaHeadMajorViewsAnswerAsContiguous) {
  REQUIRE_CUDA();
  expect_head_major_views_as_contiguous(at::kCUDA);
}

TEST(FlashAttentionVarlen, CpuKeylessSegmentsAreZero) { expect_keyless_segments_are_zero(at::kCPU); }

TEST(FlashAttentionVarlen, CudaKeylessSegmentsAreZero) {
  REQUIRE_CUDA();
  expect_keyless_segments_are_zero(at::kCUDA);
}

// ---------------------------------------------------------------------------------------------
// Paged KV cache: sequences scattered over shuffled blocks; every slot no sequence owns, and the
// block-table entries past each sequence, hold garbage that must never be read.

struct PagedCache {
  at::Tensor k_cache, v_cache, block_tables, seq_lens;
  std::vector<at::Tensor> k, v;  // dense [len, Hkv, D] per sequence
};

PagedCache make_paged(const std::vector<int64_t>& lens, int64_t kv_heads, int64_t head_dim,
                      int64_t block_size, at::ScalarType dtype, at::Device device) {
  PagedCache pc;
  int64_t blocks = 0, max_blocks = 0;
  for (int64_t l : lens) {
    blocks += (l + block_size - 1) / block_size;
    max_blocks = std::max(max_blocks, (l + block_size - 1) / block_size);
  }
  blocks += 3;  // blocks nobody owns
  pc.k_cache = poisoned({blocks, block_size, kv_heads, head_dim}, dtype, device);
  pc.v_cache = poisoned({blocks, block_size, kv_heads, head_dim}, dtype, device);
  const at::Tensor perm = at::randperm(blocks, at::TensorOptions().dtype(at::kLong));
  // Entries past a sequence's blocks: out-of-range garbage.
  at::Tensor tables = at::randint(1 << 20, 1 << 30, {int64_t(lens.size()), max_blocks + 1},
                                  at::TensorOptions().dtype(at::kInt));
  int64_t next = 0;
  for (size_t s = 0; s < lens.size(); ++s) {
    const int64_t nb = (lens[s] + block_size - 1) / block_size;
    const at::Tensor mine = perm.slice(0, next, next + nb);
    next += nb;
    tables[s].slice(0, 0, nb).copy_(mine);
    pc.k.push_back(randn({lens[s], kv_heads, head_dim}, dtype, device));
    pc.v.push_back(randn({lens[s], kv_heads, head_dim}, dtype, device));
    const at::Tensor t = at::arange(lens[s], at::TensorOptions().dtype(at::kLong));
    const at::Tensor slots = (mine.index_select(0, t.div(block_size, "floor")) * block_size + t.remainder(block_size)).to(device);
    pc.k_cache.view({-1, kv_heads, head_dim}).index_copy_(0, slots, pc.k[s]);
    pc.v_cache.view({-1, kv_heads, head_dim}).index_copy_(0, slots, pc.v[s]);
  }
  pc.block_tables = tables.to(device);
  pc.seq_lens = at::tensor(std::vector<int32_t>(lens.begin(), lens.end()), at::TensorOptions().dtype(at::kInt)).to(device);
  return pc;
}

// ---------------------------------------------------------------------------------------------
// paged_decode_attention

struct DecodeCase {
  std::vector<int64_t> lens;  // 0: a padding row (its output is zeros, as the reference's)
  int64_t heads, kv_heads, head_dim, block_size;
  int64_t capacity = 0;  // max_seq_len passed (the graph path passes the cache capacity); 0: the longest length
};

void run_decode(const DecodeCase& c, at::ScalarType dtype, at::Device device) {
  const uint64_t seed = fresh_seed();
  const PagedCache pc = make_paged(c.lens, c.kv_heads, c.head_dim, c.block_size, dtype, device);
  const int64_t n = c.lens.size();
  int64_t max_len = 0;
  for (int64_t l : c.lens) max_len = std::max(max_len, l);
  const int64_t max_seq_len = std::max(max_len, c.capacity);
  const at::Tensor q = randn({n, c.heads, c.head_dim}, dtype, device);
  const double scale = 1.0 / std::sqrt(double(c.head_dim));
  at::Tensor out = poisoned(q.sizes(), dtype, device);
  qk::paged_decode_attention_out(q, pc.k_cache, pc.v_cache, pc.block_tables, pc.seq_lens, max_seq_len, scale, out);
  at::Tensor ref = at::zeros(q.sizes(), q.options().dtype(at::kDouble));
  at::Tensor lib = at::zeros(q.sizes(), q.options());
  for (int64_t s = 0; s < n; ++s) {
    if (c.lens[s] == 0) {  // attention over no keys: the reference writes zeros
      EXPECT_EQ(out[s].abs().max().item<double>(), 0.0) << "padding row " << s << " (length 0) is not zero";
      continue;
    }
    ref.slice(0, s, s + 1).copy_(attention_f64(q.slice(0, s, s + 1), pc.k[s], pc.v[s], scale, false));
    lib.slice(0, s, s + 1).copy_(attention_libtorch(q.slice(0, s, s + 1), pc.k[s], pc.v[s], scale, false));
  }
  std::string what = "decode " + std::string(dtype_name(dtype)) + " hd" + std::to_string(c.head_dim) + " " +
                     std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " bs" +
                     std::to_string(c.block_size) + " seqs " + std::to_string(n) + " max " + std::to_string(max_len) +
                     (c.capacity > max_len ? " cap " + std::to_string(c.capacity) : "");
  SCOPED_TRACE(what + " seed " + std::to_string(seed));
  expect_earned(what, out, rel_err(out, ref), rel_err(lib, ref), dtype);
}

// The CUDA kernel splits by max_seq_len (host) and exits splits past each device length: cases with a
// capacity far above the lengths, padding rows (length 0), length 1, lengths one past a split or a
// tile, and 9..16 query heads per kv head (a second tile of heads). The CPU table runs under
// compute-sanitizer too (QWENVL_KERNEL_TESTS_SMALL).
const std::vector<DecodeCase> kDecodeCpuCases = {
    {{1, 7, 100}, 28, 4, 128, 16},
    {{33, 64}, 16, 2, 128, 64},
    {{5, 17}, 16, 16, 80, 16},
    {{0, 1, 70, 0}, 28, 4, 128, 16, 1024},
    {{5, 40}, 24, 2, 80, 16, 300},
};
const std::vector<DecodeCase> kDecodeCudaCases = {
    {{1, 7, 512, 513, 4097, 100}, 28, 4, 128, 64},
    {{1, 7, 1000, 4097}, 16, 2, 128, 16},
    {{1, 7, 2000}, 16, 16, 128, 64},
    {{7, 600}, 16, 16, 80, 32},
    {{0, 1, 300, 4097, 0, 65, 257}, 28, 4, 128, 64, 8192},
    {{1000}, 28, 4, 128, 64, 8192},
    {{333}, 28, 4, 128, 64},
    {{300, 17, 2049}, 24, 2, 128, 16, 4096},
    {{129, 1500}, 24, 2, 80, 32},
};

TEST(PagedDecodeAttention, CpuReferenceWithinLibtorchError) {
  for (const auto& c : kDecodeCpuCases)
    for (auto dtype : {at::kBFloat16, at::kFloat}) run_decode(c, dtype, at::kCPU);
}

TEST(PagedDecodeAttention, CudaKernelWithinLibtorchError) {
  REQUIRE_CUDA();
  for (const auto& c : small_cases() ? kDecodeCpuCases : kDecodeCudaCases)
    for (auto dtype : {at::kBFloat16, at::kHalf}) run_decode(c, dtype, at::kCUDA);
}

// ---------------------------------------------------------------------------------------------
// paged_prefill_attention: the last Lq tokens of each sequence, causal over the whole cache.

struct PrefillCase {
  std::vector<int64_t> lens_q, lens;
  int64_t heads, kv_heads, head_dim, block_size;
};

void run_prefill(const PrefillCase& c, at::ScalarType dtype, at::Device device) {
  const uint64_t seed = fresh_seed();
  const PagedCache pc = make_paged(c.lens, c.kv_heads, c.head_dim, c.block_size, dtype, device);
  int64_t tq = 0, max_q = 0;
  for (int64_t l : c.lens_q) {
    tq += l;
    max_q = std::max(max_q, l);
  }
  const at::Tensor q = randn({tq, c.heads, c.head_dim}, dtype, device);
  const double scale = 1.0 / std::sqrt(double(c.head_dim));
  at::Tensor out = poisoned(q.sizes(), dtype, device);
  qk::paged_prefill_attention_out(q, pc.k_cache, pc.v_cache, cu_seqlens(c.lens_q, device), pc.block_tables,
                                  pc.seq_lens, max_q, scale, out);
  at::Tensor ref = at::empty(q.sizes(), q.options().dtype(at::kDouble));
  at::Tensor lib = at::empty(q.sizes(), q.options());
  for (size_t s = 0, o = 0; s < c.lens.size(); o += c.lens_q[s], ++s) {
    const at::Tensor qs = q.slice(0, o, o + c.lens_q[s]);
    ref.slice(0, o, o + c.lens_q[s]).copy_(attention_f64(qs, pc.k[s], pc.v[s], scale, true));
    lib.slice(0, o, o + c.lens_q[s]).copy_(attention_libtorch(qs, pc.k[s], pc.v[s], scale, true));
  }
  std::string what = "prefill " + std::string(dtype_name(dtype)) + " hd" + std::to_string(c.head_dim) + " " +
                     std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " bs" +
                     std::to_string(c.block_size) + " seqs " + std::to_string(c.lens.size()) + " max_q " +
                     std::to_string(max_q);
  SCOPED_TRACE(what + " seed " + std::to_string(seed));
  expect_earned(what, out, rel_err(out, ref), rel_err(lib, ref), dtype);
}

const std::vector<PrefillCase> kPrefillCpuCases = {
    {{1, 7, 40}, {1, 20, 40}, 28, 4, 128, 16},
    {{16, 3}, {80, 3}, 16, 16, 80, 64},
};
const std::vector<PrefillCase> kPrefillCudaCases = {
    {{1, 7, 300, 64}, {1, 7, 4097, 200}, 28, 4, 128, 64},
    {{7, 129}, {7, 1000}, 16, 2, 128, 16},
    {{100, 1}, {100, 50}, 16, 16, 80, 32},
};

TEST(PagedPrefillAttention, CpuReferenceWithinLibtorchError) {
  for (const auto& c : kPrefillCpuCases)
    for (auto dtype : {at::kBFloat16, at::kFloat}) run_prefill(c, dtype, at::kCPU);
}

TEST(PagedPrefillAttention, CudaKernelWithinLibtorchError) {
  REQUIRE_CUDA();
  for (const auto& c : small_cases() ? kPrefillCpuCases : kPrefillCudaCases)
    for (auto dtype : {at::kBFloat16, at::kHalf}) run_prefill(c, dtype, at::kCUDA);
}

// ---------------------------------------------------------------------------------------------
// write_kv_cache: a copy, so exact. Owned slots get the rows, every other slot keeps its bytes.

struct WriteCase {
  int64_t tokens, kv_heads, head_dim, blocks, block_size;
  bool fused_qkv;
};

void run_write(const WriteCase& c, at::ScalarType dtype, at::Device device) {
  const uint64_t seed = fresh_seed();
  at::Tensor k, v;
  if (c.fused_qkv) {
    const at::Tensor qkv = randn({c.tokens, 3 * c.kv_heads, c.head_dim}, dtype, device);
    k = qkv.slice(1, c.kv_heads, 2 * c.kv_heads);
    v = qkv.slice(1, 2 * c.kv_heads, 3 * c.kv_heads);
  } else {
    k = randn({c.tokens, c.kv_heads, c.head_dim}, dtype, device);
    v = randn({c.tokens, c.kv_heads, c.head_dim}, dtype, device);
  }
  const int64_t slots = c.blocks * c.block_size;
  at::Tensor slot_mapping = at::randperm(slots, at::TensorOptions().dtype(at::kLong)).slice(0, 0, c.tokens).clone();
  slot_mapping.index_fill_(0, at::arange(0, c.tokens, 3, at::TensorOptions().dtype(at::kLong)), -1);  // padding
  at::Tensor k_cache = randn({c.blocks, c.block_size, c.kv_heads, c.head_dim}, dtype, device);
  at::Tensor v_cache = randn({c.blocks, c.block_size, c.kv_heads, c.head_dim}, dtype, device);
  at::Tensor k_expect = k_cache.clone().view({slots, c.kv_heads, c.head_dim});
  at::Tensor v_expect = v_cache.clone().view({slots, c.kv_heads, c.head_dim});
  for (int64_t t = 0; t < c.tokens; ++t) {
    const int64_t s = slot_mapping[t].item<int64_t>();
    if (s < 0) continue;
    k_expect[s].copy_(k[t]);
    v_expect[s].copy_(v[t]);
  }
  qk::write_kv_cache(k, v, k_cache, v_cache, slot_mapping.to(device));
  SCOPED_TRACE("write_kv_cache " + std::string(dtype_name(dtype)) + " tokens " + std::to_string(c.tokens) +
               " seed " + std::to_string(seed));
  EXPECT_TRUE(at::equal(k_cache.view({slots, c.kv_heads, c.head_dim}), k_expect));
  EXPECT_TRUE(at::equal(v_cache.view({slots, c.kv_heads, c.head_dim}), v_expect));
}

const std::vector<WriteCase> kWriteCases = {
    {1, 4, 128, 2, 16, false}, {7, 2, 128, 4, 16, true}, {300, 16, 80, 8, 64, false}, {4097, 4, 128, 80, 64, true},
};

TEST(WriteKvCache, CpuReferenceIsExact) {
  for (const auto& c : kWriteCases)
    for (auto dtype : {at::kBFloat16, at::kFloat}) run_write(c, dtype, at::kCPU);
}

TEST(WriteKvCache, CudaKernelIsExact) {
  REQUIRE_CUDA();
  for (const auto& c : kWriteCases)
    for (auto dtype : {at::kBFloat16, at::kHalf}) run_write(c, dtype, at::kCUDA);
}

// ---------------------------------------------------------------------------------------------
// rms_norm / fused_add_rms_norm. Truth: float64 rmsnorm of (x + residual) times the weight. The
// libtorch error: HF's own op sequence (Qwen2RMSNorm) on the same low-precision tensors. Beyond
// the error bound, our output must reproduce HF's rounding order: nearly every element bitwise.

struct NormCase {
  int64_t rows, hidden;
  bool fused;
};

at::Tensor hf_rms_norm(const at::Tensor& h, const at::Tensor& w, double eps) {
  const at::Tensor f = h.to(at::kFloat);
  return w * (f * at::rsqrt(f.pow(2).mean(-1, true) + eps)).to(h.scalar_type());
}

void run_norm(const NormCase& c, at::ScalarType dtype, at::Device device) {
  const uint64_t seed = fresh_seed();
  const double eps = 1e-6;
  const at::Tensor x = randn({c.rows, c.hidden}, dtype, device);
  const at::Tensor w = (randn({c.hidden}, at::kFloat, device) * 0.5 + 1.0).to(dtype);
  at::Tensor residual = randn({c.rows, c.hidden}, dtype, device);
  const at::Tensor h = c.fused ? (x + residual) : x;  // the model's add, rounded to its dtype
  at::Tensor out = poisoned(x.sizes(), dtype, device);
  if (c.fused)
    qk::fused_add_rms_norm_out(x, residual, w, eps, out);
  else
    qk::rms_norm_out(x, w, eps, out);
  const at::Tensor h64 = h.to(at::kDouble);
  const at::Tensor ref = h64 * at::rsqrt(h64.pow(2).mean(-1, true) + eps) * w.to(at::kDouble);
  const at::Tensor lib = hf_rms_norm(h, w, eps);
  std::string what = std::string(c.fused ? "fused_add_rms_norm " : "rms_norm ") + dtype_name(dtype) + " " +
                     std::to_string(c.rows) + "x" + std::to_string(c.hidden);
  SCOPED_TRACE(what + " seed " + std::to_string(seed));
  if (c.fused) {
    EXPECT_TRUE(at::equal(residual, h)) << "residual must become x + residual in the model dtype";
  }
  expect_earned(what, out, rel_err(out, ref), rel_err(lib, ref), dtype);
  // In 16-bit dtypes the order of roundings decides most last bits; fp32 differs only by ulps of
  // the fp32 rsqrt and sum order, which say nothing about the order.
  if (dtype == at::kFloat) return;
  const double same = at::eq(out, lib).to(at::kDouble).mean().item<double>();
  std::printf("  %-58s bitwise equal to HF's op sequence: %.4f\n", what.c_str(), same);
  EXPECT_GE(same, 0.99) << "HF's rounding order not reproduced";
}

const std::vector<NormCase> kNormCases = {
    {1, 1280, false}, {7, 2048, true}, {33, 3584, true}, {300, 1280, false}, {4097, 128, true},
    // batch-64 decode; idle lanes of grouped rows; 4 and 8 vectors per thread; hidden off the 16-byte vectors
    {64, 3584, true}, {9, 200, true}, {2, 16000, false}, {5, 1001, true},
};

TEST(RmsNorm, CpuReferenceWithinLibtorchError) {
  for (const auto& c : kNormCases)
    for (auto dtype : {at::kBFloat16, at::kFloat}) run_norm(c, dtype, at::kCPU);
}

TEST(RmsNorm, CudaKernelWithinLibtorchError) {
  REQUIRE_CUDA();
  for (const auto& c : kNormCases)
    for (auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) run_norm(c, dtype, at::kCUDA);
}

// ---------------------------------------------------------------------------------------------
// rotary: multi-axis (M-RoPE) and 2-D. Truth: the rotation in float64 by the fp32 angles (the
// inputs' own precision). The libtorch error: the reference's op sequence on the same device. Our
// output must also reproduce that sequence's bits (cos/sin rounding, product and sum rounding).

struct RotaryCase {
  int64_t tokens, q_heads, k_heads, d;
  std::vector<int64_t> sections;  // empty: 2-D rotary
  int64_t max_position;
  bool fused_qkv;  // q and k as strided views of one [tokens, q + 2k heads, d] projection
  bool in_place;
};

at::Tensor rotate_half_t(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// fp32 angles [tokens, d] as the reference builds them, on positions' device.
at::Tensor rotary_angles(const at::Tensor& positions, int64_t d, double theta, const std::vector<int64_t>& sections) {
  if (sections.empty()) {
    const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * qk::rotary_inv_freq(theta, d / 2).to(positions.device());
    const at::Tensor hw = at::cat({freqs.select(1, 0), freqs.select(1, 1)}, -1);
    return at::cat({hw, hw}, -1);
  }
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * qk::rotary_inv_freq(theta, d).to(positions.device());
  std::vector<at::Tensor> chunks;
  int64_t start = 0;
  for (size_t a = 0; a < sections.size(); ++a) {
    chunks.push_back(freqs[int64_t(a)].narrow(-1, start, sections[a]));
    start += sections[a];
  }
  const at::Tensor half = at::cat(chunks, -1);
  return at::cat({half, half}, -1);
}

at::Tensor rotary_libtorch(const at::Tensor& x, const at::Tensor& angles, bool two_d) {
  if (two_d) {
    const at::Tensor xf = x.to(at::kFloat);
    const at::Tensor c = angles.cos().unsqueeze(-2), s = angles.sin().unsqueeze(-2);
    return (xf * c + rotate_half_t(xf) * s).to(x.scalar_type());
  }
  const at::Tensor c = angles.cos().to(x.scalar_type()).unsqueeze(-2), s = angles.sin().to(x.scalar_type()).unsqueeze(-2);
  return x * c + rotate_half_t(x) * s;
}

at::Tensor rotary_f64(const at::Tensor& x, const at::Tensor& angles) {
  const at::Tensor a = angles.to(at::kDouble).unsqueeze(-2), x64 = x.to(at::kDouble);
  return x64 * a.cos() + rotate_half_t(x64) * a.sin();
}

void run_rotary(const RotaryCase& c, at::ScalarType dtype, at::Device device) {
  const uint64_t seed = fresh_seed();
  const double theta = c.sections.empty() ? 10000.0 : 1000000.0;
  const bool two_d = c.sections.empty();
  at::Tensor q, k;
  if (c.fused_qkv) {
    const at::Tensor qkv = randn({c.tokens, c.q_heads + 2 * c.k_heads, c.d}, dtype, device);
    q = qkv.slice(1, 0, c.q_heads);
    k = qkv.slice(1, c.q_heads, c.q_heads + c.k_heads);
  } else {
    q = randn({c.tokens, c.q_heads, c.d}, dtype, device);
    k = randn({c.tokens, c.k_heads, c.d}, dtype, device);
  }
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong);
  const at::Tensor positions = (two_d ? at::randint(c.max_position, {c.tokens, 2}, longs)
                                      : at::randint(c.max_position, {int64_t(c.sections.size()), c.tokens}, longs))
                                   .to(device);
  const at::Tensor angles = rotary_angles(positions, c.d, theta, c.sections);
  const at::Tensor q_ref = rotary_f64(q, angles), k_ref = rotary_f64(k, angles);
  const at::Tensor q_lib = rotary_libtorch(q, angles, two_d), k_lib = rotary_libtorch(k, angles, two_d);
  at::Tensor q_out, k_out;
  if (c.in_place) {
    q_out = q.clone();
    k_out = k.clone();
    if (c.fused_qkv) {  // rotate the views themselves: the untouched v heads must keep their bytes
      q_out = q;
      k_out = k;
    }
    two_d ? qk::rotary_2d_(q_out, k_out, positions, theta)
          : qk::multi_axis_rotary_(q_out, k_out, positions, theta, c.sections);
  } else {
    std::tie(q_out, k_out) = two_d ? qk::rotary_2d(q, k, positions, theta)
                                   : qk::multi_axis_rotary(q, k, positions, theta, c.sections);
  }
  std::string what = std::string(two_d ? "rotary_2d " : "multi_axis_rotary ") + dtype_name(dtype) + " d" +
                     std::to_string(c.d) + " " + std::to_string(c.q_heads) + "/" + std::to_string(c.k_heads) + " T" +
                     std::to_string(c.tokens) + (c.fused_qkv ? " qkv-view" : "") + (c.in_place ? " in-place" : "");
  SCOPED_TRACE(what + " seed " + std::to_string(seed));
  const at::Tensor out = at::cat({q_out.reshape({c.tokens, -1}), k_out.reshape({c.tokens, -1})}, 1);
  const at::Tensor ref = at::cat({q_ref.reshape({c.tokens, -1}), k_ref.reshape({c.tokens, -1})}, 1);
  const at::Tensor lib = at::cat({q_lib.reshape({c.tokens, -1}), k_lib.reshape({c.tokens, -1})}, 1);
  expect_earned(what, out, rel_err(out, ref), rel_err(lib, ref), dtype);
  const double same = at::eq(out, lib).to(at::kDouble).mean().item<double>();
  std::printf("  %-58s bitwise equal to the reference's op sequence: %.5f\n", what.c_str(), same);
  // Only cos/sin may differ (libm vs CUDA, by an ulp, rarely flipping a rounding).
  EXPECT_GE(same, 0.999) << "the reference's rounding order not reproduced";
}

const std::vector<RotaryCase> kRotaryCpuCases = {
    {7, 4, 2, 128, {16, 24, 24}, 4096, false, false},
    {33, 28, 4, 128, {16, 24, 24}, 100000, true, true},
    {5, 16, 2, 64, {32}, 500, false, true},
    {50, 16, 16, 80, {}, 64, true, true},
    {9, 4, 4, 64, {}, 1000, false, false},
};
const std::vector<RotaryCase> kRotaryCudaCases = {
    {1, 28, 4, 128, {16, 24, 24}, 32768, true, true},
    {4097, 28, 4, 128, {16, 24, 24}, 32768, true, true},
    {300, 16, 2, 128, {16, 24, 24}, 100000, false, false},
    {77, 12, 2, 64, {8, 12, 12}, 4096, false, true},
    {5, 16, 2, 64, {32}, 500, false, true},
    {4096, 16, 16, 80, {}, 128, true, true},
    {1000, 16, 16, 80, {}, 64, false, false},
    {64, 8, 8, 128, {}, 1000, false, true},
};

TEST(Rotary, CpuReferenceWithinLibtorchError) {
  for (const auto& c : kRotaryCpuCases)
    for (auto dtype : {at::kBFloat16, at::kFloat}) run_rotary(c, dtype, at::kCPU);
}

TEST(Rotary, CudaKernelWithinLibtorchError) {
  REQUIRE_CUDA();
  for (const auto& c : small_cases() ? kRotaryCpuCases : kRotaryCudaCases)
    for (auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) run_rotary(c, dtype, at::kCUDA);
}

// In place on views of a fused projection: the other heads (v) keep their bytes.
TEST(Rotary, InPlaceOnViewsLeavesOtherHeads) {
  for (const bool cuda : {false, true}) {
    if (cuda && !cuda_present()) continue;
    const at::Device device = cuda ? at::kCUDA : at::kCPU;
    fresh_seed();
    at::Tensor qkv = randn({20, 8, 64}, at::kBFloat16, device);
    const at::Tensor before = qkv.clone();
    at::Tensor q = qkv.slice(1, 0, 4), k = qkv.slice(1, 4, 6);
    const at::Tensor pos = at::randint(100, {3, 20}, at::TensorOptions().dtype(at::kLong)).to(device);
    qk::multi_axis_rotary_(q, k, pos, 10000.0, {8, 12, 12});
    EXPECT_TRUE(at::equal(qkv.slice(1, 6, 8), before.slice(1, 6, 8))) << (cuda ? "cuda" : "cpu");
    EXPECT_FALSE(at::equal(qkv.slice(1, 0, 6), before.slice(1, 0, 6))) << (cuda ? "cuda" : "cpu");
  }
}

// ---------------------------------------------------------------------------------------------
// multi_axis_rotary_and_write_kv_: bit for bit multi_axis_rotary_ then write_kv_cache, on views of
// one qkv projection as the engine passes them; every cache slot is compared, written or not.

struct RotaryWriteCase {
  int64_t tokens, q_heads, kv_heads, d, block_size;
  std::vector<int64_t> sections;
  bool padding;    // every fifth slot negative
  int64_t offset;  // elements before q in each qkv row: 1 leaves the rows unaligned
};

// The raw bits, so that any value (NaN included) compares by its bytes.
at::Tensor bits(const at::Tensor& t) { return t.contiguous().view(t.element_size() == 2 ? at::kShort : at::kInt); }

void run_rotary_write(const RotaryWriteCase& c, at::ScalarType dtype, at::Device device) {
  const uint64_t seed = fresh_seed();
  const int64_t t = c.tokens, d = c.d, width = (c.q_heads + 2 * c.kv_heads) * d;
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong);
  const at::Tensor qkv = randn({t, c.offset + width}, dtype, device);
  const at::Tensor positions = at::randint(32768, {int64_t(c.sections.size()), t}, longs).to(device);
  const int64_t blocks = t / c.block_size + 3, slots = blocks * c.block_size;
  at::Tensor slot_mapping = at::randperm(slots, longs).slice(0, 0, t).clone();
  if (c.padding) slot_mapping.index_fill_(0, at::arange(0, t, 5, longs), -1);
  slot_mapping = slot_mapping.to(device);
  // Poison: random rows that the written ones never equal, so a stale or stray write shows.
  const at::Tensor k_poison = randn({blocks, c.block_size, c.kv_heads, d}, dtype, device) * 100;
  const at::Tensor v_poison = randn({blocks, c.block_size, c.kv_heads, d}, dtype, device) * 100;
  const auto views = [&](const at::Tensor& x) {
    const at::Tensor rows = x.narrow(1, c.offset, width);
    return std::make_tuple(rows.narrow(1, 0, c.q_heads * d).view({t, c.q_heads, d}),
                           rows.narrow(1, c.q_heads * d, c.kv_heads * d).view({t, c.kv_heads, d}),
                           rows.narrow(1, (c.q_heads + c.kv_heads) * d, c.kv_heads * d).view({t, c.kv_heads, d}));
  };
  const double theta = 1000000.0;
  const at::Tensor seq_qkv = qkv.clone();
  at::Tensor seq_k_cache = k_poison.clone(), seq_v_cache = v_poison.clone();
  auto [sq, sk, sv] = views(seq_qkv);
  qk::multi_axis_rotary_(sq, sk, positions, theta, c.sections);
  qk::write_kv_cache(sk, sv, seq_k_cache, seq_v_cache, slot_mapping);

  const at::Tensor fused_qkv = qkv.clone();
  at::Tensor k_cache = k_poison.clone(), v_cache = v_poison.clone();
  auto [fq, fk, fv] = views(fused_qkv);
  const auto before = qk::dispatch_counts();
  qk::multi_axis_rotary_and_write_kv_(fq, fk, fv, positions, theta, c.sections, k_cache, v_cache, slot_mapping);
  const auto calls = qk::dispatch_counts().since(before);

  SCOPED_TRACE(std::string("rotary_and_write_kv ") + dtype_name(dtype) + " d" + std::to_string(d) + " " +
               std::to_string(c.q_heads) + "/" + std::to_string(c.kv_heads) + " T" + std::to_string(t) + " block " +
               std::to_string(c.block_size) + (c.padding ? " padded" : "") + (c.offset ? " unaligned" : "") +
               " seed " + std::to_string(seed));
  EXPECT_TRUE(at::equal(bits(fused_qkv), bits(seq_qkv))) << "q, k (rotated) or v (untouched) differ";
  EXPECT_TRUE(at::equal(bits(k_cache), bits(seq_k_cache))) << "k_cache differs";
  EXPECT_TRUE(at::equal(bits(v_cache), bits(seq_v_cache))) << "v_cache differs";
  // Not vacuous: q and k were rotated, and the written slots hold the rows.
  EXPECT_FALSE(at::equal(bits(fused_qkv), bits(qkv)));
  const at::Tensor tokens = at::nonzero(slot_mapping >= 0).squeeze(1);
  const at::Tensor where = slot_mapping.index_select(0, tokens);
  EXPECT_GT(tokens.numel(), 0);
  EXPECT_TRUE(at::equal(bits(k_cache.view({slots, c.kv_heads, d}).index_select(0, where)),
                        bits(fk.index_select(0, tokens))));
  EXPECT_TRUE(at::equal(bits(v_cache.view({slots, c.kv_heads, d}).index_select(0, where)),
                        bits(fv.index_select(0, tokens))));
  // One call of each op it stands for, on the expected path, and nothing else.
  const auto path = device.is_cuda() ? qk::DispatchPath::kCudaKernel : qk::DispatchPath::kCpuReference;
  EXPECT_EQ(calls(qk::KernelOp::kRotary, path), 1u);
  EXPECT_EQ(calls(qk::KernelOp::kWriteKvCache, path), 1u);
  uint64_t all = 0;
  for (const auto& op : calls.calls)
    for (uint64_t n : op) all += n;
  EXPECT_EQ(all, 2u);
}

// d128 28/4 is the 7B's attention; d72 in 16-bit dtypes has half rows of 72 bytes and offset 1
// unaligned rows: both take the kernel's one-element path, the others its 16-byte path.
const std::vector<RotaryWriteCase> kRotaryWriteCases = {
    {1, 28, 4, 128, 16, {16, 24, 24}, false, 0}, {33, 28, 4, 128, 64, {16, 24, 24}, true, 0},
    {300, 28, 4, 128, 16, {16, 24, 24}, true, 0}, {1, 16, 2, 64, 64, {32}, false, 0},
    {33, 16, 2, 64, 16, {8, 12, 12}, true, 0},    {257, 16, 2, 64, 64, {8, 12, 12}, false, 0},
    {33, 16, 2, 64, 16, {8, 12, 12}, true, 1},    {33, 8, 2, 72, 16, {12, 12, 12}, true, 0},
    {7, 16, 2, 80, 64, {8, 16, 16}, false, 0},
};

TEST(RotaryAndWriteKv, CpuMatchesTheTwoOps) {
  for (const auto& c : kRotaryWriteCases)
    for (auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) run_rotary_write(c, dtype, at::kCPU);
}

TEST(RotaryAndWriteKv, CudaKernelMatchesTheTwoOps) {
  REQUIRE_CUDA();
  for (const auto& c : kRotaryWriteCases)
    for (auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) run_rotary_write(c, dtype, at::kCUDA);
}

// Refused arguments name the op and leave q, k and the caches as they were.
TEST(RotaryAndWriteKv, FaultsNameTheOperationAndChangeNothing) {
  fresh_seed();
  const at::Tensor qkv = randn({5, 8 * 64}, at::kBFloat16, at::kCPU);
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong);
  const at::Tensor positions = at::randint(100, {3, 5}, longs);
  const std::vector<int64_t> sections = {8, 12, 12};
  const at::Tensor cache = randn({2, 16, 2, 64}, at::kBFloat16, at::kCPU);
  const at::Tensor slots = at::arange(5, longs);
  const auto expect_refused = [&](at::Tensor k_cache, at::Tensor v_cache, const at::Tensor& slot_mapping,
                                  const at::Tensor& pos, const std::string& words) {
    const at::Tensor x = qkv.clone(), k_before = k_cache.clone();
    at::Tensor q = x.narrow(1, 0, 256).view({5, 4, 64}), k = x.narrow(1, 256, 128).view({5, 2, 64});
    const at::Tensor v = x.narrow(1, 384, 128).view({5, 2, 64});
    expect_fault("multi_axis_rotary_and_write_kv", [&] {
      qk::multi_axis_rotary_and_write_kv_(q, k, v, pos, 10000.0, sections, k_cache, v_cache, slot_mapping);
    }, words);
    EXPECT_TRUE(at::equal(bits(x), bits(qkv))) << words;
    EXPECT_TRUE(at::equal(bits(k_cache), bits(k_before))) << words;
  };
  expect_refused(cache.to(at::kFloat), cache.to(at::kFloat), slots, positions, "must share one dtype");
  const at::Tensor three_heads = randn({2, 16, 3, 64}, at::kBFloat16, at::kCPU);
  expect_refused(three_heads, three_heads.clone(), slots, positions, "do not fit cache rows");
  expect_refused(cache.clone(), cache.clone(), slots.slice(0, 0, 4), positions, "one entry per token");
  expect_refused(cache.clone(), cache.clone(), slots + 28, positions, "is past the cache's 32 slots");
  expect_refused(cache.clone(), cache.clone(), slots, positions.slice(0, 0, 1), "positions must be [3, 5]");
}

// ---------------------------------------------------------------------------------------------
// silu_and_mul. Truth: float64 silu(gate) * up from the same rounded inputs. The libtorch error:
// at::silu then the product in the activation dtype, whose bits we must also reproduce.

struct SiluCase {
  int64_t rows, inter;
  bool fused;  // one [rows, 2 I] gate_up tensor
};

void run_silu(const SiluCase& c, at::ScalarType dtype, at::Device device) {
  const uint64_t seed = fresh_seed();
  const at::Tensor gate_up = randn({c.rows, 2 * c.inter}, dtype, device) * 3;
  const at::Tensor gate = c.fused ? gate_up.narrow(1, 0, c.inter) : randn({c.rows, c.inter}, dtype, device) * 3;
  const at::Tensor up = c.fused ? gate_up.narrow(1, c.inter, c.inter) : randn({c.rows, c.inter}, dtype, device);
  at::Tensor out = poisoned({c.rows, c.inter}, dtype, device);
  if (c.fused)
    qk::silu_and_mul_out(gate_up, out);
  else
    qk::silu_and_mul_out(gate, up, out);
  const at::Tensor g64 = gate.to(at::kDouble);
  const at::Tensor ref = g64 / (1 + at::exp(-g64)) * up.to(at::kDouble);
  const at::Tensor lib = at::silu(gate) * up;
  std::string what = std::string("silu_and_mul ") + dtype_name(dtype) + " " + std::to_string(c.rows) + "x" +
                     std::to_string(c.inter) + (c.fused ? " gate_up" : " two tensors");
  SCOPED_TRACE(what + " seed " + std::to_string(seed));
  expect_earned(what, out, rel_err(out, ref), rel_err(lib, ref), dtype);
  const double same = at::eq(out, lib).to(at::kDouble).mean().item<double>();
  std::printf("  %-58s bitwise equal to libtorch's silu * up: %.5f\n", what.c_str(), same);
  EXPECT_GE(same, 0.999) << "libtorch's rounding not reproduced";
}

const std::vector<SiluCase> kSiluCpuCases = {{1, 1000, true}, {7, 4864, false}, {33, 1003, true}, {5, 3, false}};
const std::vector<SiluCase> kSiluCudaCases = {
    {1, 18944, true}, {4097, 4864, true}, {300, 3420, false}, {33, 1003, true}, {5, 3, false}, {1000, 11008, true},
};

TEST(SiluAndMul, CpuReferenceWithinLibtorchError) {
  for (const auto& c : kSiluCpuCases)
    for (auto dtype : {at::kBFloat16, at::kFloat}) run_silu(c, dtype, at::kCPU);
}

TEST(SiluAndMul, CudaKernelWithinLibtorchError) {
  REQUIRE_CUDA();
  for (const auto& c : small_cases() ? kSiluCpuCases : kSiluCudaCases)
    for (auto dtype : {at::kBFloat16, at::kHalf, at::kFloat}) run_silu(c, dtype, at::kCUDA);
}

// ---------------------------------------------------------------------------------------------
// sample. The CPU path is the reference's processors (libtorch ops); the CUDA kernel must give the
// same processed logits: penalty, temperature and top-k bit for bit; top-p and min-p masks between
// those of the reference at thresholds moved by 1e-4 either way (the probabilities themselves
// differ by ulps between libm's and CUDA's exp), and equal to the nominal reference on most rows.
// Draws: a chi-square test of the frequencies, determinism per (seed, step), independence from the
// batch.

qk::RowSampling greedy_row(double penalty) {
  qk::RowSampling r;
  r.repetition_penalty = penalty;
  return r;
}

qk::RowSampling sampled_row(double temperature, int64_t top_k, double top_p, double min_p, double penalty,
                            uint64_t seed, uint64_t step) {
  qk::RowSampling r;
  r.do_sample = true;
  r.temperature = temperature;
  r.top_k = top_k;
  r.top_p = top_p;
  r.min_p = min_p;
  r.repetition_penalty = penalty;
  r.seed = seed;
  r.step = step;
  return r;
}

// Seen ids with repeats, CSR on `device`.
qk::SeenIds random_seen(int64_t rows, int64_t vocab, at::Device device) {
  std::vector<int64_t> offsets{0};
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < rows; ++s) {
    const int64_t len = at::randint(0, 300, {1}).item<int64_t>();
    parts.push_back(at::randint(vocab, {len}, at::TensorOptions().dtype(at::kLong)));
    offsets.push_back(offsets.back() + len);
  }
  qk::SeenIds seen;
  seen.ids = at::cat(parts).to(device);
  seen.offsets = at::tensor(offsets, at::TensorOptions().dtype(at::kLong)).to(device);
  return seen;
}

qk::SeenIds seen_to(const qk::SeenIds& s, at::Device device) {
  return {s.ids.defined() ? s.ids.to(device) : s.ids, s.offsets.defined() ? s.offsets.to(device) : s.offsets,
          s.lengths.defined() ? s.lengths.to(device) : s.lengths};
}

at::Tensor reference_processed(const at::Tensor& logits, std::vector<qk::RowSampling> rows, const qk::SeenIds& seen,
                               double top_p_shift, double min_p_scale) {
  for (auto& r : rows) {
    if (r.top_p < 1.0) r.top_p = std::min(1.0, r.top_p + top_p_shift);
    r.min_p *= min_p_scale;
  }
  at::Tensor l = logits.cpu().clone();
  qk::sample(l, rows, seen_to(seen, at::kCPU));
  return l;
}

void run_sample_parity(int64_t vocab, bool padded_seen) {
  ASSERT_TRUE(cuda_present());
  const uint64_t seed = fresh_seed();
  std::vector<qk::RowSampling> rows = {
      greedy_row(1.0),
      greedy_row(1.3),
      sampled_row(1.0, 0, 1.0, 0.0, 1.0, 1, 0),
      sampled_row(0.7, 50, 1.0, 0.0, 1.1, 2, 5),
      sampled_row(1.0, 0, 0.9, 0.0, 1.0, 3, 7),
      sampled_row(0.8, 0, 0.5, 0.0, 1.2, 4, 9),
      sampled_row(1.3, 0, 1.0, 0.05, 1.0, 5, 11),
      sampled_row(0.6, 200, 0.95, 0.02, 1.05, 6, 1),
      sampled_row(1.0, 20, 0.8, 0.1, 1.0, 7, 2),
      sampled_row(1.0, 1, 1.0, 0.0, 1.0, 8, 3),
      sampled_row(1.0, 0, 0.001, 0.0, 1.0, 9, 4),
  };
  const int64_t n = rows.size();
  // Logits as a bf16 model writes them (many ties), and plain fp32 ones.
  at::Tensor logits = at::randn({n, vocab}) * 3;
  logits.slice(0, 0, n / 2).copy_(logits.slice(0, 0, n / 2).to(at::kBFloat16).to(at::kFloat));
  qk::SeenIds seen = random_seen(n, vocab, at::kCPU);
  if (padded_seen) {  // the same ids as [rows, L] + lengths
    const at::Tensor off = seen.offsets;
    const int64_t width = (off.slice(0, 1) - off.slice(0, 0, n)).max().item<int64_t>() + 3;
    at::Tensor padded = at::randint(vocab, {n, width}, at::TensorOptions().dtype(at::kLong));  // garbage past lengths
    for (int64_t s = 0; s < n; ++s) {
      const int64_t a = off[s].item<int64_t>(), b = off[s + 1].item<int64_t>();
      padded[s].slice(0, 0, b - a).copy_(seen.ids.slice(0, a, b));
    }
    seen = {padded, at::Tensor(), off.slice(0, 1) - off.slice(0, 0, n)};
  }
  at::Tensor gpu = logits.to(at::kCUDA);
  const at::Tensor tokens = qk::sample(gpu, rows, seen_to(seen, at::kCUDA)).cpu();
  at::Tensor ref = logits.clone();
  const at::Tensor ref_tokens = qk::sample(ref, rows, seen);
  const at::Tensor loose = reference_processed(logits, rows, seen, 1e-4, 1 - 1e-4);
  const at::Tensor tight = reference_processed(logits, rows, seen, -1e-4, 1 + 1e-4);
  const at::Tensor out = gpu.cpu();
  SCOPED_TRACE("sample vocab " + std::to_string(vocab) + " seed " + std::to_string(seed));
  int exact_rows = 0, same_tokens = 0, sampled = 0;
  for (int64_t s = 0; s < n; ++s) {
    SCOPED_TRACE("row " + std::to_string(s));
    const at::Tensor kept = out[s].isfinite(), kept_ref = ref[s].isfinite();
    const bool exact = at::equal(out[s], ref[s]);
    exact_rows += exact;
    if (!rows[size_t(s)].do_sample) {
      EXPECT_TRUE(exact) << "penalised logits differ";
      EXPECT_EQ(tokens[s].item<int64_t>(), ref_tokens[s].item<int64_t>()) << "greedy token";
      continue;
    }
    // Kept values are bit-equal to the reference's; the kept set lies between tight and loose.
    const at::Tensor both = kept.logical_and(kept_ref);
    EXPECT_TRUE(at::equal(out[s].masked_select(both), ref[s].masked_select(both))) << "kept values differ";
    EXPECT_FALSE(tight[s].isfinite().logical_and(kept.logical_not()).any().item<bool>()) << "removed too much";
    EXPECT_FALSE(kept.logical_and(loose[s].isfinite().logical_not()).any().item<bool>()) << "kept too much";
    const int64_t t = tokens[s].item<int64_t>();
    EXPECT_TRUE(t >= 0 && t < vocab && kept[t].item<bool>()) << "drew a removed token " << t;
    same_tokens += t == ref_tokens[s].item<int64_t>();
    ++sampled;
  }
  std::printf("  sample vocab %-7lld %s seen: rows bit-equal to the reference %d/%lld, same draw %d/%d\n",
              (long long)vocab, padded_seen ? "padded" : "CSR   ", exact_rows, (long long)n, same_tokens, sampled);
  // A top-p/min-p boundary or a near-tie of the race may differ by an ulp of exp; not more often.
  EXPECT_GE(exact_rows, n - 2);
  EXPECT_GE(same_tokens, sampled - 2);
}

TEST(Sample, CudaKernelMatchesReferenceProcessors) {
  REQUIRE_CUDA();
  const std::vector<int64_t> vocabs = small_cases() ? std::vector<int64_t>{4099, 37} : std::vector<int64_t>{151936, 1000, 37};
  for (int64_t vocab : vocabs) {
    run_sample_parity(vocab, false);
    run_sample_parity(vocab, true);
  }
}

// Many rows of one logits vector, one seed, steps 0..n-1: the frequencies of the draws against the
// reference's final probabilities (softmax of the processed row).
void run_sample_distribution(at::Device device, int64_t draws) {
  const uint64_t seed = fresh_seed();
  const at::Tensor row = at::tensor(std::vector<float>{1.0f, 0.5f, 0.f, -0.5f, 2.f, -3.f, 1.5f, 0.25f});
  const qk::RowSampling base = sampled_row(0.9, 7, 0.97, 0.01, 1.0, seed, 0);
  at::Tensor processed = row.unsqueeze(0).clone();
  qk::sample(processed, {base}, {});
  const at::Tensor probs = processed[0].softmax(0).to(at::kDouble);
  std::vector<qk::RowSampling> rows(size_t(draws), base);
  for (int64_t i = 0; i < draws; ++i) rows[size_t(i)].step = uint64_t(i);
  at::Tensor logits = row.unsqueeze(0).repeat({draws, 1}).to(device);
  const at::Tensor tokens = qk::sample(logits, rows, {}).cpu();
  const at::Tensor counts = at::bincount(tokens, {}, row.size(0)).to(at::kDouble);
  double chi2 = 0.0;
  int df = -1;
  for (int64_t i = 0; i < row.size(0); ++i) {
    const double e = probs[i].item<double>() * draws, o = counts[i].item<double>();
    if (e == 0.0) {
      EXPECT_EQ(o, 0.0) << "a removed token was drawn: " << i;
      continue;
    }
    chi2 += (o - e) * (o - e) / e;
    ++df;
  }
  std::printf("  sample distribution %s: %lld draws, chi-square %.2f over %d degrees of freedom\n",
              device.is_cuda() ? "cuda" : "cpu ", (long long)draws, chi2, df);
  EXPECT_EQ(df, 5) << "the processors should keep 6 of 8 tokens here";
  EXPECT_LT(chi2, 35.9) << "p < 1e-6 for 5 degrees of freedom: the draws do not follow the probabilities (seed "
                        << seed << ")";
}

TEST(Sample, CpuDrawsFollowTheProbabilities) { run_sample_distribution(at::kCPU, 20000); }

TEST(Sample, CudaDrawsFollowTheProbabilities) {
  REQUIRE_CUDA();
  run_sample_distribution(at::kCUDA, small_cases() ? 20000 : 200000);
}

// The same (row, seed, step) gives the same token whatever shares the batch; another step, another
// draw.
void run_sample_independence(at::Device device) {
  fresh_seed();
  const int64_t vocab = 5000, n = 6;
  const at::Tensor mine = at::randn({n, vocab}) * 0.3;
  std::vector<qk::RowSampling> rows;
  for (int64_t s = 0; s < n; ++s) rows.push_back(sampled_row(1.0, 0, 0.99, 0.0, 1.0, 1000 + s, 3 + s));
  // sample() warps its logits in place: each call gets a copy (on the CPU .to() would alias `mine`,
  // and a second warp of already-truncated rows draws differently).
  at::Tensor a = mine.to(device, /*non_blocking=*/false, /*copy=*/true);
  const at::Tensor ta = qk::sample(a, rows, {}).cpu();
  // Reversed, interleaved with strangers.
  std::vector<qk::RowSampling> mixed;
  std::vector<at::Tensor> mixed_rows;
  for (int64_t s = n - 1; s >= 0; --s) {
    mixed.push_back(sampled_row(0.5, 10, 1.0, 0.0, 1.0, 7, 7));
    mixed_rows.push_back(at::randn({vocab}));
    mixed.push_back(rows[size_t(s)]);
    mixed_rows.push_back(mine[s]);
  }
  at::Tensor b = at::stack(mixed_rows).to(device);
  const at::Tensor tb = qk::sample(b, mixed, {}).cpu();
  int moved = 0;
  for (int64_t s = 0; s < n; ++s) {
    EXPECT_EQ(ta[s].item<int64_t>(), tb[2 * (n - 1 - s) + 1].item<int64_t>()) << "row " << s << " depends on its batch";
    rows[size_t(s)].step += 1;
  }
  at::Tensor c = mine.to(device, /*non_blocking=*/false, /*copy=*/true);
  const at::Tensor tc = qk::sample(c, rows, {}).cpu();
  for (int64_t s = 0; s < n; ++s) moved += ta[s].item<int64_t>() != tc[s].item<int64_t>();
  EXPECT_GE(moved, n - 1) << "the next step must draw afresh";
}

TEST(Sample, CpuDrawDependsOnSeedAndStepAlone) { run_sample_independence(at::kCPU); }

TEST(Sample, CudaDrawDependsOnSeedAndStepAlone) {
  REQUIRE_CUDA();
  run_sample_independence(at::kCUDA);
}

// ---------------------------------------------------------------------------------------------
// frame preparation: integer arithmetic end to end, so exact. The CUDA kernels must give the CPU
// path's bytes (conversion, ATen's own uint8 antialiased bicubic, transformers' patchify) at every
// step, for every pixel format, odd and tiny sizes, up- and downscaling, one side resized or none,
// padded strides, each YUV matrix and range, and clips (odd frame counts padded; more frames than
// one launch carries). The CPU path of these ops is the engine's only one: tests/preprocessing/ holds it
// to transformers' processors (test_image_processor, test_video_processor) and to videoconvert
// (test_frame_convert).

struct PrepFrame {
  std::vector<uint8_t> bytes;
  std::vector<qk::FrameLayout> layouts;
};

// `frames` frames of random bytes, planes one after another after a random lead, each row padded
// by `pad` random bytes.
PrepFrame random_frames(qwenvl::PixelFormat format, int64_t w, int64_t h, int64_t pad, qwenvl::YuvMatrix matrix,
                        bool full_range, int64_t frames, std::mt19937_64& rng) {
  using qwenvl::PixelFormat;
  const int64_t cw = (w + 1) / 2, ch = (h + 1) / 2;
  std::vector<std::pair<int64_t, int64_t>> planes;  // row bytes, rows
  switch (format) {
    case PixelFormat::kRGB:
    case PixelFormat::kBGR: planes = {{3 * w, h}}; break;
    case PixelFormat::kNV12: planes = {{w, h}, {2 * cw, ch}}; break;
    case PixelFormat::kI420: planes = {{w, h}, {cw, ch}, {cw, ch}}; break;
    default: planes = {{4 * w, h}}; break;
  }
  PrepFrame out;
  int64_t offset = static_cast<int64_t>(rng() % 64);
  for (int64_t f = 0; f < frames; ++f) {
    qk::FrameLayout layout;
    layout.format = format;
    layout.width = w;
    layout.height = h;
    layout.yuv_matrix = matrix;
    layout.yuv_full_range = full_range;
    for (size_t p = 0; p < planes.size(); ++p) {
      layout.plane_offsets[p] = offset;
      layout.strides[p] = planes[p].first + pad;
      offset += planes[p].second * (planes[p].first + pad) + static_cast<int64_t>(rng() % 8);
    }
    out.layouts.push_back(layout);
  }
  out.bytes.resize(static_cast<size_t>(offset));
  for (auto& b : out.bytes) b = static_cast<uint8_t>(rng());
  return out;
}

at::Tensor byte_tensor(const std::vector<uint8_t>& bytes) {
  return at::from_blob(const_cast<uint8_t*>(bytes.data()), {static_cast<int64_t>(bytes.size())}, at::kByte).clone();
}

// Random per-channel level tables (the engine's are (level - mean) / std; any table checks the gather).
at::Tensor random_levels() { return at::randn({3, 256}, at::kFloat); }

// Output poisoning for ops that allocate their results: blocks of each size filled with 0xFF (NaN
// as float) and released, so that the caching allocator hands them to the op under test.
void poison_device_blocks(const std::vector<int64_t>& byte_counts) {
  std::vector<at::Tensor> blocks;
  for (int64_t n : byte_counts)
    blocks.push_back(at::full({std::max<int64_t>(n, 1)}, 0xFF, at::TensorOptions().dtype(at::kByte).device(at::kCUDA)));
}

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  const at::Tensor ac = a.to(at::kCPU).contiguous(), bc = b.to(at::kCPU).contiguous();
  if (ac.scalar_type() == at::kFloat) return at::equal(ac.view(at::kInt), bc.view(at::kInt));
  return at::equal(ac, bc);
}

struct PrepCase {
  const char* name;
  qwenvl::PixelFormat format;
  int64_t width, height, target_width, target_height, pad;
  qwenvl::YuvMatrix matrix;
  bool full_range;
  int64_t frames;
};

std::vector<PrepCase> prep_cases() {
  using F = qwenvl::PixelFormat;
  using M = qwenvl::YuvMatrix;
  std::vector<PrepCase> cases;
  for (const auto& entry : qwenvl::kPixelFormatNames) {  // every format: odd sizes, down, up, padded
    cases.push_back({"333x249 down", entry.format, 333, 249, 308, 224, 0, M::kAuto, false, 1});
    cases.push_back({"17x1001 up/down padded", entry.format, 17, 1001, 28, 980, 13, M::kAuto, false, 1});
    cases.push_back({"1x1 up", entry.format, 1, 1, 28, 28, 3, M::kAuto, false, 1});
    cases.push_back({"56x84 kept", entry.format, 56, 84, 56, 84, 5, M::kAuto, false, 1});
  }
  for (F f : {F::kNV12, F::kI420}) {
    for (M m : {M::kBT601, M::kBT709, M::kBT2020})
      for (bool full : {false, true}) cases.push_back({"matrix", f, 335, 251, 308, 252, 7, m, full, 1});
    cases.push_back({"HD auto (BT.709, H-cosited)", f, 1281, 721, 644, 364, 0, M::kAuto, false, 1});
    cases.push_back({"HD auto full range, up", f, 641, 577, 672, 588, 9, M::kAuto, true, 1});
    cases.push_back({"width only", f, 333, 224, 308, 224, 0, M::kAuto, false, 1});
    cases.push_back({"height only", f, 308, 249, 308, 224, 0, M::kBT709, false, 1});
  }
  cases.push_back({"clip of 3", F::kNV12, 333, 249, 308, 224, 4, M::kAuto, false, 3});
  cases.push_back({"clip of 3 BGRx", F::kBGRx, 333, 249, 308, 224, 0, M::kAuto, false, 3});
  cases.push_back({"clip of 18 (two launches)", F::kI420, 31, 21, 28, 28, 2, M::kBT601, true, 18});
  cases.push_back({"heavy downscale", F::kRGB, 4000, 30, 56, 28, 0, M::kAuto, false, 1});
  return cases;
}

void run_prep_case(const PrepCase& c, bool cuda) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  SCOPED_TRACE(std::string("frame_preparation ") + c.name + " " + qwenvl::pixel_format_name(c.format) + " " +
               std::to_string(c.width) + "x" + std::to_string(c.height) + " -> " + std::to_string(c.target_width) +
               "x" + std::to_string(c.target_height) + " seed " + std::to_string(seed));
  const PrepFrame frames = random_frames(c.format, c.width, c.height, c.pad, c.matrix, c.full_range, c.frames, rng);
  const at::Tensor bytes = byte_tensor(frames.bytes);
  const at::Tensor levels = random_levels();
  const qk::PatchShape shape{14, 2, 2};
  // The CPU path, step by step.
  const at::Tensor rgb = qk::frames_to_rgb(bytes, frames.layouts);
  const at::Tensor resized = qk::resize_bicubic_aa(rgb, c.target_height, c.target_width);
  const at::Tensor patches = qk::patchify_levels(resized, levels, shape);
  const at::Tensor all = qk::prepare_frames(bytes, frames.layouts, c.target_height, c.target_width, levels, shape);
  ASSERT_TRUE(bit_equal(all, patches));
  const int64_t gt = (c.frames + 1) / 2;
  ASSERT_EQ(patches.sizes().vec(),
            (std::vector<int64_t>{gt * (c.target_height / 14) * (c.target_width / 14), 3 * 2 * 14 * 14}));
  if (!cuda) {
    // The GPU's fixed-point resize, run on the host, against ATen's.
    EXPECT_TRUE(bit_equal(qk::resize_bicubic_aa_fixed_point_on_host(rgb, c.target_height, c.target_width), resized));
    return;
  }
  const at::Tensor dev_bytes = bytes.to(at::kCUDA);
  poison_device_blocks({rgb.numel(), resized.numel(), c.frames * c.height * c.target_width * 3});
  const at::Tensor dev_rgb = qk::frames_to_rgb(dev_bytes, frames.layouts);
  EXPECT_TRUE(bit_equal(dev_rgb, rgb)) << "to RGB";
  poison_device_blocks({resized.numel(), c.frames * c.height * c.target_width * 3});
  const at::Tensor dev_resized = qk::resize_bicubic_aa(rgb.to(at::kCUDA), c.target_height, c.target_width);
  EXPECT_TRUE(bit_equal(dev_resized, resized)) << "resize";
  poison_device_blocks({patches.numel() * 4});
  const at::Tensor dev_patches = qk::patchify_levels(resized.to(at::kCUDA), levels.to(at::kCUDA), shape);
  EXPECT_TRUE(bit_equal(dev_patches, patches)) << "patchify";
  poison_device_blocks({rgb.numel(), resized.numel(), patches.numel() * 4, c.frames * c.height * c.target_width * 3});
  const at::Tensor dev_all = qk::prepare_frames(dev_bytes, frames.layouts, c.target_height, c.target_width, levels, shape);
  EXPECT_TRUE(dev_all.is_cuda());
  EXPECT_TRUE(bit_equal(dev_all, patches)) << "all steps";
  // The engine casts the float32 pixels to the model dtype; equal inputs give equal casts.
  EXPECT_TRUE(bit_equal(dev_all.to(at::kBFloat16).to(at::kFloat), patches.to(at::kBFloat16).to(at::kFloat)));
}

TEST(FramePreparation, CpuPathIsConsistentAndGpuArithmeticMatchesAten) {
  for (const auto& c : prep_cases()) run_prep_case(c, /*cuda=*/false);
}

TEST(FramePreparation, CudaKernelIsBitExact) {
  REQUIRE_CUDA();
  const auto before = qk::dispatch_counts();
  const auto cases = prep_cases();
  for (size_t i = 0; i < cases.size(); ++i)
    if (!small_cases() || i % 6 == 0) run_prep_case(cases[i], /*cuda=*/true);
  const auto calls = qk::dispatch_counts().since(before);
  EXPECT_GT(calls(qk::KernelOp::kFramePreparation, qk::DispatchPath::kCudaKernel), 0u);
}

// The fixed-point resampling of the CUDA kernels against ATen's uint8 antialiased bicubic over
// every pair of sides up to 48 (weights, support and precision change with the ratio), and at
// sizes real frames have. Runs on the host with the kernels' own per-sample function.
TEST(FramePreparation, FixedPointResizeMatchesAtenAtEverySize) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  int checked = 0;
  for (int64_t in = 1; in <= 48; ++in) {
    const at::Tensor rows = at::randint(0, 256, {1, 2, in, 3}, at::kByte);
    const at::Tensor cols = at::randint(0, 256, {1, in, 2, 3}, at::kByte);
    for (int64_t out = 1; out <= 48; ++out) {
      if (out == in) continue;
      EXPECT_TRUE(bit_equal(qk::resize_bicubic_aa_fixed_point_on_host(rows, 2, out), qk::resize_bicubic_aa(rows, 2, out)))
          << in << " -> " << out << " (width)";
      EXPECT_TRUE(bit_equal(qk::resize_bicubic_aa_fixed_point_on_host(cols, out, 2), qk::resize_bicubic_aa(cols, out, 2)))
          << in << " -> " << out << " (height)";
      checked += 2;
    }
  }
  const std::vector<std::pair<int64_t, int64_t>> sides = {
      {1920, 1092}, {1080, 616}, {3840, 1288}, {2160, 728}, {640, 644}, {480, 476}, {1001, 980},
      {7, 1000},    {4096, 28},  {333, 308},   {249, 224},  {1280, 1288}, {720, 728}, {5000, 4998}};
  for (const auto& [in, out] : sides) {
    const at::Tensor rows = at::randint(0, 256, {1, 3, in, 3}, at::kByte);
    EXPECT_TRUE(bit_equal(qk::resize_bicubic_aa_fixed_point_on_host(rows, 3, out), qk::resize_bicubic_aa(rows, 3, out)))
        << in << " -> " << out;
    ++checked;
  }
  // Both passes with the uint8 rounding between them; extreme values (0 and 255) saturate.
  const at::Tensor image = at::randint(0, 2, {2, 61, 83, 3}, at::kByte).mul(255);
  EXPECT_TRUE(bit_equal(qk::resize_bicubic_aa_fixed_point_on_host(image, 112, 56), qk::resize_bicubic_aa(image, 112, 56)));
  EXPECT_GT(checked, 4000);
}

TEST(FramePreparation, FaultsNameTheOperation) {
  std::mt19937_64 rng(7);
  const PrepFrame f = random_frames(qwenvl::PixelFormat::kNV12, 33, 17, 0, qwenvl::YuvMatrix::kAuto, false, 1, rng);
  const at::Tensor bytes = byte_tensor(f.bytes);
  const at::Tensor levels = random_levels();
  const auto expect_fault = [](const std::function<void()>& call, const std::string& words) {
    ::expect_fault("frame_preparation", call, words);
  };
  auto layouts = f.layouts;
  layouts[0].strides[1] = 2;
  expect_fault([&] { qk::frames_to_rgb(bytes, layouts); }, "stride 2 is smaller than its row of 34 bytes");
  layouts = f.layouts;
  layouts[0].plane_offsets[1] = bytes.numel() - 10;
  expect_fault([&] { qk::frames_to_rgb(bytes, layouts); }, "does not fit in the buffer");
  layouts = f.layouts;
  layouts.push_back(layouts[0]);
  layouts[1].width = 32;
  expect_fault([&] { qk::frames_to_rgb(bytes, layouts); }, "frame 0's size 33x17");
  layouts = f.layouts;
  layouts[0].format = static_cast<qwenvl::PixelFormat>(42);
  expect_fault([&] { qk::frames_to_rgb(bytes, layouts); }, "unknown pixel format 42");
  layouts = f.layouts;
  layouts[0].yuv_matrix = static_cast<qwenvl::YuvMatrix>(9);
  expect_fault([&] { qk::frames_to_rgb(bytes, layouts); }, "unknown YUV matrix 9");
  expect_fault([&] { qk::frames_to_rgb(bytes, {}); }, "no frames");
  expect_fault([&] { qk::frames_to_rgb(bytes.to(at::kInt), f.layouts); }, "contiguous 1-d uint8");
  expect_fault([&] { qk::prepare_frames(bytes, f.layouts, 30, 28, levels, {}); }, "multiple of patch_size * merge_size");
  expect_fault([&] { qk::prepare_frames(bytes, f.layouts, 0, 28, levels, {}); }, "each side must be 1 to");
  const at::Tensor rgb = at::zeros({1, 28, 28, 3}, at::kByte);
  expect_fault([&] { qk::patchify_levels(rgb, levels.view({-1}), {}); }, "level_values must be a float32 [3, 256]");
  expect_fault([&] { qk::patchify_levels(rgb, levels, {14, 0, 2}); }, "must be positive");
  expect_fault([&] { qk::resize_bicubic_aa(rgb.permute({0, 3, 1, 2}), 28, 28); }, "[N, H, W, 3]");
}

// ---------------------------------------------------------------------------------------------
// linear: the decode projections. Truth: float64 x·Wᵀ + b from the same rounded inputs. The
// libtorch error: at::linear on the same tensors and device (cuBLAS on CUDA). The kernel's output
// is fresh, so its memory is poisoned beforehand: a NaN tensor of the output's size is freed just
// before the call, and the caching allocator hands that block back. Calls the kernel does not take
// must be at::linear's own result, bitwise, and must be counted as such.

struct LinearCase {
  std::vector<int64_t> lead;  // x's leading dimensions: rows = their product
  int64_t n, k;
  bool bias;
  bool strided_x = false;  // x a column slice of a wider tensor (rows not contiguous)
};

enum class LinearPath { kKernel, kFallback };

void run_linear(const LinearCase& c, at::ScalarType dtype, at::Device device, LinearPath path) {
  const uint64_t seed = fresh_seed();
  std::vector<int64_t> shape = c.lead;
  shape.push_back(c.k);
  at::Tensor x = randn(shape, dtype, device);
  if (c.strided_x) {
    std::vector<int64_t> wide = c.lead;
    wide.push_back(c.k + 8);
    x = randn(wide, dtype, device).narrow(-1, 3, c.k);
  }
  const at::Tensor w = randn({c.n, c.k}, dtype, device);
  const at::Tensor b = c.bias ? randn({c.n}, dtype, device) : at::Tensor();
  std::vector<int64_t> out_shape = c.lead;
  out_shape.push_back(c.n);
  int64_t out_numel = c.n;
  for (int64_t d : c.lead) out_numel *= d;
  (void)poisoned({out_numel}, dtype, device);  // freed at once: the block the output will likely get
  const auto before = qk::dispatch_counts();
  const at::Tensor out = qk::linear(x, w, b);
  const auto calls = qk::dispatch_counts().since(before);
  // libtorch's own error: at::linear where the call falls back to it (the same op, bitwise), else on
  // the CPU (bf16/fp16 with fp32 sums, as cuBLAS), so that the kernel's case runs no cuBLAS GEMM:
  // under compute-sanitizer racecheck cuBLAS's GEMM for the 2x3x256 case stops with "failed to
  // handle a hardware exception", also with our kernel left out of the instrumentation.
  const at::Tensor lib = path == LinearPath::kFallback
                             ? at::linear(x, w, b)
                             : at::linear(x.cpu(), w.cpu(), b.defined() ? b.cpu() : at::Tensor());

  std::string lead;
  for (int64_t d : c.lead) lead += std::to_string(d) + "x";
  const std::string what = std::string("linear ") + dtype_name(dtype) + " " + lead + std::to_string(c.k) + " · " +
                           std::to_string(c.n) + "x" + std::to_string(c.k) + (c.bias ? " + bias" : "") +
                           (c.strided_x ? " (strided x)" : "") + (device.is_cuda() ? "" : " cpu");
  SCOPED_TRACE(what + " seed " + std::to_string(seed));
  ASSERT_EQ(out.sizes(), at::IntArrayRef(out_shape));
  EXPECT_TRUE(out.is_contiguous());
  EXPECT_EQ(out.scalar_type(), dtype);
  using qk::DispatchPath;
  const DispatchPath want = path == LinearPath::kKernel       ? DispatchPath::kCudaKernel
                            : device.is_cuda() ? DispatchPath::kReferenceOnCuda
                                               : DispatchPath::kCpuReference;
  for (auto p : {DispatchPath::kCudaKernel, DispatchPath::kReferenceOnCuda, DispatchPath::kCpuReference})
    EXPECT_EQ(calls(qk::KernelOp::kLinear, p), p == want ? 1u : 0u) << "dispatch path " << int(p);
  if (path == LinearPath::kFallback) {
    EXPECT_TRUE(at::equal(out, lib)) << what << ": a call the kernel does not take must be at::linear's";
    std::printf("  %-58s at::linear, bitwise\n", what.c_str());
    return;
  }
  // The fp64 reference on the CPU as well (no cuBLAS GEMM, see above).
  at::Tensor ref = at::matmul(x.to(at::kCPU, at::kDouble), w.to(at::kCPU, at::kDouble).t());
  if (c.bias) ref = ref + b.to(at::kCPU, at::kDouble);
  expect_earned(what, out, rel_err(out.cpu(), ref), rel_err(lib, ref), dtype);
}

// The projections of the 7B (qkv 4608x3584 with bias, o 3584², gate_up 37888x3584, down 3584x18944)
// and the 3B at decode batches 1..8; tails of rows (N not a multiple of 16 or 32) and of K (not a
// multiple of 32), two tiles per CTA (M > 4 with many rows), a 1-d x, x with leading dimensions.
const std::vector<LinearCase> kLinearCudaCases = {
    {{1}, 3584, 3584, false},  {{3}, 4608, 3584, true},   {{8}, 3584, 18944, false}, {{1}, 37888, 3584, false},
    {{8}, 22016, 2048, false}, {{2, 3}, 2560, 2048, true}, {{1}, 2048, 11008, false}, {{5}, 8200, 264, true},
    {{1}, 5, 8, false},        {{3}, 5, 8, true},          {{7}, 37, 104, true},      {{}, 300, 72, true},
    {{4}, 1000, 520, false, true},
};
const std::vector<LinearCase> kLinearSmallCases = {
    {{1}, 37, 104, true}, {{3}, 5, 8, false}, {{2, 3}, 64, 256, true}, {{}, 30, 72, false}, {{8}, 70, 200, true, true},
};

TEST(Linear, CpuIsAtLinear) {
  for (const auto& c : kLinearSmallCases)
    for (auto dtype : {at::kBFloat16, at::kFloat}) run_linear(c, dtype, at::kCPU, LinearPath::kFallback);
}

TEST(Linear, CudaKernelWithinLibtorchError) {
  REQUIRE_CUDA();
  for (const auto& c : small_cases() ? kLinearSmallCases : kLinearCudaCases)
    for (auto dtype : {at::kBFloat16, at::kHalf}) run_linear(c, dtype, at::kCUDA, LinearPath::kKernel);
}

// What the kernel does not take is at::linear (cuBLAS): 9 rows, fp32, K off the 16-byte vectors, a
// transposed (non-contiguous) weight.
TEST(Linear, CudaFallbacksAreAtLinear) {
  REQUIRE_CUDA();
  run_linear({{9}, 300, 256, true}, at::kBFloat16, at::kCUDA, LinearPath::kFallback);
  run_linear({{3, 4}, 300, 256, false}, at::kHalf, at::kCUDA, LinearPath::kFallback);
  run_linear({{1}, 300, 256, true}, at::kFloat, at::kCUDA, LinearPath::kFallback);
  run_linear({{2}, 300, 20, false}, at::kBFloat16, at::kCUDA, LinearPath::kFallback);
  const at::Tensor x = randn({2, 64}, at::kBFloat16, at::kCUDA);
  const at::Tensor w = randn({64, 48}, at::kBFloat16, at::kCUDA).t();  // [48, 64], not contiguous
  const auto before = qk::dispatch_counts();
  const at::Tensor out = qk::linear(x, w);
  EXPECT_EQ(qk::dispatch_counts().since(before)(qk::KernelOp::kLinear, qk::DispatchPath::kReferenceOnCuda), 1u);
  EXPECT_TRUE(at::equal(out, at::linear(x, w))) << "transposed weight";
}

TEST(Linear, FaultsNameTheOperation) {
  const at::Tensor x = at::randn({2, 64});
  const at::Tensor w = at::randn({48, 64});
  const auto expect_fault = [](const std::function<void()>& call, const std::string& words) {
    ::expect_fault("linear: ", call, words);
  };
  expect_fault([&] { qk::linear(at::randn({2, 63}), w); }, "the last dimension of x must be K = 64");
  expect_fault([&] { qk::linear(x, w.view({48, 8, 8})); }, "weight must have 2 dimensions");
  expect_fault([&] { qk::linear(x, w, at::randn({47})); }, "bias must be [48]");
  expect_fault([&] { qk::linear(x, w.to(at::kBFloat16)); }, "must share one dtype");
  expect_fault([&] { qk::linear(x, w, at::randn({48}).to(at::kHalf)); }, "bias must share x's dtype");
}

// ---------------------------------------------------------------------------------------------
// apply_token_bitmask: exact. The reference unpacks the bits with libtorch ops (the engine's former
// mask) and sets the forbidden ids to -inf; rows without a mask, and allowed ids, keep their bits.

struct BitmaskCase {
  int64_t rows, masked, vocab, words;  // logits [rows, vocab]; `masked` mask rows of `words` words
};

void run_bitmask(const BitmaskCase& c, at::Device device) {
  const uint64_t seed = fresh_seed();
  const at::Tensor logits = at::randn({c.rows, c.vocab});
  // Random bits, and three rows of patterns: nothing allowed, everything, one id past a word edge.
  at::Tensor bits = at::randint(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(),
                                {c.masked, c.words}, at::TensorOptions().dtype(at::kInt));
  if (c.masked > 1) bits[0].zero_();
  if (c.masked > 2) bits[1].fill_(-1);
  if (c.masked > 3) {
    bits[2].zero_();
    bits[2][std::min<int64_t>(1, c.words - 1)] = 1;
  }
  const at::Tensor rows = at::randperm(c.rows, at::TensorOptions().dtype(at::kLong)).slice(0, 0, c.masked).to(at::kInt);
  const at::Tensor shifts = at::arange(32, at::TensorOptions().dtype(at::kInt));
  const at::Tensor forbidden =
      at::bitwise_and(at::bitwise_right_shift(bits.unsqueeze(-1), shifts), 1).view({c.masked, c.words * 32}).narrow(1, 0, c.vocab).eq(0);
  at::Tensor expected = logits.clone();
  const at::Tensor index = rows.to(at::kLong);
  expected.index_put_({index}, expected.index_select(0, index).masked_fill(forbidden, -std::numeric_limits<float>::infinity()));

  at::Tensor out = logits.to(device);
  qk::apply_token_bitmask(out, bits.to(device), rows.to(device));
  SCOPED_TRACE("apply_token_bitmask rows " + std::to_string(c.rows) + " masked " + std::to_string(c.masked) + " vocab " +
               std::to_string(c.vocab) + " seed " + std::to_string(seed));
  EXPECT_TRUE(at::equal(out.cpu(), expected));
  if (c.masked > 1) {
    EXPECT_TRUE(at::isinf(out.cpu()[rows[0].item<int64_t>()]).all().item<bool>()) << "nothing allowed";
  }
}

const std::vector<BitmaskCase> kBitmaskCases = {
    {1, 1, 151936, 4748}, {64, 64, 151936, 4748}, {9, 4, 1000, 32}, {5, 2, 33, 2}, {6, 5, 70, 4}, {3, 0, 64, 2},
};

TEST(TokenBitmask, CpuPathIsExact) {
  for (const auto& c : kBitmaskCases) run_bitmask(c, at::kCPU);
}

TEST(TokenBitmask, CudaKernelIsExact) {
  REQUIRE_CUDA();
  for (const auto& c : kBitmaskCases) run_bitmask(c, at::kCUDA);
}

TEST(TokenBitmask, FaultsNameTheOperation) {
  at::Tensor logits = at::zeros({2, 100});
  const at::Tensor rows = at::zeros({1}, at::TensorOptions().dtype(at::kInt));
  expect_fault("apply_token_bitmask", [&] { qk::apply_token_bitmask(logits, at::zeros({1, 3}, at::kInt), rows); },
               "cannot cover 100 ids");
  expect_fault("apply_token_bitmask", [&] { qk::apply_token_bitmask(logits, at::zeros({2, 4}, at::kInt), rows); },
               "one row index per mask row");
  expect_fault("apply_token_bitmask",
               [&] { qk::apply_token_bitmask(logits, at::zeros({1, 4}, at::kInt), at::full({1}, 2, at::TensorOptions().dtype(at::kInt))); },
               "row index 2 outside [0, 2)");
  EXPECT_TRUE(at::equal(logits, at::zeros({2, 100}))) << "a refused call changes nothing";
}

// ---------------------------------------------------------------------------------------------
// Faults are errors that name the op, not crashes.

TEST(KernelArguments, FaultsNameTheOperation) {
  const at::Tensor q = at::randn({4, 4, 80});
  const at::Tensor k = at::randn({4, 3, 80});
  const at::Tensor cu = at::tensor(std::vector<int32_t>{0, 4}, at::TensorOptions().dtype(at::kInt));
  try {
    qk::flash_attention_varlen(q, k, k, cu, cu, 4, 4, 0.1, false);
    FAIL() << "4 heads over 3 kv heads must be refused";
  } catch (const qwenvl::kernels::Error& e) {
    EXPECT_NE(std::string(e.what()).find("flash_attention_varlen"), std::string::npos) << e.what();
  }
}

}  // namespace
