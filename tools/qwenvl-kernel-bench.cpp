// qwenvl-kernel-bench: our attention kernels against torch's SDPA backends on one GPU, in one run,
// measured as ../shared/docs/BENCHMARK-METHOD.md measured the reference figures of issue 6:
//   1. prefill attention forward, bf16, in TFLOP/s (4·B·H·S²·D, halved when causal; H = query
//      heads): kernels::flash_attention_varlen against at::_scaled_dot_product_flash_attention and
//      at::_scaled_dot_product_cudnn_attention, head dim 80 (16/16 heads, the vision tower) and 128
//      (28/4, 7B), lengths 1k-16k with B = 16384 / S, causal and not;
//   2. decode attention, 64 sequences over a paged cache (block 64, shuffled block tables), in TB/s
//      (K and V read once, plus q and out) beside the measured device-to-device copy bandwidth, and
//      torch's SDPA backends on the same data laid out contiguously;
//   3. peak device memory of one prefill attention call (ours) at 1k, 4k and 16k tokens beside the
//      score matrix it never materialises;
//   4. the decode projections (gemv): kernels::linear against at::linear (cuBLAS) at the 7B's and
//      the 3B's projection shapes with 1 and 8 rows of x, in TB/s beside the copy bandwidth;
//   5. the copy bandwidth alone (section copy): a 2 GiB bf16 device-to-device copy, best and median
//      of the runs (scripts/bench/batch1_floor.py takes the best: the bandwidth a decode step could
//      reach). A build without CUDA measures a 1 GiB host copy instead, so the tools that read the
//      line can be tried on the CPU.
// Times are device events around each call, the L2 cache cleared before each (as
// triton.testing.do_bench does), after a warm-up; the median is printed. The bandwidth-bound
// sections (decode, gemv) also read the clearing buffer back so that the L2 holds clean lines: the
// dirty zeros would otherwise be written back during a call that reads only tens of MB. Every timed shape is also
// checked once: our output against SDPA's (max abs difference and relative Frobenius error), and the
// dispatch counters prove that our CUDA kernel, not the libtorch reference, served the call.
//
//   qwenvl-kernel-bench [--runs 30] [--warmup 5] [--sections prefill,decode,memory,matmul,gemv,copy]
// Exit status: 0 when every check held, 1 when one failed (the tables still print), 2 when there is
// no GPU to measure (or the build has no CUDA kernels).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#ifdef QWENVL_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/ops/_scaled_dot_product_attention_math.h>
#include <ATen/ops/_scaled_dot_product_cudnn_attention.h>
#include <ATen/ops/_scaled_dot_product_efficient_attention.h>
#include <ATen/ops/_scaled_dot_product_flash_attention.h>
#include <c10/core/InferenceMode.h>
#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <torch/headeronly/version.h>

#include "kernels/attention.h"
#include "kernels/device/memory.h"
#include "kernels/dispatch_counts.h"
#include "kernels/linear.h"
#endif

