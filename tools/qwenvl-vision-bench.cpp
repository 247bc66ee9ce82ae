// The vision tower alone (issue 18, item 2: "the vision tower at >= 0.6 of the matmul rate at its
// shapes"): builds nn::VisionTower from a model directory, runs one packed forward of N random
// 448x448 frames (as the caption workload's one image each), and prints per N the forward's time,
// its FLOPs (the linear layers' and attention's, counted from the config and the geometry), the
// achieved TFLOP/s and its share of the bf16 matmul rate measured in the same run (an 8192^3
// product). With CUPTI (built where qwenvl-bench's --idle-profile is) and --kernels 1, one more
// forward of the largest N is traced and its kernels are listed by total time: where to look next.
//   qwenvl-vision-bench MODEL_DIR [--frames 1,8,32] [--runs 5] [--side 448] [--kernels 1] [--device cuda]
#include <ATen/ATen.h>
#include <cxxabi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/device/sync.h"
#include "model/config.h"
#include "model/weights.h"
#include "nn/vision_geometry.h"
#include "nn/vision_tower.h"
#include "number_list.h"
#include "qwenvl/error.h"
#ifdef QWENVL_WITH_CUPTI
#include "gpu_activity.h"
#endif

namespace {

using qwenvl::model::VisionConfig;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// FLOPs of one forward: every linear layer (2 * rows * in * out) and attention (QK^T and PV, both
// 2 * len^2 * head_dim per head, non-causal) over the geometry's window and full segments.
double forward_flops(const VisionConfig& c, const qwenvl::nn::VisionGeometry& g) {
  const double n = static_cast<double>(g.num_patches), h = c.hidden_size, i = c.intermediate_size;
  const double unit = static_cast<double>(c.spatial_merge_size * c.spatial_merge_size);
  const double patch_in = static_cast<double>(c.in_channels * c.temporal_patch_size * c.patch_size * c.patch_size);
  double flops = 2 * n * patch_in * h;                                        // patch embedding
  flops += c.depth * 2 * n * (h * 3 * h + h * h + h * 2 * i + i * h);         // qkv, proj, gate_up, down
  flops += 2 * (n / unit) * (h * unit) * (h * unit) + 2 * (n / unit) * (h * unit) * c.out_hidden_size;  // merger
  auto attention = [&](const at::Tensor& cu) {
    const at::Tensor lengths = (cu.narrow(0, 1, cu.size(0) - 1) - cu.narrow(0, 0, cu.size(0) - 1)).to(at::kDouble);
    return 4 * (lengths * lengths).sum().item<double>() * h;  // all heads: heads * head_dim = hidden
  };
  const double window = attention(g.cu_window_seqlens), full = attention(g.cu_seqlens);
  for (int64_t layer = 0; layer < c.depth; ++layer) {
    const bool is_full = std::find(c.fullatt_block_indexes.begin(), c.fullatt_block_indexes.end(), layer) !=
                         c.fullatt_block_indexes.end();
    flops += is_full ? full : window;
  }
  return flops;
}

double matmul_tflops(at::Device device, int runs) {
  const auto options = at::TensorOptions().device(device).dtype(at::kBFloat16);
  const int64_t s = 8192;
  const at::Tensor a = at::randn({s, s}, options), b = at::randn({s, s}, options);
  at::Tensor c = at::mm(a, b);
  qwenvl::kernels::synchronize_device(device);
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
    at::mm_out(c, a, b);
    qwenvl::kernels::synchronize_device(device);
    best = std::min(best, seconds_since(start));
  }
  return 2.0 * s * s * s / best / 1e12;
}