namespace {

struct Options {
  int runs = 30;
  int warmup = 5;
  std::string sections = "prefill,decode,memory,matmul,gemv";  // copy only when named
  bool wants(const std::string& section) const {
    std::stringstream in(sections);
    std::string item;
    while (std::getline(in, item, ','))
      if (item == section) return true;
    return false;
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// The copy bandwidth line, as batch1_floor.py reads it: bytes read plus written over the time.
void print_copy_bandwidth(const char* what, double bytes, const std::vector<double>& ms) {
  const double best = *std::min_element(ms.begin(), ms.end());
  std::printf("## Copy bandwidth\n\nCopy bandwidth (%s, read + write, %zu runs): best **%.3f TB/s**, median %.3f TB/s\n\n",
              what, ms.size(), 2.0 * bytes / (best * 1e-3) / 1e12, 2.0 * bytes / (median(ms) * 1e-3) / 1e12);
  std::fflush(stdout);
}

#ifndef QWENVL_WITH_CUDA
// Without CUDA: a 1 GiB bf16 host copy, timed on the host clock.
void host_copy_section(int warmup, int runs) {
  const at::Tensor src = at::ones({1LL << 29}, at::kBFloat16);
  at::Tensor dst = at::empty_like(src);
  for (int i = 0; i < warmup; ++i) dst.copy_(src);
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    dst.copy_(src);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  print_copy_bandwidth("1 GiB bf16 host copy, no CUDA in this build", static_cast<double>(src.nbytes()), ms);
}
#endif

#ifdef QWENVL_WITH_CUDA

std::string first_line(const std::string& text) {
  const std::string line = text.substr(0, text.find('\n'));
  return line.size() > 90 ? line.substr(0, 90) + "..." : line;
}

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = kMiB * 1024.0;
// Two bf16 implementations of one function differ by rounding, about 1e-3 relative; an indexing or
// masking fault gives errors of order 1.
constexpr double kMaxRelativeDifference = 1e-2;

at::TensorOptions on_gpu(at::ScalarType dtype) { return at::TensorOptions().device(at::kCUDA, 0).dtype(dtype); }

// Median device time of `fn` in ms: warm-up calls first (module load, cuDNN plans, allocator), then
// `runs` calls, each with the L2 cache cleared before it and device events around it alone.
class EventTimer {
 public:
  EventTimer(int warmup, int runs) : warmup_(warmup), runs_(runs), flush_(at::empty({256LL << 20}, on_gpu(at::kByte))) {}

  // clean_l2: after the clearing write, read the buffer once more, so that the L2 holds clean lines;
  // otherwise the ~50 MB of dirty zeros left there are written back while `fn` runs, traffic that
  // a kernel reading only tens of MB (a decode projection) would be charged for.
  double median_ms(const std::function<void()>& fn, bool clean_l2 = false) { return median(times_ms(fn, clean_l2)); }

  // Every timed run's ms, in order.
  std::vector<double> times_ms(const std::function<void()>& fn, bool clean_l2 = false) {
    for (int i = 0; i < warmup_; ++i) fn();
    std::vector<c10::cuda::CUDAEvent> starts, stops;
    starts.reserve(runs_);
    stops.reserve(runs_);
    for (int i = 0; i < runs_; ++i) {
      starts.emplace_back(cudaEventDefault);
      stops.emplace_back(cudaEventDefault);
    }
    for (int i = 0; i < runs_; ++i) {
      flush_.zero_();
      if (clean_l2) (void)flush_.max();
      starts[i].record();
      fn();
      stops[i].record();
    }
    stops.back().synchronize();
    C10_CUDA_CHECK(cudaGetLastError());
    std::vector<double> ms;
    for (int i = 0; i < runs_; ++i) ms.push_back(starts[i].elapsed_time(stops[i]));
    return ms;
  }

 private:
  int warmup_, runs_;
  at::Tensor flush_;
};

// Our output against another implementation's, both in the other's layout.
struct Difference {
  double max_abs = 0, relative = 0;
  bool ok() const { return std::isfinite(max_abs) && std::isfinite(relative) && relative <= kMaxRelativeDifference; }
};

Difference compare(const at::Tensor& ours, const at::Tensor& theirs) {
  const at::Tensor a = ours.to(at::kFloat), b = theirs.to(at::kFloat);
  Difference d;
  d.max_abs = (a - b).abs().max().item<double>();
  d.relative = ((a - b).norm() / b.norm()).item<double>();
  return d;
}

std::string diff_cell(const std::optional<Difference>& d) {
  if (!d) return "n/a";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.2e (rel %.1e)%s", d->max_abs, d->relative, d->ok() ? "" : " **FAIL**");
  return buf;
}

std::string rate_cell(const std::optional<double>& v, int decimals) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, *v);
  return buf;
}

// One call of ours, proving from the dispatch counters that the CUDA kernel served it.
bool served_by_kernel(const std::function<void()>& fn) {
  using qwenvl::kernels::DispatchPath;
  using qwenvl::kernels::KernelOp;
  const auto before = qwenvl::kernels::dispatch_counts();
  fn();
  const auto calls = qwenvl::kernels::dispatch_counts().since(before);
  return calls(KernelOp::kAttention, DispatchPath::kCudaKernel) == 1 &&
         calls(KernelOp::kAttention, DispatchPath::kReferenceOnCuda) == 0;
}

// An SDPA backend under test: whether it took the grouped K/V as given or needed them expanded to
// the query heads (outside the timed region), and why it did not run at all.
struct Backend {
  explicit Backend(std::string backend_name) : name(std::move(backend_name)) {}
  std::string name;
  std::optional<double> rate;      // TFLOP/s or TB/s
  std::optional<Difference> diff;  // ours against it
  bool expanded_kv = false;
  std::string failure;
};

// Runs `call(k, v)` once with the grouped K/V and, should the backend refuse them, once with K/V
// expanded to the query heads; the output of the form that ran, or nullopt with the reason.
std::optional<at::Tensor> first_run(const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& call,
                                    const at::Tensor& k, const at::Tensor& v, int64_t heads, Backend& b,
                                    at::Tensor& k_used, at::Tensor& v_used) {
  k_used = k;
  v_used = v;
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      at::Tensor out = call(k_used, v_used);
      c10::cuda::device_synchronize();
      return out;
    } catch (const c10::Error& e) {
      b.failure = first_line(e.what_without_backtrace());
      (void)cudaGetLastError();
      if (attempt == 1 || k.size(1) == heads) return std::nullopt;
      b.expanded_kv = true;
      const int64_t group = heads / k.size(1);
      k_used = k.repeat_interleave(group, 1).contiguous();
      v_used = v.repeat_interleave(group, 1).contiguous();
    }
  }
  return std::nullopt;
}

// The notes under a table, each said once: `key` names what a note is about (a backend refusing
// grouped K/V at one head dim), so that error texts that differ only in sizes do not repeat.
struct Summary {
  bool all_ok = true;
  std::vector<std::pair<std::string, std::string>> notes;  // key, text
  void note(const std::string& text, const std::string& key = "") {
    const std::string k = key.empty() ? text : key;
    for (const auto& n : notes)
      if (n.first == k) return;
    notes.emplace_back(k, text);
  }
};

void print_notes(Summary& s) {
  for (const auto& n : s.notes) std::printf("- %s\n", n.second.c_str());
  s.notes.clear();
  std::printf("\n");
}

// ---- 1. Prefill attention forward -------------------------------------------------------------

void prefill_section(EventTimer& timer, Summary& summary) {
  struct Heads {
    int64_t dim, q, kv;
    double target;  // issue 6: ours / flash backend at least this
  };
  const Heads configs[] = {{80, 16, 16, 1.2}, {128, 28, 4, 1.0}};
  const int64_t total_tokens = 16384;
  std::printf("## Prefill attention forward, bf16, TFLOP/s (B = %lld / S; 4·B·H·S²·D, halved when causal)\n\n",
              static_cast<long long>(total_tokens));
  std::printf("| head dim | heads q/kv | S | B | causal | ours | SDPA flash | SDPA cuDNN | ours/flash | ours/cuDNN | "
              "issue 6 target ours/flash | ours vs flash: max abs diff | ours vs cuDNN: max abs diff |\n");
  std::printf("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|---|\n");
  for (const Heads& h : configs) {
    for (const bool causal : {false, true}) {
      for (const int64_t s : {1024, 2048, 4096, 8192, 16384}) {
        const int64_t b = total_tokens / s;
        const double scale = 1.0 / std::sqrt(static_cast<double>(h.dim));
        const double flops = 4.0 * b * h.q * static_cast<double>(s) * s * h.dim * (causal ? 0.5 : 1.0);
        const auto tflops = [&](double ms) { return flops / (ms * 1e-3) / 1e12; };

        // Ours: token-major packed sequences. SDPA: (B, heads, S, D) contiguous, the same values.
        const at::Tensor q = at::randn({b * s, h.q, h.dim}, on_gpu(at::kBFloat16));
        const at::Tensor k = at::randn({b * s, h.kv, h.dim}, on_gpu(at::kBFloat16));
        const at::Tensor v = at::randn({b * s, h.kv, h.dim}, on_gpu(at::kBFloat16));
        const at::Tensor cu = at::arange(0, (b + 1) * s, s, on_gpu(at::kInt));
        const auto to_bhsd = [&](const at::Tensor& t) { return t.view({b, s, t.size(1), h.dim}).transpose(1, 2).contiguous(); };
        const at::Tensor qs = to_bhsd(q), ks = to_bhsd(k), vs = to_bhsd(v);

        at::Tensor ours = at::empty_like(q);
        const auto run_ours = [&] {
          qwenvl::kernels::flash_attention_varlen_out(q, k, v, cu, cu, s, s, scale, causal, ours);
        };
        ours.fill_(NAN);  // poisoned: an unwritten element fails the comparison
        if (!served_by_kernel(run_ours)) {
          summary.all_ok = false;
          summary.note("ours: the CUDA kernel did not serve the call (libtorch reference ran): **FAIL**");
        }
        const at::Tensor ours_bhsd = ours.view({b, s, h.q, h.dim}).transpose(1, 2);
        const double ours_tflops = tflops(timer.median_ms(run_ours));

        Backend flash{"flash"}, cudnn{"cuDNN"};
        const auto flash_call = [&](const at::Tensor& kk, const at::Tensor& vv) {
          return std::get<0>(at::_scaled_dot_product_flash_attention(qs, kk, vv, 0.0, causal, false, scale));
        };
        const auto cudnn_call = [&](const at::Tensor& kk, const at::Tensor& vv) {
          return std::get<0>(at::_scaled_dot_product_cudnn_attention(qs, kk, vv, std::nullopt,
                                                                     /*compute_log_sumexp=*/false, 0.0, causal,
                                                                     false, scale));
        };
        for (auto [backend, call] : {std::pair{&flash, std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>(flash_call)},
                                     std::pair{&cudnn, std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>(cudnn_call)}}) {
          at::Tensor kk, vv;
          const auto out = first_run(call, ks, vs, h.q, *backend, kk, vv);
          if (!out) {
            summary.note("SDPA " + backend->name + " did not run at d " + std::to_string(h.dim) + " (first error: " +
                         backend->failure + ")", "norun " + backend->name + std::to_string(h.dim));
            continue;
          }
          backend->diff = compare(ours_bhsd, *out);
          if (backend->expanded_kv)
            summary.note("SDPA " + backend->name + " refused grouped K/V at d " + std::to_string(h.dim) + " (" +
                         backend->failure + "): K/V expanded to the query heads outside the timed region",
                         "expanded " + backend->name + std::to_string(h.dim));
          backend->rate = tflops(timer.median_ms([&] { (void)call(kk, vv); }));
        }
        // Ours must agree with the reference backend (flash; cuDNN where flash did not run).
        const Backend& ref = flash.diff ? flash : cudnn;
        if (!ref.diff || !ref.diff->ok()) {
          summary.all_ok = false;
          summary.note("ours disagrees with SDPA (or no SDPA backend ran) at d " + std::to_string(h.dim) + " S " +
                       std::to_string(s) + (causal ? " causal" : "") + ": **FAIL**");
        }
        const auto ratio = [&](const Backend& x) {
          return x.rate ? std::optional<double>(ours_tflops / *x.rate) : std::nullopt;
        };
        const auto r_flash = ratio(flash);
        std::string target = "n/a";
        if (r_flash) target = std::string(*r_flash >= h.target ? "met" : "not met") + " (≥ " + rate_cell(h.target, 1) + ")";
        std::printf("| %lld | %lld/%lld | %lld | %lld | %s | %.1f | %s | %s | %s | %s | %s | %s | %s |\n",
                    static_cast<long long>(h.dim), static_cast<long long>(h.q), static_cast<long long>(h.kv),
                    static_cast<long long>(s), static_cast<long long>(b), causal ? "yes" : "no", ours_tflops,
                    rate_cell(flash.rate, 1).c_str(), rate_cell(cudnn.rate, 1).c_str(), rate_cell(r_flash, 2).c_str(),
                    rate_cell(ratio(cudnn), 2).c_str(), target.c_str(), diff_cell(flash.diff).c_str(),
                    diff_cell(cudnn.diff).c_str());
        std::fflush(stdout);
      }
    }
  }
  summary.note("SDPA inputs are (B, heads, S, D) contiguous, as the reference figures; ours are token-major "
               "[B·S, heads, D] with cu_seqlens (the engine's layout). Diffs: max |ours − SDPA| over all outputs "
               "(relative Frobenius error in brackets; FAIL above " + rate_cell(kMaxRelativeDifference, 2) + ").");
  print_notes(summary);
}