#ifdef QWENVL_WITH_CUPTI
std::string demangled(const std::string& name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> text(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), std::free);
  std::string out = status == 0 && text ? text.get() : name;
  if (out.size() > 110) out = out.substr(0, 107) + "...";
  for (char& ch : out)
    if (ch == '|') ch = '/';
  return out;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [--frames 1,8,32] [--runs 5] [--side 448] [--kernels 1] [--device cuda]\n",
                 argv[0]);
    return 2;
  }
  const std::string model_dir = argv[1];
  std::vector<int> frames = {1, 8, 32};
  int runs = 5, side = 448;
  bool kernels = true;
  std::string device_name = "cuda";
  for (int a = 2; a + 1 < argc; a += 2) {
    const std::string flag = argv[a], value = argv[a + 1];
    if (flag == "--frames") frames = qwenvl::tools::parse_number_list(value);
    else if (flag == "--runs") runs = std::stoi(value);
    else if (flag == "--side") side = std::stoi(value);
    else if (flag == "--kernels") kernels = value != "0";
    else if (flag == "--device") device_name = value;
    else {
      std::fprintf(stderr, "unknown option %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    const at::Device device(device_name);
    const auto config = qwenvl::model::load_model_config(std::filesystem::path(model_dir) / "config.json");
    const VisionConfig& vc = config.vision;
    const auto weights = qwenvl::model::Weights::load(model_dir, config);
    const at::ScalarType dtype = device.is_cuda() ? at::kBFloat16 : at::kFloat;
    const qwenvl::nn::VisionTower tower(vc, weights, dtype, device);
#ifdef QWENVL_WITH_CUPTI
    std::unique_ptr<qwenvl::tools::GpuActivity> profiler;
    if (kernels && device.is_cuda()) profiler = std::make_unique<qwenvl::tools::GpuActivity>(device.index() < 0 ? 0 : device.index());
#endif
    const double matmul = device.is_cuda() ? matmul_tflops(device, 10) : 0;
    const int64_t grid = side / vc.patch_size;
    const int64_t patch_in = vc.in_channels * vc.temporal_patch_size * vc.patch_size * vc.patch_size;
    std::printf("qwenvl vision tower (%s; %s, %s; %lld layers, hidden %lld, head_dim %lld), %dx%d frames (%lldx%lld patches)\n",
                model_dir.c_str(), device_name.c_str(), dtype == at::kBFloat16 ? "bf16" : "fp32",
                static_cast<long long>(vc.depth), static_cast<long long>(vc.hidden_size),
                static_cast<long long>(vc.head_dim()), side, side, static_cast<long long>(grid), static_cast<long long>(grid));
    std::printf("bf16 matmul rate in this run (8192^3, best of 10): %.1f TFLOP/s; forward time: median of %d after one warm-up, host clock to the device's end\n\n",
                matmul, runs);
    std::printf("| frames | patches | forward ms | ms a frame | GFLOP | TFLOP/s | share of the matmul rate |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
    at::Tensor last_pixels;
    std::vector<qwenvl::nn::GridTHW> last_grids;
    for (int n : frames) {
      const std::vector<qwenvl::nn::GridTHW> grids(static_cast<size_t>(n), qwenvl::nn::GridTHW{1, grid, grid});
      const auto geometry = qwenvl::nn::vision_geometry(grids, vc.spatial_merge_size, vc.window_size, vc.patch_size);
      const at::Tensor pixels = at::randn({geometry.num_patches, patch_in}, at::TensorOptions().dtype(at::kFloat));
      tower.forward(pixels, grids);
      qwenvl::kernels::synchronize_device(device);
      std::vector<double> times;
      for (int r = 0; r < runs; ++r) {
        const auto start = std::chrono::steady_clock::now();
        tower.forward(pixels, grids);
        qwenvl::kernels::synchronize_device(device);
        times.push_back(seconds_since(start));
      }
      std::sort(times.begin(), times.end());
      const double t = times[times.size() / 2], flops = forward_flops(vc, geometry);
      const double rate = flops / t / 1e12;
      std::printf("| %d | %lld | %.2f | %.3f | %.1f | %.1f | %.2f |\n", n, static_cast<long long>(geometry.num_patches),
                  t * 1e3, t * 1e3 / n, flops / 1e9, rate, matmul > 0 ? rate / matmul : 0.0);
      std::fflush(stdout);
      last_pixels = pixels;
      last_grids = grids;
    }
#ifdef QWENVL_WITH_CUPTI
    if (profiler && last_pixels.defined()) {
      profiler->start();
      tower.forward(last_pixels, last_grids);
      profiler->stop();
      std::map<std::string, std::pair<int, double>> by_name;  // count, µs
      double total = 0, copies = 0;
      for (const auto& r : profiler->records()) {
        if (r.kind == qwenvl::tools::ActivityKind::kMemcpy) copies += static_cast<double>(r.end_ns - r.start_ns) / 1e3;
        if (r.kind != qwenvl::tools::ActivityKind::kKernel) continue;
        const double us = static_cast<double>(r.end_ns - r.start_ns) / 1e3;
        auto& entry = by_name[demangled(r.name)];
        entry.first += 1;
        entry.second += us;
        total += us;
      }
      std::vector<std::pair<std::string, std::pair<int, double>>> rows(by_name.begin(), by_name.end());
      std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.second > b.second.second; });
      std::printf("\nKernels of one forward of %zu frames (CUPTI; %.2f ms of kernel time in all, %.2f ms of copies: the\n"
                  "fp32 pixels and the geometry's indices uploaded):\n\n", last_grids.size(), total / 1e3, copies / 1e3);
      std::printf("| kernel | launches | µs | share |\n|---|---:|---:|---:|\n");
      for (size_t k = 0; k < rows.size() && k < 25; ++k)
        std::printf("| %s | %d | %.1f | %.1f%% |\n", rows[k].first.c_str(), rows[k].second.first, rows[k].second.second,
                    100 * rows[k].second.second / total);
    }
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwenvl-vision-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