// ---- bf16 matmul rate: the ceiling prefill is measured against ---------------------------------

// cuBLAS through at::mm, bf16 in, bf16 out, at the shapes of a batch prefill (M = tokens of a batch
// of frames, N/K = the 7B's projections) and one square case.
void matmul_section(EventTimer& timer) {
  std::printf("## bf16 matmul rate (at::mm, cuBLAS), TFLOP/s\n\n| M | N | K | TFLOP/s |\n|---:|---:|---:|---:|\n");
  const int64_t shapes[][3] = {{8192, 8192, 8192}, {17984, 4608, 3584}, {17984, 37888, 3584}, {17984, 3584, 18944}};
  for (const auto& mnk : shapes) {
    const at::Tensor a = at::randn({mnk[0], mnk[2]}, on_gpu(at::kBFloat16));
    const at::Tensor b = at::randn({mnk[2], mnk[1]}, on_gpu(at::kBFloat16));
    const double ms = timer.median_ms([&] { (void)at::mm(a, b); });
    std::printf("| %lld | %lld | %lld | %.1f |\n", static_cast<long long>(mnk[0]), static_cast<long long>(mnk[1]),
                static_cast<long long>(mnk[2]), 2.0 * mnk[0] * mnk[1] * mnk[2] / (ms * 1e-3) / 1e12);
  }
  std::printf("\n(M = 64 frames x 281 prompt tokens; N, K: the 7B's fused qkv, gate-up and down projections.)\n\n");
  std::fflush(stdout);
}

// ---- 2. Decode attention ------------------------------------------------------------------------

// Device-to-device copy of a 2 GiB bf16 tensor, bytes read plus written over the time, in TB/s.
double copy_bandwidth_tbs(EventTimer& timer) {
  const at::Tensor src = at::randn({1LL << 30}, on_gpu(at::kBFloat16));
  at::Tensor dst = at::empty_like(src);
  const double ms = timer.median_ms([&] { dst.copy_(src); });
  return 2.0 * src.nbytes() / (ms * 1e-3) / 1e12;
}

// The same copy, every run's time: its best and median (section copy).
void copy_section(EventTimer& timer) {
  const at::Tensor src = at::randn({1LL << 30}, on_gpu(at::kBFloat16));
  at::Tensor dst = at::empty_like(src);
  print_copy_bandwidth("2 GiB bf16 device-to-device copy", static_cast<double>(src.nbytes()),
                       timer.times_ms([&] { dst.copy_(src); }));
}

// Decode as the engine's CUDA graphs call it: max_seq_len is the cache capacity (block-table width x
// block size) while the sequences are shorter; batch 1 is the latency case (the kernel splits the
// context to fill the SMs, splits past the length exit at once).
void decode_capacity_section(EventTimer& timer, Summary& summary) {
  const int64_t heads = 28, kv_heads = 4, dim = 128, block = 64;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  struct Row {
    int64_t seqs, ctx, capacity;
  };
  const Row rows[] = {{1, 300, 8192}, {1, 1000, 8192}, {1, 4096, 8192}, {64, 1024, 8192}, {64, 4096, 8192}};
  std::printf("## Decode attention at the graph capacity, bf16 (heads %lld/%lld, head dim %lld, block %lld, "
              "max_seq_len = capacity)\n\n",
              static_cast<long long>(heads), static_cast<long long>(kv_heads), static_cast<long long>(dim),
              static_cast<long long>(block));
  std::printf("| sequences | context | max_seq_len | ours µs | ours TB/s | SDPA flash µs (contiguous) | "
              "ours vs SDPA flash: max abs diff |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---|\n");
  for (const Row& r : rows) {
    const int64_t used = (r.ctx + block - 1) / block, width = r.capacity / block;
    const at::Tensor k_cache = at::randn({r.seqs * used, block, kv_heads, dim}, on_gpu(at::kBFloat16));
    const at::Tensor v_cache = at::randn({r.seqs * used, block, kv_heads, dim}, on_gpu(at::kBFloat16));
    const at::Tensor perm = at::randperm(r.seqs * used, on_gpu(at::kLong)).view({r.seqs, used});
    at::Tensor block_tables = at::zeros({r.seqs, width}, on_gpu(at::kInt));
    block_tables.slice(1, 0, used).copy_(perm);
    const at::Tensor seq_lens = at::full({r.seqs}, r.ctx, on_gpu(at::kInt));
    const at::Tensor q = at::randn({r.seqs, heads, dim}, on_gpu(at::kBFloat16));
    at::Tensor ours = at::full_like(q, NAN);
    const auto run_ours = [&] {
      qwenvl::kernels::paged_decode_attention_out(q, k_cache, v_cache, block_tables, seq_lens, r.capacity, scale, ours);
    };
    if (!served_by_kernel(run_ours)) {
      summary.all_ok = false;
      summary.note("ours (decode): the CUDA kernel did not serve the call (libtorch reference ran): **FAIL**");
    }
    const double ours_ms = timer.median_ms(run_ours);
    const double bytes = 2.0 * r.seqs * r.ctx * kv_heads * dim * 2 + 2.0 * q.nbytes();
    const auto gather = [&](const at::Tensor& cache) {
      return cache.index_select(0, perm.flatten())
          .view({r.seqs, used * block, kv_heads, dim}).slice(1, 0, r.ctx).transpose(1, 2).contiguous();
    };
    const at::Tensor ks = gather(k_cache), vs = gather(v_cache);
    const at::Tensor qs = q.unsqueeze(2);
    Backend flash{"flash"};
    const auto flash_call = [&](const at::Tensor& kk, const at::Tensor& vv) {
      return std::get<0>(at::_scaled_dot_product_flash_attention(qs, kk, vv, 0.0, false, false, scale));
    };
    at::Tensor kk, vv;
    std::optional<double> flash_us;
    if (const auto out = first_run(flash_call, ks, vs, heads, flash, kk, vv)) {
      flash.diff = compare(ours.unsqueeze(2), *out);
      flash_us = timer.median_ms([&] { (void)flash_call(kk, vv); }) * 1e3;
      if (!flash.diff->ok()) {
        summary.all_ok = false;
        summary.note("ours (decode at capacity) disagrees with SDPA flash at " + std::to_string(r.seqs) + " x " +
                     std::to_string(r.ctx) + ": **FAIL**");
      }
    }
    std::printf("| %lld | %lld | %lld | %.1f | %.2f | %s | %s |\n", static_cast<long long>(r.seqs),
                static_cast<long long>(r.ctx), static_cast<long long>(r.capacity), ours_ms * 1e3,
                bytes / (ours_ms * 1e-3) / 1e12, rate_cell(flash_us, 1).c_str(), diff_cell(flash.diff).c_str());
    std::fflush(stdout);
  }
  summary.note("Block tables are capacity / block wide; the entries past a sequence's blocks are 0. SDPA flash "
               "gets the sequences' own tokens, contiguous (no capacity).");
  print_notes(summary);
}

void decode_section(EventTimer& timer, Summary& summary) {
  const int64_t seqs = 64, heads = 28, kv_heads = 4, dim = 128, block = 64;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  const double copy_tbs = copy_bandwidth_tbs(timer);
  std::printf("## Decode attention, bf16, TB/s (%lld sequences, one query each, heads %lld/%lld, head dim %lld, "
              "paged cache block %lld, shuffled block tables)\n\n",
              static_cast<long long>(seqs), static_cast<long long>(heads), static_cast<long long>(kv_heads),
              static_cast<long long>(dim), static_cast<long long>(block));
  std::printf("Measured copy bandwidth (2 GiB bf16 device-to-device copy, read + write): **%.2f TB/s**\n\n", copy_tbs);
  // Two clearings of the L2 before each call. "Clean" reads the clearing buffer back, so the L2 holds
  // clean lines, as in the decode step, where the kernels before attention read weights and write a
  // few KB. "Dirty" is the zeroing alone (triton's do_bench): ~50 MB of dirty zeros are written back
  // to DRAM while the kernel reads, which at 1k is a third more traffic than the K/V it reads.
  std::printf("| context | K+V bytes | ours µs (L2 clean) | ours TB/s | ours / copy | issue 6 target (≥ 0.80 of copy) | "
              "ours µs (L2 dirty) | ours / copy (L2 dirty) | SDPA flash TB/s (clean) | SDPA flash TB/s (dirty) | "
              "SDPA efficient TB/s (clean) | SDPA math TB/s (clean) | ours vs SDPA flash (else efficient, math): max abs diff |\n");
  std::printf("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n");
  for (const int64_t ctx : {1024, 4096, 8192, 16384}) {
    const int64_t blocks_per_seq = ctx / block, num_blocks = seqs * blocks_per_seq;
    const at::Tensor k_cache = at::randn({num_blocks, block, kv_heads, dim}, on_gpu(at::kBFloat16));
    const at::Tensor v_cache = at::randn({num_blocks, block, kv_heads, dim}, on_gpu(at::kBFloat16));
    // Every block used once, in random order: sequences do not own contiguous runs of the cache.
    const at::Tensor block_tables = at::randperm(num_blocks, on_gpu(at::kLong)).to(at::kInt).view({seqs, blocks_per_seq});
    const at::Tensor seq_lens = at::full({seqs}, ctx, on_gpu(at::kInt));
    const at::Tensor q = at::randn({seqs, heads, dim}, on_gpu(at::kBFloat16));
    at::Tensor ours = at::empty_like(q);
    const auto run_ours = [&] {
      qwenvl::kernels::paged_decode_attention_out(q, k_cache, v_cache, block_tables, seq_lens, ctx, scale, ours);
    };
    ours.fill_(NAN);
    if (!served_by_kernel(run_ours)) {
      summary.all_ok = false;
      summary.note("ours (decode): the CUDA kernel did not serve the call (libtorch reference ran): **FAIL**");
    }
    const double bytes = 2.0 * k_cache.nbytes() + 2.0 * q.nbytes();  // K and V once, q in, out
    const double ours_ms = timer.median_ms(run_ours, /*clean_l2=*/true);
    const double ours_tbs = bytes / (ours_ms * 1e-3) / 1e12;
    const double ours_dirty_ms = timer.median_ms(run_ours);

    // The same cache gathered per sequence into (seqs, kv_heads, ctx, dim), outside the timed region.
    const auto gather = [&](const at::Tensor& cache) {
      return cache.index_select(0, block_tables.flatten().to(at::kLong))
          .view({seqs, ctx, kv_heads, dim}).transpose(1, 2).contiguous();
    };
    const at::Tensor ks = gather(k_cache), vs = gather(v_cache);
    const at::Tensor qs = q.unsqueeze(2);  // (seqs, heads, 1, dim)
    const at::Tensor ours_b = ours.unsqueeze(2);
    using Call = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;
    Backend flash{"flash"}, efficient{"efficient"}, math{"math"};
    std::optional<double> flash_dirty_rate;
    const Call flash_call = [&](const at::Tensor& kk, const at::Tensor& vv) {
      return std::get<0>(at::_scaled_dot_product_flash_attention(qs, kk, vv, 0.0, false, false, scale));
    };
    const Call efficient_call = [&](const at::Tensor& kk, const at::Tensor& vv) {
      return std::get<0>(at::_scaled_dot_product_efficient_attention(qs, kk, vv, std::nullopt, false, 0.0, false, scale));
    };
    const Call math_call = [&](const at::Tensor& kk, const at::Tensor& vv) {
      return std::get<0>(at::_scaled_dot_product_attention_math(qs, kk, vv, std::nullopt, 0.0, false, std::nullopt,
                                                                 scale, /*enable_gqa=*/kk.size(1) != heads));
    };
    for (auto [backend, call] : {std::pair{&flash, flash_call}, std::pair{&efficient, efficient_call}, std::pair{&math, math_call}}) {
      at::Tensor kk, vv;
      const auto out = first_run(call, ks, vs, heads, *backend, kk, vv);
      if (!out) {
        summary.note("SDPA " + backend->name + " did not run at context " + std::to_string(ctx) + ": " + backend->failure,
                     "norun " + backend->name + std::to_string(ctx));
        continue;
      }
      backend->diff = compare(ours_b, *out);
      if (backend->expanded_kv)
        summary.note("SDPA " + backend->name + " refused grouped K/V (" + backend->failure +
                         "): K/V expanded to the query heads outside the timed region; its TB/s still counts the "
                         "grouped bytes (what the work needs)",
                     "expanded " + backend->name);
      backend->rate = bytes / (timer.median_ms([&] { (void)call(kk, vv); }, /*clean_l2=*/true) * 1e-3) / 1e12;
      if (backend == &flash) flash_dirty_rate = bytes / (timer.median_ms([&] { (void)call(kk, vv); }) * 1e-3) / 1e12;
    }
    const Backend& ref = flash.diff ? flash : (efficient.diff ? efficient : math);
    if (!ref.diff || !ref.diff->ok()) {
      summary.all_ok = false;
      summary.note("ours (decode) disagrees with SDPA (or no SDPA backend ran) at context " + std::to_string(ctx) + ": **FAIL**");
    }
    const double of_copy = ours_tbs / copy_tbs;
    const double dirty_of_copy = bytes / (ours_dirty_ms * 1e-3) / 1e12 / copy_tbs;
    std::printf("| %lld | %.0f MiB | %.1f | %.2f | %.2f | %s | %.1f | %.2f | %s | %s | %s | %s | %s |\n",
                static_cast<long long>(ctx), 2.0 * k_cache.nbytes() / kMiB, ours_ms * 1e3, ours_tbs, of_copy,
                of_copy >= 0.8 ? "met" : "not met", ours_dirty_ms * 1e3, dirty_of_copy, rate_cell(flash.rate, 2).c_str(),
                rate_cell(flash_dirty_rate, 2).c_str(), rate_cell(efficient.rate, 2).c_str(),
                rate_cell(math.rate, 2).c_str(), diff_cell(ref.diff).c_str());
    std::fflush(stdout);
  }
  summary.note("Bytes = K and V of every sequence read once, plus q and out; SDPA gets the same cache gathered "
               "into (seqs, kv heads, context, D) contiguous tensors and q as (seqs, heads, 1, D).");
  print_notes(summary);
  decode_capacity_section(timer, summary);
}

// ---- 3. Memory linear in context ----------------------------------------------------------------

void memory_section(Summary& summary) {
  struct Case {
    int64_t dim, q, kv;
    bool causal;
    const char* what;
  };
  const Case cases[] = {{128, 28, 4, true, "7B prefill"}, {80, 16, 16, false, "vision full attention"}};
  std::printf("## Peak device memory of one prefill attention call (ours, bf16, one sequence)\n\n");
  std::printf("| case | tokens | q+k+v MiB | output MiB | peak above inputs MiB | peak above inputs per token KiB | "
              "score matrix (heads·S², bf16) MiB |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (const Case& c : cases) {
    for (const int64_t s : {1024, 4096, 16384}) {
      const at::Tensor q = at::randn({s, c.q, c.dim}, on_gpu(at::kBFloat16));
      const at::Tensor k = at::randn({s, c.kv, c.dim}, on_gpu(at::kBFloat16));
      const at::Tensor v = at::randn({s, c.kv, c.dim}, on_gpu(at::kBFloat16));
      const at::Tensor cu = at::arange(0, 2 * s, s, on_gpu(at::kInt));  // [0, s]
      c10::cuda::device_synchronize();
      qwenvl::kernels::reset_peak_device_memory(0);
      const int64_t before = qwenvl::kernels::peak_device_memory_bytes(0);  // = allocated now
      const at::Tensor out = qwenvl::kernels::flash_attention_varlen(q, k, v, cu, cu, s, s,
                                                                     1.0 / std::sqrt(double(c.dim)), c.causal);
      c10::cuda::device_synchronize();
      const double extra = static_cast<double>(qwenvl::kernels::peak_device_memory_bytes(0) - before);
      const double scores = 2.0 * c.q * static_cast<double>(s) * s;
      std::printf("| %s (d %lld, %lld/%lld%s) | %lld | %.1f | %.1f | %.1f | %.2f | %.0f |\n", c.what,
                  static_cast<long long>(c.dim), static_cast<long long>(c.q), static_cast<long long>(c.kv),
                  c.causal ? ", causal" : "", static_cast<long long>(s),
                  (q.nbytes() + k.nbytes() + v.nbytes()) / kMiB, out.nbytes() / kMiB, extra / kMiB, extra / s / 1024.0,
                  scores / kMiB);
    }
  }
  summary.note("Peak = the caching allocator's peak allocated bytes (torch.cuda.max_memory_allocated) during the "
               "call, less what was allocated before it (the inputs). Linear: 16x the tokens, 16x the peak; the "
               "score matrix would grow 256x.");
  print_notes(summary);
}

// ---- 4. Decode projections (matrix-vector) ----------------------------------------------------

// kernels::linear against at::linear (cuBLAS) on the same bf16 tensors, x of 1 and 8 rows. Bytes =
// the weight (and bias) read once, plus x and the output; each figure beside the measured copy
// bandwidth. One check per shape: ours within 2 bf16 ulps of the largest output of at::linear
// (two fp32 sums in different orders rounded once), and served by our kernel.
void gemv_section(EventTimer& timer, Summary& summary) {
  struct Shape {
    const char* model;
    const char* name;
    int64_t n, k;
    bool bias;
  };
  const Shape shapes[] = {
      {"7B", "qkv", 4608, 3584, true},      {"7B", "o_proj", 3584, 3584, false}, {"7B", "gate_up", 37888, 3584, false},
      {"7B", "down", 3584, 18944, false},   {"7B", "lm_head", 152064, 3584, false},
      {"3B", "qkv", 2560, 2048, true},      {"3B", "o_proj", 2048, 2048, false}, {"3B", "gate_up", 22016, 2048, false},
      {"3B", "down", 2048, 11008, false},   {"3B", "lm_head", 151936, 2048, false},
  };
  const double target = 0.92;
  const double copy_tbs = copy_bandwidth_tbs(timer);
  std::printf("## Decode projections (gemv), bf16, TB/s: kernels::linear against at::linear (cuBLAS)\n\n");
  std::printf("Measured copy bandwidth (2 GiB bf16 device-to-device copy, read + write): **%.2f TB/s**\n\n", copy_tbs);
  std::printf("| model | projection | N x K | M | weight MiB | ours µs | ours TB/s | ours / copy | target (≥ %.2f of copy) | "
              "at::linear µs | at::linear TB/s | at::linear / copy | at::linear µs / ours µs | ours vs at::linear: max abs diff |\n",
              target);
  std::printf("|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|\n");
  for (const Shape& s : shapes) {
    // Weights scaled by 1/sqrt(K): outputs of order 1, as in the model.
    const at::Tensor w = (at::randn({s.n, s.k}, on_gpu(at::kBFloat16)) * (1.0 / std::sqrt(double(s.k))));
    const at::Tensor b = s.bias ? at::randn({s.n}, on_gpu(at::kBFloat16)) : at::Tensor();
    for (const int64_t m : {1, 8}) {
      const at::Tensor x = at::randn({m, s.k}, on_gpu(at::kBFloat16));
      using qwenvl::kernels::DispatchPath;
      using qwenvl::kernels::KernelOp;
      const auto before = qwenvl::kernels::dispatch_counts();
      const at::Tensor ours = qwenvl::kernels::linear(x, w, b);
      const auto calls = qwenvl::kernels::dispatch_counts().since(before);
      const at::Tensor theirs = at::linear(x, w, b);
      c10::cuda::device_synchronize();
      const std::string where = std::string(s.model) + " " + s.name + " M " + std::to_string(m);
      if (calls(KernelOp::kLinear, DispatchPath::kCudaKernel) != 1) {
        summary.all_ok = false;
        summary.note("ours (gemv) at " + where + ": the CUDA kernel did not serve the call (QWENVL_GEMV=0?): **FAIL**");
      }
      Difference diff = compare(ours, theirs);
      const double bound = std::ldexp(theirs.to(at::kFloat).abs().max().item<double>(), -6);  // 2 ulps of the largest
      const bool agree = diff.ok() && diff.max_abs <= bound;
      if (!agree) {
        summary.all_ok = false;
        summary.note("ours (gemv) disagrees with at::linear at " + where + " (max abs diff above " + rate_cell(bound, 4) +
                     " or relative above " + rate_cell(kMaxRelativeDifference, 2) + "): **FAIL**");
      }
      const double bytes = double(w.nbytes()) + (s.bias ? double(b.nbytes()) : 0.0) + double(x.nbytes()) +
                           double(ours.nbytes());
      const double ours_ms = timer.median_ms([&] { (void)qwenvl::kernels::linear(x, w, b); }, /*clean_l2=*/true);
      const double theirs_ms = timer.median_ms([&] { (void)at::linear(x, w, b); }, /*clean_l2=*/true);
      const double ours_tbs = bytes / (ours_ms * 1e-3) / 1e12, theirs_tbs = bytes / (theirs_ms * 1e-3) / 1e12;
      std::printf("| %s | %s%s | %lld x %lld | %lld | %.1f | %.1f | %.2f | %.2f | %s | %.1f | %.2f | %.2f | %.2f | %s%s |\n",
                  s.model, s.name, s.bias ? " (+bias)" : "", static_cast<long long>(s.n), static_cast<long long>(s.k),
                  static_cast<long long>(m), w.nbytes() / kMiB, ours_ms * 1e3, ours_tbs, ours_tbs / copy_tbs,
                  ours_tbs / copy_tbs >= target ? "met" : "not met", theirs_ms * 1e3, theirs_tbs, theirs_tbs / copy_tbs,
                  theirs_ms / ours_ms, diff_cell(diff).c_str(), agree ? "" : " **FAIL**");
      std::fflush(stdout);
    }
  }
  summary.note("Times: device events around one call (at::linear's includes whatever cuBLAS launches for it: a "
               "split-K memset and reduction where it picks one); the L2 is cleared and left clean before each "
               "call. Diff: max |ours − at::linear| (relative Frobenius error in brackets); a check fails above 2 "
               "bf16 ulps of the largest output. QWENVL_GEMV=0 makes the check fail (ours is then at::linear).");
  print_notes(summary);
}

int run(const Options& options, const std::string& command) {
  if (!at::hasCUDA() || at::getNumGPUs() == 0) {
    std::fprintf(stderr, "qwenvl-kernel-bench: no CUDA device is visible; this benchmark measures a GPU (run "
                         "scripts/bench/kernel_bench.sh on the GPU machine)\n");
    return 2;
  }
  c10::InferenceMode inference;
  at::manual_seed(1234);
  const cudaDeviceProp* prop = at::cuda::getCurrentDeviceProperties();
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::printf("# qwenvl kernel benchmark\n\n");
  std::printf("device: %s (%d SMs, %.1f GiB, L2 %d MiB); torch %s (CUDA runtime %ld, cuDNN %ld); %s\n", prop->name,
              prop->multiProcessorCount, prop->totalGlobalMem / kGiB, prop->l2CacheSize >> 20, TORCH_VERSION,
              at::detail::getCUDAHooks().versionCUDART(), at::detail::getCUDAHooks().versionCuDNN(), date);
  std::printf("command: %s\ntiming: device events around each call, L2 cleared before each, %d warm-up calls, "
              "median of %d\n\n", command.c_str(), options.warmup, options.runs);
  std::fflush(stdout);

  Summary summary;
  try {
    EventTimer timer(options.warmup, options.runs);
    if (options.wants("prefill")) prefill_section(timer, summary);
    if (options.wants("decode")) decode_section(timer, summary);
    if (options.wants("memory")) memory_section(summary);
    if (options.wants("matmul")) matmul_section(timer);
    if (options.wants("gemv")) gemv_section(timer, summary);
    if (options.wants("copy")) copy_section(timer);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwenvl-kernel-bench: %s\n", e.what());
    return 1;
  }
  std::printf("checks: %s\n", summary.all_ok ? "all held (ours served by the CUDA kernels, outputs agree with SDPA)"
                                              : "**a check FAILED** (see the notes above)");
  return summary.all_ok ? 0 : 1;
}

#endif  // QWENVL_WITH_CUDA

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: qwenvl-kernel-bench [--runs 30] [--warmup 5] [--sections prefill,decode,memory,matmul,gemv,copy]\n");
      return 2;
    }
    const std::string value = argv[i + 1];
    if (flag == "--runs") options.runs = std::max(1, std::stoi(value));
    else if (flag == "--warmup") options.warmup = std::max(0, std::stoi(value));
    else if (flag == "--sections") options.sections = value;
    else {
      std::fprintf(stderr, "qwenvl-kernel-bench: unknown option %s\n", flag.c_str());
      return 2;
    }
  }
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
#ifdef QWENVL_WITH_CUDA
  return run(options, command);
#else
  if (options.sections == "copy") {
    host_copy_section(options.warmup, options.runs);
    return 0;
  }
  std::fprintf(stderr, "qwenvl-kernel-bench: built without the CUDA kernels (configure with -Dcuda=enabled on a "
                       "machine with nvcc); nothing to measure\n");
  return 2;
#endif
}
